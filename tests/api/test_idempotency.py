"""`Idempotency-Key` on writes: replay, mismatch, in-flight, malformed, scope, expiry, and
that the key commits with the write (an error stores nothing, so a retry runs again)."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.models import Contact
from crm_api.core.db import Database
from crm_api.core.ids import utcnow
from crm_api.core.responses import JSONBody
from crm_api.idempotency.models import idempotency_keys
from tests.api.factories import unique_email
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def contacts_with(db: Database, email: str) -> int:
    async with db.sessionmaker() as session:
        count = select(func.count()).select_from(Contact).where(Contact.email == email)
        return int(await session.scalar(count) or 0)


async def test_a_replay_returns_the_first_response_and_writes_nothing(
    rep: Actor, db: Database
) -> None:
    body = {"first_name": "Ann", "email": unique_email()}
    first = await rep.client.post("/v1/contacts", json=body, headers=keyed("create-ann-1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await rep.client.post("/v1/contacts", json=body, headers=keyed("create-ann-1"))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    for header in ("location", "etag", "content-type"):
        assert again.headers[header] == first.headers[header]
    assert await contacts_with(db, body["email"]) == 1


async def test_the_same_key_for_another_request_is_422(rep: Actor, db: Database) -> None:
    email = unique_email()
    await rep.client.post("/v1/contacts", json={"email": email}, headers=keyed("k-1"))
    other = await rep.client.post(
        "/v1/contacts", json={"email": unique_email()}, headers=keyed("k-1")
    )
    body = assert_problem(other, 422, "validation")
    assert error_fields(body) == {"header.Idempotency-Key"}
    elsewhere = await rep.client.post("/v1/companies", json={"name": "Acme"}, headers=keyed("k-1"))
    assert_problem(elsewhere, 422, "validation")
    assert await contacts_with(db, email) == 1


@pytest.mark.parametrize("key", [b"", b"with space", "é".encode("latin-1"), b"x" * 256, b"a\tb"])
async def test_a_malformed_key_is_400(rep: Actor, key: bytes) -> None:
    headers = {"Idempotency-Key": key}
    response = await rep.client.post("/v1/contacts", json={"first_name": "A"}, headers=headers)
    assert_problem(response, 400, "bad-request")


async def test_keys_belong_to_one_api_key(rep: Actor, manager: Actor) -> None:
    body = {"name": "Acme"}
    mine = await rep.client.post("/v1/companies", json=body, headers=keyed("shared"))
    theirs = await manager.client.post("/v1/companies", json=body, headers=keyed("shared"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


async def test_a_failed_write_stores_nothing_and_can_be_retried(rep: Actor) -> None:
    email = unique_email()
    await rep.client.post("/v1/contacts", json={"email": email})
    clash = await rep.client.post("/v1/contacts", json={"email": email}, headers=keyed("r-1"))
    assert_problem(clash, 409, "conflict")
    fixed = await rep.client.post(
        "/v1/contacts", json={"email": unique_email()}, headers=keyed("r-2")
    )
    assert fixed.status_code == 201
    invalid = await rep.client.post("/v1/contacts", json={"email": 5}, headers=keyed("r-3"))
    assert_problem(invalid, 422, "validation")
    retried = await rep.client.post("/v1/contacts", json={"first_name": "Ok"}, headers=keyed("r-3"))
    assert retried.status_code == 201, retried.text


async def test_updates_and_actions_replay_too(rep: Actor) -> None:
    contact = (await rep.client.post("/v1/contacts", json={"first_name": "A"})).json()
    path = f"/v1/contacts/{contact['id']}"
    first = await rep.client.patch(
        path, json={"title": "CTO"}, headers={**keyed("p-1"), "If-Match": '"1"'}
    )
    assert first.status_code == 200, first.text
    # Without the key, the same stale If-Match would now be 412; with it, the first answer.
    again = await rep.client.patch(
        path, json={"title": "CTO"}, headers={**keyed("p-1"), "If-Match": '"1"'}
    )
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["version"] == 2
    archived = await rep.client.delete(path, headers=keyed("d-1"))
    replayed = await rep.client.delete(path, headers=keyed("d-1"))
    assert archived.status_code == replayed.status_code == 204
    assert replayed.headers["idempotent-replayed"] == "true"


async def test_a_key_still_in_flight_is_409(
    rep: Actor, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rep.client.get("/v1/companies")  # the key is verified and cached: no commit for that
    commit = AsyncSession.commit
    entered = asyncio.Event()
    proceed = asyncio.Event()

    async def held_commit(self: AsyncSession) -> None:
        entered.set()
        await proceed.wait()
        await commit(self)

    monkeypatch.setattr(AsyncSession, "commit", held_commit)
    body = {"name": "Slow"}
    first = asyncio.create_task(rep.client.post("/v1/companies", json=body, headers=keyed("busy")))
    await entered.wait()
    second = await rep.client.post("/v1/companies", json=body, headers=keyed("busy"))
    assert_problem(second, 409, "conflict")
    proceed.set()
    assert (await first).status_code == 201
    monkeypatch.setattr(AsyncSession, "commit", commit)
    third = await rep.client.post("/v1/companies", json=body, headers=keyed("busy"))
    assert third.status_code == 201
    assert third.headers["idempotent-replayed"] == "true"


async def test_a_key_older_than_a_day_is_free_again(rep: Actor, db: Database) -> None:
    body: dict[str, Any] = {"name": "Acme"}
    first = await rep.client.post("/v1/companies", json=body, headers=keyed("old"))
    async with db.sessionmaker() as session:
        stale = utcnow() - timedelta(hours=24, seconds=1)
        await session.execute(update(idempotency_keys).values(created_at=stale))
        await session.commit()
    again = await rep.client.post("/v1/companies", json=body, headers=keyed("old"))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]


async def test_a_response_lost_after_the_commit_is_replayed(
    rep: Actor, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write committed, then the connection died before the response went out: the key
    committed with the write, so the retry gets the response, and nothing is written twice."""
    send = JSONBody.__call__

    async def connection_lost(self: JSONBody, scope: Any, receive: Any, send_on: Any) -> None:
        async def dropped(message: Any) -> None:
            await send_on(message)  # the response starts going out, then the connection dies
            raise ConnectionResetError("the client went away")

        await send(self, scope, receive, dropped)

    monkeypatch.setattr(JSONBody, "__call__", connection_lost)
    body = {"first_name": "Lost", "email": unique_email()}
    with pytest.raises(ConnectionResetError):
        await rep.client.post("/v1/contacts", json=body, headers=keyed("lost-1"))
    monkeypatch.setattr(JSONBody, "__call__", send)
    assert await contacts_with(db, body["email"]) == 1
    retry = await rep.client.post("/v1/contacts", json=body, headers=keyed("lost-1"))
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["email"] == body["email"]
    assert await contacts_with(db, body["email"]) == 1


