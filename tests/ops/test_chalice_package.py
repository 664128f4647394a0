"""``chalice package`` produces the Terraform the AWS deployment applies.

The project is copied into a temporary directory and packaged there, so the
repository's ``.chalice/deployments`` cache is left alone. By default the copy
has an empty ``requirements.txt``: the template does not depend on the wheels,
and packaging then needs no network (proxies point at a closed port to prove
it) and takes a few seconds. ``AETHER_PACKAGE_DEPENDENCIES=1`` packages the
real requirements too (pip downloads Lambda wheels from PyPI, 20-40 s).
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.ops.conftest import OFFLINE, STAGE, chalice_package, copy_project
from tests.ops.iam import ROOT

CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload (Terraform's ``filename``)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def stage_environment() -> dict[str, str]:
    return {
        **CONFIG.get("environment_variables", {}),
        **CONFIG["stages"][STAGE].get("environment_variables", {}),
    }


def functions(chalice_terraform: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = chalice_terraform["resource"]["aws_lambda_function"]
    return found


def test_the_api_and_every_event_handler_become_lambda_functions(
    chalice_terraform: dict[str, Any],
) -> None:
    import app as control_plane

    handlers = {source.name for source in control_plane.app.event_sources}
    assert "artifact_uploaded" in handlers
    lambdas = functions(chalice_terraform)
    assert set(lambdas) == {"api_handler", *handlers}
    assert lambdas["api_handler"]["function_name"] == f"aether-{STAGE}"
    assert lambdas["api_handler"]["handler"] == "app.app"
    for handler in handlers:
        assert lambdas[handler]["function_name"] == f"aether-{STAGE}-{handler}"
        assert lambdas[handler]["handler"] == f"app.{handler}"
    for function in lambdas.values():
        assert function["runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
        assert function["timeout"] == CONFIG["lambda_timeout"]
        assert function["memory_size"] == CONFIG["lambda_memory_size"]


def test_uploads_under_artifacts_trigger_the_verification_handler(
    chalice_terraform: dict[str, Any],
) -> None:
    bucket = stage_environment()["AETHER_BUCKET"]
    notifications = chalice_terraform["resource"]["aws_s3_bucket_notification"]
    assert list(notifications) == [f"{bucket}_notify"]
    notification = notifications[f"{bucket}_notify"]
    assert notification["bucket"] == bucket
    assert notification["lambda_function"] == [
        {
            "events": ["s3:ObjectCreated:*"],
            "filter_prefix": "artifacts/",
            "lambda_function_arn": "${aws_lambda_function.artifact_uploaded.arn}",
        }
    ]
    permission = chalice_terraform["resource"]["aws_lambda_permission"]["artifact_uploaded-s3event"]
    assert permission["principal"] == "s3.amazonaws.com"
    assert permission["source_arn"].endswith(f":s3:::{bucket}")


def test_every_role_carries_exactly_our_policy_file(chalice_terraform: dict[str, Any]) -> None:
    ours = json.loads((ROOT / ".chalice" / f"policy-{STAGE}.json").read_text())
    policies = chalice_terraform["resource"]["aws_iam_role_policy"]
    roles = chalice_terraform["resource"]["aws_iam_role"]
    assert set(policies) == set(roles)
    for name, attached in policies.items():
        assert json.loads(attached["policy"]) == ours, name
        assert attached["role"] == f"${{aws_iam_role.{name}.id}}"
    for function in functions(chalice_terraform).values():
        role = function["role"].removeprefix("${aws_iam_role.").removesuffix(".arn}")
        assert role in roles


def test_functions_get_the_stage_environment(chalice_terraform: dict[str, Any]) -> None:
    expected = stage_environment()
    for name, function in functions(chalice_terraform).items():
        assert function["environment"]["variables"] == expected, name
    assert expected["AETHER_STAGE"] == STAGE
    assert expected["AETHER_BUCKET"] == f"aether-{STAGE}-artifacts"
    assert expected["AETHER_TABLE_PREFIX"] == f"aether-{STAGE}"
    assert "AWS_ENDPOINT_URL" not in expected  # production talks to AWS itself


def test_the_api_is_published_on_the_api_stage(chalice_terraform: dict[str, Any]) -> None:
    deployment = chalice_terraform["resource"]["aws_api_gateway_deployment"]["rest_api"]
    assert deployment["stage_name"] == CONFIG["stages"][STAGE]["api_gateway_stage"]
    swagger = json.loads(chalice_terraform["locals"]["chalice_api_swagger"])
    assert "/artifacts/{digest}/download" in swagger["paths"]
    assert set(chalice_terraform["output"]) == {"EndpointURL", "RestAPIId"}


def test_the_package_holds_the_app_and_chalicelib(chalice_terraform: dict[str, Any]) -> None:
    with zipfile.ZipFile(chalice_terraform["_zip"]) as package:
        names = set(package.namelist())
    assert {"app.py", "chalice/app.py", "chalicelib/records.py"} <= names
    shipped = {
        f"chalicelib/{p.relative_to(ROOT / 'chalicelib')}"
        for p in (ROOT / "chalicelib").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped <= names  # the dashboard's static files too: the Lambda serves them
    assert "chalicelib/dashboard/static/index.html" in shipped


def test_cloudformation_cannot_carry_the_s3_trigger_so_terraform_is_the_format(
    tmp_path: Path,
) -> None:
    """Chalice refuses S3 events in CloudFormation (it cannot edit an existing bucket)."""
    project = copy_project(tmp_path / "project", with_requirements=False)
    done = chalice_package(project, tmp_path / "out", env=OFFLINE)
    assert done.returncode != 0
    assert "Unable to package chalice apps that @app.on_s3_event" in done.stderr


@pytest.mark.skipif(
    os.environ.get("AETHER_PACKAGE_DEPENDENCIES") != "1",
    reason="downloads Lambda wheels from PyPI; set AETHER_PACKAGE_DEPENDENCIES=1",
)
def test_the_full_package_fits_lambda(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project", with_requirements=True)
    out = tmp_path / "out"
    env = {k: v for k, v in OFFLINE.items() if "PROXY" not in k and k != "PIP_NO_INDEX"}
    done = chalice_package(project, out, "--pkg-format", "terraform", env=env)
    assert done.returncode == 0, done.stderr
    package = out / "deployment.zip"
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        unzipped = sum(info.file_size for info in archive.infolist())
    assert {"pynamodb/__init__.py", "nacl/__init__.py", "kubernetes/__init__.py"} <= names
    assert any(n.startswith("nacl/_sodium") and n.endswith(".so") for n in names)
    assert package.stat().st_size < LAMBDA_ZIP_LIMIT
    assert unzipped < LAMBDA_UNZIPPED_LIMIT
