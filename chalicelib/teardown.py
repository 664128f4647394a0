"""Destroying an app: its workload, Secrets, pull tokens, records and artifacts, then its name.

``destroy`` is the one teardown: the ``DELETE /apps/{app}`` route, the reconciler finishing a
teardown that stopped half-way, and whatever else ends an app (an expired preview) call it.

Two systems and two stores hold an app, and a request can die between any two deletes, so
the teardown is a sequence of steps that each may run again:

1. mark the application ``destroying`` with a conditional write (the record must exist, so a
   teardown never brings a deleted record back). From then on no release is cut (the release
   transaction is conditioned on the mark's absence), no pull Secret is written (nor, since
   the Secret goes first, any workload applied: ``pull_tokens``' lease is conditioned on it
   too), and the routes that act on an app answer 409;
2. delete the Deployment, the Service and every Secret of the app (404s are no error);
3. delete the app's pull tokens, its releases with their events, its public keys, and its
   artifacts: the object first, then the record, so a record never outlives its object
   unnoticed (a verified record without its object is never deployable); then queue
   ``app.destroyed`` for the app's hooks and the global ones, and delete the app's hooks
   (a teardown run again sends it again, to the global ones);
4. delete the application record, conditioned on the mark: the name is free only now.

A teardown that stopped after the mark leaves the app ``destroying``; ``DELETE`` again, or
the reconciler's ``resume_all``, runs it again from step 2.

Another app's artifacts are never touched: an artifact record and its object belong to one
app (``artifacts/<app>/<digest>/...``), so the same digest under another app is another
record and another object. One another app was promoted with (its grant names this app) is
handed over to that app before this app's record goes, so it keeps running there. A rejected
upload's quarantined object stays where it is: the control plane may only write to
``quarantine/``, and the bucket's lifecycle rule expires it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DeleteError, UpdateError

from chalicelib import apps, hooks, kube, retention
from chalicelib.auth import Principal
from chalicelib.contract import Role
from chalicelib.errors import NotFound
from chalicelib.observability import logger
from chalicelib.records import (
    ApiToken,
    Application,
    Artifact,
    Deployment,
    DeploymentEvent,
    PublicKey,
    is_condition_failure,
    utcnow,
)
from chalicelib.storage import ArtifactStore


@dataclass(frozen=True)
class Removed:
    """What one teardown deleted (a resumed one counts only what was left)."""

    app_name: str
    releases: int
    artifacts: int
    pull_tokens: int
    public_keys: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.app_name,
            "destroyed": True,
            "removed": {
                "releases": self.releases,
                "artifacts": self.artifacts,
                "pull_tokens": self.pull_tokens,
                "public_keys": self.public_keys,
            },
        }


def destroy_for(
    principal: Principal, cluster: kube.Cluster | None, store: ArtifactStore, app_name: str
) -> Removed:
    """``DELETE /apps/{app}``: the owner's (or an admin's) teardown, also of one under way."""
    app = apps.authorized(principal, app_name)
    return destroy(cluster, store, app.name)


def destroy(cluster: kube.Cluster | None, store: ArtifactStore, app_name: str) -> Removed:
    """Remove everything of ``app_name`` and free its name; 404 when there is no such app.

    Safe to call again after any failure (the cluster unreachable, a timeout): it resumes.
    Without a cluster configured nothing was ever applied, so there is nothing to delete there.
    """
    _mark_destroying(app_name)
    if cluster is not None:
        cluster.remove_app(app_name)
    pull = _delete_pull_tokens(app_name)
    releases = _delete_releases(app_name)
    keys = _delete_all(PublicKey.query(app_name))
    artifacts = _delete_artifacts(store, app_name)
    # Its hooks are told, then deleted: a new app of the same name must not inherit them.
    hooks.app_destroyed(app_name)
    try:
        Application(app_name).delete(condition=Application.destroying_since.exists())
    except DeleteError as exc:
        if not is_condition_failure(exc):
            raise  # a condition failure: another teardown deleted it first
    logger.info("app destroyed", extra={"app": app_name})
    return Removed(app_name, releases, artifacts, pull, keys)


def resume_all(cluster: kube.Cluster | None, store: ArtifactStore) -> int:
    """The schedule's work: finish every teardown that stopped half-way."""
    finished = 0
    for app in Application.scan(Application.destroying_since.exists()):
        try:
            destroy(cluster, store, app.name)
        except NotFound:
            continue  # finished meanwhile
        except Exception as exc:
            if kube.is_unavailable(exc):
                break  # the cluster is down for everyone; the next run retries
            logger.exception("finishing a teardown failed", extra={"app": app.name})
            continue
        finished += 1
    return finished


def _mark_destroying(app_name: str) -> None:
    """The first step: conditioned on the record existing; a second mark keeps the first time."""
    try:
        Application(app_name).update(
            actions=[
                Application.destroying_since.set(
                    Application.destroying_since | utcnow()  # if_not_exists
                )
            ],
            condition=Application.name.exists(),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            raise NotFound(f"application {app_name} not found") from None
        raise


def _delete_pull_tokens(app_name: str) -> int:
    """After the Secret that held the current one is gone: none of them fetches anything."""
    scoped = ApiToken.scan((ApiToken.role == Role.PULLER) & (ApiToken.app_scope == app_name))
    return _delete_all(scoped)


def _delete_releases(app_name: str) -> int:
    """Each release's events, then the release (its sealed config goes with it)."""
    count = 0
    release: Deployment
    for release in Deployment.by_app.query(app_name):
        _delete_all(DeploymentEvent.query(release.deployment_id))
        release.delete()
        count += 1
    return count


def _delete_artifacts(store: ArtifactStore, app_name: str) -> int:
    """Every record goes (the name's next owner must hold none); an artifact another app
    was promoted with is handed over to it first (``retention.let_go``)."""
    count = 0
    artifact: Artifact
    for artifact in Artifact.by_app.query(app_name):
        retention.let_go(store, artifact, hand_over=True)
        artifact.delete()
        count += 1
    return count


def _delete_all(items: Any) -> int:
    count = 0
    for item in items:
        item.delete()
        count += 1
    return count
