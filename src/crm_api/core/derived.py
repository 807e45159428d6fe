"""Derived columns kept on records (last activity, first outreach, next task), recomputed from
their source rows inside the transaction that changed those rows."""

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import Table, Update, select
from sqlalchemy.ext.asyncio import AsyncSession


async def recompute(
    session: AsyncSession, table: Table, stmt: Update, ids: Iterable[UUID | None]
) -> None:
    """Runs `stmt` (an UPDATE of `table` for the ids bound as `:ids`) for the given ids."""
    wanted = sorted({record_id for record_id in ids if record_id is not None})
    if not wanted:
        return
    # Lock the rows first, in id order: the UPDATE then starts after any concurrent writer of
    # the same rows committed, and its subqueries see that writer's source rows (updating
    # straight away could keep a value computed without them). FOR NO KEY UPDATE, the lock the
    # UPDATE takes anyway, leaves alone the key-share locks that other writers' inserts of
    # source rows take on these rows through their foreign keys; FOR UPDATE would deadlock
    # with them.
    lock = (
        select(table.c.id)
        .where(table.c.id.in_(wanted))
        .order_by(table.c.id)
        .with_for_update(key_share=True)
    )
    await session.execute(lock)
    await session.execute(stmt, {"ids": wanted})
