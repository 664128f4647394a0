"""Access tokens from the organisation's OpenID provider, verified against its published keys.

A token is accepted when it is a JWT signed by a key of the issuer's JWKS with an
asymmetric algorithm that key allows (never ``none``, never an HMAC: a public key
is no secret), names the configured issuer and audience, and is within its
``nbf``/``exp`` window give or take a small clock skew. The keys are cached;
a token naming a key id the cache lacks refetches them once (at most once per
``jwks_refetch_seconds``), which is how a provider's key rotation reaches a
running API. A configurable claim lists the user's groups, which decide the role;
the subject is the token's ``sub``, namespaced so that it never names a stored
token's subject by accident.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from chalicelib.contract import MAX_SUBJECT_LENGTH, Role
from chalicelib.errors import Forbidden, ServiceUnavailable, Unauthorized
from chalicelib.observability import logger
from chalicelib.settings import OidcSettings

# What each key type may sign with. A key's own ``alg`` narrows it to that one.
_ALGORITHMS_BY_KEY_TYPE: dict[str, frozenset[str]] = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "EC": frozenset({"ES256", "ES384", "ES512"}),
    "OKP": frozenset({"EdDSA"}),
}
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
ASYMMETRIC_ALGORITHMS = frozenset().union(*_ALGORITHMS_BY_KEY_TYPE.values())
SUBJECT_NAMESPACE = "oidc:"
# A JWKS or discovery document is a few kilobytes; anything far larger is not one.
_MAX_DOCUMENT_BYTES = 1024 * 1024
_FETCH_TIMEOUT_SECONDS = 5.0

Fetch = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class Identity:
    """Who a verified access token speaks for."""

    subject: str
    role: Role
    issuer: str
    expires_at: datetime
    token_id: str


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts: the platform's own tokens never contain a dot."""
    return token.count(".") == 2


