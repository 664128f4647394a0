"""``python -m infra.local.api``: the control plane on Chalice's local gateway (``chalice local``),
answering as the deployed API Gateway does where the two differ.

- A ``HEAD`` answer never carries a body. The local gateway writes the body of its own answers
  (and of any response the app returns) after a ``HEAD`` too; a client reads none, so the next
  answer on a kept-alive connection starts with those bytes and is corrupted.
- A path no route matches is answered as ``infra/terraform/gateway_responses.tf.json`` makes
  API Gateway answer it: 404 ``not_found``, ``no such route: METHOD /path``. The local gateway's
  own 403 echoes the request's ``Authorization`` header, the bearer token, into the body.
- The app runs one request at a time, as one Lambda execution environment does. The local
  gateway serves each connection on its own thread but calls one shared app object, whose
  ``current_request`` and ``lambda_context`` (and the logger's request keys, the metrics
  gathered) are attributes of that object: two requests at once would read each other's body,
  headers and token.

Everything else is ``chalice local``: the same app object, stage configuration and server.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalice.app import Chalice
from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.deploy.validate import validate_routes
from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalDevServer, LocalGateway

ROOT = Path(__file__).resolve().parents[2]


class OneInvocationAtATime(LocalGateway):
    """The local gateway, calling the app for one request at a time.

    Only the app's invocation is serialised: connections are still accepted, bodies read and
    answers written on their own threads, so a slow client holds no one else up. No route
    holds a request open (``aether logs -f`` asks again with ``since``; answers are buffered,
    never streamed), so one at a time costs the others one invocation's length; the longest
    is a read waiting for the relay's hash of the same upload, bounded by its lease. A lock
    rather than thread-local request state (what ``chalice local`` itself does, for
    ``current_request`` only): everything the app keeps during an invocation is per request,
    as on Lambda.
    """

    _invoking = threading.Lock()

    def handle_request(
        self, method: str, path: str, headers: dict[str, Any], body: bytes | None
    ) -> Any:
        with self._invoking:
            return super().handle_request(method, path, headers, body)


class GatewayHandler(ChaliceRequestHandler):
    """Chalice's request handler with API Gateway's answers to HEAD and to unknown paths, and
    one app invocation at a time."""

    # The headers and the body go out as two writes: with Nagle's algorithm the body waits
    # for the client's delayed ACK of the headers, 40 ms on Linux, on many answers.
    disable_nagle_algorithm = True

    def __init__(
        self,
        request: Any,
        client_address: tuple[str, int],
        server: HTTPServer,
        app_object: Chalice,
        config: Config,
    ) -> None:
        # What ChaliceRequestHandler.__init__ does, with the serialising gateway: the base
        # class answers the connection inside __init__, so the gateway must be set before.
        self.local_gateway = OneInvocationAtATime(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def _send_error_response(self, error: Any) -> None:
        if isinstance(error, ForbiddenError):
            # The app has no Chalice authorizer, so the gateway forbids only unmatched paths.
            path = urlsplit(self.path).path
            body = {"code": "not_found", "message": f"no such route: {self.command} {path}"}
            headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "NotFoundException"}
            self._send_http_response(404, headers, json.dumps(body))
            return
        super()._send_error_response(error)

    def _send_http_response(
        self, code: int, headers: dict[str, Any], body: str | bytes | None
    ) -> None:
        super()._send_http_response(code, headers, None if self.command == "HEAD" else body)


def serve(host: str, port: int, stage: str, project_dir: Path = ROOT) -> None:
    # As `chalice local` does: the app's log lines go to stdout, as Lambda's would.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    os.chdir(project_dir)
    factory = CLIFactory(str(project_dir), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    validate_routes(config.chalice_app.routes)
    importlib.import_module("app").warm_up()  # the module chalice has just loaded
    server = LocalDevServer(config.chalice_app, config, host, port, handler_cls=GatewayHandler)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.stage)


if __name__ == "__main__":
    main()
