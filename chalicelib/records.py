"""DynamoDB records: the pynamodb models are the only description of each table.

pynamodb models are module-level classes, so the stage's tables and endpoint
are given to all of them at once by ``configure(settings)``, which the app
calls once where it builds its other clients.

State changes are named functions that carry their DynamoDB condition, so a
wrong transition fails in DynamoDB instead of being checked here and raced.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.constants import STRING
from pynamodb.exceptions import PynamoDBException
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.contract import (
    DEFAULT_PLATFORM,
    ArtifactKind,
    ArtifactStatus,
    DeliveryStatus,
    DeploymentStatus,
    Role,
    SignatureState,
)
from chalicelib.settings import Settings

_State = TypeVar("_State", bound=StrEnum)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``, as every API response writes times."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


class EnumAttribute(Attribute[_State]):
    """A StrEnum stored as its string and read back as the enum: an unknown value fails loudly."""

    attr_type = STRING

    def __init__(self, states: type[_State], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.states = states

    def serialize(self, value: _State) -> str:
        return self.states(value).value

    def deserialize(self, value: str) -> _State:
        return self.states(value)


class _Table(Model):
    """Common table settings; ``configure`` fills in names and endpoint per stage."""

    class Meta:
        abstract = True
        table_name = ""
        region = "us-east-1"
        host: str | None = None
        connect_timeout_seconds = 3
        max_retry_attempts = 2


class _ByAppIndex(GlobalSecondaryIndex[Any]):
    """Items of one application, newest first when queried backwards."""

    class Meta:
        index_name = "by_app"
        projection = AllProjection()

    app_name = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class Application(_Table):
    class Meta(_Table.Meta):
        table_name = "applications"

    name = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    require_signature = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute(default=utcnow)
    latest_deployment_id = UnicodeAttribute(null=True)
    # The deployment that holds the "same request while in flight" slot.
    inflight_config_key = UnicodeAttribute(null=True)
    inflight_deployment_id = UnicodeAttribute(null=True)
    # The token pods of this app fetch artifacts with (in the cluster's Secret).
    pull_token_id = UnicodeAttribute(null=True)
    # Who is writing the app's pull Secret, and until when: one writer at a time.
    pull_lock_owner = UnicodeAttribute(null=True)
    pull_lock_until = UTCDateTimeAttribute(null=True)
    # The version of the app's newest release; bumped only by a write conditioned on its
    # previous value, so two releases never share a number. Absent before the first.
    release_count = NumberAttribute(null=True)
    # Set once by ``teardown.destroy`` (a conditional write), before anything is removed: from
    # then on nothing releases, applies or writes a pull Secret for the app, and a teardown
    # that stopped half-way is finished by a retry or the reconciler. The name is free again
    # only once this record is deleted, the last step.
    destroying_since = UTCDateTimeAttribute(null=True)
    # ``release_count`` when ``retention`` last reclaimed the app's unretained artifacts:
    # until another release is cut, nothing more can have fallen out of retention.
    reclaimed_at_release = NumberAttribute(null=True)
    # A preview: the app its first release copied config from, and when the reconciler
    # destroys it (moved later by another ``aether deploy --preview``).
    preview_of = UnicodeAttribute(null=True)
    expires_at = UTCDateTimeAttribute(null=True)


class ArtifactsByApp(_ByAppIndex):
    pass


class Artifact(_Table):
    class Meta(_Table.Meta):
        table_name = "artifacts"

    # Same bytes under two apps are two artifacts: each app verifies and owns its own.
    digest = UnicodeAttribute(hash_key=True)
    app_name = UnicodeAttribute(range_key=True)
    key = UnicodeAttribute()
    size_bytes = NumberAttribute()
    runtime = UnicodeAttribute()
    # "os/arch" the artifact was built for; older records read as the default platform.
    platform = UnicodeAttribute(default=DEFAULT_PLATFORM)
    # Records from before layered artifacts read as the single archive they are.
    kind = EnumAttribute(ArtifactKind, default=ArtifactKind.ARCHIVE)
    status = EnumAttribute(ArtifactStatus, default=ArtifactStatus.PENDING)
    reason = UnicodeAttribute(null=True)
    signature_hex = UnicodeAttribute(null=True)
    signature_state = EnumAttribute(SignatureState, default=SignatureState.ABSENT)
    uploaded_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(default=utcnow)
    verified_at = UTCDateTimeAttribute(null=True)
    # The stored version (``StoredObject.version``) whose bytes were hashed and verified.
    object_version = UnicodeAttribute(null=True)
    # A hash under way: of which version, and until when other readers wait for its verdict.
    hashing_version = UnicodeAttribute(null=True)
    hashing_until = UTCDateTimeAttribute(null=True)
    # A promotion's grant: this app may run the verified artifact of the app named here, which
    # uploaded it. ``key`` is that app's object; its record alone says whether it is verified.
    granted_from = UnicodeAttribute(null=True)
    by_app = ArtifactsByApp()


class DeploymentsByApp(_ByAppIndex):
    pass


class Deployment(_Table):
    class Meta(_Table.Meta):
        table_name = "deployments"

    deployment_id = UnicodeAttribute(hash_key=True)
    app_name = UnicodeAttribute()
    artifact_digest = UnicodeAttribute()
    artifact_kind = EnumAttribute(ArtifactKind, default=ArtifactKind.ARCHIVE)
    status = EnumAttribute(DeploymentStatus, default=DeploymentStatus.PENDING)
    reason = UnicodeAttribute(null=True)
    runtime = UnicodeAttribute()
    platform = UnicodeAttribute(default=DEFAULT_PLATFORM)
    start_command = UnicodeAttribute()
    env = MapAttribute[str, Any](default=dict)
    replicas = NumberAttribute(default=1)
    config_key = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(default=utcnow)
    updated_at = UTCDateTimeAttribute(default=utcnow)
    url = UnicodeAttribute(null=True)
    rollback_of = UnicodeAttribute(null=True)
    # A deployment is a release of its app: v<version>, and what changed in one line.
    # Deployments recorded before releases had neither.
    version = NumberAttribute(null=True)
    description = UnicodeAttribute(null=True)
    # The config's values, sealed (``config_vault``); ``env`` holds them in the clear only
    # in records written before config was sealed. ``env_names`` are shown, never values.
    config_sealed = UnicodeAttribute(null=True)
    env_names = UnicodeSetAttribute(null=True)
    # Which of the config's names, the start command and the replicas came from the
    # project's defaults (its aether.toml, its package.json) rather than being set: a later
    # deploy takes the defaults it brings for those, and keeps what was set.
    default_env_names = UnicodeSetAttribute(null=True)
    start_command_set = BooleanAttribute(null=True)
    replicas_set = BooleanAttribute(null=True)
    # When this release's pods were last replaced by a restart.
    restarted_at = UTCDateTimeAttribute(null=True)
    # When its workload was applied: a release claimed for rolling out without it is still
    # being applied by the claimer.
    applied_at = UTCDateTimeAttribute(null=True)
    # Run once, as a Job, before the rollout (``releasing``); persists as the start command
    # does. A scale, which changes nothing the command could depend on, does not run it.
    release_command = UnicodeAttribute(null=True)
    release_command_set = BooleanAttribute(null=True)
    skips_release_command = BooleanAttribute(null=True)
    by_app = DeploymentsByApp()

    def legacy_env(self) -> dict[str, str]:
        """Values stored in the clear by records written before config was sealed."""
        env = self.env
        return dict(env.as_dict() if isinstance(env, MapAttribute) else env)

    def config_names(self) -> list[str]:
        return sorted(self.env_names or ()) if self.config_sealed else sorted(self.legacy_env())


class DeploymentEvent(_Table):
    class Meta(_Table.Meta):
        table_name = "deployment_events"

    deployment_id = UnicodeAttribute(hash_key=True)
    # "<RFC 3339 timestamp>#<short id>": sorts by time, unique per writer.
    event_key = UnicodeAttribute(range_key=True)
    phase = UnicodeAttribute()
    message = UnicodeAttribute()
    timestamp = UTCDateTimeAttribute()


def event_key(moment: datetime, identity: str) -> str:
    """Sorts by time at a fixed precision, so whole-second and finer stamps interleave right."""
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}#{identity}"


class PublicKey(_Table):
    class Meta(_Table.Meta):
        table_name = "public_keys"

    app_name = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute(range_key=True)
    public_key_hex = UnicodeAttribute()
    active = BooleanAttribute(default=True)
    created_at = UTCDateTimeAttribute(default=utcnow)


class ApiToken(_Table):
    class Meta(_Table.Meta):
        table_name = "api_tokens"

    token_id = UnicodeAttribute(hash_key=True)
    token_sha256 = UnicodeAttribute()
    subject = UnicodeAttribute()
    role = EnumAttribute(Role)
    # Set for pull tokens: the token may only download this app's artifacts.
    app_scope = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(default=utcnow)
    expires_at = UTCDateTimeAttribute(null=True)
    revoked = BooleanAttribute(default=False)
    # The stored token that issued this one: it never outlives it, and is revoked with it.
    parent_token_id = UnicodeAttribute(null=True)


class HooksByScope(GlobalSecondaryIndex[Any]):
    """An app's subscriptions (or the global ones), oldest first."""

    class Meta:
        index_name = "by_scope"
        projection = AllProjection()

    scope = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