def fetch_json(url: str) -> Mapping[str, Any]:
    """GET a JSON document from the issuer (its URL was checked to be https or loopback)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            body = response.read(_MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(f"the identity provider does not answer at {url}") from exc
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise ServiceUnavailable(f"the identity provider's document at {url} is too large")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ServiceUnavailable(f"the identity provider's document at {url} is not JSON") from exc
    if not isinstance(document, dict):
        raise ServiceUnavailable(f"the identity provider's document at {url} is not an object")
    return document


class KeySet:
    """The issuer's signing keys by ``kid``, cached, refetched on an unknown id (rate-limited)."""

    def __init__(
        self,
        settings: OidcSettings,
        fetch: Fetch = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: float | None = None
        self._refetched_at: float | None = None
        self._jwks_url = settings.jwks_url
        self.fetches = 0  # how many times the JWKS was read (the tests count them)

    def get(self, kid: str) -> SigningKey | None:
        with self._lock:
            now = self._clock()
            stale = (
                self._loaded_at is None
                or now - self._loaded_at >= self._settings.jwks_max_age_seconds
            )
            if stale:
                self._load(now, keep_on_failure=self._loaded_at is not None)
            if kid in self._keys:
                return self._keys[kid]
            if stale:
                return None  # just fetched: a refetch would read the same keys
            cooling = (
                self._refetched_at is not None
                and now - self._refetched_at < self._settings.jwks_refetch_seconds
            )
            if cooling:
                return None
            self._refetched_at = now
            self._load(now, keep_on_failure=True)
            return self._keys.get(kid)

    def _load(self, now: float, keep_on_failure: bool) -> None:
        try:
            document = self._fetch(self._keys_url())
            self.fetches += 1
            self._keys = _parse_keys(document)
            self._loaded_at = now
        except ServiceUnavailable:
            if not keep_on_failure:
                raise
            # The keys we hold stay good until the issuer answers again.
            logger.warning("the identity provider's keys could not be refreshed")

    def _keys_url(self) -> str:
        if self._jwks_url is None:
            issuer = self._settings.issuer.rstrip("/")
            discovery = self._fetch(f"{issuer}/.well-known/openid-configuration")
            if discovery.get("issuer") != self._settings.issuer:
                raise ServiceUnavailable("the identity provider's discovery names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ServiceUnavailable("the identity provider's discovery names no jwks_uri")
            self._jwks_url = jwks_uri
        return self._jwks_url


@dataclass(frozen=True)
class SigningKey:
    jwk: jwt.PyJWK
    algorithms: frozenset[str]  # what this key may sign with


def _parse_keys(document: Mapping[str, Any]) -> dict[str, SigningKey]:
    """The signing keys with a ``kid`` that PyJWT can use; the rest are skipped."""
    keys: dict[str, SigningKey] = {}
    listed = document.get("keys")
    if not isinstance(listed, list):
        raise ServiceUnavailable("the identity provider's JWKS has no keys")
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in _ALGORITHMS_BY_KEY_TYPE:
            continue
        try:
            keys[entry["kid"]] = SigningKey(jwt.PyJWK(entry), _allowed_algorithms(entry))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            logger.warning("skipping an unusable key of the identity provider's JWKS")
    return keys


def _allowed_algorithms(data: Mapping[str, Any]) -> frozenset[str]:
    key_type = data.get("kty", "")
    allowed = _ALGORITHMS_BY_KEY_TYPE.get(key_type, frozenset())
    if key_type == "EC":
        allowed = allowed & {_EC_CURVES.get(data.get("crv", ""), "")}
    published = data.get("alg")
    if published is not None:
        allowed = allowed & {published}
    return allowed


class Verifier:
    """Checks access tokens for one configured issuer."""

    def __init__(self, settings: OidcSettings, keys: KeySet | None = None) -> None:
        self.settings = settings
        self.keys = keys or KeySet(settings)

    def verify(self, token: str) -> Identity:
        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized() from None
        algorithm = header.get("alg")
        kid = header.get("kid")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise Unauthorized("the token is not signed with an algorithm the issuer uses")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token names no signing key")
        signing_key = self.keys.get(kid)
        if signing_key is None:
            raise Unauthorized("the token is signed by a key the issuer does not publish")
        if algorithm not in signing_key.algorithms:
            raise Unauthorized("the token's algorithm is not the one its key signs with")
        checks_aud = settings.audience_claim == "aud"
        try:
            claims = jwt.decode(
                token,
                key=signing_key.jwk.key,
                algorithms=[algorithm],
                issuer=settings.issuer,
                audience=settings.audience if checks_aud else None,
                leeway=settings.leeway_seconds,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": checks_aud,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token is meant for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the token comes from another issuer") from None
        except jwt.InvalidTokenError:
            raise Unauthorized() from None
        if not checks_aud and claims.get(settings.audience_claim) != settings.audience:
            raise Unauthorized("the token is meant for another audience")
        return Identity(
            subject=self._subject(claims),
            role=self._role(claims),
            issuer=settings.issuer,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            token_id=f"oidc-{str(claims.get('jti') or 'token')[:32]}",
        )

    def _subject(self, claims: Mapping[str, Any]) -> str:
        sub = claims.get("sub")
        subject = f"{SUBJECT_NAMESPACE}{sub}"
        if not isinstance(sub, str) or not sub or len(subject) > MAX_SUBJECT_LENGTH:
            raise Unauthorized("the token's subject is not one the platform can name")
        return subject

    def _role(self, claims: Mapping[str, Any]) -> Role:
        raw = claims.get(self.settings.groups_claim)
        listed = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        groups = {group for group in listed if isinstance(group, str)}
        if groups & self.settings.admin_groups:
            return Role.ADMIN
        if groups & self.settings.developer_groups:
            return Role.DEVELOPER
        raise Forbidden("none of your identity provider's groups is an admin or developer group")


def auth_config(settings: OidcSettings | None) -> dict[str, Any]:
    """What ``GET /auth/config`` tells a client: enough for ``aether login`` to sign in."""
    if settings is None:
        return {"oidc": None}
    return {
        "oidc": {
            "issuer": settings.issuer,
            "client_id": settings.cli_client_id,
            "scopes": list(settings.scopes),
            "audience": settings.audience,
            "redirect_uri": settings.redirect_uri,
        }
    }
