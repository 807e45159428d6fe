"""Engine, sessions, the declarative base and the column types both databases share."""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

# Constraint names are part of the schema contract: conflicts are recognized by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A model's Core table, typed as such (`__table__` is typed as a generic FromClause)."""
    return cast(Table, model.__table__)


LIVE = text("archived_at IS NULL")


def live_index(name: str, *columns: str, unique: bool = False) -> Index:
    """An index over live (not archived) rows only: what lists and uniqueness rules read."""
    return Index(name, *columns, unique=unique, postgresql_where=LIVE, sqlite_where=LIVE)


def record_indexes(table: str) -> tuple[Index, ...]:
    """The indexes of every archivable record: `external_id` unique among live rows, and the
    created, updated and name orders its lists walk."""
    return (
        live_index(f"uq_{table}_external_id_live", "external_id", unique=True),
        live_index(f"ix_{table}_live_created", "created_at", "id"),
        live_index(f"ix_{table}_live_updated", "updated_at", "id"),
        live_index(f"ix_{table}_live_name", "name_key", "id"),
    )


def custom_fields_index(table: str) -> Index:
    """PostgreSQL's GIN index over a record's `custom_fields`: equality and membership filters
    on any custom field become `@>` containment, which it answers (jsonb_path_ops)."""
    return Index(
        f"ix_{table}_custom_fields",
        "custom_fields",
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql")


class unicode_lower(FunctionElement[str]):  # noqa: N801 - used like func.lower
    """lower() over all of Unicode on both databases (SQLite's folds ASCII only)."""

    type = String()
    inherit_cache = True
    name = "unicode_lower"


@compiles(unicode_lower)
def _unicode_lower(element: unicode_lower, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(unicode_lower, "sqlite")
def _unicode_lower_sqlite(element: unicode_lower, compiler: Any, **kw: Any) -> str:
    return f"unicode_lower({compiler.process(element.clauses, **kw)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out; SQLite stores naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class FixedDecimal(TypeDecorator[Decimal]):
    """An exact decimal with `scale` digits after the point: NUMERIC on PostgreSQL. SQLite's
    NUMERIC is a float, so there it is an integer count of 10^-scale units: exact, and it still
    sorts, compares and sums in SQL (sums come back through the same conversion)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 20, scale: int = 4) -> None:
        super().__init__(precision, scale)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        scaled = Decimal(value).scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name != "sqlite":
            return Decimal(value)
        # Quantized, so a value reads back at the same scale as PostgreSQL's NUMERIC gives it.
        unit = Decimal(1).scaleb(-self.scale)
        return Decimal(int(value)).scaleb(-self.scale).quantize(unit)


class _DecimalText(TypeDecorator[Decimal]):
    """A decimal that SQLite hands back as text (see `exact_sum`); PostgreSQL, as NUMERIC."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


class exact_sum(FunctionElement[Decimal]):  # noqa: N801 - used like func.sum
    """SUM of a non-negative `FixedDecimal` column, exact on both databases. PostgreSQL sums
    NUMERIC without limit; SQLite would overflow its 64-bit integers (at 9.2e14 units of scale
    4), so there the whole and fractional units are summed apart and joined as text."""

    type = _DecimalText()
    inherit_cache = True
    name = "exact_sum"


@compiles(exact_sum)
def _exact_sum(element: exact_sum, compiler: Any, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(exact_sum, "sqlite")
def _exact_sum_sqlite(element: exact_sum, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    scale = cast(FixedDecimal, column.type).scale
    unit = 10**scale
    value = compiler.process(column, **kw)
    whole, fraction = f"sum({value} / {unit})", f"sum({value} % {unit})"
    return f"printf('%d.%0{scale}d', {whole} + {fraction} / {unit}, {fraction} % {unit})"


class RecordColumns:
    """The columns of every versioned, archivable record (a declarative mixin)."""

    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# None is SQL NULL on every write path (SQLAlchemy's default would store JSON 'null' through
# the session, while the raw pool stores NULL).
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def json_text(value: Any) -> str:
    """How JSON columns are written. UUIDs and datetimes have native orjson forms; anything else
    (Decimal) is stored as its str."""
    return orjson.dumps(value, default=str).decode()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _sqlite_setup(lock_timeout_ms: int) -> Callable[[Any, Any], None]:
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # SQLite's own lower() folds ASCII only; case-insensitive search needs all of Unicode.
        dbapi_connection.create_function("unicode_lower", 1, _lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_ms)}")
        cursor.close()

    return set_pragmas


SERVER_SETTINGS = {"jit": "off"}
"""PostgreSQL settings of every connection. JIT compilation pays off for long analytic scans
with accurate estimates; for these queries it cost seconds per statement (a metrics statement
whose estimated cost crosses jit_above_cost spent 4 s compiling for 1 s of execution)."""


DEFAULT_LOCK_TIMEOUT_MS = 5000


def _server_settings(lock_timeout_ms: int) -> dict[str, str]:
    return {**SERVER_SETTINGS, "lock_timeout": str(int(lock_timeout_ms))}


def create_engine(
    url: str, *, pool_size: int = 10, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
) -> AsyncEngine:
    """`lock_timeout_ms`: how long a statement waits for a lock (PostgreSQL's lock_timeout,
    SQLite's busy timeout) before it fails, as a transient error (core.integrity)."""
    if is_sqlite(url):
        engine = create_async_engine(url, json_serializer=json_text)
        event.listen(engine.sync_engine, "connect", _sqlite_setup(lock_timeout_ms))
        return engine
    return create_async_engine(
        url,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        connect_args={"server_settings": _server_settings(lock_timeout_ms)},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def lock_for_write(session: AsyncSession) -> None:
    """On SQLite, take the database write lock now (BEGIN IMMEDIATE) so that what the
    transaction reads next cannot change before it writes. PostgreSQL uses row locks instead."""
    if session.get_bind().dialect.name != "sqlite":
        return  # without opening a transaction: PostgreSQL reads may still take the raw pool
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is not None and not driver.in_transaction:
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def take_turn(session: AsyncSession, lock: int) -> None:
    """Waits, as long as it takes, for the PostgreSQL advisory lock `lock` (held until the
    transaction ends): how worker steps that must not overlap take turns. The lock timeout is
    for requests, which should not hang; a worker waiting its turn (a retention purge can hold
    one a while) would only fail its round."""
    await session.execute(text("SET LOCAL lock_timeout = 0"))
    await session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})


async def _init_raw_connection(connection: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type, encoder=json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def _reset_raw_connection(connection: asyncpg.Connection) -> None:
    # The raw pool only runs single autocommit statements (reads, batched inserts) and never
    # LISTENs or changes settings, so asyncpg's default reset (a round trip of UNLISTEN, RESET
    # ALL, ... on every release) has nothing to undo; only an interrupted transaction would.
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class Database:
    """The engine and session factory; on PostgreSQL also a raw asyncpg pool for hot reads."""

    def __init__(
        self, url: str, *, pool_size: int = 10, lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.lock_timeout_ms = lock_timeout_ms
        self.engine = create_engine(url, pool_size=pool_size, lock_timeout_ms=lock_timeout_ms)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.raw_pool: asyncpg.Pool | None = None

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    async def start(self) -> None:
        if self.is_sqlite or self.raw_pool is not None:
            return
        dsn = make_url(self.url).set(drivername="postgresql")
        self.raw_pool = await asyncpg.create_pool(
            dsn.render_as_string(hide_password=False),
            min_size=1,
            max_size=self.pool_size,
            init=_init_raw_connection,
            reset=_reset_raw_connection,
            server_settings=_server_settings(self.lock_timeout_ms),
        )

    async def close(self) -> None:
        if self.raw_pool is not None:
            await self.raw_pool.close()
            self.raw_pool = None
        await self.engine.dispose()
