"""Deliver upload events to the Lambda handler when no Lambda runs them.

Three sources, one destination: SeaweedFS's metadata subscription (the embedded
stack, ``infra/local/filer_events.py``), messages that moto's S3 notification
puts on SQS, and MinIO webhook calls (MinIO sends the S3 ``Records`` format).
All end in the very handler Lambda would call, with the same event JSON.

The hooks' queue is polled too, as Lambda's SQS event source does: each batch goes to the
app's ``on_sqs_message`` handler as the event Lambda would send, and is deleted only once
the handler returned (a failed batch comes back after the visibility timeout).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.filer_events import FilerEvents

Deliver = Callable[[dict[str, Any]], None]
log = logging.getLogger("aether.relay")
MAX_WEBHOOK_BYTES = 1024 * 1024


def object_created_records(event: Any) -> dict[str, Any] | None:
    """The event if it carries ObjectCreated records (S3 test events carry none)."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        return None
    records = [
        record
        for record in event["Records"]
        if isinstance(record, dict)
        and str(record.get("eventName", "")).startswith(("ObjectCreated:", "s3:ObjectCreated:"))
    ]
    return {"Records": records} if records else None


def scheduled_event() -> dict[str, Any]:
    """The EventBridge "Scheduled Event" a rate rule sends, as Lambda receives it."""
    import uuid
    from datetime import UTC, datetime

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/aether-reconcile"],
        "detail": {},
    }


@dataclass(frozen=True)
class Drained:
    """One receive: how many messages came, and how many of them were delivered (S3's test
    events are not deliveries; a failed delivery stays on the queue)."""

    received: int
    delivered: int


def drain_once(sqs: Any, queue_url: str, deliver: Deliver, wait_seconds: int = 1) -> Drained:
    """Deliver what is on the queue now; a message is deleted only once delivered."""
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
    ).get("Messages", [])
    delivered = 0
    for message in received:
        try:
            event = object_created_records(json.loads(message["Body"]))
        except ValueError:
            event = None
        if event is not None:
            try:
                deliver(event)
            except Exception:
                # Left on the queue: it comes back after the visibility timeout.
                log.exception("delivery failed; the message will be retried")
                continue
            delivered += 1
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return Drained(len(received), delivered)


def poll_forever(sqs: Any, queue_url: str, deliver: Deliver, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            drain_once(sqs, queue_url, deliver, wait_seconds=1)
        except Exception:
            log.exception("polling the upload queue failed")
            stop.wait(1.0)


def sqs_event(queue_arn: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda's SQS event source hands a function for ``messages``."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def drain_hooks_once(sqs: Any, queue_url: str, handler: Deliver, wait_seconds: int = 1) -> int:
    """Hand what is on the hooks' queue now to ``handler``, one batch; returns its size."""
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
    ).get("Messages", [])
    if not received:
        return 0
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    try:
        handler(sqs_event(arn, received))
    except Exception:
        log.exception("hook delivery failed; the batch will be retried")
        return 0
    sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(received)
        ],
    )
    return len(received)


