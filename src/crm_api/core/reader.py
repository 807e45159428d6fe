"""Running Core statements on the fastest path that still sees the right data.

SQLAlchemy's per-statement execution costs several times a primary-key read on PostgreSQL
(see shared/PERFORMANCE.md). Hot statements are therefore compiled once to asyncpg SQL and run
on a raw asyncpg pool: reads (get one, list pages) and self-contained writes (a create's one
batched INSERT). Inside a write transaction, and on SQLite, the same statement runs through the
session, so a request always reads its own writes and joins its own transaction.

Statements are compiled once per statement *object*: callers pass statements built once (module
constants, or cached per query shape), never ones rebuilt per request. The raw path applies no
SQLAlchemy bind or result processing: parameters must be values asyncpg takes natively (UUID,
str, int, Decimal, aware datetime, JSON-able objects for JSON columns), and result columns arrive
as asyncpg returns them (JSON is decoded by the pool's codec).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Insert, Select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import Database

Row = dict[str, Any]
Statement = Select[Any] | Insert


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    param_names: tuple[str, ...]
    defaults: Mapping[str, Any]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params.get(name, self.defaults.get(name)) for name in self.param_names]


# Keyed by the statement object itself (ClauseElements hash by identity).
_compiled: dict[Statement, _Compiled] = {}


def _compile(db: Database, stmt: Statement) -> _Compiled:
    found = _compiled.get(stmt)
    if found is None:
        found = _compiled[stmt] = _compiled_form(db, stmt)
    return found


def _compiled_form(db: Database, stmt: Statement) -> _Compiled:
    compiled = stmt.compile(dialect=db.engine.dialect)
    if "POSTCOMPILE" in compiled.string:
        # An `IN (:list)` is rendered per call; the raw path runs one fixed text.
        raise ValueError("statements for the raw path cannot expand IN lists; use = ANY")
    return _Compiled(
        sql=compiled.string,
        param_names=tuple(compiled.positiontup or ()),
        defaults={
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        },
    )


class Reader:
    """Runs statements for a request. With a session, writes and reads inside its transaction
    share it. Without one (read-only requests), each statement runs on the raw pool, or on
    SQLite in a short session of its own: no session to open, commit and close per request."""

    def __init__(self, db: Database, session: AsyncSession | None = None) -> None:
        self.db = db
        self.session = session

    @property
    def write_session(self) -> AsyncSession:
        """The session writes go through; a read-only reader has none."""
        if self.session is None:
            raise RuntimeError("a read-only Reader cannot write")
        return self.session

    def _pool(self) -> asyncpg.Pool | None:
        """The raw pool, unless the session has a transaction open (then: the session)."""
        if self.session is not None and self.session.in_transaction():
            return None
        return self.db.raw_pool

    async def all(
        self, stmt: Select[Any], params: Mapping[str, Any], *, cached: bool = True
    ) -> list[Row]:
        """Rows as dicts. `cached=False` for a statement built per request (a search's tree):
        its compiled form is not kept."""
        pool = self._pool()
        if pool is None:
            if self.session is not None:
                return await _session_rows(self.session, stmt, params)
            async with self.db.sessionmaker() as session:
                return await _session_rows(session, stmt, params)
        compiled = _compile(self.db, stmt) if cached else _compiled_form(self.db, stmt)
        async with pool.acquire() as connection:
            records = await connection.fetch(compiled.sql, *compiled.args(params))
        return [dict(record) for record in records]

    async def execute_atomic(self, stmt: Insert, params: Mapping[str, Any]) -> None:
        """Runs one self-contained write. With no transaction open in the session it runs alone
        on the raw pool (a single statement is atomic by itself: no BEGIN/COMMIT round trips);
        otherwise it joins the session's transaction."""
        pool = self._pool()
        if pool is None:
            await self.write_session.execute(stmt, dict(params))
            return
        compiled = _compile(self.db, stmt)
        async with pool.acquire() as connection:
            await connection.execute(compiled.sql, *compiled.args(params))

    async def one(self, stmt: Select[Any], params: Mapping[str, Any]) -> Row | None:
        rows = await self.all(stmt, params)
        return rows[0] if rows else None

    async def scalar(
        self, stmt: Select[Any], params: Mapping[str, Any], *, cached: bool = True
    ) -> Any:
        rows = await self.all(stmt, params, cached=cached)
        return next(iter(rows[0].values())) if rows else None


async def _session_rows(
    session: AsyncSession, stmt: Select[Any], params: Mapping[str, Any]
) -> list[Row]:
    result = await session.execute(stmt, dict(params))
    return [dict(row) for row in result.mappings()]
