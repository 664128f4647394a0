"""localstack-compose.yml and its bootstrap, read without Docker."""

from __future__ import annotations

import json
import re
import stat
from typing import Any

import pytest

from tests.ops.iam import ROOT

yaml = pytest.importorskip("yaml")  # PyYAML comes with moto

COMPOSE = ROOT / "localstack-compose.yml"
LOCALSTACK = ROOT / "infra" / "localstack"
PINNED = re.compile(r"^[\w./-]+:(\d+\.\d+\.\d+|RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)$")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = document["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_services_of_both_profiles(services: dict[str, Any]) -> None:
    assert set(services) == {"localstack", "minio", "minio-bootstrap"}
    assert "profiles" not in services["localstack"]  # A and B both keep records there
    assert services["minio"]["profiles"] == ["minio"]
    assert services["minio-bootstrap"]["profiles"] == ["minio"]


def test_every_image_is_pinned_to_an_exact_release(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert PINNED.match(service["image"]), f"{name}: {service['image']}"


def test_nothing_listens_beyond_loopback(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"
        if service.get("network_mode") == "host":
            assert "ports" not in service
    command = services["minio"]["command"]
    addresses = [command[i + 1] for i, arg in enumerate(command) if arg.endswith("address")]
    assert addresses == ["127.0.0.1:9000", "127.0.0.1:9001"]


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name in ("localstack", "minio"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}
        assert check["retries"] > 0
    assert "/_localstack/init/ready" in services["localstack"]["healthcheck"]["test"][1]
    bootstrap = services["minio-bootstrap"]
    assert bootstrap["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert bootstrap["restart"] == "no"


def test_localstack_runs_every_service_the_control_plane_uses(services: dict[str, Any]) -> None:
    env = environment(services["localstack"])
    enabled = set(env["SERVICES"].split(","))
    # events: the scheduled reconcile handler; sts: chalice deploy asks who it is.
    assert {"s3", "dynamodb", "lambda", "apigateway", "sqs", "iam", "logs"} <= enabled
    assert {"sts", "events"} <= enabled
    volumes = services["localstack"]["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in volumes
    assert "./infra/localstack/init/ready.d:/etc/localstack/init/ready.d:ro" in volumes
    assert "./infra/localstack/tables:/etc/aether/tables:ro" in volumes
    stages = set(env["AETHER_BOOTSTRAP_STAGES"].split())
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert stages <= set(config["stages"]) and "localstack" in stages


def test_minio_webhook_points_at_the_relay_with_its_token(services: dict[str, Any]) -> None:
    env = environment(services["minio"])
    assert env["MINIO_NOTIFY_WEBHOOK_ENABLE_AETHER"] == "on"
    assert env["MINIO_NOTIFY_WEBHOOK_ENDPOINT_AETHER"] == (
        "http://127.0.0.1:${AETHER_WEBHOOK_PORT:-8001}/"
    )
    assert env["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_AETHER"] == "${AETHER_WEBHOOK_TOKEN:-}"
    assert env["MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_AETHER"].startswith("/data/")
    assert services["minio"]["network_mode"] == "host"  # the relay binds 127.0.0.1 only
    # minio-stack.sh starts the relay on the port the webhook is sent to.
    script = (LOCALSTACK / "minio-stack.sh").read_text()
    assert 'webhook_port="${AETHER_WEBHOOK_PORT:-8001}"' in script


def test_minio_bootstrap_subscribes_the_webhook_to_uploads() -> None:
    script = (LOCALSTACK / "minio-bootstrap.sh").read_text()
    assert re.search(
        r"mc event add --ignore-existing \"aether/\$AETHER_BUCKET\" arn:minio:sqs::AETHER:webhook"
        r" \\\n\s+--event put --prefix artifacts/",
        script,
    )
    assert "mc mb --ignore-existing" in script


def _pairs(entries: list[dict[str, str]]) -> set[tuple[tuple[str, str], ...]]:
    return {tuple(sorted(entry.items())) for entry in entries}


def test_bootstrap_tables_match_the_pynamodb_models() -> None:
    from chalicelib.records import TABLES

    definitions = {
        p.stem: json.loads(p.read_text()) for p in (LOCALSTACK / "tables").glob("*.json")
    }
    assert set(definitions) == set(TABLES)
    for name, model in TABLES.items():
        schema = model._get_schema()
        table = definitions[name]
        assert "TableName" not in table  # the ready hook names it per stage
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert _pairs(table["KeySchema"]) == _pairs(schema["key_schema"])
        assert _pairs(table["AttributeDefinitions"]) == _pairs(schema["attribute_definitions"])
        expected = [
            {
                "IndexName": g["index_name"],
                "KeySchema": g["key_schema"],
                "Projection": g["projection"],
            }
            for g in schema["global_secondary_indexes"]
        ]
        assert table.get("GlobalSecondaryIndexes", []) == expected


def test_the_ready_hook_creates_tables_per_stage_and_the_localstack_bucket() -> None:
    hook = LOCALSTACK / "init" / "ready.d" / "10-aether.sh"
    text = hook.read_text()
    assert hook.stat().st_mode & stat.S_IXUSR
    assert 'table="aether-${stage}-$(basename "$definition" .json)"' in text
    assert 'bucket="aether-localstack-artifacts"' in text
    from chalicelib.settings import Settings

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage_env = config["stages"]["localstack"]["environment_variables"]
    assert Settings.from_env(stage_env).bucket == "aether-localstack-artifacts"


def test_profile_a_is_one_command_through_chalice_deploy() -> None:
    script = (LOCALSTACK / "deploy.sh").read_text()
    assert "docker compose -f localstack-compose.yml up -d --wait localstack" in script
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4566" in script
    assert ".venv/bin/chalice deploy --stage localstack" in script
    for name in ("deploy.sh", "minio-stack.sh", "minio-bootstrap.sh"):
        assert (LOCALSTACK / name).stat().st_mode & stat.S_IXUSR, name


def test_profile_b_starts_the_relay_with_the_token_minio_uses() -> None:
    script = (LOCALSTACK / "minio-stack.sh").read_text()
    assert '--webhook-token-file "$state/webhook-token"' in script
    assert 'AETHER_WEBHOOK_TOKEN="$(cat "$state/webhook-token")"' in script
    assert "export AETHER_S3_ENDPOINT_URL=http://127.0.0.1:9000" in script
    assert "--host 127.0.0.1" in script
