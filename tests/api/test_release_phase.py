"""The release phase: a release command runs once, as a Job, before the rollout.

pending → releasing → rolling_out → succeeded, or releasing → failed with the command's last
output lines while the previous release keeps serving. Through the simulated cluster, whose
Job pods exit 0 unless a fault makes them fail.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_rollouts import deploy, finished, verified_digest, wait_for
from tests.conftest import APPS_NAMESPACE, Api

pytestmark = pytest.mark.usefixtures("healthy_cluster")

JOB_PODS = "app=aether-job"


@pytest.fixture
def app_name(api: Api, unique_name: str) -> str:
    api.post("/apps", {"name": unique_name})
    return unique_name


def deploy_with(api: Api, app_name: str, digest: str, **body: Any) -> dict[str, Any]:
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **body})
    assert reply.status in (200, 201), reply.body
    return dict(reply.json)


def own_phases(body: dict[str, Any]) -> list[str]:
    return [e["phase"] for e in body["events"] if not e["phase"].startswith("k8s")]


def release_jobs(kube_simulator: Any, app_name: str) -> list[dict[str, Any]]:
    from infra.kubesim.resources import JOBS

    items, _ = kube_simulator.store.list_objects(
        JOBS, APPS_NAMESPACE, lambda job: job["metadata"]["labels"].get("app_name") == app_name
    )
    return list(items)


def test_a_release_command_runs_before_the_rollout(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    created = deploy_with(
        api, app_name, verified_digest(api, app_name), release_command="npm run migrate"
    )
    assert created["status"] == "releasing"
    assert created["release_command"] == "npm run migrate"
    done = wait_for(api, created["deployment_id"], finished)
    assert done["status"] == "succeeded", done
    assert own_phases(done) == ["releasing", "rolling_out", "succeeded"]
    (job,) = release_jobs(kube_simulator, app_name)
    assert job["metadata"]["name"] == f"release-{created['deployment_id']}"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "npm run migrate"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert job["spec"]["template"]["spec"]["initContainers"][0]["name"] == "fetch"
    assert job["spec"]["backoffLimit"] == 0


def test_the_release_command_persists_and_a_scale_does_not_run_it(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    digest = verified_digest(api, app_name)
    first = deploy_with(api, app_name, digest, release_command="node migrate.js")
    wait_for(api, first["deployment_id"], finished)
    patched = api.call("PATCH", f"/apps/{app_name}/config", {"set": {"GREETING": "hi"}}).json
    assert patched["release_command"] == "node migrate.js"
    assert wait_for(api, patched["deployment_id"], finished)["status"] == "succeeded"
    scaled = api.post(f"/apps/{app_name}/scale", {"replicas": 2}).json
    done = wait_for(api, scaled["deployment_id"], finished)
    assert "releasing" not in own_phases(done)
    assert len(release_jobs(kube_simulator, app_name)) == 2  # the deploy's and the patch's
    cleared = deploy_with(api, app_name, digest, release_command="")
    assert cleared["release_command"] is None
    assert "releasing" not in own_phases(wait_for(api, cleared["deployment_id"], finished))


def test_a_project_default_release_command_gives_way_to_one_that_is_set(
    api: Api, app_name: str
) -> None:
    digest = verified_digest(api, app_name)
    defaulted = deploy_with(api, app_name, digest, defaults={"release_command": "from toml"})
    assert defaulted["release_command"] == "from toml"
    wait_for(api, defaulted["deployment_id"], finished)
    dropped = deploy_with(api, app_name, digest, defaults={})
    assert dropped["release_command"] is None, "a default the project dropped is gone"
    wait_for(api, dropped["deployment_id"], finished)
    asked = deploy_with(api, app_name, digest, release_command="set", defaults={})
    wait_for(api, asked["deployment_id"], finished)
    kept = deploy_with(
        api, app_name, digest, defaults={"release_command": "from toml"}, env={"A": "b"}
    )
    assert kept["release_command"] == "set"


def test_a_failing_release_command_fails_the_release_and_the_old_one_serves(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    digest = verified_digest(api, app_name)
    good = deploy(api, app_name, digest)
    assert wait_for(api, good["deployment_id"], finished)["status"] == "succeeded"
    kube_simulator.crash_loop(APPS_NAMESPACE, label_selector=f"{JOB_PODS},app_name={app_name}")
    bad = deploy_with(api, app_name, digest, release_command="exit 1")
    done = wait_for(api, bad["deployment_id"], finished)
    assert done["status"] == "failed"
    assert done["reason"].startswith("the release command failed: exited with code 1")
    assert "simulated crash" in done["reason"], "its last output lines say why"
    assert own_phases(done) == ["releasing", "failed"]
    import kubernetes

    from chalicelib.kube import api_client

    with api_client(str(kube_simulator.kubeconfig)) as client:
        workload = kubernetes.client.AppsV1Api(client).read_namespaced_deployment(
            app_name, APPS_NAMESPACE
        )
    assert workload.spec.template.metadata.labels["deployment_id"] == good["deployment_id"]


def test_a_release_superseded_while_its_command_runs_never_rolls_out(
    api: Api, app_name: str, kube_simulator: Any
) -> None:
    digest = verified_digest(api, app_name)
    kube_simulator.never_ready(APPS_NAMESPACE, label_selector=f"{JOB_PODS},app_name={app_name}")
    slow = deploy_with(api, app_name, digest, release_command="sleep 600")
    newer = deploy_with(api, app_name, digest, release_command="", env={"NEW": "1"})
    assert wait_for(api, newer["deployment_id"], finished)["status"] == "succeeded"
    kube_simulator.clear_faults()  # the slow command now ends, and well
    done = wait_for(api, slow["deployment_id"], finished)
    assert done["status"] == "failed"
    assert done["reason"] == "superseded by a newer release while its release command ran"
    assert api.get(f"/deployments/{newer['deployment_id']}").json["status"] == "succeeded"


def test_the_release_commands_output_is_read_by_version(api: Api, app_name: str) -> None:
    created = deploy_with(api, app_name, verified_digest(api, app_name), release_command="true")
    done = wait_for(api, created["deployment_id"], finished)
    lines = api.get(f"/apps/{app_name}/logs?release=v{done['version']}").json
    containers = {line["container"] for line in lines["lines"]}
    assert containers <= {"fetch", "job"} and "job" in containers
    assert api.get(f"/apps/{app_name}/logs?release=v99").status == 404
    plain = deploy_with(api, app_name, created["artifact_digest"], release_command="")
    wait_for(api, plain["deployment_id"], finished)
    none = api.get(f"/apps/{app_name}/logs?release=v{plain['version']}")
    assert (none.status, none.json["code"]) == (404, "not_found")
    assert "ran no release command" in none.json["message"]
    other = api.get(
        f"/apps/{app_name}/logs?release=v1&deployment={'0' * 8}-0000-0000-0000-{'0' * 12}"
    )
    assert (other.status, other.json["lines"]) == (200, []), "another deployment's: none"
    same = api.get(f"/apps/{app_name}/logs?release=v1&deployment={created['deployment_id']}")
    assert same.json["lines"] == lines["lines"]
    bad = api.get(f"/apps/{app_name}/logs?release=latest")
    assert (bad.status, bad.json["code"]) == (400, "bad_request")


@pytest.mark.parametrize(
    "body",
    [
        {"release_command": 3},
        {"release_command": "a\x00b"},
        {"release_command": "x" * 4097},
        {"defaults": {"release_command": ["npm"]}},
    ],
)
def test_a_bad_release_command_is_refused(api: Api, app_name: str, body: dict[str, Any]) -> None:
    digest = verified_digest(api, app_name)
    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest, **body})
    assert (reply.status, reply.json["code"]) == (400, "bad_request"), reply.body
