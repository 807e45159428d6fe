"""Failures of concurrency the database reports (a lock held past the lock timeout, a deadlock,
a referenced row removed while the request ran) are problems a client can act on, never 500s,
and they write nothing."""

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import func, insert, select

from crm_api.app import create_app
from crm_api.config import Settings
from crm_api.contacts.repository import contacts, lifecycle_changes
from crm_api.core.audit import audit_log
from crm_api.core.db import Database, lock_for_write
from crm_api.core.enums import Role
from crm_api.core.events import events
from crm_api.core.ids import utcnow, uuid7
from tests.api.factories import create_contact
from tests.api.helpers import assert_problem
from tests.conftest import Actor, make_actor


@pytest.fixture
async def impatient(settings: Settings) -> AsyncIterator[FastAPI]:
    """A second app on the test database whose requests wait at most 200 ms for a lock."""
    application = create_app(settings.model_copy(update={"lock_timeout_ms": 200}))
    async with application.router.lifespan_context(application):
        yield application


async def _count(db: Database, table: Any, entity_id: UUID) -> int:
    async with db.sessionmaker() as session:
        statement = select(func.count()).select_from(table).where(table.c.entity_id == entity_id)
        return int(await session.scalar(statement) or 0)


async def test_a_lock_held_past_the_timeout_is_503_and_writes_nothing(
    impatient: FastAPI, db: Database, rep: Actor
) -> None:
    contact = await create_contact(rep, title="Buyer")
    admin = await make_actor(impatient, db, Role.admin)
    contact_id = UUID(contact["id"])
    path = f"/v1/contacts/{contact_id}"
    async with db.sessionmaker() as holder:
        # Another transaction holds the lock the update needs: the row (PostgreSQL), the
        # database's write lock (SQLite).
        if db.is_sqlite:
            await lock_for_write(holder)
        else:
            await holder.execute(
                select(contacts.c.id).where(contacts.c.id == contact_id).with_for_update()
            )

        response = await admin.client.patch(path, json={"title": "Head of Buying"})

        body = assert_problem(response, 503, "busy")
        assert response.headers["retry-after"] == "1"
        assert "retry" in body["detail"]
        await holder.rollback()

    read = await rep.client.get(path)
    assert read.json()["title"] == "Buyer"
    assert read.headers["etag"] == '"1"'
    assert await _count(db, audit_log, contact_id) == 1
    assert await _count(db, events, contact_id) == 1
    retried = await admin.client.patch(path, json={"title": "Head of Buying"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["version"] == 2


@pytest.fixture
async def failing(settings: Settings, db: Database) -> AsyncIterator[tuple[FastAPI, Actor]]:
    """An app with routes that meet the database errors no public endpoint can be steered into
    on purpose, and an admin of it."""
    application = create_app(settings)

    async def dangling_reference(request: Request) -> None:
        # A lifecycle change of a contact that does not exist: a real foreign-key violation.
        async with request.app.state.db.sessionmaker() as session:
            row = {"id": uuid7(), "contact_id": uuid4(), "to_stage": "lead", "changed_at": utcnow()}
            await session.execute(insert(lifecycle_changes), row)
            await session.commit()

    async def deadlock() -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    async def serialization_failure() -> None:
        raise asyncpg.SerializationError("could not serialize access")

    async def broken() -> None:
        raise asyncpg.DataError("anything else")

    for name, endpoint in [
        ("dangling", dangling_reference),
        ("deadlock", deadlock),
        ("serialization", serialization_failure),
        ("broken", broken),
    ]:
        application.add_api_route(f"/v1/test-{name}", endpoint, methods=["POST"])
    async with application.router.lifespan_context(application):
        yield application, await make_actor(application, db, Role.admin)


async def test_a_reference_removed_mid_request_is_409(failing: tuple[FastAPI, Actor]) -> None:
    _, admin = failing

    response = await admin.client.post("/v1/test-dangling")

    body = assert_problem(response, 409, "conflict")
    assert "removed" in body["detail"]


@pytest.mark.parametrize("error", ["deadlock", "serialization"])
async def test_deadlocks_and_serialization_failures_are_503(
    failing: tuple[FastAPI, Actor], error: str
) -> None:
    _, admin = failing

    response = await admin.client.post(f"/v1/test-{error}")

    assert_problem(response, 503, "busy")
    assert response.headers["retry-after"] == "1"


async def test_other_database_errors_stay_500(failing: tuple[FastAPI, Actor]) -> None:
    _, admin = failing

    response = await admin.client.post("/v1/test-broken")

    body = assert_problem(response, 500, "internal")
    assert "anything else" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
