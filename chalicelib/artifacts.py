"""Artifact records and presigned uploads; the bytes never pass through here."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import apps, contract, layers, payloads, verification
from chalicelib.auth import Principal, authorize_download
from chalicelib.contract import ArtifactKind, ArtifactStatus
from chalicelib.errors import (
    ArtifactNotVerified,
    BadSignature,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
)
from chalicelib.records import Application, Artifact, is_condition_failure, iso
from chalicelib.settings import Settings
from chalicelib.storage import ArtifactStore, PresignedRequest, artifact_key


@dataclass(frozen=True)
class UploadTicket:
    artifact: Artifact
    upload: PresignedRequest | None

    @property
    def duplicate(self) -> bool:
        return self.upload is None

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.artifact.digest,
            "key": self.artifact.key,
            "duplicate": self.duplicate,
            "upload": None if self.upload is None else self.upload.to_json(),
            "expires_at": None if self.upload is None else iso(self.upload.expires_at),
        }


def request_upload(
    principal: Principal,
    store: ArtifactStore,
    settings: Settings,
    digest_header: str | None,
    signature_header: str | None,
    body: dict[str, Any],
) -> UploadTicket:
    """``POST /artifacts``: record a pending artifact and presign its PUT."""
    digest = payloads.digest(digest_header)
    signature = _signature(signature_header)
    app = apps.load(principal, payloads.app_name(payloads.required(body, "app_name")))
    size = payloads.integer(payloads.required(body, "size_bytes"), "size_bytes", 1)
    kind = payloads.artifact_kind(payloads.optional(body, "kind"))
    if size > settings.max_artifact_bytes:
        raise PayloadTooLarge(
            f"artifact is {size} bytes; the limit is {settings.max_artifact_bytes} bytes"
        )
    if kind == ArtifactKind.MANIFEST and size > contract.MAX_MANIFEST_BYTES:
        raise PayloadTooLarge(
            f"a manifest is {size} bytes; the limit is {contract.MAX_MANIFEST_BYTES} bytes"
        )
    runtime = payloads.runtime(payloads.optional(body, "runtime"), contract.default_runtime())
    platform = payloads.platform(payloads.optional(body, "platform"))

    artifact = _pending_record(
        store, app.name, digest, size, kind, runtime, platform, signature, principal.subject
    )
    if artifact.status == ArtifactStatus.VERIFIED:
        if is_held(artifact, store):
            return UploadTicket(artifact, None)
        if artifact.status in {ArtifactStatus.REJECTED}:  # is_held may have un-verified it
            # The stored object was not the verified one and is quarantined: upload it again.
            artifact = _pending_record(
                store, app.name, digest, size, kind, runtime, platform, signature, principal.subject
            )
    upload = store.presign_upload(artifact.key, size, digest, settings.upload_url_ttl_seconds)
    return UploadTicket(artifact, upload)


def _signature(header: str | None) -> str | None:
    if header is None:
        return None
    if not re.fullmatch(contract.SIGNATURE_PATTERN, header):
        raise BadSignature("X-Aether-Signature must be 128 hexadecimal characters (Ed25519)")
    return header.lower()


def _pending_record(
    store: ArtifactStore,
    app_name: str,
    digest: str,
    size: int,
    kind: ArtifactKind,
    runtime: str,
    platform: str,
    signature: str | None,
    subject: str,
) -> Artifact:
    """The artifact's record: created pending, or the existing one for a retry."""
    fresh = Artifact(
        digest,
        app_name,
        key=artifact_key(app_name, digest, kind),
        kind=kind,
        size_bytes=size,
        runtime=runtime,
        platform=platform,
        signature_hex=signature,
        uploaded_by=subject,
    )
    try:
        fresh.save(condition=Artifact.digest.does_not_exist())
        return fresh
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
    existing = Artifact.get(digest, app_name, consistent_read=True)
    if existing.size_bytes != size:
        raise Conflict(f"size_bytes {size} differs from the {existing.size_bytes} first declared")
    if existing.granted_from is not None and not is_held(existing, store):
        # Promoted here from an app that no longer holds these bytes verified: the app's own
        # upload replaces the grant, into its own key, never into the other app's.
        fresh.save(condition=Artifact.granted_from == existing.granted_from)
        return fresh
    if existing.status == ArtifactStatus.REJECTED:
        # The rejected object sits in quarantine; a new upload starts over.
        fresh.save(condition=Artifact.status == ArtifactStatus.REJECTED)
        return fresh
    if existing.kind != kind:
        raise Conflict(f"artifact {digest[:12]}… is a {existing.kind}, not a {kind}")
    if existing.platform != platform:
        raise Conflict(f"platform {platform} differs from the {existing.platform} first declared")
    if (
        existing.status == ArtifactStatus.PENDING
        and signature
        and signature != existing.signature_hex
    ):
        existing.update(
            actions=[Artifact.signature_hex.set(signature)],
            condition=Artifact.status == ArtifactStatus.PENDING,
        )
    return existing


