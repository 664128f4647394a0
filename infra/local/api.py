"""``python -m infra.local.api``: the control plane on Chalice's local gateway (``chalice local``),
answering as the deployed API Gateway does where the two differ.

- A ``HEAD`` answer never carries a body. The local gateway writes the body of its own answers
  (and of any response the app returns) after a ``HEAD`` too; a client reads none, so the next
  answer on a kept-alive connection starts with those bytes and is corrupted.
- A path no route matches is answered as ``infra/terraform/gateway_responses.tf.json`` makes
  API Gateway answer it: 404 ``not_found``, ``no such route: METHOD /path``. The local gateway's
  own 403 echoes the request's ``Authorization`` header, the bearer token, into the body.

Everything else is ``chalice local``: the same app object, stage configuration and server.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalice.cli.factory import CLIFactory
from chalice.deploy.validate import validate_routes
from chalice.local import ChaliceRequestHandler, ForbiddenError, LocalDevServer

ROOT = Path(__file__).resolve().parents[2]


class GatewayHandler(ChaliceRequestHandler):
    """Chalice's request handler with API Gateway's answers to HEAD and to unknown paths."""

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
