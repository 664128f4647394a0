"""The durable records server: restart time against history size, and write latency.

A restart replays the journal written since the last compaction (at most ``--compact-after``
entries, 1000 by default) and loads the snapshot (every item). For each journal length it
writes that many ``PutItem`` requests (deployment-sized items, after the ``CreateTable``),
starts ``python -m infra.local.records`` on them and times until the port answers with every
item back (replay, then compaction); for each snapshot size it writes a snapshot of that many
items and times the same. The baseline, measured in the same run, is plain moto server
starting empty. Then it times ``PutItem`` through boto3 against the journaled server (each
write fsynced before the answer) beside plain moto.

    .venv/bin/python bench/records_bench.py [--journals 100,1000] [--snapshots 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.local.processes import Service, free_port, start, start_moto
from infra.local.records import SNAPSHOT, SNAPSHOT_FORMAT

TABLE = "aether-bench-deployments"
CREDENTIAL = "bench/20000101/us-east-1/dynamodb/aws4_request"
CREATE = {
    "TableName": TABLE,
    "AttributeDefinitions": [
        {"AttributeName": "deployment_id", "AttributeType": "S"},
        {"AttributeName": "app_name", "AttributeType": "S"},
        {"AttributeName": "created_at", "AttributeType": "S"},
    ],
    "KeySchema": [{"AttributeName": "deployment_id", "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by_app",
            "KeySchema": [
                {"AttributeName": "app_name", "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}


def item(index: int) -> dict[str, Any]:
    """About the size of a deployment record."""
    return {
        "deployment_id": {"S": f"{index:08d}-0000-4000-8000-000000000000"},
        "app_name": {"S": f"app-{index % 50}"},
        "created_at": {"S": f"2026-01-01T00:00:00.{index:06d}Z"},
        "artifact_digest": {"S": f"{index:064x}"},
        "status": {"S": "succeeded"},
        "runtime": {"S": "node20"},
        "start_command": {"S": "npm start"},
        "env": {"M": {"GREETING": {"S": "hello"}}},
        "replicas": {"N": "1"},
        "config_key": {"S": f"{index:064x}"},
        "created_by": {"S": "bench"},
        "reason": {"S": "1 of 1 replicas available"},
        "url": {"S": "http://127.0.0.1:9100"},
    }


def write_journal(state: Path, size: int) -> None:
    state.mkdir(parents=True)
    with (state / "journal-0.jsonl").open("w") as journal:
        entries = [("CreateTable", CREATE)] + [
            ("PutItem", {"TableName": TABLE, "Item": item(i)}) for i in range(size)
        ]
        for op, body in entries:
            entry = {"op": op, "credential": CREDENTIAL, "body": json.dumps(body)}
            journal.write(json.dumps(entry) + "\n")


def write_snapshot(state: Path, size: int) -> None:
    state.mkdir(parents=True)
    table = {
        "account": "123456789012",
        "region": "us-east-1",
        "create": CREATE,
        "ttl": {"TimeToLiveStatus": "DISABLED"},
        "tags": [],
        "items": [item(i) for i in range(size)],
    }
    snapshot = {"format": SNAPSHOT_FORMAT, "journal": 1, "tables": [table]}
    (state / SNAPSHOT).write_text(json.dumps(snapshot))


def start_records(state: Path, log: Path) -> tuple[Service, float]:
    port = free_port()
    began = time.perf_counter()
    command = [sys.executable, "-m", "infra.local.records", "--port", str(port)]
    service = start("records", [*command, "--state-dir", str(state)], port, log, timeout=600)
    return service, time.perf_counter() - began


def restored_items(service: Service) -> int:
    import requests

    status = requests.get(f"{service.url}/aether-records/status", timeout=10).json()
    restored = status["restored"]
    return int(restored["snapshot_items"]) + int(restored["replayed"])


def put_latency(endpoint: str, writes: int) -> float:
    """Median seconds per PutItem through boto3."""
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    client.create_table(**CREATE)
    times = []
    for index in range(writes):
        began = time.perf_counter()
        client.put_item(TableName=TABLE, Item=item(index))
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--journals", default="100,1000")
    parser.add_argument("--snapshots", default="1000,10000,50000")
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aether-records-bench-"))

    began = time.perf_counter()
    moto = start_moto(free_port(), work / "moto.log")
    baseline = time.perf_counter() - began
    try:
        moto_put = put_latency(moto.url, args.writes)
    finally:
        moto.stop()
    print(f"baseline: plain moto server starts empty in {baseline:.2f} s")
    for kind, sizes, write in (
        ("journal entries", args.journals, write_journal),
        ("snapshot items", args.snapshots, write_snapshot),
    ):
        for size in (int(s) for s in sizes.split(",")):
            state = work / f"{kind.split()[0]}-{size}"
            write(state, size)
            megabytes = sum(f.stat().st_size for f in state.iterdir()) / 1e6
            service, seconds = start_records(state, work / f"records-{kind}-{size}.log")
            restored = restored_items(service)
            service.stop(timeout=120)
            assert restored >= size, f"restored {restored} of {size}"
            print(f"restart with {size:>6} {kind:15} ({megabytes:5.1f} MB): {seconds:6.2f} s")

    service, _ = start_records(work / "state-writes", work / "records-writes.log")
    try:
        durable_put = put_latency(service.url, args.writes)
    finally:
        service.stop()
    print(
        f"PutItem median over {args.writes}: journaled {durable_put * 1000:.2f} ms, "
        f"plain moto {moto_put * 1000:.2f} ms (baseline)"
    )


if __name__ == "__main__":
    main()
