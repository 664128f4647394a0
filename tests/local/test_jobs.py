"""A Job's pod really runs to completion: the fetcher, then the command in the artifact with
the release's config, its exit code and output recorded; its deadline and deletion stop it.

The Job is the control plane's own (``chalicelib.manifests.job_manifest``: the hardened pod
spec), created and read through ``chalicelib.kube.Cluster`` as the control plane does.
"""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api

from chalicelib.kube import Cluster, JobPhase, JobState
from chalicelib.manifests import JobPurpose, JobSpec, WorkloadSpec, job_manifest, workload_manifests
from infra.local.cluster import LocalCluster
from tests.local.apps import PULL_TOKEN, ArtifactServer, node_app, running
from tests.polling import wait_for

NAMESPACE = "aether-apps"


def run_job(
    api: ApiClient,
    artifacts: ArtifactServer,
    app: str,
    command: tuple[str, ...],
    *,
    deadline: int = 60,
) -> tuple[Cluster, JobSpec]:
    """The release's Secrets as its rollout applies them, then a run of ``command``."""
    digest = artifacts.add(node_app(f"{app} says hi"))
    release = WorkloadSpec(
        app_name=app,
        deployment_id=str(uuid.uuid4()),
        digest=digest,
        node_major=20,
        start_command="npm start",
        env={"GREETING": "hello from the config"},
        replicas=1,
        namespace=NAMESPACE,
        artifact_url=f"{artifacts.url}/artifacts/{digest}/download",
    )
    cluster = Cluster(api, NAMESPACE, log_settle_seconds=0)
    secrets = [m for m in workload_manifests(release, PULL_TOKEN) if m["kind"] == "Secret"]
    cluster.apply(secrets)
    job = JobSpec(
        release=release,
        purpose=JobPurpose.RUN,
        command=command,
        deadline_seconds=deadline,
        ttl_seconds=3600,
        created_by="test",
        run_id=uuid.uuid4().hex[:12],
    )
    assert cluster.create_job(job_manifest(job))
    assert not cluster.create_job(job_manifest(job)), "a second create changes nothing"
    return cluster, job


def finished(cluster: Cluster, name: str) -> JobState:
    def probe() -> JobState | None:
        state = cluster.job(name)
        return state if state is not None and state.finished else None

    return wait_for(probe, timeout=60, what=f"job {name} to finish")


def test_a_run_reads_the_artifact_and_config_and_exits_with_its_code(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    script = (
        "const fs = require('node:fs');"
        "console.log(fs.readFileSync('message.txt', 'utf8').trim());"
        "console.log(process.env.GREETING);"
        "console.log(6 * 7); process.exit(3)"
    )
    control, job = run_job(api, artifacts, "runner", ("node", "-e", script))
    state = finished(control, job.name)
    assert (state.phase, state.exit_code) == (JobPhase.FAILED, 3)
    assert state.message.startswith("exited with code 3:")
    assert state.message.splitlines()[1:] == ["runner says hi", "hello from the config", "42"]
    assert state.command == ("node", "-e", script)
    said = [line.message for line in control.logs("runner", job=job.name)]
    assert said[-3:] == ["runner says hi", "hello from the config", "42"]
    assert control.logs("other-app", job=job.name) == [], "another app's name sees nothing"


def test_a_command_that_succeeds_completes_its_job(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    control, job = run_job(api, artifacts, "migrator", ("sh", "-c", "echo migrated; id -u"))
    state = finished(control, job.name)
    assert (state.phase, state.exit_code, state.message) == (JobPhase.SUCCEEDED, 0, "")
    assert [line.message for line in control.logs("migrator", job=job.name)][-2] == "migrated"
    assert [s.name for s in control.jobs("migrator", JobPurpose.RUN)] == [job.name]
    assert control.jobs("migrator", JobPurpose.RELEASE) == []


def test_its_deadline_stops_a_command_that_runs_on(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    command = ("node", "-e", "setInterval(() => {}, 1000)")
    control, job = run_job(api, artifacts, "sleeper", command, deadline=2)
    # Whether the command has started when the deadline passes depends on the machine's load:
    # what must hold either way is that nothing of the pod runs on.
    pod = wait_for(lambda: next(iter(_pods(api, job.name)), None), what="the job's pod")
    state = finished(control, job.name)
    assert state.phase == JobPhase.FAILED
    assert "DeadlineExceeded" in state.message
    assert _pods(api, job.name) == []
    uid = pod.metadata.uid
    wait_for(lambda: uid not in cluster.runtime.process_ids(), what="its processes to stop")


def _pods(api: ApiClient, job_name: str) -> list[Any]:
    found = CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=f"job-name={job_name}")
    return list(found.items)


def test_deleting_a_job_stops_its_command_and_goes_with_its_pod(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    command = ("node", "-e", "console.log(process.pid); setInterval(() => {}, 1000)")
    control, job = run_job(api, artifacts, "stopped", command)
    pid = int(
        wait_for(
            lambda: next(
                (
                    line.message
                    for line in control.logs("stopped", job=job.name)
                    if line.container == "job"
                ),
                None,
            ),
            timeout=60,
            what="the command's pid",
        )
    )
    assert control.delete_job(job.name)
    assert not control.delete_job(job.name)
    assert control.job(job.name) is None
    wait_for(lambda: not running(pid), what="the command to be stopped")
    wait_for(lambda: control.logs("stopped", job=job.name) == [], what="its pod to go")
