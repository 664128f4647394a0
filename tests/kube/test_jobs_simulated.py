"""A Job's state as the control plane reads it (``Cluster.job``), for each way one ends:
its command succeeds or fails, its fetcher fails, its deadline passes; and a Job's pod never
joins the app's Service or rollout."""

from __future__ import annotations

from kubernetes.client import CoreV1Api

from chalicelib.kube import JobPhase, JobState
from chalicelib.manifests import JobPurpose, job_manifest
from infra.kubesim import Simulator
from tests.kube.harness import SimHarness, deploy, finished, new_app_name, run_spec, wait_for


def _ended(harness: SimHarness, name: str) -> JobState:
    def probe() -> JobState | None:
        state = harness.cluster.job(name)
        return state if state is not None and state.finished else None

    return wait_for(probe, what=f"job {name} to end")


def test_a_command_that_exits_0_succeeds(harness: SimHarness) -> None:
    release = harness.spec(new_app_name())
    deploy(harness, release)
    job = run_spec(release, ("node", "-e", "1"))
    harness.cluster.create_job(job_manifest(job))
    state = _ended(harness, job.name)
    assert (state.phase, state.exit_code, state.message) == (JobPhase.SUCCEEDED, 0, "")
    assert state.command == ("node", "-e", "1")
    assert state.labels["aether.dev/run-id"] == job.run_id
    assert state.annotations["aether.dev/created-by"] == "tests"
    assert state.created_at is not None and state.finished_at is not None


def test_a_command_that_fails_says_its_code_and_last_lines(
    harness: SimHarness, sim: Simulator
) -> None:
    release = harness.spec(new_app_name())
    deploy(harness, release)
    sim.crash_loop(harness.namespace, label_selector="app=aether-job")
    job = run_spec(release)
    harness.cluster.create_job(job_manifest(job))
    state = _ended(harness, job.name)
    assert (state.phase, state.exit_code) == (JobPhase.FAILED, 1)
    assert state.message.startswith("exited with code 1")


def test_a_fetcher_that_fails_fails_the_job(harness: SimHarness, sim: Simulator) -> None:
    release = harness.spec(new_app_name())
    deploy(harness, release)
    sim.fail_init_containers(harness.namespace, label_selector="app=aether-job")
    job = run_spec(release)
    harness.cluster.create_job(job_manifest(job))
    state = _ended(harness, job.name)
    assert (state.phase, state.exit_code) == (JobPhase.FAILED, None)
    assert state.message.startswith("fetching the artifact failed")


def test_a_job_past_its_deadline_fails(harness: SimHarness, sim: Simulator) -> None:
    release = harness.spec(new_app_name())
    deploy(harness, release)
    sim.never_ready(harness.namespace, label_selector="app=aether-job")
    job = run_spec(release)
    manifest = job_manifest(job)
    manifest["spec"]["activeDeadlineSeconds"] = 1
    harness.cluster.create_job(manifest)
    state = _ended(harness, job.name)
    assert state.phase == JobPhase.FAILED
    assert state.message == "it ran longer than its 1 s limit (DeadlineExceeded)"


def test_a_jobs_pod_is_not_one_of_the_apps_pods(harness: SimHarness) -> None:
    app = new_app_name()
    release = harness.spec(app)
    deploy(harness, release)
    assert finished(harness, release).phase == "succeeded"
    job = run_spec(release)
    harness.cluster.create_job(job_manifest(job))
    _ended(harness, job.name)
    pods = CoreV1Api(harness.admin).list_namespaced_pod(harness.namespace).items
    job_pod = next(p for p in pods if p.metadata.labels.get("job-name") == job.name)
    service = CoreV1Api(harness.admin).read_namespaced_service(app, harness.namespace)
    selected = service.spec.selector.items()
    assert not selected <= job_pod.metadata.labels.items(), "the Service must not route to it"
    assert harness.cluster.rollout(app, release.deployment_id).phase == "succeeded"
    assert all(line.container != "job" for line in harness.cluster.logs(app))
    assert harness.cluster.jobs(app, JobPurpose.RELEASE) == []
