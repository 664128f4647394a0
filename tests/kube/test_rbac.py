"""The Role in infra/k8s/rbac.yaml grants exactly what chalicelib/kube.py uses.

Every request the Cluster class sends goes through a recording proxy in front of the
simulator while it runs through everything it does (create, re-apply, roll, supersede, fail,
events, logs, ping, remove an app). Each recorded request is turned into the RBAC checks a real API server
makes for it (group, resource/subresource, verb; an apply that creates is also a "create"),
and that set must equal the Role's rules expanded: nothing used is missing, nothing granted is
unused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.kube import Cluster, JobPhase, JobState, api_client
from chalicelib.manifests import job_manifest
from infra.kubesim import Simulator
from tests.kube.harness import deploy, finished, new_app_name, run_spec
from tests.kube.recording_proxy import Permission, RecordingProxy, Request, permissions
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "infra" / "k8s" / "rbac.yaml"
NAMESPACE_FILE = ROOT / "infra" / "k8s" / "namespace.yaml"


_running = JobState("", JobPhase.RUNNING, None, "", (), {}, {}, None, None)


def _documents(path: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}


def _granted(role: dict[str, Any]) -> set[Permission]:
    granted: set[Permission] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames, no URLs"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), "no wildcards"
                    granted.add(Permission(group, resource, verb))
    return granted


@pytest.fixture
def proxy(sim: Simulator) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(sim.url)
    yield recording
    recording.stop()


@pytest.fixture
def recorded_harness(harness: Any, proxy: RecordingProxy, sim: Simulator, tmp_path: Path) -> Any:
    """The simulator harness, with its Cluster talking through the proxy."""
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace(sim.url, proxy.url))
    harness.cluster = Cluster(api_client(str(kubeconfig)), harness.namespace, log_settle_seconds=0)
    return harness


def test_the_namespace_and_bindings_fit_together() -> None:
    namespace = _documents(NAMESPACE_FILE)["Namespace"]["metadata"]["name"]
    docs = _documents(RBAC)
    assert namespace == "aether-apps"
    assert {d["metadata"]["namespace"] for d in docs.values()} == {namespace}
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding"}, "no ClusterRole"
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": docs["Role"]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": docs["ServiceAccount"]["metadata"]["name"],
            "namespace": namespace,
        }
    ]


def test_the_role_grants_exactly_what_the_cluster_class_uses(
    recorded_harness: Any, proxy: RecordingProxy, sim: Simulator
) -> None:
    harness, cluster = recorded_harness, recorded_harness.cluster
    app = new_app_name()
    first = harness.spec(app)
    deploy(harness, first)  # creates
    deploy(harness, first)  # applies again: no change
    assert finished(harness, first).phase == "succeeded"
    second = harness.spec(app)
    deploy(harness, second)
    assert finished(harness, second).phase == "succeeded"
    assert cluster.rollout(app, first.deployment_id).phase == "superseded"
    cluster.prune_config_secrets(app, second.deployment_id)
    harness.produce_logs(app, 3)
    lines = cluster.logs(app)
    assert lines
    cluster.logs(app, since=lines[0].ts, tail=2, deployment_id=second.deployment_id)
    assert cluster.events(app)
    assert cluster.service_url(app)
    cluster.ping()
    broken = new_app_name()
    crashing = harness.spec(broken, fault="crash-loop")
    harness.arm("crash-loop", broken)
    deploy(harness, crashing)
    assert finished(harness, crashing).phase == "failed"
    assert cluster.rollout("never-deployed", "x").phase == "failed"
    job = run_spec(second)
    assert cluster.create_job(job_manifest(job))
    assert not cluster.create_job(job_manifest(job))
    assert wait_for(lambda: (cluster.job(job.name) or _running).finished, what="the job")
    assert [state.name for state in cluster.jobs(app, job.purpose)] == [job.name]
    cluster.logs(app, job=job.name)
    assert cluster.delete_job(job.name)
    assert not cluster.delete_job(job.name)
    assert cluster.job(job.name) is None
    left = run_spec(second)
    assert cluster.create_job(job_manifest(left))
    cluster.remove_app(app)
    assert not cluster.has_workload(app) and cluster.job(left.name) is None
    cluster.remove_app(app)  # again: what is gone is no error

    role = _documents(RBAC)["Role"]
    used: set[Permission] = set()
    for request in proxy.requests:
        used |= permissions(request, role["metadata"]["namespace"])
    granted = _granted(role)

    assert used - granted == set(), "the Cluster class needs permissions the Role lacks"
    assert granted - used == set(), "the Role grants permissions the Cluster class never uses"


def test_the_recorder_sees_a_create_only_when_an_apply_creates(
    recorded_harness: Any, proxy: RecordingProxy
) -> None:
    harness = recorded_harness
    spec = harness.spec(new_app_name())
    deploy(harness, spec)
    created = {p for r in proxy.requests for p in permissions(r, harness.namespace)}
    before = len(proxy.requests)
    deploy(harness, spec)
    again = {p for r in proxy.requests[before:] for p in permissions(r, harness.namespace)}

    assert Permission("apps", "deployments", "create") in created
    assert {p.verb for p in again} == {"patch"}


def test_the_control_plane_cannot_read_secrets_or_touch_other_namespaces() -> None:
    granted = _granted(_documents(RBAC)["Role"])
    assert not any(p.resource == "secrets" and p.verb in {"get", "list", "watch"} for p in granted)
    assert not any(p.resource == "namespaces" for p in granted)
    assert not any(p.verb == "update" for p in granted)
    # Secrets go by label selector (older releases' config, a destroyed app's all); by name,
    # only a run someone stops and a destroyed app's Jobs, Deployment and Service.
    assert {p for p in granted if p.verb == "deletecollection"} == {
        Permission("", "secrets", "deletecollection")
    }
    assert {p for p in granted if p.verb == "delete"} == {
        Permission("batch", "jobs", "delete"),
        Permission("apps", "deployments", "delete"),
        Permission("", "services", "delete"),
    }


def test_a_request_a_role_cannot_grant_is_flagged() -> None:
    with pytest.raises(AssertionError, match="not in namespace"):
        permissions(Request("GET", "/api/v1/namespaces/other/pods", {}, "", 200), "aether-apps")
    with pytest.raises(AssertionError, match="not a resource request"):
        permissions(Request("GET", "/version", {}, "", 200), "aether-apps")
