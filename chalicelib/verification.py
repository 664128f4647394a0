"""Re-hash every upload and check its signature before anything may run it.

Events arrive late, twice, out of order or never; every path ends in the
same state because each transition is a conditional write from ``pending``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import single_metric
from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import contract, hooks, layers
from chalicelib.contract import (
    DEPLOYABLE_KINDS,
    ArtifactKind,
    ArtifactStatus,
    HookEvent,
    RejectionReason,
    SignatureState,
)
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.records import Application, Artifact, PublicKey, is_condition_failure, utcnow
from chalicelib.storage import ARTIFACT_PREFIX, OBJECT_NAMES, ArtifactStore, StoredObject

_KEY = re.compile(
    rf"artifacts/(?P<app>{contract.APP_NAME_PATTERN})/(?P<digest>{contract.DIGEST_PATTERN})"
    rf"/(?:{'|'.join(re.escape(name) for name in OBJECT_NAMES.values())})"
)
# While another reader hashes an object, it is usually the upload's event, a moment ahead
# on a small layer or manifest (a deploy asks right after its last upload, and waits for
# the verdict): look every 10 ms while such a hash would finish, then back off to one read
# per 100 ms for a large object.
_AWAIT_FIRST_SECONDS = 0.01
_AWAIT_FINE_FOR_SECONDS = 0.2
_AWAIT_MAX_SECONDS = 0.1


class Verdict(StrEnum):
    """What one delivery did to the object it names."""

    VERIFIED = "verified"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"  # a stray object no upload was requested for
    UNCHANGED = "unchanged"  # the record had already left pending
    MISSING = "missing"  # nothing stored yet under the key


@dataclass(frozen=True)
class Outcome:
    key: str
    status: Verdict
    reason: str | None = None


def handle_s3_event(store: ArtifactStore, event: dict[str, Any]) -> list[Outcome]:
    """The ``s3:ObjectCreated`` handler's work, record by record."""
    from aws_lambda_powertools.utilities.data_classes import S3Event

    outcomes = []
    for record in S3Event(event).records:
        if record.s3.bucket.name != store.bucket:
            logger.warning("event for another bucket", extra={"bucket": record.s3.bucket.name})
            continue
        outcomes.append(verify_key(store, unquote_plus(record.s3.get_object.key)))
    return outcomes


def verify_key(store: ArtifactStore, key: str) -> Outcome:
    """Verify the object at ``key`` against the record that asked for it."""
    match = _KEY.fullmatch(key)
    if not key.startswith(ARTIFACT_PREFIX):
        return Outcome(key, Verdict.UNCHANGED, "outside artifacts/")
    if match is None:
        return _quarantine_stray(store, key, "key does not name an app and digest")
    try:
        artifact = Artifact.get(match["digest"], match["app"], consistent_read=True)
    except DoesNotExist:
        return _quarantine_stray(store, key, "no upload was requested for this digest")
    if artifact.key != key:
        return _quarantine_stray(store, key, f"the upload requested is a {artifact.kind}")
    if artifact.status == ArtifactStatus.VERIFIED:
        # Nothing uploads to a verified key (its upload answers duplicate): a new object
        # there was written around the platform, and is suspect until hashed again.
        return recheck_verified(store, artifact)
    return verify_artifact(store, artifact)


