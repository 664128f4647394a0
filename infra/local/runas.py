"""``python runas.py UID GID SCRIPT [ARG ...]``: run a Python script's ``main`` as another user.

The embedded data plane runs Python entrypoints (the artifact fetcher) as the pod's user, but
the interpreter running the stack may live where that user cannot read (a pyenv under
``/root``): started as that user, it could not even load its standard library. So this starts
as root, loads SCRIPT and every module it imports, then drops to UID:GID with no
supplementary groups and calls ``SCRIPT.main(ARGS)``; its return value is the exit status.
The few modules the standard library imports lazily on the way (``encodings.idna``, which
resolving any host name needs) are loaded first too.

Standard library only, run by path: nothing of the repository is imported.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401 - socket.getaddrinfo imports it on first use
import importlib.util
import os
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print("usage: runas.py UID GID SCRIPT [ARG ...]", file=sys.stderr)
        return 2
    uid, gid, script, *args = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("entrypoint", script)
    if spec is None or spec.loader is None:
        print(f"runas: cannot load {script}", file=sys.stderr)
        return 2
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # what dataclasses and pickle look a module up by
    spec.loader.exec_module(module)
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    status: int = module.main(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
