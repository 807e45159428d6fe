"""Errors through HTTP: every failure is an RFC 9457 problem, never a stack trace or SQL text;
and request ids, which tie a response (and its problem) to the logs."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from tests.api.factories import define_custom_field
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

LEAKS = ("traceback", "sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg", 'file "')
MAX_BODY = 1_048_576
GENERATED_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def assert_clean_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """A problem of `status`, with nothing of the server's internals in it."""
    assert response.status_code != 500, response.text
    body = assert_problem(response, status, slug)
    text = response.text.lower()
    for leak in LEAKS:
        assert leak not in text, (leak, response.text)
    assert body["type"] == f"https://crm-api.dev/problems/{slug}"
    return body


def assert_errors_shape(body: dict[str, Any]) -> None:
    assert isinstance(body["errors"], list)
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"field", "message"}, error
        assert isinstance(error["field"], str)
        assert error["field"]
        assert isinstance(error["message"], str)
        assert error["message"]


def big_contact_json(size: int) -> bytes:
    body = orjson.dumps({"first_name": "Big", "custom_fields": {"notes": "x" * size}})
    assert len(body) > size
    return body


class TestUnknownRoute:
    async def test_unknown_path_is_404_problem(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/v1/no-such-things")
        body = assert_clean_problem(response, 404, "not-found")
        assert body["status"] == 404
        assert body["title"] == "Not Found"

    async def test_unknown_path_with_a_key_is_404_problem(self, rep: Actor) -> None:
        assert_clean_problem(await rep.client.get("/v2/contacts"), 404, "not-found")

    async def test_unknown_record_is_404_problem(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts/01a203b2-0000-7000-8000-000000000000")
        body = assert_clean_problem(response, 404, "not-found")
        assert "01a203b2-0000-7000-8000-000000000000" in body["detail"]


class TestWrongMethod:
    async def test_put_on_a_collection_is_405_problem(self, rep: Actor) -> None:
        response = await rep.client.put("/v1/contacts", json={"first_name": "A"})
        body = assert_clean_problem(response, 405, "method-not-allowed")
        assert body["title"] == "Method Not Allowed"

    async def test_405_allow_lists_every_method_of_the_resource(self, rep: Actor) -> None:
        collection = await rep.client.put("/v1/contacts", json={})
        assert_clean_problem(collection, 405, "method-not-allowed")
        allowed = {method.strip() for method in collection.headers["allow"].split(",")}
        assert allowed >= {"GET", "POST"}, collection.headers["allow"]

        item = await rep.client.put("/v1/contacts/01a203b2-0000-7000-8000-000000000000", json={})
        assert_clean_problem(item, 405, "method-not-allowed")
        allowed = {method.strip() for method in item.headers["allow"].split(",")}
        assert allowed >= {"GET", "PATCH", "DELETE"}, item.headers["allow"]


class TestMalformedBody:
    async def test_malformed_json_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts",
            content=b'{"first_name": "Ann",',
            headers={"Content-Type": "application/json"},
        )
        body = assert_clean_problem(response, 422, "validation")
        assert_errors_shape(body)
        assert all(error["field"].startswith("body") for error in body["errors"])
        assert (await rep.client.get("/v1/contacts")).json()["data"] == []

    async def test_a_json_array_instead_of_an_object_is_422(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/contacts", json=[{"first_name": "Ann"}])
        body = assert_clean_problem(response, 422, "validation")
        assert_errors_shape(body)

    async def test_unknown_field_is_422_naming_it(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ann", "favourite_colour": "blue"}
        )
        body = assert_clean_problem(response, 422, "validation")
        assert_errors_shape(body)
        assert error_fields(body) == {"body.favourite_colour"}
        assert body["detail"] == "The request is invalid; see `errors`."

    async def test_unknown_field_in_a_patch_is_422(self, rep: Actor) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        response = await rep.client.patch(f"/v1/contacts/{contact['id']}", json={"version": 9})
        body = assert_clean_problem(response, 422, "validation")
        assert error_fields(body) == {"body.version"}

    async def test_list_for_a_boolean_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ann", "email_opt_in": ["yes"]}
        )
        body = assert_clean_problem(response, 422, "validation")
        assert_errors_shape(body)
        assert error_fields(body) == {"body.email_opt_in"}

    async def test_object_for_a_string_is_422(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/contacts", json={"first_name": {"given": "Ann"}})
        body = assert_clean_problem(response, 422, "validation")
        assert error_fields(body) == {"body.first_name"}

    async def test_every_bad_field_is_listed_at_once(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts",
            json={
                "first_name": ["Ann"],
                "email": "not-an-email",
                "lifecycle_stage": "prospect",
                "email_opt_in": {"value": True},
                "owner_id": "not-a-uuid",
                "shoe_size": 42,
            },
        )
        body = assert_clean_problem(response, 422, "validation")
        assert_errors_shape(body)
        assert error_fields(body) == {
            "body.first_name",
            "body.email",
            "body.lifecycle_stage",
            "body.email_opt_in",
            "body.owner_id",
            "body.shoe_size",
        }
        assert (await rep.client.get("/v1/contacts")).json()["data"] == []


class TestNulCharacters:
    async def test_nul_in_a_string_field_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts",
            content=b'{"first_name": "An\\u0000n"}',
            headers={"Content-Type": "application/json"},
        )
        body = assert_clean_problem(response, 422, "validation")
        assert body["errors"] == [
            {"field": "body.first_name", "message": "Value error, must not contain NUL characters"}
        ]

    async def test_nul_in_a_patch_is_422(self, rep: Actor) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        response = await rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"title": "Head\x00of Sales"}
        )
        body = assert_clean_problem(response, 422, "validation")
        assert error_fields(body) == {"body.title"}
        assert (await rep.client.get(f"/v1/contacts/{contact['id']}")).json()["version"] == 1

    async def test_nul_in_a_custom_field_value_or_key_is_422(self, rep: Actor) -> None:
        value = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ann", "custom_fields": {"notes": "a\x00b"}}
        )
        assert error_fields(assert_clean_problem(value, 422, "validation")) == {
            "body.custom_fields"
        }
        key = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ann", "custom_fields": {"no\x00tes": "ab"}}
        )
        body = assert_clean_problem(key, 422, "validation")
        assert all(error["field"].startswith("body.custom_fields") for error in body["errors"])

    async def test_nul_in_a_user_name_is_422(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/users", json={"email": "nul@example.com", "name": "Nu\x00ll"}
        )
        assert error_fields(assert_clean_problem(response, 422, "validation")) == {"body.name"}

    async def test_nul_in_a_query_parameter_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts?q=%00")
        body = assert_clean_problem(response, 422, "validation")
        assert body["errors"] == [
            {"field": "query.q", "message": "Value error, must not contain NUL characters"}
        ]

    async def test_nul_in_other_query_parameters_is_422(self, rep: Actor) -> None:
        for query in ("lead_source=web%00", "sort=name%00", "cursor=abc%00"):
            response = await rep.client.get(f"/v1/contacts?{query}")
            body = assert_clean_problem(response, 422, "validation")
            assert error_fields(body) == {"query." + query.split("=")[0]}, query


