"""Parsing and validating what clients send: bodies, names, digests, query strings."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalicelib import contract
from chalicelib.contract import ArtifactKind
from chalicelib.errors import (
    BadRequest,
    InvalidDigest,
    MissingDigest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

_APP_NAME = re.compile(contract.APP_NAME_PATTERN)
_DIGEST = re.compile(contract.DIGEST_PATTERN)
_ENV_NAME = re.compile(contract.ENV_NAME_PATTERN)


def json_object(headers: Mapping[str, str], raw_body: bytes | str | None) -> dict[str, Any]:
    """The request body as a JSON object, or a clear 400/415."""
    content_type = headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type.lower() != "application/json":
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {content_type}")
    if not raw_body:
        return {}
    if len(raw_body) > contract.MAX_BODY_BYTES:
        raise BadRequest(f"request body exceeds {contract.MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the parser recurses once per level of nesting
        raise BadRequest("request body is nested too deeply") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def app_name(value: Any, field: str = "app_name") -> str:
    if not isinstance(value, str) or not _APP_NAME.fullmatch(value):
        raise BadRequest(f"{field} must be {contract.APP_NAME_RULE}")
    return value


def digest(value: Any) -> str:
    if value is None or value == "":
        raise MissingDigest("the artifact digest is required (X-Aether-Artifact-Digest)")
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise InvalidDigest("a digest is 64 lowercase hexadecimal characters (SHA-256)")
    return value


def issued_id(value: str, field: str) -> str:
    """An id the platform issued (deployments, keys); anything else names nothing."""
    if not re.fullmatch(contract.ISSUED_ID_PATTERN, value):
        raise BadRequest(f"{field} must be an id this API returned (a UUID)")
    return value


def public_key_hex(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(contract.PUBLIC_KEY_PATTERN, value):
        raise BadRequest("public_key_hex must be 64 hexadecimal characters (Ed25519)")
    return value.lower()


def required(body: Mapping[str, Any], field: str) -> Any:
    if field not in body or body[field] is None:
        raise BadRequest(f"missing field: {field}")
    return body[field]


def optional(body: Mapping[str, Any], field: str, default: Any = None) -> Any:
    """``body[field]``, or ``default`` when it is left out; an explicit null is refused."""
    if field not in body:
        return default
    if body[field] is None:
        raise BadRequest(f"{field} must not be null (leave it out for the default)")
    return body[field]


def string(body: Mapping[str, Any], field: str, default: str | None = None) -> str | None:
    value = optional(body, field, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise BadRequest(f"{field} must be a non-empty string")
    if value is not None and "\x00" in value:
        raise BadRequest(f"{field} must not contain a NUL character")
    return value


def release_command(body: Mapping[str, Any], field: str) -> str | None:
    """A shell command line, or "" (blank) for none; None when the field is absent."""
    value = optional(body, field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string (empty: no release command)")
    if "\x00" in value:
        raise BadRequest(f"{field} must not contain a NUL character")
    if len(value) > contract.MAX_COMMAND_LENGTH:
        raise BadRequest(f"{field} must be at most {contract.MAX_COMMAND_LENGTH} characters")
    return value.strip()


def run_command(value: Any) -> tuple[str, ...]:
    """A one-off run's argument vector: 1 to MAX_RUN_ARGS non-empty words, each at most
    MAX_COMMAND_LENGTH characters (the body's own limit bounds them together)."""
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= contract.MAX_RUN_ARGS
        or not all(isinstance(word, str) and word for word in value)
    ):
        raise BadRequest(
            f"command must be a list of 1 to {contract.MAX_RUN_ARGS} non-empty strings"
        )
    if any("\x00" in word for word in value):
        raise BadRequest("command must not contain a NUL character")
    if any(len(word) > contract.MAX_COMMAND_LENGTH for word in value):
        raise BadRequest(
            f"each word of command holds at most {contract.MAX_COMMAND_LENGTH} characters"
        )
    return tuple(value)


