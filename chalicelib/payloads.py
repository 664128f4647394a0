"""Parsing and validating what clients send: bodies, names, digests, query strings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import BadRequest, InvalidDigest, MissingDigest, UnsupportedMediaType

# A DNS-1035 label (a DNS-1123 label that starts with a letter): the app name
# becomes the name of its Kubernetes Service, Deployment and labels.
_APP_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_ENV = frozenset({"PORT"})  # assigned by the platform
MAX_BODY_BYTES = 64 * 1024


def json_object(headers: Mapping[str, str], raw_body: bytes | str | None) -> dict[str, Any]:
    """The request body as a JSON object, or a clear 400/415."""
    content_type = headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type.lower() != "application/json":
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {content_type}")
    if not raw_body:
        return {}
    if len(raw_body) > MAX_BODY_BYTES:
        raise BadRequest(f"request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def app_name(value: Any, field: str = "app_name") -> str:
    if not isinstance(value, str) or not _APP_NAME.fullmatch(value):
        raise BadRequest(
            f"{field} must be a DNS label: 1-63 lowercase letters, digits or '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return value


def digest(value: str | None) -> str:
    if value is None or value == "":
        raise MissingDigest("the artifact digest is required (X-Aether-Artifact-Digest)")
    if not _DIGEST.fullmatch(value):
        raise InvalidDigest("a digest is 64 lowercase hexadecimal characters (SHA-256)")
    return value


def hex_string(value: Any, field: str, length: int) -> str:
    if not isinstance(value, str) or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
        raise BadRequest(f"{field} must be {length} hexadecimal characters")
    return value.lower()


def required(body: Mapping[str, Any], field: str) -> Any:
    if field not in body or body[field] is None:
        raise BadRequest(f"missing field: {field}")
    return body[field]


def string(body: Mapping[str, Any], field: str, default: str | None = None) -> str | None:
    value = body.get(field, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise BadRequest(f"{field} must be a non-empty string")
    return value


def boolean(body: Mapping[str, Any], field: str, default: bool) -> bool:
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{field} must be true or false")
    return value


def integer(value: Any, field: str, minimum: int, maximum: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise BadRequest(f"{field} must be an integer from {minimum} to {maximum}")
    return value


def environment(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("env must be an object of NAME: value strings")
    for name, item in value.items():
        if not _ENV_NAME.fullmatch(name) or not isinstance(item, str):
            raise BadRequest(
                f"env entry {name!r} must be a valid variable name with a string value"
            )
        if name in _RESERVED_ENV:
            raise BadRequest(f"env entry {name} is set by the platform")
    return dict(value)
