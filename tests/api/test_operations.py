"""Operations through HTTP: probes, offline docs, and the OpenAPI contract generated clients use."""

import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_api.app import create_app
from crm_api.config import Settings
from tests.conftest import Actor

OPERATION_ID = re.compile(r"^[a-z]+(_[a-z]+)+$")
METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture
async def openapi(anonymous: httpx.AsyncClient) -> dict[str, Any]:
    response = await anonymous.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


class TestLiveness:
    async def test_healthz_is_ok_without_a_key(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/healthz")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"status": "ok"}
        assert response.headers["x-request-id"]


class TestReadiness:
    async def test_readyz_is_ok_when_migrated(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"status": "ok"}

    async def test_readyz_is_503_on_an_unmigrated_database(self, tmp_path: Path) -> None:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", access_log=False
        )
        application = create_app(settings)
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://test"
            ) as client,
        ):
            response = await client.get("/readyz")
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert body["type"] == "https://crm-api.dev/problems/not-ready"
            assert body["status"] == 503
            assert body["detail"].startswith("Schema at nothing")
            # Liveness does not depend on the database.
            assert (await client.get("/healthz")).json() == {"status": "ok"}


class TestOfflineDocs:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_docs_reference_only_local_assets_that_exist(
        self, path: str, anonymous: httpx.AsyncClient
    ) -> None:
        response = await anonymous.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "http://" not in html
        assert "https://" not in html

        assets = ASSET.findall(html)
        assert any(asset.endswith(".js") for asset in assets), assets
        for asset in assets:
            assert asset.startswith("/static/docs/"), asset
            served = await anonymous.get(asset)
            assert served.status_code == 200, asset
            assert served.content, asset
        assert "/openapi.json" in html

    async def test_static_asset_types(self, anonymous: httpx.AsyncClient) -> None:
        css = await anonymous.get("/static/docs/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")
        js = await anonymous.get("/static/docs/swagger-ui-bundle.js")
        assert "javascript" in js.headers["content-type"]

    async def test_unknown_static_asset_is_404(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/static/docs/nothing-here.js")
        assert response.status_code == 404


class TestOpenAPIDocument:
    async def test_is_served_as_openapi_3(self, openapi: dict[str, Any]) -> None:
        assert openapi["openapi"].startswith("3.")
        assert openapi["info"]["title"] == "crm-api"
        assert "/v1/contacts" in openapi["paths"]
        schemas = openapi["components"]["schemas"]
        assert {"type", "title", "status", "detail", "errors"} <= set(
            schemas["Problem"]["properties"]
        )
        assert "FieldError" in schemas

    async def test_docs_routes_are_not_operations(self, openapi: dict[str, Any]) -> None:
        assert not {"/docs", "/redoc", "/openapi.json"} & set(openapi["paths"])

    async def test_operation_ids_are_resource_action_and_unique(
        self, openapi: dict[str, Any]
    ) -> None:
        found = operations(openapi)
        assert len(found) >= 20
        ids = [operation.get("operationId") for _, _, operation in found]
        duplicates = [name for name, count in Counter(ids).items() if count > 1]
        assert duplicates == []
        for method, path, operation in found:
            operation_id = operation["operationId"]
            assert OPERATION_ID.match(operation_id), (method, path, operation_id)
            [tag] = operation["tags"]
            resource = tag.replace("-", "_")
            assert operation_id.startswith(f"{resource}_"), (method, path, operation_id)

    async def test_known_operation_ids_are_stable(self, openapi: dict[str, Any]) -> None:
        ids = {(method, path): op["operationId"] for method, path, op in operations(openapi)}
        assert ids[("GET", "/v1/contacts")] == "contacts_list"
        assert ids[("POST", "/v1/contacts")] == "contacts_create"
        assert ids[("PATCH", "/v1/contacts/{contact_id}")] == "contacts_update"
        assert ids[("DELETE", "/v1/contacts/{contact_id}")] == "contacts_archive"
        assert ids[("POST", "/v1/contacts/{contact_id}/restore")] == "contacts_restore"
        assert ids[("GET", "/v1/users/me")] == "users_me"
        assert ids[("POST", "/v1/api-keys")] == "api_keys_create"
        assert ids[("DELETE", "/v1/api-keys/{key_id}")] == "api_keys_revoke"
        assert ids[("GET", "/v1/audit-log")] == "audit_log_list"
        assert ids[("GET", "/healthz")] == "health_live"
        assert ids[("GET", "/readyz")] == "health_ready"

    async def test_every_operation_declares_401_422_500_problems(
        self, openapi: dict[str, Any]
    ) -> None:
        checked = 0
        for method, path, operation in operations(openapi):
            if operation["tags"] == ["health"]:
                continue
            responses = operation["responses"]
            for status in ("401", "422", "500"):
                assert status in responses, (method, path, status)
                content = responses[status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
                assert content["application/problem+json"]["schema"] == PROBLEM_REF
            checked += 1
        assert checked >= 20

    async def test_declared_error_responses_are_all_problems(self, openapi: dict[str, Any]) -> None:
        for method, path, operation in operations(openapi):
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                assert response["content"] == {
                    "application/problem+json": {"schema": PROBLEM_REF}
                }, (method, path, status)

    async def test_health_operations_need_no_key(self, openapi: dict[str, Any]) -> None:
        health = [op for _, _, op in operations(openapi) if op["tags"] == ["health"]]
        assert len(health) == 2
        for operation in health:
            assert "401" not in operation["responses"]
            assert "security" not in operation

    async def test_authenticated_operations_declare_bearer_security(
        self, openapi: dict[str, Any]
    ) -> None:
        for method, path, operation in operations(openapi):
            if operation["tags"] == ["health"]:
                continue
            assert operation.get("security") == [{"HTTPBearer": []}], (method, path)
        assert openapi["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    async def test_served_document_matches_what_the_app_builds(
        self, openapi: dict[str, Any], app: Any, rep: Actor
    ) -> None:
        assert openapi == app.openapi()
        again = await rep.client.get("/openapi.json")
        assert again.json() == openapi
