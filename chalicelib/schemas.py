"""What each request may carry, as JSON Schema built from the contract.

The OpenAPI document puts these beside the routes that name them in their
docstrings (``Body: new_app``, ``Query: limit``). The validators in
``payloads`` and the concern modules enforce the same contract constants;
the fuzzer in ``tests/api/test_fuzz.py`` holds the two to each other.
"""

from __future__ import annotations

from typing import Any

from chalicelib import contract

Schema = dict[str, Any]

# A string with at least one character that is not whitespace (the validators strip).
_NOT_BLANK = r"\S"


def _pattern(regex: str, **more: Any) -> Schema:
    return {"type": "string", "pattern": f"^{regex}$", **more}


def _integer(minimum: int, maximum: int, **more: Any) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **more}


def _text(max_length: int | None = None) -> Schema:
    schema: Schema = {"type": "string", "minLength": 1, "pattern": _NOT_BLANK}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


APP_NAME = _pattern(contract.APP_NAME_PATTERN, maxLength=63)
DIGEST = _pattern(contract.DIGEST_PATTERN)
ISSUED_ID = _pattern(contract.ISSUED_ID_PATTERN)
CONFIG_NAME = {
    **_pattern(contract.ENV_NAME_PATTERN),
    "not": {"enum": sorted(contract.RESERVED_ENV_NAMES)},
}
# No NUL: no process environment can carry one.
CONFIG_VALUE = {
    "type": "string",
    "pattern": "^[^\\x00]*$",
    "description": f"at most {contract.MAX_CONFIG_VALUE_BYTES} bytes (UTF-8)",
}
ENV = {"type": "object", "propertyNames": CONFIG_NAME, "additionalProperties": CONFIG_VALUE}
# Empty: no release command.
RELEASE_COMMAND = {
    "type": "string",
    "maxLength": contract.MAX_COMMAND_LENGTH,
    "pattern": "^[^\\x00]*$",
    "description": "a shell command run once per release before its rollout; empty: none",
}
RUN_ID = _pattern(contract.RUN_ID_PATTERN)
RELEASE_VERSION = {
    "oneOf": [
        _integer(1, 10**9 - 1),
        _pattern(contract.RELEASE_VERSION_PATTERN),
    ]
}


