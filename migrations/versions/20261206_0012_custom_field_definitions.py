"""Custom field definitions, and GIN indexes on custom_fields (PostgreSQL)

Definitions per object type (contact, company, deal) with a key that stays taken when archived.
On PostgreSQL each record table's `custom_fields` gets a GIN index (jsonb_path_ops), which
answers equality and membership filters on any custom field through `@>` containment.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("archived_at IS NULL")
RECORD_TABLES = ("contacts", "companies", "deals")


def upgrade() -> None:
    op.create_table(
        "custom_field_definitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "object_type IN ('contact', 'company', 'deal')",
            name=op.f("ck_custom_field_definitions_object_type"),
        ),
        sa.CheckConstraint(
            "type IN ('text', 'number', 'date', 'boolean', 'enum', 'multi_enum')",
            name=op.f("ck_custom_field_definitions_type"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_custom_field_definitions_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_field_definitions")),
        sa.UniqueConstraint(
            "object_type", "key", name=op.f("uq_custom_field_definitions_object_type_key")
        ),
    )
    for suffix, columns in (
        ("created", ["created_at", "id"]),
        ("updated", ["updated_at", "id"]),
        ("name", ["name_key", "id"]),
    ):
        op.create_index(
            f"ix_custom_field_definitions_live_{suffix}",
            "custom_field_definitions",
            columns,
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
    if op.get_bind().dialect.name == "postgresql":
        for table in RECORD_TABLES:
            op.execute(
                f"CREATE INDEX ix_{table}_custom_fields ON {table} "
                "USING gin (custom_fields jsonb_path_ops)"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in RECORD_TABLES:
            op.execute(f"DROP INDEX ix_{table}_custom_fields")
    for suffix in ("created", "updated", "name"):
        op.drop_index(
            f"ix_custom_field_definitions_live_{suffix}",
            table_name="custom_field_definitions",
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
    op.drop_table("custom_field_definitions")
