"""``python -m infra.local up|down|status``: the embedded stack, no Docker.

Everything binds to 127.0.0.1. State lives in ``.aether/`` at the repository
root (or ``AETHER_STATE_DIR``): ``local.env`` (mode 0600), ``logs/``, ``pids/``,
``kubeconfig``, ``pods/`` (the files of the apps the local cluster runs), and the
durable state: ``records/`` (DynamoDB's snapshot and journal), ``seaweedfs/``
(objects, the S3 identity), ``relay-cursor.json`` (how far upload events were
delivered), ``service-ports.json`` (each app's loopback port) and ``oidc/`` (the identity
provider's signing keys and local users).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.local import oidc, processes, seaweedfs
from infra.local.private import read_env_file

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("AETHER_STATE_DIR") or ROOT / ".aether").resolve()
LOGS = STATE / "logs"
PIDS = STATE / "pids"
LOCAL_ENV = STATE / "local.env"
KUBECONFIG = STATE / "kubeconfig"
PODS = STATE / "pods"
RECORDS = STATE / "records"
SEAWEEDFS = STATE / "seaweedfs"
RELAY_CURSOR = STATE / "relay-cursor.json"
SERVICE_PORTS = STATE / "service-ports.json"
OIDC = STATE / "oidc"
APPS_NAMESPACE = "aether-apps"
LAYER_CACHE_DIR = "/var/lib/aether/layers"  # a node path: the cluster keeps it in pods/.host/
# The cluster stops its pods on SIGTERM, each with a grace period of its own: wait for that.
CLUSTER_STOP_TIMEOUT = 20.0
# The records server compacts its journal into a snapshot on SIGTERM; SeaweedFS flushes.
# After a SIGKILL, weed takes seconds longer to accept writes; a loaded machine more.
SEAWEEDFS_START_TIMEOUT = 90.0
STOP_TIMEOUTS = {"cluster": CLUSTER_STOP_TIMEOUT, "records": 30.0, "seaweedfs": 15.0}


@dataclass(frozen=True)
class Ports:
    records: int = int(os.environ.get("AETHER_RECORDS_PORT", "4566"))
    s3: int = int(os.environ.get("AETHER_S3_PORT", "8333"))  # and the nine ports above it
    api: int = int(os.environ.get("AETHER_API_PORT", "8000"))
    webhook: int = int(os.environ.get("AETHER_WEBHOOK_PORT", "8001"))
    kube: int = int(os.environ.get("AETHER_KUBE_PORT", "6443"))
    oidc: int = int(os.environ.get("AETHER_OIDC_PORT", "8002"))

    @property
    def seaweedfs(self) -> dict[str, int]:
        return seaweedfs.port_block(self.s3)


def stack_environment(ports: Ports, identity: seaweedfs.Identity) -> dict[str, str]:
    """What every process of the stack (and a shell that sources local.env) needs."""
    return {
        # SeaweedFS checks these; the records server accepts any.
        "AWS_ACCESS_KEY_ID": identity.access_key,
        "AWS_SECRET_ACCESS_KEY": identity.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.records}",
        "AETHER_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        "AETHER_STAGE": "local",
        "AETHER_BUCKET": "aether-local-artifacts",
        "AETHER_API_URL": f"http://127.0.0.1:{ports.api}",
        # What pods use to download artifacts: they run on this machine too.
        "AETHER_PUBLIC_API_URL": f"http://127.0.0.1:{ports.api}",
        "KUBECONFIG": str(KUBECONFIG),
        "AETHER_DEFAULT_NAMESPACE": APPS_NAMESPACE,
        # Pods fetch a dependencies layer once per node (the cluster provides the directory).
        "AETHER_LAYER_CACHE_DIR": os.environ.get("AETHER_LAYER_CACHE_DIR", LAYER_CACHE_DIR),
        # Event hooks may go to receivers on this machine (plain http on loopback).
        "AETHER_HOOKS_ALLOW_LOOPBACK": "true",
        # The API trusts the embedded identity provider's access tokens.
        **oidc.api_environment(ports.oidc),
    }


def up(ports: Ports) -> None:
    # Whatever the stack and its services write is theirs alone; the state directory is
    # traversable so that pods (another user when run as root) reach their own directories.
    os.umask(0o077)
    for directory in (LOGS, PIDS):
        directory.mkdir(parents=True, exist_ok=True)
    STATE.chmod(0o711)
    identity = seaweedfs.stored_identity(SEAWEEDFS / "s3.json") or seaweedfs.Identity.new()
    env = stack_environment(ports, identity)
    os.environ.update(env)

    _ensure(
        "records",
        [
            sys.executable,
            "-m",
            "infra.local.records",
            "--port",
            str(ports.records),
            "--state-dir",
            str(RECORDS),
        ],
        ports.records,
        env,
    )
    _start_seaweedfs(ports, identity)
    from chalicelib.settings import Settings
    from infra.local.provision import provision_storage

    settings = Settings.from_env()
    provision_storage(settings)
    token = _admin_token()
    webhook_token = _secret_file(STATE / "webhook-token")
    cursor_secret = _secret_file(STATE / "cursor-secret")  # the API's alone: not in local.env

    _ensure(
        "cluster",
        [
            sys.executable,
            "-m",
            "infra.local.cluster",
            "--port",
            str(ports.kube),
            "--kubeconfig",
            str(KUBECONFIG),
            "--state-dir",
            str(PODS),
            "--service-ports",
            str(SERVICE_PORTS),
        ],
        ports.kube,
        env,
        before=_stop_stray_pods,
    )
    oidc.install()
    _ensure(
        "oidc",
        oidc.command(oidc.write_config(OIDC, ports.oidc), oidc.node()),
        ports.oidc,
        # The provider needs none of the stack's secrets: PATH and HOME alone.
        {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ},
        inherit=False,
    )
    _ensure(
        "api",
        [
            sys.executable,
            "-m",
            "infra.local.api",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports.api),
            "--stage",
            "local",
        ],
        ports.api,
        {**env, "AETHER_CURSOR_SECRET": cursor_secret.read_text()},
    )
    _ensure(
        "relay",
        [
            sys.executable,
            "-m",
            "infra.local.relay",
            "--filer",
            seaweedfs.filer_address(ports.seaweedfs),
            "--bucket",
            settings.bucket,
            "--cursor-file",
            str(RELAY_CURSOR),
            "--weed-home",
            str(SEAWEEDFS),
            "--hooks-queue",
            settings.hooks.queue_name,
            "--webhook-port",
            str(ports.webhook),
            "--webhook-token-file",
            str(webhook_token),
        ],
        ports.webhook,
        env,
    )
    _write_env(
        {
            **env,
            "AETHER_TOKEN": token,
            **oidc.credentials_environment(oidc.users(OIDC)),
        }
    )
    print(f"aether local stack is up: API {env['AETHER_API_URL']}")
    print(
        f"  sign in: aether login (users in {_shown(LOCAL_ENV)}), issuer {oidc.issuer_url(ports.oidc)}"
    )
    print(f"  kubernetes: KUBECONFIG={_shown(KUBECONFIG)} namespace {APPS_NAMESPACE}")
    print(f"  environment: source {_shown(LOCAL_ENV)}   logs: {_shown(LOGS)}/")


def _start_seaweedfs(ports: Ports, identity: seaweedfs.Identity) -> None:
    """``weed mini`` with its data under the state directory, ready to store."""
    config = seaweedfs.prepare(SEAWEEDFS, identity)
    block = ports.seaweedfs
    log = LOGS / "seaweedfs.log"
    if _ensure(
        "seaweedfs",
        seaweedfs.command(SEAWEEDFS, block, config),
        ports.s3,
        seaweedfs.environment(SEAWEEDFS),
        inherit=False,
        cwd=SEAWEEDFS,
        before=lambda: seaweedfs.remove_stray_sockets(block),
    ):
        seaweedfs.wait_until_ready(None, block, log, timeout=SEAWEEDFS_START_TIMEOUT)


def _stop_stray_pods() -> None:
    """Apps a killed cluster left running: a new cluster runs them again from the records."""
    stopped = processes.stop_strays(PODS)
    if stopped:
        print(f"  cluster: stopped {stopped} app processes a killed cluster had left running")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _ensure(
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str],
    *,
    inherit: bool = True,
    cwd: Path = ROOT,
    before: Callable[[], None] | None = None,
) -> bool:
    """Start ``name`` unless our own copy already answers; True when started now.

    ``inherit``: the process gets this environment on top of ours (else ``env`` alone);
    ``before``: what to clean up before a start.
    """
    pid = _running_pid(name)
    if pid is not None and processes.port_answers(port):
        print(f"  {name}: already running (pid {pid}, port {port})")
        return False
    if pid is not None:
        processes.stop_group(pid, STOP_TIMEOUTS.get(name, 5.0))
    if processes.port_answers(port):
        raise SystemExit(f"port {port} is taken by another program; stop it or set the port")
    if before is not None:
        before()
    service = processes.start(
        name, command, port, LOGS / f"{name}.log", env=env, cwd=cwd, inherit=inherit
    )
    (PIDS / f"{name}.pid").write_text(str(service.process.pid))
    print(f"  {name}: started (pid {service.process.pid}, port {port})")
    return True


def _running_pid(name: str) -> int | None:
    pidfile = PIDS / f"{name}.pid"
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _admin_token() -> str:
    """Keep the admin token while the records hold it; issue a new one otherwise (a fresh
    state directory, or one whose token was revoked or expired)."""
    from chalicelib import auth
    from chalicelib.contract import Role
    from chalicelib.errors import Unauthorized

    current = read_env_file(LOCAL_ENV).get("AETHER_TOKEN")
    if current:
        try:
            auth.authenticate(f"Bearer {current}", ())
            return current
        except Unauthorized:
            pass
    return auth.issue_token("local-admin", Role.ADMIN).secret


def _secret_file(path: Path) -> Path:
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path


def _write_env(values: dict[str, str]) -> None:
    text = "# written by `make up`; source it to talk to the local stack\n" + "".join(
        f"export {name}='{value}'\n" for name, value in sorted(values.items())
    )
    temporary = LOCAL_ENV.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(LOCAL_ENV)


# Consumers before what they consume: the records go last.
STOP_ORDER = ("relay", "api", "oidc", "cluster", "seaweedfs", "records")


def down() -> None:
    pidfiles = sorted(PIDS.glob("*.pid")) if PIDS.exists() else []
    pidfiles.sort(key=lambda p: STOP_ORDER.index(p.stem) if p.stem in STOP_ORDER else -1)
    for pidfile in pidfiles:
        name = pidfile.stem
        pid = _running_pid(name)
        timeout = STOP_TIMEOUTS.get(name, 5.0)
        if pid is not None and processes.stop_group(pid, timeout):
            print(f"  {name}: stopped (pid {pid})")
        pidfile.unlink(missing_ok=True)
    seaweedfs.remove_stray_sockets(Ports().seaweedfs)
    _stop_stray_pods()
    print("aether local stack is down")


def status(ports: Ports) -> int:
    services = {
        "records": ports.records,
        "seaweedfs": ports.s3,
        "cluster": ports.kube,
        "api": ports.api,
        "relay": ports.webhook,
        "oidc": ports.oidc,
    }
    healthy = True
    for name, port in services.items():
        pid = _running_pid(name)
        answers = processes.port_answers(port)
        healthy &= pid is not None and answers
        state = "up" if pid and answers else "down"
        print(f"  {name:9} {state:5} port {port}" + (f" pid {pid}" if pid else ""))
    return 0 if healthy else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args()
    ports = Ports()
    if args.command == "up":
        up(ports)
    elif args.command == "down":
        down()
    else:
        sys.exit(status(ports))


if __name__ == "__main__":
    main()
