"""The Node.js projects the tests build: the example and tests/fixtures/projects.

``make fixtures`` builds each once with the CLI, leaving its staging install in
``.aether/``; a test copies a project with that install (mtimes kept), so it builds
offline and fast, and can still check that nothing is installed twice.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-express"
FIXTURES = REPO / "tests" / "fixtures" / "projects"


@dataclass(frozen=True)
class Project:
    """A project of a kind: ``root`` is what is copied, ``app`` what is deployed."""

    kind: str
    root: Path
    app: str = ""  # the deployed package inside root ("" for root itself)

    @property
    def app_dir(self) -> Path:
        return self.root / self.app if self.app else self.root

    @property
    def warm(self) -> bool:
        return (self.app_dir / ".aether" / "stamps" / "install.json").is_file()

    def copy_to(self, parent: Path, *, warm: bool = True) -> Path:
        """A copy under ``parent``; the deployed package's directory in it."""
        target = parent / self.root.name

        def ignore(directory: str, names: list[str]) -> set[str]:
            # A warm copy keeps .aether's install but not its packed artifact.
            if not warm:
                return {name for name in names if name == ".aether"}
            if Path(directory).name == ".aether":
                return {name for name in names if name == "build"}
            return set()

        shutil.copytree(self.root, target, symlinks=True, ignore=ignore)
        return target / self.app if self.app else target


PROJECTS = {
    project.kind: project
    for project in (
        Project("example", EXAMPLE),
        Project("typescript", FIXTURES / "ts-express"),
        Project("esbuild", FIXTURES / "esbuild-bundle"),
        Project("pnpm", FIXTURES / "pnpm-app"),
        Project("yarn-classic", FIXTURES / "yarn-classic"),
        Project("yarn-berry", FIXTURES / "yarn-berry"),
        Project("npm-workspaces", FIXTURES / "npm-workspaces", "apps/api"),
        Project("pnpm-workspaces", FIXTURES / "pnpm-workspaces", "apps/api"),
        Project("native-addon", FIXTURES / "native-addon"),
        Project("fixed-port", FIXTURES / "fixed-port"),
    )
}

# The suites that deploy the example with the real CLI run only where it can be built.
NEEDS_EXAMPLE = pytest.mark.skipif(
    shutil.which("node") is None or not PROJECTS["example"].warm,
    reason="needs node and the example's dependencies (`make fixtures`)",
)
