"""login/logout, list, status, logs, rollback, keys, completions, and the error funnel.

Against a scripted HTTP server on 127.0.0.1 (tests/cli/fixtures_commands.py);
the installed ``aether`` runs as a subprocess wherever exit codes or the purity
of stdout are the point.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from aether_cli import __version__
from aether_cli.main import _exit_status, cli
from click.testing import CliRunner, Result

from tests.cli.fixtures_commands import (
    AETHER,
    TOKEN,
    Recorded,
    Reply,
    ScriptedServer,
    cli_env_fixture,  # noqa: F401 - fixture "cli_env"
    closed_port_url,
    envelope,
    fake_api_fixture,  # noqa: F401 - fixture "fake_api"
    isolated_env,
    run_aether,
    single_json,
)

WHOAMI = {"subject": "dev@example.com", "role": "developer", "token_id": "t-1"}
SEED = "22" * 32


def invoke(args: list[str], env: dict[str, str], **kwargs: Any) -> Result:
    """In-process run; AETHER_* of the outer environment are removed."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AETHER_")}
    overrides.update(env)
    return CliRunner().invoke(cli, args, env=overrides, catch_exceptions=False, **kwargs)


def logged_in(tmp_path: Path, server: ScriptedServer, **extra: str) -> dict[str, str]:
    return isolated_env(tmp_path, AETHER_API_URL=server.url, AETHER_TOKEN=TOKEN, **extra)


