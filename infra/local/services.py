"""Service proxies for the embedded data plane: one stable loopback port per Service port.

What kube-proxy and a load balancer controller do in a cluster, for pods that run as local
processes: every Service in the simulator's store gets a TCP listener on ``127.0.0.1``, and
each connection goes to one READY pod matching the Service's selector (round robin over the
pods' loopback ports, as ``ProcessRuntime.endpoint`` reports them). The address is published
the standard way, in the Service's ``status.loadBalancer.ingress``, so the control plane reads
an app's URL from the API like it would from a cloud load balancer.

Ports are allocated from ``port_base`` upwards, skipping ports in use, and stay with the
Service (namespace, name, port): a rollout or even a delete and re-create keeps the URL. With a
``ports_file`` the allocations outlive the proxies too, so a cluster that restarts and is given
its workloads again serves each app at its old address. Every pod has one port, so a Service
port's ``targetPort`` always means it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.kubesim.api_errors import ApiError
from infra.kubesim.resources import PODS, SERVICES, KubeObject
from infra.kubesim.store import Store, WatchEvent
from infra.local.processes import LOOPBACK

DEFAULT_PORT_BASE = 9100
PORT_RANGE = 1000  # how far above the base to look for a free port
CONNECT_TIMEOUT = 2.0
CHUNK = 64 * 1024

ServiceKey = tuple[str, str]  # (namespace, name)

log = logging.getLogger("aether.services")


@dataclass
class _Listener:
    port: int
    server: asyncio.Server


@dataclass
class _Service:
    key: ServiceKey
    selector: Mapping[str, str] = field(default_factory=dict)
    listeners: dict[int, _Listener] = field(default_factory=dict)  # service port → listener
    turn: itertools.count[int] = field(default_factory=itertools.count)


class ServiceProxies:
    """Proxies for every Service in ``store``, served by one asyncio thread.

    ``endpoint`` maps a pod uid to the loopback port it listens on (None: not running here).
    """

    def __init__(
        self,
        store: Store,
        endpoint: Callable[[str], int | None],
        *,
        port_base: int = DEFAULT_PORT_BASE,
        ports_file: Path | None = None,
    ) -> None:
        self._store = store
        self._endpoint = endpoint
        self._port_base = port_base
        self._ports_file = ports_file
        # Allocations outlive the Service (and, kept in ports_file, the proxies).
        self._ports: dict[tuple[str, str, int], int] = _load_ports(ports_file)
        self._services: dict[ServiceKey, _Service] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._reconciling = asyncio.Lock()  # one Service change at a time
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="aether-service-proxies", daemon=True
        )
        self._thread.start()
        self._started.wait()
        store.subscribe(self._on_change)
        existing, _ = store.list_objects(SERVICES, None)
        for service in existing:
            self._schedule(_key(service))

    def address(self, namespace: str, name: str, port: int | None = None) -> tuple[str, int] | None:
        """Where the Service (its ``port``, or its first one) answers on this machine."""
        future = asyncio.run_coroutine_threadsafe(self._address(namespace, name, port), self._loop)
        return future.result(timeout=5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):  # the loop may already be gone
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # -- the event loop thread ---------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _on_change(self, event: WatchEvent) -> None:
        # Called under the store lock, from any thread: only hand the key over.
        if event.kind is SERVICES and not self._closed:
            self._schedule(_key(event.object))

    def _schedule(self, key: ServiceKey) -> None:
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self._loop.call_soon_threadsafe(self._sync, key)

    async def _address(self, namespace: str, name: str, port: int | None) -> tuple[str, int] | None:
        service = self._services.get((namespace, name))
        if service is None or not service.listeners:
            return None
        chosen = service.listeners.get(port) if port else next(iter(service.listeners.values()))
        return (LOOPBACK, chosen.port) if chosen else None

    def _sync(self, key: ServiceKey) -> None:
        if self._closed:
            return
        self._loop.create_task(self._reconcile(key))

    async def _reconcile(self, key: ServiceKey) -> None:
        """Listeners for the Service's current ports, then its published address."""
        async with self._reconciling:
            await self._reconcile_now(key)

    async def _reconcile_now(self, key: ServiceKey) -> None:
        namespace, name = key
        found = self._store.find(SERVICES, namespace, name)
        service = self._services.setdefault(key, _Service(key))
        wanted: list[int] = []
        if found is not None:
            spec = found.get("spec") or {}
            service.selector = dict(spec.get("selector") or {})
            wanted = [
                int(p["port"])
                for p in spec.get("ports") or []
                if p.get("protocol", "TCP") == "TCP" and isinstance(p.get("port"), int)
            ]
        for port in list(service.listeners):
            if port not in wanted:
                listener = service.listeners.pop(port)
                listener.server.close()
                log.info("service %s/%s: port %d closed", namespace, name, listener.port)
        for port in wanted:
            if port not in service.listeners:
                opened = await self._listen(service, port)
                if opened is not None:
                    service.listeners[port] = opened
        if found is None:
            self._services.pop(key, None)
            return
        self._publish(service)

    async def _listen(self, service: _Service, port: int) -> _Listener | None:
        namespace, name = service.key
        allocation = (namespace, name, port)
        taken = {p for k, p in self._ports.items() if k != allocation}
        previous = self._ports.get(allocation)
        candidates = [previous] if previous is not None else []
        candidates += [
            p
            for p in range(self._port_base, self._port_base + PORT_RANGE)
            if p not in taken and p != previous
        ]
        for candidate in candidates:
            try:
                server = await asyncio.start_server(
                    lambda r, w: self._accept(service, r, w), LOOPBACK, candidate
                )
            except OSError:
                continue
            if self._ports.get(allocation) != candidate:
                self._ports[allocation] = candidate
                _save_ports(self._ports_file, self._ports)
            log.info("service %s/%s: port %d on %s:%d", namespace, name, port, LOOPBACK, candidate)
            return _Listener(candidate, server)
        log.error("service %s/%s: no free port from %d", namespace, name, self._port_base)
        return None

    def _publish(self, service: _Service) -> None:
        ports = [
            {"port": listener.port, "protocol": "TCP"} for listener in service.listeners.values()
        ]
        ingress = [{"ip": LOOPBACK, "ports": ports}] if ports else []

        def change(obj: KubeObject) -> KubeObject:
            status = dict(obj.get("status") or {})
            status["loadBalancer"] = {"ingress": ingress} if ingress else {}
            obj["status"] = status
            return obj

        namespace, name = service.key
        try:
            self._store.modify(SERVICES, namespace, name, change, subresource="status")
        except ApiError as error:  # deleted meanwhile: its own event follows
            log.info("service %s/%s: status not written: %s", namespace, name, error)

    # -- connections -------------------------------------------------------------------------

    def _accept(
        self, service: _Service, client: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = self._loop.create_task(self._forward(service, client, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    def _ready_ports(self, service: _Service) -> list[int]:
        namespace, _ = service.key
        selector = service.selector
        if not selector:
            return []
        pods, _ = self._store.list_objects(
            PODS,
            namespace,
            lambda pod: _matches(pod, selector) and _ready(pod),
        )
        ports = (self._endpoint(pod["metadata"]["uid"]) for pod in pods)
        return [port for port in ports if port is not None]

    async def _forward(
        self, service: _Service, client: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            backends = self._ready_ports(service)
            if backends:
                start = next(service.turn) % len(backends)
                backends = backends[start:] + backends[:start]
            for port in backends:  # a pod may have just gone: try the next one
                try:
                    upstream_reader, upstream_writer = await asyncio.wait_for(
                        asyncio.open_connection(LOOPBACK, port), CONNECT_TIMEOUT
                    )
                except (OSError, TimeoutError):
                    continue
                try:
                    await asyncio.gather(
                        _pipe(client, upstream_writer), _pipe(upstream_reader, writer)
                    )
                finally:
                    upstream_writer.close()
                return
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        for service in self._services.values():
            for listener in service.listeners.values():
                listener.server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for service in self._services.values():
            for listener in service.listeners.values():
                await listener.server.wait_closed()
        self._services.clear()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close: HTTP clients may wait for that EOF."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.close()


def _load_ports(path: Path | None) -> dict[tuple[str, str, int], int]:
    if path is None or not path.exists():
        return {}
    try:
        saved = json.loads(path.read_text())
        return {
            (entry["namespace"], entry["name"], int(entry["port"])): int(entry["host_port"])
            for entry in saved
        }
    except (ValueError, KeyError, TypeError):
        log.warning("%s is not a list of port allocations; starting afresh", path)
        return {}


def _save_ports(path: Path | None, ports: Mapping[tuple[str, str, int], int]) -> None:
    if path is None:
        return
    entries = [
        {"namespace": namespace, "name": name, "port": port, "host_port": host_port}
        for (namespace, name, port), host_port in sorted(ports.items())
    ]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(entries, indent=1))
    temporary.replace(path)


def _key(service: KubeObject) -> ServiceKey:
    metadata = service["metadata"]
    return metadata.get("namespace", ""), metadata["name"]


def _matches(pod: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
