"""Releases: versions, config that persists and is sealed, scale, restart, rollback by version.

Against moto's DynamoDB and KMS and the simulated cluster, through the app in-process.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.test_auth import issue
from tests.conftest import APPS_NAMESPACE, Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events

pytestmark = pytest.mark.usefixtures("healthy_cluster")

SECRET = "s3cr3t-value-7f1d"


def verified_digest(api: Api, app_name: str) -> str:
    digest = upload(api, app_name, random_bytes())
    deliver_pending_events()
    return digest


def settled(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """Read the release (each read reconciles) until it has finished."""
    for _ in range(150):
        body = api.get(f"/deployments/{body['deployment_id']}").json
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"the release never finished: {body}")


def deployed(api: Api, app_name: str, digest: str, **extra: Any) -> dict[str, Any]:
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **extra})
    assert reply.status in (200, 201), reply.body
    done = settled(api, reply.json)
    assert done["status"] == "succeeded", done
    return done


def patched(api: Api, app_name: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    reply = api.call("PATCH", f"/apps/{app_name}/config", body)
    assert reply.status == status, reply.body
    assert SECRET not in reply.body.decode()
    return settled(api, reply.json)


def releases_of(api: Api, app_name: str) -> list[dict[str, Any]]:
    reply = api.get(f"/apps/{app_name}/releases")
    assert reply.status == 200, reply.body
    assert SECRET not in reply.body.decode()
    return list(reply.json["releases"])


def kube(kube_simulator: Any, call: Callable[[Any, Any], Any]) -> Any:
    import kubernetes

    from chalicelib.kube import api_client

    with api_client(str(kube_simulator.kubeconfig)) as client:
        return call(kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client))


def config_secrets(kube_simulator: Any, app_name: str) -> dict[str, dict[str, str]]:
    found = kube(
        kube_simulator,
        lambda core, _: (
            core.list_namespaced_secret(
                APPS_NAMESPACE, label_selector=f"app_name={app_name},aether.dev/config=true"
            ).items
        ),
    )
    return {
        s.metadata.name: {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}
        for s in found
    }


# -- versions and descriptions ----------------------------------------------------------------


def test_every_change_is_a_numbered_release_with_what_changed(api: Api, app_name: str) -> None:
    digest = verified_digest(api, app_name)
    first = deployed(api, app_name, digest)
    assert (first["version"], first["description"]) == (1, f"deploy {digest[:7]}")
    set_ = patched(api, app_name, {"set": {"GREETING": SECRET, "MODE": "a"}})
    unset = patched(api, app_name, {"unset": ["MODE"]})
    scaled = settled(api, api.post(f"/apps/{app_name}/scale", {"replicas": 3}).json)
    back = settled(api, api.post(f"/apps/{app_name}/rollback", {"version": "v1"}).json)
    listed = releases_of(api, app_name)
    assert [(r["version"], r["description"]) for r in listed] == [
        (5, "rollback to v1"),
        (4, "scale to 3"),
        (3, "unset MODE"),
        (2, "set GREETING, MODE"),
        (1, f"deploy {digest[:7]}"),
    ]
    assert {r["artifact_digest"] for r in listed} == {digest}
    assert set_["env_names"] == ["GREETING", "MODE"]
    assert unset["env_names"] == ["GREETING"]
    assert scaled["replicas"] == 3 and scaled["env_names"] == ["GREETING"]
    # A rollback takes v1's config (none) at today's replicas.
    assert back["env_names"] == [] and back["replicas"] == 3
    assert back["rollback_of"] == first["deployment_id"]
    # The old route lists the same records.
    history = api.get(f"/apps/{app_name}/deployments").json["deployments"]
    assert [d["version"] for d in history] == [5, 4, 3, 2, 1]


def test_a_release_cut_meanwhile_is_built_upon_never_lost(api: Api, app_name: str) -> None:
    """Another change recorded between reading the latest release and writing the next one
    fails the write's condition; the change is built again on top of it, one version later."""
    from dataclasses import replace

    import app as control_plane
    from chalicelib import apps, auth, releases
    from tests.conftest import ADMIN_TOKEN

    deployed(api, app_name, verified_digest(api, app_name))
    who = auth.authenticate(f"Bearer {ADMIN_TOKEN}", control_plane.env_token_hashes())
    seen: list[int | None] = []

    def build(current: Any) -> releases.Wanted:
        seen.append(current.version)
        if len(seen) == 1:  # meanwhile, another client sets A
            assert api.call("PATCH", f"/apps/{app_name}/config", {"set": {"A": "1"}}).status == 201
        wanted = releases.wanted_from(control_plane.get_vault(), current, "set B")
        return replace(wanted, env={**wanted.env, "B": "2"})

    release, is_new = releases.cut(
        who, control_plane.release_context(), apps.load(who, app_name), build
    )
    assert is_new and seen == [1, 2]
    assert (release.version, release.config_names()) == (3, ["A", "B"])
    assert [r["version"] for r in releases_of(api, app_name)] == [3, 2, 1]


