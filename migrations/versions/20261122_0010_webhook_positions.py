"""Each webhook subscription fans out from its own feed position

A subscription used to take events that occurred after it was made, from one shared fan-out
mark; a fan-out between its creation and its commit could pass events it should get. Each now
keeps its own position (set to the feed's end when it is made); existing ones start at the old
shared mark.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 23:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fanned_out_through", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE webhook_subscriptions SET fanned_out_through = COALESCE("
        "(SELECT position FROM feed_state WHERE name = 'webhooks_fanned_out'), 0)"
    )
    op.execute("DELETE FROM feed_state WHERE name = 'webhooks_fanned_out'")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.alter_column("fanned_out_through", server_default=None)


def downgrade() -> None:
    op.execute(
        "INSERT INTO feed_state (name, position) SELECT "
        "'webhooks_fanned_out', COALESCE(MIN(fanned_out_through), 0) FROM webhook_subscriptions"
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("fanned_out_through")
