"""The embedded stack's long-lived processes build the app's clients when they start, as a
Lambda container's cold start would, so that no request waits for them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.local.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter in the repository, as a stack process starts."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_warm_up_builds_every_client_before_a_request_needs_it(control_plane: Any) -> None:
    getters = (
        control_plane.get_store,
        control_plane.get_hook_queue,
        control_plane.get_data_plane,
        control_plane.get_courier,
    )
    for getter in getters:
        getter.cache_clear()

    control_plane.warm_up()

    for getter in (*getters, control_plane.get_vault, control_plane.env_token_hashes):
        assert getter.cache_info().currsize == 1, getter.__name__


def test_a_warm_up_that_cannot_reach_dynamodb_says_so_and_the_process_carries_on(
    aws_environment: dict[str, str],
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "AWS_ENDPOINT_URL": nobody, "AWS_MAX_ATTEMPTS": "1"}
    done = python("import app; app.warm_up(); print('still serving')", env)
    assert done.returncode == 0, done.stderr
    assert "still serving" in done.stdout
    assert "warming up failed; the rest is built on first use" in done.stdout + done.stderr


def test_connecting_the_records_before_they_are_configured_says_what_to_call_first() -> None:
    done = python("from chalicelib import records; records.connect()")
    assert done.returncode == 1
    assert "records.configure(settings) must run before records.connect()" in done.stderr
