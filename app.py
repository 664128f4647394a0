"""Aether's control plane: every route and event source, each a few lines."""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Chalice, CloudWatchEvent, Rate, Request, Response, S3Event

from chalicelib import (
    apps,
    artifacts,
    auth,
    contract,
    dashboard,
    deployments,
    health,
    kube,
    logs,
    middleware,
    openapi,
    payloads,
    rollouts,
    verification,
)
from chalicelib.observability import flush_metrics
from chalicelib.records import Deployment, bind_tables
from chalicelib.settings import Settings
from chalicelib.storage import ARTIFACT_PREFIX, ArtifactStore

app = Chalice(app_name="aether")


@functools.cache
def get_settings() -> Settings:
    settings = Settings.from_env()
    bind_tables(settings)
    return settings


@functools.cache
def get_store() -> ArtifactStore:
    import boto3
    from botocore.config import Config

    settings = get_settings()
    s3 = boto3.client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.s3_endpoint_url,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=settings.connect_timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )
    return ArtifactStore(s3, settings.bucket)


@functools.cache
def get_data_plane() -> rollouts.DataPlane:
    settings = get_settings()
    if not settings.cluster_configured:
        return rollouts.DataPlane(None, settings)
    cluster = kube.Cluster(kube.api_client(settings.kubeconfig), settings.namespace)
    return rollouts.DataPlane(cluster, settings)


@functools.cache
def env_token_hashes() -> tuple[str, ...]:
    return tuple(auth.token_sha256(token) for token in get_settings().env_tokens)


def request() -> Request:
    assert app.current_request is not None, "only called while serving a request"
    return app.current_request


def principal() -> auth.Principal:
    get_settings()
    return auth.authenticate(request().headers.get("authorization"), env_token_hashes())


def json_body() -> dict[str, Any]:
    return payloads.json_object(request().headers, request().raw_body)


def query(name: str) -> str | None:
    params = request().query_params
    return None if params is None else params.get(name)


def created(body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=201)


def is_live(deployment: Deployment) -> bool:
    return rollouts.is_live(get_data_plane(), deployment)


def deployment_response(deployment: Deployment, status: int) -> Response:
    """A deployment after moving it as far as the cluster allows (reads reconcile)."""
    advanced = rollouts.advance(get_data_plane(), deployment)
    return Response(
        body=deployments.deployment_json(advanced, with_events=True), status_code=status
    )


# Health and the API description answer without a token.


