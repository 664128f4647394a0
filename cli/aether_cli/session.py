"""The login session: ``${XDG_CACHE_HOME:-~/.cache}/aether/session.json``, mode 0600.

The file holds a bearer token (and, after signing in with an identity provider, its refresh
token and the access token's expiry), so it is never readable by anyone else, not even
for an instant: it is created under a temporary name with mode 0600 by
``os.open`` and renamed over the old one (readers see the old or the new file,
never half of one).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from aether_cli.atomic import write_atomic
from aether_cli.errors import ConfigError, LocalIOError

SESSION_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True)
class Session:
    api_url: str
    token: str
    subject: str | None = None
    role: str | None = None
    token_id: str | None = None
    created_at: str | None = None
    # Signed in with an identity provider (``aether_cli.login``): how to refresh and revoke.
    issuer: str | None = None
    client_id: str | None = None
    scopes: list[str] | None = None
    refresh_token: str | None = None
    expires_at: str | None = None


def cache_root(env: Mapping[str, str]) -> Path:
    """Where Aether keeps what it downloads (Node binaries, package managers):
    ``$AETHER_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/aether``."""
    value = env.get("AETHER_CACHE_DIR", "")
    if value and Path(value).is_absolute():
        return Path(value)
    return xdg_dir(env, "XDG_CACHE_HOME", ".cache") / "aether"


def xdg_dir(env: Mapping[str, str], variable: str, fallback: str) -> Path:
    """An XDG base directory; relative values are ignored, as the XDG Base Directory specification requires."""
    value = env.get(variable, "")
    if value and Path(value).is_absolute():
        return Path(value)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / fallback


def session_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return xdg_dir(env, "XDG_CACHE_HOME", ".cache") / "aether" / "session.json"


def load(path: Path) -> Session | None:
    """The saved session, or None when there is none."""
    import json

    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalIOError(f"cannot read the session file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
        session = Session(
            api_url=str(data["api_url"]),
            token=str(data["token"]),
            subject=data.get("subject"),
            role=data.get("role"),
            token_id=data.get("token_id"),
            created_at=data.get("created_at"),
            issuer=data.get("issuer"),
            client_id=data.get("client_id"),
            scopes=data.get("scopes"),
            refresh_token=data.get("refresh_token"),
            expires_at=data.get("expires_at"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the session file {path} is damaged", hint="run `aether logout` then `aether login`"
        ) from exc
    return session


def is_private(path: Path) -> bool:
    """True when neither group nor others can read or write the file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True
    return not mode & (stat.S_IRWXG | stat.S_IRWXO)


def save(path: Path, session: Session) -> None:
    import json

    body = json.dumps(asdict(session), indent=2, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        write_atomic(path, body, mode=SESSION_MODE, durable=True)
    except OSError as exc:
        raise LocalIOError(f"cannot write the session file {path}: {exc.strerror}") from exc


def delete(path: Path) -> bool:
    """Remove the session; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise LocalIOError(f"cannot remove the session file {path}: {exc.strerror}") from exc
    return True
