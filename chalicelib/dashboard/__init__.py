"""The web dashboard: one page and its static files, served by the control plane itself.

The page is plain HTML, CSS and ES modules (no build step): it talks only to
this API, with the bearer token the user pastes, kept in the tab's
``sessionStorage`` and sent as ``Authorization`` (no cookie, so nothing for a
cross-site request to ride on). The files ship inside the Lambda package
because they live under ``chalicelib/``.

Only the files found in ``static/`` when the module loads are served, by
exact name: nothing from a request reaches the filesystem.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from chalice.app import Response

from chalicelib.errors import NotFound

STATIC = Path(__file__).with_name("static")
PAGE = "index.html"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Scripts, styles and images come from this origin's files only, never inline;
# the API is the only place the page connects to. Trusted Types make the
# browser refuse any HTML string sink (innerHTML and the like), so API values
# can only ever become text.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True)
class StaticFile:
    body: str
    content_type: str
    etag: str


@functools.cache
def files() -> dict[str, StaticFile]:
    """Every servable file by name, read once per warm container."""
    found: dict[str, StaticFile] = {}
    for path in sorted(STATIC.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(body.encode()).hexdigest()[:20]
        found[path.name] = StaticFile(body, content_type, f'"{digest}"')
    return found


def page(if_none_match: str | None) -> Response:
    """``GET /dashboard``: the page itself."""
    return _serve(files()[PAGE], if_none_match)


def asset(name: str, if_none_match: str | None) -> Response:
    """``GET /dashboard/{name}``: a script, style sheet or icon of the page."""
    found = files().get(name)
    if found is None or name == PAGE:
        raise NotFound(f"the dashboard has no file {name}")
    return _serve(found, if_none_match)


def _serve(file: StaticFile, if_none_match: str | None) -> Response:
    # Revalidated on every load (a deploy changes the files behind the same names);
    # an unchanged file costs a 304 with no body.
    headers: dict[str, str | list[str]] = {
        **SECURITY_HEADERS,
        "Cache-Control": "no-cache",
        "ETag": file.etag,
    }
    if if_none_match is not None and file.etag in _etags(if_none_match):
        return Response(body="", status_code=304, headers=headers)
    headers["Content-Type"] = file.content_type
    return Response(body=file.body, status_code=200, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
