"""A cluster that lost its workloads gets each app's current deployment back from the records."""

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from chalicelib import rollouts
from chalicelib.deployments import events
from chalicelib.kube import api_client
from chalicelib.manifests import pull_secret_name
from chalicelib.records import ApiToken, Application
from tests.api.test_rollouts import deploy, finished, verified_digest, wait_for
from tests.conftest import APPS_NAMESPACE, Api

pytestmark = pytest.mark.usefixtures("healthy_cluster")


@pytest.fixture
def app_name(api: Api, unique_name: str) -> str:
    api.post("/apps", {"name": unique_name})
    return unique_name


@pytest.fixture
def cluster_api(kube_simulator: Any) -> Iterator[Any]:
    with api_client(str(kube_simulator.kubeconfig)) as client:
        yield client


def lose_workload(client: Any, app_name: str) -> None:
    """What a cluster that restarted empty has of the app: nothing."""
    kubernetes.client.AppsV1Api(client).delete_namespaced_deployment(app_name, APPS_NAMESPACE)
    core = kubernetes.client.CoreV1Api(client)
    core.delete_namespaced_service(app_name, APPS_NAMESPACE)
    core.delete_namespaced_secret(pull_secret_name(app_name), APPS_NAMESPACE)


def running_deployment_id(client: Any, app_name: str) -> str:
    workload = kubernetes.client.AppsV1Api(client).read_namespaced_deployment(
        app_name, APPS_NAMESPACE
    )
    label: str = workload.spec.template.metadata.labels["deployment_id"]
    return label


def restore(control_plane: Any) -> int:
    return rollouts.restore_lost_workloads(control_plane.get_data_plane())


def own_phases(deployment_id: str) -> list[str]:
    return [e.phase for e in events(deployment_id) if not e.phase.startswith("k8s:")]


def test_a_lost_workload_is_applied_again_with_a_new_pull_token(
    api: Api, app_name: str, control_plane: Any, cluster_api: Any
) -> None:
    created = deploy(api, app_name, verified_digest(api, app_name))
    assert wait_for(api, created["deployment_id"], finished)["status"] == "succeeded"
    old_token = Application.get(app_name).pull_token_id
    lose_workload(cluster_api, app_name)

    assert restore(control_plane) >= 1
    assert running_deployment_id(cluster_api, app_name) == created["deployment_id"]
    assert own_phases(created["deployment_id"])[-1] == "restored"
    new_token = Application.get(app_name).pull_token_id
    assert new_token != old_token
    assert ApiToken.get(old_token).revoked
    assert api.get(f"/deployments/{created['deployment_id']}").json["status"] == "succeeded"

    # A workload that exists is never touched again.
    restore(control_plane)
    assert own_phases(created["deployment_id"]).count("restored") == 1
    assert Application.get(app_name).pull_token_id == new_token


def test_the_last_successful_deployment_comes_back_when_the_latest_failed(
    api: Api, app_name: str, control_plane: Any, cluster_api: Any, kube_simulator: Any
) -> None:
    good = deploy(api, app_name, verified_digest(api, app_name))
    assert wait_for(api, good["deployment_id"], finished)["status"] == "succeeded"
    kube_simulator.never_ready(APPS_NAMESPACE, app_name)
    bad = deploy(api, app_name, verified_digest(api, app_name))
    assert wait_for(api, bad["deployment_id"], finished)["status"] == "failed"
    kube_simulator.clear_faults()
    lose_workload(cluster_api, app_name)

    restore(control_plane)
    assert running_deployment_id(cluster_api, app_name) == good["deployment_id"]
    assert "restored" not in own_phases(bad["deployment_id"])


def test_an_app_with_a_rollout_in_flight_is_left_to_it(
    api: Api, app_name: str, control_plane: Any, cluster_api: Any, kube_simulator: Any
) -> None:
    good = deploy(api, app_name, verified_digest(api, app_name))
    assert wait_for(api, good["deployment_id"], finished)["status"] == "succeeded"
    kube_simulator.set_api_down(True)
    pending = api.post(
        "/deployments", {"app_name": app_name, "artifact_digest": verified_digest(api, app_name)}
    )
    assert pending.status == 503  # recorded, waiting for the cluster
    kube_simulator.set_api_down(False)
    lose_workload(cluster_api, app_name)

    restore(control_plane)
    assert "restored" not in own_phases(good["deployment_id"])
    with pytest.raises(kubernetes.client.ApiException) as missing:
        running_deployment_id(cluster_api, app_name)
    assert missing.value.status == 404


def test_an_unreachable_cluster_restores_nothing_and_changes_nothing(
    api: Api, app_name: str, control_plane: Any, cluster_api: Any, kube_simulator: Any
) -> None:
    created = deploy(api, app_name, verified_digest(api, app_name))
    assert wait_for(api, created["deployment_id"], finished)["status"] == "succeeded"
    token = Application.get(app_name).pull_token_id
    lose_workload(cluster_api, app_name)
    kube_simulator.set_api_down(True)

    assert restore(control_plane) == 0
    assert Application.get(app_name).pull_token_id == token
    assert "restored" not in own_phases(created["deployment_id"])
    kube_simulator.set_api_down(False)
    restore(control_plane)
    assert running_deployment_id(cluster_api, app_name) == created["deployment_id"]
