"""A signature is trusted while its key is: checked at upload, and again whenever an
artifact is about to run; keys anyone could sign for are never registered."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from tests.api.test_rollouts import deploy, finished, wait_for
from tests.conftest import Api
from tests.uploads import random_bytes, sign, upload
from tests.verification.delivery import deliver_pending_events

pytestmark = pytest.mark.usefixtures("healthy_cluster")

# Encodings of points of small order: the identity, the all-zero y, the point of order 2
# (y = -1), one of order 8, and a non-canonical identity (y = p + 1).
LOW_ORDER = {
    "identity": "01" + "00" * 31,
    "all zero": "00" * 32,
    "order 2": "ec" + "ff" * 30 + "7f",
    "order 8": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "non-canonical identity": "ee" + "ff" * 30 + "7f",
}


def add_key(api: Api, app_name: str, key: SigningKey) -> str:
    reply = api.post(
        f"/apps/{app_name}/public-keys", {"public_key_hex": bytes(key.verify_key).hex()}
    )
    assert reply.status == 201, reply.body
    return str(reply.json["key_id"])


def signed_upload(api: Api, app_name: str, key: SigningKey) -> str:
    data = random_bytes()
    import hashlib

    digest = upload(api, app_name, data, sign(key, hashlib.sha256(data).hexdigest()))
    deliver_pending_events()
    shown = api.get(f"/artifacts/{digest}").json
    assert (shown["status"], shown["signature"]) == ("verified", "valid"), shown
    return digest


@pytest.mark.parametrize("point", list(LOW_ORDER.values()), ids=list(LOW_ORDER))
def test_a_low_order_public_key_is_refused(api: Api, app_name: str, point: str) -> None:
    reply = api.post(f"/apps/{app_name}/public-keys", {"public_key_hex": point})
    assert reply.status == 400, reply.body
    assert reply.json["code"] == "bad_request"
    assert api.get(f"/apps/{app_name}/public-keys").json["keys"] == []


def test_a_deactivated_key_makes_its_artifacts_undeployable(api: Api, app_name: str) -> None:
    key = SigningKey.generate()
    key_id = add_key(api, app_name, key)
    digest = signed_upload(api, app_name, key)
    assert api.delete(f"/apps/{app_name}/public-keys/{key_id}").status == 200

    reply = api.post("/deployments", {"app_name": app_name, "artifact_digest": digest})
    assert reply.status == 409, reply.body
    assert reply.json["code"] == "artifact_not_verified"
    assert f"signed by public key {key_id}, which has been deactivated" in reply.json["message"]
    assert api.get(f"/apps/{app_name}/deployments").json["deployments"] == []


def test_a_rollback_to_an_artifact_whose_key_was_deactivated_is_refused(
    api: Api, app_name: str
) -> None:
    old_key, new_key = SigningKey.generate(), SigningKey.generate()
    old_id = add_key(api, app_name, old_key)
    first = deploy(api, app_name, signed_upload(api, app_name, old_key))
    assert wait_for(api, first["deployment_id"], finished)["status"] == "succeeded"
    add_key(api, app_name, new_key)
    second = deploy(api, app_name, signed_upload(api, app_name, new_key))
    assert wait_for(api, second["deployment_id"], finished)["status"] == "succeeded"
    assert api.delete(f"/apps/{app_name}/public-keys/{old_id}").status == 200
    history = api.get(f"/apps/{app_name}/deployments").json["deployments"]

    for body in ({}, {"to": first["deployment_id"]}):
        reply = api.post(f"/apps/{app_name}/rollback", body)
        assert reply.status == 409, reply.body
        assert reply.json["code"] == "artifact_not_verified"
        assert f"public key {old_id}, which has been deactivated" in reply.json["message"]
    assert api.get(f"/apps/{app_name}/deployments").json["deployments"] == history
    # The artifact the active key signed still deploys.
    again = api.post(f"/apps/{app_name}/rollback", {"to": second["deployment_id"]})
    assert again.status in (200, 201), again.body
