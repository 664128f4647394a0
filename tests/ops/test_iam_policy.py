"""Each stage's IAM policy grants exactly what the control plane asks of AWS.

Two readings of "what it asks" must agree (see ``tests/ops/iam.py``): the
code parsed with ``ast``, and the HTTP requests a recording moto server
received while the whole API ran. The policy must then equal what they imply:
nothing missing (AccessDenied in production), nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
import requests
from kubernetes.client import CoreV1Api

from chalicelib.contract import default_runtime
from chalicelib.kube import api_client
from tests.conftest import ADMIN_TOKEN, Api
from tests.kube.harness import NAMESPACE
from tests.ops.iam import (
    CONSUMER_ACTIONS,
    ROOT,
    Grant,
    allows,
    by_prefix,
    code_actions,
    policy_grants,
    queue_arn,
    recorded_grants,
    table_arn,
    topic_arn,
)
from tests.polling import wait_for

CHALICE = ROOT / ".chalice"
CONFIG = json.loads((CHALICE / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
RECORDED_STAGE = "prod"
HOOK_TOPIC = f"aether-{RECORDED_STAGE}-events"


@dataclass(frozen=True)
class Recording:
    grants: list[Grant]
    bucket: str
    table_prefix: str


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    """Drive every route and the upload handler against a recording moto server."""
    from infra.kubesim import start_simulator
    from infra.local.processes import free_port, moto_command, start

    workdir = tmp_path_factory.mktemp("iam")
    # A cluster, so that the deployment rolls out and its reads copy the cluster's events.
    cluster = start_simulator()
    kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
    CoreV1Api(api_client(str(kubeconfig))).create_namespace({"metadata": {"name": NAMESPACE}})
    port = free_port()
    moto = start(
        "moto",
        moto_command(port),
        port,
        workdir / "moto.log",
        env={"MOTO_RECORDER_FILEPATH": str(workdir / "recording.jsonl")},
    )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.url,
        "AETHER_STAGE": RECORDED_STAGE,
        "AETHER_API_TOKENS": ADMIN_TOKEN,
        "KUBECONFIG": str(kubeconfig),
        "AETHER_PUBLIC_API_URL": "http://127.0.0.1:9",  # what the pods would fetch from
        # A hook to a receiver of the test's, and the topic every event is published to.
        "AETHER_HOOKS_ALLOW_LOOPBACK": "true",
        "AETHER_HOOKS_TOPIC_ARN": f"arn:aws:sns:us-east-1:123456789012:{HOOK_TOPIC}",
    }
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in os.environ:
                if name.startswith("AETHER_") or name == "KUBECONFIG":
                    patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            yield _record(moto.url)
    finally:
        _stop(moto)
        cluster.stop()
        _rebind_to_environment()


def _stop(service: Any) -> None:
    """SIGTERM and reap: ``Service.stop`` polls an unreaped child and always waits 5 s."""
    os.killpg(service.process.pid, signal.SIGTERM)
    try:
        service.process.wait(10)
    except subprocess.TimeoutExpired:
        service.stop()


def _record(moto_url: str) -> Recording:
    from chalice.test import Client

    import app as control_plane
    from chalicelib.settings import Settings
    from infra.local.provision import provision

    _reset(control_plane)
    settings = Settings.from_env()
    provision(settings)  # bucket, tables, queues: set-up, not the Lambda's calls
    boto3.client("sns").create_topic(Name=HOOK_TOPIC)
    recorder = f"{moto_url}/moto-api/recorder"
    requests.post(f"{recorder}/reset-recording", timeout=5).raise_for_status()
    requests.post(f"{recorder}/start-recording", timeout=5).raise_for_status()
    with Client(control_plane.app) as client:
        _exercise(Api(client, ADMIN_TOKEN), control_plane, settings.bucket, recorder)
    requests.post(f"{recorder}/stop-recording", timeout=5).raise_for_status()
    text = requests.get(f"{recorder}/download-recording", timeout=5).text
    _reset(control_plane)
    return Recording(recorded_grants(text), settings.bucket, settings.table_prefix)


def _reset(control_plane: Any) -> None:
    for name in (
        "get_settings",
        "get_store",
        "env_token_hashes",
        "get_data_plane",
        "get_vault",
        "get_hook_queue",
        "get_courier",
    ):
        cached = getattr(control_plane, name, None)
        if cached is not None:
            cached.cache_clear()


def _rebind_to_environment() -> None:
    """Give the models back to whatever the rest of the session configured."""
    import sys

    from chalicelib.records import configure
    from chalicelib.settings import Settings

    if "app" in sys.modules:
        _reset(sys.modules["app"])
    configure(Settings.from_env())


def _exercise(api: Api, control_plane: Any, bucket: str, recorder: str) -> None:
    """Every route a client uses, an accepted and a rejected upload, a deployment, hooks
    delivered (and published), a teardown."""
    from nacl.signing import SigningKey

    assert api.get("/readyz").status == 200
    receiver = _Receiver()

    issued = api.post("/tokens", {"subject": "iam-dev", "role": "developer"})
    assert issued.status == 201, issued.body
    assert api.as_(issued.json["token"]).get("/whoami").status == 200
    assert api.get("/tokens").status == 200
    assert api.delete(f"/tokens/{issued.json['token_id']}").status == 200
    # A token issued by a stored token: rotating it checks that its issuer still stands.
    issuer = api.post("/tokens", {"subject": "iam-ci", "role": "admin"})
    assert issuer.status == 201, issuer.body
    as_issuer = api.as_(issuer.json["token"])
    child = as_issuer.post("/tokens", {"subject": "iam-bot", "role": "developer"})
    assert child.status == 201, child.body
    rotated = as_issuer.post(f"/tokens/{child.json['token_id']}/rotate")
    assert rotated.status == 201, rotated.body

    name = "iam-flow"
    assert api.post("/apps", {"name": name}).status == 201
    assert api.get("/apps").status == 200
    assert api.get(f"/apps/{name}").status == 200
    signer = SigningKey.generate()
    key = api.post(
        f"/apps/{name}/public-keys", {"public_key_hex": signer.verify_key.encode().hex()}
    )
    assert key.status == 201, key.body
    assert api.get(f"/apps/{name}/public-keys").status == 200

    good = _upload(api, control_plane, bucket, name, os.urandom(2048), signer)
    assert api.head(f"/artifacts/{good}").status == 200
    assert api.get(f"/artifacts/{good}").json["status"] == "verified"
    assert api.get(f"/artifacts?app_name={name}").status == 200
    download = api.get(f"/artifacts/{good}/download")
    assert download.status == 307, download.body
    assert requests.get(download.headers["Location"], timeout=10).status_code == 200

    # Signed by a key the app does not know: rejected and moved to quarantine/.
    bad = _upload(api, control_plane, bucket, name, os.urandom(1024), SigningKey.generate())
    assert api.get(f"/artifacts/{bad}").json["status"] == "rejected"

    deployment = api.post("/deployments", {"app_name": name, "artifact_digest": good})
    assert deployment.status in {200, 201}, deployment.body
    # Read until it rolled out: the reads copy the cluster's events into its history.
    wait_for(
        lambda: (
            api.get(f"/deployments/{deployment.json['deployment_id']}").json["status"]
            == "succeeded"
        ),
        timeout=60,
        what="the deployment to roll out in the simulator",
    )
    assert api.get(f"/apps/{name}/deployments").status == 200

    # Config: sealed (a data key) and fingerprinted (a MAC) on a patch, opened to read one.
    patch = api.call("PATCH", f"/apps/{name}/config", {"set": {"GREETING": "hi"}})
    assert patch.status == 201, patch.body
    assert api.get(f"/apps/{name}/config/GREETING").json["value"] == "hi"
    assert api.get(f"/apps/{name}/releases").status == 200

    # Hooks: a subscription, the events above delivered by the queue's consumer, then read.
    hook = api.post("/hooks", {"url": receiver.url, "app_name": name})
    assert hook.status == 201, hook.body
    assert api.get("/hooks").status == 200
    assert api.get(f"/hooks?app_name={name}").status == 200
    released = api.call("PATCH", f"/apps/{name}/config", {"set": {"GREETING": "hello"}})
    assert released.status == 201, released.body
    _consume_hooks(control_plane, recorder)
    assert receiver.received, "the consumer delivered nothing"
    assert api.get(f"/hooks/{hook.json['hook_id']}").status == 200
    assert api.get(f"/hooks/{hook.json['hook_id']}/deliveries").json["deliveries"]
    assert api.delete(f"/hooks/{hook.json['hook_id']}").status == 200
    again = api.post("/hooks", {"url": receiver.url, "app_name": name})
    assert again.status == 201, again.body

    key_id = key.json["key_id"]
    assert api.delete(f"/apps/{name}/public-keys/{key_id}").status == 200

    # The teardown: every record of the app, and its objects; its hooks told, then deleted.
    destroyed = api.delete(f"/apps/{name}")
    assert destroyed.status == 200, destroyed.body
    _consume_hooks(control_plane, recorder)
    receiver.close()


class _Receiver:
    """A loopback endpoint answering 200 to every POST."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _consume_hooks(control_plane: Any, recorder: str) -> None:
    """What Lambda's SQS event source does: receive (not the function's own call, so not
    recorded), hand the batch to the handler (recorded), delete."""
    from infra.local.relay import sqs_event

    sqs = boto3.client("sqs")
    url = control_plane.get_hook_queue().url
    while True:
        requests.post(f"{recorder}/stop-recording", timeout=5).raise_for_status()
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        requests.post(f"{recorder}/start-recording", timeout=5).raise_for_status()
        if not messages:
            return
        control_plane.deliver_hooks(sqs_event("arn:aws:sqs:::hooks", messages), None)
        requests.post(f"{recorder}/stop-recording", timeout=5).raise_for_status()
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        requests.post(f"{recorder}/start-recording", timeout=5).raise_for_status()


