"""Inputs that once reached the database or a parser unchecked, and races on revocation."""

import asyncio
import base64
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import func, select

from crm_api.companies.models import Company
from crm_api.core.audit import AuditEntry
from crm_api.core.db import Database
from crm_api.core.enums import Role
from tests.api.factories import create_company, create_contact, define_custom_field
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor, make_actor


def forged_cursor(values: list[Any], sort: str = "created_at") -> str:
    payload = orjson.dumps({"s": sort, "v": values})
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


class TestLengthsMatchTheColumns:
    async def test_labels_longer_than_their_column_are_422_not_500(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/companies", json={"name": "A", "industry": "x" * 101})
        assert "body.industry" in error_fields(assert_problem(response, 422, "validation"))
        response = await rep.client.post(
            "/v1/contacts", json={"email": "a@example.com", "lead_source": "y" * 101}
        )
        assert "body.lead_source" in error_fields(assert_problem(response, 422, "validation"))
        assert (await create_company(rep, industry="x" * 100))["industry"] == "x" * 100

    async def test_names_that_grow_when_case_folded_are_stored(self, rep: Actor) -> None:
        company = await create_company(rep, name="ß" * 150)
        assert company["name"] == "ß" * 150
        contact = await create_contact(rep, first_name="ﬃ" * 200, last_name="ﬃ" * 200)
        assert contact["first_name"] == "ﬃ" * 200


class TestUnstorableValues:
    async def test_lone_surrogate_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts",
            content=b'{"first_name": "\\ud800", "email": "s@example.com"}',
            headers={"Content-Type": "application/json"},
        )
        assert "body.first_name" in error_fields(assert_problem(response, 422, "validation"))

    async def test_custom_field_integer_beyond_64_bits_is_422(
        self, admin: Actor, rep: Actor
    ) -> None:
        await define_custom_field(admin, "contact", "n", "number")
        response = await rep.client.post(
            "/v1/contacts", json={"email": "n@example.com", "custom_fields": {"n": 2**70}}
        )
        assert_problem(response, 422, "validation")
        assert (await create_contact(rep, custom_fields={"n": 2**63 - 1}))["custom_fields"] == {
            "n": 2**63 - 1
        }

    async def test_timestamps_outside_the_utc_range_are_422(self, rep: Actor) -> None:
        for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            response = await rep.client.get("/v1/contacts", params={"created_after": value})
            assert "query.created_after" in error_fields(
                assert_problem(response, 422, "validation")
            )

    async def test_the_calendars_first_and_last_instants_are_422(self, rep: Actor) -> None:
        # PostgreSQL would store them as -infinity and infinity (read back without an offset,
        # and a 500 in lead-response metrics).
        contact = await create_contact(rep)
        first, last = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"
        bodies = [
            ("/v1/activities", {"type": "note", "body": "x", "occurred_at": first,
                                "contact_ids": [contact["id"]]}, "body.occurred_at"),
            ("/v1/activities", {"type": "note", "body": "x", "occurred_at": last,
                                "contact_ids": [contact["id"]]}, "body.occurred_at"),
            ("/v1/tasks", {"title": "x", "due_at": last}, "body.due_at"),
            ("/v1/deals", {"name": "x", "expected_close_date": "9999-12-31"},
             "body.expected_close_date"),
            ("/v1/deals", {"name": "x", "expected_close_date": "0001-01-01"},
             "body.expected_close_date"),
        ]  # fmt: skip
        for path, body, field in bodies:
            response = await rep.client.post(path, json=body)
            assert error_fields(assert_problem(response, 422, "validation")) == {field}, body
        near = {"type": "note", "body": "x", "occurred_at": "0001-01-01T00:00:00.000001Z",
                "contact_ids": [contact["id"]]}  # fmt: skip
        response = await rep.client.post("/v1/activities", json=near)
        assert response.status_code == 201, response.text
        assert response.json()["occurred_at"] == "0001-01-01T00:00:00.000001+00:00"


