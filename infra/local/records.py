"""``python -m infra.local.records``: moto's DynamoDB, made durable by a write-ahead journal.

moto keeps every table in memory. This server runs moto's own WSGI application in-process and
journals each DynamoDB request that changed something, after moto applied it and before the
client hears back: appended, flushed and fsynced while holding a lock that also orders the
writes, so the journal's order is the order in which moto applied them. Reads hold the same
lock shared: no client ever sees a write that is not on disk yet, and moto never scans a table
while a write changes it. A refused request (a failed condition, a cancelled transaction, bad
input) changed nothing and is not journaled.

On start the server loads the last snapshot, replays the journal through moto, and compacts:
the tables (definitions, TTL, tags, items) become a new snapshot and the journal starts empty.
A clean stop (SIGTERM) compacts too, and so does a journal that reaches ``--compact-after``
entries. A crash leaves at most a torn last line, which is skipped (its client had no answer).

KMS keys are kept too (``infra.local.kms_keys``): config sealed under them must open after a
restart, and a replayed ``CreateKey`` would mint other material, so after each request that
changed KMS its keys, with their material, are written to ``kms.json`` and put back on start.
Other services moto serves (SQS, ...) answer from memory and are not journaled.

    python -m infra.local.records --port 4566 --state-dir .aether/records
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from infra.local import kms_keys
from infra.local.keepalive import KeepAliveServer, Wsgi, buffered

log = logging.getLogger("aether.records")

TARGET_PREFIX = "DynamoDB_20120810."
SNAPSHOT = "snapshot.json"
SNAPSHOT_FORMAT = 1
# Replaying an entry costs a few milliseconds (moto's request handling); restoring a
# snapshot item costs microseconds. Compacting this often bounds a restart's replay.
DEFAULT_COMPACT_AFTER = 1_000
STATUS_PATH = "/aether-records/status"

# Operations that never change a table: served under the shared lock, never journaled. Every
# other operation is journaled once it succeeds (an unknown one too: a needless entry is cheap).
READ_OPERATIONS = frozenset(
    {
        "BatchGetItem",
        "DescribeContinuousBackups",
        "DescribeContributorInsights",
        "DescribeEndpoints",
        "DescribeGlobalTable",
        "DescribeGlobalTableSettings",
        "DescribeKinesisStreamingDestination",
        "DescribeLimits",
        "DescribeTable",
        "DescribeTableReplicaAutoScaling",
        "DescribeTimeToLive",
        "GetItem",
        "GetResourcePolicy",
        "ListBackups",
        "ListContributorInsights",
        "ListExports",
        "ListGlobalTables",
        "ListImports",
        "ListTables",
        "ListTagsOfResource",
        "Query",
        "Scan",
        "TransactGetItems",
    }
)
# Operations whose effect a replay could not reproduce (they mint ARNs and copies from the
# moment they run): refused rather than journaled wrongly.
UNJOURNALED_OPERATIONS = frozenset(
    {
        "CreateBackup",
        "DeleteBackup",
        "ExportTableToPointInTime",
        "ImportTable",
        "RestoreTableFromBackup",
        "RestoreTableToPointInTime",
    }
)


class JournalDamaged(RuntimeError):
    """A line before the journal's last is not an entry: refuse to start rather than lose it."""


