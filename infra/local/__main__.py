"""``python -m infra.local up|down|status``: the embedded stack, no Docker.

Everything binds to 127.0.0.1. State lives in ``.aether/`` at the repository
root (or ``AETHER_STATE_DIR``): ``local.env`` (mode 0600), ``logs/``, ``pids/``,
``kubeconfig``, and ``pods/`` (the files of the apps the local cluster runs).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.local import processes
from infra.local.private import read_env_file

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("AETHER_STATE_DIR") or ROOT / ".aether").resolve()
LOGS = STATE / "logs"
PIDS = STATE / "pids"
LOCAL_ENV = STATE / "local.env"
KUBECONFIG = STATE / "kubeconfig"
PODS = STATE / "pods"
APPS_NAMESPACE = "aether-apps"
# The cluster stops its pods on SIGTERM, each with a grace period of its own: wait for that.
CLUSTER_STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Ports:
    moto: int = int(os.environ.get("AETHER_MOTO_PORT", "4566"))
    api: int = int(os.environ.get("AETHER_API_PORT", "8000"))
    webhook: int = int(os.environ.get("AETHER_WEBHOOK_PORT", "8001"))
    kube: int = int(os.environ.get("AETHER_KUBE_PORT", "6443"))


def stack_environment(ports: Ports) -> dict[str, str]:
    """What every process of the stack (and a shell that sources local.env) needs."""
    return {
        "AWS_ACCESS_KEY_ID": "aether-local",
        "AWS_SECRET_ACCESS_KEY": "aether-local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.moto}",
        "AETHER_STAGE": "local",
        "AETHER_BUCKET": "aether-local-artifacts",
        "AETHER_API_URL": f"http://127.0.0.1:{ports.api}",
        # What pods use to download artifacts: they run on this machine too.
        "AETHER_PUBLIC_API_URL": f"http://127.0.0.1:{ports.api}",
        "KUBECONFIG": str(KUBECONFIG),
        "AETHER_DEFAULT_NAMESPACE": APPS_NAMESPACE,
    }


def up(ports: Ports) -> None:
    # Whatever the stack and its services write is theirs alone; the state directory is
    # traversable so that pods (another user when run as root) reach their own directories.
    os.umask(0o077)
    for directory in (LOGS, PIDS):
        directory.mkdir(parents=True, exist_ok=True)
    STATE.chmod(0o711)
    env = stack_environment(ports)
    os.environ.update(env)

    fresh_moto = _ensure("moto", processes.moto_command(ports.moto), ports.moto, env)
    from chalicelib.settings import Settings
    from infra.local.provision import provision

    settings = Settings.from_env()
    queue_url = provision(settings)
    token = _admin_token(reuse=not fresh_moto)
    webhook_token = _secret_file(STATE / "webhook-token")

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
        ],
        ports.kube,
        env,
    )
    _ensure(
        "api",
        [
            str(Path(sys.executable).with_name("chalice")),
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports.api),
            "--stage",
            "local",
            "--no-autoreload",
        ],
        ports.api,
        env,
    )
    _ensure(
        "relay",
        [
            sys.executable,
            "-m",
            "infra.local.relay",
            "--queue-url",
            queue_url,
            "--webhook-port",
            str(ports.webhook),
            "--webhook-token-file",
            str(webhook_token),
        ],
        ports.webhook,
        env,
    )
    _write_env({**env, "AETHER_TOKEN": token, "AETHER_UPLOAD_QUEUE_URL": queue_url})
    print(f"aether local stack is up: API {env['AETHER_API_URL']}")
    print(f"  kubernetes: KUBECONFIG={_shown(KUBECONFIG)} namespace {APPS_NAMESPACE}")
    print(f"  environment: source {_shown(LOCAL_ENV)}   logs: {_shown(LOGS)}/")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _ensure(name: str, command: list[str], port: int, env: dict[str, str]) -> bool:
    """Start ``name`` unless our own copy already answers; True when started now."""
    pid = _running_pid(name)
    if pid is not None and processes.port_answers(port):
        print(f"  {name}: already running (pid {pid}, port {port})")
        return False
    if pid is not None:
        processes.stop_group(pid)
    if processes.port_answers(port):
        raise SystemExit(f"port {port} is taken by another program; stop it or set the port")
    service = processes.start(name, command, port, LOGS / f"{name}.log", env=env, cwd=ROOT)
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


def _admin_token(reuse: bool) -> str:
    """Keep the admin token while moto keeps its data; issue a new one otherwise."""
    from chalicelib import auth
    from chalicelib.contract import Role
    from chalicelib.errors import Unauthorized

    current = read_env_file(LOCAL_ENV).get("AETHER_TOKEN")
    if reuse and current:
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


def down() -> None:
    for pidfile in sorted(PIDS.glob("*.pid")) if PIDS.exists() else []:
        name = pidfile.stem
        pid = _running_pid(name)
        timeout = CLUSTER_STOP_TIMEOUT if name == "cluster" else 5.0
        if pid is not None and processes.stop_group(pid, timeout):
            print(f"  {name}: stopped (pid {pid})")
        pidfile.unlink(missing_ok=True)
    print("aether local stack is down")


def status(ports: Ports) -> int:
    services = {
        "moto": ports.moto,
        "cluster": ports.kube,
        "api": ports.api,
        "relay": ports.webhook,
    }
    healthy = True
    for name, port in services.items():
        pid = _running_pid(name)
        answers = processes.port_answers(port)
        healthy &= pid is not None and answers
        state = "up" if pid and answers else "down"
        print(f"  {name:7} {state:5} port {port}" + (f" pid {pid}" if pid else ""))
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
