"""The embedded stack's identity provider: oidc-provider (from npm) run by node on loopback.

It runs on the contract's default runtime (a supported LTS line, whatever ``node`` the machine
has), installed like the data plane's Node: ``aether_cli.nodejs``, from the npm registry,
SHA-512 verified, cached once per machine. ``make up`` installs its one npm dependency once
(``npm ci``, like any lockfile), then writes
the provider's configuration (``oidc/provider.json``, mode 0600) from what the state
directory keeps: its signing keys, a cookie secret, its sessions and refresh tokens
(``oidc/sessions.json``) and two users, an admin and a developer,
each with a password made on the first start. The users' credentials go to ``local.env``
beside the admin token; the API is told to trust the provider's access tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aether_cli.nodejs import NodeInstall

PROVIDER_DIR = Path(__file__).resolve().with_name("oidc-provider")
CLI_CLIENT_ID = "aether-cli"
# A resource indicator (RFC 8707) is an absolute URI.
AUDIENCE = "urn:aether:api"
SCOPES = "openid profile offline_access"
# Short: a leaked access token is good for minutes; the CLI refreshes it before it ends.
ACCESS_TOKEN_TTL_SECONDS = 600
REFRESH_TOKEN_TTL_SECONDS = 14 * 24 * 3600
ROLES = ("admin", "developer")
# scrypt's cost: what the provider's login form pays per attempt.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class User:
    role: str
    username: str
    password: str
    sub: str


def installed() -> bool:
    return (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()


def install() -> None:
    """``npm ci`` the provider's lockfile once; afterwards it runs offline."""
    if installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the identity provider needs npm on PATH (to install it once)")
    print("  oidc: installing oidc-provider from the npm registry (once)")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=PROVIDER_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm ci in {PROVIDER_DIR} failed:\n{done.stderr[-2000:]}")


def issuer_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def api_environment(port: int) -> dict[str, str]:
    """What the API needs to trust the provider's access tokens."""
    return {
        "AETHER_OIDC_ISSUER": issuer_url(port),
        "AETHER_OIDC_AUDIENCE": AUDIENCE,
        "AETHER_OIDC_CLI_CLIENT_ID": CLI_CLIENT_ID,
        "AETHER_OIDC_SCOPES": SCOPES,
    }


def users(state: Path) -> list[User]:
    """The two local users, made once: their passwords stay as long as the state directory."""
    path = state / "users.json"
    if path.exists():
        return [User(**entry) for entry in json.loads(path.read_text())]
    made = [
        User(role, f"{role}@aether.local", secrets.token_urlsafe(18), str(uuid.uuid4()))
        for role in ROLES
    ]
    _write_private(path, json.dumps([vars(user) for user in made], indent=1))
    return made


# Where local.env puts each role's credentials.
CREDENTIAL_VARIABLES = {
    "admin": ("AETHER_LOCAL_ADMIN_USER", "AETHER_LOCAL_ADMIN_PASSWORD"),
    "developer": ("AETHER_LOCAL_DEVELOPER_USER", "AETHER_LOCAL_DEVELOPER_PASSWORD"),
}


def credentials_environment(made: list[User]) -> dict[str, str]:
    env: dict[str, str] = {}
    for user in made:
        user_variable, password_variable = CREDENTIAL_VARIABLES[user.role]
        env[user_variable] = user.username
        env[password_variable] = user.password
    return env


def write_config(state: Path, port: int) -> Path:
    """The provider's configuration from the state directory's keys, secret and users."""
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = _signing_keys(state / "signing-keys.json")
    cookie_secret = state / "cookie-secret"
    if not cookie_secret.exists():
        _write_private(cookie_secret, secrets.token_urlsafe(32))
    config = {
        "issuer": issuer_url(port),
        "port": port,
        "client_id": CLI_CLIENT_ID,
        "audience": AUDIENCE,
        "access_token_ttl": ACCESS_TOKEN_TTL_SECONDS,
        "refresh_token_ttl": REFRESH_TOKEN_TTL_SECONDS,
        "keys": keys,
        "cookie_secret": cookie_secret.read_text(),
        "users": [_hashed(user) for user in users(state)],
        # Sessions, grants and refresh tokens: they outlive a restart.
        "state_file": str(state / "sessions.json"),
    }
    path = state / "provider.json"
    _write_private(path, json.dumps(config, indent=1))
    return path


def runtime_major() -> int:
    """The Node.js major the provider runs on: the contract's default runtime."""
    from chalicelib.contract import NODE_LINES, default_runtime

    wanted = default_runtime()
    return next(line.major for line in NODE_LINES if line.runtime == wanted)


def node(cache_dir: Path | None = None) -> NodeInstall:
    """That major's ``node``: the machine's when it is that major, else one from the cache or
    the npm registry. Exits with the reason when none can be had."""
    from aether_cli.nodejs import NodeError, ensure_node

    major = runtime_major()
    try:
        return ensure_node(major, cache_dir=cache_dir, log=lambda line: print(f"  oidc: {line}"))
    except NodeError as error:
        raise SystemExit(f"the identity provider needs Node.js {major}: {error}") from None


def command(config: Path, runtime: NodeInstall) -> list[str]:
    return [str(runtime.node), str(PROVIDER_DIR / "provider.mjs"), str(config)]


def rotate_signing_key(state: Path) -> str:
    """Put a new signing key first (it signs from the next start); the old ones stay published
    so that tokens they signed still verify. Returns the new key's id."""
    path = state / "signing-keys.json"
    keys = _signing_keys(path)
    new = _new_signing_key()
    _write_private(path, json.dumps([new, *keys[:2]], indent=1))
    return str(new["kid"])


def _signing_keys(path: Path) -> list[dict[str, Any]]:
    if path.exists():
        loaded: list[dict[str, Any]] = json.loads(path.read_text())
        return loaded
    keys = [_new_signing_key()]
    _write_private(path, json.dumps(keys, indent=1))
    return keys


def _new_signing_key() -> dict[str, Any]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private))
    return {**jwk, "kid": uuid.uuid4().hex[:16], "alg": "ES256", "use": "sig"}


def _hashed(user: User) -> dict[str, Any]:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        user.password.encode(),
        salt=salt,
        n=_SCRYPT["n"],
        r=_SCRYPT["r"],
        p=_SCRYPT["p"],
        dklen=_SCRYPT["dklen"],
    )
    groups = [user.role]
    return {
        "username": user.username,
        "sub": user.sub,
        "groups": groups,
        "salt": salt.hex(),
        "password_scrypt": digest.hex(),
    }


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(path)
