"""status, rollback, logs, list and the error funnel, through the installed ``aether``
against ``chalice local`` with moto and the simulated cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.local.processes import Service
from tests.cli.test_deploy_stack import aether, deploy_json, pytestmark  # noqa: F401


def change(project: Path, marker: str) -> None:
    """A one-line source change: a new digest for the next deploy."""
    server = project / "server.js"
    server.write_text(server.read_text() + f"\n// {marker}\n")


def two_releases(
    local_api: Service, tmp_path: Path, project: Path, app: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    first = deploy_json(local_api, tmp_path, project, app)
    change(project, "second")
    second = deploy_json(local_api, tmp_path, project, app)
    return first, second


def test_status_of_the_latest_deployment_shows_its_events(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    deployed = deploy_json(local_api, tmp_path, installed_example, unique_name)
    shown = aether(local_api, tmp_path, "status", "--app", unique_name)
    assert shown.returncode == 0, shown.stderr
    assert deployed["deployment_id"] in shown.stdout
    assert "events:" in shown.stdout
    assert "succeeded: 1 of 1 replicas available" in shown.stdout
    as_json = aether(local_api, tmp_path, "status", "--app", unique_name, "--format", "json")
    phases = [event["phase"] for event in json.loads(as_json.stdout)["events"]]
    assert "succeeded" in phases


def test_rollback_shows_each_event_once(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    first, _ = two_releases(local_api, tmp_path, installed_example, unique_name)
    rolled = aether(local_api, tmp_path, "--log-level", "debug", "rollback", "--app", unique_name)
    assert rolled.returncode == 0, rolled.stderr
    said = rolled.stdout + rolled.stderr
    assert first["digest"][:12] in said
    events = aether(local_api, tmp_path, "status", "--app", unique_name, "--format", "json")
    for event in json.loads(events.stdout)["events"]:
        assert said.count(event["message"]) <= 1, event["message"]


def test_rollback_to_an_unknown_deployment_is_not_found(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    two_releases(local_api, tmp_path, installed_example, unique_name)
    refused = aether(local_api, tmp_path, "rollback", "--app", unique_name, "--to", "nope")
    assert refused.returncode == 20
    assert refused.stderr.strip().splitlines() == [
        "error: deployment nope not found (not_found, HTTP 404)"
    ]