class ReadWriteLock:
    """Many readers or one writer."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if self._readers == 0:
                    self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._writing = True
            self._condition.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


@dataclass
class Restored:
    """What a start recovered, for the log and ``GET /aether-records/status``."""

    snapshot_tables: int = 0
    snapshot_items: int = 0
    replayed: int = 0
    replay_failures: int = 0
    torn_tail: bool = False
    seconds: float = 0.0
    kms_keys: int = 0


class Journal:
    """``snapshot.json`` (which names the journal that follows it) and ``journal-<n>.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        self.generation = 0
        self.entries = 0
        self._handle: IO[str] | None = None

    @property
    def path(self) -> Path:
        return self.directory / f"journal-{self.generation}.jsonl"

    def load(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        """The snapshot (None before the first), the entries after it, and whether the last
        line was torn."""
        snapshot: dict[str, Any] | None = None
        snapshot_path = self.directory / SNAPSHOT
        if snapshot_path.exists():
            snapshot = json.loads(snapshot_path.read_text())
            if snapshot.get("format") != SNAPSHOT_FORMAT:
                raise JournalDamaged(f"{snapshot_path}: unknown snapshot format")
            self.generation = int(snapshot["journal"])
        entries: list[dict[str, Any]] = []
        torn = False
        if self.path.exists():
            text = self.path.read_bytes()
            lines = text.split(b"\n")
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    if number < len(lines):  # a newline follows: the line was written whole
                        raise JournalDamaged(
                            f"{self.path} line {number} is not a journal entry; move the file "
                            "aside to start from the snapshot alone"
                        ) from None
                    torn = True  # the last write never finished: its client had no answer
        return snapshot, entries, torn

    def append(self, entry: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = self._open(self.path, "a")
        self._handle.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.entries += 1

    def replace(self, snapshot: dict[str, Any]) -> None:
        """Make ``snapshot`` the new starting point, followed by an empty journal."""
        following = self.generation + 1
        next_journal = self.directory / f"journal-{following}.jsonl"
        self._open(next_journal, "w").close()
        temporary = self.directory / f"{SNAPSHOT}.tmp"
        with self._open(temporary, "w") as handle:
            # One dumps, not dump: json.dump encodes in pure Python, several times slower.
            handle.write(json.dumps({**snapshot, "format": SNAPSHOT_FORMAT, "journal": following}))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.directory / SNAPSHOT)
        self._sync_directory()
        # Only now is the old journal redundant.
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.generation, self.entries = following, 0
        for stale in self.directory.glob("journal-*.jsonl"):
            if stale != self.path:
                stale.unlink(missing_ok=True)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _open(self, path: Path, mode: str) -> IO[str]:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
        return os.fdopen(os.open(path, flags, 0o600), mode)

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@dataclass
class _Captured:
    status: str
    headers: list[tuple[str, str]]

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])


