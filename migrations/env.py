"""Alembic environment: async engines on both SQLite and PostgreSQL."""

import asyncio
import logging.config
import re
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from crm_api.config import get_settings
from crm_api.core.db import FixedDecimal, UTCDateTime, create_engine
from crm_api.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    # Revisions must not import application types: render the column type they stand for.
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(item, FixedDecimal):
        numeric = f"sa.Numeric(precision={item.precision}, scale={item.scale})"
        return f'{numeric}.with_variant(sa.BigInteger(), "sqlite")'
    return False


# Full-text search lives outside the models (migration 0013): SQLite's FTS5 tables (and their
# shadow tables), PostgreSQL's expression indexes.
_FULL_TEXT = re.compile(r"\w+_fts(_\w+)?|ix_\w+_search")


def _for_dialect(dialect: str) -> Any:
    """Leaves out of the comparison what the models declare for another database only
    (`Index(...).ddl_if(dialect=...)`, such as PostgreSQL's GIN indexes), and full-text search."""

    def include(item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        if name is not None and _FULL_TEXT.fullmatch(name):
            return False
        only = getattr(item, "_ddl_if", None)
        return only is None or only.dialect is None or only.dialect == dialect

    return include


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        include_object=_for_dialect(connection.dialect.name),
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
