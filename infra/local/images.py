"""What a container image is on this machine: the embedded data plane pulls no images.

- ``aether-fetcher``: ``infra/images/fetcher/fetch.py``, run by this Python.
- ``aether-nodejs:<major>`` (``24-slim``, or any other variant of the tag): a real Node.js of
  that major, installed once into the node directory by ``aether_cli.nodejs`` (or the host's
  ``node`` when it is of that major), with the environment ``infra/images/nodejs/Dockerfile``
  gives the image. Its ``bin`` directory comes first on PATH, then this machine's PATH (which
  brings npm).
- Any other image: the container's ``command`` runs with this machine's PATH.

A pull that waiting will not fix fails as ``InvalidImageName``; one that may work later (the
registry was unreachable) as ``ErrImagePull``: the kubelet's reasons.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aether_cli.nodejs import NodeError, NodeInstall, NodeUnsupportedError, ensure_node

from infra.local.users import User, others_can_run

IMAGES = Path(__file__).resolve().parents[1] / "images"
FETCHER = IMAGES / "fetcher" / "fetch.py"
NODE_DOCKERFILE = IMAGES / "nodejs" / "Dockerfile"
RUNAS = Path(__file__).with_name("runas.py")
FETCHER_IMAGE = "aether-fetcher"
NODE_IMAGE = "aether-nodejs"
_NODE_TAG = re.compile(r"(\d+)(-[A-Za-z0-9_.-]+)?")

log = logging.getLogger("aether.dataplane")


class PullError(Exception):
    """The image cannot be had; ``reason`` is the container's waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Image:
    reference: str
    # A Python entrypoint run by this interpreter, for containers that give no command.
    script: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # the image's ENV (container paths)
    path: str | None = None  # the container's PATH on this machine; None: this process's

    def entrypoint(self, user: User | None) -> list[str] | None:
        """The image's own command, for a container without one; None if it has none.

        Run as another user, a Python script is started through ``runas.py``: the user may
        not be able to read this interpreter's files, so it loads them first and then drops.
        Scripts use the standard library only: the interpreter starts isolated and without
        ``site`` (no environment, no installed packages to import), as an image's would.
        """
        if self.script is None:
            return None
        python = [sys.executable, "-I", "-S"]
        if user is None:
            return [*python, str(self.script)]
        return [*python, str(RUNAS), str(user.uid), str(user.gid), str(self.script)]


def repository(reference: str) -> tuple[str, str]:
    """``registry/path/name:tag@digest`` → (name, tag); the tag is ``latest`` when absent."""
    name = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    name, _, tag = name.partition(":")
    return name, tag or "latest"


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ``ENV NAME=value ...`` instructions of a Dockerfile (continuation lines joined)."""
    env: dict[str, str] = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


class Images:
    """Images by reference; Node installs are made once per major, whichever pod asks first.

    ``node_dir`` holds the installs (``aether_cli.nodejs``'s cache layout); None is that
    module's default cache.
    """

    def __init__(self, node_dir: Path | None) -> None:
        self.node_dir = node_dir
        self._lock = threading.Lock()
        self._majors: dict[int, threading.Lock] = {}
        self._nodes: dict[tuple[int, User | None], NodeInstall] = {}

    def pull(self, reference: str, *, user: User | None, announce: Callable[[str], None]) -> Image:
        """The image named ``reference``; ``announce`` hears of a download before it starts."""
        name, tag = repository(reference)
        if name == FETCHER_IMAGE:
            return Image(reference, script=FETCHER)
        if name != NODE_IMAGE:
            return Image(reference)
        match = _NODE_TAG.fullmatch(tag)
        if match is None:
            raise PullError(
                "InvalidImageName",
                f"image {reference!r}: the tag of {NODE_IMAGE} names a Node.js major "
                f"({NODE_IMAGE}:24-slim), not {tag!r}",
            )
        node = self._node(int(match.group(1)), reference, user, announce)
        path = os.pathsep.join(filter(None, (str(node.bin_dir), os.environ.get("PATH"))))
        return Image(reference, env=dockerfile_env(NODE_DOCKERFILE), path=path)

    def _node(
        self, major: int, reference: str, user: User | None, announce: Callable[[str], None]
    ) -> NodeInstall:
        with self._lock:
            known = self._nodes.get((major, user))
            if known is not None:
                return known
            major_lock = self._majors.setdefault(major, threading.Lock())

        def progress(message: str) -> None:
            log.info("image %s: %s", reference, message)
            announce(message)

        with major_lock:  # one install per major; the others wait for it
            try:
                node = ensure_node(
                    major, cache_dir=self.node_dir, log=progress, allow_end_of_life=True
                )
                if node.source == "path" and user is not None and not others_can_run(node.node):
                    # The host's node lives where the pod's user cannot go: install one.
                    node = ensure_node(
                        major,
                        cache_dir=self.node_dir,
                        log=progress,
                        allow_end_of_life=True,
                        use_path=False,
                    )
            except NodeUnsupportedError as error:
                raise PullError("InvalidImageName", f"image {reference!r}: {error}") from None
            except NodeError as error:
                raise PullError("ErrImagePull", f"image {reference!r}: {error}") from None
            if user is not None and not others_can_run(node.node):
                raise PullError(
                    "ErrImagePull",
                    f"image {reference!r}: uid {user.uid} cannot run {node.node}; keep the "
                    "stack's node directory where every user can reach it",
                )
            log.info(
                "image %s: Node.js %s (%s) at %s", reference, node.version, node.source, node.node
            )
            with self._lock:
                self._nodes[(major, user)] = node
            return node
