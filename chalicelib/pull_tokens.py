"""The tokens an app's pods download its artifacts with: one live per app, in its Secret.

Every token issued here ends either in the app's Secret, as the app's recorded token, or
revoked. Two systems hold a pull token (the Secret in the cluster and the app's record), so
writes to them are serialised per app by a lease on the app's record, taken and released with
conditional writes: of concurrent rollouts, one writes the Secret at a time and the others wait
their turn (``Busy``), instead of interleaving so that the Secret keeps a token the record
forgot or revoked.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib import auth, contract
from chalicelib.auth import IssuedToken, Principal
from chalicelib.contract import Role
from chalicelib.errors import Forbidden
from chalicelib.records import ApiToken, Application, is_condition_failure, iso, utcnow


class Busy(Exception):
    """Another writer holds the app's pull Secret; try again shortly."""


@dataclass
class _Lease:
    owner: str
    # The app as the lease's own write left it: while the lease is held, nobody else
    # changes its pull token, so no second read is needed for the one being replaced.
    app: Application
    released: bool = False


@contextmanager
def _leased(app_name: str) -> Iterator[_Lease]:
    owner = secrets.token_hex(8)
    now = utcnow()
    app = Application(app_name)
    try:
        app.update(
            actions=[
                Application.pull_lock_owner.set(owner),
                Application.pull_lock_until.set(
                    now + timedelta(seconds=contract.PULL_LOCK_SECONDS)
                ),
            ],
            # An app being destroyed gets no Secret, hence no workload: the teardown removes
            # what is there, and nothing writes behind it.
            condition=Application.name.exists()
            & Application.destroying_since.does_not_exist()
            & (Application.pull_lock_until.does_not_exist() | (Application.pull_lock_until < now)),
        )
    except UpdateError as exc:
        if is_condition_failure(exc):
            raise Busy(f"another rollout of {app_name} is writing its pull token") from None
        raise
    lease = _Lease(owner, app)
    try:
        yield lease
    finally:
        if not lease.released:
            try:
                Application(app_name).update(
                    actions=[
                        Application.pull_lock_owner.remove(),
                        Application.pull_lock_until.remove(),
                    ],
                    condition=Application.pull_lock_owner == owner,
                )
            except UpdateError as exc:
                if not is_condition_failure(exc):
                    raise  # a lease that ran out was taken over; the next holder releases it


def replace(app_name: str, write_secret: Callable[[str], None]) -> IssuedToken:
    """Issue a new pull token, have ``write_secret`` put it in the app's Secret, then make it
    the app's token and revoke the one it replaces.

    If the write fails (the cluster is unreachable or refuses), the new token is revoked and
    the app keeps its previous one. Raises ``Busy`` while another writer holds the Secret.
    """
    with _leased(app_name) as lease:
        issued = auth.issue_token(
            f"puller:{app_name}",
            Role.PULLER,
            expires_at=utcnow() + timedelta(days=contract.PULL_TOKEN_DAYS),
            app_scope=app_name,
        )
        try:
            write_secret(issued.secret)
        except BaseException:
            _revoke(issued.record.token_id)
            raise
        previous = lease.app.pull_token_id
        try:
            # The token and the lease's end in one write, on the condition that the lease
            # is still this writer's.
            Application(app_name).update(
                actions=[
                    Application.pull_token_id.set(issued.record.token_id),
                    Application.pull_lock_owner.remove(),
                    Application.pull_lock_until.remove(),
                ],
                condition=Application.pull_lock_owner == lease.owner,
            )
            lease.released = True
        except UpdateError as exc:
            # The lease ran out and another writer holds the Secret now: it replaces this
            # token there, so this one must not stay live.
            _revoke(issued.record.token_id)
            if is_condition_failure(exc):
                lease.released = True  # it is the other writer's to release
                raise Busy(f"another rollout of {app_name} took over its pull token") from None
            raise
    if previous is not None and previous != issued.record.token_id:
        _revoke(previous)
    return issued


def needs_rotation(app: Application) -> bool:
    """Whether the app's pull token has lived half its lifetime (or has none recorded)."""
    if app.pull_token_id is None:
        return False
    try:
        token = ApiToken.get(app.pull_token_id)
    except DoesNotExist:
        return True
    if token.revoked or token.expires_at is None:
        return True
    left = token.expires_at - utcnow()
    return left < timedelta(days=contract.PULL_TOKEN_DAYS / 2)


def _revoke(token_id: str) -> None:
    ApiToken(token_id).update(actions=[ApiToken.revoked.set(True)])


def list_for(principal: Principal, app_name: str | None) -> list[dict[str, Any]]:
    """``GET /pull-tokens``: every pull token's metadata, for admins; never a secret."""
    auth.require_human(principal)
    if not principal.is_admin:
        raise Forbidden("only admins may list pull tokens")
    current = {app.name: app.pull_token_id for app in Application.scan()}
    condition = ApiToken.role == Role.PULLER
    if app_name is not None:
        condition = condition & (ApiToken.app_scope == app_name)
    found = sorted(ApiToken.scan(condition), key=lambda token: token.created_at)
    now = utcnow()
    return [
        {
            "token_id": token.token_id,
            "app_name": token.app_scope,
            "created_at": iso(token.created_at),
            "expires_at": iso(token.expires_at),
            "revoked": token.revoked,
            "expired": token.expires_at is not None and token.expires_at <= now,
            "current": current.get(token.app_scope or "") == token.token_id,
        }
        for token in found
    ]
