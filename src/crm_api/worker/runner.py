"""The worker loop: places committed events in the feed, fans them out to webhook
subscriptions, sends the deliveries that are due, applies retention, and runs CSV imports.

Every step is safe to run in several processes at once (the sequencer and the fan-out take
turns on locks, deliveries are claimed with SKIP LOCKED, deletions by age are idempotent), so
`crm-api worker` scales out, and the worker inside each `serve` process of the embedded default
needs no coordination either. Imports are claimed with leases, like deliveries; while one has
chunks left, the loop goes round again without waiting.
"""

import asyncio
import logging
import time
from contextlib import suppress

import httpx

from crm_api.config import Settings
from crm_api.core.db import Database
from crm_api.core.ids import utcnow, uuid7
from crm_api.feed.sequencer import place_committed, purge_expired
from crm_api.idempotency.guard import purge_expired_keys
from crm_api.imports.worker import run_imports
from crm_api.webhooks.delivery import FAN_OUT_BATCH, SEND_BATCH, deliver_due, fan_out

log = logging.getLogger("crm_api.worker")
RETENTION_EVERY_SECONDS = 3600.0
IMPORT_SECONDS_PER_ROUND = 1.0
"""How long a round writes an import's chunks before the other jobs get their turn."""


class Worker:
    def __init__(self, db: Database, settings: Settings, client: httpx.AsyncClient) -> None:
        self.db = db
        self.settings = settings
        self.client = client
        self._retention_due = 0.0
        self.id = uuid7()
        """Whose lease an import is under."""

    async def tick(self) -> bool:
        """One round of every job that has work; True if an import has more right away."""
        await place_committed(self.db)
        while await fan_out(self.db) >= FAN_OUT_BATCH:
            pass
        while await deliver_due(self.db, self.client, self.settings) == SEND_BATCH:
            pass
        if time.monotonic() >= self._retention_due:
            await purge_expired(self.db, utcnow(), self.settings.event_retention_days)
            await purge_expired_keys(self.db)
            self._retention_due = time.monotonic() + RETENTION_EVERY_SECONDS
        return await run_imports(self.db, self.settings, self.id, IMPORT_SECONDS_PER_ROUND)

    async def run(self, stop: asyncio.Event) -> None:
        """Ticks until `stop` is set; a failing round is logged and retried next round."""
        while not stop.is_set():
            busy = False
            try:
                busy = await self.tick()
            except Exception:
                log.exception("worker round failed; retrying")
            if busy:
                await asyncio.sleep(0)
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.worker_interval_seconds)


async def run_worker(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """A worker with its own HTTP client (no redirects followed), until `stop` is set."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        await Worker(db, settings, client).run(stop)
