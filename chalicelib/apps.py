"""Applications and their Ed25519 public keys."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import payloads
from chalicelib.auth import Principal, authorize_app, require_human
from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.records import Application, PublicKey, is_condition_failure, iso, new_id


def load(principal: Principal, name: str) -> Application:
    """The app named ``name`` if the principal may act on it; else 404, as for a missing one.

    An app being destroyed is refused (409): nothing may be added to what its teardown
    removes. Only the teardown itself (``authorized``) still acts on it.
    """
    app = authorized(principal, name)
    if app.destroying_since is not None:
        raise Conflict(f"application {name} is being destroyed; destroy it again to finish")
    return app


def authorized(principal: Principal, name: str) -> Application:
    """The app named ``name``, in whatever state, if the principal may act on it; else 404."""
    require_human(principal)
    payloads.app_name(name, "app name")
    try:
        app = Application.get(name)
    except DoesNotExist:
        raise NotFound(f"application {name} not found") from None
    authorize_app(principal, app)
    return app


def register(principal: Principal, body: dict[str, Any]) -> Application:
    require_human(principal)
    name = payloads.app_name(payloads.required(body, "name"), "name")
    app = Application(
        name,
        owner=principal.subject,
        require_signature=payloads.boolean(body, "require_signature", False),
    )
    try:
        app.save(condition=Application.name.does_not_exist())
    except PutError as exc:
        if is_condition_failure(exc):
            raise Conflict(f"application name {name} exists") from exc
        raise
    return app


def visible_to(principal: Principal) -> list[Application]:
    require_human(principal)
    scan = (
        Application.scan()
        if principal.is_admin
        else Application.scan(Application.owner == principal.subject)
    )
    return sorted(scan, key=lambda app: app.name)


def app_json(app: Application, latest_deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": app.name,
        "owner": app.owner,
        "require_signature": app.require_signature,
        "created_at": iso(app.created_at),
        "latest_deployment": latest_deployment,
        "preview_of": app.preview_of,
        "expires_at": iso(app.expires_at),
    }


def add_public_key(principal: Principal, app_name: str, body: dict[str, Any]) -> PublicKey:
    app = load(principal, app_name)
    key_hex = payloads.public_key_hex(payloads.required(body, "public_key_hex"))
    _ensure_ed25519_point(key_hex)
    key = PublicKey(app.name, new_id(), public_key_hex=key_hex)
    key.save()
    return key


def _ensure_ed25519_point(key_hex: str) -> None:
    """A key whose signatures prove something: a canonical point of the prime-order group.

    The identity, the all-zero encoding and the other points of small order are accepted by
    a plain decoding, yet a signature under them can be forged without any private key.
    """
    from nacl.bindings import crypto_core_ed25519_is_valid_point
    from nacl.exceptions import CryptoError
    from nacl.signing import VerifyKey

    try:
        point = bytes.fromhex(key_hex)
        VerifyKey(point)
    except (CryptoError, ValueError) as exc:
        raise BadRequest("public_key_hex is not a valid Ed25519 public key") from exc
    if not crypto_core_ed25519_is_valid_point(point):
        raise BadRequest("public_key_hex is a low-order Ed25519 point, which anyone can sign for")


def public_keys(principal: Principal, app_name: str) -> list[PublicKey]:
    app = load(principal, app_name)
    return sorted(PublicKey.query(app.name), key=lambda key: key.created_at)


def deactivate_public_key(principal: Principal, app_name: str, key_id: str) -> PublicKey:
    app = load(principal, app_name)
    try:
        key = PublicKey.get(app.name, key_id)
    except DoesNotExist:
        raise NotFound(f"public key {key_id} not found for {app.name}") from None
    key.update(actions=[PublicKey.active.set(False)])
    return key


def public_key_json(key: PublicKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "app_name": key.app_name,
        "public_key_hex": key.public_key_hex,
        "active": key.active,
        "created_at": iso(key.created_at),
    }