def bodies(
    max_artifact_bytes: int, max_run_timeout_seconds: int, max_preview_ttl_seconds: int
) -> dict[str, Schema]:
    """Request bodies by name; runtimes are those in support today."""
    runtime = {"enum": list(contract.supported_runtimes())}
    return {
        "new_token": {
            "type": "object",
            "properties": {
                "subject": _text(contract.MAX_SUBJECT_LENGTH),
                "role": {"enum": [str(role) for role in contract.ISSUABLE_ROLES]},
                "expires_in_days": _integer(
                    1, contract.MAX_TOKEN_DAYS, default=contract.DEFAULT_TOKEN_DAYS
                ),
            },
        },
        "token_rotation": {
            "type": "object",
            "properties": {
                "expires_in_days": _integer(
                    1, contract.MAX_TOKEN_DAYS, default=contract.DEFAULT_TOKEN_DAYS
                ),
            },
        },
        "new_app": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": APP_NAME,
                "require_signature": {"type": "boolean", "default": False},
            },
        },
        "new_hook": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": contract.MAX_HOOK_URL_LENGTH,
                    "description": "an https:// URL of a public host, no credentials in it "
                    "(plain http to loopback only where the stage allows it)",
                },
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": [str(event) for event in contract.HookEvent]},
                    "description": "the events to send; absent: every event",
                },
                "app_name": {
                    **APP_NAME,
                    "description": "the app whose events to send; absent: every app's (admins)",
                },
            },
        },
        "new_public_key": {
            "type": "object",
            "required": ["public_key_hex"],
            "properties": {"public_key_hex": _pattern(contract.PUBLIC_KEY_PATTERN)},
        },
        "rollback": {
            "type": "object",
            "properties": {"to": ISSUED_ID, "version": RELEASE_VERSION},
            "not": {"required": ["to", "version"]},
        },
        "preview": {
            "type": "object",
            "required": ["base", "ttl_seconds"],
            "properties": {
                "base": APP_NAME,
                "ttl_seconds": _integer(1, max_preview_ttl_seconds),
            },
        },
        "promotion": {
            "type": "object",
            "required": ["from"],
            "properties": {"from": APP_NAME, "version": RELEASE_VERSION},
        },
        "config_patch": {
            "type": "object",
            "properties": {
                "set": {
                    "type": "object",
                    "propertyNames": CONFIG_NAME,
                    "additionalProperties": CONFIG_VALUE,
                    "maxProperties": contract.MAX_CONFIG_VARS,
                },
                "unset": {"type": "array", "items": CONFIG_NAME},
            },
            "anyOf": [
                {"required": ["set"], "properties": {"set": {"minProperties": 1}}},
                {"required": ["unset"], "properties": {"unset": {"minItems": 1}}},
            ],
        },
        "scale": {
            "type": "object",
            "required": ["replicas"],
            "properties": {"replicas": _integer(contract.MIN_SCALE, contract.MAX_REPLICAS)},
        },
        "new_artifact": {
            "type": "object",
            "required": ["app_name", "size_bytes"],
            "properties": {
                "app_name": APP_NAME,
                "size_bytes": _integer(1, max_artifact_bytes),
                "kind": {
                    "description": "archive; or a layered artifact's manifest "
                    f"(at most {contract.MAX_MANIFEST_BYTES} bytes), or one of its layers",
                    "enum": [str(kind) for kind in contract.ArtifactKind],
                    "default": str(contract.ArtifactKind.ARCHIVE),
                },
                "runtime": {**runtime, "default": contract.default_runtime()},
                "platform": {
                    "enum": list(contract.PLATFORMS),
                    "default": contract.DEFAULT_PLATFORM,
                },
            },
            # A manifest is small whatever the artifact limit.
            "if": {
                "properties": {"kind": {"const": str(contract.ArtifactKind.MANIFEST)}},
                "required": ["kind"],
            },
            "then": {"properties": {"size_bytes": {"maximum": contract.MAX_MANIFEST_BYTES}}},
        },
        "new_deployment": {
            "type": "object",
            "required": ["app_name", "artifact_digest"],
            "properties": {
                "app_name": APP_NAME,
                "artifact_digest": DIGEST,
                "runtime": runtime,
                "start_command": {**_text(), "default": contract.DEFAULT_START_COMMAND},
                "release_command": RELEASE_COMMAND,
                "env": ENV,
                "replicas": _integer(1, contract.MAX_REPLICAS),
                "defaults": {
                    "type": "object",
                    "description": "the project's own defaults: they fill what was never set",
                    "additionalProperties": False,
                    "properties": {
                        "env": ENV,
                        "start_command": _text(),
                        "release_command": RELEASE_COMMAND,
                        "replicas": _integer(contract.MIN_SCALE, contract.MAX_REPLICAS),
                    },
                },
            },
        },
        "new_run": {
            "type": "object",
            "required": ["command"],
            "properties": {
                "command": {
                    "description": "the program and its arguments (no shell: add sh -c for one)",
                    "type": "array",
                    "minItems": 1,
                    "maxItems": contract.MAX_RUN_ARGS,
                    "items": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": contract.MAX_COMMAND_LENGTH,
                        "pattern": "^[^\\x00]*$",
                    },
                },
                "timeout_seconds": {
                    **_integer(1, max_run_timeout_seconds),
                    "description": "how long it may run (activeDeadlineSeconds); "
                    "default: the platform's",
                },
            },
        },
    }


