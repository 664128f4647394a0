"""Every setting of the control plane, read from the environment once."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.contract import DEFAULT_PLATFORM, MAX_PRESIGNED_URL_SECONDS, PLATFORMS

GIB = 1024**3


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
    # What the cluster's nodes run ("os/arch"); an artifact for another platform is refused.
    cluster_platforms: tuple[str, ...]
    # Signs the page cursors the API hands out (AETHER_CURSOR_SECRET).
    cursor_key: bytes

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
            cluster_platforms=_platforms(env, "AETHER_CLUSTER_PLATFORMS", DEFAULT_PLATFORM),
            cursor_key=_cursor_key(env, stage),
        )


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