def boolean(body: Mapping[str, Any], field: str, default: bool) -> bool:
    value = optional(body, field, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{field} must be true or false")
    return value


def integer(value: Any, field: str, minimum: int, maximum: int | None = None) -> int:
    """A whole JSON number in range: ``3`` or ``3.0`` (as JSON Schema counts integers)."""
    number = _whole_number(value)
    if number is None or number < minimum or (maximum is not None and number > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise BadRequest(f"{field} must be an integer {bounds}")
    return number


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def query_boolean(text: str | None, field: str) -> bool:
    """A query string's flag: absent or ``false`` is False, ``true`` is True."""
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise BadRequest(f"{field} must be true or false")


def query_integer(text: str, field: str, minimum: int, maximum: int) -> int:
    """A query string's whole number: ASCII digits, optionally signed."""
    number = int(text) if re.fullmatch(r"-?[0-9]+", text) else None
    return integer(number, field, minimum, maximum)


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
        if name in contract.RESERVED_ENV_NAMES:
            raise BadRequest(f"env entry {name} is set by the platform")
        if "\x00" in item:  # no process environment can carry one
            raise BadRequest(f"env entry {name} must not contain a NUL character")
    return dict(value)


def config_name(value: Any, field: str) -> str:
    """A config name: an environment variable's, not one the platform sets."""
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise BadRequest(
            f"{field}: config names are environment variable names "
            "(letters, digits and '_', not starting with a digit)"
        )
    if value in contract.RESERVED_ENV_NAMES:
        raise BadRequest(f"{field}: {value} is set by the platform")
    return value


def config_values(value: Any, field: str) -> dict[str, str]:
    """``{NAME: value}`` to set. A refusal names the variable, never its value."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object of NAME: value strings")
    values: dict[str, str] = {}
    for name, item in value.items():
        config_name(name, field)
        if not isinstance(item, str):
            raise BadRequest(f"{field}: the value of {name} must be a string")
        if "\x00" in item:  # no process environment can carry one
            raise BadRequest(f"{field}: the value of {name} must not contain a NUL character")
        size = len(item.encode())
        if size > contract.MAX_CONFIG_VALUE_BYTES:
            raise PayloadTooLarge(
                f"{field}: the value of {name} is {size} bytes; a config value holds at most "
                f"{contract.MAX_CONFIG_VALUE_BYTES}"
            )
        values[name] = item
    return values


def config_names(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a list of config names")
    return sorted({config_name(name, field) for name in value})


def release_version(value: Any) -> int:
    """A release's version: 4, or "v4"."""
    if isinstance(value, str) and re.fullmatch(contract.RELEASE_VERSION_PATTERN, value):
        return int(value.removeprefix("v"))
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 10**9:
        return value
    raise BadRequest('version must be a release\'s number (4 or "v4")')


def runtime(value: Any, default: str) -> str:
    """``value`` (or ``default``) if it is a runtime in support today, else a 400 saying why."""
    chosen = default if value is None else value
    refusal = contract.runtime_refusal(chosen if isinstance(chosen, str) else "")
    if refusal is not None:
        raise BadRequest(refusal)
    return str(chosen)


def platform(value: Any) -> str:
    if value is None:
        return contract.DEFAULT_PLATFORM
    if value not in contract.PLATFORMS:
        raise BadRequest(f"platform must be one of {', '.join(contract.PLATFORMS)}")
    return str(value)


def artifact_kind(value: Any) -> ArtifactKind:
    if value is None:
        return ArtifactKind.ARCHIVE
    # Only a string is looked up: an object or a list is not hashable, and no kind.
    if not isinstance(value, str) or value not in {str(kind) for kind in ArtifactKind}:
        raise BadRequest(f"kind must be one of {', '.join(ArtifactKind)}")
    return ArtifactKind(value)
