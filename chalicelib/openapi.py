"""The OpenAPI 3.1 document, generated from the Chalice app's routes and their docstrings.

Each view's docstring is its operation: the first line is the summary, the
paragraphs after it the description, and these lines say the rest::

    Token: none                      no bearer token needed
    Body: new_app                    a JSON body (``schemas.bodies``); "(optional)" after it
    Query: limit, cursor             query parameters (``schemas.parameters``)
    Headers: X-Aether-Signature      header parameters (``schemas.parameters``)
    Returns: text/html               what a success carries, when it is not JSON
    Schema: auth_config              the JSON a success carries (``schemas.responses``)
    201: the application             a success status and what it returns
    Errors: conflict                 error codes beyond the ones every route can answer

Path parameters come from the route itself. A new route appears here without
editing anything else; a name it uses that ``schemas`` lacks is an error.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice.app import Chalice, RouteEntry

from chalicelib import errors, schemas

_ENVELOPE = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_FIELD = re.compile(r"(Token|Body|Query|Headers|Returns|Schema|Errors|[1-5]\d\d):\s*(.*)")


@dataclass
class _Operation:
    """What a view's docstring says about its operation."""

    summary: str
    description: str = ""
    public: bool = False
    body: str | None = None
    body_required: bool = True
    query: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    media_types: list[str] = field(default_factory=lambda: ["application/json"])
    schema: str | None = None
    successes: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def document(
    app: Chalice,
    max_artifact_bytes: int,
    max_run_timeout_seconds: int,
    max_preview_ttl_seconds: int,
) -> dict[str, Any]:
    """The description of every route ``app`` serves, as of today (runtimes change)."""
    bodies = schemas.bodies(max_artifact_bytes, max_run_timeout_seconds, max_preview_ttl_seconds)
    parameters = schemas.parameters()
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            paths.setdefault(path, {})[method.lower()] = _operation(entry, bodies, parameters)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aether control plane",
            "version": "1.0.0",
            "description": "Every error is the envelope {code, message} with the status of its code.",
        },
        "security": [{"bearer_auth": []}],
        "components": {
            "securitySchemes": {"bearer_auth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ENVELOPE},
        },
        "paths": paths,
    }


def _operation(
    entry: RouteEntry, bodies: Mapping[str, Any], parameters: Mapping[str, Any]
) -> dict[str, Any]:
    said = _parse(entry.view_function)
    where = f"{entry.method} {entry.uri_pattern} ({entry.view_name})"
    listed = [
        _parameter(name, "path", parameters, where, required=True) for name in entry.view_args
    ]
    listed += [_parameter(name, "query", parameters, where) for name in said.query]
    listed += [_parameter(name, "header", parameters, where) for name in said.headers]
    operation: dict[str, Any] = {
        "operationId": entry.view_name,
        "summary": said.summary,
        "responses": _responses(entry, said, has_input=bool(listed or said.body)),
    }
    if said.description:
        operation["description"] = said.description
    if listed:
        operation["parameters"] = listed
    if said.body is not None:
        if said.body not in bodies:
            raise ValueError(f"{where}: no request body schema named {said.body!r}")
        operation["requestBody"] = {
            "required": said.body_required,
            "content": {"application/json": {"schema": bodies[said.body]}},
        }
    if said.public:
        operation["security"] = []
    return operation


def _parse(view: Any) -> _Operation:
    doc = inspect.getdoc(view) or ""
    summary, _, rest = doc.partition("\n")
    said = _Operation(summary=summary.strip())
    description: list[str] = []
    fields: list[tuple[str, str]] = []
    for line in rest.splitlines():
        match = _FIELD.fullmatch(line.strip())
        if match is not None:
            fields.append((match[1], match[2]))
        elif fields and line[:1].isspace():
            fields[-1] = (fields[-1][0], f"{fields[-1][1]} {line.strip()}")  # continued
        else:
            description.append(line)
    for key, value in fields:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if key == "Token":
            said.public = value.strip() == "none"
        elif key == "Body":
            said.body, _, optional = value.partition(" ")
            said.body_required = optional.strip() != "(optional)"
        elif key == "Query":
            said.query = names
        elif key == "Headers":
            said.headers = names
        elif key == "Returns":
            said.media_types = names
        elif key == "Schema":
            said.schema = value.strip()
        elif key == "Errors":
            said.errors = names
        else:
            said.successes[int(key)] = value.strip()
    said.description = "\n".join(description).strip()
    return said


def _parameter(
    name: str, where_in: str, parameters: Mapping[str, Any], where: str, required: bool = False
) -> dict[str, Any]:
    if name not in parameters:
        raise ValueError(f"{where}: no parameter schema named {name!r}")
    return {"name": name, "in": where_in, "required": required, **parameters[name]}


def _responses(entry: RouteEntry, said: _Operation, has_input: bool) -> dict[str, Any]:
    codes = set(said.errors) | {"internal", "service_unavailable"}
    if has_input:
        codes.add("bad_request")
    if said.body is not None:
        codes.add("unsupported_media_type")
    if not said.public:
        codes |= {"unauthorized", "forbidden"}
    known = errors.by_code()
    unknown = sorted(codes - known.keys())
    if unknown:
        raise ValueError(f"{entry.view_name}: unknown error codes {unknown}")
    bodiless = entry.method == "HEAD"
    json_schema: dict[str, Any] = {"type": "object"}
    if said.schema is not None:
        described = schemas.responses()
        if said.schema not in described:
            raise ValueError(f"{entry.view_name}: no response schema named {said.schema!r}")
        json_schema = described[said.schema]
    responses: dict[str, Any] = {}
    for status, what in sorted((said.successes or {200: "success"}).items()):
        responses[str(status)] = {"description": what}
        if not bodiless and 200 <= status < 300 and status != 204:
            responses[str(status)]["content"] = {
                media: {
                    "schema": json_schema if media == "application/json" else {"type": "string"}
                }
                for media in said.media_types
            }
    by_status: dict[int, list[str]] = {}
    for code in sorted(codes):
        by_status.setdefault(known[code].status, []).append(code)
    for status, named in sorted(by_status.items()):
        response: dict[str, Any] = {"description": ", ".join(named)}
        if not bodiless:
            schema = {
                "allOf": [{"$ref": "#/components/schemas/Error"}],
                "properties": {"code": {"enum": named}},
            }
            response["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = response
    return responses