# The scope of a subscription to every app's events (an app's name is a DNS label: never this).
GLOBAL_SCOPE = "*"


class Hook(_Table):
    """A subscription: where an app's events (or every app's) are POSTed, signed."""

    class Meta(_Table.Meta):
        table_name = "hooks"

    hook_id = UnicodeAttribute(hash_key=True)
    scope = UnicodeAttribute()  # an app's name, or GLOBAL_SCOPE
    url = UnicodeAttribute()
    # The event names asked for; absent: every event, those added later too.
    events = UnicodeSetAttribute(null=True)
    # The signing secret, sealed under the config key (``ConfigVault.seal_secret``).
    secret_sealed = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(default=utcnow)
    by_scope = HooksByScope()


class HookAttempt(MapAttribute[str, Any]):
    """One POST of a delivery: its answer's status (None: no answer), how long, when."""

    at = UTCDateTimeAttribute()
    status_code = NumberAttribute(null=True)
    latency_ms = NumberAttribute()
    error = UnicodeAttribute(null=True)


class HookDelivery(_Table):
    """One event to one subscription: ``pending`` → ``delivered`` | ``failed``, its attempts."""

    class Meta(_Table.Meta):
        table_name = "hook_deliveries"

    hook_id = UnicodeAttribute(hash_key=True)
    # "<enqueued at, RFC 3339>#<event id>": a subscription's deliveries sort by time.
    delivery_key = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute()
    event = UnicodeAttribute()
    status = EnumAttribute(DeliveryStatus, default=DeliveryStatus.PENDING)
    # The attempt under way (its number, and until when another consumer leaves it alone).
    attempt_count = NumberAttribute(default=0)
    lease_until = UTCDateTimeAttribute(null=True)
    attempts = ListAttribute[HookAttempt](of=HookAttempt, default=list)
    expires_at = TTLAttribute(null=True)


