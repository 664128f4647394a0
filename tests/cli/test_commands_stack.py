"""status, rollback, logs, list and the error funnel, through the installed ``aether``
against ``chalice local`` with moto and the simulated cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from infra.local.processes import Service
from tests.cli.test_deploy_stack import AETHER, aether, deploy_json, pytestmark  # noqa: F401
from tests.conftest import ADMIN_TOKEN


def change(project: Path, marker: str) -> None:
    """A one-line source change: a new digest for the next deploy."""
    server = project / "server.js"
    server.write_text(server.read_text() + f"\n// {marker}\n")


def start_aether(local_api: Service, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """``aether`` running in the background, as a user leaves ``logs -f`` running."""
    environment = {
        **os.environ,
        "AETHER_API_URL": local_api.url,
        "AETHER_TOKEN": ADMIN_TOKEN,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return subprocess.Popen(
        [AETHER, *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(process: subprocess.Popen[str], stream: IO[str] | None, needle: str) -> list[str]:
    """Lines of ``stream`` up to the first one holding ``needle``.

    A process that hangs is killed after two minutes, which ends the stream.
    """
    assert stream is not None
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        for line in stream:
            lines.append(line)
            if needle in line:
                return lines
    finally:
        watchdog.cancel()
    raise AssertionError(f"{needle!r} never came; got {lines}")


def two_releases(
    local_api: Service, tmp_path: Path, project: Path, app: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    first = deploy_json(local_api, tmp_path, project, app)
    change(project, "second")
    second = deploy_json(local_api, tmp_path, project, app)
    return first, second


def test_status_of_the_latest_deployment_shows_its_events(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    deployed = deploy_json(local_api, tmp_path, installed_example, unique_name)
    shown = aether(local_api, tmp_path, "status", "--app", unique_name)
    assert shown.returncode == 0, shown.stderr
    assert deployed["deployment_id"] in shown.stdout
    assert "events:" in shown.stdout
    assert "succeeded: 1 of 1 replicas available" in shown.stdout
    as_json = aether(local_api, tmp_path, "status", "--app", unique_name, "--format", "json")
    phases = [event["phase"] for event in json.loads(as_json.stdout)["events"]]
    assert "succeeded" in phases


def test_rollback_shows_each_event_once(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    first, _ = two_releases(local_api, tmp_path, installed_example, unique_name)
    rolled = aether(local_api, tmp_path, "--log-level", "debug", "rollback", "--app", unique_name)
    assert rolled.returncode == 0, rolled.stderr
    said = rolled.stdout + rolled.stderr
    assert first["digest"][:12] in said
    events = aether(local_api, tmp_path, "status", "--app", unique_name, "--format", "json")
    for event in json.loads(events.stdout)["events"]:
        assert said.count(event["message"]) <= 1, event["message"]


def test_rollback_to_an_unknown_deployment_is_not_found(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    two_releases(local_api, tmp_path, installed_example, unique_name)
    refused = aether(local_api, tmp_path, "rollback", "--app", unique_name, "--to", "nope")
    assert refused.returncode == 20
    assert refused.stderr.strip().splitlines() == [
        "error: deployment nope not found (not_found, HTTP 404)"
    ]


def test_rollback_shows_an_ordered_progress_and_the_cluster_events_only_at_debug(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    two_releases(local_api, tmp_path, installed_example, unique_name)
    rolled = aether(local_api, tmp_path, "rollback", "--app", unique_name)
    assert rolled.returncode == 0, rolled.stderr
    said = rolled.stderr.splitlines()
    assert not [line for line in said if "k8s:" in line]
    assert not [line for line in said if line.startswith("{")]  # sentences, not JSON records
    progress = [line for line in said if "rolling out" in line or "rolled out" in line]
    assert progress[0] == "rolling out, 0/1 started…"
    assert progress[-1].startswith("rolled out 1/1, ready (")
    assert "\x1b" not in rolled.stderr  # no spinner, no colour: stderr is not a terminal

    debug = aether(local_api, tmp_path, "--log-level", "debug", "rollback", "--app", unique_name)
    assert debug.returncode == 0, debug.stderr
    assert "k8s:Scheduled" in debug.stderr


def test_logs_follow_ends_cleanly_on_ctrl_c(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    deploy_json(local_api, tmp_path, installed_example, unique_name)
    following = start_aether(
        local_api, tmp_path, "logs", "--app", unique_name, "-f", "--poll-interval", "0.1"
    )
    read_until(following, following.stdout, "container app started")
    following.send_signal(signal.SIGINT)
    _, stderr = following.communicate(timeout=60)
    assert following.returncode == 0
    assert stderr == ""


def run_in_terminal(
    local_api: Service, tmp_path: Path, *args: str, exit_code: int = 0, **env: str
) -> str:
    """What a person sees: ``aether`` with a pseudo-terminal as stdin, stdout and stderr."""
    import pty

    environment = {
        **{k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")},
        "TERM": "xterm-256color",
        "AETHER_API_URL": local_api.url,
        "AETHER_TOKEN": ADMIN_TOKEN,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        **env,
    }
    controller, child = pty.openpty()
    process = subprocess.Popen(
        [AETHER, *args], env=environment, stdin=child, stdout=child, stderr=child
    )
    os.close(child)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert process.wait(timeout=120) == exit_code, seen.decode(errors="replace")
    return seen.decode()


def test_status_words_are_coloured_on_a_terminal_unless_refused(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    deploy_json(local_api, tmp_path, installed_example, unique_name)
    green = "\x1b[32msucceeded\x1b[0m"
    assert green in run_in_terminal(local_api, tmp_path, "list")
    assert green in run_in_terminal(local_api, tmp_path, "status", "--app", unique_name)
    for refused in (
        run_in_terminal(local_api, tmp_path, "list", NO_COLOR="1"),
        run_in_terminal(local_api, tmp_path, "--no-color", "list"),
    ):
        assert unique_name in refused
        assert "\x1b[" not in refused
    piped = aether(local_api, tmp_path, "list")
    assert unique_name in piped.stdout and "\x1b[" not in piped.stdout
    refused = run_in_terminal(
        local_api, tmp_path, "rollback", "--app", unique_name, "--to", "nope", exit_code=20
    )
    assert "\x1b[31merror:\x1b[0m deployment nope not found" in refused


def test_a_rollout_on_a_terminal_is_one_live_line_that_ends_in_a_tick(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    two_releases(local_api, tmp_path, installed_example, unique_name)
    seen = run_in_terminal(local_api, tmp_path, "rollback", "--app", unique_name)
    assert "\r\x1b[2K" in seen  # the live line was redrawn in place
    assert "\x1b[32m✓\x1b[0m rolled out 1/1, ready (" in seen
    assert "k8s:" not in seen
