"""Full-text search ignores accents on PostgreSQL too

SQLite's FTS5 tables (migration 0013) already fold accents away (`muller` finds Müller). On
PostgreSQL the search indexes are rebuilt over `crm_unaccent(...)` of the same text: the
`unaccent` extension's function with its dictionary fixed, which makes it immutable, as an index
expression must be (the extension's own is only stable: its dictionary is looked up by name at
each call). The expressions below must stay identical to `TextIndex.document()`.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: (columns, columns that are words at their dots and @), as in migration 0013
INDEXED = {
    "contacts": (("first_name", "last_name", "email"), ("email",)),
    "companies": (("name", "domain"), ("domain",)),
    "deals": (("name",), ()),
}


def _document(table: str, columns: Sequence[str], split: Sequence[str], unaccented: bool) -> str:
    parts = []
    for name in columns:
        column = f"{table}.{name}"
        if name in split:
            column = f"translate({column}, '@.', '  ')"
        parts.append(f"coalesce({column}, '')")
    text = " || ' ' || ".join(parts)
    return f"to_tsvector('simple'::regconfig, {f'crm_unaccent({text})' if unaccented else text})"


def _reindex(unaccented: bool) -> None:
    for table, (columns, split) in INDEXED.items():
        document = _document(table, columns, split, unaccented)
        op.execute(f"DROP INDEX ix_{table}_search")
        op.execute(f"CREATE INDEX ix_{table}_search ON {table} USING gin (({document}))")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    # The extension's schema is looked up now, so the function does not depend on search_path.
    schema = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'"
        )
        .scalar_one()
    )
    op.execute(
        "CREATE FUNCTION crm_unaccent(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT "
        f"PARALLEL SAFE AS $$ SELECT {schema}.unaccent('{schema}.unaccent'::regdictionary, $1) $$"
    )
    _reindex(unaccented=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _reindex(unaccented=False)
    op.execute("DROP FUNCTION crm_unaccent(text)")
    # The extension stays: something else may have come to use it.
