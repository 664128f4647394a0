"""``aether deploy`` end to end against a scripted control plane and storage target.

The project has no dependencies, so npm installs it offline. The storage PUT
target is the same scripted server: it records exactly the headers and bytes
the CLI sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from tests.cli.fixtures_commands import (
    TOKEN,
    Recorded,
    Reply,
    ScriptedServer,
    envelope,
    fake_api_fixture,  # noqa: F401 - fixture "fake_api"
    isolated_env,
    run_aether,
    single_json,
    write_project,
)

DIGEST_PATH = r"/artifacts/[0-9a-f]{64}"
SEED = "33" * 32


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "demo-app")


def logged_in(tmp_path: Path, server: ScriptedServer, **extra: str) -> dict[str, str]:
    return isolated_env(tmp_path, AETHER_API_URL=server.url, AETHER_TOKEN=TOKEN, **extra)


def deployment(status: str, events: int = 1, **fields: Any) -> dict[str, Any]:
    phases = ["created", "rolling_out", "available", "failed"]
    return {
        "deployment_id": "dep-1",
        "app_name": "demo-app",
        "artifact_digest": "ab" * 32,
        "status": status,
        "created_at": "2025-01-01T00:00:00Z",
        "url": "http://demo-app.example" if status == "succeeded" else None,
        "events": [
            {"phase": phases[i], "message": f"step {i}", "timestamp": f"t{i}"}
            for i in range(events)
        ],
        **fields,
    }


def grant(server: ScriptedServer) -> Any:
    """POST /artifacts as the control plane answers it: a presigned PUT on 'storage'."""

    def respond(request: Recorded) -> Reply:
        digest = request.headers["x-aether-artifact-digest"]
        size = request.json["size_bytes"]
        checksum = base64.b64encode(bytes.fromhex(digest)).decode()
        return Reply(
            201,
            {
                "digest": digest,
                "key": f"artifacts/demo-app/{digest}/app.tar.gz",
                "duplicate": False,
                "upload": {
                    "method": "PUT",
                    "url": f"{server.url}/storage/{digest}?X-Amz-Signature=abc",
                    "headers": {
                        "Content-Length": str(size),
                        "x-amz-checksum-sha256": checksum,
                        "Content-Type": "application/gzip",
                    },
                },
                "expires_at": "2025-01-01T00:15:00Z",
            },
        )

    return respond


def script_happy_path(server: ScriptedServer) -> None:
    server.on("HEAD", DIGEST_PATH, Reply(404))
    server.on("POST", "/artifacts", grant(server))
    server.on("PUT", r"/storage/.*", Reply(200))
    server.on("POST", "/deployments", Reply(201, deployment("pending")))
    server.on(
        "GET",
        "/deployments/dep-1",
        Reply(200, deployment("rolling_out", 2)),
        Reply(200, deployment("succeeded", 3)),
    )


def test_first_deploy_uploads_exactly_the_signed_headers_and_follows_the_rollout(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--env", "GREETING=hi there", "--env", "A="],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    out = single_json(result.stdout)
    artifact = Path(out["artifact"])
    manifest = artifact.read_bytes()
    assert out["digest"] == hashlib.sha256(manifest).hexdigest()
    assert artifact == project / ".aether" / "build" / "artifact.json"
    # No dependencies: one layer, the app's own files.
    (layer,) = out["layers"]
    body = Path(layer["path"]).read_bytes()
    assert (layer["role"], layer["size"], layer["uploaded"]) == ("app", len(body), True)
    assert layer["digest"] == hashlib.sha256(body).hexdigest()
    assert json.loads(manifest) == {
        "schema": "aether.artifact/v2",
        "app": "demo-app",
        "layers": [{"role": "app", "digest": layer["digest"], "size": len(body)}],
    }
    assert out["size_bytes"] == len(body) + len(manifest) == out["uploaded_bytes"]
    assert Path(out["manifest"]).is_file()
    assert (out["sbom"], out["signature"]) == (None, None)
    assert (out["uploaded"], out["deployment_id"], out["status"]) == (True, "dep-1", "succeeded")
    assert out["url"] == "http://demo-app.example"

    # The layer first, then the manifest that names it.
    put, put_manifest = fake_api.calls("PUT", r"/storage/.*")
    assert put.body == body
    assert put_manifest.body == manifest
    assert put.query == {"X-Amz-Signature": ["abc"]}
    assert put.headers["content-length"] == str(len(body))
    assert (
        put.headers["x-amz-checksum-sha256"]
        == base64.b64encode(hashlib.sha256(body).digest()).decode()
    )
    assert put.headers["content-type"] == "application/gzip"
    assert "authorization" not in put.headers
    assert TOKEN not in json.dumps(put.headers)

    post_layer, post = fake_api.calls("POST", "/artifacts")
    assert post_layer.headers["x-aether-artifact-digest"] == layer["digest"]
    assert post_layer.json["kind"] == "layer"
    assert post.headers["x-aether-artifact-digest"] == out["digest"]
    assert "x-aether-signature" not in post.headers
    assert post.json == {
        "app_name": "demo-app",
        "size_bytes": len(manifest),
        "kind": "manifest",
        "runtime": "node24",
        "platform": "linux/amd64",
    }
    (created,) = fake_api.calls("POST", "/deployments")
    assert created.json == {
        "app_name": "demo-app",
        "artifact_digest": out["digest"],
        "runtime": "node24",
        # The project's start command is a default: a start command or replicas set on an
        # earlier release are kept; --env values are set for this and later releases.
        "defaults": {"start_command": "npm start"},
        "env": {"GREETING": "hi there", "A": ""},
    }
    # The rollout's progress is on stderr; no event is shown twice.
    assert "rolled out 1/1, ready" in result.stderr
    for i in range(3):
        assert result.stderr.count(f"step {i}") <= 1


def test_an_artifact_the_platform_has_is_not_uploaded_again(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    # Packed before and unchanged since: the whole artifact is asked about first.
    packed = run_aether(["deploy", "--pack-only", "--no-sbom"], isolated_env(tmp_path), cwd=project)
    assert packed.returncode == 0, packed.stderr
    script_happy_path(fake_api)
    fake_api.on("HEAD", DIGEST_PATH, Reply(200))
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    out = single_json(result.stdout)
    assert (out["uploaded"], out["status"]) == (False, "pending")
    assert fake_api.calls("POST", "/artifacts") == []
    assert fake_api.calls("PUT", r"/storage/.*") == []
    assert fake_api.calls("GET", "/deployments/dep-1") == []
    assert [layer["uploaded"] for layer in out["layers"]] == [False]
    assert out["uploaded_bytes"] == 0


def test_an_artifact_packed_anew_is_not_asked_about_before_its_uploads(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    # A layer packed anew (a source change) makes a new artifact nearly always: its HEAD
    # would be a round trip for a 404, and POST /artifacts says when one is held anyway.
    script_happy_path(fake_api)
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert fake_api.calls("HEAD", DIGEST_PATH) == []
    assert single_json(result.stdout)["uploaded"] is True


def test_a_layer_the_platform_holds_is_not_uploaded_again(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    packed = run_aether(
        ["deploy", "--pack-only", "--format", "json", "--no-sbom"],
        isolated_env(tmp_path),
        cwd=project,
    )
    (layer,) = single_json(packed.stdout)["layers"]
    script_happy_path(fake_api)
    upload_granted = grant(fake_api)

    def holds_the_layer(request: Recorded) -> Reply:
        # The app layer is not asked about first: its POST says it is held (no upload).
        if request.headers["x-aether-artifact-digest"] == layer["digest"]:
            return Reply(201, {"digest": layer["digest"], "duplicate": True, "upload": None})
        return upload_granted(request)

    fake_api.on("POST", "/artifacts", holds_the_layer)
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    out = single_json(result.stdout)
    assert out["layers"][0]["digest"] == layer["digest"]  # the app's name is not in a layer
    assert out["layers"][0]["uploaded"] is False
    (put,) = fake_api.calls("PUT", r"/storage/.*")
    assert put.body == Path(out["artifact"]).read_bytes()  # only the manifest
    assert out["uploaded_bytes"] == len(put.body)


def test_a_duplicate_without_upload_grant_is_not_uploaded(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on(
        "POST", "/artifacts", Reply(201, {"digest": "x", "duplicate": True, "upload": None})
    )
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert single_json(result.stdout)["uploaded"] is False
    assert fake_api.calls("PUT", r"/storage/.*") == []


def test_an_unknown_app_is_registered_and_the_request_retried_once(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on(
        "POST", "/artifacts", envelope(404, "not_found", "no app demo-app"), grant(fake_api)
    )
    fake_api.on("POST", "/apps", Reply(201, {"name": "demo-app"}))
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert fake_api.calls("POST", "/apps")[0].json == {
        "name": "demo-app",
        "require_signature": False,
    }
    assert len(fake_api.calls("POST", "/artifacts")) == 3  # the layer twice, then the manifest
    assert single_json(result.stdout)["uploaded"] is True


def test_the_upload_is_retried_after_a_5xx_with_the_same_bytes(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on(
        "PUT",
        r"/storage/.*",
        Reply(503, "<Error><Code>SlowDown</Code><Message>busy</Message></Error>"),
        Reply(200),
    )
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    first, second, manifest = fake_api.calls("PUT", r"/storage/.*")
    layer = Path(single_json(result.stdout)["layers"][0]["path"]).read_bytes()
    assert first.body == second.body == layer
    assert manifest.body == Path(single_json(result.stdout)["artifact"]).read_bytes()


def test_storage_refusing_the_upload_is_reported(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on(
        "PUT",
        r"/storage/.*",
        Reply(
            403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        ),
    )
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom"], logged_in(tmp_path, fake_api), cwd=project
    )
    assert result.returncode == 20
    error = single_json(result.stdout)["error"]
    assert error["code"] == "upload_rejected"
    assert "AccessDenied: Request has expired" in error["message"]
    assert fake_api.calls("POST", "/deployments") == []


def test_signed_deploy_writes_the_signature_and_sends_it(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api, AETHER_SIGNING_KEY=SEED),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    out = single_json(result.stdout)
    signature = Path(out["signature"]).read_text().strip()
    assert Path(out["signature"]) == Path(out["artifact"] + ".sig")
    posts = fake_api.calls("POST", "/artifacts")
    assert [post.json["kind"] for post in posts] == ["layer", "manifest"]
    assert "x-aether-signature" not in posts[0].headers  # the manifest's signature covers it
    assert posts[1].headers["x-aether-signature"] == signature
    verify = nacl.signing.SigningKey(bytes.fromhex(SEED)).verify_key
    verify.verify(out["digest"].encode(), bytes.fromhex(signature))

    # Without the key, the next pack leaves no stale signature behind.
    again = run_aether(
        ["deploy", "--pack-only", "--format", "json", "--no-sbom"],
        isolated_env(tmp_path),
        cwd=project,
    )
    assert single_json(again.stdout)["signature"] is None
    assert not Path(out["signature"]).exists()


def test_a_failed_rollout_exits_20_with_only_the_error_on_stdout(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on("GET", "/deployments/dep-1", Reply(200, deployment("failed", 4)))
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom"], logged_in(tmp_path, fake_api), cwd=project
    )
    assert result.returncode == 20
    error = single_json(result.stdout)["error"]
    assert error["code"] == "deployment_failed"
    assert "dep-1" in error["message"] and "step 3" in error["message"]


def test_waiting_gives_up_after_the_timeout(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on("GET", "/deployments/dep-1", Reply(200, deployment("rolling_out")))
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--timeout", "1"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 20
    error = single_json(result.stdout)["error"]
    assert error["code"] == "timeout"
    assert "aether status dep-1" in result.stderr


def test_a_rejected_artifact_says_why(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on("POST", "/deployments", envelope(409, "artifact_not_verified", "not verified"))
    fake_api.on("GET", DIGEST_PATH, Reply(200, {"status": "rejected", "reason": "bad_signature"}))
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom"], logged_in(tmp_path, fake_api), cwd=project
    )
    assert result.returncode == 20
    error = single_json(result.stdout)["error"]
    assert error["code"] == "artifact_not_verified"
    assert "bad_signature" in error["message"]


def test_dry_run_sends_nothing(fake_api: ScriptedServer, project: Path, tmp_path: Path) -> None:
    result = run_aether(
        ["deploy", "--dry-run", "--format", "json", "--no-sbom"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    out = single_json(result.stdout)
    assert (out["status"], out["app"], out["uploaded"], out["deployment_id"]) == (
        "dry_run",
        "demo-app",
        False,
        None,
    )
    assert fake_api.requests == []


def test_pack_only_needs_no_login_and_no_valid_app_name(tmp_path: Path) -> None:
    project = write_project(tmp_path / "scoped", name="@acme/web")
    result = run_aether(
        ["deploy", "--pack-only", "--format", "json", "--no-sbom"],
        isolated_env(tmp_path),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    out = single_json(result.stdout)
    assert out["status"] == "packed"
    assert json.loads(Path(out["artifact"]).read_bytes())["app"] is None  # no app yet
    # GNU tar reads it.
    listing = subprocess.run(
        ["tar", "-tzf", out["layers"][0]["path"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"package.json", "server.js"} <= set(listing)


def test_not_logged_in_fails_before_packing(project: Path, tmp_path: Path) -> None:
    result = run_aether(["deploy", "--format", "json"], isolated_env(tmp_path), cwd=project)
    assert result.returncode == 10
    assert single_json(result.stdout)["error"]["code"] == "config"
    assert not (project / ".aether").exists()


@pytest.mark.parametrize(
    ("setup", "code", "needle"),
    [
        (lambda p: (p / "package.json").unlink(), 10, "no package.json"),
        (lambda p: (p / "package.json").write_text("{broken"), 10, "not valid JSON"),
        (lambda p: (p / "package.json").write_text('{"name": "@acme/web"}'), 10, "--app"),
    ],
    ids=["no-package-json", "broken-package-json", "scoped-name"],
)
def test_project_problems_exit_10_with_one_json_object(
    fake_api: ScriptedServer, project: Path, tmp_path: Path, setup: Any, code: int, needle: str
) -> None:
    setup(project)
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom"], logged_in(tmp_path, fake_api), cwd=project
    )
    assert result.returncode == code
    error = single_json(result.stdout)["error"]
    assert needle in error["message"] or needle in result.stderr
    assert fake_api.requests == []


def test_npm_missing_exits_10(project: Path, tmp_path: Path) -> None:
    import sys

    # PATH with only the interpreter's directory: aether runs, npm is nowhere.
    env = isolated_env(tmp_path, PATH=str(Path(sys.executable).parent))
    assert not (Path(sys.executable).parent / "npm").exists()
    result = run_aether(["deploy", "--pack-only", "--format", "json"], env, cwd=project)
    assert result.returncode == 10
    assert "npm" in single_json(result.stdout)["error"]["message"]


def test_unreachable_api_during_deploy_exits_40(project: Path, tmp_path: Path) -> None:
    from tests.cli.fixtures_commands import closed_port_url

    env = isolated_env(tmp_path, AETHER_API_URL=closed_port_url(), AETHER_TOKEN=TOKEN)
    result = run_aether(["deploy", "--format", "json", "--no-sbom"], env, cwd=project)
    assert result.returncode == 40
    assert single_json(result.stdout)["error"]["code"] == "network"


def test_text_mode_prints_a_summary_and_logs_to_stderr(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    result = run_aether(
        ["--log-format", "text", "deploy", "--no-sbom"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Deployed demo-app: http://demo-app.example"
    assert re.search(r"url\s+http://demo-app.example", result.stdout)
    assert "packed" in result.stderr and "{" not in result.stderr


def test_no_wait_says_what_happened_and_how_to_follow(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    fake_api.on("POST", "/deployments", Reply(201, deployment("rolling_out")))
    result = run_aether(
        ["--log-format", "text", "deploy", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "Deployment dep-1 of demo-app is rolling out; follow it with `aether status dep-1 --follow`"
    )


def test_a_refused_token_fails_before_any_build(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    fake_api.on("GET", "/whoami", envelope(401, "unauthorized", "token refused"))
    result = run_aether(["deploy", "--format", "json"], logged_in(tmp_path, fake_api), cwd=project)
    assert result.returncode == 10
    assert single_json(result.stdout)["error"]["code"] == "unauthorized"
    assert not (project / ".aether").exists()  # nothing was staged, installed or packed
    assert [r.path for r in fake_api.requests] == ["/whoami"]


def test_a_head_answer_with_a_stray_body_does_not_break_the_next_call(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    fake_api.head_writes_body = True
    script_happy_path(fake_api)
    fake_api.on("HEAD", DIGEST_PATH, envelope(404, "not_found", "no such artifact"))
    result = run_aether(
        ["deploy", "--format", "json", "--no-sbom", "--no-wait"],
        logged_in(tmp_path, fake_api),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    # One for the layer, one for the manifest: no retry was needed.
    assert len(fake_api.calls("POST", "/artifacts")) == 2
    assert "retrying" not in result.stderr


def test_log_level_error_keeps_stderr_quiet_on_success(project: Path, tmp_path: Path) -> None:
    result = run_aether(
        ["--log-level", "error", "deploy", "--pack-only", "--no-sbom"],
        isolated_env(tmp_path),
        cwd=project,
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith("Packed ")


def test_log_format_json_gives_one_record_per_line(project: Path, tmp_path: Path) -> None:
    result = run_aether(
        ["--log-format", "json", "--log-level", "debug", "deploy", "--pack-only", "--no-sbom"],
        isolated_env(tmp_path),
        cwd=project,
    )
    assert result.returncode == 0
    records = [json.loads(x) for x in result.stderr.splitlines()]
    assert {"ts", "level", "message"} <= set(records[0])
    assert any(r["level"] == "debug" for r in records)


@pytest.mark.parametrize(
    "assignment",
    ["NOEQUALS", "1BAD=x", "WITH-DASH=x", "PORT=1", "BIG=" + "x" * 9000],
    ids=["no equals", "leading digit", "dash", "reserved", "too large"],
)
def test_a_bad_env_assignment_is_refused_before_anything_is_built_or_sent(
    fake_api: ScriptedServer, project: Path, tmp_path: Path, assignment: str
) -> None:
    result = run_aether(["deploy", "--env", assignment], logged_in(tmp_path, fake_api), cwd=project)
    assert result.returncode == 2, result.stderr
    assert "x" * 100 not in result.stderr  # a value is never echoed
    assert not (project / ".aether").exists()
    assert fake_api.requests == []


def test_the_release_command_is_sent_and_a_bad_one_refused_before_building(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    (project / "aether.toml").write_text('[deploy]\nrelease_command = "npm run migrate"\n')
    env = logged_in(tmp_path, fake_api)
    result = run_aether(["deploy", "--no-sbom", "--release-command", "node m.js"], env, cwd=project)
    assert result.returncode == 0, result.stderr
    (sent,) = [r for r in fake_api.requests if r.method == "POST" and r.path == "/deployments"]
    assert sent.json["release_command"] == "node m.js"
    assert sent.json["defaults"]["release_command"] == "npm run migrate"
    before = len(fake_api.requests)
    refused = run_aether(["deploy", "--release-command", "x" * 4097], env, cwd=project)
    assert refused.returncode == 2
    assert "at most 4096 characters" in refused.stderr
    assert len(fake_api.requests) == before, "nothing is sent"


def test_a_failed_release_command_points_at_its_output(
    fake_api: ScriptedServer, project: Path, tmp_path: Path
) -> None:
    script_happy_path(fake_api)
    failed = deployment(
        "failed",
        2,
        version=4,
        reason="the release command failed: exited with code 1:\nrelation users exists",
    )
    fake_api.on("GET", "/deployments/dep-1", Reply(200, failed))
    result = run_aether(["deploy", "--no-sbom"], logged_in(tmp_path, fake_api), cwd=project)
    assert result.returncode == 20
    assert "relation users exists" in result.stderr
    assert "aether logs --release v4" in result.stderr