def poll_hooks_forever(sqs: Any, queue_url: str, handler: Deliver, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            drain_hooks_once(sqs, queue_url, handler, wait_seconds=1)
        except Exception:
            log.exception("polling the hooks queue failed")
            stop.wait(1.0)


def hooks_handler() -> Deliver:
    """The Chalice app's own ``on_sqs_message`` handler, called like Lambda calls it."""
    import app as control_plane

    def deliver(event: dict[str, Any]) -> None:
        control_plane.deliver_hooks(event, None)

    return deliver


def webhook_server(port: int, token: str, deliver: Deliver) -> ThreadingHTTPServer:
    """A loopback endpoint for MinIO's webhook target (``auth_token`` = ``token``)."""

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            presented = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not token or not hmac.compare_digest(presented.encode(), token.encode()):
                self._answer(401, "unauthorized", "a valid bearer token is required")
                return
            declared = self.headers.get("Content-Length") or "0"
            if not declared.isdigit():
                self._answer(400, "bad_request", "Content-Length must be a byte count")
                return
            length = int(declared)
            if length > MAX_WEBHOOK_BYTES:
                self._answer(413, "payload_too_large", "event too large")
                return
            try:
                event = object_created_records(json.loads(self.rfile.read(length) or b"{}"))
            except ValueError:
                self._answer(400, "bad_request", "body is not JSON")
                return
            if event is not None:
                try:
                    deliver(event)
                except Exception:
                    log.exception("webhook delivery failed")
                    self._answer(503, "service_unavailable", "delivery failed; retry")
                    return
            self._answer(200, None, None)

        def _answer(self, status: int, code: str | None, message: str | None) -> None:
            body = json.dumps({"code": code, "message": message} if code else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("webhook %s", format % args)

    return ThreadingHTTPServer(("127.0.0.1", port), Webhook)


def lambda_handler() -> Deliver:
    """The Chalice app's own ``s3:ObjectCreated`` handler, called like Lambda calls it."""
    import app as control_plane

    def deliver(event: dict[str, Any]) -> None:
        control_plane.artifact_uploaded(event, None)

    return deliver


def run_schedule(interval_seconds: float, stop: threading.Event) -> None:
    """Call the app's scheduled reconciler as EventBridge would, every ``interval_seconds``."""
    import app as control_plane

    while not stop.wait(interval_seconds):
        try:
            control_plane.reconcile_deployments(scheduled_event(), None)
        except Exception:
            log.exception("scheduled reconciliation failed; the next run retries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue-url", help="an SQS queue moto's S3 notifies (moto S3)")
    parser.add_argument("--filer", help="SeaweedFS's filer as host:port.grpcPort")
    parser.add_argument("--bucket", help="the artifact bucket on SeaweedFS (with --filer)")
    parser.add_argument("--cursor-file", help="where the filer subscription's cursor is kept")
    parser.add_argument("--weed-home", help="HOME and TMPDIR for `weed filer.meta.tail`")
    parser.add_argument("--hooks-queue", help="the hooks' SQS queue (by name) to poll")
    parser.add_argument("--webhook-port", type=int, default=0)
    parser.add_argument("--webhook-token-file", help="file holding the webhook bearer token")
    parser.add_argument(
        "--schedule-seconds",
        type=float,
        default=10.0,
        help="how often to run the app's scheduled reconciler (0: never)",
    )
    args = parser.parse_args()
    if args.filer and not (args.bucket and args.cursor_file and args.weed_home):
        parser.error("--filer needs --bucket, --cursor-file and --weed-home")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    deliver = lambda_handler()
    import app as control_plane

    control_plane.warm_up()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workers: list[threading.Thread] = []
    if args.webhook_port:
        with open(args.webhook_token_file) as handle:  # noqa: PTH123
            token = handle.read().strip()
        server = webhook_server(args.webhook_port, token, deliver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log.info("webhook on 127.0.0.1:%d", args.webhook_port)
    if args.schedule_seconds > 0:
        threading.Thread(
            target=run_schedule, args=(args.schedule_seconds, stop), daemon=True
        ).start()
    if args.filer:
        workers.append(threading.Thread(target=_follow_filer(args, deliver).run, args=(stop,)))
        log.info("following %s on %s", args.bucket, args.filer)
    if args.queue_url:
        import boto3

        sqs = boto3.client("sqs")
        workers.append(
            threading.Thread(target=poll_forever, args=(sqs, args.queue_url, deliver, stop))
        )
        log.info("polling %s", args.queue_url)
    if args.hooks_queue:
        from chalicelib.settings import Settings
        from infra.local.provision import aws_client

        settings = Settings.from_env()
        hooks_sqs = aws_client("sqs", settings, settings.hooks.sqs_endpoint_url)
        hooks_url = hooks_sqs.get_queue_url(QueueName=args.hooks_queue)["QueueUrl"]
        workers.append(
            threading.Thread(
                target=poll_hooks_forever, args=(hooks_sqs, hooks_url, hooks_handler(), stop)
            )
        )
        log.info("delivering hooks from %s", hooks_url)
    for worker in workers:
        worker.start()
    while not stop.wait(1.0):
        pass
    for worker in workers:
        worker.join(timeout=10)


def _follow_filer(args: argparse.Namespace, deliver: Deliver) -> FilerEvents:
    from pathlib import Path

    from chalicelib.settings import Settings
    from infra.local import seaweedfs
    from infra.local.filer_events import Cursor, FilerEvents
    from infra.local.provision import aws_client

    return FilerEvents(
        weed=seaweedfs.WEED,
        filer=args.filer,
        bucket=args.bucket,
        cursor=Cursor(Path(args.cursor_file)),
        s3=aws_client("s3", Settings.from_env()),
        deliver=deliver,
        environment=seaweedfs.environment(Path(args.weed_home)),
    )


if __name__ == "__main__":
    main()
