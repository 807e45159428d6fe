"""The only SQL of the imports slice: jobs, their parts and their failed rows."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import lock_for_write
from crm_api.core.listing import ListParams, ListResult, ListSpec, run_list, sort_key
from crm_api.core.reader import Reader, Row
from crm_api.imports.models import (
    ImportStatus,
    dry_keys,
    dry_records,
    import_errors,
    import_parts,
    imports,
)

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

    async def drop_part(self, import_id: UUID, number: int) -> None:
        part = (import_parts.c.import_id == import_id) & (import_parts.c.number == number)
        await self.session.execute(delete(import_parts).where(part))

    async def release(self, import_id: UUID) -> None:
        """Deletes what only a job still to run needs: its parts left, a dry run's state."""
        for table in (import_parts, dry_records, dry_keys):
            await self.session.execute(delete(table).where(table.c.import_id == import_id))

    async def dry_targets(self, import_id: UUID, keys: Iterable[tuple[str, str]]) -> set[UUID]:
        """The dry-run records these (name, value) keys point to."""
        by_name: dict[str, list[str]] = {}
        for name, value in keys:
            by_name.setdefault(name, []).append(value)
        found: set[UUID] = set()
        for name, values in by_name.items():
            statement = select(dry_keys.c.record_id).where(
                dry_keys.c.import_id == import_id,
                dry_keys.c.name == name,
                dry_keys.c.value.in_(values),
            )
            found.update((await self.session.execute(statement)).scalars())
        return found

    async def dry_records(self, import_id: UUID, ids: Iterable[UUID]) -> list[Row]:
        statement = select(dry_records).where(
            dry_records.c.import_id == import_id,
            dry_records.c.id.in_(list(ids)),
        )
        return [dict(row) for row in (await self.session.execute(statement)).mappings()]

    async def save_dry(
        self, import_id: UUID, records: list[Row], keys: list[tuple[str, str, UUID]]
    ) -> None:
        """Stores dry-run records (replacing earlier versions) and points keys at them."""
        if records:
            ids = [record["id"] for record in records]
            await self.session.execute(
                delete(dry_records).where(
                    dry_records.c.import_id == import_id, dry_records.c.id.in_(ids)
                )
            )
            rows = [{**record, "import_id": import_id} for record in records]
            await self.session.execute(insert(dry_records), rows)
        by_name: dict[str, list[str]] = {}
        for name, value, _ in keys:
            by_name.setdefault(name, []).append(value)
        for name, values in by_name.items():
            await self.session.execute(
                delete(dry_keys).where(
                    dry_keys.c.import_id == import_id,
                    dry_keys.c.name == name,
                    dry_keys.c.value.in_(values),
                )
            )
        if keys:
            rows = [
                {"import_id": import_id, "name": name, "value": value, "record_id": record}
                for name, value, record in keys
            ]
            await self.session.execute(insert(dry_keys), rows)

    async def add_errors(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(import_errors), rows)

    async def list_jobs(self, params: ListParams, filters: Mapping[str, Any]) -> ListResult:
        return await run_list(self.reader, IMPORT_LIST, params, filters)
