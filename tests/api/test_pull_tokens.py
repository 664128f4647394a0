"""Pull tokens: one live per app, in its Secret; every other one issued is revoked."""

from __future__ import annotations

import base64
import threading
from datetime import timedelta
from typing import Any

import pytest
import requests

from chalicelib.records import ApiToken, Application, utcnow
from infra.local.processes import Service
from tests.api.test_auth import issue
from tests.api.test_rollouts import finished, misconfigured, verified_digest, wait_for
from tests.conftest import ADMIN_TOKEN, APPS_NAMESPACE, Api

pytestmark = pytest.mark.usefixtures("healthy_cluster")

__all__ = ["misconfigured"]  # the fixture, used by name below


def secret_token_id(kube_simulator: Any, app_name: str) -> str | None:
    import kubernetes

    from chalicelib.kube import api_client

    with api_client(str(kube_simulator.kubeconfig)) as client:
        core = kubernetes.client.CoreV1Api(client)
        try:
            secret = core.read_namespaced_secret(f"{app_name}-pull", APPS_NAMESPACE)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
    token = base64.b64decode(secret.data["token"]).decode()
    return token.split("_")[1]  # aet_<token id>_<secret>


def pull_tokens(api: Api, app_name: str) -> list[dict[str, Any]]:
    reply = api.get(f"/pull-tokens?app_name={app_name}")
    assert reply.status == 200, reply.body
    return list(reply.json["pull_tokens"])


def assert_one_live_in_the_secret(api: Api, kube_simulator: Any, app_name: str) -> str:
    tokens = pull_tokens(api, app_name)
    live = [t["token_id"] for t in tokens if not t["revoked"]]
    in_secret = secret_token_id(kube_simulator, app_name)
    assert live == [in_secret], tokens
    assert [t["token_id"] for t in tokens if t["current"]] == live
    assert Application.get(app_name, consistent_read=True).pull_token_id == in_secret
    return str(in_secret)


def test_concurrent_rollouts_leave_exactly_the_secrets_token_live(
    api: Api, app_name: str, local_api: Service, kube_simulator: Any
) -> None:
    digest = verified_digest(api, app_name)
    # Eight deployments recorded while the cluster is away, then advanced all at once by
    # concurrent readers (as wait loops and the reconciler do when it comes back).
    kube_simulator.set_api_down(True)
    for index in range(8):
        body = {"app_name": app_name, "artifact_digest": digest, "env": {"N": str(index)}}
        assert api.post("/deployments", body).status == 503
    kube_simulator.set_api_down(False)
    created = [
        d["deployment_id"] for d in api.get(f"/apps/{app_name}/deployments").json["deployments"]
    ]
    assert len(created) == 8
    http = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    barrier = threading.Barrier(len(created))

    def read(deployment_id: str) -> None:
        barrier.wait()
        for _ in range(3):
            requests.get(f"{local_api.url}/deployments/{deployment_id}", headers=http, timeout=60)

    threads = [threading.Thread(target=read, args=(d,)) for d in created]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for deployment_id in created:
        wait_for(api, deployment_id, finished)
    tokens = pull_tokens(api, app_name)
    assert len(tokens) >= 2, tokens
    assert_one_live_in_the_secret(api, kube_simulator, app_name)


def test_tokens_minted_while_the_cluster_is_down_are_revoked(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    first = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)}
    )
    assert wait_for(api, first.json["deployment_id"], finished)["status"] == "succeeded"
    serving = assert_one_live_in_the_secret(api, kube_simulator, app_name)

    kube_simulator.set_api_down(True)
    second = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)}
    )
    assert second.status == 503
    history = api.get(f"/apps/{app_name}/deployments").json["deployments"]
    for _ in range(3):  # each read while the cluster is down tries again
        assert api.get(f"/deployments/{history[0]['deployment_id']}").status == 503
    kube_simulator.set_api_down(False)

    tokens = pull_tokens(api, app_name)
    assert [t["token_id"] for t in tokens if not t["revoked"]] == [serving]
    assert len(tokens) >= 3  # the failed attempts did issue tokens, and revoked them
    assert wait_for(api, history[0]["deployment_id"], finished)["status"] == "succeeded"
    assert assert_one_live_in_the_secret(api, kube_simulator, app_name) != serving


@pytest.mark.parametrize(
    "misconfigured", [("AETHER_DEFAULT_NAMESPACE", "no-such-namespace")], indirect=True
)
def test_a_token_whose_secret_the_cluster_refused_is_revoked(
    api: Api, app_name: str, misconfigured: None
) -> None:
    reply = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)}
    )
    assert reply.json["status"] == "failed", reply.body
    tokens = pull_tokens(api, app_name)
    assert tokens and all(t["revoked"] and not t["current"] for t in tokens)


def test_a_pull_token_expires_and_is_rotated_at_half_its_life(
    api: Api, app_name: str, kube_simulator: Any, control_plane: Any
) -> None:
    from chalicelib import rollouts

    created = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)}
    )
    assert wait_for(api, created.json["deployment_id"], finished)["status"] == "succeeded"
    old = assert_one_live_in_the_secret(api, kube_simulator, app_name)
    record = ApiToken.get(old)
    assert record.expires_at is not None
    assert timedelta(days=29) < record.expires_at - utcnow() <= timedelta(days=30)

    plane = control_plane.get_data_plane()
    rollouts.rotate_pull_tokens(plane)
    assert assert_one_live_in_the_secret(api, kube_simulator, app_name) == old  # young: kept

    # Fourteen days left of thirty: past half its life.
    record.update(actions=[ApiToken.expires_at.set(utcnow() + timedelta(days=14))])
    rollouts.rotate_pull_tokens(plane)
    new = assert_one_live_in_the_secret(api, kube_simulator, app_name)
    assert new != old
    assert api.get(f"/deployments/{created.json['deployment_id']}").json["status"] == "succeeded"


def test_only_admins_list_pull_tokens_and_never_their_secrets(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    created = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)}
    )
    wait_for(api, created.json["deployment_id"], finished)
    (token,) = pull_tokens(api, app_name)
    assert set(token) == {
        "token_id",
        "app_name",
        "created_at",
        "expires_at",
        "revoked",
        "expired",
        "current",
    }
    listed = api.get("/pull-tokens").json["pull_tokens"]
    assert token in listed
    developer = api.as_(issue(api, app_name))
    refused = developer.get("/pull-tokens")
    assert (refused.status, refused.json["code"]) == (403, "forbidden")
    assert api.get("/pull-tokens?app_name=Not_An_App").status == 400
