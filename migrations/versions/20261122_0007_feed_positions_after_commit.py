"""Feed positions assigned after commit

events.sequence becomes outbox_id (insert order); a new, nullable events.sequence is the feed
position, set once the event has committed; feed_state keeps named positions in the feed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 21:47:36.361954
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSEQUENCED = sa.text("sequence IS NULL")


def upgrade() -> None:
    op.create_table(
        "feed_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_feed_state")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_sequence")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("sequence", new_column_name="outbox_id")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
    # Every event stored so far has committed: its feed position is its insert order.
    op.execute("UPDATE events SET sequence = outbox_id")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_events_sequence"), ["sequence"])
        batch_op.create_index("ix_events_type_sequence", ["type", "sequence"], unique=False)
        batch_op.create_index("ix_events_occurred_at", ["occurred_at"], unique=False)
        batch_op.create_index(
            "ix_events_unsequenced",
            ["outbox_id"],
            unique=False,
            postgresql_where=UNSEQUENCED,
            sqlite_where=UNSEQUENCED,
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_unsequenced", postgresql_where=UNSEQUENCED, sqlite_where=UNSEQUENCED
        )
        batch_op.drop_index("ix_events_occurred_at")
        batch_op.drop_index("ix_events_type_sequence")
        batch_op.drop_constraint(batch_op.f("uq_events_sequence"), type_="unique")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("sequence")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("outbox_id", new_column_name="sequence")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_type_sequence", ["type", "sequence"], unique=False)
    op.drop_table("feed_state")
