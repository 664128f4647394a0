"""``aether hooks``, installed, against ``chalice local``: the secret printed once, hooks
listed without it, deliveries attempt by attempt, and each bad input one line and its code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.processes import Service
from tests.conftest import ADMIN_TOKEN, Api
from tests.hooks.conftest import Receiver, settled
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events

AETHER = str(Path(sys.executable).with_name("aether"))

pytestmark = pytest.mark.usefixtures("hook_consumer")


def aether(local_api: Service, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "AETHER_API_URL": local_api.url,
        "AETHER_TOKEN": ADMIN_TOKEN,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return subprocess.run(
        [AETHER, *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def test_add_list_deliveries_remove(
    local_api: Service, tmp_path: Path, api: Api, app_name: str, receiver: Receiver
) -> None:
    added = aether(
        local_api, tmp_path, "hooks", "add", receiver.url, "--app", app_name,
        "--event", "artifact.verified", "--event", "artifact.rejected",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "\n" not in secret
    assert "shown only now" in added.stderr

    listed = aether(local_api, tmp_path, "hooks", "list", "--app", app_name, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (hook,) = json.loads(listed.stdout)["hooks"]
    assert hook["events"] == ["artifact.rejected", "artifact.verified"]
    as_text = aether(local_api, tmp_path, "hooks", "list")
    assert hook["hook_id"] in as_text.stdout
    assert secret not in listed.stdout + as_text.stdout

    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    # Verified first: a delivery that never arrives is then the hooks' fault, not the upload's.
    assert api.get(f"/artifacts/{digest}").json["status"] == "verified"
    receiver.wait_for("artifact.verified")
    settled(api, hook["hook_id"])
    shown = aether(local_api, tmp_path, "hooks", "deliveries", hook["hook_id"])
    assert shown.returncode == 0, shown.stderr
    (header, row) = shown.stdout.strip().splitlines()
    assert header.split()[:4] == ["TIME", "EVENT", "EVENT", "ID"]
    assert "artifact.verified" in row and " delivered " in row and " 200 " in row
    assert " ms" in row

    removed = aether(local_api, tmp_path, "hooks", "remove", hook["hook_id"])
    assert removed.returncode == 0, removed.stderr
    assert aether(local_api, tmp_path, "hooks", "list", "--app", app_name).stdout.startswith(
        "No hooks"
    )


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["add", "not-a-url", "--app", "some-app"], 2, "not an absolute https:// URL"),
        (["add", "https://h.example.com/", "--event", "artifact.exploded"], 2, "'--event'"),
        (["add", "https://h.example.com/", "--app", "Bad App"], 2, "not a valid app name"),
        (["add", "https://h.example.com/", "--app", "x", "--global"], 2, "not both"),
        (["remove", "nope"], 2, "not a hook id"),
        (["deliveries", "nope"], 2, "not a hook id"),
        (["add", "https://10.0.0.1/x", "--app", "some-app"], 20, "private or reserved address"),
        (["add", "https://h.example.com/", "--app", "no-such-app-x"], 20, "not found"),
        (["remove", "00000000-0000-4000-8000-000000000000"], 20, "not found"),
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(
    local_api: Service, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    done = aether(local_api, tmp_path, "hooks", *args)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert done.stdout == ""
    if code != 2:  # click's usage errors add the usage lines above theirs
        assert len(done.stderr.strip().splitlines()) == 1
