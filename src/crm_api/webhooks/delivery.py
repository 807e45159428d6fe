"""The worker's webhook jobs: fan the feed's events out to subscriptions, and send what is due.

Fan-out follows the feed (positions are final once placed) from each subscription's own
position, set to the feed's end when it was made, one run at a time, and writes one delivery
per event of the subscription's types. Sending claims due deliveries (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so workers side by side never take the same one; SQLite has a single
writer) by pushing their next attempt a lease ahead, sends them, and records the outcome. A
worker that dies mid-send leaves its deliveries to be taken again when the lease runs out: at
least once, always with the same `webhook-id`.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.config import Settings
from crm_api.core.changes import write_change
from crm_api.core.db import Database, lock_for_write, take_turn
from crm_api.core.enums import Role
from crm_api.core.events import events
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.reader import Reader, Row
from crm_api.core.responses import dump_json
from crm_api.feed.repository import EVENT_COLUMNS
from crm_api.users.repository import users
from crm_api.webhooks.models import attempts, deliveries, subscriptions
from crm_api.webhooks.schemas import DeliveryStatus
from crm_api.webhooks.service import ENTITY, public
from crm_api.webhooks.signing import signature_header
from crm_api.webhooks.targets import RefusedTarget, check_target, pinned_request

log = logging.getLogger("crm_api.webhooks")
FAN_OUT_BATCH = 500
SEND_BATCH = 8
LEASE = timedelta(minutes=2)  # longer than any send (the timeout is at most 60 s)
# Delays after each failed attempt: 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, then 8 h
# thrice; 11 attempts over about 32 h. Each is jittered ±20% so endpoints that failed together
# are not all retried together.
RETRY_DELAYS = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800, 28800)
MAX_RETRY_AFTER = timedelta(hours=24)
_FAN_OUT_TURN = 7364930202
_SUBSCRIPTION = subscriptions.c
# A subscription sends while it is active and its creator may still read everything (an active
# manager or admin): demoting or deactivating the creator stops it.
_LIVE = and_(
    _SUBSCRIPTION.active,
    select(users.c.id)
    .where(
        users.c.id == _SUBSCRIPTION.created_by,
        users.c.active,
        users.c.role.in_([Role.admin.value, Role.manager.value]),
    )
    .exists(),
)


_FEED_END = select(func.max(events.c.sequence))
_BEHIND = (
    select(subscriptions)
    .where(_LIVE, _SUBSCRIPTION.fanned_out_through < bindparam("end"))
    .order_by(_SUBSCRIPTION.id)
)


async def _feed_end(db: Database) -> int | None:
    """The feed's last position, read without a lock: an idle round takes no write lock."""
    async with db.sessionmaker() as session:
        end: int | None = await session.scalar(_FEED_END)
        return end


async def fan_out(db: Database) -> int:
    """Writes the deliveries of the events each live subscription has not had yet, from its
    own feed position (set to the feed's end when it was made); returns how many it wrote.
    Positions are final once placed, so reading up to the end seen first misses nothing."""
    end = await _feed_end(db)
    if end is None:
        return 0
    written = 0
    async with db.sessionmaker() as session:
        if db.is_sqlite:
            await lock_for_write(session)
        else:
            await take_turn(session, _FAN_OUT_TURN)
        behind = await session.execute(_BEHIND, {"end": end})
        for subscription in [dict(row) for row in behind.mappings()]:
            written += await _fan_out_to(session, subscription, end)
        await session.commit()
    return written


async def _fan_out_to(session: AsyncSession, subscription: Row, end: int) -> int:
    position = subscription["fanned_out_through"]
    page = select(*EVENT_COLUMNS).where(events.c.sequence > position, events.c.sequence <= end)
    if subscription["event_types"]:
        page = page.where(events.c.type.in_(subscription["event_types"]))
    found = await session.execute(page.order_by(events.c.sequence).limit(FAN_OUT_BATCH))
    rows = [dict(row) for row in found.mappings()]
    now = utcnow()
    if rows:
        new = [_delivery(event, subscription["id"], now) for event in rows]
        await session.execute(insert(deliveries), new)
    # A full page stops at its last event; otherwise every event up to `end` is in it.
    reached = rows[-1]["sequence"] if len(rows) == FAN_OUT_BATCH else end
    await session.execute(
        update(subscriptions)
        .where(_SUBSCRIPTION.id == subscription["id"])
        .values(fanned_out_through=reached)
    )
    return len(rows)


