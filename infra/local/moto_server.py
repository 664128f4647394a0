"""``python -m infra.local.moto_server``: moto's server, its request log without query strings.

A presigned URL's query string is its credential (signature, credential scope, expiry): moto's
request log would keep every one the control plane handed out, readable to whoever reads the
log for as long as the URL is valid. The log keeps method, path and status; the query shows as
``?…``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler

from infra.local.keepalive import redact_query


class RedactingRequestHandler(MotoRequestHandler):
    """moto's request handler, logging request lines without their query strings."""

    def log(self, type: str, message: str, *args: Any) -> None:
        # Every line (requests and errors alike) passes here once formatted.
        super().log(type, "%s", redact_query(message % args if args else message))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.moto_server", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=True, request_handler=RedactingRequestHandler)


if __name__ == "__main__":
    main()
