"""How every HTTP request is observed and how every failure becomes an envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, ChaliceViewError, Request, Response

from chalicelib import errors
from chalicelib.observability import flush_metrics, logger


def install(app: Chalice) -> None:
    """Wire the error envelope and request logging into every route of ``app``.

    Call it once, after the last route is declared: each view is wrapped so
    that a dependency failure surfaces as ``service_unavailable`` instead of
    being swallowed into Chalice's generic 500.
    """
    for methods in app.routes.values():
        for entry in methods.values():
            entry.view_function = _surface_failures(entry.view_function)
    app.register_middleware(functools.partial(_observe, app), "http")


def _surface_failures(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except errors.ApiError:
            raise
        except Exception as exc:
            if errors.is_dependency_failure(exc):
                logger.warning("dependency unavailable", exc_info=True)
                raise errors.ServiceUnavailable(
                    "a backing service is unavailable; retry shortly"
                ) from exc
            if isinstance(exc, ChaliceViewError):
                raise  # Chalice renders it; _observe rewrites it into the envelope
            logger.exception("unhandled error")
            raise errors.Internal() from exc

    return call


def _observe(
    app: Chalice, request: Request, get_response: Callable[[Request], Response]
) -> Response:
    context = app.lambda_context
    params = request.uri_params or {}
    logger.append_keys(
        request_id=getattr(context, "aws_request_id", None),
        method=request.method,
        path=request.path,
        app=params.get("app_name"),
        digest=params.get("digest"),
    )
    try:
        response = get_response(request)
    except errors.ApiError as error:
        response = error.to_response()
    response = errors.rewrite_chalice_error(response)
    if request.method == "HEAD":
        response.body = ""  # a HEAD answer has no body, errors included (clients read none)
    logger.info("request", extra={"status": response.status_code})
    flush_metrics()
    logger.remove_keys(["request_id", "method", "path", "app", "digest"])
    return response
