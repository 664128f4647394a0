"""The dashboard as the control plane serves it: strict headers, its own files only, small."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from chalicelib import dashboard
from tests.conftest import Api

# What a first visit downloads of the dashboard's own files (the API's JSON aside).
FIRST_LOAD_BUDGET_BYTES = 48 * 1024


class PageParts(HTMLParser):
    """What the page loads and whether anything in it would run or style inline."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.inline += [f"{tag}[{name}]" for name in named if name.startswith("on")]
        if "style" in named:
            self.inline.append(f"{tag}[style]")
        if tag == "style":
            self.inline.append("style element")
        if tag == "script":
            self.scripts.append(named)
            self._in_script = True
        if tag == "link":
            self.links.append(named)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")


def headers(reply: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in reply.headers.items()}


def parts(html: str) -> PageParts:
    parser = PageParts()
    parser.feed(html)
    return parser


def referenced(html: str) -> set[str]:
    found = parts(html)
    hrefs = [link["href"] for link in found.links] + [script["src"] for script in found.scripts]
    return {str(href).removeprefix("dashboard/") for href in hrefs}


def test_the_page_needs_no_token_and_carries_a_strict_policy(api: Api) -> None:
    reply = api.as_(None).get("/dashboard")
    sent = headers(reply)
    assert reply.status == 200
    assert sent["content-type"] == "text/html; charset=utf-8"
    policy = dict(
        directive.strip().split(" ", 1) for directive in sent["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert "unsafe-inline" not in sent["content-security-policy"]
    assert sent["x-content-type-options"] == "nosniff"
    assert sent["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_handler_or_style(api: Api) -> None:
    found = parts(api.get("/dashboard").body.decode())
    assert found.inline == []
    assert found.scripts == [{"type": "module", "src": "dashboard/main.js"}]


def test_every_file_the_page_names_is_served_with_its_type_and_policy(api: Api) -> None:
    html = api.get("/dashboard").body.decode()
    names = referenced(html)
    assert names == set(dashboard.files()) - {dashboard.PAGE}  # and no file goes unused
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in names:
        reply = api.as_(None).get(f"/dashboard/{name}")
        sent = headers(reply)
        assert reply.status == 200, name
        assert sent["content-type"].startswith(types[name[name.rindex(".") :]])
        assert sent["content-security-policy"] == dashboard.CONTENT_SECURITY_POLICY
        assert sent["x-content-type-options"] == "nosniff"


def test_every_module_is_preloaded_so_the_first_load_is_one_round_of_requests(api: Api) -> None:
    html = api.get("/dashboard").body.decode()
    preloaded = {
        str(link["href"]).removeprefix("dashboard/")
        for link in parts(html).links
        if link.get("rel") == "modulepreload"
    }
    imported: set[str] = set()
    for name, file in dashboard.files().items():
        if name.endswith(".js"):
            imported |= set(re.findall(r"from '\./([a-z-]+\.js)'", file.body))
    assert imported == preloaded


@pytest.mark.parametrize(
    "name", ["index.html", "nothing.js", "..%2Fapp.py", "%2e%2e%2f__init__.py", "__init__.py"]
)
def test_only_the_dashboards_own_files_are_served(api: Api, name: str) -> None:
    reply = api.as_(None).get(f"/dashboard/{name}")
    assert reply.status == 404
    assert reply.json["code"] == "not_found"


def test_an_unchanged_file_is_revalidated_without_a_body(api: Api) -> None:
    first = api.as_(None).get("/dashboard/main.js")
    assert headers(first)["cache-control"] == "no-cache"
    etag = headers(first)["etag"]
    again = api.as_(None).get("/dashboard/main.js", headers={"if-none-match": etag})
    assert again.status == 304
    assert again.body == b""
    other = api.as_(None).get("/dashboard/main.js", headers={"if-none-match": '"stale"'})
    assert other.status == 200


def test_the_scripts_never_parse_html_or_evaluate_strings() -> None:
    sinks = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
        r"createContextualFragment|DOMParser|srcdoc"
    )
    for name, file in dashboard.files().items():
        if name.endswith(".js"):
            assert not sinks.findall(file.body), name


def test_the_first_load_is_small() -> None:
    total = sum(len(file.body.encode()) for file in dashboard.files().values())
    assert total <= FIRST_LOAD_BUDGET_BYTES, f"{total} bytes"


def test_the_dashboard_routes_are_public_in_the_api_description(api: Any) -> None:
    paths = api.as_(None).get("/openapi.json").json["paths"]
    for path in ("/dashboard", "/dashboard/{name}"):
        assert paths[path]["get"]["security"] == []
