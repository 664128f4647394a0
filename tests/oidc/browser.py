"""A browser for the sign-in tests, run by the CLI as ``$BROWSER``: it fills in the embedded
provider's login form with a real HTTP client and follows the redirects back to the CLI.

    BROWSER="python -m tests.oidc.browser %s"   (AETHER_TEST_SIGN_IN_USER / _PASSWORD)
"""

from __future__ import annotations

import html
import os
import re
import sys
from urllib.parse import urljoin

import requests

FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', re.I)


def form_action(page: requests.Response) -> str:
    match = FORM.search(page.text)
    assert match is not None, page.text[:500]
    return urljoin(page.url, html.unescape(match[1]))


def sign_in(
    http: requests.Session, page: requests.Response, user: str, password: str
) -> requests.Response:
    """Submit the login form ``page`` shows; returns where the redirects end."""
    return http.post(form_action(page), data={"username": user, "password": password}, timeout=30)


def hidden_fields(page: requests.Response) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}


def complete(url: str, user: str, password: str, pages: int = 10) -> requests.Response:
    """Open ``url`` and submit every form the provider shows (the device code, the login, the
    confirmation) as a user would, until a page has none; returns that page."""
    with requests.Session() as http:
        page = http.get(url, timeout=30)
        for _ in range(pages):
            if FORM.search(page.text) is None:
                return page
            fields = hidden_fields(page)
            if 'name="username"' in page.text:
                fields.update(username=user, password=password)
            page = http.post(form_action(page), data=fields, timeout=30)
    raise AssertionError(f"still a form after {pages} pages: {page.text[:500]}")


def main() -> int:
    url = sys.argv[1]
    user = os.environ["AETHER_TEST_SIGN_IN_USER"]
    password = os.environ["AETHER_TEST_SIGN_IN_PASSWORD"]
    with requests.Session() as http:
        page = http.get(url, timeout=30)
        landed = sign_in(http, page, user, password)
    # Where the redirects ended: the CLI's loopback page, or the provider's refusal.
    print(f"browser: HTTP {landed.status_code} at {landed.url.split('?')[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