class TestLimits:
    async def test_limit_above_500_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts", params={"limit": 501})
        body = assert_clean_problem(response, 422, "validation")
        assert error_fields(body) == {"query.limit"}

    async def test_limit_of_500_is_fine_and_0_is_not(self, rep: Actor) -> None:
        assert (await rep.client.get("/v1/contacts", params={"limit": 500})).status_code == 200
        zero = await rep.client.get("/v1/contacts", params={"limit": 0})
        assert error_fields(assert_clean_problem(zero, 422, "validation")) == {"query.limit"}

    async def test_non_numeric_limit_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts", params={"limit": "many"})
        assert error_fields(assert_clean_problem(response, 422, "validation")) == {"query.limit"}


class TestBodySizeLimit:
    async def test_body_over_1_mib_with_content_length_is_413(self, rep: Actor) -> None:
        payload = big_contact_json(1_100_000)
        response = await rep.client.post(
            "/v1/contacts", content=payload, headers={"Content-Type": "application/json"}
        )
        assert response.request.headers["content-length"] == str(len(payload))
        body = assert_clean_problem(response, 413, "payload-too-large")
        assert body["detail"] == f"Request bodies are limited to {MAX_BODY} bytes."
        assert (await rep.client.get("/v1/contacts")).json()["data"] == []

    async def test_streamed_body_over_1_mib_without_content_length_is_413(self, rep: Actor) -> None:
        payload = big_contact_json(1_100_000)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 64 * 1024):
                yield payload[start : start + 64 * 1024]

        response = await rep.client.post(
            "/v1/contacts", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        body = assert_clean_problem(response, 413, "payload-too-large")
        assert body["detail"] == f"Request bodies are limited to {MAX_BODY} bytes."
        assert (await rep.client.get("/v1/contacts")).json()["data"] == []

    async def test_413_is_answered_before_authentication(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        response = await anonymous.post(
            "/v1/contacts",
            content=big_contact_json(1_100_000),
            headers={"Content-Type": "application/json"},
        )
        assert_clean_problem(response, 413, "payload-too-large")

    async def test_a_streamed_body_under_the_limit_is_accepted(
        self, admin: Actor, rep: Actor
    ) -> None:
        await define_custom_field(admin, "contact", "notes", "text")
        payload = orjson.dumps({"first_name": "Streamed", "custom_fields": {"notes": "x" * 1000}})

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 100):
                yield payload[start : start + 100]

        response = await rep.client.post(
            "/v1/contacts", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text
        assert response.json()["custom_fields"] == {"notes": "x" * 1000}


class TestRequestIds:
    async def test_every_response_carries_a_generated_request_id(
        self, anonymous: httpx.AsyncClient, rep: Actor
    ) -> None:
        responses = [
            await anonymous.get("/healthz"),
            await rep.client.get("/v1/contacts"),
            await anonymous.get("/v1/contacts"),
            await anonymous.get("/nowhere"),
        ]
        ids = [response.headers["x-request-id"] for response in responses]
        for request_id in ids:
            assert GENERATED_ID.match(request_id), request_id
        assert len(set(ids)) == len(ids)

    async def test_a_valid_incoming_id_is_echoed(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts", headers={"X-Request-ID": "abc-123"})
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == "abc-123"

    async def test_a_valid_incoming_id_appears_in_the_problem(self, rep: Actor) -> None:
        response = await rep.client.get(
            "/v1/contacts/01a203b2-0000-7000-8000-000000000000", headers={"X-Request-ID": "abc-123"}
        )
        body = assert_clean_problem(response, 404, "not-found")
        assert response.headers["x-request-id"] == "abc-123"
        assert body["request_id"] == "abc-123"

    async def test_incoming_id_appears_in_401_422_and_413_problems(
        self, anonymous: httpx.AsyncClient, rep: Actor
    ) -> None:
        headers = {"X-Request-ID": "trace.42:a_b"}
        unauthorized = await anonymous.get("/v1/contacts", headers=headers)
        invalid = await rep.client.get("/v1/contacts?limit=0", headers=headers)
        too_large = await rep.client.post(
            "/v1/contacts",
            content=big_contact_json(1_100_000),
            headers={**headers, "Content-Type": "application/json"},
        )
        for response, status, slug in (
            (unauthorized, 401, "unauthorized"),
            (invalid, 422, "validation"),
            (too_large, 413, "payload-too-large"),
        ):
            body = assert_clean_problem(response, status, slug)
            assert response.headers["x-request-id"] == "trace.42:a_b"
            assert body["request_id"] == "trace.42:a_b"

    async def test_an_id_of_128_characters_is_kept(self, rep: Actor) -> None:
        request_id = "a" * 128
        response = await rep.client.get("/v1/contacts", headers={"X-Request-ID": request_id})
        assert response.headers["x-request-id"] == request_id

    async def test_an_overlong_id_is_replaced(self, rep: Actor) -> None:
        for request_id in ("a" * 129, "b" * 300):
            response = await rep.client.get(
                "/v1/contacts/01a203b2-0000-7000-8000-000000000000",
                headers={"X-Request-ID": request_id},
            )
            body = assert_clean_problem(response, 404, "not-found")
            assert GENERATED_ID.match(response.headers["x-request-id"])
            assert body["request_id"] == response.headers["x-request-id"]

    async def test_an_id_with_spaces_or_odd_characters_is_replaced(self, rep: Actor) -> None:
        for request_id in ("abc 123", "abc/123", "<script>", "id;drop"):
            response = await rep.client.get("/v1/contacts", headers={"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"] != request_id
            assert GENERATED_ID.match(response.headers["x-request-id"]), request_id

    async def test_an_empty_id_is_replaced(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts", headers={"X-Request-ID": ""})
        assert GENERATED_ID.match(response.headers["x-request-id"])

    async def test_exactly_one_request_id_header(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts", headers={"X-Request-ID": "abc-123"})
        assert response.headers.get_list("x-request-id") == ["abc-123"]
