"""The change feed, `GET /v1/events`: order, cursors, filters, retention, access, and the
guarantee that a reader following the cursor gets every event exactly once even when
transactions commit out of the order they wrote their events in."""

import asyncio
import base64
import random
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import Database
from crm_api.core.events import event_row, events
from crm_api.core.ids import utcnow, uuid7
from crm_api.feed.sequencer import place_committed, purge_expired
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


async def follow(client: httpx.AsyncClient, after: str | None = None, **params: Any) -> Any:
    query = {**params, **({"after": after} if after else {})}
    response = await client.get("/v1/events", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def now(client: httpx.AsyncClient) -> str:
    """The cursor at the feed's end (past the events of creating the test's users)."""
    response = await client.get("/v1/events/cursor")
    assert response.status_code == 200, response.text
    cursor: str = response.json()["cursor"]
    return cursor


async def test_changes_appear_in_order_with_their_data(admin: Actor) -> None:
    start = await now(admin.client)
    contact = (await admin.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
    updated = await admin.client.patch(
        f"/v1/contacts/{contact['id']}", json={"first_name": "Anne", "title": "CTO"}
    )
    await admin.client.delete(f"/v1/contacts/{contact['id']}")

    everything = await follow(admin.client)
    page = await follow(admin.client, start)
    assert page["data"] == everything["data"][-3:]
    assert [e["type"] for e in page["data"]] == [
        "contact.created", "contact.updated", "contact.archived"
    ]  # fmt: skip
    sequences = [e["sequence"] for e in everything["data"]]
    assert sequences == list(range(1, len(sequences) + 1))
    created, changed, archived = page["data"]
    assert {e["entity_id"] for e in page["data"]} == {contact["id"]}
    assert created["data"] == contact
    assert created["changed_fields"] is None
    assert changed["data"] == updated.json()
    assert changed["changed_fields"] == ["first_name", "title"]
    assert changed["entity_type"] == "contact"
    assert archived["data"]["archived_at"] is not None
    assert set(created) == {
        "id", "type", "occurred_at", "sequence", "entity_type", "entity_id", "changed_fields",
        "data",
    }  # fmt: skip


async def test_cursor_resumes_and_an_empty_page_keeps_the_position(admin: Actor) -> None:
    start = await now(admin.client)
    for name in ("A", "B", "C"):
        await admin.client.post("/v1/companies", json={"name": name})
    first = await follow(admin.client, start, limit=2)
    assert [e["data"]["name"] for e in first["data"]] == ["A", "B"]
    second = await follow(admin.client, first["next_cursor"], limit=2)
    assert [e["data"]["name"] for e in second["data"]] == ["C"]
    empty = await follow(admin.client, second["next_cursor"])
    assert empty["data"] == []
    assert empty["next_cursor"] == second["next_cursor"]
    await admin.client.post("/v1/companies", json={"name": "D"})
    latest = await follow(admin.client, empty["next_cursor"])
    assert [e["data"]["name"] for e in latest["data"]] == ["D"]
    assert latest["data"][0]["sequence"] == first["data"][0]["sequence"] + 3


async def test_types_filter_and_the_cursor_moves_past_other_events(admin: Actor) -> None:
    start = await now(admin.client)
    await admin.client.post("/v1/companies", json={"name": "Acme"})
    contact = (await admin.client.post("/v1/contacts", json={"first_name": "Bo"})).json()
    await admin.client.post("/v1/companies", json={"name": "Beta"})

    page = await follow(admin.client, start, types="contact.created,contact.updated")
    assert [e["entity_id"] for e in page["data"]] == [contact["id"]]
    # The page was not full, so the cursor moved to the end of the feed: what follows is new.
    await admin.client.patch(f"/v1/contacts/{contact['id']}", json={"title": "CEO"})
    more = await follow(admin.client, page["next_cursor"], types="contact.updated")
    assert [e["type"] for e in more["data"]] == ["contact.updated"]
    again = await follow(admin.client, more["next_cursor"], types="contact.updated")
    assert again["data"] == []
    companies = await follow(admin.client, types="company.created")
    assert [e["data"]["name"] for e in companies["data"]] == ["Acme", "Beta"]


async def test_cursor_endpoint_skips_history(admin: Actor) -> None:
    await admin.client.post("/v1/companies", json={"name": "Old"})
    cursor = await now(admin.client)
    await admin.client.post("/v1/companies", json={"name": "New"})
    page = await follow(admin.client, cursor)
    assert [e["data"]["name"] for e in page["data"]] == ["New"]


async def test_bad_input_gets_problems(admin: Actor) -> None:
    cases = [
        ({"after": "not-a-cursor"}, "query.after"),
        ({"limit": 1001}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"types": "Deal Won"}, "query.types"),
        ({"types": "deal.won,"}, "query.types"),
        ({"types": ",".join(f"x.t{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(51))},
         "query.types"),
    ]  # fmt: skip
    for params, field in cases:
        body = assert_problem(
            await admin.client.get("/v1/events", params=params), 422, "validation"
        )
        assert field in error_fields(body), (params, body)
    # A position past what a BIGINT holds is not a cursor either.
    huge = base64.urlsafe_b64encode(orjson.dumps({"s": "feed", "v": [2**63]})).decode()
    body = assert_problem(await admin.client.get("/v1/events", params={"after": huge}), 422,
                          "validation")  # fmt: skip
    assert error_fields(body) == {"query.after"}
    # A cursor of another listing is foreign here.
    contacts = await admin.client.get("/v1/contacts", params={"limit": 1})
    for _ in range(2):
        await admin.client.post("/v1/contacts", json={"first_name": "X"})
    foreign = (await admin.client.get("/v1/contacts", params={"limit": 1})).json()["next_cursor"]
    assert contacts.status_code == 200
    body = assert_problem(
        await admin.client.get("/v1/events", params={"after": foreign}), 422, "validation"
    )
    assert error_fields(body) == {"query.after"}


async def test_only_managers_and_admins_read_the_feed(
    rep: Actor, viewer: Actor, manager: Actor, anonymous: httpx.AsyncClient
) -> None:
    for actor in (rep, viewer):
        assert_problem(await actor.client.get("/v1/events"), 403, "forbidden")
        assert_problem(await actor.client.get("/v1/events/cursor"), 403, "forbidden")
    assert_problem(await anonymous.get("/v1/events"), 401, "unauthorized")
    assert (await manager.client.get("/v1/events")).status_code == 200


async def test_a_cursor_past_retention_is_gone(admin: Actor, db: Database) -> None:
    before = await follow(admin.client)
    users = len(before["data"])  # creating the test's admin and key
    for name in ("A", "B", "C"):
        await admin.client.post("/v1/companies", json={"name": name})
    start = await follow(admin.client, limit=1)
    assert start["data"][0]["sequence"] == 1
    # Every event up to company A is 31 days old; retention (30 days) deletes them.
    async with db.sessionmaker() as session:
        old = utcnow() - timedelta(days=31)
        statement = update(events).where(events.c.sequence <= users + 1).values(occurred_at=old)
        await session.execute(statement)
        await session.commit()
    assert await purge_expired(db, utcnow(), 30) == users + 1

    gone = assert_problem(
        await admin.client.get("/v1/events", params={"after": start["next_cursor"]}),
        410,
        "cursor-expired",
    )
    assert "/v1/events/cursor" in gone["detail"]
    fresh = await follow(admin.client)
    assert [e["data"]["name"] for e in fresh["data"]] == ["B", "C"]
    on_time = await follow(admin.client, fresh["next_cursor"])
    assert on_time["data"] == []
    # Once every event is gone, new ones still continue the sequence.
    async with db.sessionmaker() as session:
        await session.execute(update(events).values(occurred_at=utcnow() - timedelta(days=40)))
        await session.commit()
    assert await purge_expired(db, utcnow(), 30) == users + 3
    await admin.client.post("/v1/companies", json={"name": "D"})
    after_purge = await follow(admin.client, fresh["next_cursor"])
    assert [(e["sequence"], e["data"]["name"]) for e in after_purge["data"]] == [(users + 4, "D")]


def _event(name: str) -> dict[str, Any]:
    return event_row("test", "written", uuid7(), {"name": name}, utcnow())


async def test_an_event_that_commits_late_is_placed_after_the_earlier_commits(
    db: Database,
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time: commits cannot interleave")
    early: AsyncSession
    async with db.sessionmaker() as early, db.sessionmaker() as late:
        await early.execute(insert(events), _event("inserted first, committed last"))
        await late.execute(insert(events), _event("inserted last, committed first"))
        await late.commit()
        assert await place_committed(db) == 1
        await early.commit()
        assert await place_committed(db) == 1
    async with db.sessionmaker() as session:
        rows = (await session.execute(events.select().order_by(events.c.sequence))).mappings()
        placed = [(row["sequence"], row["data"]["name"]) for row in rows]
    assert placed == [(1, "inserted last, committed first"), (2, "inserted first, committed last")]


@pytest.fixture
def slow_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every commit waits a random few milliseconds first, so concurrent requests commit in
    another order than the one they wrote their events in."""
    commit = AsyncSession.commit

    async def delayed(self: AsyncSession) -> None:
        await asyncio.sleep(random.uniform(0, 0.03))
        await commit(self)

    monkeypatch.setattr(AsyncSession, "commit", delayed)


async def test_a_follower_gets_every_event_exactly_once_under_concurrent_writers(
    admin: Actor, slow_commits: None
) -> None:
    writers, per_writer = 8, 12
    companies = []
    for writer in range(writers):
        response = await admin.client.post("/v1/companies", json={"name": f"w{writer}"})
        companies.append(response.json()["id"])
    start = await now(admin.client)
    seen: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def write(writer: int) -> None:
        # Updates run in a transaction of their own, whose commit `slow_commits` delays.
        for i in range(per_writer):
            response = await admin.client.patch(
                f"/v1/companies/{companies[writer]}", json={"industry": f"w{writer}-{i}"}
            )
            assert response.status_code == 200, response.text

    async def poll() -> None:
        cursor = start
        while True:
            finished = done.is_set()
            page = await follow(admin.client, cursor, limit=7)
            seen.extend(page["data"])
            cursor = page["next_cursor"]
            if finished and not page["data"]:
                return
            await asyncio.sleep(0.002)

    poller = asyncio.create_task(poll())
    await asyncio.gather(*(write(w) for w in range(writers)))
    done.set()
    await poller
    written = sorted(e["data"]["industry"] for e in seen)
    assert written == sorted(f"w{w}-{i}" for w in range(writers) for i in range(per_writer))
    first = seen[0]["sequence"]
    assert [e["sequence"] for e in seen] == list(range(first, first + writers * per_writer))
