"""The platform's contract, defined once: names, digests, runtimes, platforms, limits, states.

Request validation (``payloads``), the Kubernetes manifests, the records and the
OpenAPI document all read their rules from here. The CLI, its own distribution,
keeps a copy of the rules it checks offline (``cli/aether_cli/contract.py``);
``tests/api/test_contract.py`` keeps the two equal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

# -- names and digests -----------------------------------------------------------------------

# A DNS-1035 label (a letter first): an app's name becomes the name of its Kubernetes
# Service and Deployment, which must be one.
APP_NAME_PATTERN = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
APP_NAME_RULE = (
    "a DNS label: 1-63 lowercase letters, digits or '-', "
    "starting with a letter and ending with a letter or digit"
)
# The SHA-256 of the artifact's exact bytes, as lowercase hex.
DIGEST_PATTERN = r"[0-9a-f]{64}"
# Ed25519: a 32-byte public key and a 64-byte signature, hex-encoded (either case).
PUBLIC_KEY_PATTERN = r"[0-9a-fA-F]{64}"
SIGNATURE_PATTERN = r"[0-9a-fA-F]{128}"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
# Deployments and public keys are named by the UUIDs the platform gives them.
ISSUED_ID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RESERVED_ENV_NAMES = frozenset({"PORT"})  # the platform sets them

# -- limits ----------------------------------------------------------------------------------

MAX_BODY_BYTES = 64 * 1024
MAX_SUBJECT_LENGTH = 128
# Stored tokens are for CI and machines (people sign in with the identity provider): short by
# default, and rotated (POST /tokens/{token_id}/rotate) rather than issued for long.
DEFAULT_TOKEN_DAYS = 30
MAX_TOKEN_DAYS = 366
# A pull token lives this long; the reconciler replaces it once half of it has passed.
PULL_TOKEN_DAYS = 30
# How long one writer holds an app's pull Secret (well past a cluster request's timeout).
PULL_LOCK_SECONDS = 90
DEFAULT_REPLICAS = 1
MAX_REPLICAS = 20
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_LOG_TAIL = 10_000
# Presigned URLs: S3 enforces the expiry, so a leaked upload URL is useless after this.
MAX_PRESIGNED_URL_SECONDS = 900
# A layered artifact's manifest is read whole by the verifier, so it stays small.
MAX_MANIFEST_BYTES = 64 * 1024
# How long one reader hashing a stored object holds it: others wait for its verdict instead of
# downloading the same version again; past it, a reader that died is taken over.
HASH_LEASE_SECONDS = 120
MAX_LAYERS = 8
MANIFEST_SCHEMA = "aether.artifact/v2"
# npm's own default: the package's scripts.start, else `node server.js`.
DEFAULT_START_COMMAND = "npm start"
# Config: every value lands in a Kubernetes Secret (1 MiB at most) and in each pod's
# environment; these keep an app's well inside both and inside one request body.
MAX_CONFIG_VALUE_BYTES = 8 * 1024
MAX_CONFIG_VARS = 100
MAX_CONFIG_BYTES = 32 * 1024
# Scale may stop an app (0 replicas: it keeps its URL, records and config, serves nothing).
MIN_SCALE = 0
# A release is named "v<version>" (v1 is an app's first).
RELEASE_VERSION_PATTERN = r"v?[1-9][0-9]{0,8}"
# A release command (run once per release, before its rollout) is a shell command line, as a
# start command is; a one-off run is an argument vector.
MAX_COMMAND_LENGTH = 4096  # characters, of a release command or of each word of a run's
MAX_RUN_ARGS = 256
# A one-off run is named by 12 hex characters the platform gives it.
RUN_ID_PATTERN = r"[0-9a-f]{12}"

# -- where artifacts run ---------------------------------------------------------------------

# "os/arch", as OCI and Docker spell platforms (glibc userland).
PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_PLATFORM = "linux/amd64"


def node_selector(platform: str) -> dict[str, str]:
    """The well-known node labels that pin a pod to nodes of ``platform``."""
    os_name, _, arch = platform.partition("/")
    return {"kubernetes.io/os": os_name, "kubernetes.io/arch": arch}


@dataclass(frozen=True)
class NodeLine:
    """A Node.js major and the dates that decide whether Aether builds and runs it."""

    major: int
    released: dt.date
    lts_codename: str | None  # None while the line is "Current" (not yet LTS)
    end_of_life: dt.date
    abi: int  # NODE_MODULE_VERSION: what a non-N-API native addon is built for

    @property
    def runtime(self) -> str:
        return f"node{self.major}"

    def supported_on(self, day: dt.date) -> bool:
        return self.released <= day < self.end_of_life


# Node's release schedule; end-of-life lines stay listed so that asking for one is
# answered with its date.
NODE_LINES: tuple[NodeLine, ...] = (
    NodeLine(18, dt.date(2022, 4, 19), "hydrogen", dt.date(2025, 4, 30), 108),
    NodeLine(20, dt.date(2023, 4, 18), "iron", dt.date(2026, 4, 30), 115),
    NodeLine(22, dt.date(2024, 4, 24), "jod", dt.date(2027, 4, 30), 127),
    NodeLine(24, dt.date(2025, 5, 6), "krypton", dt.date(2028, 4, 30), 137),
    NodeLine(26, dt.date(2026, 5, 6), None, dt.date(2029, 4, 30), 147),
)


def supported_runtimes(day: dt.date | None = None) -> tuple[str, ...]:
    """The runtimes (``node22``, ...) in support on ``day`` (today by default), oldest first."""
    day = day or dt.date.today()
    return tuple(line.runtime for line in NODE_LINES if line.supported_on(day))


def default_runtime(day: dt.date | None = None) -> str:
    """The newest LTS line in support on ``day``: what runs when nobody asks for a runtime."""
    day = day or dt.date.today()
    lts = [line for line in NODE_LINES if line.lts_codename and line.supported_on(day)]
    return max(lts, key=lambda line: line.major).runtime


def runtime_refusal(runtime: str, day: dt.date | None = None) -> str | None:
    """Why ``runtime`` may not be used on ``day``, or None when it may."""
    day = day or dt.date.today()
    supported = supported_runtimes(day)
    if runtime in supported:
        return None
    line = next((line for line in NODE_LINES if line.runtime == runtime), None)
    listed = ", ".join(supported)
    if line is not None and day >= line.end_of_life:
        return (
            f"runtime {runtime} reached its end of life on {line.end_of_life.isoformat()}; "
            f"use one of {listed}"
        )
    return f"runtime must be one of {listed}"


# -- states ----------------------------------------------------------------------------------


class ArtifactStatus(StrEnum):
    """``pending`` until its upload is hashed, then ``verified`` or ``rejected`` for good."""

    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class ArtifactKind(StrEnum):
    """What an upload is: one archive, or a manifest naming its layers, or one such layer.

    A deployment runs an archive or a manifest; a layer only runs through a manifest
    that names it, so a layer needs no signature of its own (the manifest's covers it).
    """

    ARCHIVE = "archive"
    MANIFEST = "manifest"
    LAYER = "layer"


DEPLOYABLE_KINDS = frozenset({ArtifactKind.ARCHIVE, ArtifactKind.MANIFEST})


class LayerRole(StrEnum):
    """The dependencies (``node_modules``, rarely changing) and the app's own files."""

    DEPS = "deps"
    APP = "app"


class RejectionReason(StrEnum):
    DIGEST_MISMATCH = "digest_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    BAD_SIGNATURE = "bad_signature"
    UNSIGNED = "unsigned"  # the app requires signatures and the upload had none
    MALFORMED_MANIFEST = "malformed_manifest"
    APP_MISMATCH = "app_mismatch"  # a manifest that names another app than its own


class SignatureState(StrEnum):
    ABSENT = "absent"
    VALID = "valid"
    INVALID = "invalid"


class DeploymentStatus(StrEnum):
    """``pending`` → (``releasing``, while its release command runs) → ``rolling_out`` →
    ``succeeded`` | ``failed``."""

    PENDING = "pending"
    RELEASING = "releasing"
    ROLLING_OUT = "rolling_out"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


IN_FLIGHT = frozenset(
    {DeploymentStatus.PENDING, DeploymentStatus.RELEASING, DeploymentStatus.ROLLING_OUT}
)
FINISHED = frozenset({DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED})


class Role(StrEnum):
    ADMIN = "admin"
    DEVELOPER = "developer"
    PULLER = "puller"  # a pod's token: downloads its own app's artifacts, nothing else


ISSUABLE_ROLES = (Role.ADMIN, Role.DEVELOPER)


# -- event hooks -----------------------------------------------------------------------------


class HookEvent(StrEnum):
    """What a subscription may ask to be told about; a subscription naming none gets every one.

    ``artifact.*`` are sent for what a deployment runs (archives and manifests), not for the
    layers a manifest names.
    """

    ARTIFACT_UPLOADED = "artifact.uploaded"
    ARTIFACT_VERIFIED = "artifact.verified"
    ARTIFACT_REJECTED = "artifact.rejected"
    RELEASE_CREATED = "release.created"
    DEPLOYMENT_SUCCEEDED = "deployment.succeeded"
    DEPLOYMENT_FAILED = "deployment.failed"
    APP_DESTROYED = "app.destroyed"


class DeliveryStatus(StrEnum):
    """One event to one subscription: ``pending`` while attempts go on, then for good."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


# A subscription's signing secret, shown once when it is created.
HOOK_SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
# X-Aether-Signature: "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body); a receiver
# refuses a timestamp further than this from its own clock (a replayed delivery).
HOOK_SIGNATURE_PREFIX = "sha256="
HOOK_SIGNATURE_TOLERANCE_SECONDS = 300
MAX_HOOK_URL_LENGTH = 2048
# Per app (and globally): every one is a POST per event.
MAX_HOOKS_PER_SCOPE = 20
# How long a delivery's attempts are listed (DynamoDB expires them after).
HOOK_DELIVERY_DAYS = 30
