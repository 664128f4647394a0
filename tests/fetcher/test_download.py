"""The fetcher's download half: token, redirect, digest, truncation, retries, arguments."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from .archives import file, tar_gz
from .sites import Site, anonymous, bearer, body, failing, redirect, send, sha256, truncated
from .workspace import FETCH, Result, Workspace, assert_refused, run_fetch

ARCHIVE = tar_gz(file("package.json", b'{"name": "hello"}\n'), file("server.js", b"// hi\n"))
DIGEST = sha256(ARCHIVE)
TOKEN = "aether_pull_s3cr3t-token"
FAST = ("--retries", "2", "--retry-delay", "0.01")


def fetch(workspace: Workspace, url: str, digest: str = DIGEST, *extra: str) -> Result:
    workspace.freeze()
    return run_fetch("--url", url, "--digest", digest, "--dest", str(workspace.dest), *extra)


def assert_fetched(result: Result, workspace: Workspace) -> None:
    assert result.code == 0, result.stderr
    assert result.error_lines == []
    assert sorted(p.name for p in workspace.dest.iterdir()) == ["package.json", "server.js"]
    assert (workspace.dest / "server.js").read_bytes() == b"// hi\n"
    # Nothing else appeared beside DEST: no work directory, no download left over.
    assert sorted(p.name for p in workspace.dest.parent.iterdir()) == ["app", "neighbour.txt"]


def test_redirect_to_storage_drops_the_token_and_hides_the_presigned_query(
    control_plane: Site, storage: Site, workspace: Workspace
) -> None:
    presigned = storage.mount(anonymous(body(ARCHIVE))) + "?X-Amz-Signature=presigned-secret"
    url = control_plane.mount(bearer(TOKEN, redirect(presigned)))

    result = fetch(workspace, url, DIGEST, "--token", TOKEN)

    assert_fetched(result, workspace)
    assert control_plane.seen(url)[0]["Authorization"] == f"Bearer {TOKEN}"
    assert [h.get("Authorization") for h in storage.seen(presigned)] == [None]
    assert TOKEN not in result.stderr
    assert "presigned-secret" not in result.stderr
    assert presigned.split("?")[0] in result.stderr  # but it says where it went


def test_redirect_on_the_same_origin_keeps_the_token(
    control_plane: Site, workspace: Workspace
) -> None:
    final = control_plane.mount(bearer(TOKEN, body(ARCHIVE)))
    url = control_plane.mount(bearer(TOKEN, redirect(final)))

    assert_fetched(fetch(workspace, url, DIGEST, "--token", TOKEN), workspace)


def test_storage_refusal_after_redirect_names_storage_without_the_query(
    control_plane: Site, storage: Site, workspace: Workspace
) -> None:
    def expired(handler: BaseHTTPRequestHandler) -> None:
        send(
            handler, 403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
        )

    presigned = storage.mount(expired) + "?X-Amz-Signature=presigned-secret"
    url = control_plane.mount(bearer(TOKEN, redirect(presigned)))

    result = fetch(workspace, url, DIGEST, "--token", TOKEN)

    assert_refused(result, 3, f"HTTP 403 from {presigned.split('?')[0]}", workspace)
    assert "presigned-secret" not in result.stderr


def test_missing_token_is_refused_with_the_servers_reason(
    control_plane: Site, workspace: Workspace
) -> None:
    url = control_plane.mount(bearer(TOKEN, body(ARCHIVE)))

    result = fetch(workspace, url, DIGEST, *FAST)

    assert_refused(result, 3, "HTTP 401", workspace)
    assert "missing or invalid token" in result.error_lines[0]
    assert len(control_plane.seen(url)) == 1  # a refusal is not retried


def test_wrong_token_is_refused_and_never_printed(
    control_plane: Site, workspace: Workspace
) -> None:
    url = control_plane.mount(bearer(TOKEN, body(ARCHIVE)))

    result = fetch(workspace, url, DIGEST, "--token", "wrong-token-value")

    assert_refused(result, 3, "HTTP 401", workspace)
    assert "wrong-token-value" not in result.stderr


def test_unknown_artifact_is_a_404_failure(control_plane: Site, workspace: Workspace) -> None:
    result = fetch(workspace, control_plane.origin + "/artifacts/nothing/download")
    assert_refused(result, 3, "HTTP 404", workspace)


def test_redirect_to_a_file_url_is_refused(control_plane: Site, workspace: Workspace) -> None:
    url = control_plane.mount(redirect("file:///etc/passwd"))
    result = fetch(workspace, url)
    assert_refused(result, 3, "refused redirect: HTTP 307", workspace)


def test_digest_mismatch_names_both_digests(storage: Site, workspace: Workspace) -> None:
    other = tar_gz(file("server.js", b"// tampered\n"))
    url = storage.mount(body(other))

    result = fetch(workspace, url, DIGEST, *FAST)

    assert_refused(result, 6, f"digest mismatch: expected {DIGEST}, got {sha256(other)}", workspace)
    assert len(storage.seen(url)) == 1  # the wrong bytes will stay wrong: no retry


def test_truncated_download_is_retried_then_refused(storage: Site, workspace: Workspace) -> None:
    url = storage.mount(truncated(ARCHIVE, missing=1000))

    result = fetch(workspace, url, DIGEST, *FAST)

    n = len(ARCHIVE)
    assert_refused(result, 5, f"truncated download: got {n} of {n + 1000} bytes", workspace)
    assert len(storage.seen(url)) == 3


def test_server_errors_are_retried_until_success(storage: Site, workspace: Workspace) -> None:
    url = storage.mount(failing(2, 503, body(ARCHIVE)))

    result = fetch(workspace, url, DIGEST, *FAST)

    assert_fetched(result, workspace)
    assert len(storage.seen(url)) == 3
    assert result.stderr.count("retrying") == 2


def test_server_errors_that_persist_fail_after_the_retries(
    storage: Site, workspace: Workspace
) -> None:
    url = storage.mount(failing(100, 500, body(ARCHIVE)))

    result = fetch(workspace, url, DIGEST, *FAST)

    assert_refused(result, 4, "HTTP 500", workspace)
    assert len(storage.seen(url)) == 3


def test_unreachable_server_fails_after_the_retries(workspace: Workspace) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = fetch(workspace, f"http://127.0.0.1:{port}/app.tar.gz", DIGEST, *FAST)

    assert_refused(result, 4, "cannot reach", workspace)


def test_download_larger_than_the_limit_is_refused_before_reading(
    storage: Site, workspace: Workspace
) -> None:
    url = storage.mount(body(ARCHIVE))
    result = fetch(workspace, url, DIGEST, "--max-bytes", "100")
    assert_refused(result, 8, "archive too large", workspace)


def test_settings_come_from_the_environment(
    control_plane: Site, storage: Site, workspace: Workspace
) -> None:
    url = control_plane.mount(bearer(TOKEN, redirect(storage.mount(anonymous(body(ARCHIVE))))))
    workspace.freeze()

    result = run_fetch(
        env={
            "AETHER_ARTIFACT_URL": url,
            "AETHER_ARTIFACT_DIGEST": DIGEST.upper(),
            "AETHER_DEST": str(workspace.dest),
            "AETHER_PULL_TOKEN": TOKEN,
        }
    )

    assert_fetched(result, workspace)


def test_flags_win_over_the_environment(storage: Site, workspace: Workspace) -> None:
    url = storage.mount(body(ARCHIVE))
    workspace.freeze()

    result = run_fetch(
        "--digest",
        DIGEST,
        "--dest",
        str(workspace.dest),
        env={
            "AETHER_ARTIFACT_URL": url,
            "AETHER_ARTIFACT_DIGEST": "0" * 64,
            "AETHER_DEST": str(workspace.root / "elsewhere"),
        },
    )

    assert_fetched(result, workspace)


def test_missing_digest_is_a_usage_error(workspace: Workspace) -> None:
    workspace.freeze()
    result = run_fetch("--url", "http://127.0.0.1:9/x", "--dest", str(workspace.dest))
    assert_refused(result, 2, "missing --digest (or AETHER_ARTIFACT_DIGEST)", workspace)


def test_malformed_digest_is_a_usage_error(workspace: Workspace) -> None:
    result = fetch(workspace, "http://127.0.0.1:9/x", "abc123")
    assert_refused(result, 2, "--digest must be 64 hex characters", workspace)


def test_non_http_url_is_a_usage_error(workspace: Workspace, tmp_path: Path) -> None:
    local = tmp_path / "app.tar.gz"
    local.write_bytes(ARCHIVE)
    result = fetch(workspace, local.as_uri())
    assert_refused(result, 2, "--url must be an http or https URL", workspace)


def test_unknown_flag_is_a_usage_error_on_one_line(workspace: Workspace) -> None:
    workspace.freeze()
    assert_refused(run_fetch("--colour", "blue"), 2, "unrecognized arguments", workspace)


def test_sigterm_mid_download_cleans_up(storage: Site, workspace: Workspace) -> None:
    half_sent, release = threading.Event(), threading.Event()

    def stalls(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(ARCHIVE)))
        handler.end_headers()
        handler.wfile.write(ARCHIVE[: len(ARCHIVE) // 2])
        handler.wfile.flush()
        half_sent.set()
        release.wait(timeout=30)

    url = storage.mount(stalls)
    workspace.freeze()
    args = ["--url", url, "--digest", DIGEST, "--dest", str(workspace.dest)]
    with subprocess.Popen(
        [sys.executable, str(FETCH), *args], stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert half_sent.wait(timeout=30)
            # The work directory exists once the body started flowing; now the pod is deleted.
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        finally:
            release.set()

    assert_refused(Result(process.returncode, stderr), 143, "interrupted by SIGTERM", workspace)
