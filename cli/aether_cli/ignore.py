""".aetherignore: gitignore-style rules for what never goes into an artifact.

Always left out, whatever the file says: ``.git`` and ``.aether`` anywhere. Left out by
default, which ``!pattern`` in ``.aetherignore`` may undo: the ``.aetherignore`` file
itself and ``.env`` / ``.env.*`` files (secrets stay on the developer's machine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".aetherignore"
# Names left out wherever they appear, whatever .aetherignore says.
ALWAYS_EXCLUDED_NAMES = frozenset({".git", ".aether"})
# Defaults that .aetherignore may override with "!pattern"; (pattern, tag).
_DEFAULT_RULES = (("/.aetherignore", None), (".env", "env"), (".env.*", "env"))
ENV_TAG = "env"


class IgnoreFileError(Exception):
    """.aetherignore cannot be read (the CLI exits 30)."""


@dataclass(frozen=True)
class IgnoreRule:
    pattern: str
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    tag: str | None = None


class IgnoreRules:
    """An ordered list of gitignore-style rules; the last one that matches decides.

    Supported: ``#`` comments, blank lines, ``!`` negation, trailing ``/`` for
    directories only, a leading or inner ``/`` anchoring to the project root,
    ``*``, ``?``, ``[...]``, ``**`` (leading ``**/``, trailing ``/**``, inner
    ``/**/``) and ``\\`` escapes. As in git, a file cannot be re-included when a
    directory above it is excluded (the walk never enters that directory). Only
    the ``.aetherignore`` at the project root is read.
    """

    def __init__(self, rules: list[IgnoreRule]) -> None:
        self.rules = rules
        # Most paths match no rule: one combined regex answers that in one go.
        self._any = re.compile(
            "|".join(f"(?:{rule.regex.pattern})" for rule in rules) or "(?!)", re.DOTALL
        )

    @classmethod
    def parse(cls, text: str, *, tag: str | None = None) -> IgnoreRules:
        rules = []
        for line in text.splitlines():
            rule = parse_ignore_line(line, tag=tag)
            if rule is not None:
                rules.append(rule)
        return cls(rules)

    @classmethod
    def for_project(cls, root: Path) -> IgnoreRules:
        rules = [r for p, tag in _DEFAULT_RULES if (r := parse_ignore_line(p, tag=tag))]
        try:
            text = (root / IGNORE_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise IgnoreFileError(f"cannot read {root / IGNORE_FILE}: {exc}") from None
        return cls(rules + cls.parse(text).rules)

    @classmethod
    def for_workspace(cls, workspace_root: Path, package_path: str) -> IgnoreRules:
        """The workspace root's rules, then the package's own, anchored at the package."""
        rules = cls.for_project(workspace_root)
        if not package_path:
            return rules
        own = cls.for_project(workspace_root / package_path).rules[len(_DEFAULT_RULES) :]
        prefix = re.escape(package_path + "/")
        anchored = [
            IgnoreRule(
                r.pattern,
                re.compile(prefix + r.regex.pattern, re.DOTALL),
                r.negate,
                r.dir_only,
                r.tag,
            )
            for r in own
        ]
        return cls(rules.rules + anchored)

    def without(self, tag: str) -> IgnoreRules:
        """These rules minus the defaults carrying ``tag``."""
        return IgnoreRules([rule for rule in self.rules if rule.tag != tag])

    def match(self, path: str, *, is_dir: bool) -> IgnoreRule | None:
        """The rule that decides about ``path`` (relative, ``/``-separated), if any."""
        if not self._any.fullmatch(path):
            return None
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.fullmatch(path):
                return rule
        return None

    def excludes(self, path: str, *, is_dir: bool) -> bool:
        rule = self.match(path, is_dir=is_dir)
        return rule is not None and not rule.negate


def parse_ignore_line(line: str, *, tag: str | None = None) -> IgnoreRule | None:
    # Trailing spaces are dropped unless escaped with a backslash, as in git.
    stripped = line.rstrip(" \t\r\n")
    if line[len(stripped) : len(stripped) + 1] == " " and stripped.endswith("\\"):
        stripped += " "
    if not stripped or stripped.startswith("#"):
        return None
    negate = stripped.startswith("!")
    if negate or stripped.startswith(("\\!", "\\#")):
        stripped = stripped[1:]
    dir_only = stripped.endswith("/") and not stripped.endswith("\\/")
    body = stripped.rstrip("/") if dir_only else stripped
    if not body:
        return None
    anchored = "/" in body
    body = body.removeprefix("/")
    regex = _glob_to_regex(body)
    if not anchored:
        regex = "(?:.*/)?" + regex
    return IgnoreRule(
        pattern=line.strip(),
        regex=re.compile(regex, re.DOTALL),
        negate=negate,
        dir_only=dir_only,
        tag=tag,
    )


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            at_segment_start = i == 0 or glob[i - 1] == "/"
            if j - i >= 2 and at_segment_start and j == n:
                out.append(".*")  # "dir/**": everything inside
            elif j - i >= 2 and at_segment_start and glob[j] == "/":
                out.append("(?:.*/)?")  # "**/x", "a/**/b": zero or more directories
                j += 1
            else:
                out.append("[^/]*")  # other runs of stars are a plain "*"
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = _class_end(glob, i)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            content = glob[i + 1 : end]
            negated = content[:1] in ("!", "^")
            if negated:
                content = content[1:]
            content = content.replace("\\", "\\\\")
            out.append(f"[^/{content}]" if negated else f"[{content}]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    j = start + 1
    if j < len(glob) and glob[j] in "!^":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1  # a leading "]" is a member of the class
    while j < len(glob) and glob[j] != "]":
        j += 1
    return j if j < len(glob) else -1