def verify_artifact(store: ArtifactStore, artifact: Artifact) -> Outcome:
    """Hash the stored object and move the record out of ``pending`` exactly once."""
    logger.append_keys(app=artifact.app_name, digest=artifact.digest)
    if artifact.status == ArtifactStatus.VERIFIED:
        return Outcome(artifact.key, Verdict.UNCHANGED)
    if artifact.status == ArtifactStatus.REJECTED:
        # A second upload of rejected bytes without a new request: keep it out.
        if store.stat(artifact.key) is not None:
            store.quarantine(artifact.key)
        return Outcome(artifact.key, Verdict.UNCHANGED, artifact.reason)
    stored = store.stat(artifact.key)
    if stored is None:
        return Outcome(artifact.key, Verdict.MISSING)
    if not _claim_hash(artifact, stored):
        return _await_hash(artifact, stored)
    # Once per version stored (the claim above is won once): the bytes have landed.
    _announce(HookEvent.ARTIFACT_UPLOADED, artifact)

    started = time.monotonic()
    digest, size = _hash(store.read_chunks(artifact.key, version=stored))
    reason, signature_state = _problem(store, artifact, digest, size)
    if reason is None:
        outcome = _mark_verified(artifact, signature_state, size, stored)
    else:
        outcome = _mark_rejected(store, artifact, reason, signature_state)
    _log_hash(outcome, size, started)
    return outcome


def is_intact(artifact: Artifact, stored: StoredObject) -> bool:
    """Whether the stored object is still the one verified, as far as the store can tell
    without a read: same size, same checksum where the store keeps one, same version."""
    if not stored.may_hold(artifact.digest, int(artifact.size_bytes)):
        return False
    return artifact.object_version is None or artifact.object_version == stored.version


def recheck_verified(store: ArtifactStore, artifact: Artifact) -> Outcome:
    """Hash a verified artifact's object again unless it is the version already verified;
    other bytes are quarantined and the record leaves ``verified`` (the owner may upload
    again)."""
    logger.append_keys(app=artifact.app_name, digest=artifact.digest)
    stored = store.stat(artifact.key)
    if stored is None:
        return Outcome(artifact.key, Verdict.MISSING)
    if is_intact(artifact, stored) and artifact.object_version is not None:
        return Outcome(artifact.key, Verdict.UNCHANGED, "the version already verified")
    if not _claim_hash(artifact, stored):
        return _await_hash(artifact, stored)
    started = time.monotonic()
    digest, size = _hash(store.read_chunks(artifact.key, version=stored))
    if digest == artifact.digest and size == artifact.size_bytes:
        outcome = _still_verified(artifact, stored)
    else:
        reason = (
            RejectionReason.DIGEST_MISMATCH
            if digest != artifact.digest
            else RejectionReason.SIZE_MISMATCH
        )
        outcome = _unverify(store, artifact, reason)
    _log_hash(outcome, size, started)
    return outcome


