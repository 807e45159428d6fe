"""Merging duplicates through HTTP: the values the primary keeps, what moves to it (activities,
tasks, deal contacts; for companies their contacts, deals, activities and tasks), derived
fields, audit rows and events, the 404 naming `merged_into_id`, every check made before
anything is written, and that a failure half-way writes nothing."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_api.core.ids import clock
from crm_api.dedupe.merge import ContactMerger
from tests.api.factories import (
    archive,
    create_company,
    create_contact,
    create_deal,
    define_custom_field,
    list_ids,
    unique_domain,
)
from tests.api.helpers import (  # ids_follow_creation_order: an autouse fixture
    assert_problem,
    error_fields,
    ids_follow_creation_order,  # noqa: F401
)
from tests.conftest import Actor

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PHONE = "+14155552671"
CONTACTS = "/v1/contacts"
COMPANIES = "/v1/companies"


def iso(moment: datetime) -> str:
    """As the API writes instants (and reads them)."""
    return moment.isoformat()


@pytest.fixture
def pinned_clock() -> Iterator[datetime]:
    with clock.pinned(NOW):
        yield NOW


async def feed_end(client: httpx.AsyncClient) -> str:
    cursor: str = (await client.get("/v1/events/cursor")).json()["cursor"]
    return cursor


async def events_since(client: httpx.AsyncClient, cursor: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params={"after": cursor, "limit": 1000})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def read(actor: Actor, path: str) -> dict[str, Any]:
    response = await actor.client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def merge(actor: Actor, path: str, primary: Any, *duplicates: Any, **body: Any) -> Any:
    payload = {"primary_id": primary["id"], "duplicate_ids": [d["id"] for d in duplicates]}
    return await actor.client.post(f"{path}/merge", json={**payload, **body})


async def post(actor: Actor, path: str, **body: Any) -> dict[str, Any]:
    response = await actor.client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def audit_of(manager: Actor, record_id: str) -> list[tuple[str, Any]]:
    """The record's audit rows, oldest first, as (action, changes); a creation's changes are
    shown as its entity type."""
    response = await manager.client.get("/v1/audit-log", params={"entity_id": record_id})
    assert response.status_code == 200, response.text
    rows = reversed(response.json()["data"])
    return [
        (row["action"], row["entity_type"] if row["action"] == "created" else row["changes"])
        for row in rows
    ]


class TestMergeContacts:
    async def test_the_primary_keeps_chosen_values_and_fills_its_blanks(
        self, admin: Actor, rep: Actor, pinned_clock: datetime
    ) -> None:
        await define_custom_field(admin, "contact", "tier", "text")
        await define_custom_field(admin, "contact", "score", "number")
        await define_custom_field(admin, "contact", "region", "text")
        company = await create_company(rep)
        primary = await create_contact(
            rep,
            first_name="Ann",
            last_name="Lee",
            email="ann@example.com",
            company_id=company["id"],
            custom_fields={"tier": "gold"},
        )
        first = await create_contact(
            rep,
            first_name="Anne",
            last_name="Lee",
            email="ANN+work@example.com",
            phone=PHONE,
            title="CTO",
            lifecycle_stage="customer",
            do_not_contact=True,
            external_id="erp-9",
            custom_fields={"tier": "silver", "score": 7},
        )
        second = await create_contact(
            rep,
            first_name="A.",
            last_name="Lee",
            email="anne.lee@example.com",
            title="VP Sales",
            lead_source="event",
            custom_fields={"score": 9, "region": "emea"},
        )
        choices = {
            "email": first["id"],
            "lifecycle_stage": first["id"],
            "custom_fields.tier": first["id"],
        }

        response = await merge(rep, CONTACTS, primary, first, second, field_choices=choices)

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"2"'
        body = response.json()
        assert body == {
            "primary": {
                **primary,
                # Chosen from `first`; its email moves although emails are unique: `first` is
                # archived (out of the live index) before the primary takes it.
                "email": "ann+work@example.com",
                "lifecycle_stage": "customer",
                "lifecycle_stage_changed_at": iso(NOW),
                # Blanks of the primary, from the first duplicate that has a value.
                "phone": PHONE,
                "title": "CTO",
                "lead_source": "event",
                "external_id": "erp-9",
                "custom_fields": {"tier": "silver", "score": 7, "region": "emea"},
                # Any record's do-not-contact wins.
                "do_not_contact": True,
                "version": 2,
                "updated_at": iso(NOW),
            },
            "merged_ids": [first["id"], second["id"]],
        }
        assert await read(rep, f"{CONTACTS}/{primary['id']}") == body["primary"]
        archived = await rep.client.get(CONTACTS, params={"archived": "true"})
        assert {
            c["id"]: (c["merged_into_id"], c["archived_at"], c["version"], c["email"])
            for c in archived.json()["data"]
        } == {
            first["id"]: (primary["id"], iso(NOW), 2, "ann+work@example.com"),
            second["id"]: (primary["id"], iso(NOW), 2, "anne.lee@example.com"),
        }
        # The email is the primary's now: another contact cannot take it.
        clash = await rep.client.post(CONTACTS, json={"email": "ann+work@example.com"})
        assert assert_problem(clash, 409, "conflict")["existing_id"] == primary["id"]

    async def test_a_merged_id_is_404_naming_the_primary(self, rep: Actor) -> None:
        primary = await create_contact(rep)
        duplicate = await create_contact(rep)
        assert (await merge(rep, CONTACTS, primary, duplicate)).status_code == 200
        path = f"{CONTACTS}/{duplicate['id']}"

        for response in (
            await rep.client.get(path),
            await rep.client.patch(path, json={"title": "CEO"}),
            await rep.client.delete(path),
            await rep.client.post(f"{path}/restore"),
        ):
            body = assert_problem(response, 404, "not-found")
            assert body["merged_into_id"] == primary["id"]
            assert body["detail"] == (
                f"The contact {duplicate['id']} was merged into {primary['id']}."
            )
        # Its history stays readable.
        timeline = await rep.client.get(f"{path}/timeline")
        assert timeline.status_code == 200, timeline.text
        assert [item["kind"] for item in timeline.json()["data"]] == ["lifecycle_changed"]

    async def test_links_move_to_the_primary(
        self, rep: Actor, manager: Actor, pinned_clock: datetime
    ) -> None:
        primary = await create_contact(rep, first_name="Ann", email="ann@example.com")
        first = await create_contact(rep, first_name="Anne", email="anne@example.com")
        second = await create_contact(rep, first_name="Annie", email="annie@example.com")
        p, d1, d2 = primary["id"], first["id"], second["id"]
        hours = [iso(NOW - timedelta(hours=h)) for h in range(5)]
        call = await post(
            rep,
            "/v1/activities",
            type="call",
            direction="outbound",
            occurred_at=hours[3],
            contact_ids=[d1],
        )
        meeting = await post(
            rep,
            "/v1/activities",
            type="meeting",
            occurred_at=hours[2],
            contact_ids=[p],
            attendee_contact_ids=[d2],
        )
        note = await post(
            rep, "/v1/activities", type="note", occurred_at=hours[1], contact_ids=[p, d1]
        )
        email = await post(
            rep,
            "/v1/activities",
            type="email",
            direction="outbound",
            occurred_at=hours[4],
            contact_ids=[d2],
        )
        await archive(rep, f"/v1/activities/{email['id']}")
        soon = await post(
            rep, "/v1/tasks", title="Call back", contact_id=d1, due_at=iso(NOW + timedelta(days=1))
        )
        later = await post(
            rep, "/v1/tasks", title="Send deck", contact_id=p, due_at=iso(NOW + timedelta(days=2))
        )
        deals = [await create_deal(rep) for _ in range(3)]
        roles = [
            [(p, "other"), (d1, "champion")],
            [(d2, "decision_maker")],
            [(p, "decision_maker"), (d1, "influencer")],
        ]
        for deal, links in zip(deals, roles, strict=True):
            for contact_id, role in links:
                await post(
                    rep, f"/v1/deals/{deal['id']}/contacts", contact_id=contact_id, role=role
                )
        before = await read(rep, f"{CONTACTS}/{p}")
        assert (before["last_activity_at"], before["first_outreach_at"]) == (hours[1], hours[2])
        assert before["next_task"]["id"] == later["id"]
        start = await feed_end(manager.client)

        response = await merge(rep, CONTACTS, primary, first, second)

        assert response.status_code == 200, response.text
        merged = response.json()["primary"]
        # The note (1 h ago) is still the latest; the call (3 h ago, D1's) is now the first
        # outreach; the archived email (4 h ago) counts for neither; the task due tomorrow
        # (D1's) is the next one.
        assert (merged["last_activity_at"], merged["first_outreach_at"]) == (hours[1], hours[3])
        assert merged["next_task"]["id"] == soon["id"]
        assert await list_ids(rep.client, "/v1/activities", contact_id=p) == [
            note["id"],
            meeting["id"],
            call["id"],
        ]
        moved = {
            a["id"]: a
            for a in [
                await read(rep, f"/v1/activities/{x['id']}") for x in (call, meeting, note, email)
            ]
        }
        assert {
            key: (a["contact_ids"], a["attendee_contact_ids"], a["version"])
            for key, a in moved.items()
        } == {
            call["id"]: ([p], [], 2),
            meeting["id"]: ([p], [p], 2),  # linked, and attendee as D2 was
            note["id"]: ([p], [], 2),
            email["id"]: ([p], [], 3),  # archived (version 2) and moved all the same
        }
        assert await list_ids(rep.client, "/v1/tasks", contact_id=p) == [soon["id"], later["id"]]
        links = [(await read(rep, f"/v1/deals/{deal['id']}"))["contacts"] for deal in deals]
        links = [[(link["contact_id"], link["role"]) for link in each] for each in links]
        # The more meaningful role wins: champion over other; the primary's on the third.
        assert links == [[(p, "champion")], [(p, "decision_maker")], [(p, "decision_maker")]]
        timeline = (await read(rep, f"{CONTACTS}/{p}/timeline"))["data"]
        # Newest first; the two tasks were created at the same instant: the later id first.
        shown = [
            (item["kind"], item["id"])
            for item in timeline
            if item["kind"] in ("activity", "task_created")
        ]
        assert shown == [
            ("task_created", later["id"]),
            ("task_created", soon["id"]),
            ("activity", note["id"]),
            ("activity", meeting["id"]),
            ("activity", call["id"]),
        ]
        archived = {
            c["id"]: c
            for c in (await rep.client.get(CONTACTS, params={"archived": "true"})).json()["data"]
        }
        assert [(archived[d]["last_activity_at"], archived[d]["next_task"]) for d in (d1, d2)] == [
            (None, None),
            (None, None),
        ]

        feed = await events_since(manager.client, start)
        assert [(e["type"], e["entity_id"], e["changed_fields"]) for e in feed] == [
            ("activity.updated", call["id"], ["contact_ids"]),
            ("activity.updated", meeting["id"], ["attendee_contact_ids"]),
            ("activity.updated", note["id"], ["contact_ids"]),
            ("activity.updated", email["id"], ["contact_ids"]),
            ("task.updated", soon["id"], ["contact_id"]),
            ("deal.updated", deals[0]["id"], sorted([f"contacts.{d1}", f"contacts.{p}"])),
            ("deal.updated", deals[1]["id"], sorted([f"contacts.{d2}", f"contacts.{p}"])),
            ("deal.updated", deals[2]["id"], [f"contacts.{d1}"]),
            ("contact.archived", d1, None),
            ("contact.archived", d2, None),
            ("contact.updated", p, ["merged_ids"]),
            ("contact.merged", p, None),
        ]
        assert feed[-1]["data"] == response.json()
        assert feed[-2]["data"] == merged
        assert feed[8]["data"] == archived[d1]
        assert feed[0]["data"] == moved[call["id"]]

        assert await audit_of(manager, p) == [
            ("created", "contact"),
            ("updated", {"merged_ids": [None, [d1, d2]]}),
        ]
        assert await audit_of(manager, d1) == [
            ("created", "contact"),
            ("archived", {"archived_at": [None, iso(NOW)], "merged_into_id": [None, p]}),
        ]
        deal_changes = {
            f"contacts.{d1}": ["champion", None],
            f"contacts.{p}": ["other", "champion"],
        }
        assert (await audit_of(manager, deals[0]["id"]))[-1] == ("updated", deal_changes)
        assert (await audit_of(manager, call["id"]))[-1] == (
            "updated",
            {"contact_ids": [[d1], [p]]},
        )

    async def test_if_match_is_the_primarys(self, rep: Actor) -> None:
        primary = await create_contact(rep)
        duplicate = await create_contact(rep)
        body = {"primary_id": primary["id"], "duplicate_ids": [duplicate["id"]]}
        stale = await rep.client.post(f"{CONTACTS}/merge", json=body, headers={"If-Match": '"7"'})
        assert assert_problem(stale, 412, "precondition-failed")["current_version"] == 1
        fresh = await rep.client.post(f"{CONTACTS}/merge", json=body, headers={"If-Match": '"1"'})
        assert fresh.status_code == 200, fresh.text


class TestMergeChecks:
    """Every check happens before anything is written: after each refusal the records, their
    versions and the feed are as they were."""

    @pytest.fixture
    async def records(self, rep: Actor) -> list[dict[str, Any]]:
        return [await create_contact(rep) for _ in range(3)]

    async def _unchanged(self, actor: Actor, manager: Actor, records: Any, start: str) -> None:
        for record in records:
            assert await read(actor, f"{CONTACTS}/{record['id']}") == record
        assert await events_since(manager.client, start) == []

    async def test_invalid_requests_are_422(
        self, rep: Actor, manager: Actor, records: list[dict[str, Any]]
    ) -> None:
        primary, first, second = (r["id"] for r in records)
        outsider = (await create_contact(rep))["id"]
        start = await feed_end(manager.client)
        cases = [
            ({"duplicate_ids": [first, primary]}, {"body.duplicate_ids"}),
            ({"duplicate_ids": [first, first]}, {"body.duplicate_ids"}),
            ({"duplicate_ids": []}, {"body.duplicate_ids"}),
            ({"duplicate_ids": [first] * 21}, {"body.duplicate_ids"}),
            ({"field_choices": {"version": first}}, {"body.field_choices.version"}),
            (
                {"field_choices": {"custom_fields.Bad-Key": first}},
                {"body.field_choices.custom_fields.Bad-Key"},
            ),
            ({"field_choices": {"email": outsider, "title": second}}, {"body.field_choices.email"}),
            ({"field_choices": {"email": "not-a-uuid"}}, {"body.field_choices.email"}),
            ({"merged_into_id": primary}, {"body.merged_into_id"}),
        ]
        for change, fields in cases:
            body = {"primary_id": primary, "duplicate_ids": [first, second], **change}
            response = await rep.client.post(f"{CONTACTS}/merge", json=body)
            assert error_fields(assert_problem(response, 422, "validation")) == fields, change
        response = await rep.client.post(f"{CONTACTS}/merge", json={"duplicate_ids": [first]})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.primary_id"}
        await self._unchanged(rep, manager, [*records], start)

    async def test_every_problem_is_named(
        self, rep: Actor, manager: Actor, records: list[dict[str, Any]]
    ) -> None:
        primary, first, second = (r["id"] for r in records)
        nobody = "00000000-0000-0000-0000-000000000000"
        body = {
            "primary_id": primary,
            "duplicate_ids": [first, second, first, primary],
            "field_choices": {"nope": first, "title": nobody},
        }
        response = await rep.client.post(f"{CONTACTS}/merge", json=body)
        problem = assert_problem(response, 422, "validation")
        assert problem["errors"] == [
            {"field": "body.duplicate_ids", "message": "must not contain primary_id"},
            {"field": "body.duplicate_ids", "message": "must not repeat an id"},
            {"field": "body.field_choices.nope", "message": problem["errors"][2]["message"]},
            {
                "field": "body.field_choices.title",
                "message": "must be primary_id or one of duplicate_ids",
            },
        ]
        assert problem["errors"][2]["message"].startswith("not a field; one of: first_name, ")

    async def test_unknown_archived_and_merged_records(
        self, rep: Actor, manager: Actor, records: list[dict[str, Any]]
    ) -> None:
        primary, first, second = records
        unknown = "01a20000-0000-7000-8000-000000000000"
        response = await rep.client.post(
            f"{CONTACTS}/merge", json={"primary_id": primary["id"], "duplicate_ids": [unknown]}
        )
        assert assert_problem(response, 404, "not-found")["detail"] == (
            f"No contact has id {unknown}."
        )
        await archive(rep, f"{CONTACTS}/{second['id']}")
        archived = await merge(rep, CONTACTS, primary, second)
        assert assert_problem(archived, 409, "conflict")["detail"] == (
            f"The contact {second['id']} is archived; restore it before merging."
        )
        assert (await merge(rep, CONTACTS, first, primary)).status_code == 200
        again = await merge(rep, CONTACTS, await create_contact(rep), primary)
        problem = assert_problem(again, 409, "conflict")
        assert problem["merged_into_id"] == first["id"]
        assert problem["detail"] == (
            f"The contact {primary['id']} was already merged into {first['id']}."
        )

    async def test_callers_must_be_allowed_to_change_every_record(
        self,
        rep: Actor,
        other_rep: Actor,
        viewer: Actor,
        manager: Actor,
        records: list[dict[str, Any]],
    ) -> None:
        theirs = await create_contact(other_rep)
        start = await feed_end(manager.client)
        forbidden = await merge(rep, CONTACTS, records[0], theirs)
        assert assert_problem(forbidden, 403, "forbidden")["detail"] == (
            "Reps may change only records they own."
        )
        assert_problem(await merge(rep, CONTACTS, theirs, records[0]), 403, "forbidden")
        assert_problem(await merge(viewer, CONTACTS, *records), 403, "forbidden")
        await self._unchanged(rep, manager, records, start)
        assert await read(other_rep, f"{CONTACTS}/{theirs['id']}") == theirs
        # A manager merges anyone's.
        assert (await merge(manager, CONTACTS, records[0], theirs)).status_code == 200

    async def test_a_value_the_primary_may_not_take_is_refused_first(self, manager: Actor) -> None:
        # The company chosen for the primary is archived: checked as a PATCH would, before
        # the duplicate is archived.
        company = await create_company(manager)
        primary = await create_contact(manager)
        duplicate = await create_contact(manager, company_id=company["id"])
        await archive(manager, f"{COMPANIES}/{company['id']}")
        start = await feed_end(manager.client)

        response = await merge(
            manager, CONTACTS, primary, duplicate, field_choices={"company_id": duplicate["id"]}
        )

        assert error_fields(assert_problem(response, 422, "validation")) == {"body.company_id"}
        assert await read(manager, f"{CONTACTS}/{duplicate['id']}") == duplicate
        assert await events_since(manager.client, start) == []

    async def test_an_archived_company_is_not_filled_in_unasked(self, manager: Actor) -> None:
        company = await create_company(manager)
        primary = await create_contact(manager)
        duplicate = await create_contact(manager, company_id=company["id"], title="CFO")
        await archive(manager, f"{COMPANIES}/{company['id']}")

        response = await merge(manager, CONTACTS, primary, duplicate)

        assert response.status_code == 200, response.text
        merged = response.json()["primary"]
        assert (merged["company_id"], merged["title"]) == (None, "CFO")


class TestAtomicity:
    async def test_a_failure_half_way_writes_nothing(
        self, app: Any, rep: Actor, manager: Actor, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        primary = await create_contact(rep, first_name="Ann")
        duplicate = await create_contact(rep, first_name="Anne", email="ann+x@example.com")
        activity = await post(rep, "/v1/activities", type="note", contact_ids=[duplicate["id"]])
        deal = await create_deal(rep)
        await post(rep, f"/v1/deals/{deal['id']}/contacts", contact_id=duplicate["id"])
        deal = await read(rep, f"/v1/deals/{deal['id']}")
        start = await feed_end(manager.client)

        async def fail(*_: Any) -> None:
            raise RuntimeError("injected after every row was written")

        # After the duplicates were archived, the primary updated and the links moved.
        monkeypatch.setattr(ContactMerger, "refresh_derived", fail)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=rep.headers
        ) as client:
            body = {
                "primary_id": primary["id"],
                "duplicate_ids": [duplicate["id"]],
                "field_choices": {"email": duplicate["id"]},
            }
            response = await client.post(f"{CONTACTS}/merge", json=body)
        body = assert_problem(response, 500, "internal")
        assert body["request_id"] == response.headers["x-request-id"]

        assert await read(rep, f"{CONTACTS}/{primary['id']}") == primary
        assert await read(rep, f"{CONTACTS}/{duplicate['id']}") == {
            **duplicate,
            "last_activity_at": activity["occurred_at"],
        }
        assert await read(rep, f"/v1/activities/{activity['id']}") == activity
        assert await read(rep, f"/v1/deals/{deal['id']}") == deal
        assert await events_since(manager.client, start) == []

    async def test_crossed_merges_at_once_one_wins(self, rep: Actor) -> None:
        first = await create_contact(rep, first_name="Ann")
        second = await create_contact(rep, first_name="Anne")

        responses = await asyncio.gather(
            merge(rep, CONTACTS, first, second), merge(rep, CONTACTS, second, first)
        )

        # Both lock the two contacts in id order: the second to get them sees the first's
        # merge, and refuses.
        assert sorted(r.status_code for r in responses) == [200, 409]
        won = next(r for r in responses if r.status_code == 200).json()
        lost = assert_problem(next(r for r in responses if r.status_code == 409), 409, "conflict")
        (merged_id,) = won["merged_ids"]
        assert lost["merged_into_id"] == won["primary"]["id"]
        assert (await read(rep, f"{CONTACTS}/{won['primary']['id']}"))["version"] == 2
        gone = await rep.client.get(f"{CONTACTS}/{merged_id}")
        assert assert_problem(gone, 404, "not-found")["merged_into_id"] == won["primary"]["id"]


class TestMergeCompanies:
    async def test_everything_of_the_duplicates_moves(
        self, manager: Actor, rep: Actor, pinned_clock: datetime
    ) -> None:
        domain = unique_domain()
        primary = await create_company(
            manager, name="Acme", annual_revenue="10.00", annual_revenue_currency="USD"
        )
        duplicate = await create_company(
            manager,
            name="ACME Inc",
            domain=domain,
            phone=PHONE,
            annual_revenue="2000",
            annual_revenue_currency="EUR",
            industry="software",
        )
        p, d = primary["id"], duplicate["id"]
        contact = await create_contact(rep, company_id=d)
        gone = await create_contact(rep, company_id=d)
        await archive(rep, f"{CONTACTS}/{gone['id']}")
        deal = await create_deal(rep, company_id=d)
        at = iso(NOW - timedelta(hours=1))
        activity = await post(rep, "/v1/activities", type="note", company_id=d, occurred_at=at)
        task = await post(rep, "/v1/tasks", title="Renewal", company_id=d)
        start = await feed_end(manager.client)

        response = await merge(
            manager, COMPANIES, primary, duplicate, field_choices={"annual_revenue": d}
        )

        assert response.status_code == 200, response.text
        assert response.json() == {
            "primary": {
                **primary,
                "domain": domain,  # unique, moved from the archived duplicate
                "phone": PHONE,
                "industry": "software",
                "annual_revenue": "2000.00",
                "annual_revenue_currency": "EUR",
                "last_activity_at": at,
                "version": 2,
                "updated_at": iso(NOW),
            },
            "merged_ids": [d],
        }
        assert (await read(rep, f"{CONTACTS}/{contact['id']}"))["company"] == {
            "id": p,
            "name": "Acme",
            "domain": domain,
        }
        assert await list_ids(rep.client, CONTACTS, company_id=p) == [contact["id"]]
        assert await list_ids(rep.client, CONTACTS, company_id=p, archived="true") == [gone["id"]]
        assert (await read(rep, f"/v1/deals/{deal['id']}"))["company"]["id"] == p
        assert (await read(rep, f"/v1/activities/{activity['id']}"))["company_id"] == p
        assert (await read(rep, f"/v1/tasks/{task['id']}"))["company_id"] == p
        timeline = (await read(manager, f"{COMPANIES}/{p}/timeline"))["data"]
        assert {(item["kind"], item["id"]) for item in timeline} >= {
            ("activity", activity["id"]),
            ("task_created", task["id"]),
        }
        problem = assert_problem(await manager.client.get(f"{COMPANIES}/{d}"), 404, "not-found")
        assert problem["merged_into_id"] == p

        feed = await events_since(manager.client, start)
        assert [(e["type"], e["entity_id"], e["changed_fields"]) for e in feed] == [
            ("contact.updated", contact["id"], ["company_id"]),
            ("contact.updated", gone["id"], ["company_id"]),
            ("deal.updated", deal["id"], ["company_id"]),
            ("activity.updated", activity["id"], ["company_id"]),
            ("task.updated", task["id"], ["company_id"]),
            ("company.archived", d, None),
            (
                "company.updated",
                p,
                sorted(
                    [
                        "annual_revenue",
                        "annual_revenue_currency",
                        "domain",
                        "industry",
                        "merged_ids",
                        "phone",
                    ]
                ),
            ),
            ("company.merged", p, None),
        ]
        assert feed[0]["data"]["company"]["id"] == p
        assert feed[-1]["data"] == response.json()

    async def test_reps_merge_their_own(self, rep: Actor, other_rep: Actor) -> None:
        mine = [await create_company(rep) for _ in range(2)]
        theirs = await create_company(other_rep)
        assert_problem(await merge(rep, COMPANIES, mine[0], theirs), 403, "forbidden")
        assert (await merge(rep, COMPANIES, *mine)).status_code == 200


class TestMergeCustomFields:
    async def test_archived_values_stay_and_a_chosen_blank_clears(self, admin: Actor) -> None:
        legacy = await define_custom_field(admin, "contact", "legacy", "text")
        await define_custom_field(admin, "contact", "note", "text")
        await define_custom_field(admin, "contact", "tier", "text")
        primary = await create_contact(
            admin, first_name="P", custom_fields={"legacy": "x", "tier": "gold"}
        )
        duplicate = await create_contact(
            admin, first_name="D", custom_fields={"note": "y", "legacy": "z"}
        )
        assert (await admin.client.delete(f"/v1/custom-fields/{legacy['id']}")).status_code == 204
        response = await admin.client.post(
            f"{CONTACTS}/merge",
            json={
                "primary_id": primary["id"],
                "duplicate_ids": [duplicate["id"]],
                "field_choices": {"custom_fields.tier": duplicate["id"]},
            },
        )
        assert response.status_code == 200, response.text
        # The archived field's value stays where it was; the live blank is filled; the chosen
        # record has no tier, so the primary's goes.
        assert response.json()["primary"]["custom_fields"] == {"legacy": "x", "note": "y"}

    async def test_a_merged_record_holding_a_removed_option_is_rewritten(
        self, admin: Actor
    ) -> None:
        field = await define_custom_field(
            admin, "contact", "tier", "enum", options=[{"value": "gold"}, {"value": "silver"}]
        )
        duplicate = await create_contact(admin, first_name="A", custom_fields={"tier": "gold"})
        primary = await create_contact(admin, first_name="B")
        merged = await admin.client.post(
            f"{CONTACTS}/merge",
            json={
                "primary_id": primary["id"],
                "duplicate_ids": [duplicate["id"]],
                "field_choices": {"custom_fields.tier": primary["id"]},
            },
        )
        assert merged.json()["primary"]["custom_fields"] == {}
        response = await admin.client.patch(
            f"/v1/custom-fields/{field['id']}",
            json={"options": [{"value": "silver"}], "option_replacements": {"gold": "silver"}},
        )
        assert response.status_code == 200, response.text
        archived = await admin.client.get(CONTACTS, params={"archived": "true"})
        assert [c["custom_fields"] for c in archived.json()["data"]] == [{"tier": "silver"}]
