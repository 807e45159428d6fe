"""Index deals for the metrics: closed in a window, open by expected close, by pipeline and creation

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 18:30:39.997252
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deals_live_closed",
            ["closed_at"],
            unique=False,
            postgresql_include=[
                "status",
                "owner_id",
                "pipeline_id",
                "currency",
                "amount",
                "created_at",
            ],
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_pipeline_created",
            ["pipeline_id", "created_at"],
            unique=False,
            postgresql_include=["stage_id", "status", "stage_changed_at", "owner_id"],
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_open_close",
            ["expected_close_date"],
            unique=False,
            postgresql_include=["stage_id", "currency", "amount", "owner_id", "pipeline_id"],
            postgresql_where=sa.text("archived_at IS NULL AND status = 'open'"),
            sqlite_where=sa.text("archived_at IS NULL AND status = 'open'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deals_open_close",
            postgresql_include=["stage_id", "currency", "amount", "owner_id", "pipeline_id"],
            postgresql_where=sa.text("archived_at IS NULL AND status = 'open'"),
            sqlite_where=sa.text("archived_at IS NULL AND status = 'open'"),
        )
        batch_op.drop_index(
            "ix_deals_live_pipeline_created",
            postgresql_include=["stage_id", "status", "stage_changed_at", "owner_id"],
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_deals_live_closed",
            postgresql_include=[
                "status",
                "owner_id",
                "pipeline_id",
                "currency",
                "amount",
                "created_at",
            ],
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