# -- config that persists ------------------------------------------------------------------------


def test_a_config_patch_is_a_release_of_the_same_artifact_and_persists(
    api: Api, app_name: str
) -> None:
    digest = verified_digest(api, app_name)
    deployed(api, app_name, digest, env={"FIRST": "1"})
    release = patched(api, app_name, {"set": {"GREETING": SECRET}})
    assert release["artifact_digest"] == digest
    assert release["env_names"] == ["FIRST", "GREETING"]
    # A plain deploy of a new artifact keeps the config.
    newer = verified_digest(api, app_name)
    again = deployed(api, app_name, newer)
    assert again["env_names"] == ["FIRST", "GREETING"]
    value = api.get(f"/apps/{app_name}/config/GREETING")
    assert value.json == {
        "app_name": app_name,
        "version": again["version"],
        "name": "GREETING",
        "value": SECRET,
    }


def test_the_same_patch_twice_is_one_release(api: Api, app_name: str) -> None:
    deployed(api, app_name, verified_digest(api, app_name))
    first = api.call("PATCH", f"/apps/{app_name}/config", {"set": {"GREETING": SECRET}})
    again = api.call("PATCH", f"/apps/{app_name}/config", {"set": {"GREETING": SECRET}})
    assert (first.status, again.status) == (201, 200)
    assert again.json["deployment_id"] == first.json["deployment_id"]
    settled(api, first.json)
    after = api.call("PATCH", f"/apps/{app_name}/config", {"set": {"GREETING": SECRET}})
    assert after.status == 200 and after.json["deployment_id"] == first.json["deployment_id"]
    gone = api.call("PATCH", f"/apps/{app_name}/config", {"unset": ["NEVER_SET"]})
    assert gone.status == 200 and gone.json["deployment_id"] == first.json["deployment_id"]
    assert len(releases_of(api, app_name)) == 2


def test_the_config_route_names_values_and_never_shows_one(api: Api, app_name: str) -> None:
    deployed(api, app_name, verified_digest(api, app_name))
    patched(api, app_name, {"set": {"GREETING": SECRET, "API_KEY": SECRET}})
    listed = api.get(f"/apps/{app_name}/config")
    assert listed.json == {"app_name": app_name, "version": 2, "names": ["API_KEY", "GREETING"]}
    assert SECRET not in listed.body.decode()
    for path in (f"/apps/{app_name}", "/apps", f"/apps/{app_name}/deployments"):
        assert SECRET not in api.get(path).body.decode(), path
    missing = api.get(f"/apps/{app_name}/config/NOPE")
    assert missing.status == 404 and missing.json["code"] == "not_found"


def test_the_config_route_shows_values_to_the_owner_only_when_asked(
    api: Api, unique_name: str
) -> None:
    alice = api.as_(issue(api, unique_name + "-alice"))
    bob = api.as_(issue(api, unique_name + "-bob"))
    assert alice.post("/apps", {"name": unique_name}).status == 201
    deployed(alice, unique_name, verified_digest(alice, unique_name))
    patched(alice, unique_name, {"set": {"GREETING": SECRET, "MODE": "a"}})
    shown = alice.get(f"/apps/{unique_name}/config?values=true").json
    assert (shown["names"], shown["values"]) == (
        ["GREETING", "MODE"],
        {"GREETING": SECRET, "MODE": "a"},
    )
    assert api.get(f"/apps/{unique_name}/config?values=true").json["values"]["MODE"] == "a"
    assert "values" not in alice.get(f"/apps/{unique_name}/config?values=false").json
    refused = bob.get(f"/apps/{unique_name}/config?values=true")
    assert (refused.status, refused.json["code"]) == (404, "not_found")
    assert SECRET not in refused.body.decode()
    bad = alice.get(f"/apps/{unique_name}/config?values=yes")
    assert (bad.status, bad.json["code"]) == (400, "bad_request")


