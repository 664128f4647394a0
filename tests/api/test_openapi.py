from typing import Any

from tests.conftest import Api


def test_openapi_lists_every_route_and_no_other(api: Api, control_plane: Any) -> None:
    document = api.as_(None).get("/openapi.json").json
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    served = {
        (path, method) for path, methods in control_plane.app.routes.items() for method in methods
    }
    assert documented == served


def test_openapi_applies_bearer_auth_globally_except_public_routes(api: Api) -> None:
    document = api.as_(None).get("/openapi.json").json
    assert document["security"] == [{"bearer_auth": []}]
    assert document["components"]["securitySchemes"]["bearer_auth"]["scheme"] == "bearer"
    public = {
        path
        for path, item in document["paths"].items()
        if any(operation.get("security") == [] for operation in item.values())
    }
    assert public == {"/healthz", "/readyz", "/openapi.json", "/dashboard", "/dashboard/{name}"}
