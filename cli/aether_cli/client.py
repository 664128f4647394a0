"""The control plane's HTTP API, as one client class.

It owns the base URL, the bearer token, timeouts, retries and the error
envelope. Commands call its methods; none of them builds a URL. Retries (with
exponential backoff and jitter) cover connection errors and 5xx answers, and
only for calls that are safe to repeat: reads, and the POSTs the API defines as
idempotent (an artifact by digest, a deployment of the same app+digest+config).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from aether_cli import __version__
from aether_cli.errors import (
    AetherError,
    ApiError,
    NetworkError,
    NotAControlPlane,
    UnsupportedError,
)
from aether_cli.log import get_logger
from aether_cli.retry import describe_connection_error, send_with_retries

if TYPE_CHECKING:
    from aether_cli.config import Settings

USER_AGENT = f"aether-cli/{__version__}"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
# How API Gateway's own answer to an unknown route begins (infra/terraform/gateway_responses.tf.json).
GATEWAY_NO_ROUTE = "no such route"
_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    503: "service_unavailable",
}


TokenSource = str | Callable[[], str] | None


class BearerAuth(requests.auth.AuthBase):
    """Explicit auth object, so requests never substitutes credentials from ~/.netrc.

    A callable token is asked before every request: a session signed in with an identity
    provider refreshes its short-lived access token there, even in the middle of a command.
    """

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token() if callable(self._token) else self._token
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        return request


class ApiClient:
    """Calls the Aether control plane's HTTP API (README.md, "API")."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        refusal_hint: str = "run `aether login` to refresh the token",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.refusal_hint = refusal_hint
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._http = requests.Session()
        self._http.auth = BearerAuth(token)
        self._http.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self._log = get_logger()

    def close(self) -> None:
        self._http.close()

    # -- identity --------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self._json("GET", ("whoami",))

    def issue_token(
        self, *, subject: str | None, role: str | None, expires_in_days: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "subject": subject,
            "role": role,
            "expires_in_days": expires_in_days,
        }
        sent = {key: value for key, value in body.items() if value is not None}
        # Never repeated: a retry after a lost answer would issue a second secret.
        return self._json("POST", ("tokens",), json=sent, idempotent=False)

    def rotate_token(self, token_id: str, *, expires_in_days: int | None) -> dict[str, Any]:
        sent = {} if expires_in_days is None else {"expires_in_days": expires_in_days}
        try:
            # Never repeated: the first attempt may have rotated it, and only it holds the secret.
            return self._json("POST", ("tokens", token_id, "rotate"), json=sent, idempotent=False)
        except ApiError as exc:
            raise self._route_missing(exc, "rotating tokens") from exc

    def list_tokens(self) -> list[dict[str, Any]]:
        return list(self._json("GET", ("tokens",)).get("tokens") or [])

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self._json("DELETE", ("tokens", token_id), idempotent=True)

    def list_pull_tokens(self, app: str | None = None) -> list[dict[str, Any]]:
        params = {"app_name": app} if app else None
        try:
            found = self._json("GET", ("pull-tokens",), params=params)
        except ApiError as exc:
            raise self._route_missing(exc, "listing pull tokens") from exc
        return list(found.get("pull_tokens") or [])

    # -- apps ------------------------------------------------------------------

    def list_apps(self) -> list[dict[str, Any]]:
        return list(self._json("GET", ("apps",)).get("apps") or [])

    def get_app(self, app: str) -> dict[str, Any]:
        return self._json("GET", ("apps", app))

    def create_app(self, app: str, *, require_signature: bool = False) -> dict[str, Any]:
        body = {"name": app, "require_signature": require_signature}
        return self._json("POST", ("apps",), json=body, idempotent=False)

    def put_preview(self, name: str, *, base: str, ttl_seconds: int) -> dict[str, Any]:
        # Creating it again only moves its expiry: safe to retry.
        body = {"base": base, "ttl_seconds": ttl_seconds}
        return self._feature(
            "previews", "PUT", ("apps", name, "preview"), json=body, idempotent=True
        )

    def destroy_app(self, app: str) -> dict[str, Any]:
        # A teardown again resumes the one under way: safe to retry.
        return self._feature("destroying apps", "DELETE", ("apps", app), idempotent=True)

    def add_public_key(self, app: str, public_key_hex: str) -> dict[str, Any]:
        body = {"public_key_hex": public_key_hex}
        # Registering the same key twice is harmless, so a retry is safe.
        return self._json("POST", ("apps", app, "public-keys"), json=body, idempotent=True)

    def list_public_keys(self, app: str) -> list[dict[str, Any]]:
        return list(self._json("GET", ("apps", app, "public-keys")).get("keys") or [])

    # -- event hooks -----------------------------------------------------------

    def add_hook(self, url: str, *, app: str | None, events: list[str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url}
        if app is not None:
            body["app_name"] = app
        if events is not None:
            body["events"] = events
        # Never repeated: a retry after a lost answer would make a second subscription.
        return self._feature("hooks", "POST", ("hooks",), json=body, idempotent=False)

    def list_hooks(self, app: str | None = None) -> list[dict[str, Any]]:
        params = {"app_name": app} if app else None
        return list(self._feature("hooks", "GET", ("hooks",), params=params).get("hooks") or [])

    def remove_hook(self, hook_id: str) -> dict[str, Any]:
        return self._feature("hooks", "DELETE", ("hooks", hook_id), idempotent=True)

    def hook_deliveries(self, hook_id: str, *, limit: int) -> list[dict[str, Any]]:
        answer = self._feature(
            "hooks", "GET", ("hooks", hook_id, "deliveries"), params={"limit": limit}
        )
        return list(answer.get("deliveries") or [])

    # -- artifacts -------------------------------------------------------------

    def artifact_exists(self, digest: str, app: str) -> bool:
        """True only when the platform holds this digest for ``app`` and has verified it."""
        try:
            self._call("HEAD", ("artifacts", digest), params={"app_name": app})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_artifact(
        self,
        *,
        app: str,
        digest: str,
        size_bytes: int,
        runtime: str,
        platform: str,
        signature_hex: str | None,
        kind: str = "archive",
    ) -> dict[str, Any]:
        headers = {"X-Aether-Artifact-Digest": digest}
        if signature_hex:
            headers["X-Aether-Signature"] = signature_hex
        body = {
            "app_name": app,
            "size_bytes": size_bytes,
            "kind": kind,
            "runtime": runtime,
            "platform": platform,
        }
        return self._json("POST", ("artifacts",), json=body, headers=headers, idempotent=True)

    def get_artifact(self, digest: str) -> dict[str, Any]:
        return self._json("GET", ("artifacts", digest))

    # -- deployments -----------------------------------------------------------

    def create_deployment(
        self,
        *,
        app: str,
        digest: str,
        runtime: str,
        env: Mapping[str, str],
        start_command: str | None = None,
        release_command: str | None = None,
        replicas: int | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What is given (``env`` values, ``start_command``, ``release_command``, ``replicas``)
        is set for this and later releases; ``defaults`` (the project's own) fill only what was
        never set."""
        body: dict[str, Any] = {
            "app_name": app,
            "artifact_digest": digest,
            "runtime": runtime,
            "env": dict(env),
        }
        if start_command is not None:
            body["start_command"] = start_command
        if release_command is not None:
            body["release_command"] = release_command
        if replicas is not None:
            body["replicas"] = replicas
        if defaults:
            body["defaults"] = dict(defaults)
        return self._json("POST", ("deployments",), json=body, idempotent=True)

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        return self._json("GET", ("deployments", deployment_id))

    def list_deployments(
        self, app: str, *, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", ("apps", app, "deployments"), params=params)

    def rollback(self, app: str, to: str | None, *, version: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"to": to} if to else {}
        if version is not None:
            body["version"] = version
        try:
            return self._json("POST", ("apps", app, "rollback"), json=body, idempotent=False)
        except ApiError as exc:
            raise self._route_missing(exc, "rollback") from exc

    # -- releases and config ---------------------------------------------------

    def list_releases(
        self, app: str, *, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self._feature("releases", "GET", ("apps", app, "releases"), params=params)

    def get_config(self, app: str, *, values: bool = False) -> dict[str, Any]:
        params = {"values": "true"} if values else None
        return self._feature("config", "GET", ("apps", app, "config"), params=params)

    def get_config_value(self, app: str, name: str) -> dict[str, Any]:
        return self._feature("config", "GET", ("apps", app, "config", name))

    def patch_config(
        self, app: str, *, set_values: Mapping[str, str], unset: list[str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if set_values:
            body["set"] = dict(set_values)
        if unset:
            body["unset"] = list(unset)
        # The same patch twice is one release: safe to retry.
        return self._feature("config", "PATCH", ("apps", app, "config"), json=body, idempotent=True)

    def scale(self, app: str, replicas: int) -> dict[str, Any]:
        return self._feature(
            "scale", "POST", ("apps", app, "scale"), json={"replicas": replicas}, idempotent=True
        )

    def promote(self, target: str, source: str) -> dict[str, Any]:
        # Promoting what runs already answers with that release: safe to retry.
        return self._feature(
            "promote", "POST", ("apps", target, "promote"), json={"from": source}, idempotent=True
        )

    def restart(self, app: str) -> dict[str, Any]:
        return self._feature("restart", "POST", ("apps", app, "restart"), idempotent=False)

    def _feature(
        self, feature: str, method: str, segments: tuple[str, ...], **kwargs: Any
    ) -> dict[str, Any]:
        try:
            return self._json(method, segments, **kwargs)
        except ApiError as exc:
            raise self._route_missing(exc, feature) from exc

    def logs(
        self,
        app: str,
        *,
        since: str | None = None,
        tail: int | None = None,
        deployment: str | None = None,
        release: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if since:
            params["since"] = since
        if tail is not None:
            params["tail"] = tail
        if deployment:
            params["deployment"] = deployment
        if release:
            params["release"] = release
        try:
            return self._json("GET", ("apps", app, "logs"), params=params)
        except ApiError as exc:
            raise self._route_missing(exc, "logs") from exc

    # -- one-off runs ----------------------------------------------------------

    def start_run(
        self, app: str, command: list[str], *, timeout_seconds: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"command": list(command)}
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        # Each POST is a new run: never sent twice.
        return self._feature("run", "POST", ("apps", app, "runs"), json=body, idempotent=False)

    def get_run(self, app: str, run_id: str) -> dict[str, Any]:
        return self._feature("run", "GET", ("apps", app, "runs", run_id))

    def list_runs(self, app: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self._feature("runs", "GET", ("apps", app, "runs"))["runs"]
        return listed

    def run_logs(self, app: str, run_id: str, *, since: str | None = None) -> dict[str, Any]:
        params = {"since": since} if since else {}
        return self._feature("run", "GET", ("apps", app, "runs", run_id, "logs"), params=params)

    def stop_run(self, app: str, run_id: str) -> dict[str, Any]:
        return self._feature("run", "DELETE", ("apps", app, "runs", run_id), idempotent=True)

    # -- plumbing --------------------------------------------------------------

    def url(self, *segments: str) -> str:
        return self.base_url + "/" + "/".join(quote(s, safe="") for s in segments)

    def _route_missing(self, exc: ApiError, feature: str) -> Exception:
        """Tell "this server has no such route" apart from the route's own refusals.

        A route that exists answers with its envelope (``not_found: deployment nope not
        found``), which is reported as it is. A missing route is answered by the gateway:
        bare (``chalice local``'s 403 ``Missing Authentication Token``, a 404 or 405 from
        another server) or, on AWS, with the envelope whose message says so.
        """
        gateway_answer = not exc.enveloped or exc.message.startswith(GATEWAY_NO_ROUTE)
        if exc.status in (403, 404, 405) and gateway_answer:
            return UnsupportedError(
                f"this control plane does not support {feature} yet",
                hint=f"{self.base_url} answered HTTP {exc.status} for the {feature} route",
            )
        return exc

    def _json(self, method: str, segments: tuple[str, ...], **kwargs: Any) -> dict[str, Any]:
        response = self._call(method, segments, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._not_a_control_plane(response, method, segments)
        return data

    def _not_a_control_plane(
        self, response: requests.Response, method: str, segments: tuple[str, ...]
    ) -> NotAControlPlane:
        """Every answer of Aether is a JSON object: anything else is another server."""
        kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no type"
        return NotAControlPlane(
            f"{self.base_url} does not look like an Aether control plane: "
            f"{method} /{'/'.join(segments)} answered HTTP {response.status_code} with {kind}",
            hint="check --api-url, AETHER_API_URL or api_url in the config file",
        )

    def _call(
        self,
        method: str,
        segments: tuple[str, ...],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        url = self.url(*segments)
        retryable = method in ("GET", "HEAD") if idempotent is None else idempotent
        headers = dict(headers or {})
        if method == "HEAD":
            # Some servers (chalice local among them) write a body after a HEAD
            # response, which would corrupt the next response on a kept-alive
            # connection: a HEAD gets a connection of its own, closed after it.
            headers["Connection"] = "close"

        def send() -> requests.Response:
            started = time.monotonic()
            http = self._http if method != "HEAD" else self._one_off_session()
            try:
                response = http.request(
                    method, url, params=params, json=json, headers=headers, timeout=self.timeout
                )
            finally:
                if http is not self._http:
                    http.close()
            elapsed = (time.monotonic() - started) * 1000
            self._log.debug("%s %s -> %s (%.0f ms)", method, url, response.status_code, elapsed)
            return response

        try:
            response = send_with_retries(
                send,
                what=f"{method} {url}",
                retries=self.retries if retryable else 0,
                backoff=self.backoff,
                transient=lambda answer: answer.status_code in RETRY_STATUSES,
                sleep=self._sleep,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = describe_connection_error(exc)
            raise NetworkError(
                f"cannot reach the control plane at {self.base_url}: {reason}"
            ) from exc
        if response.status_code >= 400:
            raise self._error(response, method, segments)
        return response

    def _one_off_session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self._http.auth
        session.headers.update(self._http.headers)
        return session

    def _error(
        self, response: requests.Response, method: str, segments: tuple[str, ...]
    ) -> AetherError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            isinstance(body, dict)
            and isinstance(body.get("code"), str)
            and isinstance(body.get("message"), str)
        ):
            code, message = body["code"], body["message"]
            hint = self.refusal_hint if status == 401 else None
            return ApiError(status, code, message, hint=hint)
        if body is None and status < 500 and method != "HEAD" and response.content:
            # A gateway in front of Aether answers in JSON too; a web page is another server.
            return self._not_a_control_plane(response, method, segments)
        code = _DEFAULT_CODES.get(status, "internal" if status >= 500 else "http_error")
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            detail = body["message"]
        elif method == "HEAD" or not response.text.strip():
            detail = response.reason or "no details"
        else:
            detail = response.text.strip().splitlines()[0][:200]
        message = f"{method} /{'/'.join(segments)} failed: {detail}"
        return ApiError(status, code, message, enveloped=False)


def connect(settings: Settings | None = None) -> ApiClient:
    """A client for the configured control plane, or a config error saying what is missing."""
    from aether_cli.config import REFUSAL_HINTS, load_settings, require_credentials

    settings = settings or load_settings()
    api_url, token = require_credentials(settings)
    if settings.credentials_from is None:
        return ApiClient(api_url, token)
    source: TokenSource = token
    saved = settings.session
    if settings.credentials_from == "session" and saved is not None and saved.refresh_token:
        from aether_cli.login import SessionTokens

        source = SessionTokens(settings.session_path, saved)
    return ApiClient(api_url, source, refusal_hint=REFUSAL_HINTS[settings.credentials_from])
