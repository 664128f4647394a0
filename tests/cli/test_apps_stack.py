"""``aether apps create`` and ``aether apps destroy``, through the installed ``aether`` against
``chalice local`` with moto and the simulated cluster."""

from __future__ import annotations

import json
from pathlib import Path

from infra.local.processes import Service
from tests.cli.test_deploy_stack import (  # noqa: F401 - pytestmark
    aether,
    deploy_json,
    pytestmark,
)
from tests.cli.test_releases_stack import run_json


def test_create_deploy_destroy_and_create_again(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    app = unique_name
    created = run_json(local_api, tmp_path, "apps", "create", app)
    assert created["name"] == app and created["require_signature"] is False
    taken = aether(local_api, tmp_path, "apps", "create", app)
    assert taken.returncode == 20 and "conflict" in taken.stderr
    deployed = deploy_json(local_api, tmp_path, installed_example, app)
    assert deployed["status"] == "succeeded"

    destroyed = aether(local_api, tmp_path, "apps", "destroy", app, "--confirm", app)
    assert destroyed.returncode == 0, destroyed.stderr
    assert destroyed.stdout.startswith(f"Destroyed {app} (1 releases, ")
    gone = aether(local_api, tmp_path, "status", "--app", app)
    assert gone.returncode == 20 and "not found" in gone.stderr
    again = aether(
        local_api, tmp_path, "apps", "destroy", app, "--confirm", app, "--format", "json"
    )
    assert again.returncode == 20
    assert json.loads(again.stdout)["error"]["code"] == "not_found"

    # The name is free: registered again, it deploys from nothing (the artifact uploaded anew).
    assert run_json(local_api, tmp_path, "apps", "create", app)["name"] == app
    redeployed = deploy_json(local_api, tmp_path, installed_example, app)
    assert redeployed["uploaded"] is True and redeployed["digest"] == deployed["digest"]
    assert run_json(local_api, tmp_path, "releases", "--app", app)["releases"][0]["version"] == 1


def test_destroy_without_the_name_confirmed_is_one_line_and_exit_2_and_changes_nothing(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    app = unique_name
    run_json(local_api, tmp_path, "apps", "create", app)
    for extra in ([], ["--confirm", app + "-other"], ["--confirm", ""]):
        refused = aether(local_api, tmp_path, "apps", "destroy", app, *extra)
        assert refused.returncode == 2, (extra, refused.stderr)
        assert refused.stdout == ""
        assert refused.stderr.startswith(f"error: refusing to destroy {app}")
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        as_json = aether(local_api, tmp_path, "apps", "destroy", app, *extra, "--format", "json")
        assert as_json.returncode == 2
        assert json.loads(as_json.stdout)["error"]["code"] == "usage"
    bad_name = aether(local_api, tmp_path, "apps", "destroy", "Bad_Name", "--confirm", "Bad_Name")
    assert bad_name.returncode == 2
    assert run_json(local_api, tmp_path, "list")["apps"]
    assert any(a["name"] == app for a in run_json(local_api, tmp_path, "list")["apps"])


def test_a_developer_cannot_destroy_another_owners_app(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    app = unique_name
    run_json(local_api, tmp_path, "apps", "create", app)
    issued = run_json(
        local_api, tmp_path, "tokens", "create", "--subject", app + "-dev", "--role", "developer"
    )
    refused = aether(
        local_api, tmp_path, "apps", "destroy", app, "--confirm", app, token=issued["token"]
    )
    assert refused.returncode == 20 and "not found" in refused.stderr
    assert any(a["name"] == app for a in run_json(local_api, tmp_path, "list")["apps"])