def deployment(status: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return {
        "deployment_id": "dep-1",
        "app_name": "demo-app",
        "artifact_digest": "ab" * 32,
        "status": status,
        "created_at": "2025-01-01T00:00:00Z",
        "url": "http://demo-app.example",
        "events": [{"phase": "created", "message": "deployment created", "timestamp": "t0"}],
        **fields,
    }


# -- the top level ---------------------------------------------------------------------------


def test_help_lists_the_commands_but_not_the_hidden_one(cli_env: dict[str, str]) -> None:
    result = invoke(["--help"], cli_env)
    assert result.exit_code == 0
    for name in ("login", "deploy", "status", "logs", "list", "rollback", "keys", "logout"):
        assert f"  {name} " in result.stdout
    assert "completions" not in result.stdout
    assert "--log-level" in result.stdout and "--log-format" in result.stdout


def test_version(cli_env: dict[str, str]) -> None:
    result = run_aether(["--version"], cli_env)
    assert (result.returncode, result.stdout.strip()) == (0, f"aether, version {__version__}")


def test_the_script_leaves_a_thread_still_running_to_the_interpreters_shutdown(
    cli_env: dict[str, str],
) -> None:
    """A command that left a thread running does not lose it to the script's quick exit."""
    probe = (
        "import sys, threading, time\n"
        "from aether_cli.main import run\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n"
        "sys.argv = ['aether', 'nosuch']\n"
        "run()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (2, "thread finished")


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (20, 20), ("stopped", 1)])
def test_the_scripts_exit_status_is_the_interpreters(
    code: object, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_status(code) == status
    assert capsys.readouterr().err == ("stopped\n" if isinstance(code, str) else "")


def test_help_and_version_load_no_heavy_module(cli_env: dict[str, str]) -> None:
    probe = (
        "import sys\n"
        "from aether_cli.main import cli\n"
        "try:\n"
        "    cli([sys.argv[1]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ['requests', 'nacl', 'tarfile', 'logging', 'json', 'tomllib', 'urllib3',\n"
        "         'aether_cli.pack', 'aether_cli.project', 'aether_cli.client']\n"
        "print(repr([m for m in heavy if m in sys.modules]), file=sys.stderr)\n"
    )
    for flag in ("--help", "--version"):
        result = subprocess.run(
            [sys.executable, "-c", probe, flag],
            env=cli_env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stderr.strip() == "[]", (flag, result.stderr)


def test_usage_error_exits_2(cli_env: dict[str, str]) -> None:
    result = run_aether(["deploy", "--bogus"], cli_env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "No such option" in result.stderr


def test_usage_error_in_json_mode_is_a_json_envelope(cli_env: dict[str, str]) -> None:
    result = run_aether(["deploy", "--format", "json", "--env", "not-a-pair"], cli_env)
    assert result.returncode == 2
    assert single_json(result.stdout)["error"]["code"] == "usage"


@pytest.mark.parametrize("name", ["@scope/web", "9lives"])
def test_invalid_app_option_is_a_usage_error(cli_env: dict[str, str], name: str) -> None:
    result = run_aether(["status", "--app", name], cli_env)
    assert result.returncode == 2
    assert "not a valid app name" in result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions_print_a_script(cli_env: dict[str, str], shell: str) -> None:
    result = run_aether(["completions", "--shell", shell], cli_env)
    assert result.returncode == 0, result.stderr
    assert "_AETHER_COMPLETE" in result.stdout


# -- login / logout ---------------------------------------------------------------------------


def test_login_checks_the_token_and_saves_a_private_session(
    fake_api: ScriptedServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    fake_api.on("GET", "/whoami", Reply(200, WHOAMI))
    result = run_aether(["login", "--api-url", fake_api.url, "--token", TOKEN], cli_env)
    assert result.returncode == 0, result.stderr
    assert "dev@example.com" in result.stdout
    assert fake_api.calls("GET", "/whoami")[0].headers["authorization"] == f"Bearer {TOKEN}"
    path = tmp_path / "cache" / "aether" / "session.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert (saved["api_url"], saved["token"], saved["subject"]) == (
        fake_api.url,
        TOKEN,
        "dev@example.com",
    )

    # The saved session is what later commands use.
    fake_api.on("GET", "/apps", Reply(200, {"apps": []}))
    assert run_aether(["list"], cli_env).returncode == 0
    assert fake_api.calls("GET", "/apps")[0].headers["authorization"] == f"Bearer {TOKEN}"

    result = run_aether(["logout"], cli_env)
    assert result.returncode == 0 and not path.exists()
    assert "Not logged in" in run_aether(["logout"], cli_env).stdout
    assert run_aether(["list"], cli_env).returncode == 10


def test_login_reads_the_token_from_stdin_when_piped(
    fake_api: ScriptedServer, cli_env: dict[str, str]
) -> None:
    fake_api.on("GET", "/whoami", Reply(200, WHOAMI))
    result = run_aether(["login", "--api-url", fake_api.url], cli_env, stdin=TOKEN + "\n")
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert fake_api.calls("GET", "/whoami")[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_login_with_a_wrong_token_exits_10_and_saves_nothing(
    fake_api: ScriptedServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    fake_api.on("GET", "/whoami", envelope(401, "unauthorized", "invalid token"))
    result = run_aether(["login", "--api-url", fake_api.url, "--token", "wrong"], cli_env)
    assert result.returncode == 10
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "invalid token" in result.stderr and "unauthorized" in result.stderr
    assert not (tmp_path / "cache" / "aether" / "session.json").exists()


def test_login_without_a_url_is_a_config_error(cli_env: dict[str, str]) -> None:
    result = run_aether(["login", "--token", "x"], cli_env)
    assert result.returncode == 10
    assert "--api-url" in result.stderr


def test_login_with_an_empty_token_is_a_usage_error(
    fake_api: ScriptedServer, cli_env: dict[str, str]
) -> None:
    result = run_aether(["login", "--api-url", fake_api.url], cli_env, stdin="\n")
    assert result.returncode == 2
    assert fake_api.requests == []


# -- the network and the error envelope ---------------------------------------------------------


def test_unreachable_api_exits_40_with_one_line(tmp_path: Path) -> None:
    env = isolated_env(tmp_path, AETHER_API_URL=closed_port_url(), AETHER_TOKEN=TOKEN)
    result = run_aether(["list"], env)
    assert result.returncode == 40
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the control plane" in errors[0]
    assert "connection refused" in errors[0]


def test_unreachable_api_in_json_mode_prints_one_envelope(tmp_path: Path) -> None:
    env = isolated_env(tmp_path, AETHER_API_URL=closed_port_url(), AETHER_TOKEN=TOKEN)
    result = run_aether(["list", "--format", "json"], env)
    assert result.returncode == 40
    assert single_json(result.stdout)["error"]["code"] == "network"


def test_wrong_token_maps_the_401_envelope(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on("GET", "/apps", envelope(401, "unauthorized", "token revoked"))
    result = run_aether(["list", "--format", "json"], logged_in(tmp_path, fake_api))
    assert result.returncode == 10
    assert single_json(result.stdout) == {
        "error": {"code": "unauthorized", "message": "token revoked"}
    }
    assert "aether login" in result.stderr


def test_reads_are_retried_after_5xx(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on(
        "GET",
        "/apps",
        envelope(503, "service_unavailable", "warming up"),
        Reply(502, "bad gateway"),
        Reply(200, {"apps": []}),
    )
    result = run_aether(["list", "--format", "json"], logged_in(tmp_path, fake_api))
    assert result.returncode == 0, result.stderr
    assert single_json(result.stdout) == {"apps": []}
    assert len(fake_api.calls("GET", "/apps")) == 3


def test_persistent_5xx_exits_40(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on("GET", "/apps", envelope(503, "service_unavailable", "database down"))
    result = run_aether(["list"], logged_in(tmp_path, fake_api))
    assert result.returncode == 40
    assert "database down" in result.stderr
    assert len(fake_api.calls("GET", "/apps")) == 4  # the first try and three retries


def test_a_rollback_is_not_repeated_after_a_5xx(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on("POST", "/apps/demo-app/rollback", envelope(500, "internal", "oops"))
    result = run_aether(["rollback", "--app", "demo-app"], logged_in(tmp_path, fake_api))
    assert result.returncode == 40
    assert len(fake_api.calls("POST", "/apps/demo-app/rollback")) == 1


def test_non_json_success_body_is_not_a_control_plane(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    fake_api.on("GET", "/apps", Reply(200, "<html>proxy login</html>"))
    result = run_aether(["list", "--format", "json"], logged_in(tmp_path, fake_api))
    assert result.returncode == 10
    error = single_json(result.stdout)["error"]
    assert error["code"] == "not_a_control_plane"
    assert "does not look like an Aether control plane" in error["message"]


def test_not_logged_in_is_a_config_error_before_any_request(tmp_path: Path) -> None:
    result = run_aether(["list", "--format", "json"], isolated_env(tmp_path))
    assert result.returncode == 10
    assert single_json(result.stdout)["error"]["code"] == "config"


# -- list / status ------------------------------------------------------------------------------


def test_list_renders_a_table_and_json(fake_api: ScriptedServer, tmp_path: Path) -> None:
    apps = [
        {"name": "demo-app", "owner": "dev", "latest_deployment": deployment()},
        {"name": "idle", "owner": "dev", "latest_deployment": None, "created_at": "c"},
    ]
    fake_api.on("GET", "/apps", Reply(200, {"apps": apps}))
    env = logged_in(tmp_path, fake_api)
    text = invoke(["list"], env)
    assert text.exit_code == 0
    header, first, second = text.stdout.splitlines()
    assert header.split() == [
        "APP",
        "SERVING",
        "DIGEST",
        "URL",
        "LATEST",
        "UPDATED",
        "BASE",
        "EXPIRES",
    ]
    assert first.split()[:5] == [
        "demo-app",
        "dep-1",
        "ab" * 6,
        "http://demo-app.example",
        "succeeded",
    ]
    assert second.split()[:5] == ["idle", "-", "-", "-", "-"]
    listed = json.loads(invoke(["list", "--format", "json"], env).stdout)
    assert listed == {
        "apps": [{**apps[0], "serving": apps[0]["latest_deployment"]}, {**apps[1], "serving": None}]
    }


def test_status_of_a_deployment_and_of_the_latest(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on("GET", "/deployments/dep-1", Reply(200, deployment()))
    fake_api.on(
        "GET",
        "/apps/demo-app",
        Reply(200, {"name": "demo-app", "latest_deployment": deployment(events=None)}),
    )
    fake_api.on(
        "GET",
        "/apps/demo-app/deployments",
        Reply(200, {"deployments": [deployment("succeeded", events=None)], "next_cursor": "c"}),
    )
    env = logged_in(tmp_path, fake_api)
    text = invoke(["status", "dep-1"], env)
    assert text.exit_code == 0
    assert "succeeded" in text.stdout and "deployment created" in text.stdout
    latest = invoke(["status", "--app", "demo-app", "--format", "json"], env)
    assert json.loads(latest.stdout)["events"][0]["message"] == "deployment created"
    assert fake_api.calls("GET", "/apps/demo-app/deployments")[0].query["limit"] == ["1"]


def test_status_app_defaults_to_package_json(fake_api: ScriptedServer, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "package.json").write_text('{"name": "from-package"}')
    fake_api.on("GET", "/apps/from-package/deployments", Reply(200, {"deployments": []}))
    result = run_aether(["status"], logged_in(tmp_path, fake_api), cwd=project)
    assert result.returncode == 20
    assert "no deployments yet" in result.stderr


def test_status_with_a_scoped_package_name_asks_for_app(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "package.json").write_text('{"name": "@acme/web"}')
    result = run_aether(["status", "--format", "json"], logged_in(tmp_path, fake_api), cwd=project)
    assert result.returncode == 10
    assert "--app" in result.stderr
    assert "@acme/web" in single_json(result.stdout)["error"]["message"]
    assert fake_api.requests == []


def test_missing_deployment_is_the_servers_404(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on("GET", "/deployments/nope", envelope(404, "not_found", "no deployment nope"))
    result = run_aether(["status", "nope", "--format", "json"], logged_in(tmp_path, fake_api))
    assert result.returncode == 20
    assert single_json(result.stdout)["error"] == {
        "code": "not_found",
        "message": "no deployment nope",
    }


# -- logs ---------------------------------------------------------------------------------------


def line(ts: str, message: str) -> dict[str, str]:
    return {"ts": ts, "pod": "demo-app-abc", "container": "app", "message": message}


def test_logs_passes_since_tail_and_deployment(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on(
        "GET",
        "/apps/demo-app/logs",
        Reply(200, {"lines": [line("t1", "hello")], "next_since": "t1"}),
    )
    result = invoke(
        [
            "logs",
            "--app",
            "demo-app",
            "--since",
            "2025-01-01T00:00:00Z",
            "--tail",
            "5",
            "--deployment",
            "dep-1",
        ],
        logged_in(tmp_path, fake_api),
    )
    assert result.exit_code == 0
    assert result.stdout == "t1 demo-app-abc/app hello\n"
    query = fake_api.calls("GET", "/apps/demo-app/logs")[0].query
    assert query == {"since": ["2025-01-01T00:00:00Z"], "tail": ["5"], "deployment": ["dep-1"]}


def test_logs_follow_resumes_from_next_since_without_gaps_or_duplicates(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    fake_api.on(
        "GET",
        "/apps/demo-app/logs",
        Reply(200, {"lines": [line("t1", "one"), line("t2", "two")], "next_since": "t2"}),
        # The server's since is inclusive here: "two" comes again and must not print twice.
        Reply(200, {"lines": [line("t2", "two"), line("t3", "three")], "next_since": "t3"}),
        Reply(200, {"lines": [], "next_since": None}),
        Reply(200, {"lines": [line("t4", "four")], "next_since": "t4"}),
        # Ends the endless follow for the test: a 401 is not retried.
        envelope(401, "unauthorized", "token expired"),
    )
    result = run_aether(
        [
            "logs",
            "--app",
            "demo-app",
            "--follow",
            "--tail",
            "2",
            "--poll-interval",
            "0.05",
            "--format",
            "json",
        ],
        logged_in(tmp_path, fake_api),
    )
    assert result.returncode == 10
    records = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r.get("message") for r in records[:-1]] == ["one", "two", "three", "four"]
    assert records[-1] == {"error": {"code": "unauthorized", "message": "token expired"}}
    sent = [c.query for c in fake_api.calls("GET", "/apps/demo-app/logs")]
    assert sent[0] == {"tail": ["2"]}
    assert [q.get("since") for q in sent[1:]] == [["t2"], ["t3"], ["t3"], ["t4"]]
    assert all("tail" not in q for q in sent[1:])


def test_logs_follow_keeps_to_the_tail_until_the_server_gives_a_resume_point(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    """The first page can be empty (the newest lines have not settled yet): the next
    page must still be the last --tail lines, not the whole history."""
    fake_api.on(
        "GET",
        "/apps/demo-app/logs",
        Reply(200, {"lines": [], "next_since": None}),
        Reply(200, {"lines": [line("t8", "eight"), line("t9", "nine")], "next_since": "t9"}),
        envelope(401, "unauthorized", "token expired"),
    )
    args = ["logs", "--app", "demo-app", "-f", "--tail", "2", "--poll-interval", "0.05"]
    result = run_aether(args, logged_in(tmp_path, fake_api))
    assert result.returncode == 10
    assert result.stdout.splitlines() == ["t8 demo-app-abc/app eight", "t9 demo-app-abc/app nine"]
    sent = [c.query for c in fake_api.calls("GET", "/apps/demo-app/logs")]
    assert sent == [{"tail": ["2"]}, {"tail": ["2"]}, {"since": ["t9"]}]


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, {"message": "Not Found"}),
        Reply(403, {"message": "Missing Authentication Token"}),
        envelope(404, "not_found", "no such route: GET /apps/demo-app/logs"),
    ],
)
def test_logs_on_a_control_plane_without_logs_says_so(
    fake_api: ScriptedServer, tmp_path: Path, reply: Reply
) -> None:
    fake_api.on("GET", "/apps/demo-app/logs", reply)
    result = run_aether(["logs", "--app", "demo-app"], logged_in(tmp_path, fake_api))
    assert result.returncode == 20
    assert "does not support logs yet" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_gateways_unknown_route_answer_is_the_one_the_cli_recognises() -> None:
    from aether_cli.client import GATEWAY_NO_ROUTE

    gateway = Path(__file__).resolve().parents[2] / "infra/terraform/gateway_responses.tf.json"
    responses = json.loads(gateway.read_text())["resource"]["aws_api_gateway_gateway_response"]
    template = responses["no_such_route"]["response_templates"]["application/json"]
    assert json.loads(template.replace("$context.httpMethod $context.path", "GET /x")) == {
        "code": "not_found",
        "message": f"{GATEWAY_NO_ROUTE}: GET /x",
    }


def test_logs_of_an_unknown_app_is_the_servers_not_found(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    fake_api.on("GET", "/apps/ghost/logs", envelope(404, "not_found", "app ghost not found"))
    result = run_aether(
        ["logs", "--app", "ghost", "--format", "json"], logged_in(tmp_path, fake_api)
    )
    assert result.returncode == 20
    assert single_json(result.stdout)["error"]["message"] == "app ghost not found"


# -- rollback -----------------------------------------------------------------------------------


def test_rollback_follows_the_new_deployment(fake_api: ScriptedServer, tmp_path: Path) -> None:
    fake_api.on("POST", "/apps/demo-app/rollback", Reply(201, deployment("pending")))
    fake_api.on(
        "GET",
        "/deployments/dep-1",
        Reply(200, deployment("rolling_out")),
        Reply(200, deployment("succeeded")),
    )
    result = run_aether(
        ["rollback", "--app", "demo-app", "--to", "dep-0", "--format", "json"],
        logged_in(tmp_path, fake_api),
    )
    assert result.returncode == 0, result.stderr
    assert single_json(result.stdout)["status"] == "succeeded"
    assert fake_api.calls("POST", "/apps/demo-app/rollback")[0].json == {"to": "dep-0"}


def test_rollback_on_a_control_plane_without_it_says_so(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    fake_api.on(
        "POST", "/apps/demo-app/rollback", Reply(403, {"message": "Missing Authentication Token"})
    )
    result = run_aether(
        ["rollback", "--app", "demo-app", "--no-wait"], logged_in(tmp_path, fake_api)
    )
    assert result.returncode == 20
    assert "does not support rollback yet" in result.stderr


# -- keys ---------------------------------------------------------------------------------------


def public_hex(seed: str) -> str:
    return bytes(nacl.signing.SigningKey(bytes.fromhex(seed)).verify_key).hex()


def test_keys_add_registers_the_public_half_of_the_signing_key(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    def created(request: Recorded) -> Reply:
        return Reply(
            201,
            {
                "key_id": "k-1",
                "app_name": "demo-app",
                "active": True,
                "public_key_hex": request.json["public_key_hex"],
            },
        )

    fake_api.on("POST", "/apps/demo-app/public-keys", created)
    key_file = tmp_path / "signing.key"
    key_file.write_text(SEED)
    key_file.chmod(0o600)
    env = logged_in(tmp_path, fake_api, AETHER_SIGNING_KEY=str(key_file))
    result = run_aether(["keys", "add", "--app", "demo-app", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    sent = fake_api.calls("POST", "/apps/demo-app/public-keys")[0].json
    assert sent == {"public_key_hex": public_hex(SEED)}
    assert SEED not in json.dumps(sent) and SEED not in result.stdout
    assert single_json(result.stdout)["key_id"] == "k-1"


def test_keys_list_marks_the_local_key(fake_api: ScriptedServer, tmp_path: Path) -> None:
    keys = [
        {"key_id": "k-1", "public_key_hex": public_hex(SEED), "active": True, "created_at": "c"},
        {"key_id": "k-2", "public_key_hex": "00" * 32, "active": False, "created_at": "c"},
    ]
    fake_api.on("GET", "/apps/demo-app/public-keys", Reply(200, {"keys": keys}))
    env = logged_in(tmp_path, fake_api, AETHER_SIGNING_KEY=SEED)
    rows = invoke(["keys", "list", "--app", "demo-app"], env).stdout.splitlines()
    assert rows[1].split()[0] == "k-1" and rows[1].rstrip().endswith("*")
    assert rows[2].split()[:2] == ["k-2", "no"] and not rows[2].rstrip().endswith("*")


def test_keys_add_without_a_signing_key_is_a_config_error(
    fake_api: ScriptedServer, tmp_path: Path
) -> None:
    result = run_aether(["keys", "add", "--app", "demo-app"], logged_in(tmp_path, fake_api))
    assert result.returncode == 10
    assert "AETHER_SIGNING_KEY" in result.stderr
    assert fake_api.requests == []


def test_console_script_is_the_installed_one() -> None:
    assert Path(AETHER).exists()


def test_the_cli_counts_pods_by_the_control_planes_app_container() -> None:
    from aether_cli.contract import APP_CONTAINER

    from chalicelib import manifests

    assert APP_CONTAINER == manifests.APP_CONTAINER
    from aether_cli.contract import JOB_CONTAINER

    assert JOB_CONTAINER == manifests.JOB_CONTAINER


def test_the_cli_offers_exactly_the_token_roles_and_lifetimes_the_api_issues(api: Any) -> None:
    from aether_cli.contract import MAX_TOKEN_DAYS, TOKEN_ROLES

    def issue(role: str, days: int) -> int:
        body = {"subject": "contract-check", "role": role, "expires_in_days": days}
        return int(api.post("/tokens", body).status)

    assert [issue(role, MAX_TOKEN_DAYS) for role in TOKEN_ROLES] == [201] * len(TOKEN_ROLES)
    assert issue("puller", 1) == 400
    assert issue(TOKEN_ROLES[0], MAX_TOKEN_DAYS + 1) == 400
