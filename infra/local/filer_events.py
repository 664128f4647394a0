"""SeaweedFS's object-created events, from its own metadata subscription, with a durable cursor.

The filer logs every metadata change; ``weed filer.meta.tail`` subscribes to that log from a
point in time and streams each change as JSON. The relay follows the artifact prefix of the
bucket, turns each new or rewritten object into the S3 ``ObjectCreated:Put`` record Lambda
would get, delivers it, and only then moves its cursor (the change's ``tsNs``, kept in a file
written atomically). A relay that stops, crashes or is killed resumes from its cursor: changes
it had not delivered are delivered then, at least once (the handler is idempotent).

The filer flushes its log to disk once a minute, so a filer killed with SIGKILL forgets the
changes of its last minute, though the objects themselves are on disk. Each time the
subscription (re)starts, the relay therefore first sweeps the bucket: every object modified
since the cursor, less ``SWEEP_MARGIN``, is delivered too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote_plus

from chalicelib.storage import ARTIFACT_PREFIX

Deliver = Callable[[dict[str, Any]], None]
log = logging.getLogger("aether.relay.filer")

# Where SeaweedFS keeps the versions of an object in a versioned bucket: <key>.versions/.
VERSIONS_SUFFIX = ".versions"
# Longer than the filer's one-minute log flush, so a killed filer's unflushed changes are swept.
SWEEP_MARGIN = timedelta(minutes=2)
RETRY_SECONDS = 1.0


def object_created(bucket: str, change: dict[str, Any]) -> dict[str, Any] | None:
    """The S3 event for one filer metadata change, if it creates or rewrites an object."""
    notification = change.get("eventNotification") or {}
    new = notification.get("newEntry")
    if not isinstance(new, dict) or new.get("isDirectory"):
        return None
    old = notification.get("oldEntry")
    if isinstance(old, dict) and _content(old) == _content(new) and old.get("name") == new["name"]:
        return None  # attributes changed, not the bytes: S3 sends no event for that
    parent = str(notification.get("newParentPath") or change.get("directory") or "").rstrip("/")
    path = f"{parent}/{new['name']}"
    if parent.endswith(VERSIONS_SUFFIX) and str(new["name"]).startswith("v_"):
        # A versioned bucket keeps each version of <key> as <key>.versions/v_<id>: a new
        # version file is a new object at <key>.
        path = parent.removesuffix(VERSIONS_SUFFIX)
    root = f"/buckets/{bucket}/"
    if not path.startswith(root):
        return None
    size = int((new.get("attributes") or {}).get("fileSize") or 0)
    return s3_event(bucket, path.removeprefix(root), size, int(change.get("tsNs") or 0))


def _content(entry: dict[str, Any]) -> tuple[Any, ...]:
    return entry.get("chunks"), entry.get("content"), (entry.get("attributes") or {}).get("md5")


def s3_event(bucket: str, key: str, size: int, ts_ns: int) -> dict[str, Any]:
    """An ``ObjectCreated:Put`` notification as S3 sends it (the key URL-encoded)."""
    moment = datetime.fromtimestamp(ts_ns / 1e9, UTC) if ts_ns else datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "sequencer": f"{ts_ns:016X}",
                    },
                },
            }
        ]
    }


class Cursor:
    """The ``tsNs`` of the last change handled, in a file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.ts_ns = int(json.loads(path.read_text())["ts_ns"])
        except (OSError, ValueError, KeyError, TypeError):
            self.ts_ns = 0

    def advance(self, ts_ns: int) -> None:
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"ts_ns": ts_ns}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        self.ts_ns = ts_ns


def changes(stream: IO[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects ``weed filer.meta.tail`` prints, one after another (indented)."""
    decoder = json.JSONDecoder()
    pending = ""
    for line in stream:
        pending += line
        if line.rstrip() != "}":
            continue
        try:
            change, _ = decoder.raw_decode(pending.strip())
        except ValueError:
            continue  # a nested closing brace: the object goes on
        pending = ""
        if isinstance(change, dict):
            yield change


@dataclass
class FilerEvents:
    """Follow the bucket's ``artifacts/`` changes and deliver each new object once handled."""

    weed: Path
    filer: str  # host:port.grpcPort
    bucket: str
    cursor: Cursor
    s3: Any  # a boto3 S3 client for the sweep
    deliver: Deliver
    environment: dict[str, str]

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                swept = self.sweep(stop)
                if swept:
                    log.info("swept %d objects changed since the cursor", swept)
                self.follow(stop)
            except Exception as exc:  # SeaweedFS restarting, most likely: said in one line
                log.warning("following the filer failed (%s); retrying", exc)
            stop.wait(RETRY_SECONDS)

    def sweep(self, stop: threading.Event) -> int:
        """Deliver every object modified since the cursor (less the margin)."""
        since = datetime.fromtimestamp(self.cursor.ts_ns / 1e9, UTC) - SWEEP_MARGIN
        delivered = 0
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=ARTIFACT_PREFIX
        )
        for page in pages:
            for found in page.get("Contents", []):
                if found["LastModified"] >= since:
                    modified = int(found["LastModified"].timestamp() * 1e9)
                    event = s3_event(self.bucket, found["Key"], int(found["Size"]), modified)
                    if not self._deliver(event, stop):
                        return delivered
                    delivered += 1
        return delivered

    def follow(self, stop: threading.Event) -> None:
        """Stream changes from the cursor on until the subscription ends (the filer went
        away) or ``stop`` is set."""
        ago_ns = max(time.time_ns() - self.cursor.ts_ns, 1) if self.cursor.ts_ns else time.time_ns()
        tail = subprocess.Popen(
            [
                str(self.weed),
                "filer.meta.tail",
                f"-filer={self.filer}",
                f"-pathPrefix=/buckets/{self.bucket}/{ARTIFACT_PREFIX}",
                f"-timeAgo={ago_ns}ns",
            ],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.environment,
        )
        watcher = threading.Thread(target=_terminate_on, args=(stop, tail), daemon=True)
        watcher.start()
        try:
            assert tail.stdout is not None
            for change in changes(tail.stdout):
                ts_ns = int(change.get("tsNs") or 0)
                if ts_ns <= self.cursor.ts_ns:
                    continue  # handled before a restart
                event = object_created(self.bucket, change)
                if event is not None and not self._deliver(event, stop):
                    return
                self.cursor.advance(ts_ns)
        finally:
            if tail.poll() is None:
                tail.terminate()
            tail.wait()
        log.info("the filer subscription ended (exit %s)", tail.returncode)

    def _deliver(self, event: dict[str, Any], stop: threading.Event) -> bool:
        """Deliver until it succeeds; False if asked to stop first."""
        while not stop.is_set():
            try:
                self.deliver(event)
                return True
            except Exception as exc:  # the records or the storage restarting, most likely
                log.warning("delivery failed (%s); retrying", exc)
                stop.wait(RETRY_SECONDS)
        return False


def _terminate_on(stop: threading.Event, process: subprocess.Popen[str]) -> None:
    while process.poll() is None:
        if stop.wait(0.5):
            process.terminate()
            return
