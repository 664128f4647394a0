"""Pods run through a pluggable ``PodRuntime``; here one that the test drives by hand."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config

from infra.kubesim import PodStatusSink, PodView, Running, Simulator, Terminated
from tests.kubesim.workloads import deployment
from tests.polling import wait_for


class HandDrivenRuntime:
    """Records the pods it is given; the test reports their progress through the sinks."""

    def __init__(self) -> None:
        self.pods: dict[str, tuple[PodView, PodStatusSink]] = {}
        self.stopped: list[str] = []

    def start_pod(self, pod: PodView, sink: PodStatusSink) -> None:
        self.pods[pod.uid] = (pod, sink)

    def stop_pod(self, pod_uid: str) -> None:
        self.stopped.append(pod_uid)

    def close(self) -> None:
        self.pods.clear()


def test_a_plugged_in_runtime_drives_pod_status(tmp_path: Path) -> None:
    runtime = HandDrivenRuntime()
    with Simulator(runtime=runtime) as sim:
        api = config.new_client_from_config(config_file=str(sim.write_kubeconfig(tmp_path / "kc")))
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "apps"}})
        apps.create_namespaced_deployment("apps", deployment("web", env={"PORT": "8080"}))

        view, sink = wait_for(lambda: next(iter(runtime.pods.values()), None), what="a pod")
        assert view.deployment == "web"
        assert view.init_containers[0].image == "aether-fetcher:1"
        assert view.containers[0].env == {"PORT": "8080"}

        sink.report("fetch", Running())
        sink.log("fetch", "fetched 1234 bytes")
        sink.report("fetch", Terminated(0))
        sink.report("app", Running(ready=False))
        pod = core.read_namespaced_pod(view.name, "apps")
        assert pod.status.phase == "Running"
        assert not pod.status.container_statuses[0].ready
        assert core.read_namespaced_pod_log(view.name, "apps", container="fetch") == (
            "fetched 1234 bytes\n"
        )

        sink.report("app", Running(ready=True))
        wait_for(
            lambda: apps.read_namespaced_deployment("web", "apps").status.available_replicas,
            what="the deployment to become available",
        )

        sink.report("app", Terminated(137, "OOMKilled"))
        sink.report("app", Running(ready=True))
        status = core.read_namespaced_pod(view.name, "apps").status.container_statuses[0]
        assert status.restart_count == 1
        assert status.last_state.terminated.reason == "OOMKilled"

        apps.delete_namespaced_deployment("web", "apps")
        wait_for(lambda: view.uid in runtime.stopped, what="the runtime to stop the pod")
        assert not sink.active
