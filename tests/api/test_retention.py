"""Retention: the last N releases roll back; the scheduled reconciler reclaims older artifacts.

Against moto's DynamoDB, S3 and KMS and the simulated cluster, through the app in-process,
with ``AETHER_RETAINED_RELEASES=2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_releases import deployed, releases_of, settled, verified_digest
from tests.api.test_teardown import objects_of
from tests.conftest import Api
from tests.uploads import random_bytes, upload
from tests.verification.delivery import deliver_pending_events

pytestmark = pytest.mark.usefixtures("healthy_cluster")


@pytest.fixture
def two_retained(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AETHER_RETAINED_RELEASES", "2")
    control_plane.get_settings.cache_clear()
    yield
    monkeypatch.undo()
    control_plane.get_settings.cache_clear()


def reconcile(control_plane: Any) -> None:
    """The whole schedule, as the embedded stack's relay runs it every minute."""
    from infra.local.relay import scheduled_event

    control_plane.reconcile_deployments(scheduled_event(), None)


def reclaim(control_plane: Any, app_name: str) -> None:
    """The schedule's retention step for one app: the suite's shared tables hold every other
    test's apps, which the whole schedule would look at too."""
    from chalicelib import retention

    retained = control_plane.get_settings().retained_releases
    retention.reclaim(control_plane.get_store(), app_name, retained)


def artifact_records(app_name: str) -> set[str]:
    from chalicelib.records import Artifact

    return {artifact.digest for artifact in Artifact.by_app.query(app_name)}


@pytest.mark.usefixtures("two_retained")
def test_after_four_deploys_the_first_two_artifacts_are_reclaimed(
    api: Api, app_name: str, unique_name: str, control_plane: Any
) -> None:
    shared = random_bytes()
    first = upload(api, app_name, shared)
    deliver_pending_events()
    other = unique_name + "-other"
    assert api.post("/apps", {"name": other}).status == 201
    assert upload(api, other, shared) == first  # the same bytes, the other app's own
    deliver_pending_events()
    deployed(api, other, first)
    digests = [first] + [verified_digest(api, app_name) for _ in range(3)]
    for digest in digests:
        deployed(api, app_name, digest)
    never_released = verified_digest(api, app_name)  # younger than every retained release

    listed = releases_of(api, app_name)
    assert [(r["version"], r["rollback_available"]) for r in listed] == [
        (4, True),
        (3, True),
        (2, False),
        (1, False),
    ]
    reconcile(control_plane)

    assert artifact_records(app_name) == {digests[2], digests[3], never_released}
    held = objects_of(app_name)
    assert not any(digest in key for key in held for digest in digests[:2])
    assert all(any(digest in key for key in held) for digest in digests[2:])
    assert api.head(f"/artifacts/{first}?app_name={app_name}").status == 404

    # The other app's artifact of the same digest stays, and it deploys it again.
    assert api.head(f"/artifacts/{first}?app_name={other}").status == 200
    assert api.post(f"/apps/{other}/scale", {"replicas": 2}).status == 201

    # The retained releases roll back; an older one is refused, saying why.
    back = api.post(f"/apps/{app_name}/rollback", {"version": 3})
    assert back.status == 201, back.body
    assert settled(api, back.json)["status"] == "succeeded"
    forward = api.post(f"/apps/{app_name}/rollback", {"version": 4})
    assert settled(api, forward.json)["status"] == "succeeded"
    for target in ({"version": 1}, {"version": "v2"}, {"to": listed[3]["deployment_id"]}):
        refused = api.post(f"/apps/{app_name}/rollback", target)
        assert (refused.status, refused.json["code"]) == (410, "not_retained"), target
        assert "deploy it again" in refused.json["message"]
    assert [r["version"] for r in releases_of(api, app_name)] == [6, 5, 4, 3, 2, 1]


@pytest.mark.usefixtures("two_retained")
def test_the_serving_release_is_kept_however_old(
    api: Api, app_name: str, control_plane: Any, kube_simulator: Any
) -> None:
    """Releases that fail do not push what serves out of retention."""
    from tests.conftest import APPS_NAMESPACE

    serving = verified_digest(api, app_name)
    deployed(api, app_name, serving)
    kube_simulator.crash_loop(APPS_NAMESPACE, app_name)
    for _ in range(2):
        reply = api.post(
            "/deployments",
            {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)},
        )
        assert settled(api, reply.json)["status"] == "failed"
    kube_simulator.clear_faults()
    listed = releases_of(api, app_name)
    assert [(r["version"], r["rollback_available"]) for r in listed] == [
        (3, True),
        (2, True),
        (1, True),
    ]
    reclaim(control_plane, app_name)
    assert serving in artifact_records(app_name)
    assert api.post(f"/apps/{app_name}/rollback", {"version": 1}).status == 201


@pytest.mark.usefixtures("two_retained")
def test_a_layer_stays_while_a_kept_manifest_names_it(
    api: Api, app_name: str, control_plane: Any
) -> None:
    import hashlib

    from tests.api.test_layers import publish

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    deps, newer_deps = random_bytes(3000), random_bytes(3000)
    apps = [random_bytes(300) for _ in range(4)]
    manifests = []
    for deps_layer, app_layer in zip((deps, deps, newer_deps, newer_deps), apps, strict=True):
        manifests.append(publish(api, app_name, ("deps", deps_layer), ("app", app_layer)))
        deployed(api, app_name, manifests[-1])
        reclaim(control_plane, app_name)
        if len(manifests) == 3:
            # v1 went; the deps layer stays: v2, kept, names it.
            assert artifact_records(app_name) == {
                *manifests[1:],
                sha(deps),
                sha(newer_deps),
                *map(sha, apps[1:3]),
            }
    # v2 went too, and with it the last manifest naming the first deps layer.
    assert artifact_records(app_name) == {*manifests[2:], sha(newer_deps), *map(sha, apps[2:])}
    assert not any(sha(deps) in key for key in objects_of(app_name))
    back = api.post(f"/apps/{app_name}/rollback", {"version": 3})
    assert settled(api, back.json)["status"] == "succeeded"


@pytest.mark.usefixtures("two_retained")
def test_an_artifact_promoted_to_another_app_is_not_reclaimed(
    api: Api, app_name: str, unique_name: str, control_plane: Any
) -> None:
    from tests.api.test_promote import promoted

    first = verified_digest(api, app_name)
    deployed(api, app_name, first)
    prod = unique_name[:50] + "-prod"
    assert api.post("/apps", {"name": prod}).status == 201
    promoted(api, prod, app_name)
    for _ in range(2):
        deployed(api, app_name, verified_digest(api, app_name))
    assert [r["rollback_available"] for r in releases_of(api, app_name)] == [True, True, False]
    reclaim(control_plane, app_name)
    assert first in artifact_records(app_name)  # prod's release runs it
    assert api.post(f"/apps/{prod}/scale", {"replicas": 2}).status == 201