class DurableDynamoDB:
    """WSGI middleware around moto's application: journal DynamoDB writes, replay them."""

    def __init__(self, moto_app: Wsgi, journal: Journal, compact_after: int) -> None:
        self._app = moto_app
        self._journal = journal
        self._compact_after = compact_after
        self._lock = ReadWriteLock()
        self.restored = Restored()

    # -- serving ---------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == STATUS_PATH:
            return _json_response(start_response, "200 OK", self.status())
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(kms_keys.KMS_TARGET_PREFIX):
            return self._kms(environ, start_response, target)
        if not target.startswith(TARGET_PREFIX):
            if environ.get("PATH_INFO") == "/moto-api/reset":
                return self._reset(environ, start_response)
            return self._app(environ, start_response)
        operation = target.removeprefix(TARGET_PREFIX)
        if operation in UNJOURNALED_OPERATIONS:
            return _json_response(
                start_response,
                "400 BAD REQUEST",
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ValidationException",
                    "message": f"{operation} is not supported by the durable local DynamoDB",
                },
            )
        body = _read_body(environ)
        if operation in READ_OPERATIONS:
            with self._lock.shared():
                captured, content = self._call(environ, body)
        else:
            with self._lock.exclusive():
                captured, content = self._call(environ, body)
                if captured.code == 200:
                    self._journal.append(_entry(environ, operation, body))
                    if self._journal.entries >= self._compact_after:
                        self._compact()
        start_response(captured.status, captured.headers)
        return [content]

    def status(self) -> dict[str, Any]:
        restored = self.restored
        return {
            "journal_entries": self._journal.entries,
            "generation": self._journal.generation,
            "restored": {
                "snapshot_tables": restored.snapshot_tables,
                "snapshot_items": restored.snapshot_items,
                "replayed": restored.replayed,
                "replay_failures": restored.replay_failures,
                "torn_tail": restored.torn_tail,
                "kms_keys": restored.kms_keys,
                "seconds": round(restored.seconds, 3),
            },
        }

    def _call(self, environ: dict[str, Any], body: bytes) -> tuple[_Captured, bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, content = buffered(self._app, environ)
        return _Captured(status, headers), content

    def _kms(self, environ: dict[str, Any], start_response: Callable[..., Any], target: str) -> Any:
        body = _read_body(environ)
        if not kms_keys.changes_keys(target.removeprefix(kms_keys.KMS_TARGET_PREFIX)):
            with self._lock.shared():
                captured, content = self._call(environ, body)
        else:
            with self._lock.exclusive():
                captured, content = self._call(environ, body)
                if captured.code == 200:
                    kms_keys.dump(self._journal.directory)
        start_response(captured.status, captured.headers)
        return [content]

    def _reset(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """moto's reset forgets every table and key: the journal must forget them too."""
        with self._lock.exclusive():
            captured, content = self._call(environ, _read_body(environ))
            self._compact()
            kms_keys.dump(self._journal.directory)
        start_response(captured.status, captured.headers)
        return [content]

    # -- restoring and compacting ------------------------------------------------------------

    def restore(self) -> Restored:
        started = time.monotonic()
        snapshot, entries, torn = self._journal.load()
        restored = Restored(torn_tail=torn)
        with self._lock.exclusive():
            restored.kms_keys = kms_keys.restore(self._journal.directory)
            if snapshot is not None:
                for table in snapshot.get("tables", []):
                    restored.snapshot_tables += 1
                    restored.snapshot_items += self._restore_table(table)
            for entry in entries:
                status, content = self._replay(entry)
                if status == 200:
                    restored.replayed += 1
                else:
                    restored.replay_failures += 1
                    log.error("replaying %s answered %d: %s", entry.get("op"), status, content)
            self._compact()
        restored.seconds = time.monotonic() - started
        self.restored = restored
        return restored

    def compact(self) -> None:
        with self._lock.exclusive():
            self._compact()

    def close(self) -> None:
        self._journal.close()

    def _compact(self) -> None:
        """Call with the lock held exclusively."""
        self._journal.replace({"tables": list(self._dump_tables())})

    def _dump_tables(self) -> Iterator[dict[str, Any]]:
        """Every table of every account and region, read from moto's backends directly
        (its response serializer would take longer than the whole restart)."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.dynamodb.models.utilities import dynamo_json_dump

        for account_id in list(dynamodb_backends):
            regions = dynamodb_backends[account_id]
            for region in list(regions):
                for _, table in sorted(regions[region].tables.items()):
                    items = [item.to_json()["Attributes"] for item in table.all_items()]
                    yield json.loads(
                        dynamo_json_dump(
                            {
                                "account": account_id,
                                "region": region,
                                "create": _create_table_request(
                                    table.describe()["TableDescription"]
                                ),
                                "ttl": table.ttl,
                                "tags": table.tags,
                                "items": items,
                            }
                        )
                    )

    def _restore_table(self, table: dict[str, Any]) -> int:
        from moto.dynamodb.models import dynamodb_backends

        account_id, region = table["account"], table["region"]
        name = table["create"]["TableName"]
        self._ask(account_id, region, "CreateTable", table["create"])
        ttl = table.get("ttl") or {}
        if ttl.get("TimeToLiveStatus") == "ENABLED":
            self._ask(
                account_id,
                region,
                "UpdateTimeToLive",
                {
                    "TableName": name,
                    "TimeToLiveSpecification": {
                        "Enabled": True,
                        "AttributeName": ttl["AttributeName"],
                    },
                },
            )
        if table.get("tags"):
            arn = self._ask(account_id, region, "DescribeTable", {"TableName": name})["Table"][
                "TableArn"
            ]
            self._ask(
                account_id, region, "TagResource", {"ResourceArn": arn, "Tags": table["tags"]}
            )
        backend = dynamodb_backends[account_id][region]
        items = table.get("items", [])
        for item in items:  # straight into the backend: these were moto's own items
            backend.put_item(name, item)
        return len(items)

    def _ask(
        self, account_id: str, region: str, operation: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        status, content = self._send(
            operation,
            json.dumps(request).encode(),
            credential=_credential(region),
            account_id=account_id,
        )
        if status != 200:
            raise RuntimeError(f"{operation} answered {status}: {content[:500]!r}")
        answer: dict[str, Any] = json.loads(content or b"{}")
        return answer

    def _replay(self, entry: dict[str, Any]) -> tuple[int, bytes]:
        return self._send(
            entry["op"],
            entry["body"].encode(),
            credential=entry["credential"] or _credential("us-east-1"),
            account_id=entry.get("account"),
        )

    def _send(
        self, operation: str, body: bytes, *, credential: str, account_id: str | None
    ) -> tuple[int, bytes]:
        """One DynamoDB request to moto in-process, as a client would sign it."""
        from werkzeug.test import EnvironBuilder

        headers = {
            "X-Amz-Target": TARGET_PREFIX + operation,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=0"
            ),
        }
        if account_id:
            headers["x-moto-account-id"] = account_id
        builder = EnvironBuilder(
            path="/",
            method="POST",
            headers=list(headers.items()),
            data=body,
            base_url="http://127.0.0.1/",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        captured, content = self._call(environ, body)
        return captured.code, content


def _credential(region: str) -> str:
    return f"aether-records/20000101/{region}/dynamodb/aws4_request"


def _entry(environ: dict[str, Any], operation: str, body: bytes) -> dict[str, Any]:
    """What replaying the request needs: the operation, the body, and who asked where (the
    credential scope picks moto's account and region; the signature is left out)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    credential = ""
    for part in authorization.replace(",", " ").split():
        if part.startswith("Credential="):
            credential = part.removeprefix("Credential=")
    entry: dict[str, Any] = {"op": operation, "credential": credential, "body": body.decode()}
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        entry["account"] = environ["HTTP_X_MOTO_ACCOUNT_ID"]
    return entry


def _create_table_request(description: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request that makes a table like ``description`` (DescribeTable's)."""
    billing = (description.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"
    request: dict[str, Any] = {
        "TableName": description["TableName"],
        "AttributeDefinitions": description["AttributeDefinitions"],
        "KeySchema": description["KeySchema"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = _throughput(description.get("ProvisionedThroughput"))
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = []
        for index in description.get(kind) or []:
            created = {
                "IndexName": index["IndexName"],
                "KeySchema": index["KeySchema"],
                "Projection": index["Projection"],
            }
            if kind == "GlobalSecondaryIndexes" and billing == "PROVISIONED":
                created["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
            indexes.append(created)
        if indexes:
            request[kind] = indexes
    if description.get("StreamSpecification"):
        request["StreamSpecification"] = description["StreamSpecification"]
    if description.get("DeletionProtectionEnabled"):
        request["DeletionProtectionEnabled"] = True
    return request


def _throughput(described: dict[str, Any] | None) -> dict[str, int]:
    described = described or {}
    return {
        "ReadCapacityUnits": int(described.get("ReadCapacityUnits") or 1),
        "WriteCapacityUnits": int(described.get("WriteCapacityUnits") or 1),
    }


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH") or ""
    body: bytes = stream.read(int(declared)) if declared.isdigit() else stream.read()
    return body


def _json_response(start_response: Callable[..., Any], status: str, body: Any) -> list[bytes]:
    content = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(content)))],
    )
    return [content]


def moto_application() -> Wsgi:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: Wsgi = DomainDispatcherApplication(create_backend_app)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.records", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--state-dir", required=True, help="where the snapshot and journal live")
    parser.add_argument(
        "--compact-after",
        type=int,
        default=DEFAULT_COMPACT_AFTER,
        help="journal entries after which the journal is folded into a new snapshot",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("MOTO_PORT", str(args.port))

    durable = DurableDynamoDB(moto_application(), Journal(Path(args.state_dir)), args.compact_after)
    restored = durable.restore()
    log.info(
        "restored %d tables, %d items from the snapshot and %d journal entries "
        "(%d failed%s) in %.3f s",
        restored.snapshot_tables,
        restored.snapshot_items,
        restored.replayed,
        restored.replay_failures,
        ", torn last line skipped" if restored.torn_tail else "",
        restored.seconds,
    )
    server = KeepAliveServer(("127.0.0.1", args.port), durable)
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def shut_down_when_asked() -> None:
        stopping.wait()
        server.shutdown()  # from another thread: serve_forever returns, then we compact

    threading.Thread(target=shut_down_when_asked, daemon=True).start()
    log.info("serving on 127.0.0.1:%d", args.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        durable.compact()
        durable.close()
        log.info("compacted and stopped")
    sys.exit(0)


if __name__ == "__main__":
    main()
