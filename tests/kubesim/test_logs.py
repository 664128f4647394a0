"""Pod logs through ``read_namespaced_pod_log``: text/plain, tail, since, timestamps, follow."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from infra.kubesim import Simulator
from tests.polling import wait_for

POD = {
    "metadata": {"name": "p"},
    "spec": {
        "initContainers": [{"name": "fetch", "image": "aether-fetcher:1"}],
        "containers": [{"name": "app", "image": "aether-nodejs:20-slim"}],
    },
}


@pytest.fixture
def running_pod(core: client.CoreV1Api, namespace: str) -> str:
    core.create_namespaced_pod(namespace, POD)

    def app_started() -> bool:
        statuses = core.read_namespaced_pod("p", namespace).status.container_statuses or []
        return any(s.name == "app" and s.state.running for s in statuses)

    wait_for(app_started, what="the app container to run")
    return namespace


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_log_is_plain_text_with_the_runtime_lines(core: client.CoreV1Api, running_pod: str) -> None:
    text = core.read_namespaced_pod_log("p", running_pod, container="app")
    assert isinstance(text, str)
    assert "container app started (aether-nodejs:20-slim)" in text
    init = core.read_namespaced_pod_log("p", running_pod, container="fetch")
    assert "init container fetch completed" in init


def test_tail_lines_keeps_the_last_lines(
    core: client.CoreV1Api, running_pod: str, sim: Simulator
) -> None:
    sim.append_log(running_pod, "p", [f"line {i}" for i in range(10)], container="app")
    tail = core.read_namespaced_pod_log("p", running_pod, container="app", tail_lines=3)
    assert _lines(tail) == ["line 7", "line 8", "line 9"]


def test_timestamps_prefix_each_line_with_rfc3339(
    core: client.CoreV1Api, running_pod: str, sim: Simulator
) -> None:
    sim.append_log(running_pod, "p", ["hello"], container="app")
    text = core.read_namespaced_pod_log(
        "p", running_pod, container="app", timestamps=True, tail_lines=1
    )
    stamp, message = text.rstrip("\n").split(" ", 1)
    assert message == "hello"
    # Go's RFC3339Nano: up to nine fraction digits, trailing zeros trimmed.
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", stamp)
    assert match is not None, stamp
    assert not (match[2] or "1").endswith("0")
    moment = datetime.fromisoformat(match[1] + "+00:00")
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5)


def test_since_time_drops_older_lines(
    core: client.CoreV1Api, running_pod: str, sim: Simulator
) -> None:
    sim.append_log(running_pod, "p", ["old"], container="app")
    time.sleep(0.01)  # two log lines need distinct timestamps for sinceTime to tell them apart
    cutoff = datetime.now(UTC)
    sim.append_log(running_pod, "p", ["new"], container="app")
    # read_namespaced_pod_log has no since_time parameter (the OpenAPI spec lacks it), so
    # this goes through the same ApiClient one level down.
    api = core.api_client
    response = api.call_api(
        *api.param_serialize(
            "GET",
            f"/api/v1/namespaces/{running_pod}/pods/p/log",
            query_params=[
                ("container", "app"),
                ("sinceTime", cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            ],
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
    )
    response.read()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/plain"
    assert _lines(response.data.decode()) == ["new"]


def test_since_seconds_keeps_recent_lines(core: client.CoreV1Api, running_pod: str) -> None:
    text = core.read_namespaced_pod_log("p", running_pod, container="app", since_seconds=60)
    assert "container app started" in text


def test_a_pod_with_several_containers_needs_a_container_name(
    core: client.CoreV1Api, running_pod: str
) -> None:
    two = {
        "metadata": {"name": "two"},
        "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
    }
    core.create_namespaced_pod(running_pod, two)
    with pytest.raises(ApiException) as error:
        core.read_namespaced_pod_log("two", running_pod)
    assert error.value.status == 400
    assert "a container name must be specified" in error.value.body


def test_log_of_a_missing_pod_is_404(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as error:
        core.read_namespaced_pod_log("absent", namespace)
    assert error.value.status == 404


def test_previous_log_of_a_container_that_never_restarted_is_400(
    core: client.CoreV1Api, running_pod: str
) -> None:
    with pytest.raises(ApiException) as error:
        core.read_namespaced_pod_log("p", running_pod, container="app", previous=True)
    assert error.value.status == 400


def test_follow_streams_lines_as_they_are_appended(
    core: client.CoreV1Api, running_pod: str, sim: Simulator
) -> None:
    sim.append_log(running_pod, "p", ["first"], container="app")
    stream = watch.Watch()
    seen: list[str] = []
    for line in stream.stream(
        core.read_namespaced_pod_log, "p", running_pod, container="app", tail_lines=1
    ):
        seen.append(line)
        if line == "first":
            sim.append_log(running_pod, "p", ["second"], container="app")
        elif line == "second":
            stream.stop()
    assert seen == ["first", "second"]
