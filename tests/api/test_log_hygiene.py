"""The servers' logs keep no credentials: a presigned URL's query string is one."""

from __future__ import annotations

from infra.local.keepalive import redact_query
from infra.local.processes import Service
from tests.conftest import Api
from tests.uploads import random_bytes, request_upload, upload
from tests.verification.delivery import deliver_pending_events


def test_a_query_string_is_cut_from_a_request_line() -> None:
    line = '"PUT /b/artifacts/a/0/app.tar.gz?X-Amz-Signature=ab&X-Amz-Credential=k HTTP/1.1"'
    assert redact_query(line) == '"PUT /b/artifacts/a/0/app.tar.gz?… HTTP/1.1"'
    assert redact_query('"GET /healthz HTTP/1.1" 200') == '"GET /healthz HTTP/1.1" 200'


def test_the_storage_log_holds_no_presigned_url(
    api: Api, unique_name: str, moto_server: Service
) -> None:
    assert api.post("/apps", {"name": unique_name}).status == 201
    data = random_bytes(256)
    ticket = request_upload(api, unique_name, data).json
    upload(api, unique_name, data)
    deliver_pending_events()
    download = api.get(f"/artifacts/{ticket['digest']}/download")
    assert download.status == 307
    import requests

    assert requests.get(download.headers["Location"], timeout=10).content == data
    log = moto_server.log.read_text(errors="replace")
    assert ticket["key"] in log  # the requests are logged ...
    assert "X-Amz-Signature" not in log  # ... without their credentials
    assert "X-Amz-Credential" not in log
