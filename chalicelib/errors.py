"""One exception per API error code, and the one place they become envelopes.

``ApiError`` derives from Chalice's ``ChaliceUnhandledError`` so that Chalice
lets it through to our middleware instead of rendering its own
``{"Code", "Message"}`` body.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chalice.app import ChaliceUnhandledError, Response


class ApiError(ChaliceUnhandledError):
    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def to_response(self) -> Response:
        return envelope(self.status, self.code, self.message, self.headers)


class BadRequest(ApiError):
    code, status = "bad_request", 400


class MissingDigest(ApiError):
    code, status = "missing_digest", 400


class InvalidDigest(ApiError):
    code, status = "invalid_digest", 400


class BadSignature(ApiError):
    code, status = "bad_signature", 400


class Unauthorized(ApiError):
    code, status = "unauthorized", 401

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="aether"'})


class Forbidden(ApiError):
    code, status = "forbidden", 403


class NotFound(ApiError):
    code, status = "not_found", 404


class MethodNotAllowed(ApiError):
    code, status = "method_not_allowed", 405


class Conflict(ApiError):
    code, status = "conflict", 409


class ArtifactNotVerified(ApiError):
    code, status = "artifact_not_verified", 409


class UnsupportedPlatform(ApiError):
    code, status = "unsupported_platform", 409


class NotRetained(ApiError):
    """A release older than the ones kept: its artifact is (or is about to be) reclaimed."""

    code, status = "not_retained", 410


class PayloadTooLarge(ApiError):
    code, status = "payload_too_large", 413


class UnsupportedMediaType(ApiError):
    code, status = "unsupported_media_type", 415


class Internal(ApiError):
    code, status = "internal", 500

    def __init__(self, message: str = "an unexpected error occurred") -> None:
        super().__init__(message)


class ServiceUnavailable(ApiError):
    code, status = "service_unavailable", 503


def by_code() -> dict[str, type[ApiError]]:
    """Every API error type by its code (the OpenAPI document and the README list them)."""
    found: dict[str, type[ApiError]] = {}
    pending: list[type[ApiError]] = [ApiError]
    while pending:
        error = pending.pop()
        found[error.code] = error
        pending.extend(error.__subclasses__())
    return found


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        body={"code": code, "message": message},
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


# Chalice renders errors raised outside our views (wrong method, wrong content
# type, a body that is not JSON) as {"Code", "Message"}; these are their codes.
_CHALICE_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def rewrite_chalice_error(response: Response) -> Response:
    """Turn a Chalice-rendered error response into our envelope."""
    body: Any = response.body
    if response.status_code < 400 or not isinstance(body, dict) or "Code" not in body:
        return response
    error = _CHALICE_ERRORS.get(response.status_code, Internal)
    message = str(body.get("Message", "")) if error is not Internal else Internal().message
    headers = {k: str(v) for k, v in response.headers.items() if k.lower() == "allow"}
    return envelope(error.status, error.code, message or error.code, headers)


_UNAVAILABLE_AWS_CODES = frozenset(
    {
        "ServiceUnavailable",
        "SlowDown",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalError",
        "ResourceNotFoundException",
        "NoSuchBucket",
    }
)


def is_dependency_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means DynamoDB, S3 or Kubernetes is unreachable."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError as Urllib3Error

    from chalicelib.kube import is_unavailable

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BotoCoreError | Urllib3Error | ConnectionError | TimeoutError):
            return True
        if is_unavailable(current):
            return True
        if isinstance(current, ClientError):
            error = current.response.get("Error", {})
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return error.get("Code") in _UNAVAILABLE_AWS_CODES or status >= 500
        # pynamodb keeps the botocore error in ``cause``; everything else in __cause__.
        current = getattr(current, "cause", None) or current.__cause__
    return False
