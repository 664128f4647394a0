"""What can be checked of the images without a Docker engine: the Dockerfiles' structure,
and that fetch.py needs nothing beyond the standard library of its base image."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from .workspace import FETCH

IMAGES = FETCH.parents[1]
TOOLCHAIN = re.compile(
    r"\b(build-essential|gcc|g\+\+|make|python3?|node-gyp|autoconf|libtool)\b", re.IGNORECASE
)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def values(dockerfile: Path, keyword: str) -> list[str]:
    return [rest for kw, rest in instructions(dockerfile) if kw == keyword]


def test_fetcher_image_is_a_pinned_slim_python_running_fetch_py_as_uid_1000() -> None:
    dockerfile = IMAGES / "fetcher" / "Dockerfile"
    (base,) = values(dockerfile, "FROM")
    # 3.11.4 brought tarfile's data filter; a full version pins what fetch.py runs on.
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-bookworm)?", base)
    assert int(base.split(".")[2].split("-")[0]) >= 4
    assert values(dockerfile, "USER") == ["1000:1000"]
    assert values(dockerfile, "COPY") == ["fetch.py /fetch.py"]
    assert values(dockerfile, "ENTRYPOINT") == ['["python", "-I", "/fetch.py"]']
    assert values(dockerfile, "RUN") == []  # nothing installed on top of the base


def test_nodejs_image_is_official_slim_node_by_major_as_uid_1000() -> None:
    dockerfile = IMAGES / "nodejs" / "Dockerfile"
    steps = instructions(dockerfile)
    assert steps[0] == ("ARG", "NODE_MAJOR=24")
    assert values(dockerfile, "FROM") == ["node:${NODE_MAJOR}-bookworm-slim"]
    assert values(dockerfile, "USER") == ["1000:1000"]
    assert steps[-1] == ("CMD", '["npm", "start"]')
    assert values(dockerfile, "WORKDIR") == ["/app"]
    assert any("NODE_ENV=production" in env for env in values(dockerfile, "ENV"))


def test_nodejs_image_installs_no_build_toolchain() -> None:
    runs = values(IMAGES / "nodejs" / "Dockerfile", "RUN")
    assert not any("apt-get install" in run or "apk add" in run for run in runs)
    assert not any(TOOLCHAIN.search(run) for run in runs)
    assert not any("npm" in run for run in runs)  # npm stays whole: it runs the start command


def test_fetcher_imports_only_the_standard_library() -> None:
    tree = ast.parse(FETCH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    imported -= {"__future__", "_typeshed"}  # _typeshed only under TYPE_CHECKING
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