def _upload(
    api: Api, control_plane: Any, bucket: str, app_name: str, data: bytes, signer: Any
) -> str:
    """Request, PUT through the presigned URL, then the S3 event as Lambda receives it."""
    digest = hashlib.sha256(data).hexdigest()
    reply = api.post(
        "/artifacts",
        {"app_name": app_name, "size_bytes": len(data), "runtime": default_runtime()},
        headers={
            "x-aether-artifact-digest": digest,
            "x-aether-signature": signer.sign(digest.encode()).signature.hex(),
        },
    )
    assert reply.status == 201, reply.body
    upload = reply.json["upload"]
    put = requests.request(
        upload["method"], upload["url"], data=data, headers=upload["headers"], timeout=10
    )
    assert put.status_code == 200, put.text
    control_plane.artifact_uploaded(_s3_event(bucket, reply.json["key"], len(data)), None)
    return digest


def _s3_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2025-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key), "size": size},
                },
            }
        ]
    }


# -- what each stage's policy must be -------------------------------------------


def stage_names(stage: str) -> tuple[str, str]:
    """Bucket and table prefix of ``stage``, as settings.py derives them from its config."""
    from chalicelib.settings import Settings

    env = {**CONFIG.get("environment_variables", {})}
    env.update(CONFIG["stages"][stage].get("environment_variables", {}))
    settings = Settings.from_env(env)
    return settings.bucket, settings.table_prefix