def _claim_hash(artifact: Artifact, stored: StoredObject) -> bool:
    """Take the hash of this version for this reader; False when another holds it."""
    now = utcnow()
    try:
        artifact.update(
            actions=[
                Artifact.hashing_version.set(stored.version),
                Artifact.hashing_until.set(now + timedelta(seconds=contract.HASH_LEASE_SECONDS)),
            ],
            condition=(Artifact.status == artifact.status)
            & (
                Artifact.hashing_version.does_not_exist()
                | (Artifact.hashing_version != stored.version)
                | (Artifact.hashing_until < now)
            ),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def _await_hash(artifact: Artifact, stored: StoredObject) -> Outcome:
    """Wait for the reader hashing this version to record its verdict, bounded by its lease."""
    status = artifact.status
    began = time.monotonic()
    deadline = began + contract.HASH_LEASE_SECONDS
    delay = _AWAIT_FIRST_SECONDS
    while time.monotonic() < deadline:
        time.sleep(delay)
        if time.monotonic() - began > _AWAIT_FINE_FOR_SECONDS:
            delay = min(delay * 2, _AWAIT_MAX_SECONDS)
        try:
            artifact.refresh(consistent_read=True)
        except DoesNotExist:
            break
        if artifact.status != status or artifact.hashing_version != stored.version:
            break
    return Outcome(artifact.key, Verdict.UNCHANGED, "hashed by another reader")


def _still_verified(artifact: Artifact, stored: StoredObject) -> Outcome:
    try:
        artifact.update(
            actions=[
                Artifact.object_version.set(stored.version),
                Artifact.hashing_version.remove(),
                Artifact.hashing_until.remove(),
            ],
            condition=Artifact.status == ArtifactStatus.VERIFIED,
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
    return Outcome(artifact.key, Verdict.UNCHANGED, "the same bytes")


def _unverify(store: ArtifactStore, artifact: Artifact, reason: RejectionReason) -> Outcome:
    return _reject(
        store,
        artifact,
        reason,
        was=ArtifactStatus.VERIFIED,
        also=[Artifact.verified_at.remove()],
        message="a verified artifact was overwritten in storage",
        counted_as="overwritten",
    )


def _log_hash(outcome: Outcome, size: int, started: float) -> None:
    logger.info(
        "artifact verification",
        extra={
            "outcome": outcome.status,
            "reason": outcome.reason,
            "bytes": size,
            "seconds": round(time.monotonic() - started, 3),
        },
    )


def _hash(chunks: Iterable[bytes]) -> tuple[str, int]:
    sha256 = hashlib.sha256()
    size = 0
    for chunk in chunks:
        sha256.update(chunk)
        size += len(chunk)
    return sha256.hexdigest(), size


def _problem(
    store: ArtifactStore, artifact: Artifact, digest: str, size: int
) -> tuple[RejectionReason | None, SignatureState]:
    """Why the bytes may not run (``None`` when they may), and the signature state."""
    if digest != artifact.digest:
        return RejectionReason.DIGEST_MISMATCH, artifact.signature_state
    if size != artifact.size_bytes:
        return RejectionReason.SIZE_MISMATCH, artifact.signature_state
    if artifact.kind == ArtifactKind.LAYER:
        # Runs only through a manifest naming its digest; that manifest's signature covers it.
        return None, SignatureState.ABSENT
    if artifact.kind == ArtifactKind.MANIFEST:
        reason = manifest_problem(store, artifact)
        if reason is not None:
            return reason, artifact.signature_state
    if artifact.signature_hex is None:
        app = Application.get(artifact.app_name)
        unsigned = RejectionReason.UNSIGNED if app.require_signature else None
        return unsigned, SignatureState.ABSENT
    if _signed_by_active_key(artifact.app_name, artifact.digest, artifact.signature_hex):
        return None, SignatureState.VALID
    return RejectionReason.BAD_SIGNATURE, SignatureState.INVALID


def manifest_problem(store: ArtifactStore, artifact: Artifact) -> RejectionReason | None:
    """Why a stored manifest can never deploy its app, or None when it could."""
    try:
        manifest = layers.parse(store.read_small(artifact.key, contract.MAX_MANIFEST_BYTES))
    except layers.MalformedManifest as exc:
        logger.warning("malformed manifest", extra={"why": str(exc)})
        return RejectionReason.MALFORMED_MANIFEST
    if manifest.app != artifact.app_name:
        # The signature covers the manifest, which names its app: never valid for another.
        return RejectionReason.APP_MISMATCH
    return None


def _signed_by_active_key(app_name: str, digest: str, signature_hex: str) -> bool:
    signer = _signer(app_name, digest, signature_hex)
    return signer is not None and signer.active


def _signer(app_name: str, digest: str, signature_hex: str) -> PublicKey | None:
    """The app's key, active or not, whose signature over ``digest`` this is; an active one
    first when several verify."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    signature = bytes.fromhex(signature_hex)
    keys = sorted(PublicKey.query(app_name), key=lambda key: not key.active)
    for key in keys:
        try:
            VerifyKey(bytes.fromhex(key.public_key_hex)).verify(digest.encode(), signature)
        except BadSignatureError:
            continue
        return key
    return None


def signature_problem(artifact: Artifact) -> str | None:
    """Why the signature that verified ``artifact`` no longer vouches for it, else None.

    Trust is asked again whenever the artifact is about to run (a deployment or a
    rollback): a key deactivated since takes every artifact it signed out of service.
    """
    if artifact.signature_state != SignatureState.VALID or artifact.signature_hex is None:
        return None
    signer = _signer(artifact.app_name, artifact.digest, artifact.signature_hex)
    if signer is None:
        return "no registered public key verifies its signature any more"
    if not signer.active:
        return f"it is signed by public key {signer.key_id}, which has been deactivated"
    return None


def _mark_verified(
    artifact: Artifact, signature_state: SignatureState, size: int, stored: StoredObject
) -> Outcome:
    now = utcnow()
    try:
        artifact.update(
            actions=[
                Artifact.status.set(ArtifactStatus.VERIFIED),
                Artifact.signature_state.set(signature_state),
                Artifact.verified_at.set(now),
                Artifact.reason.remove(),
                Artifact.object_version.set(stored.version),
                Artifact.hashing_version.remove(),
                Artifact.hashing_until.remove(),
            ],
            condition=Artifact.status == ArtifactStatus.PENDING,
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            return Outcome(artifact.key, Verdict.UNCHANGED)  # another delivery got there first
        raise
    metrics.add_metric("artifacts_total", MetricUnit.Count, 1)
    metrics.add_metric("artifact_upload_bytes_total", MetricUnit.Bytes, size)
    metrics.add_metric(
        "artifact_upload_duration_seconds",
        MetricUnit.Seconds,
        (now - artifact.created_at).total_seconds(),
    )
    _count_outcome(Verdict.VERIFIED)
    _announce(HookEvent.ARTIFACT_VERIFIED, artifact)
    return Outcome(artifact.key, Verdict.VERIFIED)


def _mark_rejected(
    store: ArtifactStore,
    artifact: Artifact,
    reason: RejectionReason,
    signature_state: SignatureState,
) -> Outcome:
    return _reject(
        store,
        artifact,
        reason,
        was=ArtifactStatus.PENDING,
        also=[Artifact.signature_state.set(signature_state)],
        message="artifact rejected",
        counted_as=reason,
    )


def _reject(
    store: ArtifactStore,
    artifact: Artifact,
    reason: RejectionReason,
    *,
    was: ArtifactStatus,
    also: list[Any],
    message: str,
    counted_as: str,
) -> Outcome:
    """``was`` → rejected by a conditional write, then the object to quarantine: a record
    that moved meanwhile is another writer's to settle."""
    try:
        artifact.update(
            actions=[
                Artifact.status.set(ArtifactStatus.REJECTED),
                Artifact.reason.set(reason),
                *also,
                Artifact.hashing_version.remove(),
                Artifact.hashing_until.remove(),
            ],
            condition=Artifact.status == was,
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
        return Outcome(artifact.key, Verdict.UNCHANGED)
    # The record already says rejected, so nothing deploys it even if this fails.
    store.quarantine(artifact.key)
    logger.warning(message, extra={"reason": reason})
    _count_outcome(counted_as)
    _announce(HookEvent.ARTIFACT_REJECTED, artifact, reason)
    return Outcome(artifact.key, Verdict.REJECTED, reason)


def _announce(event: HookEvent, artifact: Artifact, reason: str | None = None) -> None:
    """Tell the app's hooks, for what a deployment runs: a layer only runs through the
    manifest naming it, whose own events say what became of it."""
    if artifact.kind in DEPLOYABLE_KINDS:
        hooks.emit(event, artifact.app_name, digest=artifact.digest, reason=reason)


def _quarantine_stray(store: ArtifactStore, key: str, why: str) -> Outcome:
    if store.stat(key) is not None:
        store.quarantine(key)
    logger.warning("unexpected upload quarantined", extra={"key": key, "why": why})
    _count_outcome("unexpected")
    return Outcome(key, Verdict.QUARANTINED, why)


def _count_outcome(outcome: str) -> None:
    with single_metric(
        name="artifact_verifications", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
    ) as metric:
        metric.add_dimension(name="outcome", value=outcome)