def parameters() -> dict[str, Schema]:
    """Path, query and header parameters by name (``in`` is filled in where they are used)."""
    return {
        # path
        "app_name": {"schema": APP_NAME},
        "digest": {"schema": DIGEST},
        "deployment_id": {"schema": ISSUED_ID},
        "config_name": {"schema": CONFIG_NAME},
        "key_id": {"schema": ISSUED_ID},
        "hook_id": {"schema": ISSUED_ID},
        "token_id": {"schema": _pattern("[0-9a-f]{16}")},
        "run_id": {"schema": RUN_ID},
        # query
        "limit": {"schema": _integer(1, contract.MAX_PAGE, default=contract.DEFAULT_PAGE)},
        "cursor": {
            "description": "next_cursor of the previous page (opaque)",
            "schema": {"type": "string", "minLength": 1},
        },
        "since": {
            "description": "only lines after this RFC 3339 time (next_since of the last read)",
            "schema": {"type": "string", "format": "date-time"},
        },
        "tail": {"schema": _integer(1, contract.MAX_LOG_TAIL)},
        "deployment": {"description": "only this deployment's pods", "schema": ISSUED_ID},
        "release": {
            "description": "the output of this release's release command instead (v4 or 4)",
            "schema": RELEASE_VERSION["oneOf"][1],
        },
        "name": {"schema": {"type": "string", "minLength": 1}},
        "values": {
            "description": "true: the values too, to the app's owner and admins",
            "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
        },
        # headers
        "If-None-Match": {
            "description": "the ETag of the copy the client holds",
            "schema": {"type": "string"},
        },
        "X-Aether-Artifact-Digest": {
            "description": "SHA-256 of the artifact's bytes",
            "required": True,
            "schema": DIGEST,
        },
        "X-Aether-Signature": {
            "description": "Ed25519 signature of the hex digest, hex-encoded",
            "schema": _pattern(contract.SIGNATURE_PATTERN),
        },
    }


def responses() -> dict[str, Schema]:
    """Success bodies by name, for the routes whose docstring says ``Schema: name``."""
    url = {"type": "string", "format": "uri"}
    moment = {"type": "string", "format": "date-time"}
    return {
        "issued_token": {
            "type": "object",
            "required": ["token_id", "subject", "role", "created_at", "expires_at", "token"],
            "properties": {
                "token_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                "subject": {"type": "string", "minLength": 1},
                "role": {"enum": [str(role) for role in contract.ISSUABLE_ROLES]},
                "created_at": moment,
                "expires_at": moment,
                "revoked": {"const": False},
                "issued_by": {
                    "description": "the stored token that issued it; null: none did",
                    "oneOf": [{"type": "null"}, {"type": "string"}],
                },
                "token": {
                    "description": "the secret, shown in this answer only",
                    "type": "string",
                    "pattern": "^aet_",
                },
                "replaces": {
                    "description": "a rotation's: the token it revoked",
                    "type": "string",
                },
            },
        },
        "new_hook": {
            "type": "object",
            "required": ["hook_id", "app_name", "url", "events", "created_at", "secret"],
            "properties": {
                "hook_id": ISSUED_ID,
                "app_name": {"oneOf": [{"type": "null"}, APP_NAME]},
                "url": url,
                "events": {
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "array",
                            "items": {"enum": [str(event) for event in contract.HookEvent]},
                        },
                    ]
                },
                "created_by": {"type": "string"},
                "created_at": moment,
                "secret": {
                    "description": "signs every delivery; shown in this answer only",
                    "type": "string",
                    "pattern": f"^{contract.HOOK_SECRET_PREFIX}",
                },
            },
        },
        "auth_config": {
            "type": "object",
            "required": ["oidc"],
            "properties": {
                "oidc": {
                    "description": "the identity provider to sign in with; null: stored tokens only",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["issuer", "client_id", "scopes", "audience"],
                            "properties": {
                                "issuer": url,
                                "client_id": {"type": "string", "minLength": 1},
                                "scopes": {"type": "array", "items": {"type": "string"}},
                                "audience": {"type": "string", "minLength": 1},
                                "redirect_uri": {
                                    "description": "the loopback redirect to use; null: any port on 127.0.0.1",
                                    "oneOf": [{"type": "null"}, url],
                                },
                            },
                        },
                    ],
                }
            },
        },
    }
