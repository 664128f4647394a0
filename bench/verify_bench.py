"""Upload verification throughput: the S3 event handler beside plain hashlib.

Starts moto server on a loopback port, stores one large object through a
presigned PUT, then times ``verify_artifact`` (stream from S3, SHA-256,
conditional write) against ``hashlib.sha256`` over the same bytes read from a
local file, in the same run.

    .venv/bin/python bench/verify_bench.py [--mib 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.local.processes import free_port, start_moto

CHUNK = 1024 * 1024


def write_object(path: Path, mib: int) -> str:
    block = os.urandom(CHUNK)
    sha256 = hashlib.sha256()
    with path.open("wb") as handle:
        for index in range(mib):
            chunk = index.to_bytes(8, "big") + block[8:]
            sha256.update(chunk)
            handle.write(chunk)
    return sha256.hexdigest()


def hash_file(path: Path) -> str:
    sha256 = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha256.update(chunk)
    return sha256.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aether-verify-bench-"))
    moto = start_moto(free_port(), work / "moto.log")
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto.url,
        AETHER_STAGE="bench",
    )
    try:
        import boto3
        import requests

        from chalicelib import verification
        from chalicelib.contract import default_runtime
        from chalicelib.records import Application, Artifact
        from chalicelib.settings import Settings
        from chalicelib.storage import ArtifactStore, artifact_key
        from infra.local.provision import provision

        settings = Settings.from_env()
        provision(settings)
        store = ArtifactStore(boto3.client("s3"), settings.bucket)
        path = work / "app.tar.gz"
        digest = write_object(path, args.mib)
        size = path.stat().st_size
        Application("bench", owner="bench").save()
        key = artifact_key("bench", digest)
        upload = store.presign_upload(key, size, digest, 900)
        with path.open("rb") as body:
            requests.put(
                upload.url, data=body, headers=upload.headers, timeout=600
            ).raise_for_status()

        handler, baseline = [], []
        for _ in range(args.rounds):
            record = Artifact(
                digest,
                "bench",
                key=key,
                size_bytes=size,
                runtime=default_runtime(),
                uploaded_by="bench",
            )
            record.save()
            started = time.perf_counter()
            outcome = verification.verify_artifact(store, record)
            handler.append(time.perf_counter() - started)
            assert outcome.status == "verified", outcome

            started = time.perf_counter()
            assert hash_file(path) == digest
            baseline.append(time.perf_counter() - started)

        mb = size / 1e6
        print(f"verification of a {size / 2**20:.0f} MiB artifact, {args.rounds} rounds (median)")
        print(f"{'':32}{'seconds':>10}{'MB/s':>10}")
        for name, times in (
            ("handler (moto S3 → sha256)", handler),
            ("hashlib.sha256 (local file)", baseline),
        ):
            median = statistics.median(times)
            print(f"{name:32}{median:>10.2f}{mb / median:>10.0f}")
        print(
            f"handler / baseline: {statistics.median(handler) / statistics.median(baseline):.1f}x"
        )
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