async def test_concurrent_keyed_writes_all_succeed(rep: Actor, db: Database) -> None:
    """Each keyed write is one transaction from its key's claim to its commit (on SQLite, under
    the write lock from the start); concurrent ones all go through, each written once."""
    emails = [unique_email() for _ in range(12)]
    responses = await asyncio.gather(
        *(
            rep.client.post("/v1/contacts", json={"email": email}, headers=keyed(f"c-{n}"))
            for n, email in enumerate(emails)
        )
    )
    assert [r.status_code for r in responses] == [201] * len(emails)
    for email in emails:
        assert await contacts_with(db, email) == 1


async def test_a_secret_shown_once_is_not_stored_nor_replayed(admin: Actor, db: Database) -> None:
    first = await admin.client.post("/v1/api-keys", json={"name": "erp"}, headers=keyed("mint-1"))
    assert first.status_code == 201, first.text
    assert first.json()["secret"].startswith("crm_")
    assert first.headers["cache-control"] == "no-store"
    again = await admin.client.post("/v1/api-keys", json={"name": "erp"}, headers=keyed("mint-1"))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["cache-control"] == "no-store"
    assert "secret" not in again.json()
    assert again.json()["id"] == first.json()["id"]
    hook = await admin.client.post(
        "/v1/webhooks", json={"url": "http://hooks.test/in"}, headers=keyed("hook-1")
    )
    assert hook.json()["secret"].startswith("whsec_")
    async with db.sessionmaker() as session:
        stored = (await session.execute(select(idempotency_keys.c.body))).scalars().all()
    assert len(stored) == 2
    for body in stored:
        assert first.json()["secret"] not in body
        assert hook.json()["secret"] not in body
    # The contract says so: the replay still matches its declared schema.
    schemas = (await admin.client.get("/openapi.json")).json()["components"]["schemas"]
    for name in ("ApiKeyCreated", "WebhookWithSecret"):
        assert "secret" in schemas[name]["properties"]
        assert "secret" not in schemas[name]["required"]
    assert set(schemas["ApiKeyCreated"]["required"]) <= again.json().keys()