TABLES: dict[str, type[_Table]] = {
    "applications": Application,
    "artifacts": Artifact,
    "deployments": Deployment,
    "deployment_events": DeploymentEvent,
    "public_keys": PublicKey,
    "api_tokens": ApiToken,
    "hooks": Hook,
    "hook_deliveries": HookDelivery,
}


@dataclass(frozen=True)
class _Stage:
    table_prefix: str
    region: str
    host: str | None
    connect_timeout_seconds: int


_configured: tuple[_Stage, Connection] | None = None


def configure(settings: Settings) -> None:
    """Point every model at this stage's tables and DynamoDB endpoint.

    pynamodb connects a model on first use, and again whenever its table name
    changes; so another stage (other table names) takes effect, while the same
    tables on another endpoint would not, and are refused.
    """
    global _configured
    stage = _Stage(
        settings.table_prefix,
        settings.region,
        settings.dynamodb_endpoint_url,
        settings.connect_timeout_seconds,
    )
    bound = _configured[0] if _configured is not None else None
    if bound is not None and bound != stage and bound.table_prefix == stage.table_prefix:
        raise ValueError(
            f"the tables {stage.table_prefix}-* are already bound to another DynamoDB "
            "endpoint; use another AETHER_TABLE_PREFIX"
        )
    for table, model in TABLES.items():
        model.Meta.table_name = settings.table_name(table)
        model.Meta.region = stage.region
        model.Meta.host = stage.host
        model.Meta.connect_timeout_seconds = stage.connect_timeout_seconds
    connection = Connection(
        region=stage.region,
        host=stage.host,
        connect_timeout_seconds=stage.connect_timeout_seconds,
        max_retry_attempts=_Table.Meta.max_retry_attempts,
    )
    _configured = (stage, connection)


def connect() -> None:
    """Connect every model (and the transactions' connection) now rather than on first use:
    pynamodb builds a DynamoDB client per model, each loading botocore's description of
    DynamoDB, tens of milliseconds apiece on a busy machine. One DescribeTable per table."""
    if _configured is None:
        raise RuntimeError("records.configure(settings) must run before records.connect()")
    _configured[1].client  # noqa: B018 - the property builds the client
    for model in TABLES.values():
        model.exists()


def transaction() -> TransactWrite:
    """A write transaction on this stage's DynamoDB endpoint."""
    if _configured is None:
        raise RuntimeError("records.configure(settings) must run before a transaction")
    return TransactWrite(connection=_configured[1])


def create_tables() -> None:
    """Create every table that does not exist yet (local stacks and tests)."""
    for model in TABLES.values():
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)


def is_condition_failure(exc: PynamoDBException) -> bool:
    return exc.cause_response_code in {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    }


def newest_first(
    index: GlobalSecondaryIndex[Any], app_name: str, limit: int, cursor: dict[str, Any] | None
) -> tuple[list[Any], dict[str, Any] | None]:
    """One page of an app's items from a ``by_app`` index, newest first."""
    results = index.query(
        app_name, scan_index_forward=False, limit=limit, last_evaluated_key=cursor
    )
    items = list(results)
    return items, results.last_evaluated_key
