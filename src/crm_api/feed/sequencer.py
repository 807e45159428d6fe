"""Feed positions, assigned only to committed events, so a follower of the feed never skips one.

Events are inserted with a BIGSERIAL `outbox_id`, but transactions commit in any order: an event
that took outbox id 10 can commit after one that took 11. Had the feed been ordered by outbox id,
a reader that had already moved past 11 would never see 10. So the feed is ordered by `sequence`,
which is handed out here, in outbox order, to the events this transaction can see: committed
ones. An event that commits later is seen by a later run and placed after everything already
placed. Runs take turns (PostgreSQL: an advisory lock held until commit; SQLite: its single
writer), and each starts from the largest position placed so far, so positions only grow.

Retention deletes the oldest events and remembers the last position it deleted, so a cursor
from before it can be told it is too old (410) instead of silently skipping events.
"""

from datetime import datetime, timedelta

from sqlalchemy import Insert, bindparam, case, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import Database, lock_for_write, take_turn
from crm_api.core.events import events, feed_state

BATCH = 5000
PURGED_THROUGH = "purged_through"  # feed_state: the largest position retention deleted
SEQUENCER_TURN = 7364930201
_TRY_LOCK = text(f"SELECT pg_try_advisory_xact_lock({SEQUENCER_TURN})")

_placed = events.alias("placed")
_last_placed = select(func.coalesce(func.max(_placed.c.sequence), 0)).scalar_subquery()
PURGE_MARK = select(func.coalesce(func.max(feed_state.c.position), 0)).where(
    feed_state.c.name == PURGED_THROUGH
)
_mark = PURGE_MARK.scalar_subquery()
_next = (
    select(events.c.outbox_id, func.row_number().over(order_by=events.c.outbox_id).label("n"))
    .where(events.c.sequence.is_(None))
    .order_by(events.c.outbox_id)
    .limit(BATCH)
    .cte("next_events")
)
# The last position placed; after retention deleted every event, its mark.
FEED_END = case((_last_placed > _mark, _last_placed), else_=_mark)
_PLACE = (
    update(events)
    .where(events.c.outbox_id == _next.c.outbox_id)
    .values(sequence=FEED_END + _next.c.n)
)
_ANY_UNPLACED = select(events.c.outbox_id).where(events.c.sequence.is_(None)).limit(1)
_cutoff = bindparam("cutoff", type_=events.c.occurred_at.type)
_LAST_EXPIRED = select(func.max(events.c.sequence)).where(events.c.occurred_at < _cutoff)


async def _take_turn(db: Database, session: AsyncSession, wait: bool) -> bool:
    if db.is_sqlite:
        await lock_for_write(session)  # its single writer: take the write lock before reading
        return True
    if wait:
        await take_turn(session, SEQUENCER_TURN)
        return True
    return bool(await session.scalar(_TRY_LOCK))


async def place_committed(db: Database, *, wait: bool = True) -> int:
    """Gives committed events without a position the next positions, in outbox order; returns
    how many it placed. With `wait=False` it gives up at once when another run holds the turn
    (that run places them)."""
    placed = 0
    async with db.sessionmaker() as session:
        if (await session.execute(_ANY_UNPLACED)).first() is None:
            return 0
        await session.rollback()  # that look took no lock; the placing below takes its turn
        while await _take_turn(db, session, wait):
            count: int = (await session.execute(_PLACE)).rowcount  # type: ignore[attr-defined]
            await session.commit()
            placed += count
            if count < BATCH:
                break
    return placed


def _set_position(db: Database) -> Insert:
    """Upserts a named feed position (`name`, `position` parameters)."""
    insert = (sqlite.insert if db.is_sqlite else postgresql.insert)(feed_state)
    return insert.on_conflict_do_update(
        index_elements=[feed_state.c.name], set_={"position": insert.excluded.position}
    )


async def purge_expired(db: Database, now: datetime, retention_days: int) -> int:
    """Deletes the events placed before the retention cutoff; returns the new purge mark."""
    cutoff = now - timedelta(days=retention_days)
    async with db.sessionmaker() as session:
        await _take_turn(db, session, wait=True)
        last = await session.scalar(_LAST_EXPIRED, {"cutoff": cutoff})
        if last is not None:
            # By position, not time: everything up to the mark is gone, everything after kept.
            await session.execute(delete(events).where(events.c.sequence <= last))
            await session.execute(_set_position(db), {"name": PURGED_THROUGH, "position": last})
        mark: int = (await session.execute(PURGE_MARK)).scalar_one()
        await session.commit()
    return mark
