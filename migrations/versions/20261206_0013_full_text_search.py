"""Full-text search over contacts, companies and deals

PostgreSQL: an expression GIN index per table over the tsvector `crm_api.core.fulltext`
queries (the expressions below must stay identical to `TextIndex.document()`; a test checks the
index is used). SQLite: an FTS5 table `<table>_fts` with the same columns, over the table's rows
(external content, by rowid), kept in step by triggers.

A later migration that rebuilds one of these tables on SQLite (batch mode copies it) drops its
triggers and may renumber its rows: it must recreate the triggers and rebuild the FTS table
(`INSERT INTO <table>_fts(<table>_fts) VALUES ('rebuild')`), as this one does.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: (columns, columns that are words at their dots and @)
INDEXED = {
    "contacts": (("first_name", "last_name", "email"), ("email",)),
    "companies": (("name", "domain"), ("domain",)),
    "deals": (("name",), ()),
}


def _document(table: str, columns: Sequence[str], split: Sequence[str]) -> str:
    parts = []
    for name in columns:
        column = f"{table}.{name}"
        if name in split:
            column = f"translate({column}, '@.', '  ')"
        parts.append(f"coalesce({column}, '')")
    return "to_tsvector('simple'::regconfig, " + " || ' ' || ".join(parts) + ")"


def _sqlite_fts(table: str, columns: Sequence[str]) -> list[str]:
    fts, listed = f"{table}_fts", ", ".join(columns)
    new = ", ".join(f"new.{column}" for column in columns)
    old = ", ".join(f"old.{column}" for column in columns)
    forget = f"INSERT INTO {fts}({fts}, rowid, {listed}) VALUES ('delete', old.rowid, {old});"
    remember = f"INSERT INTO {fts}(rowid, {listed}) VALUES (new.rowid, {new});"
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({listed}, content='{table}', "
        "content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {remember} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {forget} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {listed} ON {table} "
        f"BEGIN {forget} {remember} END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (columns, split) in INDEXED.items():
        if postgres:
            document = _document(table, columns, split)
            op.execute(f"CREATE INDEX ix_{table}_search ON {table} USING gin (({document}))")
        else:
            for statement in _sqlite_fts(table, columns):
                op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in INDEXED:
        if postgres:
            op.execute(f"DROP INDEX ix_{table}_search")
            continue
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER {table}_fts_{trigger}")
        op.execute(f"DROP TABLE {table}_fts")