@app.route("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@app.route("/readyz")
def readyz() -> Response:
    report = health.readiness(get_store(), get_data_plane().cluster)
    return Response(body=report.to_json(), status_code=200 if report.ready else 503)


@app.route("/openapi.json")
def openapi_document() -> dict[str, Any]:
    return openapi.document()


# The dashboard: its page and files need no token; the data they show does.


@app.route("/dashboard")
def dashboard_page() -> Response:
    return dashboard.page(request().headers.get("if-none-match"))


@app.route("/dashboard/{name}")
def dashboard_file(name: str) -> Response:
    return dashboard.asset(name, request().headers.get("if-none-match"))


@app.route("/whoami")
def whoami() -> dict[str, Any]:
    who = principal()
    return {"subject": who.subject, "role": who.role, "token_id": who.token_id}


# Tokens


@app.route("/tokens", methods=["POST"])
def issue_token() -> Response:
    issued = auth.issue_for(principal(), json_body())
    return created({**auth.token_json(issued.record), "token": issued.secret})


@app.route("/tokens")
def list_tokens() -> dict[str, Any]:
    return {"tokens": [auth.token_json(t) for t in auth.list_for(principal())]}


@app.route("/tokens/{token_id}", methods=["DELETE"])
def revoke_token(token_id: str) -> dict[str, Any]:
    return auth.token_json(auth.revoke_for(principal(), token_id))


# Applications and their signing keys


@app.route("/apps", methods=["POST"])
def register_app() -> Response:
    return created(apps.app_json(apps.register(principal(), json_body())))


@app.route("/apps")
def list_apps() -> dict[str, Any]:
    listed = apps.visible_to(principal())
    return {"apps": [apps.app_json(a, deployments.latest_json(a)) for a in listed]}


@app.route("/apps/{app_name}")
def show_app(app_name: str) -> dict[str, Any]:
    found = apps.load(principal(), app_name)
    return apps.app_json(found, deployments.latest_json(found))


@app.route("/apps/{app_name}/public-keys", methods=["POST"])
def add_public_key(app_name: str) -> Response:
    return created(apps.public_key_json(apps.add_public_key(principal(), app_name, json_body())))


@app.route("/apps/{app_name}/public-keys")
def list_public_keys(app_name: str) -> dict[str, Any]:
    keys = apps.public_keys(principal(), app_name)
    return {"keys": [apps.public_key_json(k) for k in keys]}


@app.route("/apps/{app_name}/public-keys/{key_id}", methods=["DELETE"])
def deactivate_public_key(app_name: str, key_id: str) -> dict[str, Any]:
    return apps.public_key_json(apps.deactivate_public_key(principal(), app_name, key_id))


@app.route("/apps/{app_name}/rollback", methods=["POST"])
def rollback(app_name: str) -> Response:
    deployment, is_new = deployments.rollback(
        principal(), get_store(), get_settings().cluster_platforms, app_name, json_body(), is_live
    )
    return deployment_response(deployment, 201 if is_new else 200)


@app.route("/apps/{app_name}/logs")
def app_logs(app_name: str) -> dict[str, Any]:
    return logs.read(
        principal(),
        get_data_plane().cluster,
        app_name,
        since=query("since"),
        tail=query("tail"),
        deployment_id=query("deployment"),
    )


@app.route("/apps/{app_name}/deployments")
def app_deployments(app_name: str) -> dict[str, Any]:
    limit = payloads.integer(query("limit") or contract.DEFAULT_PAGE, "limit", 1, contract.MAX_PAGE)
    page, cursor = deployments.history(principal(), app_name, limit, query("cursor"))
    return {"deployments": [deployments.deployment_json(d) for d in page], "next_cursor": cursor}


# Artifacts


@app.route("/artifacts/{digest}", methods=["HEAD"])
def artifact_exists(digest: str) -> Response:
    found = artifacts.find(principal(), digest, query("app_name"))
    deployable = artifacts.is_deployable(found, get_store())
    return Response(body="", status_code=200 if deployable else 404)


@app.route("/artifacts", methods=["POST"])
def request_upload() -> Response:
    headers = request().headers
    ticket = artifacts.request_upload(
        principal(),
        get_store(),
        get_settings(),
        headers.get("x-aether-artifact-digest"),
        headers.get("x-aether-signature"),
        json_body(),
    )
    return created(ticket.to_json())


@app.route("/artifacts")
def list_artifacts() -> dict[str, Any]:
    limit = payloads.integer(query("limit") or contract.DEFAULT_PAGE, "limit", 1, contract.MAX_PAGE)
    app_name = query("app_name")
    if app_name is not None:
        payloads.app_name(app_name)
    listed = artifacts.recent(principal(), app_name, limit)
    return {"artifacts": [artifacts.artifact_json(a) for a in listed]}


@app.route("/artifacts/{digest}/download")
def download_artifact(digest: str) -> Response:
    target = artifacts.download(principal(), get_store(), get_settings(), digest)
    return Response(body="", status_code=307, headers={"Location": target.url})


@app.route("/artifacts/{digest}")
def show_artifact(digest: str) -> dict[str, Any]:
    return artifacts.artifact_json(artifacts.find(principal(), digest, query("app_name")))


# Deployments


@app.route("/deployments", methods=["POST"])
def create_deployment() -> Response:
    deployment, is_new = deployments.create(
        principal(), get_store(), get_settings().cluster_platforms, json_body(), is_live
    )
    return deployment_response(deployment, 201 if is_new else 200)


@app.route("/deployments/{deployment_id}")
def show_deployment(deployment_id: str) -> Response:
    return deployment_response(deployments.load(principal(), deployment_id), 200)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def reconcile_deployments(event: CloudWatchEvent) -> None:
    get_settings()
    rollouts.advance_all_in_flight(get_data_plane())
    rollouts.restore_lost_workloads(get_data_plane())
    flush_metrics()


# Events


@app.on_s3_event(
    bucket=Settings.from_env().bucket, events=["s3:ObjectCreated:*"], prefix=ARTIFACT_PREFIX
)
def artifact_uploaded(event: S3Event) -> None:
    get_settings()
    verification.handle_s3_event(get_store(), event.to_dict())
    flush_metrics()


middleware.install(app)