def find(principal: Principal, digest: str, app_name: str | None = None) -> Artifact:
    """The artifact (of ``app_name``, or of any app) that the principal may see; else 404."""
    return _visible(digest, app_name, lambda app: apps.load(principal, app))


def _visible(digest: str, app_name: str | None, authorize: Callable[[str], Any]) -> Artifact:
    payloads.digest(digest)
    if app_name is not None:
        payloads.app_name(app_name)
    candidates = (
        Artifact.query(digest, Artifact.app_name == app_name)
        if app_name is not None
        else Artifact.query(digest)
    )
    for artifact in candidates:
        try:
            authorize(artifact.app_name)
        except (NotFound, Forbidden):
            continue  # another owner's artifact is as invisible as a missing one
        return artifact
    raise NotFound(f"artifact {digest} not found")


def origin(artifact: Artifact) -> Artifact | None:
    """The record that vouches for ``artifact``: itself, or for a promotion's grant the record
    of the app that uploaded it (None once that app no longer holds it)."""
    if artifact.granted_from is None:
        return artifact
    try:
        return Artifact.get(artifact.digest, artifact.granted_from, consistent_read=True)
    except DoesNotExist:
        return None


def grant(store: ArtifactStore, artifact: Artifact, app_name: str, subject: str) -> None:
    """Let ``app_name`` run ``artifact``, verified for another app: a promotion.

    A record of it for ``app_name`` names the app that uploaded it (``granted_from``) and
    points at that app's object: nothing is copied, and that app's record alone says whether
    the bytes are verified, so a later rejection there reaches here at once. A manifest's
    layers are granted with it: the pods of ``app_name`` fetch each by digest with their own
    pull token. Bytes the app verified itself are kept; its own unverified record of them,
    or a grant from another app, is replaced, conditioned on being what was read.
    """
    uploader = origin(artifact)
    if uploader is None:
        raise ArtifactNotVerified(f"artifact {artifact.digest} is no longer held")
    granted = [uploader]
    if uploader.kind == ArtifactKind.MANIFEST:
        manifest = layers.parse(store.read_small(uploader.key, contract.MAX_MANIFEST_BYTES))
        granted += [
            Artifact.get(layer.digest, uploader.app_name, consistent_read=True)
            for layer in manifest.layers
        ]
    for record in granted:
        _grant_one(store, record, app_name, subject)


def _grant_one(store: ArtifactStore, record: Artifact, app_name: str, subject: str) -> None:
    grant = Artifact(
        record.digest,
        app_name,
        key=record.key,
        kind=record.kind,
        size_bytes=record.size_bytes,
        runtime=record.runtime,
        platform=record.platform,
        status=ArtifactStatus.VERIFIED,
        signature_hex=record.signature_hex,
        signature_state=record.signature_state,
        uploaded_by=subject,
        verified_at=record.verified_at,
        granted_from=record.app_name,
    )
    try:
        grant.save(condition=Artifact.digest.does_not_exist())
        return
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
    held = Artifact.get(record.digest, app_name, consistent_read=True)
    if held.granted_from == record.app_name:
        return
    if held.granted_from is None and is_held(held, store):
        return
    unchanged = (
        Artifact.granted_from == held.granted_from
        if held.granted_from is not None
        else Artifact.granted_from.does_not_exist() & (Artifact.status == held.status)
    )
    try:
        grant.save(condition=unchanged)
    except PutError as exc:
        if not is_condition_failure(exc):
            raise
        raise Conflict(
            f"artifact {record.digest[:12]}… of {app_name} changed meanwhile; retry"
        ) from None


