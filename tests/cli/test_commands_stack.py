"""status, rollback, logs, list and the error funnel, through the installed ``aether``
against ``chalice local`` with moto and the simulated cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from infra.local.processes import Service
from tests.cli.test_deploy_stack import (  # noqa: F401 - pytestmark
    AETHER,
    aether,
    deploy_args,
    deploy_json,
    pytestmark,
)
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


# -- who you are: tokens, logins, the wrong URL ---------------------------------------------


def login(local_api: Service, tmp_path: Path, token: str) -> None:
    done = aether(local_api, tmp_path, "login", "--token", token, token="")
    assert done.returncode == 0, done.stderr


def test_admins_list_pull_tokens_without_their_secrets(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    from chalicelib import pull_tokens
    from chalicelib.records import Application

    Application(unique_name, owner="admin").save()
    written: list[str] = []
    old = pull_tokens.replace(unique_name, written.append)
    new = pull_tokens.replace(unique_name, written.append)
    listed = aether(local_api, tmp_path, "tokens", "pull", "--app", unique_name)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[-1] for line in listed.stdout.splitlines()[1:]}
    assert rows == {old.record.token_id: "revoked", new.record.token_id: "current"}
    as_json = aether(local_api, tmp_path, "tokens", "pull", "--format", "json")
    assert all(secret not in listed.stdout + as_json.stdout for secret in written)
    developer = aether(local_api, tmp_path, "tokens", "create", "--subject", unique_name)
    refused = aether(local_api, tmp_path, "tokens", "pull", token=developer.stdout.strip())
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "only admins may list pull tokens" in refused.stderr


def test_tokens_are_issued_listed_and_revoked_and_whoami_says_whose(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    issued = aether(
        local_api,
        tmp_path,
        "tokens",
        "create",
        "--subject",
        unique_name,
        "--role",
        "developer",
        "--expires-in-days",
        "7",
    )
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    assert secret.startswith("aet_") and secret not in issued.stderr
    listed = aether(local_api, tmp_path, "tokens", "list", "--format", "json")
    mine = [t for t in json.loads(listed.stdout)["tokens"] if t["subject"] == unique_name]
    assert [t["role"] for t in mine] == ["developer"]
    assert secret not in listed.stdout

    login(local_api, tmp_path, secret)
    who = aether(local_api, tmp_path, "whoami", token="")
    assert who.returncode == 0, who.stderr
    assert who.stdout.splitlines()[0].startswith(f"{unique_name} (role developer, token ")
    assert "token from the login saved in" in who.stdout
    from_env = aether(local_api, tmp_path, "whoami", "--format", "json")
    assert json.loads(from_env.stdout)["credentials_from"] == "environment"

    revoked = aether(local_api, tmp_path, "tokens", "revoke", mine[0]["token_id"])
    assert revoked.returncode == 0, revoked.stderr
    refused = aether(local_api, tmp_path, "list", token="")
    assert refused.returncode == 10
    assert refused.stderr.strip().splitlines() == [
        "error: the token has expired or was revoked (unauthorized, HTTP 401); "
        "run `aether login` to refresh the token"
    ]


def test_a_refused_aether_token_says_that_it_overrides_the_login(
    local_api: Service, tmp_path: Path
) -> None:
    login(local_api, tmp_path, ADMIN_TOKEN)
    refused = aether(local_api, tmp_path, "list", token="wrong")
    assert refused.returncode == 10
    (line,) = refused.stderr.strip().splitlines()
    assert line.endswith(
        "AETHER_TOKEN is set in this environment and overrides any `aether login`: "
        "correct it, or unset it to use your login"
    )


def test_login_while_aether_token_is_set_warns_that_it_wins(
    local_api: Service, tmp_path: Path, unique_name: str
) -> None:
    issued = aether(local_api, tmp_path, "tokens", "create", "--subject", unique_name)
    done = aether(local_api, tmp_path, "login", "--token", issued.stdout.strip())
    assert done.returncode == 0, done.stderr
    assert "AETHER_TOKEN is set in this environment and overrides this login" in done.stderr


def test_an_ordinary_web_server_is_not_taken_for_a_control_plane(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!DOCTYPE html><title>hello</title>\n")
    (site / "apps").mkdir()
    (site / "apps" / "index.html").write_text("<!DOCTYPE html><title>apps</title>\n")
    with web_server(site) as url:
        env = {"XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_CACHE_HOME": str(tmp_path / "cc")}
        for args, answer in (
            (["login", "--api-url", url, "--token", "t"], "GET /whoami answered HTTP 404"),
            (["list"], "GET /apps answered HTTP 200"),
        ):
            done = subprocess.run(
                [AETHER, *args],
                env={**os.environ, **env, "AETHER_API_URL": url, "AETHER_TOKEN": "t"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 10
            assert done.stderr.splitlines() == [
                f"error: {url} does not look like an Aether control plane: {answer} with "
                "text/html; check --api-url, AETHER_API_URL or api_url in the config file"
            ]


@contextmanager
def web_server(root: Path) -> Iterator[str]:
    """``python -m http.server`` on a free loopback port, serving ``root``."""
    import sys

    from infra.local.processes import free_port, start

    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = start("web", command, port, root.parent / "web.log", cwd=root)
    try:
        yield server.url
    finally:
        server.stop()


def test_keys_generate_writes_a_private_key_that_keys_add_registers(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    deploy_json(local_api, tmp_path, installed_example, unique_name, "--no-wait")
    key_file = tmp_path / "keys" / "signing-key"
    made = aether(local_api, tmp_path, "keys", "generate", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    seed = key_file.read_text().strip()
    assert len(seed) == 64 and int(seed, 16) >= 0
    assert seed not in made.stdout
    assert f"export AETHER_SIGNING_KEY={key_file}" in made.stdout

    added = aether(
        local_api,
        tmp_path,
        "keys",
        "add",
        "--app",
        unique_name,
        "--format",
        "json",
        AETHER_SIGNING_KEY=str(key_file),
    )
    assert added.returncode == 0, added.stderr
    public = json.loads(added.stdout)["public_key_hex"]
    assert public in made.stdout

    again = aether(local_api, tmp_path, "keys", "generate", "--out", str(key_file))
    assert again.returncode == 10
    assert "already exists; a signing key is never replaced" in again.stderr
    assert key_file.read_text().strip() == seed


# -- what serves after a failed rollout ------------------------------------------------------


def test_after_a_failed_rollout_list_and_status_show_what_still_serves(
    local_api: Service,
    tmp_path: Path,
    installed_example: Path,
    unique_name: str,
    kube_simulator: Any,
) -> None:
    serving = deploy_json(local_api, tmp_path, installed_example, unique_name)
    # Only the new release's pods crash; the old one keeps serving.
    kube_simulator.crash_loop(
        "aether-apps", unique_name, label_selector=f"deployment_id!={serving['deployment_id']}"
    )
    try:
        change(installed_example, "crashes")
        failed = aether(local_api, tmp_path, *deploy_args(installed_example, unique_name))
    finally:
        kube_simulator.clear_faults()
    assert failed.returncode == 20, failed.stderr
    failed_id = json.loads(failed.stdout)["error"]["message"].split()[1]

    listed = aether(local_api, tmp_path, "list", "--format", "json")
    (app,) = [a for a in json.loads(listed.stdout)["apps"] if a["name"] == unique_name]
    assert app["latest_deployment"]["status"] == "failed"
    assert app["serving"]["deployment_id"] == serving["deployment_id"]
    assert app["serving"]["url"] == serving["url"]
    table = aether(local_api, tmp_path, "list").stdout.splitlines()
    (row,) = [line.split() for line in table if line.startswith(unique_name + " ")]
    assert row[1:6] == [
        serving["deployment_id"],
        serving["digest"][:12],
        serving["url"],
        "failed",
        failed_id,
    ]

    status = aether(local_api, tmp_path, "status", "--app", unique_name)
    assert status.returncode == 0, status.stderr
    assert f"deployment  {failed_id}" in status.stdout
    assert (
        f"serving     {serving['deployment_id']} (artifact {serving['digest'][:12]}) "
        f"at {serving['url']}"
    ) in status.stdout
