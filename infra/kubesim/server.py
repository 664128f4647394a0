"""HTTP front of the simulator: routes Kubernetes REST paths to the store, kubelet and hooks."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from infra.kubesim.api_errors import ApiError, bad_request, success_status, unsupported_media_type
from infra.kubesim.clock import parse_time, utc_now
from infra.kubesim.logs import LogQuery
from infra.kubesim.merge import json_merge_patch, json_patch, strategic_merge
from infra.kubesim.resources import (
    ALL_KINDS,
    API_GROUPS,
    PODS,
    KubeObject,
    ResourceKind,
    find_kind,
)
from infra.kubesim.selectors import labels_match, parse_field_selector, parse_label_selector
from infra.kubesim.store import WatchEvent

if TYPE_CHECKING:
    from infra.kubesim.simulator import Simulator

LOG = logging.getLogger("infra.kubesim")

VERSION_INFO = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-aether-sim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_DEFAULT_WATCH_SECONDS = 1800
_BOOKMARK_INTERVAL_SECONDS = 1.0
_FOLLOW_POLL_SECONDS = 0.2
_PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/json-patch+json": json_patch,
    "application/merge-patch+json": json_merge_patch,
    "application/strategic-merge-patch+json": strategic_merge,
}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Route:
    kind: ResourceKind
    namespace: str | None  # None: all namespaces (or a cluster-scoped kind)
    name: str | None
    subresource: str | None


def parse_route(path: str) -> Route | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and find_kind(group, rest[2]) is not None:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    kind = find_kind(group, rest[0])
    if kind is None or (namespace is not None and not kind.namespaced):
        return None
    if namespace is None and kind.namespaced and len(rest) > 1:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Route(kind, namespace, name, subresource)


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name}: invalid integer {value!r}") from None


def _discovery_resources(group: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for kind in ALL_KINDS:
        if kind.group != group:
            continue
        resources.append(
            {
                "name": kind.plural,
                "singularName": kind.kind.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": _VERBS,
            }
        )
        if kind.status_subresource:
            resources.append(
                {
                    "name": f"{kind.plural}/status",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    if group == "":
        resources.append(
            {
                "name": "pods/log",
                "singularName": "",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get"],
            }
        )
    return resources


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client going away mid-connection (a stopped watch, a closed pool) is routine.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        LOG.exception("kubesim: error on a connection from %s", client_address)

    def close_connections(self) -> None:
        """Cut open keep-alive and streaming connections (stop, or the API going down)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def simulator(self) -> Simulator:
        return self.server.simulator

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {
            key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()
        }
        body = self._read_body()
        try:
            if url.path.startswith("/_sim/") and self.simulator.http_hooks:
                self._control(method, url.path, body)
                return
            if self.simulator.api_down:
                raise ApiError(503, "ServiceUnavailable", "the API server is down (simulated)")
            if not self._authorized():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._serve_api(method, url.path, query, body)
        except ApiError as error:
            self._send_json(error.code, error.to_status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            LOG.exception("kubesim: %s %s failed", method, self.path)
            failure = ApiError(500, "InternalError", "internal error in the API simulator")
            self._send_json(500, failure.to_status())

    def _authorized(self) -> bool:
        sent = self.headers.get("Authorization") or ""
        expected = f"Bearer {self.simulator.token}"
        # Constant time: how much of a guess matched must not show in the answer's timing.
        return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _parse_json(self, body: bytes) -> Any:
        if not body:
            raise bad_request("the request has no body")
        try:
            return json.loads(body)
        except ValueError:
            raise bad_request("the body is not JSON (YAML bodies are not supported)") from None

    def _send_json(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream_open(self) -> bool:
        return not self.simulator.store.closed and not self.simulator.api_down

    # -- the Kubernetes API ------------------------------------------------------------------

    def _serve_api(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        stripped = path.rstrip("/")
        if method == "GET" and stripped == "/version":
            self._send_json(200, VERSION_INFO)
            return
        if method == "GET" and self._serve_discovery(stripped):
            return
        route = parse_route(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.name is None:
            self._serve_collection(method, route, query, body)
        elif route.subresource == "log" and route.kind is PODS and method == "GET":
            self._serve_log(route, query)
        elif route.subresource not in (None, "status") or (
            route.subresource == "status" and not route.kind.status_subresource
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            self._serve_object(method, route, query, body)

    def _serve_discovery(self, path: str) -> bool:
        if path == "/api":
            port = self.server.server_port
            self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}
                    ],
                },
            )
        elif path == "/apis":
            groups = []
            for name in API_GROUPS:
                version = {"groupVersion": f"{name}/v1", "version": "v1"}
                groups.append({"name": name, "versions": [version], "preferredVersion": version})
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        elif path == "/api/v1" or path in {f"/apis/{name}/v1" for name in API_GROUPS}:
            group = "" if path == "/api/v1" else path.split("/")[2]
            self._send_json(
                200,
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": path.split("/", 2)[2],
                    "resources": _discovery_resources(group),
                },
            )
        else:
            return False
        return True

    def _namespace(self, route: Route) -> str:
        return route.namespace or ""

    def _serve_collection(
        self, method: str, route: Route, query: dict[str, str], body: bytes
    ) -> None:
        store = self.simulator.store
        if method == "GET" and _flag(query, "watch"):
            self._serve_watch(route, query)
        elif method == "GET":
            self._serve_list(route, query)
        elif method == "POST":
            if route.kind.namespaced and route.namespace is None:
                raise ApiError(405, "MethodNotAllowed", "create needs a namespace in the path")
            obj = self._parse_json(body)
            if not isinstance(obj, dict):
                raise bad_request("the body must be a JSON object")
            if obj.get("kind") not in (None, route.kind.kind):
                raise bad_request(f"expected kind {route.kind.kind}, got {obj.get('kind')}")
            dry_run = query.get("dryRun") == "All"
            created = store.create(route.kind, self._namespace(route), obj, dry_run=dry_run)
            self._send_json(201, created)
        elif method == "DELETE":
            predicate = self._selector(query)
            propagation = query.get("propagationPolicy") or route.kind.default_propagation
            items, revision = store.list_objects(route.kind, route.namespace, predicate)
            for item in items:
                meta = item["metadata"]
                store.delete(
                    route.kind, meta.get("namespace", ""), meta["name"], propagation=propagation
                )
            self._send_json(200, self._list_body(route.kind, items, revision))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")

    def _selector(self, query: Mapping[str, str]) -> Callable[[KubeObject], bool]:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        return lambda obj: labels_match(labels, obj) and fields(obj)

    @staticmethod
    def _list_body(kind: ResourceKind, items: list[KubeObject], revision: int) -> KubeObject:
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    def _serve_list(self, route: Route, query: dict[str, str]) -> None:
        items, revision = self.simulator.store.list_objects(
            route.kind, route.namespace, self._selector(query)
        )
        offset = 0
        if token := query.get("continue"):
            try:
                offset = int(json.loads(base64.urlsafe_b64decode(token))["offset"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("invalid continue token") from None
        limit = _int_param(query, "limit")
        page = items[offset : offset + limit] if limit else items[offset:]
        body = self._list_body(route.kind, page, revision)
        remaining = len(items) - offset - len(page)
        if limit and remaining > 0:
            next_page = json.dumps({"offset": offset + len(page)}).encode()
            body["metadata"]["continue"] = base64.urlsafe_b64encode(next_page).decode()
            body["metadata"]["remainingItemCount"] = remaining
        self._send_json(200, body)

    def _serve_object(self, method: str, route: Route, query: dict[str, str], body: bytes) -> None:
        store = self.simulator.store
        kind, namespace, name = route.kind, self._namespace(route), route.name or ""
        dry_run = query.get("dryRun") == "All"
        if method == "GET":
            self._send_json(200, store.get(kind, namespace, name))
        elif method == "PUT":
            obj = self._parse_json(body)
            if not isinstance(obj, dict):
                raise bad_request("the body must be a JSON object")
            result = store.replace(
                kind, namespace, name, obj, subresource=route.subresource, dry_run=dry_run
            )
            self._send_json(200, result)
        elif method == "PATCH":
            self._serve_patch(route, query, body)
        elif method == "DELETE":
            options = self._parse_json(body) if body else {}
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            preconditions = options.get("preconditions") or {}
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
            deleted = store.delete(
                kind,
                namespace,
                name,
                propagation=propagation or kind.default_propagation,
                precondition_uid=preconditions.get("uid"),
                precondition_resource_version=preconditions.get("resourceVersion"),
                dry_run=dry_run or options.get("dryRun") == ["All"],
            )
            if kind.delete_returns_object:
                self._send_json(200, deleted)
            else:
                uid = deleted["metadata"]["uid"]
                self._send_json(
                    200, success_status(name=name, group=kind.group, kind=kind.plural, uid=uid)
                )
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on an object")

    def _serve_patch(self, route: Route, query: dict[str, str], body: bytes) -> None:
        store = self.simulator.store
        kind, namespace, name = route.kind, self._namespace(route), route.name or ""
        dry_run = query.get("dryRun") == "All"
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        patch = self._parse_json(body)
        if content_type == "application/apply-patch+yaml":
            manager = query.get("fieldManager")
            if not manager:
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                    "is required for apply patch",
                    kind="PatchOptions",
                    group="meta.k8s.io",
                )
            if not isinstance(patch, dict):
                raise bad_request("an apply configuration must be an object")
            result, created = store.apply(
                kind,
                namespace,
                name,
                patch,
                field_manager=manager,
                subresource=route.subresource,
                dry_run=dry_run,
            )
            self._send_json(201 if created else 200, result)
            return
        patcher = _PATCHERS.get(content_type)
        if patcher is None:
            raise unsupported_media_type(content_type)
        if content_type == "application/json-patch+json" and not isinstance(patch, list):
            raise bad_request("a JSON patch must be a list of operations")
        if content_type != "application/json-patch+json" and not isinstance(patch, dict):
            raise bad_request("a merge patch must be a JSON object")

        def change(obj: KubeObject) -> KubeObject:
            patched: KubeObject = patcher(obj, patch)
            return patched

        result = store.modify(
            kind, namespace, name, change, subresource=route.subresource, dry_run=dry_run
        )
        self._send_json(200, result)

    # -- watch -------------------------------------------------------------------------------

    def _serve_watch(self, route: Route, query: dict[str, str]) -> None:
        store = self.simulator.store
        predicate = self._selector(query)
        timeout = _int_param(query, "timeoutSeconds") or _DEFAULT_WATCH_SECONDS
        bookmarks = _flag(query, "allowWatchBookmarks")
        requested = query.get("resourceVersion", "")
        initial: list[KubeObject] = []
        if requested in ("", "0"):
            initial, last = store.list_objects(route.kind, route.namespace, predicate)
        else:
            try:
                last = int(requested)
            except ValueError:
                raise bad_request(f"invalid resourceVersion {requested!r}") from None
        self._start_stream("application/json")
        for obj in initial:
            self._send_event("ADDED", obj)
        deadline = time.monotonic() + timeout
        last_sent = time.monotonic()
        while self._stream_open() and time.monotonic() < deadline:
            try:
                events = self._next_events(last, deadline)
            except ApiError as error:
                self._send_event("ERROR", error.to_status())
                break
            for event in events:
                last = event.resource_version
                translated = self._translate(event, route, predicate)
                if translated is not None:
                    self._send_event(*translated)
                    last_sent = time.monotonic()
            if bookmarks and time.monotonic() - last_sent >= _BOOKMARK_INTERVAL_SECONDS:
                self._send_bookmark(route.kind, last)
                last_sent = time.monotonic()
        else:
            if bookmarks:
                self._send_bookmark(route.kind, last)
        self._end_stream()

    def _next_events(self, after: int, deadline: float) -> list[WatchEvent]:
        """Changes after ``after``, waiting up to a bookmark interval for some to happen."""
        store = self.simulator.store
        with store.changed:
            events = store.events_after(after)
            if not events and not store.closed:
                remaining = deadline - time.monotonic()
                store.changed.wait(max(0.0, min(remaining, _BOOKMARK_INTERVAL_SECONDS)))
                events = store.events_after(after)
            return events

    def _send_event(self, event_type: str, obj: KubeObject) -> None:
        self._send_chunk(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")

    def _send_bookmark(self, kind: ResourceKind, revision: int) -> None:
        self._send_event(
            "BOOKMARK",
            {
                "kind": kind.kind,
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(revision)},
            },
        )

    @staticmethod
    def _translate(
        event: WatchEvent, route: Route, predicate: Callable[[KubeObject], bool]
    ) -> tuple[str, KubeObject] | None:
        """The event as this watch sees it: objects entering or leaving its selector."""
        if event.kind is not route.kind:
            return None
        if route.namespace is not None and event.namespace != route.namespace:
            return None
        matches_now = predicate(event.object)
        if event.type != "MODIFIED":
            return (event.type, event.object) if matches_now else None
        matched_before = event.previous is not None and predicate(event.previous)
        if matches_now:
            return ("MODIFIED" if matched_before else "ADDED", event.object)
        return ("DELETED", event.object) if matched_before else None

    # -- pod logs ----------------------------------------------------------------------------

    def _serve_log(self, route: Route, query: dict[str, str]) -> None:
        kubelet = self.simulator.kubelet
        previous = _flag(query, "previous")
        uid, container = kubelet.log_source(
            self._namespace(route), route.name or "", query.get("container"), previous=previous
        )
        since_time = query.get("sinceTime")
        try:
            log_query = LogQuery(
                tail_lines=_int_param(query, "tailLines"),
                since_seconds=_int_param(query, "sinceSeconds"),
                since_time=parse_time(since_time) if since_time else None,
                timestamps=_flag(query, "timestamps"),
                limit_bytes=_int_param(query, "limitBytes"),
            )
        except ValueError:
            raise bad_request(f"sinceTime: invalid RFC 3339 time {since_time!r}") from None
        lines = kubelet.logs.lines(uid, container, previous=previous)
        selected = log_query.select(lines, utc_now())
        if not _flag(query, "follow") or previous:
            self._send_text(200, log_query.render(selected))
            return
        self._start_stream("text/plain")
        self._send_chunk(log_query.render(selected).encode())
        sent = len(lines)
        while self._stream_open():
            # Read the state before the lines, so the last lines of an ending instance are sent.
            streaming = kubelet.is_streaming(uid, container)
            lines = kubelet.logs.lines(uid, container)
            if len(lines) < sent:
                break  # the container restarted: this instance's log is complete
            self._send_chunk(log_query.render(lines[sent:]).encode())
            sent = len(lines)
            if not streaming:
                break
            kubelet.logs.wait(_FOLLOW_POLL_SECONDS)
        self._end_stream()

    # -- test hooks --------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        payload = self._parse_json(body) if body else {}
        if not isinstance(payload, dict):
            raise bad_request("a hook takes a JSON object")
        result = self.simulator.handle_control(method, path.removeprefix("/_sim/"), payload)
        self._send_json(200, result)
