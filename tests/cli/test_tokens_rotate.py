"""``aether tokens rotate`` through the installed CLI against ``chalice local``: the token in
use (the session's or AETHER_TOKEN) or one named, and what it says when it cannot."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from infra.local.processes import Service
from tests.conftest import ADMIN_TOKEN

AETHER = str(Path(sys.executable).with_name("aether"))


def aether(
    local_api: Service,
    home: Path,
    *args: str,
    token: str | None = ADMIN_TOKEN,
    file_size_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if k != "AETHER_TOKEN"},
        "AETHER_API_URL": local_api.url,
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    if token is not None:
        environment["AETHER_TOKEN"] = token

    def limit_writes() -> None:
        if file_size_limit is not None:  # Python ignores SIGXFSZ: a longer write is EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [AETHER, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
        check=False,
        preexec_fn=limit_writes,
    )


def developer_token(local_api: Service, home: Path, subject: str) -> str:
    issued = aether(local_api, home, "tokens", "create", "--subject", subject)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


def whoami(local_api: Service, token: str) -> requests.Response:
    return requests.get(
        f"{local_api.url}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def session_file(home: Path) -> Path:
    return home / "cache" / "aether" / "session.json"


def logged_in(local_api: Service, home: Path, token: str) -> dict[str, Any]:
    done = aether(local_api, home, "login", "--token", token, token=None)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(session_file(home).read_text()))


def test_rotating_the_sessions_token_saves_the_new_one_in_its_place(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    old = developer_token(local_api, tmp_path, unique_name)
    before = logged_in(local_api, tmp_path, old)
    done = aether(local_api, tmp_path, "tokens", "rotate", token=None)
    assert done.returncode == 0, done.stderr
    after = json.loads(session_file(tmp_path).read_text())
    new = after["token"]
    assert new != old and new.startswith("aet_")
    assert new not in done.stdout + done.stderr  # saved, never shown
    assert done.stdout.startswith(f"Rotated token {before['token_id']} into {after['token_id']}")
    assert stat.S_IMODE(session_file(tmp_path).stat().st_mode) == 0o600
    assert not [p for p in session_file(tmp_path).parent.iterdir() if p.name.endswith(".tmp")]
    assert (after["subject"], after["role"]) == (unique_name, "developer")
    assert whoami(local_api, old).status_code == 401
    assert whoami(local_api, new).json()["token_id"] == after["token_id"]
    who = aether(local_api, tmp_path, "whoami", "--format", "json", token=None)
    assert json.loads(who.stdout)["token_id"] == after["token_id"], who.stderr


def test_rotating_aether_token_shows_the_new_secret_once(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    old = developer_token(local_api, tmp_path, unique_name)
    done = aether(local_api, tmp_path, "tokens", "rotate", "--expires-in-days", "7", token=old)
    assert done.returncode == 0, done.stderr
    new = done.stdout.strip()
    assert new.startswith("aet_") and new not in done.stderr
    assert "AETHER_TOKEN still holds the old token, now revoked" in done.stderr
    assert whoami(local_api, old).status_code == 401
    assert whoami(local_api, new).json()["subject"] == unique_name
    assert not session_file(tmp_path).exists()


def test_an_admin_rotates_a_named_token_as_json(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    old = developer_token(local_api, tmp_path, unique_name)
    old_id = whoami(local_api, old).json()["token_id"]
    done = aether(local_api, tmp_path, "tokens", "rotate", old_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    rotated = json.loads(done.stdout)
    assert (rotated["replaces"], rotated["subject"], rotated["role"]) == (
        old_id,
        unique_name,
        "developer",
    )
    assert whoami(local_api, rotated["token"]).status_code == 200
    assert whoami(local_api, old).status_code == 401


def test_another_owners_token_is_not_found_in_one_line(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    other = developer_token(local_api, tmp_path, unique_name + "-other")
    other_id = whoami(local_api, other).json()["token_id"]
    mine = developer_token(local_api, tmp_path, unique_name)
    done = aether(local_api, tmp_path, "tokens", "rotate", other_id, token=mine)
    assert done.returncode == 20
    assert done.stderr.strip().splitlines() == [
        f"error: token {other_id} not found (not_found, HTTP 404)"
    ]
    assert whoami(local_api, other).status_code == 200
    assert whoami(local_api, mine).status_code == 200


def test_a_revoked_token_is_refused_in_one_line(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    old = developer_token(local_api, tmp_path, unique_name)
    old_id = whoami(local_api, old).json()["token_id"]
    assert aether(local_api, tmp_path, "tokens", "revoke", old_id).returncode == 0
    done = aether(local_api, tmp_path, "tokens", "rotate", old_id)
    assert done.returncode == 20
    assert done.stderr.strip().splitlines() == [
        f"error: token {old_id} was revoked: issue a new one instead (conflict, HTTP 409)"
    ]


def test_an_access_token_is_not_rotated_without_an_id(local_api: Service, tmp_path: Path) -> None:
    done = aether(local_api, tmp_path, "tokens", "rotate", token="eyJhbGciOiJFUzI1NiJ9.e30.sig")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "access token, which refreshes itself: name a stored token to rotate" in line


def test_a_session_that_cannot_be_saved_still_hands_over_the_new_token(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    """The old token is revoked by then: the new one is printed rather than lost."""
    old = developer_token(local_api, tmp_path, unique_name)
    logged_in(local_api, tmp_path, old)
    done = aether(local_api, tmp_path, "tokens", "rotate", token=None, file_size_limit=64)
    assert done.returncode == 30, done.stderr
    new = done.stdout.strip()
    assert new.startswith("aet_") and new != old
    assert "keep it with `aether login --token`" in done.stderr
    assert json.loads(session_file(tmp_path).read_text())["token"] == old  # untouched
    assert not [p for p in session_file(tmp_path).parent.iterdir() if p.name.endswith(".tmp")]
    assert whoami(local_api, new).status_code == 200