def test_project_defaults_fill_only_what_was_never_set(api: Api, app_name: str) -> None:
    digest = verified_digest(api, app_name)
    defaults = {"env": {"LOG_LEVEL": "info"}, "start_command": "node a.js", "replicas": 2}
    first = deployed(api, app_name, digest, defaults=defaults)
    assert (first["start_command"], first["replicas"]) == ("node a.js", 2)
    patched(api, app_name, {"set": {"LOG_LEVEL": "debug"}})
    settled(api, api.post(f"/apps/{app_name}/scale", {"replicas": 1}).json)
    changed = {
        "env": {"LOG_LEVEL": "warn", "NEW": "x"},
        "start_command": "node b.js",
        "replicas": 4,
    }
    later = deployed(api, app_name, verified_digest(api, app_name), defaults=changed)
    # What was set (the value, the scale) stays; what came from the defaults follows them.
    assert later["replicas"] == 1
    assert later["start_command"] == "node b.js"
    assert later["env_names"] == ["LOG_LEVEL", "NEW"]
    assert api.get(f"/apps/{app_name}/config/LOG_LEVEL").json["value"] == "debug"
    # A start command that was asked for persists over the defaults.
    asked = deployed(api, app_name, digest, start_command="node c.js", defaults=changed)
    plain = deployed(api, app_name, verified_digest(api, app_name), defaults=defaults)
    assert asked["start_command"] == plain["start_command"] == "node c.js"


# -- sealed at rest, only in the release's own Secret ------------------------------------------------


