"""The OpenAPI 3 description of the control plane (a test keeps it equal to the routes)."""

from __future__ import annotations

import re
from typing import Any

from chalicelib import contract

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/dashboard", "/dashboard/{name}"}

_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_OBJECT = {"type": "object"}
_DIGEST = {"type": "string", "pattern": f"^{contract.DIGEST_PATTERN}$"}
_APP_NAME = {"type": "string", "pattern": f"^{contract.APP_NAME_PATTERN}$"}

# (method, path, summary, request body schema or None, success status)
_OPERATIONS: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("get", "/healthz", "Liveness", None, 200),
    ("get", "/readyz", "Readiness of DynamoDB, S3 and Kubernetes", None, 200),
    ("get", "/openapi.json", "This document", None, 200),
    (
        "get",
        "/dashboard",
        "The web dashboard (HTML; it calls this API with a pasted token)",
        None,
        200,
    ),
    ("get", "/dashboard/{name}", "A script, style sheet or icon of the dashboard", None, 200),
    ("get", "/whoami", "The token's subject and role", None, 200),
    (
        "post",
        "/tokens",
        "Issue a token (admin; developers rotate their own); the secret is shown once",
        {
            "type": "object",
            "properties": {
                "subject": {"type": "string"},
                "role": {"enum": ["admin", "developer"]},
                "expires_in_days": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": contract.MAX_TOKEN_DAYS,
                },
            },
        },
        201,
    ),
    ("get", "/tokens", "List token metadata", None, 200),
    ("delete", "/tokens/{token_id}", "Revoke a token", None, 200),
    (
        "post",
        "/apps",
        "Register an application",
        {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _APP_NAME, "require_signature": {"type": "boolean"}},
        },
        201,
    ),
    ("get", "/apps", "List applications with their latest deployment", None, 200),
    ("get", "/apps/{app_name}", "Show an application", None, 200),
    (
        "post",
        "/apps/{app_name}/public-keys",
        "Register an Ed25519 public key",
        {
            "type": "object",
            "required": ["public_key_hex"],
            "properties": {"public_key_hex": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}},
        },
        201,
    ),
    ("get", "/apps/{app_name}/public-keys", "List an application's public keys", None, 200),
    (
        "delete",
        "/apps/{app_name}/public-keys/{key_id}",
        "Deactivate a public key",
        None,
        200,
    ),
    (
        "post",
        "/apps/{app_name}/rollback",
        "Redeploy an earlier verified artifact (default: the last good one before the latest)",
        {"type": "object", "properties": {"to": {"type": "string"}}},
        201,
    ),
    (
        "get",
        "/apps/{app_name}/logs",
        "Pod log lines after ?since (RFC 3339), ?tail=N, ?deployment=ID; next_since pages on",
        None,
        200,
    ),
    (
        "get",
        "/apps/{app_name}/deployments",
        "Release history, newest first (limit, cursor)",
        None,
        200,
    ),
    ("head", "/artifacts/{digest}", "200 when stored and verified, 404 otherwise", None, 200),
    (
        "post",
        "/artifacts",
        "Request a presigned upload (headers X-Aether-Artifact-Digest, X-Aether-Signature)",
        {
            "type": "object",
            "required": ["app_name", "size_bytes"],
            "properties": {
                "app_name": _APP_NAME,
                "size_bytes": {"type": "integer", "minimum": 1},
                "runtime": {"enum": list(contract.supported_runtimes())},
                "platform": {"enum": list(contract.PLATFORMS)},
            },
        },
        201,
    ),
    ("get", "/artifacts", "Recent artifacts (metadata only)", None, 200),
    ("get", "/artifacts/{digest}", "One artifact and its verification state", None, 200),
    (
        "get",
        "/artifacts/{digest}/download",
        "307 to a short-lived presigned GET (the app's pull token)",
        None,
        307,
    ),
    (
        "post",
        "/deployments",
        "Deploy a verified artifact (idempotent while the same one is in flight)",
        {
            "type": "object",
            "required": ["app_name", "artifact_digest"],
            "properties": {
                "app_name": _APP_NAME,
                "artifact_digest": _DIGEST,
                "runtime": {"enum": list(contract.supported_runtimes())},
                "start_command": {"type": "string"},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "replicas": {"type": "integer", "minimum": 1, "maximum": contract.MAX_REPLICAS},
            },
        },
        201,
    ),
    ("get", "/deployments/{deployment_id}", "A deployment and its events", None, 200),
]


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, request_schema, status in _OPERATIONS:
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": _operation_id(method, path),
            "responses": {
                str(status): {
                    "description": "success",
                    "content": {"application/json": {"schema": _OBJECT}},
                },
                "default": {
                    "description": "error envelope",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_parameters(path)
        ]
        if parameters:
            operation["parameters"] = parameters
        if request_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": request_schema}},
            }
        if path in PUBLIC:
            operation["security"] = []
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "Aether control plane", "version": "1.0.0"},
        "security": [{"bearer_auth": []}],
        "components": {
            "securitySchemes": {"bearer_auth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR},
        },
        "paths": paths,
    }


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[a-z0-9]+", path.replace("_", ""))
    return "_".join([method, *words])


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
