"""Signing in with the organisation's identity provider (OAuth 2.0 for native apps).

The control plane's ``GET /auth/config`` names the issuer, the CLI's client id and its
scopes; the issuer's discovery document names its endpoints. Two ways to sign in:

- Authorization Code with PKCE (RFC 7636) through a loopback redirect (RFC 8252): the CLI
  listens on ``127.0.0.1`` on a port of its own, opens the browser at the provider's
  sign-in page and takes the code the provider redirects back with.
- The Device Authorization Grant (RFC 8628), where no browser can be opened: the CLI
  shows a URL and a code to enter on any device, and polls until the user has.

The tokens are kept in the session file (mode 0600). The access token is short-lived;
``SessionTokens`` refreshes it before it expires, under a lock so that two commands never
spend the same (rotating) refresh token. Logging out revokes the refresh token (RFC 7009).
Nothing here logs a token or a code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import os
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from aether_cli import session as session_file
from aether_cli.errors import AetherError, ConfigError, NetworkError

# Refresh when less than this is left: a command's next request never carries a token that
# expires on the way, and clocks a little apart still agree.
REFRESH_MARGIN = timedelta(seconds=60)
# How long a user has to finish signing in, in the browser or on another device.
SIGN_IN_TIMEOUT_SECONDS = 300.0
HTTP_TIMEOUT = (5.0, 30.0)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class SignInError(AetherError):
    """The provider refused, the user gave up, or the flow timed out."""

    exit_code = ConfigError.exit_code
    default_code = "sign_in_failed"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    scopes: tuple[str, ...]
    authorization_endpoint: str | None
    token_endpoint: str
    device_authorization_endpoint: str | None
    revocation_endpoint: str | None
    # An exact loopback redirect the provider insists on; None: any port on 127.0.0.1.
    redirect_uri: str | None = None


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None


def auth_config(api_url: str) -> dict[str, Any] | None:
    """The control plane's identity provider, or None when it takes stored tokens only
    (or is too old to say)."""
    try:
        response = requests.get(f"{api_url}/auth/config", timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise NetworkError(f"cannot reach {api_url}: {type(exc).__name__}") from exc
    if response.status_code == 404:
        return None
    body = _json(response, f"{api_url}/auth/config")
    oidc = body.get("oidc")
    return oidc if isinstance(oidc, dict) else None


def discover(config: Mapping[str, Any]) -> Provider:
    """The issuer's endpoints, from its discovery document."""
    issuer = str(config["issuer"])
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise NetworkError(f"cannot reach the identity provider {issuer}") from exc
    document = _json(response, url)
    if document.get("issuer") != issuer:
        raise SignInError(f"the identity provider at {issuer} names another issuer")
    token_endpoint = document.get("token_endpoint")
    if not isinstance(token_endpoint, str):
        raise SignInError(f"the identity provider at {issuer} names no token endpoint")
    return Provider(
        issuer=issuer,
        client_id=str(config["client_id"]),
        scopes=tuple(str(s) for s in config.get("scopes") or ("openid",)),
        authorization_endpoint=document.get("authorization_endpoint"),
        token_endpoint=token_endpoint,
        device_authorization_endpoint=document.get("device_authorization_endpoint"),
        revocation_endpoint=document.get("revocation_endpoint"),
        redirect_uri=config.get("redirect_uri") or None,
    )


def can_open_browser(env: Mapping[str, str]) -> bool:
    """A browser the user will see: one named by BROWSER, a desktop session, or macOS/Windows.
    Over SSH or in a container there is none, and a console browser would take the terminal."""
    if env.get("BROWSER"):
        return True
    if sys.platform in {"darwin", "win32"}:
        return not env.get("SSH_CONNECTION")
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


# -- Authorization Code with PKCE over a loopback redirect ------------------------------------


