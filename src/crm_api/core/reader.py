"""Read-only Core selects, run on the fastest path that still sees the right data.

SQLAlchemy's per-statement execution costs several times a primary-key read on PostgreSQL
(see shared/PERFORMANCE.md). Hot reads are therefore compiled once per query shape to
asyncpg SQL and run on a raw asyncpg pool. Inside a write transaction, and on SQLite, the same
statement runs through the session, so a request always reads its own writes.

The raw path applies no SQLAlchemy bind or result processing: parameters must be values
asyncpg takes natively (UUID, str, int, aware datetime), and result columns arrive as asyncpg
returns them (JSON is decoded by the pool's codec).
"""

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import Database

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    param_names: tuple[str, ...]
    defaults: Mapping[str, Any]


_compiled: dict[Hashable, _Compiled] = {}


def _compile(db: Database, key: Hashable, stmt: Select[Any] | Insert) -> _Compiled:
    found = _compiled.get(key)
    if found is None:
        compiled = stmt.compile(dialect=db.engine.dialect)
        found = _Compiled(
            sql=compiled.string,
            param_names=tuple(compiled.positiontup or ()),
            defaults={
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            },
        )
        _compiled[key] = found
    return found


class Reader:
    def __init__(self, db: Database, session: AsyncSession) -> None:
        self.db = db
        self.session = session

    async def all(self, key: Hashable, stmt: Select[Any], params: Mapping[str, Any]) -> list[Row]:
        """Rows as dicts. `key` names the statement's shape: equal keys, equal SQL."""
        pool = self.db.raw_pool
        if pool is None or self.session.in_transaction():
            result = await self.session.execute(stmt, dict(params))
            return [dict(row) for row in result.mappings()]
        compiled = _compile(self.db, key, stmt)
        args = [params.get(name, compiled.defaults.get(name)) for name in compiled.param_names]
        async with pool.acquire() as connection:
            records = await connection.fetch(compiled.sql, *args)
        return [dict(record) for record in records]

    async def execute_atomic(self, key: Hashable, stmt: Insert, params: Mapping[str, Any]) -> None:
        """Runs one self-contained write. With no transaction open in the session it runs alone
        on the raw pool (a single statement is atomic by itself: no BEGIN/COMMIT round trips);
        otherwise it joins the session's transaction."""
        pool = self.db.raw_pool
        if pool is None or self.session.in_transaction():
            await self.session.execute(stmt, dict(params))
            return
        compiled = _compile(self.db, key, stmt)
        args = [params.get(name, compiled.defaults.get(name)) for name in compiled.param_names]
        async with pool.acquire() as connection:
            await connection.execute(compiled.sql, *args)

    async def one(self, key: Hashable, stmt: Select[Any], params: Mapping[str, Any]) -> Row | None:
        rows = await self.all(key, stmt, params)
        return rows[0] if rows else None

    async def scalar(self, key: Hashable, stmt: Select[Any], params: Mapping[str, Any]) -> Any:
        row = await self.one(key, stmt, params)
        return next(iter(row.values())) if row else None
