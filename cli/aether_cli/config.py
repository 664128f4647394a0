"""Settings of one invocation: config file, session and environment, in that order of weight.

- Config file ``${XDG_CONFIG_HOME:-~/.config}/aether/config.toml``::

      api_url = "https://aether.example.com"
      default_app = "billing"
      namespace = "aether-apps"

- Environment, winning over both files: ``AETHER_API_URL``, ``AETHER_TOKEN``,
  ``AETHER_DEFAULT_NAMESPACE``, ``AETHER_SIGNING_KEY``.
- The API URL is ``AETHER_API_URL``, else the URL of the session (where you
  logged in), else the config file's. The session's token is only sent to the
  URL it was issued for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aether_cli import session as session_file
from aether_cli.contract import APP_NAME_PATTERN
from aether_cli.errors import ConfigError

DEFAULT_NAMESPACE = "aether-apps"
_APP_NAME = re.compile(APP_NAME_PATTERN)
APP_NAME_RULE = "lowercase letters, digits and '-', starting with a letter, at most 63 characters"
_KNOWN_KEYS = {"api_url", "default_app", "namespace"}


@dataclass(frozen=True)
class FileConfig:
    path: Path
    api_url: str | None = None
    default_app: str | None = None
    namespace: str | None = None


CredentialsFrom = Literal["environment", "session"]
# What to do about a refused token depends on where it came from.
REFUSAL_HINTS: dict[CredentialsFrom, str] = {
    "environment": "AETHER_TOKEN is set in this environment and overrides any `aether login`: "
    "correct it, or unset it to use your login",
    "session": "run `aether login` to refresh the token",
}


@dataclass(frozen=True)
class Settings:
    config: FileConfig
    session_path: Path
    session: session_file.Session | None
    api_url: str | None
    token: str | None
    credentials_from: CredentialsFrom | None
    namespace: str
    signing_key: str | None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return session_file.xdg_dir(env, "XDG_CONFIG_HOME", ".config") / "aether" / "config.toml"


def load_file_config(path: Path) -> FileConfig:
    """Read the TOML config; a missing file is an empty config."""
    import tomllib

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return FileConfig(path=path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    values: dict[str, str] = {}
    for key, value in data.items():
        if key not in _KNOWN_KEYS:
            _warn(f"{path}: unknown key {key!r} ignored (known: {', '.join(sorted(_KNOWN_KEYS))})")
            continue
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: {key} must be a non-empty string")
        values[key] = value.strip()
    if "default_app" in values and not is_app_name(values["default_app"]):
        raise ConfigError(f"{path}: default_app {values['default_app']!r} is not a valid app name")
    return FileConfig(path=path, **values)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    config = load_file_config(config_path(env))
    spath = session_file.session_path(env)
    saved = session_file.load(spath)
    if saved is not None and not session_file.is_private(spath):
        _warn(f"{spath} can be read by other users; run `chmod 600 {spath}`")
    env_url = env.get("AETHER_API_URL", "").strip()
    api_url = env_url or (saved.api_url if saved else None) or config.api_url
    token = env.get("AETHER_TOKEN", "").strip() or None
    source: CredentialsFrom | None = "environment" if token else None
    if token is None and saved is not None and api_url and same_url(saved.api_url, api_url):
        token, source = saved.token, "session"
    return Settings(
        config=config,
        session_path=spath,
        session=saved,
        api_url=normalize_url(api_url) if api_url else None,
        token=token,
        credentials_from=source,
        namespace=env.get("AETHER_DEFAULT_NAMESPACE", "").strip()
        or config.namespace
        or DEFAULT_NAMESPACE,
        signing_key=env.get("AETHER_SIGNING_KEY", "").strip() or None,
    )


def require_credentials(settings: Settings) -> tuple[str, str]:
    """The API URL and token to call with, or a config error saying how to get them."""
    if not settings.api_url:
        raise ConfigError(
            "no control plane configured",
            hint="run `aether login --api-url URL`, set AETHER_API_URL, "
            f"or set api_url in {settings.config.path}",
        )
    if not settings.token:
        raise ConfigError(
            f"not logged in to {settings.api_url}",
            hint="run `aether login` or set AETHER_TOKEN",
        )
    return settings.api_url, settings.token


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"API URL {url!r} must start with http:// or https://")
    return url


def same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def is_app_name(name: str) -> bool:
    return bool(_APP_NAME.fullmatch(name))


def resolve_app_name(explicit: str | None, settings: Settings, project_dir: Path) -> str:
    """``--app``, else the config's ``default_app``, else ``package.json``'s ``name``."""
    if explicit or settings.config.default_app:
        return app_name_from(explicit, settings, None)
    return app_name_from(None, settings, _package_name(project_dir / "package.json"))


def app_name_from(explicit: str | None, settings: Settings, package_name: str | None) -> str:
    """Pick the app name once ``package.json``'s name is known (or absent)."""
    if explicit:
        return explicit
    if settings.config.default_app:
        return settings.config.default_app
    if package_name is None:
        raise ConfigError(
            'no app name: package.json has no "name"',
            hint="pass --app NAME or set default_app in the config file",
        )
    if not is_app_name(package_name):
        raise ConfigError(
            f"package.json name {package_name!r} is not a valid app name ({APP_NAME_RULE})",
            hint="pass --app NAME",
        )
    return package_name


def _package_name(manifest: Path) -> str | None:
    import json

    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {manifest}: {exc}", hint="pass --app NAME") from exc
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def _warn(message: str) -> None:
    from aether_cli.log import get_logger

    get_logger().warning(message)
