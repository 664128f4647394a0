"""Bearer tokens: issued, stored as SHA-256 only, compared in constant time; or an identity
provider's access tokens (``chalicelib.oidc``) when one is configured."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib import oidc, payloads
from chalicelib.contract import (
    DEFAULT_TOKEN_DAYS,
    ISSUABLE_ROLES,
    MAX_SUBJECT_LENGTH,
    MAX_TOKEN_DAYS,
    Role,
)
from chalicelib.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from chalicelib.records import (
    ApiToken,
    Application,
    is_condition_failure,
    iso,
    new_id,
    transaction,
    utcnow,
)

TOKEN_PREFIX = "aet"  # noqa: S105  (a marker, not a secret)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    token_id: str
    app_scope: str | None = None
    # A stored token's or an access token's (an environment token is neither stored nor expires).
    expires_at: datetime | None = None
    stored: bool = False
    # Who vouches for an access token; None for the platform's own tokens.
    issuer: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class IssuedToken:
    record: ApiToken
    secret: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    subject: str,
    role: Role,
    expires_at: datetime | None = None,
    app_scope: str | None = None,
    parent_token_id: str | None = None,
) -> IssuedToken:
    """Create a token; the secret exists only in the return value."""
    issued = _new_token(subject, role, expires_at, app_scope, parent_token_id)
    issued.record.save(condition=ApiToken.token_id.does_not_exist())
    return issued


def _new_token(
    subject: str,
    role: Role,
    expires_at: datetime | None,
    app_scope: str | None,
    parent_token_id: str | None,
) -> IssuedToken:
    """A token not yet saved."""
    token_id = new_id().replace("-", "")[:16]
    secret = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    record = ApiToken(
        token_id,
        token_sha256=token_sha256(secret),
        subject=subject,
        role=role,
        app_scope=app_scope,
        expires_at=expires_at,
        parent_token_id=parent_token_id,
    )
    return IssuedToken(record, secret)


def authenticate(
    authorization: str | None,
    env_token_hashes: tuple[str, ...],
    verifier: oidc.Verifier | None = None,
) -> Principal:
    """The principal behind an ``Authorization: Bearer`` header, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized()
    presented = token_sha256(token)
    for index, expected in enumerate(env_token_hashes):
        if hmac.compare_digest(presented, expected):
            return Principal(subject="admin", role=Role.ADMIN, token_id=f"env-{index + 1}")
    if verifier is not None and oidc.looks_like_jwt(token):
        identity = verifier.verify(token)
        return Principal(
            identity.subject,
            identity.role,
            identity.token_id,
            expires_at=identity.expires_at,
            issuer=identity.issuer,
        )
    return _stored_principal(token, presented)


def _stored_principal(token: str, presented_sha256: str) -> Principal:
    prefix, _, rest = token.partition("_")
    token_id = rest.partition("_")[0]
    if prefix != TOKEN_PREFIX or not token_id:
        raise Unauthorized()
    try:
        record = ApiToken.get(token_id)
    except DoesNotExist:
        raise Unauthorized() from None
    if not hmac.compare_digest(presented_sha256, record.token_sha256):
        raise Unauthorized()
    if record.revoked or (record.expires_at is not None and record.expires_at <= utcnow()):
        raise Unauthorized("the token has expired or was revoked")
    return Principal(
        record.subject,
        record.role,
        record.token_id,
        record.app_scope,
        expires_at=record.expires_at,
        stored=True,
    )


def authorize_download(principal: Principal, app: Application) -> None:
    """The app's pull token, or a person who may act on the app."""
    if principal.role == Role.PULLER:
        if principal.app_scope != app.name:
            raise Forbidden("this pull token belongs to another application")
        return
    authorize_app(principal, app)


def require_human(principal: Principal) -> None:
    """Pull tokens only download artifacts; everything else needs a person's token."""
    if principal.role == Role.PULLER:
        raise Forbidden("a pull token may only download its app's artifacts")


def authorize_app(principal: Principal, app: Application) -> None:
    """Admins act on every app; developers only on the apps they own.

    Another owner's app answers as a missing one would: a 403 would confirm that it exists.
    """
    require_human(principal)
    if not principal.is_admin and app.owner != principal.subject:
        raise NotFound(f"application {app.name} not found")


def issue_for(principal: Principal, body: dict[str, Any]) -> IssuedToken:
    """``POST /tokens``: admins issue any token; developers their own developer tokens."""
    require_human(principal)
    subject = payloads.optional(body, "subject", principal.subject)
    role = payloads.optional(body, "role", Role.DEVELOPER)
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_LENGTH:
        raise BadRequest(
            f"subject must be a non-empty string of at most {MAX_SUBJECT_LENGTH} characters"
        )
    if role not in ISSUABLE_ROLES:
        raise BadRequest(f"role must be one of {', '.join(ISSUABLE_ROLES)}")
    if not principal.is_admin and (subject != principal.subject or role != Role.DEVELOPER):
        raise Forbidden("developers may only issue developer tokens for themselves")
    expires_at = utcnow() + timedelta(days=_lifetime_days(body))
    if not principal.stored:
        return issue_token(subject, Role(role), expires_at=expires_at)
    # A token cannot outlive the one that issued it, nor survive its revocation.
    if principal.expires_at is not None:
        expires_at = min(expires_at, principal.expires_at)
    issued = issue_token(
        subject, Role(role), expires_at=expires_at, parent_token_id=principal.token_id
    )
    # Revoked while this was issued: the revocation's sweep may have missed the new child.
    if ApiToken.get(principal.token_id, consistent_read=True).revoked:
        _revoke_with_descendants(issued.record)
        raise Unauthorized("the token has expired or was revoked")
    return issued


