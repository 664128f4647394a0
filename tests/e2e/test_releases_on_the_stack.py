"""Config, scale and restart on the embedded stack, where pods are real processes: the app
serves a value set without an upload, keeps it across a deploy and a restart of the whole
stack, and no value shows in the cluster's objects, the stack's logs or any listing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from infra.local.private import PrivateStack
from tests.polling import serves
from tests.projects import NEEDS_EXAMPLE, PROJECTS

AETHER = str(Path(sys.executable).with_name("aether"))
SECRET = "greeting-9c2e51"  # a test value, looked for where it must not be
APP = "greeter"

pytestmark = NEEDS_EXAMPLE


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, answering with its GREETING (or "World")."""
    project = PROJECTS["example"].copy_to(tmp_path_factory.mktemp("greeter"))
    server = project / "server.js"
    server.write_text(
        server.read_text().replace(
            "res.type('text/plain').send(`hello from aether (hello-express ${VERSION})\\n`);",
            "res.type('text/plain').send(`Hello ${process.env.GREETING || 'World'}\\n`);",
        )
    )
    assert "process.env.GREETING" in server.read_text()
    return project


def aether(stack: PrivateStack, *args: str, exit_code: int = 0) -> Any:
    done = subprocess.run(
        [AETHER, *args, *([] if args[0] == "list" else ["--app", APP]), "--format", "json"],
        env=stack.cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == exit_code, done.stderr
    assert SECRET not in done.stderr
    return json.loads(done.stdout)


def kube_objects(stack: PrivateStack) -> str:
    import kubernetes

    from chalicelib.kube import api_client

    namespace = "aether-apps"
    with api_client(str(stack.state / "kubeconfig")) as client:
        core, apps = kubernetes.client.CoreV1Api(client), kubernetes.client.AppsV1Api(client)
        shown = [
            apps.read_namespaced_deployment(APP, namespace).to_dict(),
            *(p.to_dict() for p in core.list_namespaced_pod(namespace).items),
            *(r.to_dict() for r in apps.list_namespaced_replica_set(namespace).items),
            *(e.to_dict() for e in core.list_namespaced_event(namespace).items),
        ]
    return json.dumps(shown, default=str)


def test_config_set_serves_the_value_without_an_upload_and_never_shows_it(
    stack: PrivateStack, project: Path
) -> None:
    deploy = ["deploy", "--path", str(project), "--no-sbom"]
    first = aether(stack, *deploy)
    url = first["url"]
    serves(url, "Hello World\n")

    logs = stack.state / "logs"
    uploads_before = (logs / "api.log").read_text().count('"method":"POST","path":"/artifacts"')
    release = aether(stack, "config", "set", f"GREETING={SECRET}")
    assert (release["artifact_digest"], release["version"]) == (first["digest"], 2)
    serves(url, f"Hello {SECRET}\n")
    uploads_after = (logs / "api.log").read_text().count('"method":"POST","path":"/artifacts"')
    assert uploads_after == uploads_before  # no POST /artifacts: nothing built, nothing sent

    again = aether(stack, *deploy)
    assert again["uploaded"] is False
    serves(url, f"Hello {SECRET}\n")

    assert SECRET not in kube_objects(stack)
    for command in (["releases"], ["list"], ["status"], ["config", "--names-only"]):
        assert SECRET not in json.dumps(aether(stack, *command)), command
    for log in sorted(logs.glob("*.log")):
        assert SECRET not in log.read_text(errors="replace"), log.name


def test_the_value_survives_a_restart_of_the_whole_stack(
    stack: PrivateStack, project: Path
) -> None:
    url = aether(stack, "open")["url"]
    serves(url, f"Hello {SECRET}\n")
    stack.down()
    stack.up()
    # The reconciler gives the empty cluster the release back, its Secret opened with the
    # same KMS key.
    serves(url, f"Hello {SECRET}\n")
    assert aether(stack, "config", "get", "GREETING")["value"] == SECRET


def test_scale_restart_and_unset_with_real_pods(stack: PrivateStack) -> None:
    import kubernetes

    from chalicelib.kube import api_client

    def pods() -> set[str]:
        with api_client(str(stack.state / "kubeconfig")) as client:
            found = kubernetes.client.CoreV1Api(client).list_namespaced_pod(
                "aether-apps", label_selector=f"app_name={APP}"
            )
        return {
            p.metadata.name
            for p in found.items
            if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
        }

    def wait_pods(count: int) -> set[str]:
        for _ in range(120):
            names = pods()
            if len(names) == count:
                return names
            time.sleep(0.5)
        raise AssertionError(f"never {count} pods: {pods()}")

    url = aether(stack, "open")["url"]
    assert aether(stack, "scale", "2")["replicas"] == 2
    before = wait_pods(2)
    restarted = aether(stack, "restart")
    assert restarted["status"] == "succeeded"
    for _ in range(120):
        after = pods()
        if len(after) == 2 and not after & before:
            break
        time.sleep(0.5)
    assert len(after) == 2 and not after & before
    assert aether(stack, "releases")["releases"][0]["version"] == restarted["version"]
    serves(url, f"Hello {SECRET}\n")
    assert aether(stack, "scale", "0")["replicas"] == 0
    wait_pods(0)
    assert APP in [a["name"] for a in aether(stack, "list")["apps"]]
    aether(stack, "scale", "1")
    aether(stack, "config", "unset", "GREETING")
    serves(url, "Hello World\n")