def _delivery(event: Row, subscription_id: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "subscription_id": subscription_id,
        "event_id": event["id"],
        "event_type": event["type"],
        "event_sequence": event["sequence"],
        "payload": orjson.loads(dump_json(event)),
        "status": DeliveryStatus.pending,
        "attempts": 0,
        "next_attempt_at": now,
        "last_status_code": None,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
    }


_CLAIMED = select(
    deliveries,
    _SUBSCRIPTION.url,
    _SUBSCRIPTION.secret,
    _SUBSCRIPTION.previous_secret,
    _SUBSCRIPTION.previous_secret_expires_at,
).join_from(deliveries, subscriptions, _SUBSCRIPTION.id == deliveries.c.subscription_id)


_ANY_DUE = (
    select(deliveries.c.id)
    .join_from(deliveries, subscriptions, _SUBSCRIPTION.id == deliveries.c.subscription_id)
    .where(_LIVE)
    .where(
        deliveries.c.status == DeliveryStatus.pending,
        deliveries.c.next_attempt_at <= bindparam("now"),
    )
    .limit(1)
)


async def claim_due(db: Database) -> list[Row]:
    """Takes up to SEND_BATCH due deliveries of active subscriptions, for a lease."""
    now = utcnow()
    async with db.sessionmaker() as session:
        # A look without a lock first: an idle round takes no write lock.
        if (await session.execute(_ANY_DUE, {"now": now})).first() is None:
            return []
        await session.rollback()
        await lock_for_write(session)
        due = (
            select(deliveries.c.id)
            .join_from(deliveries, subscriptions, _SUBSCRIPTION.id == deliveries.c.subscription_id)
            .where(
                deliveries.c.status == DeliveryStatus.pending,
                deliveries.c.next_attempt_at <= now,
                _LIVE,
            )
            .order_by(deliveries.c.next_attempt_at)
            .limit(SEND_BATCH)
        )
        if not db.is_sqlite:
            due = due.with_for_update(of=deliveries, skip_locked=True)
        ids = list((await session.execute(due)).scalars())
        if not ids:
            return []
        lease = update(deliveries).where(deliveries.c.id.in_(ids))
        await session.execute(lease.values(next_attempt_at=now + LEASE))
        found = await session.execute(_CLAIMED.where(deliveries.c.id.in_(ids)))
        claimed = [dict(row) for row in found.mappings()]
        await session.commit()
    return claimed


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def send(client: httpx.AsyncClient, claimed: Row, settings: Settings) -> Outcome:
    """POSTs the delivery's payload, signed with every secret in use; never follows redirects."""
    body = orjson.dumps(claimed["payload"])
    message_id = str(claimed["id"])
    timestamp = int(time.time())
    in_use = [claimed["secret"]]
    expires = claimed["previous_secret_expires_at"]
    if claimed["previous_secret"] and expires is not None and expires > utcnow():
        in_use.append(claimed["previous_secret"])
    headers = {
        "content-type": "application/json",
        "user-agent": "crm-api-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(in_use, message_id, timestamp, body),
    }
    started = time.monotonic()

    def outcome(status: int | None, error: str | None, retry: timedelta | None = None) -> Outcome:
        return Outcome(status, error, round((time.monotonic() - started) * 1000), retry)

    limit = settings.webhook_timeout_seconds
    try:
        # httpx's timeout bounds each phase (connect, each read); this bounds the whole send,
        # name resolution included, so a trickling endpoint cannot outlive the lease.
        async with asyncio.timeout(limit):
            target = await check_target(claimed["url"], settings.webhook_allow_private_targets)
            request = pinned_request(client, target, body, headers, limit)
            response = await client.send(request, follow_redirects=False)
    except RefusedTarget as refused:
        return outcome(None, f"target refused: {refused}")
    except (TimeoutError, httpx.TimeoutException):
        return outcome(None, f"no response within {limit:g} s")
    except Exception as failure:  # any failure to send is the endpoint's failure, never ours
        return outcome(None, f"{type(failure).__name__}: {failure}"[:500])
    code = response.status_code
    retry = _retry_after(response) if code in (429, 503) else None
    return outcome(code, None if 200 <= code < 300 else f"HTTP {code}", retry)


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            delay = parsedate_to_datetime(value) - utcnow()
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


