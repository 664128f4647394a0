from tests.conftest import Api


def test_healthz_answers_without_a_token(api: Api) -> None:
    reply = api.as_(None).get("/healthz")
    assert reply.status == 200
    assert reply.json == {"status": "ok"}


def test_readyz_reports_each_dependency(api: Api) -> None:
    reply = api.as_(None).get("/readyz")
    assert reply.status == 200, reply.body
    assert reply.json["checks"]["dynamodb"] == "ok"
    assert reply.json["checks"]["s3"] == "ok"


def test_whoami_names_the_admin(api: Api) -> None:
    reply = api.get("/whoami")
    assert reply.status == 200
    assert reply.json["role"] == "admin"