def lambda_functions(stage: str) -> list[str]:
    """Chalice's function names: ``<app>-<stage>`` for the API, plus one per event handler."""
    import app as control_plane

    app_name = CONFIG["app_name"]
    handlers = sorted({source.name for source in control_plane.app.event_sources})
    return [f"{app_name}-{stage}", *(f"{app_name}-{stage}-{h}" for h in handlers)]


def expected_grants(stage: str, recording: Recording) -> set[Grant]:
    from chalicelib.records import TABLES
    from chalicelib.settings import Settings

    bucket, prefix = stage_names(stage)
    rename = {recording.bucket: bucket, recording.table_prefix: prefix}
    s3 = {by_prefix(g) for g in recording.grants if g.action.startswith("s3:")}
    grants = {Grant(g.action, _renamed(g.resource, rename)) for g in s3}
    dynamodb = {a for a in code_actions() if a.startswith("dynamodb:")}
    for table, model in TABLES.items():
        name = f"{prefix}-{table}"
        grants |= {Grant(action, table_arn(name)) for action in dynamodb}
        for index in model._indexes:
            grants.add(Grant("dynamodb:Query", table_arn(name, index)))
    grants |= {
        Grant(g.action, _renamed(g.resource, rename))
        for g in recording.grants
        if g.action.startswith("kms:")
    }
    grants |= {
        Grant(g.action, _renamed(g.resource, rename))
        for g in recording.grants
        if g.action.startswith(("sqs:", "sns:"))
    }
    hooks = queue_arn(Settings.from_env({"AETHER_STAGE": stage}).hooks.queue_name)
    grants |= {Grant(action, hooks) for action in CONSUMER_ACTIONS}
    for function in lambda_functions(stage):
        group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{function}"
        grants |= {Grant(a, r) for a in LOG_ACTIONS for r in (group, f"{group}:*")}
    return grants


def _renamed(resource: str, rename: dict[str, str]) -> str:
    for old, new in rename.items():
        resource = resource.replace(old, new)
    return resource


def _policy(stage: str) -> dict[str, Any]:
    name = CONFIG["stages"][stage].get("iam_policy_file", CONFIG.get("iam_policy_file"))
    assert name == f"policy-{stage}.json", f"stage {stage} must use its own policy file"
    policy: dict[str, Any] = json.loads((CHALICE / name).read_text())
    return policy


