"""``python -m infra.local.cluster``: the embedded stack's Kubernetes, whose pods really run.

The API simulator (``infra/kubesim``) with a ``ProcessRuntime`` (pods are local processes under
``--state-dir``) and ``ServiceProxies`` (each Service answers on a stable loopback port,
published in its ``status.loadBalancer``). It writes a kubeconfig (mode 0600, a random token),
creates the apps namespace from ``infra/k8s/namespace.yaml`` as an operator would, and runs
until SIGTERM or SIGINT, then stops every pod. The simulator's test hooks are off: every
request needs the kubeconfig's token.

    python -m infra.local.cluster --port 6443 --kubeconfig .aether/kubeconfig \\
        --state-dir .aether/pods [--node-dir .aether/node] [--app-port-base 9100]

``--node-dir`` (default: ``node`` beside the state directory) keeps the Node.js installs the
pods' images ask for (``aether-nodejs:24-slim``), made once.

``AETHER_LAYER_CACHE_DIR``, when set (``make up`` sets it), is the nodes' layer cache: the
node's setup makes it the fetcher's (uid 1001) before any pod runs, as a node image would.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from chalicelib.manifests import FETCH_RUN_AS, RUN_AS
from infra.kubesim import Simulator
from infra.kubesim.resources import NAMESPACES, SECRETS
from infra.kubesim.store import Store
from infra.local.dataplane import ProcessRuntime, SecretResolver, Timing
from infra.local.services import DEFAULT_PORT_BASE, ServiceProxies
from infra.local.users import User

NAMESPACE_MANIFEST = Path(__file__).resolve().parents[1] / "k8s" / "namespace.yaml"


def secrets_in(store: Store) -> SecretResolver:
    """Secrets read from the simulator's store, decoded, with the kubelet's message."""

    def resolve(namespace: str, name: str) -> dict[str, str]:
        secret = store.find(SECRETS, namespace, name)
        if secret is None:
            raise LookupError(f'secret "{name}" not found')
        data: dict[str, str] = secret.get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    return resolve


@dataclass
class LocalCluster:
    simulator: Simulator
    runtime: ProcessRuntime
    services: ServiceProxies

    @property
    def url(self) -> str:
        return self.simulator.url

    def write_kubeconfig(self, path: str | Path) -> Path:
        return self.simulator.write_kubeconfig(path)

    def service_url(self, namespace: str, name: str) -> str | None:
        address = self.services.address(namespace, name)
        return f"http://{address[0]}:{address[1]}" if address else None

    def close(self) -> None:
        """Stop serving, then stop every pod (the simulator closes its runtime)."""
        self.services.close()
        self.simulator.stop()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def start_cluster(
    state_dir: str | Path,
    *,
    port: int = 0,
    port_base: int = DEFAULT_PORT_BASE,
    timing: Timing | None = None,
    namespaces: bool = True,
    node_dir: str | Path | None = None,
    service_ports: Path | None = None,
    token: str | None = None,
    layer_cache: str | None = None,
) -> LocalCluster:
    """A simulator on 127.0.0.1:``port`` whose pods run under ``state_dir``.

    ``namespaces``: create the apps namespace from ``infra/k8s/namespace.yaml``.
    ``node_dir``: where Node.js installs go (``aether_cli.nodejs``'s default cache if None).
    ``service_ports``: where Services' loopback ports are kept across restarts.
    ``token``: the bearer token to require (a new random one if None).
    ``layer_cache``: the node path of the layer cache, provided for the fetcher's user.
    """
    provided = {layer_cache: User(FETCH_RUN_AS, RUN_AS)} if layer_cache else {}
    runtime = ProcessRuntime(state_dir, timing=timing, node_dir=node_dir, node_directories=provided)
    simulator = Simulator(port, runtime=runtime, http_hooks=False, token=token)
    # The runtime exists before the store that holds the Secrets; no pod can start before this.
    runtime.secrets = secrets_in(simulator.store)
    try:
        services = ServiceProxies(
            simulator.store, runtime.endpoint, port_base=port_base, ports_file=service_ports
        )
    except BaseException:
        simulator.stop()
        raise
    if namespaces:
        manifest: dict[str, Any] = yaml.safe_load(NAMESPACE_MANIFEST.read_text())
        if simulator.store.find(NAMESPACES, "", manifest["metadata"]["name"]) is None:
            simulator.store.create(NAMESPACES, "", manifest)
    return LocalCluster(simulator, runtime, services)


def kubeconfig_token(path: Path) -> str | None:
    """The token an earlier run wrote, so clients that read the kubeconfig then (the API, the
    relay) keep working when the cluster restarts."""
    try:
        config = yaml.safe_load(path.read_text())
        token = config["users"][0]["user"]["token"]
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None
    return token if isinstance(token, str) and token else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.cluster", description=__doc__)
    parser.add_argument("--port", type=int, default=6443, help="API port on 127.0.0.1 (0: any)")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--state-dir", required=True, help="where pods keep their files")
    parser.add_argument(
        "--node-dir", help="where Node.js installs go (default: node beside --state-dir)"
    )
    parser.add_argument(
        "--app-port-base",
        type=int,
        default=int(os.environ.get("AETHER_APP_PORT_BASE", str(DEFAULT_PORT_BASE))),
        help="first loopback port for Services (AETHER_APP_PORT_BASE, default 9100)",
    )
    parser.add_argument("--service-ports", help="file keeping each Service's loopback port")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    node_dir = args.node_dir or Path(args.state_dir).absolute().parent / "node"
    cluster = start_cluster(
        args.state_dir,
        port=args.port,
        port_base=args.app_port_base,
        node_dir=node_dir,
        service_ports=Path(args.service_ports) if args.service_ports else None,
        token=kubeconfig_token(Path(args.kubeconfig)),
        layer_cache=os.environ.get("AETHER_LAYER_CACHE_DIR") or None,
    )
    try:
        path = cluster.write_kubeconfig(args.kubeconfig)
        print(f"cluster listening on {cluster.url}; kubeconfig written to {path}", flush=True)
        stopping.wait()
    finally:
        print("cluster stopping: stopping every pod", flush=True)
        cluster.close()


if __name__ == "__main__":
    main()
