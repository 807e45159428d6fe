"""`POST /v1/{contacts|companies|deals}/batch/upsert` and `GET …/by-external-id/{id}`: matching
on external_id or the natural key, per-item results, all-or-nothing, errors naming the item,
and the audit rows and events each change brings."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from crm_api.contacts.models import Contact
from crm_api.core.db import Database
from tests.api.factories import create_contact, unique_domain, unique_email
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


async def upsert(client: httpx.AsyncClient, resource: str, items: list[dict[str, Any]]) -> Any:
    response = await client.post(f"/v1/{resource}/batch/upsert", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()


async def contact_count(db: Database) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Contact)) or 0)


async def test_contacts_are_created_updated_or_left_unchanged(admin: Actor) -> None:
    ann, bo = unique_email("ann"), unique_email("bo")
    items = [
        {"first_name": "Ann", "email": ann, "external_id": "ERP-1"},
        {"first_name": "Bo", "email": bo},
        {"first_name": "Cy"},
    ]
    first = await upsert(admin.client, "contacts", items)
    assert [(r["index"], r["result"]) for r in first["results"]] == [
        (0, "created"), (1, "created"), (2, "created")
    ]  # fmt: skip
    assert (first["created"], first["updated"], first["unchanged"]) == (3, 0, 0)
    ids = [r["id"] for r in first["results"]]

    by_erp = await admin.client.get("/v1/contacts/by-external-id/ERP-1")
    assert by_erp.status_code == 200, by_erp.text
    assert by_erp.json()["id"] == ids[0]
    assert by_erp.json()["email"] == ann

    again = await upsert(
        admin.client,
        "contacts",
        [
            {"first_name": "Ann", "external_id": "ERP-1"},
            {"email": bo.upper(), "title": "CTO"},  # matched on the normalized email
            {"first_name": "Cy"},  # no key: a new contact
        ],
    )
    assert [(r["id"], r["result"]) for r in again["results"][:2]] == [
        (ids[0], "unchanged"), (ids[1], "updated")
    ]  # fmt: skip
    assert again["results"][2]["result"] == "created"
    assert again["results"][2]["id"] != ids[2]
    updated = (await admin.client.get(f"/v1/contacts/{ids[1]}")).json()
    assert (updated["title"], updated["first_name"], updated["version"]) == ("CTO", "Bo", 2)


async def test_every_change_has_its_audit_row_and_event(admin: Actor) -> None:
    cursor = (await admin.client.get("/v1/events/cursor")).json()["cursor"]
    result = await upsert(
        admin.client,
        "contacts",
        [{"first_name": f"P{i}", "external_id": f"EV-{i}"} for i in range(3)],
    )
    await upsert(admin.client, "contacts", [{"external_id": "EV-1", "last_name": "Changed"}])
    events = (await admin.client.get("/v1/events", params={"after": cursor})).json()["data"]
    assert [(e["type"], e["entity_id"]) for e in events] == [
        *(("contact.created", r["id"]) for r in result["results"]),
        ("contact.updated", result["results"][1]["id"]),
    ]
    assert events[-1]["changed_fields"] == ["last_name"]
    audit = await admin.client.get(
        "/v1/audit-log", params={"entity_id": result["results"][1]["id"]}
    )
    assert [entry["action"] for entry in audit.json()["data"]] == ["updated", "created"]


async def test_one_bad_item_fails_the_call_and_names_itself(admin: Actor, db: Database) -> None:
    before = await contact_count(db)
    items: list[dict[str, Any]] = [{"first_name": "Ok", "external_id": "A-1"}] * 1
    items += [{"first_name": "Ok too"}, {"first_name": "Bad", "email": 5}]
    response = await admin.client.post("/v1/contacts/batch/upsert", json={"items": items})
    body = assert_problem(response, 422, "validation")
    assert error_fields(body) == {"body.items.2.email"}  # the format request validation uses
    # A check only the service makes (the company must exist) names the item too.
    items[2] = {"first_name": "Bad", "company_id": "01930000-0000-7000-8000-000000000000"}
    response = await admin.client.post("/v1/contacts/batch/upsert", json={"items": items})
    body = assert_problem(response, 422, "validation")
    assert error_fields(body) == {"body.items.2.company_id"}
    assert body["detail"].startswith("Item 2: ")
    assert await contact_count(db) == before


async def test_repeats_and_clashes(admin: Actor, db: Database) -> None:
    taken = await create_contact(admin, email=unique_email())
    before = await contact_count(db)
    repeated = [{"external_id": "R-1", "first_name": "A"}, {"external_id": "R-1"}]
    response = await admin.client.post("/v1/contacts/batch/upsert", json={"items": repeated})
    body = assert_problem(response, 422, "validation")
    assert error_fields(body) == {"body.items.1.external_id"}
    same_email = [
        {"external_id": "S-1", "email": "same@example.com"},
        {"external_id": "S-2", "email": "same@example.com"},
    ]
    response = await admin.client.post("/v1/contacts/batch/upsert", json={"items": same_email})
    assert error_fields(assert_problem(response, 422, "validation")) == {"body.items.1.email"}
    clash = [{"first_name": "New"}, {"external_id": "C-1", "email": taken["email"]}]
    # Matched on external_id (none), so it would create a second contact with a taken email.
    response = await admin.client.post("/v1/contacts/batch/upsert", json={"items": clash})
    body = assert_problem(response, 409, "conflict")
    assert body["existing_id"] == taken["id"]
    assert body["detail"].startswith("Item 1: ")
    assert await contact_count(db) == before


async def test_sizes_and_access(admin: Actor, rep: Actor, viewer: Actor) -> None:
    empty = await admin.client.post("/v1/contacts/batch/upsert", json={"items": []})
    assert_problem(empty, 422, "validation")
    too_many = [{"first_name": "x"}] * 1001
    response = await admin.client.post("/v1/contacts/batch/upsert", json={"items": too_many})
    assert_problem(response, 422, "validation")
    unknown = await admin.client.post("/v1/contacts/batch/upsert", json={"items": [], "x": 1})
    assert_problem(unknown, 422, "validation")
    theirs = await create_contact(admin, external_id="ADMIN-1", first_name="Theirs")
    response = await rep.client.post(
        "/v1/contacts/batch/upsert",
        json={"items": [{"first_name": "Mine"}, {"external_id": "ADMIN-1", "title": "X"}]},
    )
    body = assert_problem(response, 403, "forbidden")
    assert body["detail"].startswith("Item 1: ")
    assert (await admin.client.get(f"/v1/contacts/{theirs['id']}")).json()["title"] is None
    response = await viewer.client.post(
        "/v1/contacts/batch/upsert", json={"items": [{"first_name": "No"}]}
    )
    assert_problem(response, 403, "forbidden")


async def test_companies_match_on_domain_and_deals_on_external_id(admin: Actor) -> None:
    domain = unique_domain()
    first = await upsert(admin.client, "companies", [{"name": "Acme", "domain": domain}])
    again = await upsert(
        admin.client, "companies", [{"name": "Acme Inc", "domain": f"https://www.{domain}/"}]
    )
    assert again["results"][0]["id"] == first["results"][0]["id"]
    assert again["results"][0]["result"] == "updated"

    deals = [{"name": "Big", "external_id": "D-1", "amount": "100.00"}, {"name": "No key"}]
    created = await upsert(admin.client, "deals", deals)
    assert [r["result"] for r in created["results"]] == ["created", "created"]
    deals[0]["amount"] = "250.00"
    moved = await upsert(admin.client, "deals", deals)
    assert [r["result"] for r in moved["results"]] == ["updated", "created"]
    deal = (await admin.client.get("/v1/deals/by-external-id/D-1")).json()
    assert deal["amount"] == "250.00"


async def test_lookup_by_external_id_misses(admin: Actor) -> None:
    contact = await create_contact(admin, external_id="GONE-1")
    await admin.client.delete(f"/v1/contacts/{contact['id']}")
    for path in ("/v1/contacts/by-external-id/GONE-1", "/v1/contacts/by-external-id/none"):
        assert_problem(await admin.client.get(path), 404, "not-found")


async def test_a_match_is_checked_as_an_update(admin: Actor, rep: Actor) -> None:
    """Fields a PATCH may omit but not clear cannot be cleared through an upsert either."""
    await upsert(admin.client, "deals", [{"name": "Kept", "external_id": "N-1"}])
    response = await admin.client.post(
        "/v1/deals/batch/upsert",
        json={"items": [{"name": "Kept", "external_id": "N-1", "currency": None}]},
    )
    assert error_fields(assert_problem(response, 422, "validation")) == {"body.items.0.currency"}
    mine = await create_contact(rep, external_id="N-2")
    response = await admin.client.post(
        "/v1/contacts/batch/upsert", json={"items": [{"external_id": "N-2", "owner_id": None}]}
    )
    assert error_fields(assert_problem(response, 422, "validation")) == {"body.items.0.owner_id"}
    assert (await admin.client.get(f"/v1/contacts/{mine['id']}")).json()["owner_id"] == str(rep.id)


async def test_a_growing_table_gets_statistics_before_its_lookups(
    admin: Actor, db: Database
) -> None:
    """Indexes made on an empty table look empty to PostgreSQL's planner until statistics are
    taken; batch upserts take them once the table has outgrown them (see core.upsert)."""
    if db.is_sqlite:
        pytest.skip("SQLite's planner keeps no such statistics")
    statistics = text("SELECT reltuples FROM pg_class WHERE relname = 'contacts'")
    for call in range(3):
        items = [{"external_id": f"G-{call}-{n}", "first_name": "Grow"} for n in range(1000)]
        await upsert(admin.client, "contacts", items)
    async with db.sessionmaker() as session:
        assert (await session.scalar(statistics)) >= 1000