def _lifetime_days(body: dict[str, Any]) -> int:
    return payloads.integer(
        payloads.optional(body, "expires_in_days", DEFAULT_TOKEN_DAYS),
        "expires_in_days",
        1,
        MAX_TOKEN_DAYS,
    )


def rotate_for(principal: Principal, token_id: str, body: dict[str, Any]) -> IssuedToken:
    """``POST /tokens/{token_id}/rotate``: a replacement for a stored token; the old one is
    revoked.

    The replacement takes the old token's place: its subject and role, issued by the same
    token (so it never outlives that one, and is revoked with it), with a fresh lifetime.
    Saving it and revoking the old one are one transaction, conditioned on the old one being
    neither revoked nor expired and its issuer not revoked: of two rotations of one token,
    one wins and the other is refused. What the old token issued is revoked with it, as a
    revocation does; the calling token is spared.
    """
    require_human(principal)
    days = _lifetime_days(body)
    record = _visible(principal, token_id)
    if record.role == Role.PULLER:
        raise BadRequest(f"token {token_id} is a pull token: the platform rotates those")
    now = utcnow()
    if record.revoked:
        raise Conflict(f"token {token_id} was revoked: issue a new one instead")
    if record.expires_at is not None and record.expires_at <= now:
        raise Conflict(
            f"token {token_id} expired at {iso(record.expires_at)}: issue a new one instead"
        )
    expires_at = now + timedelta(days=days)
    parent = _issuer_of(record)
    if parent is not None and parent.expires_at is not None:
        expires_at = min(expires_at, parent.expires_at)
    replacement = _new_token(
        record.subject, record.role, expires_at, record.app_scope, record.parent_token_id
    )
    alive = (ApiToken.revoked == False) & (  # noqa: E712
        ApiToken.expires_at.does_not_exist() | (ApiToken.expires_at > now)
    )
    try:
        with transaction() as write:
            write.save(replacement.record, condition=ApiToken.token_id.does_not_exist())
            write.update(
                record,
                actions=[ApiToken.revoked.set(True)],
                condition=alive & (ApiToken.token_sha256 == record.token_sha256),
            )
            if parent is not None:
                write.condition_check(
                    ApiToken,
                    parent.token_id,
                    condition=ApiToken.revoked == False,  # noqa: E712
                )
    except TransactWriteError as exc:
        if not is_condition_failure(exc):
            raise
        raise Conflict(
            f"token {token_id} was revoked, rotated or expired meanwhile: nothing was issued"
        ) from None
    spared = principal.token_id if principal.token_id != record.token_id else None
    _revoke_with_descendants(record, spared)
    return replacement


def _visible(principal: Principal, token_id: str) -> ApiToken:
    """The token, when the caller may see it; another subject's is as missing as an unknown one."""
    try:
        record = ApiToken.get(token_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"token {token_id} not found") from None
    if not principal.is_admin and record.subject != principal.subject:
        raise NotFound(f"token {token_id} not found")
    return record


def _issuer_of(record: ApiToken) -> ApiToken | None:
    if record.parent_token_id is None:
        return None
    try:
        return ApiToken.get(record.parent_token_id, consistent_read=True)
    except DoesNotExist:
        return None


def list_for(principal: Principal) -> list[ApiToken]:
    require_human(principal)
    tokens = (
        ApiToken.scan()
        if principal.is_admin
        else ApiToken.scan(ApiToken.subject == principal.subject)
    )
    return sorted((t for t in tokens if t.role != Role.PULLER), key=lambda t: t.created_at)


def revoke_for(principal: Principal, token_id: str) -> ApiToken:
    """Revoke a token and every token it issued, and theirs in turn.

    The calling token is spared when it revokes an ancestor: that is how a token is rotated
    (issue the new one with the old, then revoke the old one with the new).
    """
    require_human(principal)
    record = _visible(principal, token_id)
    spared = principal.token_id if principal.token_id != record.token_id else None
    _revoke_with_descendants(record, spared)
    return record


def _revoke_with_descendants(record: ApiToken, spared: str | None = None) -> None:
    pending = [record]
    while pending:
        token = pending.pop()
        token.update(actions=[ApiToken.revoked.set(True)])
        children = ApiToken.scan(
            (ApiToken.parent_token_id == token.token_id) & (ApiToken.revoked == False),  # noqa: E712
            consistent_read=True,
        )
        pending.extend(child for child in children if child.token_id != spared)


def token_json(record: ApiToken) -> dict[str, Any]:
    return {
        "token_id": record.token_id,
        "subject": record.subject,
        "role": record.role,
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "revoked": record.revoked,
        "issued_by": record.parent_token_id,
    }
