"""Activities through HTTP: every field rule, links, and the last_activity_at and
first_outreach_at they keep on contacts, companies and deals (after edits and deletes too)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_api.core.ids import clock
from tests.api.factories import archive, create_company, create_contact, create_deal, list_ids
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def log(actor: Actor, **fields: Any) -> dict[str, Any]:
    response = await actor.client.post("/v1/activities", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def read(actor: Actor, path: str) -> dict[str, Any]:
    response = await actor.client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def pinned_clock() -> Any:
    with clock.pinned(NOW):
        yield NOW


class TestFields:
    async def test_a_call_with_everything(self, rep: Actor, pinned_clock: datetime) -> None:
        contact = await create_contact(rep)
        company = await create_company(rep)
        deal = await create_deal(rep)
        body = await log(
            rep,
            type="call",
            subject="Intro",
            body="Talked about pricing.",
            occurred_at=iso(NOW - timedelta(hours=1)),
            duration_seconds=300,
            direction="outbound",
            outcome="connected",
            contact_ids=[contact["id"]],
            company_id=company["id"],
            deal_id=deal["id"],
        )
        assert body["type"] == "call"
        assert at(body["occurred_at"]) == NOW - timedelta(hours=1)
        assert body["contact_ids"] == [contact["id"]]
        assert body["attendee_contact_ids"] == []
        assert body["logged_by"] == str(rep.id)
        assert (await read(rep, f"/v1/activities/{body['id']}")) == body

    async def test_occurred_at_defaults_to_now(self, rep: Actor, pinned_clock: datetime) -> None:
        contact = await create_contact(rep)
        body = await log(rep, type="note", contact_ids=[contact["id"]])
        assert at(body["occurred_at"]) == NOW

    async def test_only_meetings_may_be_in_the_future(
        self, rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)
        tomorrow = iso(NOW + timedelta(days=1))
        for kind in ("call", "email", "note"):
            response = await rep.client.post(
                "/v1/activities",
                json={"type": kind, "occurred_at": tomorrow, "contact_ids": [contact["id"]]},
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.occurred_at"}
        meeting = await log(rep, type="meeting", occurred_at=tomorrow, contact_ids=[contact["id"]])
        assert at(meeting["occurred_at"]) == NOW + timedelta(days=1)

    async def test_fields_that_belong_to_other_types_are_422(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        cases = [
            ({"type": "note", "direction": "inbound"}, {"body.direction"}),
            ({"type": "meeting", "direction": "outbound"}, {"body.direction"}),
            ({"type": "email", "outcome": "busy"}, {"body.outcome"}),
            ({"type": "call", "attendee_contact_ids": [contact["id"]]},
             {"body.attendee_contact_ids"}),
            ({"type": "call", "outcome": "maybe"}, {"body.outcome"}),
            ({"type": "fax"}, {"body.type"}),
            ({"type": "call", "duration_seconds": -1}, {"body.duration_seconds"}),
            ({"type": "call", "contact_ids": [contact["id"], contact["id"]]},
             {"body.contact_ids"}),
            ({"type": "call", "occurred_at": "2026-01-01T10:00:00"}, {"body.occurred_at"}),
        ]  # fmt: skip
        for fields, expected in cases:
            fields.setdefault("contact_ids", [contact["id"]])
            response = await rep.client.post("/v1/activities", json=fields)
            assert error_fields(assert_problem(response, 422, "validation")) == expected, fields
        assert await list_ids(rep.client, "/v1/activities") == []

    async def test_body_up_to_64_kib(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        ok = await log(rep, type="note", body="é" * 32768, contact_ids=[contact["id"]])
        assert len(ok["body"]) == 32768
        response = await rep.client.post(
            "/v1/activities",
            json={"type": "note", "body": "x" * 65537, "contact_ids": [contact["id"]]},
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.body"}
        response = await rep.client.post(
            "/v1/activities",
            json={"type": "note", "body": "x" * 2_000_000, "contact_ids": [contact["id"]]},
        )
        assert_problem(response, 413, "payload-too-large")

    async def test_meeting_attendees(self, rep: Actor) -> None:
        host = await create_contact(rep)
        guest = await create_contact(rep)
        body = await log(
            rep, type="meeting", contact_ids=[host["id"]],
            attendee_contact_ids=[host["id"], guest["id"]],
        )  # fmt: skip
        assert body["contact_ids"] == [host["id"]]
        assert sorted(body["attendee_contact_ids"]) == sorted([host["id"], guest["id"]])


class TestLinks:
    async def test_at_least_one_link(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/activities", json={"type": "note"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.contact_ids"}
        company = await create_company(rep)
        assert (await log(rep, type="note", company_id=company["id"]))["company_id"]

    async def test_archived_or_unknown_links_are_422(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        company = await create_company(rep)
        deal = await create_deal(rep)
        for path in (f"/v1/contacts/{contact['id']}", f"/v1/companies/{company['id']}",
                     f"/v1/deals/{deal['id']}"):  # fmt: skip
            await archive(rep, path)
        cases = [
            ({"contact_ids": [contact["id"]]}, "body.contact_ids"),
            ({"company_id": company["id"]}, "body.company_id"),
            ({"deal_id": deal["id"]}, "body.deal_id"),
            ({"contact_ids": ["0190a0a0-0000-7000-8000-000000000000"]}, "body.contact_ids"),
        ]
        for fields, field in cases:
            response = await rep.client.post("/v1/activities", json={"type": "note", **fields})
            assert error_fields(assert_problem(response, 422, "validation")) == {field}

    async def test_filters(self, rep: Actor, other_rep: Actor, pinned_clock: datetime) -> None:
        alice = await create_contact(rep)
        bob = await create_contact(rep)
        deal = await create_deal(rep)
        call = await log(rep, type="call", contact_ids=[alice["id"]],
                         occurred_at=iso(NOW - timedelta(days=2)))  # fmt: skip
        note = await log(other_rep, type="note", contact_ids=[bob["id"]], deal_id=deal["id"],
                         occurred_at=iso(NOW - timedelta(days=1)))  # fmt: skip
        meeting = await log(rep, type="meeting", attendee_contact_ids=[alice["id"]],
                            occurred_at=iso(NOW + timedelta(days=1)))  # fmt: skip

        async def found(**params: Any) -> list[str]:
            return await list_ids(rep.client, "/v1/activities", **params)

        assert await found() == [meeting["id"], note["id"], call["id"]]
        assert await found(sort="occurred_at") == [call["id"], note["id"], meeting["id"]]
        assert await found(type="call") == [call["id"]]
        assert await found(logged_by=str(other_rep.id)) == [note["id"]]
        assert await found(contact_id=alice["id"]) == [meeting["id"], call["id"]]
        assert await found(deal_id=deal["id"]) == [note["id"]]
        assert await found(occurred_after=iso(NOW - timedelta(days=1)),
                           occurred_before=iso(NOW)) == [note["id"]]  # fmt: skip


class TestDerivedFields:
    async def test_last_activity_moves_only_forward_and_is_recomputed(
        self, rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)
        company = await create_company(rep)
        deal = await create_deal(rep)
        links = {"contact_ids": [contact["id"]], "company_id": company["id"], "deal_id": deal["id"]}
        paths = (f"/v1/contacts/{contact['id']}", f"/v1/companies/{company['id']}",
                 f"/v1/deals/{deal['id']}")  # fmt: skip

        async def last() -> set[datetime | None]:
            return {at((await read(rep, path))["last_activity_at"]) for path in paths}

        assert await last() == {None}
        recent = await log(rep, type="note", occurred_at=iso(NOW - timedelta(hours=1)), **links)
        assert await last() == {NOW - timedelta(hours=1)}
        older = await log(rep, type="note", occurred_at=iso(NOW - timedelta(days=3)), **links)
        assert await last() == {NOW - timedelta(hours=1)}, "an older activity changes nothing"

        moved = await rep.client.patch(
            f"/v1/activities/{older['id']}", json={"occurred_at": iso(NOW - timedelta(minutes=5))}
        )
        assert moved.status_code == 200, moved.text
        assert await last() == {NOW - timedelta(minutes=5)}
        await archive(rep, f"/v1/activities/{older['id']}")
        assert await last() == {NOW - timedelta(hours=1)}
        await archive(rep, f"/v1/activities/{recent['id']}")
        assert await last() == {None}
        restored = await rep.client.post(f"/v1/activities/{recent['id']}/restore")
        assert restored.status_code == 200
        assert await last() == {NOW - timedelta(hours=1)}

    async def test_unlinking_recomputes_the_record_left(self, rep: Actor) -> None:
        first = await create_contact(rep)
        second = await create_contact(rep)
        activity = await log(rep, type="note", contact_ids=[first["id"]])
        assert (await read(rep, f"/v1/contacts/{first['id']}"))["last_activity_at"]
        response = await rep.client.patch(
            f"/v1/activities/{activity['id']}", json={"contact_ids": [second["id"]]}
        )
        assert response.status_code == 200
        assert response.json()["contact_ids"] == [second["id"]]
        assert response.json()["version"] == 2
        assert (await read(rep, f"/v1/contacts/{first['id']}"))["last_activity_at"] is None
        assert (await read(rep, f"/v1/contacts/{second['id']}"))["last_activity_at"]

    async def test_first_outreach_is_the_first_outbound_call_email_or_meeting(
        self, rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)
        path = f"/v1/contacts/{contact['id']}"
        ids = [contact["id"]]

        async def first() -> datetime | None:
            return at((await read(rep, path))["first_outreach_at"])

        await log(rep, type="call", direction="inbound", contact_ids=ids,
                  occurred_at=iso(NOW - timedelta(days=9)))  # fmt: skip
        await log(rep, type="note", contact_ids=ids, occurred_at=iso(NOW - timedelta(days=8)))
        await log(rep, type="email", contact_ids=ids, occurred_at=iso(NOW - timedelta(days=7)))
        assert await first() is None, "inbound calls, notes and undirected emails do not count"
        email = await log(rep, type="email", direction="outbound", contact_ids=ids,
                          occurred_at=iso(NOW - timedelta(days=5)))  # fmt: skip
        assert await first() == NOW - timedelta(days=5)
        await log(rep, type="call", direction="outbound", contact_ids=ids,
                  occurred_at=iso(NOW - timedelta(days=2)))  # fmt: skip
        assert await first() == NOW - timedelta(days=5)
        meeting = await log(rep, type="meeting", attendee_contact_ids=ids,
                            occurred_at=iso(NOW - timedelta(days=6)))  # fmt: skip
        assert await first() == NOW - timedelta(days=6), "meetings count, attendees too"
        await archive(rep, f"/v1/activities/{meeting['id']}")
        assert await first() == NOW - timedelta(days=5)
        response = await rep.client.patch(
            f"/v1/activities/{email['id']}", json={"direction": "inbound"}
        )
        assert response.status_code == 200
        assert await first() == NOW - timedelta(days=2)


class TestPermissions:
    async def test_reps_change_only_what_they_logged(
        self, rep: Actor, other_rep: Actor, manager: Actor, viewer: Actor
    ) -> None:
        contact = await create_contact(rep)
        activity = await log(rep, type="note", contact_ids=[contact["id"]])
        path = f"/v1/activities/{activity['id']}"
        assert_problem(await other_rep.client.patch(path, json={"subject": "x"}), 403, "forbidden")
        assert_problem(await viewer.client.post("/v1/activities", json={"type": "note"}), 403,
                       "forbidden")  # fmt: skip
        assert (await manager.client.patch(path, json={"subject": "ok"})).status_code == 200
        stale = await rep.client.patch(path, json={"subject": "y"}, headers={"If-Match": '"1"'})
        assert_problem(stale, 412, "precondition-failed")


class TestConcurrency:
    async def test_concurrent_logging_keeps_the_newest(
        self, rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)
        company = await create_company(rep)
        times = [NOW - timedelta(hours=hours) for hours in (5, 1, 7, 3, 2, 6, 4, 8)]
        bodies = [
            {"type": "call", "direction": "outbound", "occurred_at": iso(moment),
             "contact_ids": [contact["id"]], "company_id": company["id"]}
            for moment in times
        ]  # fmt: skip
        responses = await asyncio.gather(
            *(rep.client.post("/v1/activities", json=body) for body in bodies)
        )
        assert [response.status_code for response in responses] == [201] * len(bodies)
        read_contact = await read(rep, f"/v1/contacts/{contact['id']}")
        assert at(read_contact["last_activity_at"]) == max(times)
        assert at(read_contact["first_outreach_at"]) == min(times)
        read_company = await read(rep, f"/v1/companies/{company['id']}")
        assert at(read_company["last_activity_at"]) == max(times)