def test_values_are_sealed_in_the_records_and_only_in_the_releases_secret(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    from chalicelib.records import Deployment

    deployed(api, app_name, verified_digest(api, app_name))
    release = patched(api, app_name, {"set": {"GREETING": SECRET}})
    record = Deployment.get(release["deployment_id"])
    stored = json.dumps(record.attribute_values, default=str)
    assert SECRET not in stored
    assert record.config_sealed and record.legacy_env() == {}
    # The Deployment and its pods, read back through the Kubernetes API, hold no value.
    workload = kube(
        kube_simulator, lambda _, apps: apps.read_namespaced_deployment(app_name, APPS_NAMESPACE)
    )
    pods = kube(
        kube_simulator,
        lambda core, _: (
            core.list_namespaced_pod(APPS_NAMESPACE, label_selector=f"app_name={app_name}").items
        ),
    )
    events = kube(kube_simulator, lambda core, _: core.list_namespaced_event(APPS_NAMESPACE).items)
    for shown in (workload, *pods, *events):
        assert SECRET not in json.dumps(shown.to_dict(), default=str)
    container = workload.spec.template.spec.containers[0]
    secret_name = f"{app_name}-config-{release['deployment_id']}"
    assert [source.secret_ref.name for source in container.env_from] == [secret_name]
    # Once it serves, the older releases' config Secrets are gone; its own holds the value.
    assert config_secrets(kube_simulator, app_name) == {secret_name: {"GREETING": SECRET}}


def test_a_sealed_config_does_not_open_for_another_app(api: Api, app_name: str) -> None:
    import botocore.exceptions

    import app as control_plane

    deployed(api, app_name, verified_digest(api, app_name))
    release = patched(api, app_name, {"set": {"GREETING": SECRET}})
    from chalicelib.records import Deployment

    sealed = Deployment.get(release["deployment_id"]).config_sealed
    vault = control_plane.get_vault()
    assert vault.open(app_name, sealed) == {"GREETING": SECRET}
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidCiphertext"):
        vault.open(app_name + "-other", sealed)


# -- scale and restart ---------------------------------------------------------------------------------


def running_pods(kube_simulator: Any, app_name: str) -> list[Any]:
    pods = kube(
        kube_simulator,
        lambda core, _: (
            core.list_namespaced_pod(APPS_NAMESPACE, label_selector=f"app_name={app_name}").items
        ),
    )
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def wait_pods(kube_simulator: Any, app_name: str, count: int) -> list[Any]:
    for _ in range(150):
        pods = running_pods(kube_simulator, app_name)
        if len(pods) == count:
            return pods
        time.sleep(0.1)
    raise AssertionError(f"{app_name} never had {count} pods")


def test_scale_to_two_then_zero_keeps_the_app(api: Api, app_name: str, kube_simulator: Any) -> None:
    deployed(api, app_name, verified_digest(api, app_name))
    two = api.post(f"/apps/{app_name}/scale", {"replicas": 2})
    assert two.status == 201
    assert settled(api, two.json)["status"] == "succeeded"
    wait_pods(kube_simulator, app_name, 2)
    again = api.post(f"/apps/{app_name}/scale", {"replicas": 2})
    assert again.status == 200 and again.json["deployment_id"] == two.json["deployment_id"]
    zero = settled(api, api.post(f"/apps/{app_name}/scale", {"replicas": 0}).json)
    assert zero["status"] == "succeeded" and zero["replicas"] == 0
    wait_pods(kube_simulator, app_name, 0)
    assert app_name in [a["name"] for a in api.get("/apps").json["apps"]]


def test_restart_replaces_every_pod_and_keeps_the_release(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    deployed(api, app_name, verified_digest(api, app_name), replicas=2)
    before = {p.metadata.name for p in wait_pods(kube_simulator, app_name, 2)}
    reply = api.post(f"/apps/{app_name}/restart")
    assert reply.status == 202, reply.body
    assert reply.json["status"] == "rolling_out" and reply.json["restarted_at"]
    done = settled(api, reply.json)
    assert done["status"] == "succeeded" and done["version"] == 1
    for _ in range(150):
        after = {p.metadata.name for p in running_pods(kube_simulator, app_name)}
        if len(after) == 2 and not after & before:
            break
        time.sleep(0.1)
    assert len(after) == 2 and not after & before, (before, after)
    assert "restart" in [e["phase"] for e in done["events"]]
    assert len(releases_of(api, app_name)) == 1


def test_a_restart_superseded_by_a_deploy_is_finished_as_superseded(
    api: Api, app_name: str
) -> None:
    first = deployed(api, app_name, verified_digest(api, app_name))
    restarting = api.post(f"/apps/{app_name}/restart")
    assert restarting.json["status"] == "rolling_out", restarting.body
    newer = deployed(api, app_name, verified_digest(api, app_name))
    # The restart's release is read once more (as the CLI following it, or the schedule).
    restarted = settled(api, restarting.json)
    assert (restarted["deployment_id"], restarted["status"]) == (first["deployment_id"], "failed")
    assert restarted["reason"] == f"superseded by {newer['deployment_id']}", restarted
    assert [r["status"] for r in releases_of(api, app_name)] == ["succeeded", "failed"]


def test_restart_without_a_release_that_succeeded_is_a_conflict(api: Api, app_name: str) -> None:
    reply = api.post(f"/apps/{app_name}/restart")
    assert (reply.status, reply.json["code"]) == (409, "conflict")


# -- bad input changes nothing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("PATCH", "config", {"set": {"1BAD": "x"}}, 400, "bad_request"),
        ("PATCH", "config", {"set": {"WITH-DASH": "x"}}, 400, "bad_request"),
        ("PATCH", "config", {"set": {"PORT": "1"}}, 400, "bad_request"),
        ("PATCH", "config", {"set": {"A": 1}}, 400, "bad_request"),
        ("PATCH", "config", {"set": {"A": "a\x00b"}}, 400, "bad_request"),
        ("PATCH", "config", {"set": {"A": "x" * 8193}}, 413, "payload_too_large"),
        ("PATCH", "config", {"unset": ["bad-name"]}, 400, "bad_request"),
        ("PATCH", "config", {"unset": "A"}, 400, "bad_request"),
        ("PATCH", "config", {}, 400, "bad_request"),
        ("PATCH", "config", {"set": {"A": "1"}, "unset": ["A"]}, 400, "bad_request"),
        ("POST", "scale", {"replicas": -1}, 400, "bad_request"),
        ("POST", "scale", {"replicas": 21}, 400, "bad_request"),
        ("POST", "scale", {"replicas": "2"}, 400, "bad_request"),
        ("POST", "scale", {}, 400, "bad_request"),
        ("POST", "rollback", {"version": "v99"}, 404, "not_found"),
        ("POST", "rollback", {"version": "x"}, 400, "bad_request"),
        ("POST", "rollback", {"version": 0}, 400, "bad_request"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    api: Api, app_name: str, method: str, path: str, body: Any, status: int, code: str
) -> None:
    deployed(api, app_name, verified_digest(api, app_name), env={"KEPT": "1"})
    reply = api.call(method, f"/apps/{app_name}/{path}", body)
    assert (reply.status, reply.json["code"]) == (status, code), reply.body
    assert "x" * 100 not in reply.body.decode()  # a refusal never echoes a value
    assert len(releases_of(api, app_name)) == 1
    assert api.get(f"/apps/{app_name}/config").json["names"] == ["KEPT"]


def test_too_many_or_too_large_values_in_all_are_refused(api: Api, app_name: str) -> None:
    deployed(api, app_name, verified_digest(api, app_name))
    many = {f"K{i}": "v" for i in range(101)}
    reply = api.call("PATCH", f"/apps/{app_name}/config", {"set": many})
    assert (reply.status, reply.json["code"]) == (400, "bad_request")
    large = {f"K{i}": "v" * 8000 for i in range(5)}
    reply = api.call("PATCH", f"/apps/{app_name}/config", {"set": large})
    assert (reply.status, reply.json["code"]) == (413, "payload_too_large")
    assert len(releases_of(api, app_name)) == 1


def test_changes_before_the_first_release_are_conflicts(api: Api, app_name: str) -> None:
    for method, path, body in (
        ("PATCH", "config", {"set": {"A": "1"}}),
        ("POST", "scale", {"replicas": 2}),
    ):
        reply = api.call(method, f"/apps/{app_name}/{path}", body)
        assert (reply.status, reply.json["code"]) == (409, "conflict")


def test_an_unknown_app_is_not_found_everywhere(api: Api, unique_name: str) -> None:
    for method, path, body in (
        ("GET", "releases", None),
        ("GET", "config", None),
        ("GET", "config/GREETING", None),
        ("PATCH", "config", {"set": {"A": "1"}}),
        ("POST", "scale", {"replicas": 1}),
        ("POST", "restart", None),
    ):
        reply = api.call(method, f"/apps/{unique_name}/{path}", body)
        assert (reply.status, reply.json["code"]) == (404, "not_found"), (method, path)


def test_a_developer_acts_on_its_own_apps_only(api: Api, unique_name: str) -> None:
    alice = api.as_(issue(api, unique_name + "-alice"))
    bob = api.as_(issue(api, unique_name + "-bob"))
    assert alice.post("/apps", {"name": unique_name}).status == 201
    digest = verified_digest(alice, unique_name)
    deployed(alice, unique_name, digest)
    assert patched(alice, unique_name, {"set": {"GREETING": SECRET}})["version"] == 2
    assert alice.get(f"/apps/{unique_name}/config/GREETING").json["value"] == SECRET
    assert api.get(f"/apps/{unique_name}/config/GREETING").json["value"] == SECRET  # admin
    for method, path, body in (
        ("GET", "releases", None),
        ("GET", "config", None),
        ("GET", "config/GREETING", None),
        ("PATCH", "config", {"set": {"A": "1"}}),
        ("POST", "scale", {"replicas": 2}),
        ("POST", "restart", None),
        ("POST", "rollback", {"version": 1}),
    ):
        reply = bob.call(method, f"/apps/{unique_name}/{path}", body)
        assert (reply.status, reply.json["code"]) == (404, "not_found"), (method, path)
        assert SECRET not in reply.body.decode()
    assert len(releases_of(api, unique_name)) == 2
