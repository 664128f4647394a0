"""The durable records server against what pynamodb does in the control plane.

Each scenario runs the same pynamodb calls against plain moto server and against
``python -m infra.local.records``, which must answer alike (fidelity), then the records
server is killed with SIGKILL or stopped, started again on the same state, and must show
exactly what it showed before (durability).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from infra.local.processes import Service, free_port, start, start_moto

HISTORY = 45  # more than two pages of 20


class _ByOwner(GlobalSecondaryIndex[Any]):
    class Meta:
        index_name = "by_owner"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)
    created = NumberAttribute(range_key=True)


class _Thing(Model):
    class Meta:
        table_name = "aether-records-test-things"
        region = "us-east-1"
        host: str | None = None

    name = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    created = NumberAttribute()
    state = UnicodeAttribute(default="pending")
    details = MapAttribute[str, Any](default=dict)
    by_owner = _ByOwner()


class _Slot(Model):
    class Meta:
        table_name = "aether-records-test-slots"
        region = "us-east-1"
        host: str | None = None

    owner = UnicodeAttribute(hash_key=True)
    holder = UnicodeAttribute(null=True)


def records_command(port: int, state: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "infra.local.records",
        "--port",
        str(port),
        "--state-dir",
        str(state),
    ]


class RecordsServer:
    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log, self.port = state, log, free_port()
        self.service = self._start()

    def _start(self) -> Service:
        return start("records", records_command(self.port, self.state), self.port, self.log)

    @property
    def url(self) -> str:
        return self.service.url

    def kill(self) -> None:
        os.kill(self.service.process.pid, signal.SIGKILL)
        self.service.process.wait()

    def restart(self, how: str) -> None:
        if how == "kill -9":
            self.kill()
        else:
            self.service.stop(timeout=60)
        self.service = self._start()

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(
            f"{self.url}/aether-records/status", timeout=10
        ).json()
        return answer

    def stop(self) -> None:
        self.service.stop(timeout=60)


@pytest.fixture
def records(tmp_path: Path) -> Iterator[RecordsServer]:
    server = RecordsServer(tmp_path / "records", tmp_path / "records.log")
    yield server
    server.stop()


@pytest.fixture
def plain_moto(tmp_path: Path) -> Iterator[Service]:
    service = start_moto(free_port(), tmp_path / "moto.log")
    yield service
    service.stop()


def bind(url: str) -> None:
    for model in (_Thing, _Slot):
        model.Meta.host = url
        model._connection = None


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "records-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "records-test")


def scenario() -> list[Any]:
    """What the control plane does: conditional puts and updates, transactions that commit
    and that are cancelled, a GSI read newest first, page by page. Returns every answer."""
    answers: list[Any] = []
    for model in (_Thing, _Slot):
        model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    for index in range(HISTORY):
        _Thing(f"thing-{index:03d}", owner="ann", created=index, details={"n": str(index)}).save(
            condition=_Thing.name.does_not_exist()
        )
    try:
        _Thing("thing-000", owner="bob", created=0).save(condition=_Thing.name.does_not_exist())
        answers.append("duplicate accepted")
    except PutError as exc:
        answers.append(exc.cause_response_code)
    first = _Thing.get("thing-001")
    first.update(actions=[_Thing.state.set("verified")], condition=_Thing.state == "pending")
    try:
        first.update(actions=[_Thing.state.set("rejected")], condition=_Thing.state == "pending")
        answers.append("second transition accepted")
    except UpdateError as exc:
        answers.append(exc.cause_response_code)
    connection = Connection(host=_Thing.Meta.host, region="us-east-1")
    _Slot("ann").save()
    for attempt in ("claim", "claim again"):
        try:
            with TransactWrite(connection=connection) as write:
                write.save(
                    _Thing(f"thing-{attempt}", owner="ann", created=100),
                    condition=_Thing.name.does_not_exist(),
                )
                write.update(
                    _Slot("ann"),
                    actions=[_Slot.holder.set(attempt)],
                    condition=_Slot.holder.does_not_exist(),
                )
            answers.append(f"{attempt}: committed")
        except TransactWriteError as exc:
            answers.append(f"{attempt}: {exc.cause_response_code}")
    _Thing("thing-002").delete()
    answers.append(view())
    return answers


def view() -> dict[str, Any]:
    """Everything the tables hold, and the GSI read back in pages of 20, newest first."""
    pages: list[list[str]] = []
    cursor: dict[str, Any] | None = None
    while True:
        results = _Thing.by_owner.query(
            "ann", scan_index_forward=False, limit=20, last_evaluated_key=cursor
        )
        pages.append([thing.name for thing in results])
        cursor = results.last_evaluated_key
        if not cursor:
            break
    return {
        "things": sorted(json.dumps(t.attribute_values, default=str) for t in _Thing.scan()),
        "slots": sorted((s.owner, s.holder) for s in _Slot.scan()),
        "pages": pages,
    }


def test_answers_like_plain_moto(records: RecordsServer, plain_moto: Service) -> None:
    bind(plain_moto.url)
    expected = scenario()
    bind(records.url)
    assert scenario() == expected
    assert expected[:4] == [
        "ConditionalCheckFailedException",
        "ConditionalCheckFailedException",
        "claim: committed",
        "claim again: TransactionCanceledException",
    ]
    assert [len(page) for page in expected[4]["pages"]] == [20, 20, 5]


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_a_restart_keeps_every_acknowledged_write(records: RecordsServer, how: str) -> None:
    bind(records.url)
    before = scenario()[-1]
    records.restart(how)
    bind(records.url)
    assert view() == before
    restored = records.status()["restored"]
    assert restored["replay_failures"] == 0
    if how == "kill -9":
        assert restored["replayed"] > 0  # from the journal: nothing had been compacted
    else:
        assert (restored["replayed"], restored["snapshot_tables"]) == (0, 2)
    # And a second restart, from the snapshot the first one compacted.
    records.restart("kill -9")
    bind(records.url)
    assert view() == before


def test_a_torn_last_line_is_skipped(records: RecordsServer) -> None:
    bind(records.url)
    before = scenario()[-1]
    records.kill()
    journal = next(records.state.glob("journal-*.jsonl"))
    with journal.open("a") as handle:
        handle.write('{"op": "PutItem", "credential": "x", "bo')  # a write cut short
    records.service = records._start()
    bind(records.url)
    assert view() == before
    assert records.status()["restored"]["torn_tail"] is True


def test_a_damaged_journal_refuses_to_start_and_keeps_the_file(tmp_path: Path) -> None:
    state = tmp_path / "records"
    state.mkdir()
    journal = state / "journal-0.jsonl"
    journal.write_text('not an entry\n{"op": "ListTables", "credential": "", "body": "{}"}\n')
    port = free_port()
    with pytest.raises(RuntimeError) as refused:
        start("records", records_command(port, state), port, tmp_path / "records.log", timeout=20)
    assert "journal-0.jsonl line 1 is not a journal entry" in str(refused.value)
    assert journal.read_text().startswith("not an entry")


def test_operations_a_replay_cannot_repeat_are_refused(records: RecordsServer) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("dynamodb", endpoint_url=records.url, region_name="us-east-1")
    bind(records.url)
    _Slot.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    with pytest.raises(ClientError) as refused:
        client.create_backup(TableName=_Slot.Meta.table_name, BackupName="nightly")
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "not supported by the durable local DynamoDB" in str(refused.value)
    assert records.status()["journal_entries"] == 1  # the CreateTable, not the backup


def test_moto_reset_forgets_the_tables_for_good(records: RecordsServer) -> None:
    bind(records.url)
    scenario()
    assert requests.post(f"{records.url}/moto-api/reset", timeout=10).ok
    records.restart("kill -9")
    bind(records.url)
    assert not _Thing.exists()


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_kms_keys_survive_a_restart_with_their_material(records: RecordsServer, how: str) -> None:
    """Config sealed before a restart opens after it: same key ids, same material."""
    import boto3

    from chalicelib.config_vault import ConfigVault
    from chalicelib.settings import Settings
    from infra.local.provision import provision_keys

    env = {"AWS_ENDPOINT_URL": records.url, "AETHER_STAGE": "kmstest"}
    settings = Settings.from_env(env)

    def vault() -> ConfigVault:
        kms = boto3.client("kms", region_name="us-east-1", endpoint_url=records.url)
        return ConfigVault(kms, settings.config_key_id, settings.config_mac_key_id)

    provision_keys(settings)
    sealed = vault().seal("shop", {"GREETING": "hello"})
    mac = vault().fingerprint("shop", {"GREETING": "hello"})
    assert (records.state / "kms.json").stat().st_mode & 0o777 == 0o600
    records.restart(how)
    assert vault().open("shop", sealed) == {"GREETING": "hello"}
    assert vault().fingerprint("shop", {"GREETING": "hello"}) == mac
    provision_keys(settings)  # finds the aliases: no new key
    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=records.url)
    assert len(kms.list_keys()["Keys"]) == 2
    assert records.status()["restored"]["kms_keys"] == 2
