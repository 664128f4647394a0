"""Schemathesis against ``chalice local``: every check, from the served /openapi.json.

It generates requests the document calls valid (they must not be refused) and
requests it calls invalid (they must be), and checks every answer against the
document: status codes, error envelopes, content types, headers. A bounded
number of examples per operation and a fixed seed keep the run short and
repeatable; ``AETHER_FUZZ_EXAMPLES`` and ``AETHER_FUZZ_SEED`` explore further.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.local.processes import Service
from tests.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_api_keeps_to_its_openapi_document(local_api: Service, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{local_api.url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--max-examples",
            os.environ.get("AETHER_FUZZ_EXAMPLES", "20"),
            "--seed",
            os.environ.get("AETHER_FUZZ_SEED", "1"),
            "--workers",
            "1",
            # `chalice local` answers one request at a time, and a loaded machine makes one
            # slow: a request cut off by the default 10 s would be reported as a network error.
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    report = tmp_path / "schemathesis.txt"
    report.write_text(done.stdout + done.stderr)
    # What went wrong comes before the summary: the errors' and failures' sections, with
    # each request that reproduces one.
    sections = [done.stdout.find(f"=== {name}") for name in ("ERRORS", "FAILURES", "SUMMARY")]
    start = min((at for at in sections if at >= 0), default=-1)
    summary = done.stdout[start:] if start >= 0 else done.stderr[-5000:]
    assert done.returncode == 0, f"{summary}\nthe whole run: {report}"