# -- the tests --------------------------------------------------------------------


def test_recorded_calls_and_the_code_name_the_same_actions(recording: Recording) -> None:
    recorded = {g.action for g in recording.grants}
    in_code = code_actions()
    assert recorded - in_code == set(), "the wire shows calls that tests/ops/iam.py cannot see"
    assert in_code - recorded == set(), "code calls these; extend the flow in _exercise"


def test_every_recorded_request_is_allowed_by_the_policy(recording: Recording) -> None:
    granted = policy_grants(_policy(RECORDED_STAGE))
    denied = sorted({(g.action, g.resource) for g in recording.grants if not allows(granted, g)})
    assert denied == []


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_exactly_what_the_code_needs(stage: str, recording: Recording) -> None:
    granted = policy_grants(_policy(stage))
    expected = expected_grants(stage, recording)
    assert sorted(expected - granted, key=str) == [], f"missing from policy-{stage}.json"
    assert sorted(granted - expected, key=str) == [], f"extra in policy-{stage}.json"


def test_quarantine_is_write_only_and_nothing_touches_other_prefixes(
    recording: Recording,
) -> None:
    objects = {by_prefix(g) for g in recording.grants if g.resource.startswith("arn:aws:s3:::")}
    prefixes = {g.resource.split("/", 1)[1] for g in objects if g.action != "s3:ListBucket"}
    assert prefixes == {"artifacts/*", "quarantine/*"}
    quarantine = {g.action for g in objects if g.resource.endswith("/quarantine/*")}
    assert quarantine == {"s3:PutObject"}


def test_the_lambda_uses_no_cloudwatch_api(recording: Recording) -> None:
    services = {g.action.split(":")[0] for g in recording.grants} | {
        a.split(":")[0] for a in code_actions()
    }
    assert services == {"s3", "dynamodb", "kms", "sqs", "sns"}  # metrics go to the logs as EMF


def test_hooks_use_only_their_queue_and_topic(recording: Recording) -> None:
    queues = {g for g in recording.grants if g.action.startswith("sqs:")}
    assert {g.resource for g in queues} == {queue_arn(f"aether-{RECORDED_STAGE}-hooks")}
    assert {g.action for g in queues} == {"sqs:GetQueueUrl", "sqs:SendMessage"}
    topics = {g for g in recording.grants if g.action.startswith("sns:")}
    assert topics == {Grant("sns:Publish", topic_arn(HOOK_TOPIC))}


def test_kms_is_used_only_through_the_config_keys_aliases(recording: Recording) -> None:
    kms = {g for g in recording.grants if g.action.startswith("kms:")}
    assert kms == {
        Grant("kms:GenerateDataKey", "alias/aether-prod-config"),
        Grant("kms:Decrypt", "alias/aether-prod-config"),
        Grant("kms:GenerateMac", "alias/aether-prod-config-mac"),
    }


def test_the_rejected_upload_was_copied_to_quarantine_and_deleted(
    recording: Recording,
) -> None:
    actions = {(g.action, by_prefix(g).resource.rsplit("/", 1)[0]) for g in recording.grants}
    bucket = f"arn:aws:s3:::{recording.bucket}"
    assert ("s3:PutObject", f"{bucket}/quarantine") in actions
    assert ("s3:DeleteObject", f"{bucket}/artifacts") in actions


def test_policy_files_are_plain_json_without_placeholders() -> None:
    for path in sorted(CHALICE.glob("policy-*.json")):
        text = path.read_text()
        assert "${" not in text and "<" not in text, path.name
        assert path.name in {f"policy-{stage}.json" for stage in STAGES}, f"stray {path.name}"


def test_ast_reading_finds_calls_in_new_code(tmp_path: Path) -> None:
    """The static reader is what guards untested paths, so it is tested on its own."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from chalicelib.records import Artifact, transaction\n"
        "def handler():\n"
        "    Artifact.batch_get(['a'])\n"
        "    item = Artifact('d')\n"
        "    item.delete()\n"
        "    with transaction() as write:\n"
        "        write.condition_check(Artifact, 'd', condition=None)\n"
        "    {}.update(a=1)\n"
        "    store._s3.list_objects_v2(Bucket='b')\n"
        "handler()\n"
        "def never_called():\n"
        "    Artifact.scan()\n"
    )
    assert code_actions([source]) == {
        "dynamodb:BatchGetItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "s3:ListBucket",
    }


def test_ast_reading_refuses_an_unmapped_client(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("import boto3\nsts = boto3.client('sts')\n")
    with pytest.raises(AssertionError, match="sts"):
        code_actions([source])
