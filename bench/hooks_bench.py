"""Event hooks: how soon a receiver hears of an upload, and what hooks cost the upload.

Starts moto server (S3, DynamoDB, KMS, SQS) on a loopback port, a loopback receiver and the
embedded stack's poller of the hooks' queue (``infra.local.relay``), which hands each batch
to the app's own ``deliver_hooks`` handler. Then, round after round, one app with a hook and
one without each upload a small artifact: ``POST /artifacts``, the presigned PUT, then the
``s3:ObjectCreated`` handler (re-hash, conditional write, and the events it queues).

Printed side by side, from the same run:

- the upload's cost with and without a hook: the request and the handler, each;
- delivery latency, p50 and p95: from the end of the PUT (the upload is complete) to the
  receiver holding ``artifact.verified``, and from the handler's end (the event queued).

    .venv/bin/python bench/hooks_bench.py [--rounds 30] [--kib 64]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.local.processes import free_port, start_moto

TOKEN = "bench-admin-token-0123456789"


class Receiver:
    """Notes when each event id arrived (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                event = json.loads(body)
                if event["type"] == "artifact.verified":
                    with receiver.changed:
                        receiver.arrived[event["digest"]] = now
                        receiver.changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, digest: str, timeout: float = 60.0) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: digest in self.arrived, timeout):
                raise RuntimeError(f"artifact.verified for {digest[:12]} never arrived")
            return self.arrived[digest]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--kib", type=int, default=64)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aether-hooks-bench-"))
    moto = start_moto(free_port(), work / "moto.log")
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto.url,
        AETHER_STAGE="bench",
        AETHER_API_TOKENS=TOKEN,
        AETHER_HOOKS_ALLOW_LOOPBACK="true",
        POWERTOOLS_METRICS_NAMESPACE="AetherBench",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_METRICS_DISABLED="true",
    )
    stop = threading.Event()
    poller: threading.Thread | None = None
    try:
        import boto3
        import requests
        from chalice.test import Client

        from chalicelib.contract import default_runtime
        from chalicelib.settings import Settings
        from infra.local.provision import provision
        from infra.local.relay import poll_hooks_forever

        settings = Settings.from_env()
        provision(settings)
        import app as control_plane

        receiver = Receiver()
        sqs = boto3.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=settings.hooks.queue_name)["QueueUrl"]
        poller = threading.Thread(
            target=poll_hooks_forever,
            args=(sqs, queue_url, lambda event: control_plane.deliver_hooks(event, None), stop),
        )
        poller.start()

        timings: dict[str, dict[str, list[float]]] = {
            name: {"request": [], "handler": []} for name in ("with a hook", "without")
        }
        from_put: list[float] = []
        from_handler: list[float] = []
        with Client(control_plane.app) as client:
            headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}

            def post(path: str, body: dict[str, Any], **extra: str) -> Any:
                answer = client.http.post(
                    path, headers={**headers, **extra}, body=json.dumps(body).encode()
                )
                assert answer.status_code == 201, answer.body
                return json.loads(answer.body)

            for name in ("hooked", "plain"):
                post("/apps", {"name": name})
            post("/hooks", {"url": receiver.url, "app_name": "hooked"})

            def upload(app_name: str, measured: dict[str, list[float]]) -> tuple[str, float, float]:
                data = os.urandom(args.kib * 1024)
                digest = hashlib.sha256(data).hexdigest()
                started = time.perf_counter()
                ticket = post(
                    "/artifacts",
                    {"app_name": app_name, "size_bytes": len(data), "runtime": default_runtime()},
                    **{"x-aether-artifact-digest": digest},
                )
                measured["request"].append(time.perf_counter() - started)
                upload = ticket["upload"]
                requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30)
                put_done = time.perf_counter()
                control_plane.artifact_uploaded(s3_event(settings.bucket, ticket["key"]), None)
                handled = time.perf_counter()
                measured["handler"].append(handled - put_done)
                return digest, put_done, handled

            for _ in range(3):  # warm both paths (clients, KMS, the queue's URL)
                receiver.wait(upload("hooked", {"request": [], "handler": []})[0])
                upload("plain", {"request": [], "handler": []})
            for index in range(args.rounds):
                # Each goes first every other round: neither gains from what the other warmed.
                if index % 2:
                    upload("plain", timings["without"])
                digest, put_done, handled = upload("hooked", timings["with a hook"])
                if not index % 2:
                    upload("plain", timings["without"])
                arrived = receiver.wait(digest)
                from_put.append(arrived - put_done)
                from_handler.append(arrived - handled)

        print(f"event hooks, {args.rounds} uploads of {args.kib} KiB per app (moto, loopback)")
        print(f"{'upload cost (median ms)':28}{'POST /artifacts':>18}{'upload handler':>16}")
        for name, measured in timings.items():
            print(
                f"{name:28}{statistics.median(measured['request']) * 1000:>18.1f}"
                f"{statistics.median(measured['handler']) * 1000:>16.1f}"
            )
        extra = statistics.median(timings["with a hook"]["handler"]) - statistics.median(
            timings["without"]["handler"]
        )
        print(f"{'handler overhead of a hook':28}{'':>18}{extra * 1000:>+16.1f}")
        print(f"{'delivery latency (ms)':28}{'p50':>18}{'p95':>16}")
        for name, values in (
            ("upload complete → receipt", from_put),
            ("event queued → receipt", from_handler),
        ):
            print(
                f"{name:28}{percentile(values, 0.5) * 1000:>18.1f}"
                f"{percentile(values, 0.95) * 1000:>16.1f}"
            )
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=30)  # its last batch, before moto goes
        moto.stop()


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
            }
        ]
    }


if __name__ == "__main__":
    main()
