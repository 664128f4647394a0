"""The Terraform under infra/terraform, read exactly (it is written as ``*.tf.json``).

The tables are compared with the pynamodb models, the names with settings.py
and .chalice/config.json, the log groups with the Chalice app's functions, so
none of them can drift from the code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.ops.conftest import OFFLINE
from tests.ops.iam import ROOT

TERRAFORM = ROOT / "infra" / "terraform"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
REFERENCE = re.compile(r"\b(var|local|module|data|aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)")


def files() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(TERRAFORM.glob("*.tf.json"))}


def merged(kind: str) -> dict[Any, Any]:
    """All blocks of one top-level kind (``resource``, ``variable``…) across files."""
    out: dict[Any, Any] = {}
    for document in files().values():
        for name, body in document.get(kind, {}).items():
            if kind in {"resource", "data"}:
                for label, block in body.items():
                    assert (name, label) not in out, f"{name}.{label} declared twice"
                    out[(name, label)] = block
            else:
                assert name not in out, f"{kind} {name} declared twice"
                out[name] = body
    return out


def resource(kind: str, label: str) -> dict[str, Any]:
    block: dict[str, Any] = merged("resource")[(kind, label)]
    return block


def of_kind(kind: str) -> dict[str, Any]:
    return {label: block for (k, label), block in merged("resource").items() if k == kind}


def only(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(blocks) == 1
    return blocks[0]


def patched(module: dict[str, Any]) -> dict[str, Any]:
    """The chalice module as deploy.sh leaves it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("chalice_module", TERRAFORM / "chalice_module.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    result: dict[str, Any] = loaded.patch(json.loads(json.dumps(module)))
    return result


def stage_value(template: str, stage: str) -> str:
    return template.replace("${var.stage}", stage)


def test_every_table_matches_its_pynamodb_model() -> None:
    from chalicelib.records import TABLES

    tables = of_kind("aws_dynamodb_table")
    assert set(tables) == set(TABLES)
    for name, model in TABLES.items():
        schema = model._get_schema()
        table = tables[name]
        keys = {k["KeyType"]: k["AttributeName"] for k in schema["key_schema"]}
        assert table["name"] == f"${{local.table_prefix}}-{name}"
        assert table["hash_key"] == keys["HASH"]
        assert table.get("range_key") == keys.get("RANGE")
        assert {(a["name"], a["type"]) for a in table["attribute"]} == {
            (a["AttributeName"], a["AttributeType"]) for a in schema["attribute_definitions"]
        }
        indexes = {
            g["index_name"]: (
                {k["KeyType"]: k["AttributeName"] for k in g["key_schema"]},
                g["projection"]["ProjectionType"],
            )
            for g in schema["global_secondary_indexes"]
        }
        declared = {
            g["name"]: ({"HASH": g["hash_key"], "RANGE": g["range_key"]}, g["projection_type"])
            for g in table.get("global_secondary_index", [])
        }
        assert declared == indexes, name
        assert "local_secondary_index" not in table and not schema["local_secondary_indexes"]
        assert table["billing_mode"] == "PAY_PER_REQUEST"
        assert table["point_in_time_recovery"] == [{"enabled": True}]
        assert table["deletion_protection_enabled"] == "${var.deletion_protection}"


def test_names_follow_settings_and_the_chalice_stages() -> None:
    from chalicelib.settings import Settings

    local = merged("locals")
    assert merged("variable")["bucket_name"]["default"] is None
    for stage, config in CONFIG["stages"].items():
        env = {**CONFIG["environment_variables"], **config.get("environment_variables", {})}
        settings = Settings.from_env(env)
        bucket = stage_value(local["bucket_name"], stage)
        assert bucket == '${coalesce(var.bucket_name, "' + settings.bucket + '")}', stage
        assert stage_value(local["table_prefix"], stage) == settings.table_prefix


def test_a_log_group_with_retention_for_every_lambda_function() -> None:
    import app as control_plane

    handlers = {source.name for source in control_plane.app.event_sources}
    names = merged("locals")["function_names"]
    assert names == {
        "api_handler": "aether-${var.stage}",
        **{h: f"aether-${{var.stage}}-{h}" for h in handlers},
    }
    groups = of_kind("aws_cloudwatch_log_group")
    assert set(groups) == set(names)
    for label, group in groups.items():
        assert group["name"] == f"/aws/lambda/${{local.function_names.{label}}}"
        assert group["retention_in_days"] == "${var.log_retention_days}"


def test_the_bucket_is_private_versioned_encrypted_and_tls_only() -> None:
    bucket = "${aws_s3_bucket.artifacts.id}"
    assert resource("aws_s3_bucket", "artifacts")["bucket"] == "${local.bucket_name}"
    assert resource("aws_s3_bucket_public_access_block", "artifacts") == {
        "bucket": bucket,
        "block_public_acls": True,
        "block_public_policy": True,
        "ignore_public_acls": True,
        "restrict_public_buckets": True,
    }
    ownership = resource("aws_s3_bucket_ownership_controls", "artifacts")
    assert ownership["rule"] == [{"object_ownership": "BucketOwnerEnforced"}]
    versioning = resource("aws_s3_bucket_versioning", "artifacts")
    assert versioning["versioning_configuration"] == [{"status": "Enabled"}]
    sse = resource("aws_s3_bucket_server_side_encryption_configuration", "artifacts")
    # SSE-S3, not KMS: the policy files grant no kms:* and need none.
    assert only(sse["rule"])["apply_server_side_encryption_by_default"] == [
        {"sse_algorithm": "AES256"}
    ]
    policy = only(merged("data")[("aws_iam_policy_document", "artifacts_tls_only")]["statement"])
    assert policy["effect"] == "Deny"
    assert policy["condition"] == [
        {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
    ]
    assert resource("aws_s3_bucket_policy", "artifacts")["bucket"] == bucket


def test_lifecycle_expires_quarantine_and_old_versions_but_never_current_artifacts() -> None:
    rules = resource("aws_s3_bucket_lifecycle_configuration", "artifacts")["rule"]
    assert all(rule["status"] == "Enabled" for rule in rules)
    quarantine = [r for r in rules if only(r["filter"])["prefix"] == "quarantine/"]
    assert only(quarantine)["expiration"] == [{"days": "${var.quarantine_expiry_days}"}]
    everything = [r for r in rules if only(r["filter"])["prefix"] == ""]
    assert len(quarantine) + len(everything) == len(rules)
    noncurrent = [r for r in everything if "noncurrent_version_expiration" in r]
    assert only(only(noncurrent)["noncurrent_version_expiration"]) == {
        "noncurrent_days": "${var.noncurrent_version_expiry_days}"
    }
    # A verified artifact is what a rollback deploys: nothing expires a current
    # object outside quarantine/ (delete markers only).
    for rule in everything:
        for expiration in rule.get("expiration", []):
            assert set(expiration) == {"expired_object_delete_marker"}


def test_the_chalice_module_comes_after_what_it_uses() -> None:
    from chalicelib.records import TABLES

    module = merged("module")["control_plane"]
    assert module["source"] == "./chalice"
    assert set(module["depends_on"]) == {
        "aws_s3_bucket.artifacts",
        *(f"aws_dynamodb_table.{t}" for t in TABLES),
        *(f"aws_cloudwatch_log_group.{g}" for g in of_kind("aws_cloudwatch_log_group")),
        *(f"aws_kms_alias.{a}" for a in of_kind("aws_kms_alias")),
        "aws_sqs_queue.hooks",  # the consumer's event source mapping names it
    }
    assert (TERRAFORM / "deploy.sh").stat().st_mode & 0o111
    assert "chalice/" in (TERRAFORM / ".gitignore").read_text().split()


def test_the_config_keys_are_the_aliases_the_settings_and_policies_name() -> None:
    from chalicelib.settings import Settings

    keys, aliases = of_kind("aws_kms_key"), of_kind("aws_kms_alias")
    assert keys["config"]["key_usage"] == "ENCRYPT_DECRYPT"
    assert keys["config"]["enable_key_rotation"] is True
    assert (keys["config_mac"]["key_usage"], keys["config_mac"]["customer_master_key_spec"]) == (
        "GENERATE_VERIFY_MAC",
        "HMAC_256",
    )
    for stage in CONFIG["stages"]:
        settings = Settings.from_env({"AETHER_STAGE": stage})
        named = {
            a["name"].replace("${local.table_prefix}", f"aether-{stage}") for a in aliases.values()
        }
        assert named == {settings.config_key_id, settings.config_mac_key_id}
        policy = (ROOT / ".chalice" / f"policy-{stage}.json").read_text()
        assert all(f'"{alias}"' in policy for alias in named), stage


def test_every_reference_resolves_and_every_variable_is_used() -> None:
    text = "\n".join(p.read_text() for p in TERRAFORM.glob("*.tf.json"))
    variables, locals_ = merged("variable"), merged("locals")
    resources, data = merged("resource"), merged("data")
    used_variables = set()
    for kind, name in REFERENCE.findall(text):
        if kind == "var":
            assert name in variables, f"var.{name}"
            used_variables.add(name)
        elif kind == "local":
            assert name in locals_, f"local.{name}"
        elif kind == "module":
            assert name in merged("module"), f"module.{name}"
        elif kind.startswith("aws_") and (kind, name) not in data:
            assert (kind, name) in resources, f"{kind}.{name}"
    assert used_variables == set(variables)
    for stage_file in sorted((TERRAFORM / "stages").glob("*.tfvars.json")):
        values = json.loads(stage_file.read_text())
        assert set(values) <= set(variables), stage_file.name
        assert values["stage"] == stage_file.name.removesuffix(".tfvars.json")
        assert values["stage"] in CONFIG["stages"]


def test_provider_versions_admit_the_chalice_module(chalice_module: Path) -> None:
    ours = merged("terraform")
    generated = json.loads((chalice_module / "chalice.tf.json").read_text())["terraform"]
    for provider, constraint in generated["required_providers"].items():
        upper = re.search(r"< ?([\d.]+)", constraint["version"])
        assert upper is not None
        ceiling = tuple(int(p) for p in upper.group(1).split("."))
        ours_upper = re.search(r"< ?([\d.]+)", ours["required_providers"][provider]["version"])
        assert ours_upper is not None
        assert tuple(int(p) for p in ours_upper.group(1).split("."))[: len(ceiling)] <= ceiling
    deploy = (TERRAFORM / "deploy.sh").read_text()
    assert '"$here/chalice_module.py" "$here/chalice/chalice.tf.json"' in deploy
    generated = json.loads((chalice_module / "chalice.tf.json").read_text())
    assert patched(generated)["terraform"]["required_version"] == ">= 0.12.26"  # lifts < 1.4.0


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_loads_the_configuration_offline(tmp_path: Path, chalice_module: Path) -> None:
    """``terraform init`` decodes every block; only fetching providers (network) may fail."""
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, work, ignore=shutil.ignore_patterns("chalice", ".terraform"))
    shutil.copytree(chalice_module, work / "chalice")
    module = work / "chalice" / "chalice.tf.json"
    module.write_text(json.dumps(patched(json.loads(module.read_text()))))  # as deploy.sh does
    env = {**os.environ, **OFFLINE, "TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1"}
    done = subprocess.run(
        ["terraform", "init", "-backend=false", "-input=false", "-no-color"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "Initializing provider plugins" in output, output
    errors = set(re.findall(r"Error: (.+)", output))
    assert errors <= {"Failed to query available provider packages"}, output


def test_gateway_answers_of_its_own_use_the_error_envelope(chalice_module: Path) -> None:
    """An unknown route is API Gateway's MISSING_AUTHENTICATION_TOKEN: it must be a 404
    envelope, and every default 4xx/5xx must be an envelope too."""
    outputs = json.loads((chalice_module / "chalice.tf.json").read_text())["output"]
    assert "RestAPIId" in outputs
    responses = json.loads((TERRAFORM / "gateway_responses.tf.json").read_text())["resource"][
        "aws_api_gateway_gateway_response"
    ]
    by_type = {r["response_type"]: r for r in responses.values()}
    assert set(by_type) == {"MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX"}
    assert by_type["MISSING_AUTHENTICATION_TOKEN"]["status_code"] == "404"
    for response in responses.values():
        assert response["rest_api_id"] == "${module.control_plane.RestAPIId}"
        template = response["response_templates"]["application/json"]
        assert '"code"' in template
        assert '"message"' in template


def test_cognito_signs_in_the_cli_with_pkce_and_names_the_two_roles() -> None:
    client = resource("aws_cognito_user_pool_client", "cli")
    assert client["generate_secret"] is False  # a public client: the CLI keeps no secret
    assert client["allowed_oauth_flows"] == ["code"]
    assert client["callback_urls"] == ["${local.cli_redirect_uri}"]
    assert client["enable_token_revocation"] is True
    assert merged("locals")["cli_redirect_uri"].startswith("http://localhost:")
    groups = {resource("aws_cognito_user_group", g)["name"] for g in ("admin", "developer")}
    assert groups == {"admin", "developer"}
    pool = resource("aws_cognito_user_pool", "users")
    assert pool["admin_create_user_config"] == [{"allow_admin_create_user_only": True}]
    for block in [pool, client, resource("aws_cognito_user_pool_domain", "sign_in")]:
        assert block["count"] == "${local.cognito ? 1 : 0}"  # none with another issuer


def test_the_control_plane_is_told_the_issuer_in_settings_it_reads() -> None:
    from chalicelib.settings import OidcSettings

    settings_text = (ROOT / "chalicelib" / "settings.py").read_text()
    locals_ = merged("locals")
    for branch in ("cognito_oidc_environment", "external_oidc_environment"):
        names = set(locals_[branch])
        assert names == set(locals_["cognito_oidc_environment"])
        assert all(f'"{name}"' in settings_text for name in names), names
    cognito = locals_["cognito_oidc_environment"]
    assert cognito["AETHER_OIDC_AUDIENCE_CLAIM"] == "client_id"  # Cognito's access tokens
    assert cognito["AETHER_OIDC_GROUPS_CLAIM"] == "cognito:groups"
    assert "offline_access" not in cognito["AETHER_OIDC_SCOPES"]  # not a Cognito scope
    assert merged("module")["control_plane"]["extra_environment"] == (
        "${merge(local.oidc_environment, local.hooks_environment)}"
    )
    example = {name: "x" for name in cognito} | {
        "AETHER_OIDC_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_a",
        "AETHER_OIDC_REDIRECT_URI": "http://localhost:53682/callback",
    }
    parsed = OidcSettings.from_env(example)
    assert parsed is not None and parsed.audience_claim == "x"


def test_every_function_gets_the_extra_environment(chalice_module: Path) -> None:
    module = patched(json.loads((chalice_module / "chalice.tf.json").read_text()))
    assert module["variable"]["extra_environment"]["type"] == "map(string)"
    for function in module["resource"]["aws_lambda_function"].values():
        variables = function["environment"]["variables"]
        assert variables.startswith("${merge(jsondecode(")
        assert variables.endswith(", var.extra_environment)}")


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_the_identity_settings_evaluate_for_cognito_and_for_another_issuer(
    tmp_path: Path, chalice_module: Path
) -> None:
    """``terraform plan`` of the locals alone (the resources' ids stubbed): needs no provider."""
    identity = json.loads((TERRAFORM / "identity.tf.json").read_text())
    module = patched(json.loads((chalice_module / "chalice.tf.json").read_text()))
    stubbed = json.dumps(
        {
            "locals": identity["locals"],
            "variable": {
                **identity["variable"],
                "region": {"default": "us-east-1"},
                "stub": {"type": "list(string)", "default": []},
                "extra_environment": {"type": "map(string)", "default": {"AETHER_OIDC_X": "y"}},
            },
            "output": {
                "env": {"value": "${local.oidc_environment}"},
                "function": {
                    "value": module["resource"]["aws_lambda_function"]["api_handler"][
                        "environment"
                    ]["variables"]
                },
            },
        }
    )
    for reference in (
        "aws_cognito_user_pool.users[*].id",
        "aws_cognito_user_pool_client.cli[*].id",
    ):
        stubbed = stubbed.replace(reference, "var.stub")
    (tmp_path / "main.tf.json").write_text(stubbed)
    env = {**os.environ, **OFFLINE, "TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1"}

    def plan(*variables: str) -> str:
        done = subprocess.run(
            ["terraform", "plan", "-no-color", "-input=false", *variables],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cognito = plan()
    assert 'AETHER_OIDC_GROUPS_CLAIM   = "cognito:groups"' in cognito
    assert 'AETHER_OIDC_ISSUER         = "https://cognito-idp.us-east-1.amazonaws.com/' in cognito
    assert "AETHER_OIDC_X" in cognito and "AETHER_STAGE" in cognito  # merged into the function
    okta = plan(
        "-var=external_oidc_issuer=https://example.okta.com/oauth2/default",
        "-var=external_oidc_audience=api://aether",
        "-var=external_oidc_cli_client_id=0oa-cli",
    )
    assert 'AETHER_OIDC_ISSUER         = "https://example.okta.com/oauth2/default"' in okta
    assert 'AETHER_OIDC_AUDIENCE_CLAIM = "aud"' in okta


def test_the_hooks_queue_is_the_one_the_settings_name_and_outlives_the_retries() -> None:
    from chalicelib.settings import Settings

    queues = of_kind("aws_sqs_queue")
    hooks = queues["hooks"]
    for stage in CONFIG["stages"]:
        settings = Settings.from_env({"AETHER_STAGE": stage})
        assert (
            stage_value(hooks["name"], stage).replace("${local.table_prefix}", f"aether-{stage}")
            == settings.hooks.queue_name
        )
        assert hooks["message_retention_seconds"] > settings.hooks.retry_seconds
    assert hooks["visibility_timeout_seconds"] > CONFIG["lambda_timeout"]
    assert all(queue["sqs_managed_sse_enabled"] for queue in queues.values())
    assert "aws_sqs_queue.hooks_dead_letters.arn" in hooks["redrive_policy"]
    topic = of_kind("aws_sns_topic")["hook_events"]
    assert topic["count"] == "${var.hook_topic ? 1 : 0}"
    assert "AETHER_HOOKS_TOPIC_ARN" in merged("locals")["hooks_environment"]
    assert "local.hooks_environment" in merged("module")["control_plane"]["extra_environment"]