def is_held(artifact: Artifact, store: ArtifactStore) -> bool:
    """Verified and present as verified; a pending upload is verified on the spot (its event
    may be lost), and a verified one whose size, checksum or version changed is hashed again.
    A grant is held while the app that uploaded the bytes holds them."""
    if artifact.granted_from is not None:
        uploader = origin(artifact)
        return uploader is not None and is_held(uploader, store)
    if artifact.status == ArtifactStatus.PENDING:
        verification.verify_artifact(store, artifact)
        artifact.refresh(consistent_read=True)
    if artifact.status != ArtifactStatus.VERIFIED:
        return False
    stored = store.stat(artifact.key)
    if stored is None:
        return False
    if not verification.is_intact(artifact, stored):
        verification.recheck_verified(store, artifact)
        artifact.refresh(consistent_read=True)
    return artifact.status == ArtifactStatus.VERIFIED


def is_deployable(artifact: Artifact, store: ArtifactStore) -> bool:
    return undeployable_because(artifact, store) is None


def is_available(artifact: Artifact, store: ArtifactStore) -> bool:
    """What ``HEAD`` and downloads answer: a layer when it is held, else when deployable.

    A layer alone never deploys, but the CLI asks which layers the platform holds, and
    the pods of a manifest fetch its layers one by one.
    """
    if artifact.kind == ArtifactKind.LAYER:
        return is_held(artifact, store)
    return is_deployable(artifact, store)


def undeployable_because(artifact: Artifact, store: ArtifactStore) -> str | None:
    """Why a deployment may not run the artifact, or None when it may.

    A manifest runs only when it and every layer it names are held and verified for its
    own app: a layer another app uploaded is that app's, never this one's, unless a
    promotion granted it (then the uploading app's records decide).
    """
    if artifact.granted_from is not None:
        uploader = origin(artifact)
        if uploader is None:
            return f"promoted from {artifact.granted_from}, which no longer holds it"
        return undeployable_because(uploader, store)
    if artifact.kind not in contract.DEPLOYABLE_KINDS:
        return f"a {artifact.kind} only runs through the manifest that names it"
    if not is_held(artifact, store):
        if artifact.status == ArtifactStatus.REJECTED:
            return f"rejected: {artifact.reason}"
        return str(artifact.status) if artifact.status != ArtifactStatus.VERIFIED else "missing"
    if artifact.kind == ArtifactKind.ARCHIVE:
        return None
    try:
        manifest = layers.parse(store.read_small(artifact.key, contract.MAX_MANIFEST_BYTES))
    except layers.MalformedManifest as exc:
        return f"its manifest is malformed: {exc}"
    for layer in manifest.layers:
        try:
            held = Artifact.get(layer.digest, artifact.app_name, consistent_read=True)
        except DoesNotExist:
            return f"its {layer.role} layer {layer.digest[:12]}… was never uploaded"
        if held.kind != ArtifactKind.LAYER or held.size_bytes != layer.size:
            return f"its {layer.role} layer {layer.digest[:12]}… is not the layer it names"
        if not is_held(held, store):
            return f"its {layer.role} layer {layer.digest[:12]}… is not verified ({held.status})"
    return None


def download(
    principal: Principal, store: ArtifactStore, settings: Settings, digest: str
) -> PresignedRequest:
    """``GET /artifacts/{digest}/download``: a short-lived presigned GET of a verified artifact."""

    def authorize(app_name: str) -> None:
        try:
            authorize_download(principal, Application.get(app_name))
        except DoesNotExist:
            raise NotFound(f"application {app_name} not found") from None

    artifact = _visible(digest, principal.app_scope, authorize)
    if not is_available(artifact, store):
        raise ArtifactNotVerified(f"artifact {digest} is not verified ({artifact.status})")
    return store.presign_download(artifact.key, settings.download_url_ttl_seconds)


def recent(principal: Principal, app_name: str | None, limit: int) -> list[Artifact]:
    visible = [apps.load(principal, app_name)] if app_name else apps.visible_to(principal)
    found: list[Artifact] = []
    for name in (app.name for app in visible):
        found.extend(Artifact.by_app.query(name, scan_index_forward=False, limit=limit))
    return sorted(found, key=lambda a: a.created_at, reverse=True)[:limit]


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    # A grant's verification is the uploading app's record's, whatever it became since.
    vouching = origin(artifact) or artifact
    return {
        "digest": artifact.digest,
        "app_name": artifact.app_name,
        "key": artifact.key,
        "size_bytes": artifact.size_bytes,
        "kind": artifact.kind,
        "runtime": artifact.runtime,
        "platform": artifact.platform,
        "status": vouching.status,
        "verified": vouching.status == ArtifactStatus.VERIFIED,
        "signature": vouching.signature_state,
        "reason": vouching.reason,
        "created_at": iso(artifact.created_at),
        "verified_at": iso(vouching.verified_at),
        "granted_from": artifact.granted_from,
    }
