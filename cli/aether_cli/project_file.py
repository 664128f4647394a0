"""``aether.toml``: what a project says about its own deploys, checked before anything runs.

::

    app = "shop-api"                  # the app to deploy to (--app wins)

    [build]
    command = "npm run build:prod"    # instead of scripts.build

    [deploy]
    start_command = "node dist/main.js"
    release_command = "npm run migrate"   # once per release, before its rollout
    replicas = 2

    [env]                             # non-secret defaults; --env wins
    LOG_LEVEL = "info"

Unknown tables or keys and values of the wrong type are errors that name the file,
the key and its line, so a typo never silently does nothing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from aether_cli.contract import (
    APP_NAME_PATTERN,
    ENV_NAME_PATTERN,
    MAX_COMMAND_LENGTH,
    MAX_REPLICAS,
    RESERVED_ENV_NAMES,
)

FILE_NAME = "aether.toml"


class ProjectFileError(Exception):
    """aether.toml is malformed (the CLI exits 10)."""


@dataclass(frozen=True)
class ProjectFile:
    path: Path | None = None
    app: str | None = None
    build_command: str | None = None
    start_command: str | None = None
    release_command: str | None = None
    replicas: int | None = None
    env: dict[str, str] = field(default_factory=dict)


_SCHEMA: dict[str, dict[str, type] | type] = {
    "app": str,
    "build": {"command": str},
    "deploy": {"start_command": str, "release_command": str, "replicas": int},
    "env": dict,
}


def read_project_file(root: Path) -> ProjectFile:
    path = root / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ProjectFile()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectFileError(f"cannot read {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectFileError(f"{path}: {exc}") from None

    def fail(key: str, problem: str) -> ProjectFileError:
        return ProjectFileError(f"{path}{_line_of(text, key)}: {key} {problem}")

    for key, value in data.items():
        expected = _SCHEMA.get(key)
        if expected is None:
            known = ", ".join(sorted(_SCHEMA))
            raise fail(key, f"is not a setting Aether knows (known: {known})")
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise fail(key, "must be a table ([" + key + "])")
            for sub, item in value.items():
                kind = expected.get(sub)
                if kind is None:
                    raise fail(
                        f"{key}.{sub}",
                        f"is not a setting of [{key}] (known: " + ", ".join(sorted(expected)) + ")",
                    )
                if not isinstance(item, kind) or isinstance(item, bool):
                    raise fail(f"{key}.{sub}", f"must be {_kind_name(kind)}")
        elif not isinstance(value, expected):
            raise fail(key, f"must be {_kind_name(expected)}")

    app = data.get("app")
    if app is not None and not re.fullmatch(APP_NAME_PATTERN, app):
        raise fail("app", "must be lowercase letters, digits and '-', starting with a letter")
    build = data.get("build", {})
    deploy = data.get("deploy", {})
    for key, value in (
        ("build.command", build.get("command")),
        ("deploy.start_command", deploy.get("start_command")),
        ("deploy.release_command", deploy.get("release_command")),
    ):
        if value is not None and not value.strip():
            raise fail(key, "must not be empty")
        if value is not None and ("\0" in value or len(value) > MAX_COMMAND_LENGTH):
            raise fail(key, f"must be at most {MAX_COMMAND_LENGTH} characters, without NUL")
    replicas = deploy.get("replicas")
    if replicas is not None and not 0 <= replicas <= MAX_REPLICAS:
        raise fail("deploy.replicas", f"must be from 0 to {MAX_REPLICAS}")
    env: dict[str, str] = {}
    for name, value in data.get("env", {}).items():
        if not re.fullmatch(ENV_NAME_PATTERN, name) or name in RESERVED_ENV_NAMES:
            raise fail(f"env.{name}", "is not a variable name Aether can set")
        if not isinstance(value, str) or "\0" in value:
            raise fail(f"env.{name}", 'must be a string (quote numbers: "3")')
        env[name] = value
    return ProjectFile(
        path=path,
        app=app,
        build_command=build.get("command"),
        start_command=deploy.get("start_command"),
        release_command=deploy.get("release_command"),
        replicas=replicas,
        env=env,
    )


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", dict: "a table"}.get(kind, kind.__name__)


def _line_of(text: str, dotted: str) -> str:
    """ ":<line>" of the line that sets the key's last part, when it can be found."""
    last = dotted.rsplit(".", 1)[-1]
    pattern = re.compile(rf"^\s*(\[\s*)?[\"']?{re.escape(last)}[\"']?\s*(=|\])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return f":{number}"
    return ""
