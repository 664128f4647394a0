"""Every setting of the control plane, read from the environment once."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chalicelib.contract import DEFAULT_PLATFORM, MAX_PRESIGNED_URL_SECONDS, PLATFORMS

GIB = 1024**3
DEFAULT_RETAINED_RELEASES = 10


@dataclass(frozen=True)
class OidcSettings:
    """The identity provider whose access tokens the API accepts (AETHER_OIDC_*)."""

    issuer: str
    # What the token's audience claim must hold: the API's resource identifier.
    audience: str
    # Cognito's access tokens carry no ``aud``: their ``client_id`` names the app client.
    audience_claim: str
    # None: the issuer's discovery document names it.
    jwks_url: str | None
    groups_claim: str
    admin_groups: frozenset[str]
    developer_groups: frozenset[str]
    # What ``GET /auth/config`` hands the CLI so that it needs nothing else to sign in.
    cli_client_id: str
    scopes: tuple[str, ...]
    # The loopback redirect the CLI must use, for a provider that wants it exact (Cognito);
    # None: any port on 127.0.0.1, as native apps are allowed.
    redirect_uri: str | None
    leeway_seconds: int
    jwks_max_age_seconds: int
    # An unknown ``kid`` refetches the keys at most this often: a stream of tokens with made-up
    # key ids costs the issuer one request per period, not one per token.
    jwks_refetch_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        issuer = (env.get("AETHER_OIDC_ISSUER") or "").strip()
        if not issuer:
            return None
        _require_https(issuer, "AETHER_OIDC_ISSUER")
        jwks_url = (env.get("AETHER_OIDC_JWKS_URL") or "").strip() or None
        if jwks_url is not None:
            _require_https(jwks_url, "AETHER_OIDC_JWKS_URL")
        audience = (env.get("AETHER_OIDC_AUDIENCE") or "").strip()
        client_id = (env.get("AETHER_OIDC_CLI_CLIENT_ID") or "").strip()
        if not audience or not client_id:
            raise ValueError(
                "AETHER_OIDC_ISSUER needs AETHER_OIDC_AUDIENCE and AETHER_OIDC_CLI_CLIENT_ID"
            )
        redirect_uri = (env.get("AETHER_OIDC_REDIRECT_URI") or "").strip() or None
        if redirect_uri is not None:
            parts = urlsplit(redirect_uri)
            if parts.scheme != "http" or not _is_loopback(parts.hostname or "") or not parts.port:
                raise ValueError(
                    "AETHER_OIDC_REDIRECT_URI must be http://localhost:PORT/... or "
                    f"http://127.0.0.1:PORT/..., got {redirect_uri!r}"
                )
        admins = _names(env.get("AETHER_OIDC_ADMIN_GROUPS") or "admin")
        developers = _names(env.get("AETHER_OIDC_DEVELOPER_GROUPS") or "developer")
        return cls(
            issuer=issuer,
            audience=audience,
            audience_claim=(env.get("AETHER_OIDC_AUDIENCE_CLAIM") or "aud").strip(),
            jwks_url=jwks_url,
            groups_claim=(env.get("AETHER_OIDC_GROUPS_CLAIM") or "groups").strip(),
            admin_groups=frozenset(admins),
            developer_groups=frozenset(developers),
            cli_client_id=client_id,
            scopes=tuple(_names(env.get("AETHER_OIDC_SCOPES") or "openid profile offline_access")),
            redirect_uri=redirect_uri,
            leeway_seconds=_positive_int(env, "AETHER_OIDC_LEEWAY_SECONDS", 30),
            jwks_max_age_seconds=_positive_int(env, "AETHER_OIDC_JWKS_MAX_AGE_SECONDS", 3600),
            jwks_refetch_seconds=_positive_int(env, "AETHER_OIDC_JWKS_REFETCH_SECONDS", 30),
        )


def _names(raw: str) -> list[str]:
    return [name for name in raw.replace(",", " ").split() if name]


def _require_https(url: str, name: str) -> None:
    """Keys fetched over plain HTTP could be anyone's; only loopback may go without TLS."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname is not None and _is_loopback(parts.hostname):
        return
    raise ValueError(f"{name} must be an https URL (http only on loopback), got {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HookSettings:
    """Event hooks (AETHER_HOOKS_*, AETHER_HOOK_*): the queue deliveries go through, how long
    a delivery is retried and how, and which targets are allowed."""

    # The SQS queue: the request path only enqueues; its consumer POSTs.
    queue_name: str = "aether-local-hooks"
    sqs_endpoint_url: str | None = None
    # Each event is also published here when set (an SNS topic's ARN).
    topic_arn: str | None = None
    sns_endpoint_url: str | None = None
    # One POST waits this long for its answer; a delivery is retried this long after it was
    # queued, the n-th retry backoff * 2^(n-1) seconds after the previous attempt (at most
    # SQS's 15 minutes).
    timeout_seconds: int = 5
    retry_seconds: int = 24 * 3600
    backoff_seconds: int = 30
    # The embedded stack's receivers run on this machine: targets on loopback, over plain
    # HTTP too. Never in production, where only public https:// targets are allowed.
    allow_loopback: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], stage: str, endpoint: str | None) -> HookSettings:
        allow = (env.get("AETHER_HOOKS_ALLOW_LOOPBACK") or "").strip().lower()
        if allow not in {"", "0", "false", "1", "true"}:
            raise ValueError(f"AETHER_HOOKS_ALLOW_LOOPBACK must be true or false, got {allow!r}")
        return cls(
            queue_name=env.get("AETHER_HOOKS_QUEUE") or f"aether-{stage}-hooks",
            sqs_endpoint_url=env.get("AETHER_SQS_ENDPOINT_URL") or endpoint,
            topic_arn=env.get("AETHER_HOOKS_TOPIC_ARN") or None,
            sns_endpoint_url=env.get("AETHER_SNS_ENDPOINT_URL") or endpoint,
            timeout_seconds=_positive_int(env, "AETHER_HOOK_TIMEOUT_SECONDS", 5),
            retry_seconds=_positive_int(env, "AETHER_HOOK_RETRY_SECONDS", 24 * 3600),
            backoff_seconds=_positive_int(env, "AETHER_HOOK_BACKOFF_SECONDS", 30),
            allow_loopback=allow in {"1", "true"},
        )


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    bucket: str
    table_prefix: str
    s3_endpoint_url: str | None
    dynamodb_endpoint_url: str | None
    max_artifact_bytes: int
    upload_url_ttl_seconds: int
    download_url_ttl_seconds: int
    env_tokens: tuple[str, ...]
    namespace: str
    kubeconfig: str | None
    public_api_url: str | None
    connect_timeout_seconds: int
    fetcher_image: str
    progress_deadline_seconds: int
    # The longest a preview may live before the reconciler destroys it.
    preview_max_ttl_seconds: int
    # What the cluster's nodes run ("os/arch"); an artifact for another platform is refused.
    cluster_platforms: tuple[str, ...]
    # Signs the page cursors the API hands out (AETHER_CURSOR_SECRET).
    cursor_key: bytes
    # KMS: the key that seals config values, and the HMAC key that fingerprints them
    # (ids, ARNs or aliases).
    kms_endpoint_url: str | None
    config_key_id: str
    config_mac_key_id: str
    # None: only the platform's own tokens are accepted.
    oidc: OidcSettings | None = None
    # The nodes' layer cache, a host path mounted into the fetcher (AETHER_LAYER_CACHE_DIR);
    # None: no cache. A cluster enforcing the restricted Pod Security Standard refuses
    # hostPath volumes (infra/README.md says what enabling it takes).
    layer_cache_dir: str | None = None
    layer_cache_max_bytes: int = 4 * GIB
    # How many of an app's latest releases can be rolled back to (AETHER_RETAINED_RELEASES):
    # the reconciler reclaims the artifacts only older releases used.
    retained_releases: int = DEFAULT_RETAINED_RELEASES
    # Jobs: how long a release command may run before its release fails; how long a one-off
    # run may run unless it asks for less (and at most); how long a finished Job, its pod and
    # its logs are kept (what ``GET /apps/{app}/runs`` lists).
    release_timeout_seconds: int = 600
    run_timeout_seconds: int = 900
    max_run_timeout_seconds: int = 4 * 3600
    job_ttl_seconds: int = 24 * 3600
    hooks: HookSettings = field(default_factory=HookSettings)

    @property
    def cluster_configured(self) -> bool:
        return self.kubeconfig is not None or "KUBERNETES_SERVICE_HOST" in os.environ

    def table_name(self, table: str) -> str:
        return f"{self.table_prefix}-{table}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        stage = env.get("AETHER_STAGE", "local")
        endpoint = env.get("AWS_ENDPOINT_URL") or None
        tokens = env.get("AETHER_API_TOKENS") or env.get("AETHER_API_TOKEN", "")
        max_run_timeout = _positive_int(env, "AETHER_RUN_MAX_TIMEOUT_SECONDS", 4 * 3600)
        run_timeout = _positive_int(env, "AETHER_RUN_TIMEOUT_SECONDS", 900)
        return cls(
            stage=stage,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            bucket=env.get("AETHER_BUCKET", f"aether-{stage}-artifacts"),
            table_prefix=env.get("AETHER_TABLE_PREFIX", f"aether-{stage}"),
            s3_endpoint_url=env.get("AETHER_S3_ENDPOINT_URL") or endpoint,
            dynamodb_endpoint_url=env.get("AETHER_DYNAMODB_ENDPOINT_URL") or endpoint,
            max_artifact_bytes=_positive_int(env, "AETHER_MAX_ARTIFACT_BYTES", GIB),
            upload_url_ttl_seconds=min(
                _positive_int(env, "AETHER_UPLOAD_URL_TTL_SECONDS", MAX_PRESIGNED_URL_SECONDS),
                MAX_PRESIGNED_URL_SECONDS,
            ),
            download_url_ttl_seconds=min(
                _positive_int(env, "AETHER_DOWNLOAD_URL_TTL_SECONDS", 300),
                MAX_PRESIGNED_URL_SECONDS,
            ),
            env_tokens=tuple(t.strip() for t in tokens.split(",") if t.strip()),
            namespace=env.get("AETHER_DEFAULT_NAMESPACE", "aether-apps"),
            kubeconfig=env.get("KUBECONFIG") or None,
            public_api_url=env.get("AETHER_PUBLIC_API_URL") or None,
            connect_timeout_seconds=_positive_int(env, "AETHER_CONNECT_TIMEOUT_SECONDS", 3),
            fetcher_image=env.get("AETHER_FETCHER_IMAGE", "aether-fetcher:1"),
            progress_deadline_seconds=_positive_int(env, "AETHER_PROGRESS_DEADLINE_SECONDS", 120),
            preview_max_ttl_seconds=_positive_int(
                env, "AETHER_PREVIEW_MAX_TTL_SECONDS", 7 * 24 * 3600
            ),
            cluster_platforms=_platforms(env, "AETHER_CLUSTER_PLATFORMS", DEFAULT_PLATFORM),
            cursor_key=_cursor_key(env, stage),
            kms_endpoint_url=env.get("AETHER_KMS_ENDPOINT_URL") or endpoint,
            config_key_id=env.get("AETHER_CONFIG_KEY_ID") or f"alias/aether-{stage}-config",
            config_mac_key_id=env.get("AETHER_CONFIG_MAC_KEY_ID")
            or f"alias/aether-{stage}-config-mac",
            oidc=OidcSettings.from_env(env),
            layer_cache_dir=_host_path(env, "AETHER_LAYER_CACHE_DIR"),
            layer_cache_max_bytes=_positive_int(env, "AETHER_LAYER_CACHE_MAX_BYTES", 4 * GIB),
            retained_releases=_positive_int(
                env, "AETHER_RETAINED_RELEASES", DEFAULT_RETAINED_RELEASES
            ),
            release_timeout_seconds=_positive_int(env, "AETHER_RELEASE_TIMEOUT_SECONDS", 600),
            run_timeout_seconds=min(run_timeout, max_run_timeout),
            max_run_timeout_seconds=max_run_timeout,
            job_ttl_seconds=_positive_int(env, "AETHER_JOB_TTL_SECONDS", 24 * 3600),
            hooks=HookSettings.from_env(env, stage, endpoint),
        )


def _host_path(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and (
        not raw.startswith("/") or posixpath.normpath(raw) != raw or raw == "/"
    ):
        raise ValueError(f"{name} must be a normalized absolute path other than /, got {raw!r}")
    return raw


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}")
    return value


def _cursor_key(env: Mapping[str, str], stage: str) -> bytes:
    """AETHER_CURSOR_SECRET; without it, a key anyone could derive, so that a cursor is still
    bound to its app and checked whole before DynamoDB sees it, only not secret."""
    secret = env.get("AETHER_CURSOR_SECRET") or f"aether-{stage}-cursors"
    return hashlib.sha256(secret.encode()).digest()


def _platforms(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    listed = tuple(p.strip() for p in (env.get(name) or default).split(",") if p.strip())
    unknown = [p for p in listed if p not in PLATFORMS]
    if unknown or not listed:
        raise ValueError(f"{name} must list platforms among {', '.join(PLATFORMS)}, got {unknown}")
    return listed