async def record(db: Database, claimed: Row, outcome: Outcome, settings: Settings) -> None:
    """Logs the attempt and moves the delivery on: delivered, retried later, or given up; a
    subscription answering 410, or failing for `webhook_disable_after_days`, is disabled.
    Only while this worker still holds the lease: if it ran out (another worker took the
    delivery), or the delivery was replayed or deleted meanwhile, nothing is written."""
    now = utcnow()
    number = claimed["attempts"] + 1
    async with db.sessionmaker() as session:
        held = (deliveries.c.id == claimed["id"]) & (
            deliveries.c.next_attempt_at == claimed["next_attempt_at"]
        )
        lease = await session.execute(select(deliveries.c.id).where(held).with_for_update())
        if lease.first() is None:
            log.warning("delivery %s: lease lost before its outcome was recorded", claimed["id"])
            return
        await session.execute(
            insert(attempts),
            {
                "id": uuid7(),
                "delivery_id": claimed["id"],
                "attempted_at": now,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
            },
        )
        values: dict[str, Any] = {
            "attempts": number,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
        }
        if outcome.delivered:
            values.update(status=DeliveryStatus.delivered, delivered_at=now, next_attempt_at=None)
        elif outcome.status_code == 410 or number > len(RETRY_DELAYS):
            values.update(status=DeliveryStatus.failed, next_attempt_at=None)
        else:
            delay = outcome.retry_after or timedelta(
                seconds=RETRY_DELAYS[number - 1] * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not secrecy)
            )
            values.update(next_attempt_at=now + delay)
        await session.execute(update(deliveries).where(held).values(**values))
        await _follow_up(db, session, claimed["subscription_id"], outcome, now, settings)
        await session.commit()


async def _follow_up(
    db: Database,
    session: AsyncSession,
    subscription_id: Any,
    outcome: Outcome,
    now: datetime,
    settings: Settings,
) -> None:
    """The subscription's failure streak: cleared by a delivery, and disabling it at 410 or
    when it has lasted too long (which is itself an event)."""
    found = await session.execute(
        select(subscriptions).where(_SUBSCRIPTION.id == subscription_id).with_for_update()
    )
    subscription = found.mappings().first()
    if subscription is None:
        return
    row = dict(subscription)
    if outcome.delivered:
        if row["failing_since"] is not None:
            await _update(session, row, {"failing_since": None})
        return
    since = row["failing_since"] or now
    reason = None
    if outcome.status_code == 410:
        reason = "The endpoint answered 410 Gone."
    elif now - since >= timedelta(days=settings.webhook_disable_after_days):
        reason = f"Every delivery failed for {settings.webhook_disable_after_days:g} days."
    if reason is None or not row["active"]:
        if row["failing_since"] is None:
            await _update(session, row, {"failing_since": since})
        return
    changes = {"active": False, "disabled_reason": reason, "failing_since": since}
    after = await _update(session, row, {**changes, "version": row["version"] + 1})
    await write_change(
        Reader(db, session),
        principal=None,
        action="disabled",
        entity_type=ENTITY,
        entity_id=row["id"],
        changes={"active": [True, False], "disabled_reason": [None, reason]},
        data=public(after),
        at=now,
    )


async def _update(session: AsyncSession, row: Row, values: dict[str, Any]) -> Row:
    where = _SUBSCRIPTION.id == row["id"]
    await session.execute(update(subscriptions).where(where).values(**values))
    return {**row, **values}


async def deliver_due(db: Database, client: httpx.AsyncClient, settings: Settings) -> int:
    """Claims, sends and records one batch of due deliveries; returns how many were sent."""
    claimed = await claim_due(db)

    async def deliver(row: Row) -> None:
        outcome = await send(client, row, settings)
        try:
            await record(db, row, outcome, settings)
        except Exception:  # one delivery's bookkeeping must not stop the others'
            log.exception("delivery %s: recording its outcome failed", row["id"])

    await asyncio.gather(*(deliver(row) for row in claimed))
    return len(claimed)
