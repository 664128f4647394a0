"""Which Node line a project runs on: the lines in support on the day, engines, version files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from aether_cli.contract import NODE_LINES, supported_node_lines
from aether_cli.node_versions import NodeVersionError, choose_node_line, majors_allowed

BUILD_DAY = dt.date(2026, 12, 1)  # the lines in support: 22, 24 (LTS) and 26 (Current)


def _choose(
    package: dict[str, object],
    tmp_path: Path,
    files: dict[str, str] | None = None,
    day: dt.date = BUILD_DAY,
) -> tuple[int, str]:
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    choice = choose_node_line(package, [tmp_path], today=day)
    return choice.major, choice.source


def test_the_lines_in_support_follow_the_calendar() -> None:
    assert [line.major for line in supported_node_lines(BUILD_DAY)] == [22, 24, 26]
    assert [line.major for line in supported_node_lines(dt.date(2026, 4, 29))] == [20, 22, 24]
    assert [line.major for line in supported_node_lines(dt.date(2027, 5, 1))] == [24, 26]
    assert all(line.abi > 0 and line.released < line.end_of_life for line in NODE_LINES)


def test_no_engines_and_no_version_file_means_the_newest_lts(tmp_path: Path) -> None:
    assert _choose({}, tmp_path) == (24, "default")


@pytest.mark.parametrize(
    ("engines", "major"),
    [
        (">=22", 24),
        (">= 18", 24),
        ("22.x", 22),
        ("22", 22),
        ("v22.11.1", 22),
        ("^24.1.0", 24),
        ("~22.17", 22),
        ("22 || 24", 24),
        (">=22 <24", 22),
        ("22 - 24", 24),
        (">=26", 26),  # a Current line only when the range allows no LTS line
        ("*", 24),
        ("", 24),
        (">=22.0.0-rc.1", 24),
    ],
)
def test_engines_node_picks_the_newest_lts_line_it_allows(
    tmp_path: Path, engines: str, major: int
) -> None:
    expected_source = "engines.node" if engines else "default"
    assert _choose({"engines": {"node": engines}}, tmp_path) == (major, expected_source)


@pytest.mark.parametrize(
    ("engines", "message"),
    [
        (
            ">=20 <22",
            r"allows no Node line Aether runs today \(22, 24, 26\); Node 20 reached end "
            r"of life on 2026-04-30: widen the range to include 26",
        ),
        ("18.x", r"Node 18 reached end of life on 2025-04-30"),
        (">=30", r"allows no Node line Aether runs today"),
    ],
)
def test_engines_allowing_no_line_in_support_is_an_error_with_the_end_of_life_date(
    tmp_path: Path, engines: str, message: str
) -> None:
    with pytest.raises(NodeVersionError, match=message):
        _choose({"engines": {"node": engines}}, tmp_path)


@pytest.mark.parametrize("engines", ["banana", ">=20 <", "node 20", "latest"])
def test_unreadable_engines_is_an_error(tmp_path: Path, engines: str) -> None:
    with pytest.raises(NodeVersionError, match="not a version range Aether understands"):
        _choose({"engines": {"node": engines}}, tmp_path)


def test_engines_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(NodeVersionError, match="must be a string"):
        _choose({"engines": {"node": 22}}, tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "major"),
    [
        (".nvmrc", "v22\n", 22),
        (".nvmrc", "26", 26),
        (".nvmrc", "24.11.0\n", 24),
        (".nvmrc", "lts/jod\n", 22),
        (".nvmrc", "lts/krypton", 24),
        (".nvmrc", "lts/*", 24),
        (".nvmrc", "22 # pinned for native addons\n", 22),
        (".node-version", "24.1.0\n", 24),
    ],
)
def test_a_version_file_gives_the_major(
    tmp_path: Path, name: str, content: str, major: int
) -> None:
    assert _choose({}, tmp_path, {name: content}) == (major, name)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("20", r"Node 20, which reached end of life on 2026-04-30.*move to Node 24"),
        ("lts/iron", r"Node 20, which reached end of life on 2026-04-30"),
        ("lts/hydrogen", r"Node 18, which reached end of life on 2025-04-30"),
        ("16", r"Node 16; Aether runs Node 22, 24, 26"),
        ("v27.1.0", r"Node 27; Aether runs Node 22, 24, 26"),
        ("node", r'\.nvmrc says "node"'),
        ("lts/gallium", r'says "lts/gallium"'),
    ],
)
def test_a_version_file_asking_for_a_line_not_in_support_is_refused(
    tmp_path: Path, content: str, message: str
) -> None:
    with pytest.raises(NodeVersionError, match=message):
        _choose({}, tmp_path, {".nvmrc": content})


def test_a_version_file_must_agree_with_engines(tmp_path: Path) -> None:
    assert _choose({"engines": {"node": ">=22"}}, tmp_path, {".nvmrc": "v26.1.0\n"}) == (
        26,
        ".nvmrc",
    )
    with pytest.raises(NodeVersionError, match="make them agree"):
        _choose({"engines": {"node": ">=24"}}, tmp_path, {".nvmrc": "22\n"})


def test_the_package_version_file_wins_over_the_workspace_root(tmp_path: Path) -> None:
    package, root = tmp_path / "apps" / "api", tmp_path
    package.mkdir(parents=True)
    (root / ".nvmrc").write_text("22\n")
    assert choose_node_line({}, [package, root], today=BUILD_DAY).major == 22
    (package / ".node-version").write_text("26\n")
    assert choose_node_line({}, [package, root], today=BUILD_DAY).major == 26


def test_majors_allowed_handles_caret_tilde_and_bounds() -> None:
    assert majors_allowed("^0.2.3", candidates=(0, 1)) == {0}
    assert majors_allowed("~1", candidates=(0, 1, 2)) == {1}
    assert majors_allowed("<20.0.0", candidates=(19, 20)) == {19}
    assert majors_allowed(">20", candidates=(20, 21)) == {21}
    assert majors_allowed(">20.1", candidates=(20, 21)) == {20, 21}
