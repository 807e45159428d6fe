"""The only SQL of the imports slice: jobs, their parts and their failed rows."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import lock_for_write
from crm_api.core.listing import ListParams, ListResult, ListSpec, run_list, sort_key
from crm_api.core.reader import Reader, Row
from crm_api.imports.models import ImportStatus, import_errors, import_parts, imports

JOB = imports.c
IMPORT_LIST = ListSpec(
    table=imports,
    filters={
        "created_by": lambda: JOB.created_by == bindparam("created_by"),
        "status": lambda: JOB.status == bindparam("status"),
        "object_type": lambda: JOB.object_type == bindparam("object_type"),
    },
    sorts={"created_at": sort_key(JOB.created_at, JOB.id)},
    default_sort="-created_at",
)
ONE = select(imports).where(JOB.id == bindparam("id"))
ERRORS_PAGE = (
    select(import_errors.c.line, import_errors.c.cells, import_errors.c.reason)
    .where(import_errors.c.import_id == bindparam("id"), import_errors.c.line > bindparam("after"))
    .order_by(import_errors.c.line)
    .limit(bindparam("limit"))
)
PART = select(import_parts.c.rows).where(
    import_parts.c.import_id == bindparam("id"), import_parts.c.number == bindparam("number")
)
_PENDING = JOB.status.in_([ImportStatus.queued.value, ImportStatus.running.value])


def claimable(now: datetime, worker: UUID) -> Any:
    """Jobs a worker may take: queued ones, and running ones whose lease ran out or that it
    holds itself. (`status IN …` first: it is the pending index's condition.)"""
    running = and_(
        JOB.status == ImportStatus.running,
        or_(JOB.lease_expires_at < now, JOB.leased_by == worker),
    )
    return and_(_PENDING, or_(JOB.status == ImportStatus.queued, running))


class ImportRepository:
    """Flushes, never commits."""

    def __init__(self, session: AsyncSession, reader: Reader) -> None:
        self.session = session
        self.reader = reader

    async def get(self, import_id: UUID) -> Row | None:
        return await self.reader.one(ONE, {"id": import_id})

    async def lock(self, import_id: UUID) -> Row | None:
        """The job, locked until commit (FOR UPDATE; on SQLite, the database write lock)."""
        await lock_for_write(self.session)
        found = await self.session.execute(ONE.with_for_update(), {"id": import_id})
        row = found.mappings().first()
        return dict(row) if row else None

    async def insert(self, job: Mapping[str, Any], parts: list[str]) -> None:
        await self.session.execute(insert(imports), dict(job))
        if parts:
            rows = [{"import_id": job["id"], "number": n, "rows": p} for n, p in enumerate(parts)]
            await self.session.execute(insert(import_parts), rows)

    async def update(self, import_id: UUID, values: Mapping[str, Any]) -> None:
        await self.session.execute(update(imports).where(JOB.id == import_id).values(**values))

    async def part(self, import_id: UUID, number: int) -> str | None:
        found = await self.session.execute(PART, {"id": import_id, "number": number})
        rows: str | None = found.scalar_one_or_none()
        return rows

    async def drop_parts(self, import_id: UUID, number: int | None = None) -> None:
        """Deletes one part, or every part left."""
        condition = import_parts.c.import_id == import_id
        if number is not None:
            condition &= import_parts.c.number == number
        await self.session.execute(delete(import_parts).where(condition))

    async def add_errors(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(import_errors), rows)

    async def list_jobs(self, params: ListParams, filters: Mapping[str, Any]) -> ListResult:
        return await run_list(self.reader, IMPORT_LIST, params, filters)
