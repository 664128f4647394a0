"""Ed25519 signing of artifact digests.

``AETHER_SIGNING_KEY`` is either the 32-byte seed as 64 hex characters or the
path of a file holding it. The signed message is the 64-character lowercase hex
digest string (not the raw 32 bytes), and the signature travels hex-encoded.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import nacl.signing

from aether_cli.atomic import write_atomic
from aether_cli.errors import ConfigError

_SEED = re.compile(r"^[0-9a-fA-F]{64}$")


def load_signing_key(value: str) -> nacl.signing.SigningKey:
    """The key named by ``AETHER_SIGNING_KEY``; a config error when unusable."""
    value = value.strip()
    if _SEED.match(value):
        return nacl.signing.SigningKey(bytes.fromhex(value))
    path = Path(value).expanduser()
    try:
        content = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise ConfigError(
            "AETHER_SIGNING_KEY is neither a 64-hex-character seed nor an existing file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the signing key file {path}: {exc}") from exc
    if not _SEED.match(content):
        raise ConfigError(f"the signing key file {path} must hold a 64-hex-character Ed25519 seed")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        from aether_cli.log import get_logger

        get_logger().warning("%s can be read by other users; run `chmod 600 %s`", path, path)
    return nacl.signing.SigningKey(bytes.fromhex(content))


def sign_digest(key: nacl.signing.SigningKey, digest_hex: str) -> str:
    """Hex of the detached Ed25519 signature over the hex digest string."""
    return key.sign(digest_hex.lower().encode("ascii")).signature.hex()


def public_key_hex(key: nacl.signing.SigningKey) -> str:
    return bytes(key.verify_key).hex()


KEY_FILE_MODE = 0o600


def write_new_key(path: Path) -> nacl.signing.SigningKey:
    """A fresh Ed25519 seed in a new file, private from creation; an existing file is kept."""
    import os

    key = nacl.signing.SigningKey.generate()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, KEY_FILE_MODE)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists; a signing key is never replaced",
            hint="pass --out with another path, or remove that file yourself",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), KEY_FILE_MODE)  # whatever the umask
        handle.write(bytes(key).hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def write_signature(path: Path, signature_hex: str) -> None:
    """Write ``<artifact>.sig`` whole or not at all."""
    write_atomic(path, signature_hex + "\n")
