"""Merged records: contacts and companies keep the record they were merged into

A contact or company merged into another is archived with `merged_into_id` (a foreign key to its
own table). Two small indexes serve duplicate detection: live contacts by phone (shared phones
are grouped from it alone) and live contacts with a `+tag` in their email.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("archived_at IS NULL")
LIVE_TAGGED = sa.text("archived_at IS NULL AND email LIKE '%+%'")
TABLES = ("companies", "contacts")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    for table in TABLES:
        fk = f"fk_{table}_merged_into_id_{table}"
        if _sqlite():
            # A column-level REFERENCES is added in place; batch mode would copy the table,
            # whose DROP fails under foreign keys as soon as other rows reference it.
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN merged_into_id CHAR(32) "
                f"CONSTRAINT {fk} REFERENCES {table} (id)"
            )
        else:
            op.add_column(table, sa.Column("merged_into_id", sa.Uuid(), nullable=True))
            op.create_foreign_key(fk, table, table, ["merged_into_id"], ["id"])
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_live_phone",
            ["phone"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_contacts_live_tagged_email",
            ["email"],
            unique=False,
            postgresql_where=LIVE_TAGGED,
            sqlite_where=LIVE_TAGGED,
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_contacts_live_tagged_email", postgresql_where=LIVE_TAGGED, sqlite_where=LIVE_TAGGED
        )
        batch_op.drop_index("ix_contacts_live_phone", postgresql_where=LIVE, sqlite_where=LIVE)
    for table in reversed(TABLES):
        if _sqlite():
            op.execute(f"ALTER TABLE {table} DROP COLUMN merged_into_id")
        else:
            op.drop_constraint(f"fk_{table}_merged_into_id_{table}", table, type_="foreignkey")
            op.drop_column(table, "merged_into_id")
