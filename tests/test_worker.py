"""The background worker: it places committed events in the feed and applies retention, in a
`crm-api worker` process, inside `serve` (the embedded default), or one round at a time."""

import asyncio
import os
import signal
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from crm_api.app import create_app
from crm_api.config import Settings
from crm_api.core.db import Database, take_turn
from crm_api.core.events import event_row, events, feed_state
from crm_api.core.ids import utcnow, uuid7
from crm_api.feed.sequencer import PURGED_THROUGH, SEQUENCER_TURN, place_committed
from crm_api.idempotency.models import idempotency_keys
from crm_api.worker.runner import Worker
from tests.conftest import Actor
from tests.processes import CLI


async def add_event(db: Database, name: str) -> None:
    async with db.sessionmaker() as session:
        await session.execute(
            insert(events), event_row("test", "written", uuid7(), {"n": name}, utcnow())
        )
        await session.commit()


async def sequences(db: Database) -> list[int | None]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(events.c.sequence).order_by(events.c.outbox_id))
        return [row[0] for row in rows]


async def test_a_round_places_events_and_applies_retention(
    admin: Actor, db: Database, settings: Settings
) -> None:
    await admin.client.post(
        "/v1/companies", json={"name": "Acme"}, headers={"Idempotency-Key": "k"}
    )
    await add_event(db, "a")
    assert None in await sequences(db)
    async with httpx.AsyncClient() as client:
        await Worker(db, settings, client).tick()
    placed = await sequences(db)
    assert placed == list(range(1, len(placed) + 1))

    async with db.sessionmaker() as session:
        old = utcnow() - timedelta(days=settings.event_retention_days, seconds=1)
        await session.execute(update(events).values(occurred_at=old))
        await session.execute(update(idempotency_keys).values(created_at=old))
        await session.commit()
    await add_event(db, "b")
    async with httpx.AsyncClient() as client:
        await Worker(db, settings, client).tick()
    assert await sequences(db) == [len(placed) + 1]
    async with db.sessionmaker() as session:
        mark = select(feed_state.c.position).where(feed_state.c.name == PURGED_THROUGH)
        assert await session.scalar(mark) == len(placed)
        assert await session.scalar(select(func.count()).select_from(idempotency_keys)) == 0


async def test_serve_runs_the_worker_in_process(db: Database, settings: Settings) -> None:
    embedded = create_app(replace_settings(settings, in_process_worker=True))
    async with embedded.router.lifespan_context(embedded):
        await add_event(db, "placed by the embedded worker")
        await wait_for(lambda: sequences(db), lambda found: None not in found)


def test_the_worker_command_places_events_and_stops_on_sigterm(
    db: Database, settings: Settings
) -> None:
    env = {
        **os.environ,
        "CRM_DATABASE_URL": settings.database_url,
        "CRM_WORKER_INTERVAL_SECONDS": "0.1",
    }
    worker = subprocess.Popen([*CLI, "worker"], env=env, stderr=subprocess.PIPE)
    try:
        asyncio.run(_placed_by_another_process(settings.database_url))
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr.decode()


async def _placed_by_another_process(url: str) -> None:
    db = Database(url)
    await db.start()
    try:
        await add_event(db, "placed by crm-api worker")
        await wait_for(lambda: sequences(db), lambda found: None not in found)
    finally:
        await db.close()


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={**changes, "worker_interval_seconds": 0.05})


async def wait_for(read: Any, done: Any) -> None:
    """Polls `read` until `done` holds of what it found, for up to 20 s."""
    found = None
    for _ in range(400):
        found = await read()
        if done(found):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not done: {found}")


async def test_a_round_waits_its_turn_past_the_lock_timeout(
    db: Database, settings: Settings
) -> None:
    """Requests give up on a lock after the lock timeout (503); a worker step waiting for its
    turn does not: it waits for the run holding it, here longer than the timeout."""
    if db.is_sqlite:
        pytest.skip("SQLite's worker steps take its write lock, which the busy timeout bounds")
    impatient = Database(settings.database_url, lock_timeout_ms=50)
    await impatient.start()
    try:
        await add_event(db, "waiting")
        async with db.sessionmaker() as holder:
            await take_turn(holder, SEQUENCER_TURN)
            waiting = asyncio.create_task(place_committed(impatient))
            await asyncio.sleep(0.5)  # ten lock timeouts
            assert not waiting.done()
            await holder.commit()
        assert await waiting == 1
        assert (await sequences(db))[-1] is not None
    finally:
        await impatient.close()
