"""Pipelines and stages, with the default pipeline "Sales"

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:27:04.781705
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from crm_api.core.ids import uuid7

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
    )
    op.create_table(
        "pipeline_stages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('open', 'won', 'lost')", name=op.f("ck_pipeline_stages_kind")),
        sa.CheckConstraint(
            "probability BETWEEN 0 AND 100", name=op.f("ck_pipeline_stages_probability")
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"], name=op.f("fk_pipeline_stages_pipeline_id_pipelines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_stages")),
    )
    with op.batch_alter_table("pipeline_stages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pipeline_stages_pipeline_position", ["pipeline_id", "position"], unique=False
        )
    _insert_default_pipeline()


DEFAULT_STAGES = [
    ("New", 10, "open"),
    ("Qualified", 25, "open"),
    ("Proposal", 50, "open"),
    ("Negotiation", 75, "open"),
    ("Won", 100, "won"),
    ("Lost", 0, "lost"),
]


def _insert_default_pipeline() -> None:
    now = datetime.now(UTC)
    pipeline_id = uuid7()
    pipelines = sa.table(
        "pipelines",
        sa.column("id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("is_default", sa.Boolean()),
        sa.column("version", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    stages = sa.table(
        "pipeline_stages",
        sa.column("id", sa.Uuid()),
        sa.column("pipeline_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("position", sa.Integer()),
        sa.column("probability", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        pipelines,
        [
            {
                "id": pipeline_id,
                "name": "Sales",
                "is_default": True,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    op.bulk_insert(
        stages,
        [
            {
                "id": uuid7(),
                "pipeline_id": pipeline_id,
                "name": name,
                "position": position,
                "probability": probability,
                "kind": kind,
                "created_at": now,
                "updated_at": now,
            }
            for position, (name, probability, kind) in enumerate(DEFAULT_STAGES)
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("pipeline_stages", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_stages_pipeline_position")

    op.drop_table("pipeline_stages")
    op.drop_table("pipelines")
