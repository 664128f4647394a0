"""config, releases, rollback by version, scale, restart and open, through the installed
``aether`` against ``chalice local`` with moto and the simulated cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.local.processes import Service
from tests.cli.test_deploy_stack import (  # noqa: F401 - pytestmark
    aether,
    deploy_json,
    pytestmark,
)

SECRET = "hush-4b1e9a"  # a test value, looked for where it must not be


def run_json(local_api: Service, tmp_path: Path, *args: str) -> Any:
    done = aether(local_api, tmp_path, *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stderr
    return json.loads(done.stdout)


def test_config_set_is_a_release_of_the_same_artifact_and_a_deploy_keeps_it(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    app = unique_name
    first = deploy_json(local_api, tmp_path, installed_example, app)
    release = run_json(local_api, tmp_path, "config", "set", f"GREETING={SECRET}", "--app", app)
    assert release["status"] == "succeeded"
    assert release["artifact_digest"] == first["digest"]
    assert (release["version"], release["description"]) == (2, "set GREETING")
    assert SECRET not in json.dumps(release)

    names = run_json(local_api, tmp_path, "config", "--names-only", "--app", app)
    assert names["names"] == ["GREETING"] and SECRET not in json.dumps(names)
    # The owner's listing shows the values, Heroku-style.
    listed = run_json(local_api, tmp_path, "config", "--app", app)
    assert listed["values"] == {"GREETING": SECRET}
    shown = aether(local_api, tmp_path, "config", "--app", app)
    assert shown.stdout.splitlines()[1:] == [f"  GREETING={SECRET}"]
    got = aether(local_api, tmp_path, "config", "get", "GREETING", "--app", app)
    assert (got.returncode, got.stdout) == (0, SECRET + "\n")

    again = deploy_json(local_api, tmp_path, installed_example, app)
    assert again["uploaded"] is False
    assert run_json(local_api, tmp_path, "config", "--app", app)["names"] == ["GREETING"]
    gone = run_json(local_api, tmp_path, "config", "unset", "GREETING", "--app", app)
    assert gone["env_names"] == [] and gone["description"] == "unset GREETING"

    listed = aether(local_api, tmp_path, "releases", "--app", app)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "CHANGE"]
    assert [line.split()[0] for line in lines[1:]] == ["v3", "v2", "v1"]
    for command in (["releases"], ["list"], ["status"], ["config", "--names-only"]):
        shown = aether(local_api, tmp_path, *command, "--app", app)
        assert SECRET not in shown.stdout + shown.stderr, command


def test_rollback_by_version_scale_restart_and_open(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    app = unique_name
    first = deploy_json(local_api, tmp_path, installed_example, app)
    run_json(local_api, tmp_path, "config", "set", "MODE=a", "--app", app)
    scaled = run_json(local_api, tmp_path, "scale", "2", "--app", app)
    assert (scaled["replicas"], scaled["description"]) == (2, "scale to 2")
    back = run_json(local_api, tmp_path, "rollback", "v1", "--app", app)
    assert back["description"] == "rollback to v1"
    assert back["env_names"] == [] and back["replicas"] == 2
    assert back["rollback_of"] == first["deployment_id"]
    restarted = run_json(local_api, tmp_path, "restart", "--app", app)
    assert restarted["version"] == back["version"] and restarted["restarted_at"]
    zero = run_json(local_api, tmp_path, "scale", "0", "--app", app)
    assert zero["replicas"] == 0 and zero["status"] == "succeeded"
    opened = run_json(local_api, tmp_path, "open", "--app", app)
    assert opened["url"] == zero["url"] and opened["opened"] is False
    printed = aether(local_api, tmp_path, "open", "--app", app)
    assert printed.stdout.strip() == zero["url"]


def test_bad_input_is_one_line_and_its_exit_code_and_changes_nothing(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    app = unique_name
    deploy_json(local_api, tmp_path, installed_example, app)
    cases = [
        (["config", "set", "1BAD=x"], 2),
        (["config", "set", "WITH-DASH=x"], 2),
        (["config", "set", "NOEQUALS"], 2),
        (["config", "set", "PORT=1"], 2),
        (["config", "set", "BIG=" + "x" * 9000], 2),
        (["config", "unset", "bad-name"], 2),
        (["config", "get", "NOT_SET"], 20),
        (["scale", "-1"], 2),
        (["scale", "21"], 2),
        (["rollback", "v99"], 20),
    ]
    for args, code in cases:
        done = aether(local_api, tmp_path, *args, "--app", app)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert "x" * 50 not in done.stderr, args  # a value is never echoed
        as_json = aether(local_api, tmp_path, *args, "--app", app, "--format", "json")
        assert as_json.returncode == code, args
        if code != 2:
            assert json.loads(as_json.stdout)["error"]["code"] == "not_found", args
    missing = aether(local_api, tmp_path, "config", "set", "A=1", "--app", app + "-nope")
    assert missing.returncode == 20 and missing.stderr.startswith("error: ")
    assert len(missing.stderr.strip().splitlines()) <= 2
    listed = run_json(local_api, tmp_path, "releases", "--app", app)
    assert [r["version"] for r in listed["releases"]] == [1]


def test_promote_runs_the_sources_artifact_with_the_targets_config(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    staging, prod = f"{unique_name[:50]}-stg", f"{unique_name[:50]}-prd"
    built = deploy_json(local_api, tmp_path, installed_example, staging)
    deploy_json(local_api, tmp_path, installed_example, prod, "--env", f"GREETING={SECRET}")

    release = run_json(local_api, tmp_path, "promote", "--to", prod, "--app", staging)
    assert release["status"] == "succeeded", release
    assert release["artifact_digest"] == built["digest"]
    assert (release["version"], release["description"]) == (2, f"promote from {staging} v1")
    assert release["env_names"] == ["GREETING"] and SECRET not in json.dumps(release)
    text = aether(local_api, tmp_path, "promote", "--to", prod, "--app", staging)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"{prod}: release v2 (promote from {staging} v1) succeeded")

    cases = [
        (["--to", "Not_An_App", "--app", staging], 2),
        (["--app", staging], 2),  # --to is required
        (["--to", prod + "-nope", "--app", staging], 20),
        (["--to", prod, "--app", staging + "-nope"], 20),
        (["--to", staging, "--app", staging], 20),
    ]
    for args, code in cases:
        done = aether(local_api, tmp_path, "promote", *args)
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert done.stderr.strip().splitlines()[-1].lower().startswith(("error", "usage")), args
    listed = run_json(local_api, tmp_path, "releases", "--app", prod)
    assert [r["version"] for r in listed["releases"]] == [2, 1]


def test_deploy_preview_copies_the_bases_config_and_list_shows_its_expiry(
    local_api: Service, tmp_path: Path, installed_example: Path, unique_name: str
) -> None:
    base, preview = f"{unique_name[:50]}-base", f"{unique_name[:50]}-pr"
    deploy_json(local_api, tmp_path, installed_example, base, "--env", f"GREETING={SECRET}")
    shown = deploy_json(
        local_api, tmp_path, installed_example, base, "--preview", preview, "--ttl", "2h"
    )
    assert shown["app"] == preview and shown["status"] == "succeeded", shown
    assert shown["preview"]["base"] == base and shown["preview"]["expires_at"]
    assert run_json(local_api, tmp_path, "config", "--app", preview)["names"] == ["GREETING"]
    got = aether(local_api, tmp_path, "config", "get", "GREETING", "--app", preview)
    assert got.stdout == SECRET + "\n"
    listed = {a["name"]: a for a in run_json(local_api, tmp_path, "list")["apps"]}
    assert listed[preview]["preview_of"] == base
    assert listed[preview]["expires_at"] == shown["preview"]["expires_at"]
    assert listed[preview]["serving"]["url"] != listed[base]["serving"]["url"]
    table = aether(local_api, tmp_path, "list")
    row = next(line for line in table.stdout.splitlines() if line.startswith(preview + " "))
    assert base in row.split() and shown["preview"]["expires_at"] in row

    for args, code in (
        (["--preview", preview, "--ttl", "soon"], 2),
        (["--preview", preview, "--ttl", "0s"], 2),
        (["--ttl", "1h"], 2),  # a lifetime without a preview
        (["--preview", "Bad_Name"], 2),
        (["--preview", preview, "--ttl", "30d"], 20),  # over the platform's maximum
    ):
        done = aether(
            local_api, tmp_path, "deploy", "--path", str(installed_example), "--app", base, *args
        )
        assert done.returncode == code, (args, done.returncode, done.stderr)
        assert done.stderr.strip().splitlines()[-1].lower().startswith("error"), args
