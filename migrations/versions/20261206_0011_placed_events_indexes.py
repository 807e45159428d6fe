"""Feed-position indexes cover placed events only

An event is inserted without a feed position and placed once it has committed. The unique index
on `sequence` and the (type, sequence) index of the feed's type filter were entered on every
insert with a NULL that no reader looks up; as partial indexes over placed events, an insert
skips them and only placing enters the event.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLACED = sa.text("sequence IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_events_sequence", type_="unique")
        batch_op.drop_index("ix_events_type_sequence")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "uq_events_sequence",
            ["sequence"],
            unique=True,
            postgresql_where=PLACED,
            sqlite_where=PLACED,
        )
        batch_op.create_index(
            "ix_events_type_sequence",
            ["type", "sequence"],
            unique=False,
            postgresql_where=PLACED,
            sqlite_where=PLACED,
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_sequence", postgresql_where=PLACED, sqlite_where=PLACED)
        batch_op.drop_index("uq_events_sequence", postgresql_where=PLACED, sqlite_where=PLACED)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_events_sequence", ["sequence"])
        batch_op.create_index("ix_events_type_sequence", ["type", "sequence"], unique=False)
