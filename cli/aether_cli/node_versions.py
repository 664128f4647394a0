"""Which Node.js major a project runs on: ``engines.node``, ``.nvmrc``, ``.node-version``.

The rule, as users read it in the CLI's documentation:

* Aether builds and runs the Node lines in support on the build day (see
  :mod:`aether_cli.contract`); asking for an end-of-life line is refused with its date.
* ``engines.node`` is an npm semver range; ``.nvmrc`` or ``.node-version`` (in the
  project, else in the workspace root) pins a major and must agree with the range.
* Otherwise the newest LTS line the range allows wins (a line that is still
  "Current" only when the range allows no LTS line), so a deploy never lands on a
  line that has not been declared stable when a stable one would do.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aether_cli.contract import NODE_LINES, NodeLine, node_line, supported_node_lines

VERSION_FILES = (".nvmrc", ".node-version")


class NodeVersionError(Exception):
    """The project asks for a Node line Aether cannot build or run (the CLI exits 10)."""


@dataclass(frozen=True)
class NodeChoice:
    line: NodeLine
    source: str  # "engines.node", ".nvmrc", ".node-version" or "default"

    @property
    def major(self) -> int:
        return self.line.major


def choose_node_line(
    package: dict[str, Any], search: list[Path], *, today: dt.date | None = None
) -> NodeChoice:
    """The line for a project whose package.json is ``package``.

    ``search`` lists the directories whose version files count, nearest first (the
    package, then its workspace root).
    """
    supported = supported_node_lines(today)
    engines = package.get("engines") or {}
    engine_range = engines.get("node")
    if engine_range is not None and not isinstance(engine_range, str):
        raise NodeVersionError('package.json: "engines.node" must be a string such as ">=22"')

    pinned = _pinned_major(search, supported)
    if engine_range is None or not engine_range.strip():
        if pinned is not None:
            return NodeChoice(_supported_line(pinned[0], pinned[1], supported), pinned[1])
        return NodeChoice(_newest_lts(supported), "default")

    allowed = majors_allowed(engine_range)
    candidates = [line for line in supported if line.major in allowed]
    if not candidates:
        raise NodeVersionError(
            f'engines.node "{engine_range}" allows no Node line Aether runs today '
            f"({_names(supported)})" + _end_of_life_note(allowed, supported)
        )
    if pinned is not None:
        major, source = pinned
        line = _supported_line(major, source, supported)
        if line not in candidates:
            raise NodeVersionError(
                f'{source} asks for Node {major}, which engines.node "{engine_range}" '
                "does not allow: make them agree"
            )
        return NodeChoice(line, source)
    return NodeChoice(_newest_lts(candidates), "engines.node")


def _newest_lts(lines: list[NodeLine] | tuple[NodeLine, ...]) -> NodeLine:
    lts = [line for line in lines if line.lts_codename]
    return max(lts or lines, key=lambda line: line.major)


def _names(lines: tuple[NodeLine, ...]) -> str:
    return ", ".join(str(line.major) for line in lines)


def _end_of_life_note(allowed: set[int], supported: tuple[NodeLine, ...]) -> str:
    newest = max(line.major for line in supported)
    ended = [
        line
        for major in sorted(allowed)
        if major <= newest and (line := node_line(major)) and line not in supported
    ]
    if not ended:
        return ""
    last = ended[-1]
    return (
        f"; Node {last.major} reached end of life on {last.end_of_life.isoformat()}: "
        f"widen the range to include {supported[-1].major}"
    )


def _supported_line(major: int, source: str, supported: tuple[NodeLine, ...]) -> NodeLine:
    line = node_line(major)
    if line is not None and line in supported:
        return line
    if line is not None and major < supported[0].major:
        raise NodeVersionError(
            f"{source} asks for Node {major}, which reached end of life on "
            f"{line.end_of_life.isoformat()}; Aether runs Node {_names(supported)}: "
            f"move to Node {_newest_lts(supported).major}"
        )
    raise NodeVersionError(f"{source} asks for Node {major}; Aether runs Node {_names(supported)}")


def _pinned_major(search: list[Path], supported: tuple[NodeLine, ...]) -> tuple[int, str] | None:
    for directory in search:
        for name in VERSION_FILES:
            path = directory / name
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                return parse_version_file(text, name, supported), name
    return None


def parse_version_file(text: str, name: str, supported: tuple[NodeLine, ...]) -> int:
    """The Node major an ``.nvmrc`` or ``.node-version`` names."""
    # nvm reads the first line; newer nvm allows comments after '#'.
    lines = text.strip().splitlines()
    value = lines[0].split("#", 1)[0].strip().lower() if lines else ""
    if value.startswith("lts/"):
        codename = value[4:]
        lts = [line for line in supported if line.lts_codename]
        if codename == "*" and lts:
            return _newest_lts(lts).major
        for line in supported:
            if line.lts_codename == codename:
                return line.major
        known = node_line_by_codename(codename)
        if known is not None:
            return known.major  # an end-of-life line: refused with its date by the caller
    else:
        match = re.fullmatch(r"v?(\d+)(?:\.(?:\d+|x))?(?:\.(?:\d+|x))?", value)
        if match:
            return int(match.group(1))
    names = ", ".join(f"lts/{line.lts_codename}" for line in supported if line.lts_codename)
    raise NodeVersionError(
        f'{name} says "{value}": Aether understands a version ("24", "v24.11.1") '
        f"or an LTS name ({names}, lts/*) of Node {_names(supported)}"
    )


def node_line_by_codename(codename: str) -> NodeLine | None:
    return next((line for line in NODE_LINES if line.lts_codename == codename), None)


# ---------------------------------------------------------------------------
# npm semver ranges, reduced to the majors they allow

_Version = tuple[int, int, int]
_INF: _Version = (1 << 30, 0, 0)
_PARTIAL = re.compile(r"v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+][0-9A-Za-z.+-]*)?")
_COMPARATOR = re.compile(r"(<=|>=|<|>|=|\^|~>?)?\s*(\S+)")


def majors_allowed(
    range_text: str, *, candidates: tuple[int, ...] = tuple(range(0, 64))
) -> set[int]:
    """The majors in ``candidates`` for which some version satisfies the npm range.

    Supports what package.json files use: ``||``, space-separated comparators
    (AND), ``>= > <= < =``, ``^``, ``~``, x-ranges (``22``, ``22.x``, ``*``) and
    hyphen ranges (``22 - 24``). Prerelease tags are ignored. Anything else raises
    :class:`NodeVersionError`.
    """
    allowed: set[int] = set()
    for alternative in range_text.split("||"):
        low, high = _alternative_interval(alternative.strip(), range_text)
        for major in candidates:
            # Does [low, high) meet [major.0.0, major+1.0.0)?
            if low < (major + 1, 0, 0) and high > (major, 0, 0):
                allowed.add(major)
    return allowed


def _alternative_interval(text: str, whole: str) -> tuple[_Version, _Version]:
    low: _Version = (0, 0, 0)
    high: _Version = _INF
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        first = _partial(hyphen.group(1), whole)
        last = _partial(hyphen.group(2), whole)
        return _lower_bound(first), _upper_of_partial(last)
    # "> = 22" and ">=22" are the same comparator: glue operators to their version.
    text = re.sub(r"(<=|>=|<|>|=|\^|~>?)\s+", r"\1", text)
    for token in text.split():
        match = _COMPARATOR.fullmatch(token)
        if not match:
            raise _bad_range(whole)
        op, version = match.group(1) or "", match.group(2)
        parts = _partial(version, whole)
        lo, hi = _comparator_interval(op, parts)
        low, high = max(low, lo), min(high, hi)
    return low, high


def _partial(text: str, whole: str) -> list[int | None]:
    match = _PARTIAL.fullmatch(text)
    if not match:
        raise _bad_range(whole)
    parts: list[int | None] = []
    for group in match.groups():
        if group is None or group in ("x", "X", "*"):
            break  # everything after a wildcard is a wildcard too
        parts.append(int(group))
    return parts


def _lower_bound(parts: list[int | None]) -> _Version:
    padded = [p or 0 for p in parts] + [0, 0, 0]
    return (padded[0], padded[1], padded[2])


def _upper_of_partial(parts: list[int | None]) -> _Version:
    """Exclusive upper bound of the versions a partial version stands for."""
    if not parts:
        return _INF
    if len(parts) == 1:
        return (int(parts[0] or 0) + 1, 0, 0)
    if len(parts) == 2:
        return (int(parts[0] or 0), int(parts[1] or 0) + 1, 0)
    return (int(parts[0] or 0), int(parts[1] or 0), int(parts[2] or 0) + 1)


def _comparator_interval(op: str, parts: list[int | None]) -> tuple[_Version, _Version]:
    low = _lower_bound(parts)
    if op in ("", "="):
        return low, _upper_of_partial(parts)
    if op == ">=":
        return low, _INF
    if op == ">":
        return _upper_of_partial(parts), _INF
    if op == "<":
        return (0, 0, 0), low if parts else (0, 0, 0)
    if op == "<=":
        return (0, 0, 0), _upper_of_partial(parts)
    if op in ("~", "~>"):
        return low, _upper_of_partial(parts[:2])
    # "^": changes that do not modify the left-most non-zero part.
    if not parts:
        return low, _INF
    major, minor, patch = low
    if major > 0 or len(parts) == 1:
        return low, (major + 1, 0, 0)
    if minor > 0 or len(parts) == 2:
        return low, (0, minor + 1, 0)
    return low, (0, 0, patch + 1)


def _bad_range(whole: str) -> NodeVersionError:
    return NodeVersionError(
        f'engines.node "{whole}" is not a version range Aether understands '
        '(examples: ">=22", "24.x", "^22.1.0", "22 || 24")'
    )
