"""Aether's control plane: every route and event source, each a few lines."""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import (
    Chalice,
    CloudWatchEvent,
    Rate,
    Request,
    Response,
    S3Event,
    SQSEvent,
)

from chalicelib import (
    apps,
    artifacts,
    auth,
    contract,
    dashboard,
    deployments,
    health,
    hook_delivery,
    hooks,
    kube,
    logs,
    middleware,
    oidc,
    openapi,
    payloads,
    previews,
    pull_tokens,
    records,
    releases,
    retention,
    rollouts,
    runs,
    teardown,
    verification,
)
from chalicelib.config_vault import ConfigVault
from chalicelib.observability import flush_metrics, logger
from chalicelib.settings import Settings
from chalicelib.storage import ARTIFACT_PREFIX, ArtifactStore

app = Chalice(app_name="aether")


@functools.cache
def get_settings() -> Settings:
    return Settings.from_env()


# The records are pynamodb models, module-level classes: they are pointed at this stage's
# tables once, here, as the S3 and Kubernetes clients below are built once.
records.configure(get_settings())


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
def get_vault() -> ConfigVault:
    import boto3
    from botocore.config import Config

    settings = get_settings()
    kms = boto3.client(
        "kms",
        region_name=settings.region,
        endpoint_url=settings.kms_endpoint_url,
        config=Config(
            connect_timeout=settings.connect_timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )
    return ConfigVault(kms, settings.config_key_id, settings.config_mac_key_id)


@functools.cache
def get_data_plane() -> rollouts.DataPlane:
    settings = get_settings()
    if not settings.cluster_configured:
        return rollouts.DataPlane(None, settings, get_vault())
    cluster = kube.Cluster(kube.api_client(settings.kubeconfig), settings.namespace)
    return rollouts.DataPlane(cluster, settings, get_vault())


def _client_config() -> Any:
    from botocore.config import Config

    return Config(
        connect_timeout=get_settings().connect_timeout_seconds,
        retries={"max_attempts": 2, "mode": "standard"},
    )


@functools.cache
def get_hook_queue() -> hooks.Queue:
    import boto3

    settings = get_settings()
    configured = settings.hooks
    sqs = boto3.client(
        "sqs",
        region_name=settings.region,
        endpoint_url=configured.sqs_endpoint_url,
        config=_client_config(),
    )
    return hooks.Queue(sqs, configured.queue_name, publishes=configured.topic_arn is not None)


# Events are emitted from inside the state machines: the queue is given to them once.
hooks.configure(get_hook_queue)


@functools.cache
def get_courier() -> hook_delivery.Courier:
    import boto3

    settings = get_settings()
    configured = settings.hooks
    topic = None
    if configured.topic_arn is not None:
        sns = boto3.client(
            "sns",
            region_name=settings.region,
            endpoint_url=configured.sns_endpoint_url,
            config=_client_config(),
        )
        topic = hook_delivery.Topic(sns, configured.topic_arn)
    return hook_delivery.Courier(get_hook_queue(), get_vault(), configured, topic)


def release_context() -> releases.Context:
    settings = get_settings()
    return releases.Context(
        get_store(), get_vault(), settings.cluster_platforms, is_live, settings.retained_releases
    )


@functools.cache
def env_token_hashes() -> tuple[str, ...]:
    return tuple(auth.token_sha256(token) for token in get_settings().env_tokens)


@functools.cache
def get_verifier() -> oidc.Verifier | None:
    """The identity provider's access-token checker (its keys cached), or None without one."""
    configured = get_settings().oidc
    return None if configured is None else oidc.Verifier(configured)


def warm_up() -> None:
    """Build now what a container's first invocations would: every client and a DynamoDB
    connection per table. Lambda pays for these in a cold start; the embedded stack's
    long-lived processes call this once when they start, so that no request (or upload's
    verification) waits a quarter of a second on a busy machine for its first hook event.
    A failure is logged, not raised: whatever is missing is built on first use."""
    try:
        records.connect()
        get_store()
        get_data_plane()  # and the vault
        get_courier()  # and the hooks' queue
        env_token_hashes()
    except Exception:
        logger.warning("warming up failed; the rest is built on first use", exc_info=True)


def request() -> Request:
    assert app.current_request is not None, "only called while serving a request"
    return app.current_request


def principal() -> auth.Principal:
    return auth.authenticate(
        request().headers.get("authorization"), env_token_hashes(), get_verifier()
    )


def json_body() -> dict[str, Any]:
    return payloads.json_object(request().headers, request().raw_body)


def query(name: str) -> str | None:
    """A query parameter as sent (an empty one included); None when absent."""
    params = request().query_params
    return None if params is None else params.get(name)


def page_size() -> int:
    """``?limit``: how many items a listing returns."""
    limit = query("limit")
    if limit is None:
        return contract.DEFAULT_PAGE
    return payloads.query_integer(limit, "limit", 1, contract.MAX_PAGE)


def created(body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=201)


def is_live(deployment: records.Deployment) -> bool:
    return rollouts.is_live(get_data_plane(), deployment)


def deployment_response(deployment: records.Deployment, status: int) -> Response:
    """A deployment after moving it as far as the cluster allows (reads reconcile)."""
    advanced = rollouts.advance(get_data_plane(), deployment)
    return Response(
        body=deployments.deployment_json(advanced, with_events=True), status_code=status
    )


# Health and the API description answer without a token.


@app.route("/healthz")
def healthz() -> dict[str, Any]:
    """Liveness: the function answers.

    Token: none
    """
    return {"status": "ok"}


@app.route("/readyz")
def readyz() -> Response:
    """Readiness: DynamoDB, S3 and (when configured) the Kubernetes API answer.

    Token: none
    200: every dependency answers
    503: the checks, and which failed
    """
    report = health.readiness(get_store(), get_data_plane().cluster)
    return Response(body=report.to_json(), status_code=200 if report.ready else 503)


@app.route("/openapi.json")
def openapi_document() -> dict[str, Any]:
    """This document, generated from the routes.

    Token: none
    """
    settings = get_settings()
    return openapi.document(
        app,
        settings.max_artifact_bytes,
        settings.max_run_timeout_seconds,
        settings.preview_max_ttl_seconds,
    )


# The dashboard: its page and files need no token; the data they show does.


@app.route("/dashboard")
def dashboard_page() -> Response:
    """The web dashboard: one HTML page that calls this API with a token pasted into it.

    Token: none
    Headers: If-None-Match
    Returns: text/html
    200: the page
    304: the copy the browser holds is current
    """
    return dashboard.page(request().headers.get("if-none-match"))


@app.route("/dashboard/{name}")
def dashboard_file(name: str) -> Response:
    """A script, style sheet or icon of the dashboard.

    Token: none
    Headers: If-None-Match
    Returns: text/javascript, text/css, image/svg+xml
    200: the file
    304: the copy the browser holds is current
    Errors: not_found
    """
    return dashboard.asset(name, request().headers.get("if-none-match"))


@app.route("/auth/config")
def auth_config() -> dict[str, Any]:
    """How to sign in: the identity provider's issuer, the CLI's client id and its scopes.

    Token: none
    Schema: auth_config
    200: the issuer, client id and scopes; oidc is null when only stored tokens are accepted
    """
    return oidc.auth_config(get_settings().oidc)


@app.route("/whoami")
def whoami() -> dict[str, Any]:
    """The token's subject, role, issuer (access tokens) and expiry."""
    who = principal()
    return {
        "subject": who.subject,
        "role": who.role,
        "token_id": who.token_id,
        "issuer": who.issuer,
        "expires_at": records.iso(who.expires_at),
    }


# Tokens


@app.route("/tokens", methods=["POST"])
def issue_token() -> Response:
    """Issue a token; the secret is in this answer only.

    Admins issue any token; a developer issues its own (no body needed).
    Body: new_token (optional)
    Schema: issued_token
    201: the token's metadata and its secret
    """
    issued = auth.issue_for(principal(), json_body())
    return created({**auth.token_json(issued.record), "token": issued.secret})


@app.route("/tokens/{token_id}/rotate", methods=["POST"])
def rotate_token(token_id: str) -> Response:
    """Replace a stored token with a new one; the old one is revoked in the same step.

    The replacement has the old token's subject and role, a fresh lifetime (capped, as at
    issuance, by the token that issued the old one) and its place: what the old one issued
    is revoked with it. Admins rotate any token; a developer only its own (another's is not
    found). A revoked or expired token cannot be rotated: issue a new one.
    Body: token_rotation (optional)
    Schema: issued_token
    201: the replacement's metadata and its secret; replaces names the revoked token
    Errors: not_found, conflict
    """
    issued = auth.rotate_for(principal(), token_id, json_body())
    return created({**auth.token_json(issued.record), "token": issued.secret, "replaces": token_id})


@app.route("/tokens")
def list_tokens() -> dict[str, Any]:
    """Tokens' metadata (admins: every token; developers: their own)."""
    return {"tokens": [auth.token_json(t) for t in auth.list_for(principal())]}


@app.route("/tokens/{token_id}", methods=["DELETE"])
def revoke_token(token_id: str) -> dict[str, Any]:
    """Revoke a token.

    Errors: not_found
    """
    return auth.token_json(auth.revoke_for(principal(), token_id))


@app.route("/pull-tokens")
def list_pull_tokens() -> dict[str, Any]:
    """The tokens pods download artifacts with (admins): metadata only, never a secret.

    ``current`` marks the one in the app's Secret; every other is revoked or expired.
    Query: app_name
    Errors: forbidden
    """
    app_name = query("app_name")
    if app_name is not None:
        payloads.app_name(app_name)
    return {"pull_tokens": pull_tokens.list_for(principal(), app_name)}


# Applications and their signing keys


@app.route("/apps", methods=["POST"])
def register_app() -> Response:
    """Register an application; its name is unique.

    Body: new_app
    201: the application
    Errors: conflict
    """
    return created(apps.app_json(apps.register(principal(), json_body())))


@app.route("/apps")
def list_apps() -> dict[str, Any]:
    """The applications the token may act on, each with its latest deployment."""
    listed = apps.visible_to(principal())
    return {"apps": [apps.app_json(a, deployments.latest_json(a)) for a in listed]}


@app.route("/apps/{app_name}")
def show_app(app_name: str) -> dict[str, Any]:
    """An application and its latest deployment.

    Errors: not_found
    """
    found = apps.load(principal(), app_name)
    return apps.app_json(found, deployments.latest_json(found))


@app.route("/apps/{app_name}", methods=["DELETE"])
def destroy_app(app_name: str) -> dict[str, Any]:
    """Destroy an application: its workload, Secrets, pull tokens, releases, keys and artifacts.

    The name is free again once this answers. Another app's artifacts, the same digest
    included, are its own and stay. A teardown cut short (the cluster unreachable) leaves the
    app being destroyed: this again, or the reconciler, finishes it.
    Developers destroy their own apps; admins any.
    200: what was removed
    Errors: not_found
    """
    return teardown.destroy_for(
        principal(), get_data_plane().cluster, get_store(), app_name
    ).to_json()


@app.route("/apps/{app_name}/preview", methods=["PUT"])
def put_preview(app_name: str) -> Response:
    """Create a preview of another app, or move its expiry.

    A preview is an app of its own, with its own URL, owned by the caller, who must act on
    the base. Its first deployment copies the base's config. The reconciler destroys it once
    ``ttl_seconds`` have passed (at most AETHER_PREVIEW_MAX_TTL_SECONDS); this again, before
    then, moves its expiry.
    Body: preview
    201: the preview, created
    200: the preview, its expiry moved
    Errors: not_found, conflict
    """
    preview, is_new = previews.put(principal(), get_settings(), app_name, json_body())
    return Response(body=apps.app_json(preview), status_code=201 if is_new else 200)


@app.route("/apps/{app_name}/public-keys", methods=["POST"])
def add_public_key(app_name: str) -> Response:
    """Register an Ed25519 public key that signs the app's artifacts.

    Body: new_public_key
    201: the key
    Errors: not_found
    """
    return created(apps.public_key_json(apps.add_public_key(principal(), app_name, json_body())))


@app.route("/apps/{app_name}/public-keys")
def list_public_keys(app_name: str) -> dict[str, Any]:
    """An application's public keys, active or not.

    Errors: not_found
    """
    keys = apps.public_keys(principal(), app_name)
    return {"keys": [apps.public_key_json(k) for k in keys]}


@app.route("/apps/{app_name}/public-keys/{key_id}", methods=["DELETE"])
def deactivate_public_key(app_name: str, key_id: str) -> dict[str, Any]:
    """Deactivate a public key: signatures by it no longer verify.

    Errors: not_found
    """
    return apps.public_key_json(apps.deactivate_public_key(principal(), app_name, key_id))


@app.route("/apps/{app_name}/rollback", methods=["POST"])
def rollback(app_name: str) -> Response:
    """A release of an earlier one's artifact, config and start command; nothing is uploaded.

    ``version`` (4 or "v4") or ``to`` (a deployment id) names it; without either, the newest
    succeeded release of another artifact than the latest's. The replicas stay as they are.
    Only a release among the app's last ``AETHER_RETAINED_RELEASES`` (or the one serving)
    can be rolled back to: an older one's artifact is reclaimed (410).
    Body: rollback (optional)
    201: the new deployment
    200: that deployment already runs or is in flight
    Errors: not_found, conflict, artifact_not_verified, unsupported_platform, not_retained
    """
    deployment, is_new = deployments.rollback(principal(), release_context(), app_name, json_body())
    return deployment_response(deployment, 201 if is_new else 200)


@app.route("/apps/{app_name}/promote", methods=["POST"])
def promote(app_name: str) -> Response:
    """A release of another app's verified artifact with this app's own config; no upload.

    ``from`` names the app whose running release (or ``version``) is promoted; the token must
    act on both. This app keeps its config, start command and replicas; the artifact is
    granted to it, never copied, and stays verified only while the app it came from holds it.
    Body: promotion
    201: the new release
    200: that release already runs or is in flight
    Errors: not_found, conflict, artifact_not_verified, unsupported_platform
    """
    release, is_new = releases.promote(principal(), release_context(), app_name, json_body())
    return deployment_response(release, 201 if is_new else 200)


# Releases: config, scale and restart of what runs, no upload


@app.route("/apps/{app_name}/releases")
def app_releases(app_name: str) -> dict[str, Any]:
    """The app's releases, newest first: version, what changed, artifact, status, time.

    ``rollback_available`` is false for a release whose artifact is no longer kept: older
    than the app's last ``AETHER_RETAINED_RELEASES`` releases and not the one serving.
    Query: limit, cursor
    Errors: not_found
    """
    settings = get_settings()
    page, cursor = deployments.history(
        principal(), app_name, page_size(), query("cursor"), settings.cursor_key
    )
    kept = retention.kept_digests(app_name, settings.retained_releases)
    return {"releases": [deployments.release_json(d, kept) for d in page], "next_cursor": cursor}


@app.route("/apps/{app_name}/config")
def app_config(app_name: str) -> dict[str, Any]:
    """The names of the app's config (its latest release's), and with values=true its values.

    The values are the app's secrets: only its owner and admins read them, and only when
    asked; they are in no other listing.
    Query: values
    Errors: not_found
    """
    with_values = payloads.query_boolean(query("values"), "values")
    return releases.config_json(principal(), get_vault(), app_name, with_values)


@app.route("/apps/{app_name}/config/{config_name}")
def app_config_value(app_name: str, config_name: str) -> dict[str, Any]:
    """One config value, for the app's owner or an admin.

    Errors: not_found
    """
    return releases.config_value(principal(), get_vault(), app_name, config_name)


@app.route("/apps/{app_name}/config", methods=["PATCH"])
def patch_app_config(app_name: str) -> Response:
    """Set and unset config values: a new release of the current artifact, no upload.

    The same patch again, while its release is in flight or runs, answers with that release.
    Body: config_patch
    201: the new release
    200: that release already runs or is in flight
    Errors: not_found, conflict, artifact_not_verified, unsupported_platform, payload_too_large
    """
    release, is_new = releases.patch_config(principal(), release_context(), app_name, json_body())
    return deployment_response(release, 201 if is_new else 200)


@app.route("/apps/{app_name}/scale", methods=["POST"])
def scale_app(app_name: str) -> Response:
    """Run the current release on another number of replicas (0: stop serving, keep the app).

    Body: scale
    201: the new release
    200: the app already runs that many
    Errors: not_found, conflict, artifact_not_verified, unsupported_platform
    """
    release, is_new = releases.scale(principal(), release_context(), app_name, json_body())
    return deployment_response(release, 201 if is_new else 200)


@app.route("/apps/{app_name}/restart", methods=["POST"])
def restart_app(app_name: str) -> Response:
    """Replace every pod of the current release with a new one (a rolling restart).

    The release keeps its version; it rolls out again and its events tell how that went.
    202: the release, rolling out
    Errors: not_found, conflict
    """
    app_record = apps.load(principal(), app_name)
    release = rollouts.restart(get_data_plane(), principal(), app_record)
    return deployment_response(release, 202)


@app.route("/apps/{app_name}/logs")
def app_logs(app_name: str) -> dict[str, Any]:
    """Log lines of the app's pods, oldest first; page on with since=next_since.

    With release (v4), the output of that release's release command instead.
    Query: since, tail, deployment, release
    Errors: not_found
    """
    return logs.read(
        principal(),
        get_data_plane().cluster,
        app_name,
        since=query("since"),
        tail=query("tail"),
        deployment_id=query("deployment"),
        release=query("release"),
    )


# One-off runs: a command in a new pod of the release that serves, as a Job


@app.route("/apps/{app_name}/runs", methods=["POST"])
def start_run(app_name: str) -> Response:
    """Run a command once in a new pod of the release that serves the app.

    The pod is the app's (its artifact, config and hardened spec); it stops at
    timeout_seconds. Poll the run and its logs; delete it to stop it.
    Body: new_run
    201: the run
    Errors: not_found, conflict
    """
    return created(runs.start(principal(), get_data_plane(), app_name, json_body()))


@app.route("/apps/{app_name}/runs")
def list_runs(app_name: str) -> dict[str, Any]:
    """The app's recent runs, newest first (those the cluster still keeps).

    Errors: not_found
    """
    return runs.recent(principal(), get_data_plane(), app_name)


@app.route("/apps/{app_name}/runs/{run_id}")
def show_run(app_name: str, run_id: str) -> dict[str, Any]:
    """One run: running, succeeded or failed, and its exit code once it exited.

    Errors: not_found
    """
    return runs.show(principal(), get_data_plane(), app_name, run_id)


@app.route("/apps/{app_name}/runs/{run_id}", methods=["DELETE"])
def stop_run(app_name: str, run_id: str) -> dict[str, Any]:
    """Stop a run: its Job and pod are deleted, its command with them.

    Errors: not_found
    """
    return runs.stop(principal(), get_data_plane(), app_name, run_id)


@app.route("/apps/{app_name}/runs/{run_id}/logs")
def run_logs(app_name: str, run_id: str) -> dict[str, Any]:
    """A run's output, oldest first; page on with since=next_since.

    Once the run has finished, the answer holds every line it wrote.
    Query: since, tail
    Errors: not_found
    """
    return runs.output(
        principal(), get_data_plane(), app_name, run_id, since=query("since"), tail=query("tail")
    )


@app.route("/apps/{app_name}/deployments")
def app_deployments(app_name: str) -> dict[str, Any]:
    """Release history, newest first.

    Query: limit, cursor
    Errors: not_found
    """
    page, cursor = deployments.history(
        principal(), app_name, page_size(), query("cursor"), get_settings().cursor_key
    )
    return {"deployments": [deployments.deployment_json(d) for d in page], "next_cursor": cursor}


# Event hooks


@app.route("/hooks", methods=["POST"])
def add_hook() -> Response:
    """Subscribe a URL to an app's events; the signing secret is in this answer only.

    Without ``app_name`` the subscription gets every app's events (admins). Without
    ``events`` it gets every event, those added later too. The URL must be https:// on a
    public host.
    Body: new_hook
    Schema: new_hook
    201: the subscription and its secret
    Errors: not_found, conflict
    """
    hook, secret = hooks.create(principal(), get_vault(), get_settings().hooks, json_body())
    return created({**hooks.hook_json(hook), "secret": secret})


@app.route("/hooks")
def list_hooks() -> dict[str, Any]:
    """Subscriptions (an app's, or every one the token may see); never a secret.

    Query: app_name
    Errors: not_found
    """
    return {"hooks": [hooks.hook_json(h) for h in hooks.list_for(principal(), query("app_name"))]}


@app.route("/hooks/{hook_id}")
def show_hook(hook_id: str) -> dict[str, Any]:
    """One subscription; never its secret.

    Errors: not_found
    """
    return hooks.hook_json(hooks.load(principal(), hook_id))


@app.route("/hooks/{hook_id}", methods=["DELETE"])
def remove_hook(hook_id: str) -> dict[str, Any]:
    """Remove a subscription: nothing more is sent to it.

    Errors: not_found
    """
    return hooks.hook_json(hooks.remove(principal(), hook_id))


@app.route("/hooks/{hook_id}/deliveries")
def hook_deliveries(hook_id: str) -> dict[str, Any]:
    """A subscription's newest deliveries, each with its attempts (status code, latency, time).

    Query: limit
    Errors: not_found
    """
    found = hooks.deliveries(principal(), hook_id, page_size())
    return {"hook_id": hook_id, "deliveries": [hooks.delivery_json(d) for d in found]}


# Artifacts


@app.route("/artifacts/{digest}", methods=["HEAD"])
def artifact_exists(digest: str) -> Response:
    """Whether the artifact is stored and verified; no body either way.

    A manifest answers 200 only once every layer it names is held too; a layer, once it
    is stored and verified (what the CLI asks before uploading only the missing layers).
    Query: app_name
    200: stored and verified
    404: not stored, not verified, or not visible to the token
    Errors: invalid_digest
    """
    found = artifacts.find(principal(), digest, query("app_name"))
    available = artifacts.is_available(found, get_store())
    return Response(body="", status_code=200 if available else 404)


@app.route("/artifacts", methods=["POST"])
def request_upload() -> Response:
    """Record a pending artifact and presign its upload, bound to its length and digest.

    An artifact already verified is a duplicate: no URL, nothing to upload. ``kind`` says
    what it is: one archive, a layered artifact's manifest (the signature covers the
    manifest, which names its app and its layers) or a layer such a manifest names.
    Headers: X-Aether-Artifact-Digest, X-Aether-Signature
    Body: new_artifact
    201: the upload ticket
    Errors: missing_digest, invalid_digest, bad_signature, not_found, conflict, payload_too_large
    """
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
    """Recent artifacts (metadata only), newest first.

    Query: app_name, limit
    Errors: not_found
    """
    limit = page_size()
    app_name = query("app_name")
    if app_name is not None:
        payloads.app_name(app_name)
    listed = artifacts.recent(principal(), app_name, limit)
    return {"artifacts": [artifacts.artifact_json(a) for a in listed]}


@app.route("/artifacts/{digest}/download")
def download_artifact(digest: str) -> Response:
    """Redirect to a short-lived presigned GET of a verified artifact (the pods' fetcher).

    307: Location is the presigned URL
    Errors: invalid_digest, not_found, artifact_not_verified
    """
    target = artifacts.download(principal(), get_store(), get_settings(), digest)
    return Response(body="", status_code=307, headers={"Location": target.url})


@app.route("/artifacts/{digest}")
def show_artifact(digest: str) -> dict[str, Any]:
    """One artifact and its verification state.

    Query: app_name
    Errors: invalid_digest, not_found
    """
    return artifacts.artifact_json(artifacts.find(principal(), digest, query("app_name")))


# Deployments


@app.route("/deployments", methods=["POST"])
def create_deployment() -> Response:
    """Deploy a verified artifact.

    The same app, artifact and configuration while one is in flight (or runs) answers
    with that deployment instead of a new rollout.
    Body: new_deployment
    201: the new deployment
    200: the same deployment, already in flight or running
    Errors: missing_digest, invalid_digest, not_found, conflict, artifact_not_verified,
        unsupported_platform
    """
    deployment, is_new = deployments.create(principal(), release_context(), json_body())
    return deployment_response(deployment, 201 if is_new else 200)


@app.route("/deployments/{deployment_id}")
def show_deployment(deployment_id: str) -> Response:
    """A deployment, advanced as far as the cluster allows, with its events.

    Errors: not_found
    """
    return deployment_response(deployments.load(principal(), deployment_id), 200)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def reconcile_deployments(event: CloudWatchEvent) -> None:
    rollouts.advance_all_in_flight(get_data_plane())
    rollouts.restore_lost_workloads(get_data_plane())
    rollouts.rotate_pull_tokens(get_data_plane())
    teardown.resume_all(get_data_plane().cluster, get_store())
    previews.destroy_expired(get_data_plane().cluster, get_store())
    retention.reclaim_all(get_store(), get_settings().retained_releases)
    flush_metrics()


# Events


@app.on_s3_event(
    bucket=Settings.from_env().bucket, events=["s3:ObjectCreated:*"], prefix=ARTIFACT_PREFIX
)
def artifact_uploaded(event: S3Event) -> None:
    verification.handle_s3_event(get_store(), event.to_dict())
    flush_metrics()


@app.on_sqs_message(queue=Settings.from_env().hooks.queue_name, batch_size=10)
def deliver_hooks(event: SQSEvent) -> None:
    hook_delivery.handle_sqs_event(get_courier(), event.to_dict())
    flush_metrics()


middleware.install(app)
