"""Retention: which releases can still be rolled back to, and reclaiming the artifacts of the rest.

An app keeps the artifacts of its last ``retained`` releases (``Settings.retained_releases``),
of the release that serves (its newest that succeeded, however old) and of any release in
flight: ``kept_digests``. A release whose artifact is among them can be rolled back to; any
other cannot (410 ``not_retained``), and the reconciler reclaims its artifact, the object and
then the record (``reclaim_all``). Both read the same rule, so a release said to be available
is one whose artifact is never reclaimed.

An artifact belongs to one app (``artifacts/<app>/<digest>/...``), so an app reclaims only its
own: the same digest under another app is another record and another object, kept by that
app's releases; and one another app was promoted with (a grant naming this app) is kept
while that grant stands (``let_go``). Reclaimed too are the layers that no remaining manifest of the app names, and
an upload that was never released, once it is older than the oldest retained release (a
deploy uploads its artifact just before cutting its release). A rejected upload's record is
reclaimed the same way; its quarantined object expires by the bucket's lifecycle rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pynamodb.exceptions import DeleteError, UpdateError

from chalicelib import contract, layers
from chalicelib.contract import IN_FLIGHT, ArtifactKind, ArtifactStatus, DeploymentStatus
from chalicelib.observability import logger
from chalicelib.records import Application, Artifact, Deployment, is_condition_failure
from chalicelib.storage import ArtifactStore, artifact_key


def kept_digests(app_name: str, retained: int) -> frozenset[str]:
    """The artifacts the app's releases may still run: what rollback and reclaiming agree on."""
    return _kept(_history(app_name), retained)


def _history(app_name: str) -> list[Deployment]:
    return list(Deployment.by_app.query(app_name, scan_index_forward=False))


def _kept(history: Sequence[Deployment], retained: int) -> frozenset[str]:
    kept = {release.artifact_digest for release in history[:retained]}
    kept |= {release.artifact_digest for release in history if release.status in IN_FLIGHT}
    serving = next((r for r in history if r.status == DeploymentStatus.SUCCEEDED), None)
    if serving is not None:
        kept.add(serving.artifact_digest)
    return frozenset(kept)


def reclaim_all(store: ArtifactStore, retained: int) -> int:
    """The schedule's work: every app's artifacts that no kept release runs; how many went.

    An app is looked at again only once a release was cut since it was last reclaimed
    (``Application.reclaimed_at_release``): until then nothing more fell out of retention.
    """
    reclaimed = 0
    for app in Application.scan():
        if app.destroying_since is not None or app.release_count is None:
            continue  # its teardown removes everything; or it never released
        if app.reclaimed_at_release == app.release_count:
            continue
        try:
            reclaimed += reclaim(store, app.name, retained)
        except Exception:
            logger.exception("reclaiming artifacts failed", extra={"app": app.name})
            continue
        _note_reclaimed(app.name, int(app.release_count))
    return reclaimed


def reclaim(store: ArtifactStore, app_name: str, retained: int) -> int:
    """Delete the app's artifacts that no kept release runs, nor any remaining manifest names."""
    history = _history(app_name)
    if len(history) <= retained:
        return 0
    kept = _kept(history, retained)
    # Younger than the oldest retained release: an upload a deploy may be about to release.
    cutoff = history[retained - 1].created_at
    held: list[Artifact] = list(Artifact.by_app.query(app_name))

    def unkept(artifact: Artifact) -> bool:
        return artifact.digest not in kept and artifact.created_at < cutoff

    runnable = [a for a in held if a.kind != ArtifactKind.LAYER]
    doomed = [a for a in runnable if unkept(a)]
    named = _layers_named(store, [a for a in runnable if a.kind == ArtifactKind.MANIFEST], doomed)
    if named is not None:
        doomed += [
            a for a in held if a.kind == ArtifactKind.LAYER and a.digest not in named and unkept(a)
        ]
    for artifact in doomed:
        _delete(store, artifact)
    if doomed:
        logger.info("artifacts reclaimed", extra={"app": app_name, "count": len(doomed)})
    return len(doomed)


