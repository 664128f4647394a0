"""Previews: an app of its own cut from a base, with the base's config, destroyed by the
reconciler once expired; against moto and the simulated cluster, through the app."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib import previews
from chalicelib.records import Application, utcnow
from tests.api.test_auth import issue
from tests.api.test_releases import deployed, patched, verified_digest
from tests.conftest import Api

pytestmark = pytest.mark.usefixtures("healthy_cluster")

BASE_SECRET = "base-value-5e0a"


def put_preview(api: Api, name: str, base: str, ttl: Any) -> Any:
    return api.call("PUT", f"/apps/{name}/preview", {"base": base, "ttl_seconds": ttl})


@pytest.fixture
def preview_name(unique_name: str) -> str:
    return f"{unique_name[:50]}-pr1"


def test_a_preview_has_its_own_url_and_its_bases_config(
    api: Api, app_name: str, preview_name: str
) -> None:
    deployed(api, app_name, verified_digest(api, app_name), start_command="node base.js")
    patched(api, app_name, {"set": {"GREETING": BASE_SECRET}})
    created = put_preview(api, preview_name, app_name, 3600)
    assert created.status == 201, created.body
    assert (created.json["preview_of"], created.json["name"]) == (app_name, preview_name)
    assert created.json["expires_at"]

    release = deployed(api, preview_name, verified_digest(api, preview_name))
    assert release["env_names"] == ["GREETING"] and release["start_command"] == "node base.js"
    assert api.get(f"/apps/{preview_name}/config/GREETING").json["value"] == BASE_SECRET
    base_url = api.get(f"/apps/{app_name}").json["latest_deployment"]["url"]
    assert release["url"] and release["url"] != base_url
    # Its config is its own from now on.
    patched(api, preview_name, {"set": {"GREETING": "preview"}})
    assert api.get(f"/apps/{app_name}/config/GREETING").json["value"] == BASE_SECRET
    listed = {a["name"]: a for a in api.get("/apps").json["apps"]}
    assert listed[preview_name]["preview_of"] == app_name
    assert listed[app_name]["preview_of"] is None and listed[app_name]["expires_at"] is None


def test_putting_a_preview_again_moves_its_expiry(
    api: Api, app_name: str, preview_name: str
) -> None:
    first = put_preview(api, preview_name, app_name, 60).json["expires_at"]
    again = put_preview(api, preview_name, app_name, 7200)
    assert again.status == 200, again.body
    assert again.json["expires_at"] > first


def test_the_reconciler_destroys_an_expired_preview_and_nothing_else(
    api: Api, control_plane: Any, app_name: str, preview_name: str, unique_name: str
) -> None:
    deployed(api, app_name, verified_digest(api, app_name))
    assert put_preview(api, preview_name, app_name, 2).status == 201
    deployed(api, preview_name, verified_digest(api, preview_name))
    lasting = f"{unique_name[:50]}-pr2"
    assert put_preview(api, lasting, app_name, 3600).status == 201

    # As the schedule runs it, a few seconds on: no test waits for the clock.
    plane = control_plane.get_data_plane()
    later = utcnow() + timedelta(seconds=10)
    assert previews.destroy_expired(plane.cluster, control_plane.get_store(), now=later) >= 1

    assert api.get(f"/apps/{preview_name}").status == 404
    assert plane.cluster.has_workload(preview_name) is False
    assert api.get(f"/apps/{lasting}").status == 200
    assert api.get(f"/apps/{app_name}").status == 200
    assert plane.cluster.has_workload(app_name) is True
    assert Application.count(preview_name) == 0


@pytest.mark.parametrize("ttl", [0, -5, "24h", 1.5, None, 7 * 24 * 3600 + 1])
def test_a_bad_ttl_is_a_bad_request(api: Api, app_name: str, preview_name: str, ttl: Any) -> None:
    reply = put_preview(api, preview_name, app_name, ttl)
    assert (reply.status, reply.json["code"]) == (400, "bad_request"), reply.body
    assert "ttl_seconds" in reply.json["message"]
    assert api.get(f"/apps/{preview_name}").status == 404


def test_a_name_taken_by_an_app_or_another_bases_preview_is_a_conflict(
    api: Api, app_name: str, preview_name: str, unique_name: str
) -> None:
    other = f"{unique_name[:50]}-oth"
    assert api.post("/apps", {"name": other}).status == 201
    taken = put_preview(api, other, app_name, 60)
    assert (taken.status, taken.json["code"]) == (409, "conflict")
    assert put_preview(api, preview_name, app_name, 60).status == 201
    elsewhere = put_preview(api, preview_name, other, 60)
    assert (elsewhere.status, elsewhere.json["code"]) == (409, "conflict")
    nested = put_preview(api, f"{unique_name[:50]}-pr3", preview_name, 60)
    assert (nested.status, nested.json["code"]) == (400, "bad_request")
    itself = put_preview(api, app_name, app_name, 60)
    assert (itself.status, itself.json["code"]) == (400, "bad_request")


def test_a_base_the_caller_cannot_act_on_is_not_found(
    api: Api, app_name: str, preview_name: str, unique_name: str
) -> None:
    stranger = api.as_(issue(api, unique_name + "-stranger"))
    reply = put_preview(stranger, preview_name, app_name, 60)
    assert (reply.status, reply.json["code"]) == (404, "not_found")
    missing = put_preview(api, preview_name, f"{unique_name[:50]}-none", 60)
    assert (missing.status, missing.json["code"]) == (404, "not_found")
