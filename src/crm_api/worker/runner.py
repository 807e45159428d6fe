"""The worker loop: places committed events in the feed, and applies retention.

Every step is safe to run in several processes at once (the feed's sequencer takes turns on a
lock; deletions by age are idempotent), so `crm-api worker` scales out, and the worker inside
each `serve` process of the embedded default needs no coordination either.
"""

import asyncio
import logging
import time
from contextlib import suppress

from crm_api.config import Settings
from crm_api.core.db import Database
from crm_api.core.ids import utcnow
from crm_api.feed.sequencer import place_committed, purge_expired
from crm_api.idempotency.guard import purge_expired_keys

log = logging.getLogger("crm_api.worker")
RETENTION_EVERY_SECONDS = 3600.0


class Worker:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._retention_due = 0.0

    async def tick(self) -> None:
        """One round of every job that has work."""
        await place_committed(self.db)
        if time.monotonic() >= self._retention_due:
            await purge_expired(self.db, utcnow(), self.settings.event_retention_days)
            await purge_expired_keys(self.db)
            self._retention_due = time.monotonic() + RETENTION_EVERY_SECONDS

    async def run(self, stop: asyncio.Event) -> None:
        """Ticks until `stop` is set; a failing round is logged and retried next round."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("worker round failed; retrying")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.worker_interval_seconds)
