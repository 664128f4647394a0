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
    assert public == {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/auth/config",
        "/dashboard",
        "/dashboard/{name}",
    }


def test_the_document_is_openapi_3_1_with_the_contracts_rules(api: Api) -> None:
    from chalicelib import contract

    document = api.as_(None).get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    upload = document["paths"]["/artifacts"]["post"]["requestBody"]["content"]
    properties = upload["application/json"]["schema"]["properties"]
    assert properties["runtime"]["enum"] == list(contract.supported_runtimes())
    assert properties["platform"]["enum"] == list(contract.PLATFORMS)
    assert properties["app_name"]["pattern"] == f"^{contract.APP_NAME_PATTERN}$"
    assert "9lives" not in properties["app_name"]["pattern"]  # a letter first, as the API says


def test_each_operation_lists_its_error_codes_under_their_statuses(api: Api) -> None:
    document = api.as_(None).get("/openapi.json").json
    for path in ("/deployments", "/apps/{app_name}/rollback"):
        conflicts = document["paths"][path]["post"]["responses"]["409"]
        codes = conflicts["content"]["application/json"]["schema"]["properties"]["code"]["enum"]
        assert "unsupported_platform" in codes
    public = document["paths"]["/healthz"]["get"]["responses"]
    assert "401" not in public


def test_a_new_route_is_described_from_its_docstring_alone() -> None:
    from chalice.app import Chalice

    from chalicelib import openapi

    app = Chalice(app_name="sketch")

    @app.route("/apps/{app_name}/notes", methods=["POST"])
    def add_note(app_name: str) -> dict[str, str]:
        """Add a note to an application.

        Notes are free text.
        Body: new_app (optional)
        Query: limit
        201: the note
        Errors: not_found
        """
        return {}

    operation = openapi.document(app, 10, 60, 60)["paths"]["/apps/{app_name}/notes"]["post"]
    assert operation["summary"] == "Add a note to an application."
    assert operation["description"] == "Notes are free text."
    assert operation["requestBody"]["required"] is False
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("app_name", "path"),
        ("limit", "query"),
    ]
    assert {"201", "400", "401", "403", "404", "415", "500", "503"} == set(operation["responses"])


def test_a_docstring_naming_an_unknown_schema_or_code_is_an_error() -> None:
    import pytest
    from chalice.app import Chalice

    from chalicelib import openapi

    for line in ("Body: nothing_like_it", "Query: nothing_like_it", "Errors: no_such_code"):
        app = Chalice(app_name="sketch")

        def view() -> dict[str, str]:
            return {}

        view.__doc__ = f"A route.\n\n{line}\n"
        app.route("/sketch")(view)
        with pytest.raises(ValueError, match=r"nothing_like_it|no_such_code"):
            openapi.document(app, 10, 60, 60)


def test_the_readme_names_every_error_code_with_its_status() -> None:
    from pathlib import Path

    from chalicelib.errors import by_code

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    api_section = readme[readme.index("## API") :]
    assert [code for code in sorted(by_code()) if f"`{code}`" not in api_section] == []