class TestForgedCursors:
    async def test_wrong_types_and_naive_or_overflowing_times_are_422(self, rep: Actor) -> None:
        for values in (
            ["2026-01-01T00:00:00+00:00", 5],
            ["2026-01-01T00:00:00", "01a203b9-8738-7de9-994e-eba0961a54f8"],
            ["0001-01-01T00:00:00+01:00", "01a203b9-8738-7de9-994e-eba0961a54f8"],
        ):
            response = await rep.client.get(
                "/v1/contacts", params={"cursor": forged_cursor(values)}
            )
            assert "query.cursor" in error_fields(assert_problem(response, 422, "validation"))

    async def test_values_the_database_could_not_bind_are_422(self, rep: Actor) -> None:
        last = "01a203b9-8738-7de9-994e-eba0961a54f8"
        listed = [
            ("/v1/deals", "amount", value)
            for value in (
                "x",
                "1e100000",
                "Infinity",
                "1E-100000",
                "99999999999999999999.9",
                "1.00001",
            )
        ] + [("/v1/contacts", "name", "\u0000"), ("/v1/companies", "name", "a\u0000b")]
        for path, sort, value in listed:
            cursor = forged_cursor([value, last], sort)
            response = await rep.client.get(path, params={"sort": sort, "cursor": cursor})
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"query.cursor"}, (path, value)
        for sort, value in (("employee_count", 2**31), ("name", "\u0000")):
            cursor = forged_cursor([value, last], sort)
            response = await rep.client.post(
                "/v1/companies/search", json={"sort": sort, "cursor": cursor}
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.cursor"}, (sort, value)
        fine = forged_cursor(["12.5", last], "amount")
        response = await rep.client.get("/v1/deals", params={"sort": "amount", "cursor": fine})
        assert response.status_code == 200, response.text


class TestIfMatchForms:
    async def test_non_ascii_digits_are_422(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        response = await rep.client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"title": "x"},
            headers={"If-Match": '"²"'.encode("latin-1")},
        )
        assert_problem(response, 422, "validation")

    async def test_weak_etag_never_matches(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        response = await rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"title": "x"}, headers={"If-Match": 'W/"1"'}
        )
        body = assert_problem(response, 412, "precondition-failed")
        assert body["current_version"] == 1
        assert body["detail"] == (
            "If-Match held only weak ETags, which never match; the record is at version 1: "
            "send its ETag as returned."
        )

    async def test_a_list_matches_any_of_its_versions(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        response = await rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"title": "x"}, headers={"If-Match": '"7", "1"'}
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"2"'


class TestScopes:
    async def test_a_write_only_key_cannot_read(self, app: Any, db: Database) -> None:
        writer = await make_actor(app, db, Role.rep, scopes=["write"])
        assert_problem(await writer.client.get("/v1/contacts"), 403, "forbidden")
        assert (
            await writer.client.post("/v1/contacts", json={"email": "w@example.com"})
        ).status_code == 201


class TestConcurrentRevokes:
    async def test_record_one_revocation(self, rep: Actor, db: Database) -> None:
        created = await rep.client.post("/v1/api-keys", json={"name": "spare"})
        key_id = created.json()["id"]
        responses = await asyncio.gather(
            *(rep.client.delete(f"/v1/api-keys/{key_id}") for _ in range(4))
        )
        assert [response.status_code for response in responses] == [204] * 4
        async with db.sessionmaker() as session:
            count = await session.scalar(
                select(func.count()).where(
                    AuditEntry.entity_id == UUID(key_id), AuditEntry.action == "revoked"
                )
            )
        assert count == 1


class TestCaseFoldedSearch:
    async def test_q_matches_sharp_s_either_way(self, rep: Actor) -> None:
        company = await create_company(rep, name="Großhandel Nord")
        for q in ("Großhandel", "grosshandel", "GROSS"):
            response = await rep.client.get("/v1/companies", params={"q": q})
            assert [row["id"] for row in response.json()["data"]] == [company["id"]], q


class TestJsonNull:
    async def test_null_is_sql_null_on_every_write_path(self, rep: Actor, db: Database) -> None:
        created = await create_company(rep)  # the create's batch path
        patched = await create_company(rep, address={"city": "Oslo"})
        response = await rep.client.patch(f"/v1/companies/{patched['id']}", json={"address": None})
        assert response.status_code == 200, response.text
        async with db.sessionmaker() as session:
            nulls = await session.scalar(
                select(func.count()).where(
                    Company.id.in_([UUID(created["id"]), UUID(patched["id"])]),
                    Company.address.is_(None),
                )
            )
        assert nulls == 2
