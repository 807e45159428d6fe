"""Throwaway databases for tests: a SQLite file, or a new database on the PostgreSQL server
named by `CRM_TEST_DATABASE_URL`, dropped afterwards."""

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import asyncpg
from sqlalchemy import make_url

SERVER_URL_VAR = "CRM_TEST_DATABASE_URL"


def on_postgresql() -> bool:
    return bool(os.environ.get(SERVER_URL_VAR))


async def _admin(server_url: str, sql: str) -> None:
    dsn = make_url(server_url).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def fresh_database(directory: Path) -> Iterator[str]:
    """The async SQLAlchemy URL of an empty database that exists for the `with` block."""
    server_url = os.environ.get(SERVER_URL_VAR)
    if not server_url:
        yield f"sqlite+aiosqlite:///{directory / f'crm-{uuid4().hex[:8]}.db'}"
        return
    name = f"crm_test_{uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
