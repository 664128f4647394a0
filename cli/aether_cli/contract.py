"""The platform's rules that the CLI checks before it sends anything.

The CLI is its own distribution and never imports the control plane, so these are
copies of the control plane's contract; a test keeps the two equal. Everything in
the CLI that needs a name pattern, a runtime or a platform imports it from here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# A DNS-1035 label: an app's name becomes the name of its Kubernetes objects.
APP_NAME_PATTERN = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
DIGEST_PATTERN = r"[0-9a-f]{64}"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
RESERVED_ENV_NAMES = frozenset({"PORT"})  # the platform sets them
MAX_CONFIG_VALUE_BYTES = 8 * 1024
MAX_CONFIG_VARS = 100
MAX_REPLICAS = 20
TOKEN_ROLES = ("developer", "admin")  # what POST /tokens issues
DEFAULT_TOKEN_DAYS = 30  # what POST /tokens and a rotation give when no lifetime is asked
MAX_TOKEN_DAYS = 366
APP_CONTAINER = "app"  # the container of a pod that runs the app (its cluster events name it)
JOB_CONTAINER = "job"  # the container of a release command's or a run's pod (its output)
MAX_COMMAND_LENGTH = 4096  # characters, of a release command or of each word of a run's

# Event hooks: what a subscription may ask for, and how each delivery is signed.
HOOK_EVENTS = (
    "artifact.uploaded",
    "artifact.verified",
    "artifact.rejected",
    "release.created",
    "deployment.succeeded",
    "deployment.failed",
    "app.destroyed",
)
HOOK_SIGNATURE_PREFIX = "sha256="
HOOK_SIGNATURE_TOLERANCE_SECONDS = 300
MAX_HOOK_URL_LENGTH = 2048
# What the platform names hooks (and deployments, public keys) by.
ISSUED_ID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# A layered artifact: a small canonical JSON manifest naming its layers by digest and size.
MANIFEST_SCHEMA = "aether.artifact/v2"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_LAYERS = 8
LAYER_ROLES = ("deps", "app")  # the order they are extracted in

# Where an artifact can run: "os/arch", as OCI and Docker spell platforms (glibc).
PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_PLATFORM = "linux/amd64"


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


# Node's release schedule (nodejs.org/en/about/previous-releases); end-of-life lines stay
# listed so that asking for one is answered with its date.
NODE_LINES: tuple[NodeLine, ...] = (
    NodeLine(18, dt.date(2022, 4, 19), "hydrogen", dt.date(2025, 4, 30), 108),
    NodeLine(20, dt.date(2023, 4, 18), "iron", dt.date(2026, 4, 30), 115),
    NodeLine(22, dt.date(2024, 4, 24), "jod", dt.date(2027, 4, 30), 127),
    NodeLine(24, dt.date(2025, 5, 6), "krypton", dt.date(2028, 4, 30), 137),
    NodeLine(26, dt.date(2026, 5, 6), None, dt.date(2029, 4, 30), 147),
)


def node_line(major: int) -> NodeLine | None:
    return next((line for line in NODE_LINES if line.major == major), None)


def supported_node_lines(day: dt.date | None = None) -> tuple[NodeLine, ...]:
    """The lines in support on ``day`` (today by default), oldest first."""
    day = day or dt.date.today()
    return tuple(line for line in NODE_LINES if line.supported_on(day))