def browser_sign_in(
    provider: Provider,
    say: Callable[[str], None],
    open_url: Callable[[str], bool] = webbrowser.open,
    timeout: float = SIGN_IN_TIMEOUT_SECONDS,
) -> Tokens:
    if provider.authorization_endpoint is None:
        raise SignInError("the identity provider has no authorization endpoint")
    verifier = secrets.token_urlsafe(64)
    challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(24)
    fixed = urlsplit(provider.redirect_uri) if provider.redirect_uri else None
    path = (fixed.path or "/") if fixed else "/callback"
    with _loopback_receiver((fixed.port or 0) if fixed else 0, path) as receiver:
        redirect_uri = provider.redirect_uri or f"http://127.0.0.1:{receiver.port}{path}"
        url = f"{provider.authorization_endpoint}?" + urlencode(
            {
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(provider.scopes),
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        say(f"Opening your browser to sign in at {provider.issuer} ...")
        say(f"If it does not open, visit: {url}")
        open_url(url)
        query = receiver.wait(timeout)
    if query is None:
        raise SignInError("sign-in timed out: no answer came back from the browser")
    if query.get("state") != state:
        raise SignInError("the sign-in answer does not match this sign-in (state)")
    if "iss" in query and query["iss"] != provider.issuer:
        raise SignInError("the sign-in answer comes from another issuer")
    if "error" in query:
        raise SignInError(f"the identity provider refused: {query['error']}")
    if "code" not in query:
        raise SignInError("the sign-in answer has no authorization code")
    return _token_request(
        provider,
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


class _Receiver:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.port: int = server.server_address[1]
        self.query: dict[str, str] | None = None
        self.done = threading.Event()

    def wait(self, timeout: float) -> dict[str, str] | None:
        self.done.wait(timeout)
        return self.query


@contextlib.contextmanager
def _loopback_receiver(port: int, path: str) -> Iterator[_Receiver]:
    """One HTTP listener on 127.0.0.1 (never another interface), for the one redirect."""
    holder: list[_Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            receiver = holder[0]
            if parts.path != path or receiver.done.is_set():
                self.send_error(404)
                return
            receiver.query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            ok = "code" in receiver.query
            text = (
                "Signed in to Aether. You can close this window."
                if ok
                else f"Sign-in failed: {html.escape(receiver.query.get('error', 'no code'))}"
            )
            body = f"<!DOCTYPE html><title>Aether</title><p>{text}</p>".encode()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            receiver.done.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the query holds the code: never print it

    try:
        server = HTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise SignInError(f"cannot listen on 127.0.0.1:{port} for the sign-in: {exc}") from exc
    holder.append(_Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- the Device Authorization Grant -----------------------------------------------------------


def device_sign_in(
    provider: Provider,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = SIGN_IN_TIMEOUT_SECONDS,
) -> Tokens:
    if provider.device_authorization_endpoint is None:
        raise SignInError(
            "the identity provider does not offer device sign-in",
            hint="run `aether login` where a browser can open, or use `aether login --token`",
        )
    answer = _post(
        provider.device_authorization_endpoint,
        {"client_id": provider.client_id, "scope": " ".join(provider.scopes)},
    )
    body = _json(answer, provider.device_authorization_endpoint)
    if answer.status_code != 200 or "device_code" not in body:
        raise SignInError(f"the identity provider refused device sign-in: {_reason(body)}")
    where = body.get("verification_uri_complete") or body.get("verification_uri")
    say(f"To sign in, visit {body.get('verification_uri')} and enter the code {body['user_code']}")
    if where != body.get("verification_uri"):
        say(f"or open {where}")
    interval = float(body.get("interval") or 5)
    deadline = time.monotonic() + min(timeout, float(body.get("expires_in") or timeout))
    while time.monotonic() < deadline:
        sleep(interval)
        response = _post(
            provider.token_endpoint,
            {
                "grant_type": DEVICE_GRANT,
                "device_code": body["device_code"],
                "client_id": provider.client_id,
            },
        )
        polled = _json(response, provider.token_endpoint)
        if response.status_code == 200:
            return _tokens(polled)
        error = polled.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5  # as RFC 8628 asks
            continue
        raise SignInError(f"device sign-in ended: {_reason(polled)}")
    raise SignInError("device sign-in timed out: the code was not entered in time")


# -- refresh and revocation -------------------------------------------------------------------


def refresh(provider: Provider, refresh_token: str) -> Tokens:
    tokens = _token_request(
        provider, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )
    # A provider that does not rotate refresh tokens answers without one: keep the old.
    return tokens if tokens.refresh_token else replace(tokens, refresh_token=refresh_token)


def revoke(provider: Provider, token: str, hint: str) -> bool:
    """RFC 7009; False when the provider has no revocation endpoint."""
    if provider.revocation_endpoint is None:
        return False
    response = _post(
        provider.revocation_endpoint,
        {"token": token, "token_type_hint": hint, "client_id": provider.client_id},
    )
    if response.status_code != 200:
        raise SignInError(f"the identity provider did not revoke the token: {response.status_code}")
    return True


def provider_of(saved: session_file.Session) -> Provider:
    if not saved.issuer or not saved.client_id:
        raise ConfigError("this login was made with a token, not with an identity provider")
    return discover(
        {"issuer": saved.issuer, "client_id": saved.client_id, "scopes": saved.scopes or []}
    )


class SessionTokens:
    """The session's access token, refreshed before it expires; call it for each request."""

    def __init__(self, path: Path, saved: session_file.Session) -> None:
        self._path = path
        self._saved = saved

    def __call__(self) -> str:
        if not _needs_refresh(self._saved):
            return self._saved.token
        with _locked(self._path):
            # Another command may have refreshed meanwhile: its token is as good as ours.
            current = session_file.load(self._path) or self._saved
            if _needs_refresh(current) and current.refresh_token:
                tokens = refresh(provider_of(current), current.refresh_token)
                current = replace(
                    current,
                    token=tokens.access_token,
                    refresh_token=tokens.refresh_token,
                    expires_at=_iso(tokens.expires_at),
                )
                session_file.save(self._path, current)
            self._saved = current
        return self._saved.token


def session_for(
    api_url: str, provider: Provider, tokens: Tokens, identity: Mapping[str, Any]
) -> session_file.Session:
    return session_file.Session(
        api_url=api_url,
        token=tokens.access_token,
        subject=identity.get("subject"),
        role=identity.get("role"),
        token_id=identity.get("token_id"),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        issuer=provider.issuer,
        client_id=provider.client_id,
        scopes=list(provider.scopes),
        refresh_token=tokens.refresh_token,
        expires_at=_iso(tokens.expires_at),
    )


def _needs_refresh(saved: session_file.Session) -> bool:
    if not saved.refresh_token or not saved.expires_at:
        return False
    try:
        expires = datetime.fromisoformat(saved.expires_at)
    except ValueError:
        return True
    return expires - datetime.now(UTC) < REFRESH_MARGIN


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    lock = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(mode=session_file.DIR_MODE, parents=True, exist_ok=True)
    descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _token_request(provider: Provider, form: dict[str, str]) -> Tokens:
    response = _post(provider.token_endpoint, {**form, "client_id": provider.client_id})
    body = _json(response, provider.token_endpoint)
    if response.status_code != 200:
        hint = "run `aether login` again" if body.get("error") == "invalid_grant" else None
        raise SignInError(f"the identity provider refused: {_reason(body)}", hint=hint)
    return _tokens(body)


def _tokens(body: Mapping[str, Any]) -> Tokens:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise SignInError("the identity provider answered without an access token")
    expires_in = body.get("expires_in")
    expires_at = (
        datetime.now(UTC) + timedelta(seconds=int(expires_in))
        if isinstance(expires_in, int | float | str) and str(expires_in).isdigit()
        else None
    )
    refresh_token = body.get("refresh_token")
    return Tokens(access, refresh_token if isinstance(refresh_token, str) else None, expires_at)


def _post(url: str, form: dict[str, str]) -> requests.Response:
    try:
        return requests.post(
            url, data=form, headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT
        )
    except requests.RequestException as exc:
        raise NetworkError(f"cannot reach the identity provider at {url}") from exc


def _json(response: requests.Response, url: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise SignInError(f"{url} answered HTTP {response.status_code} without a JSON object")
    return body


def _reason(body: Mapping[str, Any]) -> str:
    error = str(body.get("error") or "unknown_error")
    description = body.get("error_description")
    return f"{error} ({description})" if description else error


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")