def _layers_named(
    store: ArtifactStore, manifests: list[Artifact], doomed: list[Artifact]
) -> set[str] | None:
    """The layers the manifests that stay name; None when one of them cannot be read yet
    (an upload under way): then no layer is reclaimed this time."""
    leaving = {a.digest for a in doomed}
    named: set[str] = set()
    for manifest in manifests:
        if manifest.digest in leaving or manifest.status == ArtifactStatus.REJECTED:
            continue  # a rejected manifest never runs: what it names is not kept for it
        try:
            parsed = layers.parse(store.read_small(manifest.key, contract.MAX_MANIFEST_BYTES))
        except layers.MalformedManifest:
            continue  # it will be rejected; it runs nothing
        except Exception as exc:
            if _is_missing(exc) and manifest.status == ArtifactStatus.VERIFIED:
                continue  # its object is gone: it can never run again
            return None
        named |= {layer.digest for layer in parsed.layers}
    return named


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in {
        "404",
        "NoSuchKey",
        "NotFound",
    }


def _delete(store: ArtifactStore, artifact: Artifact) -> None:
    """The object first: a record left behind by a crash is never deployable without it, and
    the next run deletes it. The record goes only in the state it was read in; one another
    app was promoted with stays."""
    if not let_go(store, artifact, hand_over=False):
        return
    try:
        artifact.delete(condition=Artifact.status == artifact.status)
    except DeleteError as exc:
        if not is_condition_failure(exc):
            raise  # a condition failure: uploaded again meanwhile, and it stays


def let_go(store: ArtifactStore, artifact: Artifact, *, hand_over: bool) -> bool:
    """Make ready to delete the record of ``artifact``: delete its object unless another
    record still needs it; False when the record must stay.

    A promotion grants the same bytes to another app through a record naming this one
    (``granted_from``) and this app's object. Such a record keeps the artifact: reclaiming
    leaves it (False), and a teardown (``hand_over``) makes the first such app its uploader,
    the object copied under that app's own name and the other grants pointed at it, so that
    the bytes outlive this app and whoever registers its name next never holds them.
    """
    others = [r for r in Artifact.query(artifact.digest) if r.app_name != artifact.app_name]
    dependents = [r for r in others if r.granted_from == artifact.app_name]
    if dependents:
        if not hand_over:
            return False
        _hand_over(store, artifact, dependents)
    # A grant this app holds points at its uploader's object: never this app's to delete.
    if artifact.granted_from is None:
        store.delete(artifact_key(artifact.app_name, artifact.digest, artifact.kind))
    return True


def _hand_over(store: ArtifactStore, artifact: Artifact, dependents: list[Artifact]) -> None:
    """The first dependent becomes the uploader of a copy; unverified bytes are not handed
    over (the grants then say their uploader no longer holds them). Each write is conditioned
    on the grant still naming this app."""
    from chalicelib.artifacts import is_held

    if not is_held(artifact, store):
        return
    heir, *rest = dependents
    key = artifact_key(heir.app_name, artifact.digest, artifact.kind)
    store.copy(artifact.key, key)
    copied = store.stat(key)
    still_granted = Artifact.granted_from == artifact.app_name
    _update_if(
        heir,
        [
            Artifact.granted_from.remove(),
            Artifact.key.set(key),
            Artifact.object_version.set(copied.version)
            if copied is not None
            else Artifact.object_version.remove(),
        ],
        still_granted,
    )
    for grant in rest:
        _update_if(
            grant, [Artifact.granted_from.set(heir.app_name), Artifact.key.set(key)], still_granted
        )


def _update_if(artifact: Artifact, actions: list[Any], condition: Any) -> None:
    try:
        artifact.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise


def _note_reclaimed(app_name: str, release_count: int) -> None:
    """Conditioned on the app being there and not destroyed: never brings a record back."""
    try:
        Application(app_name).update(
            actions=[Application.reclaimed_at_release.set(release_count)],
            condition=Application.name.exists() & Application.destroying_since.does_not_exist(),
        )
    except UpdateError as exc:
        if not is_condition_failure(exc):
            raise
