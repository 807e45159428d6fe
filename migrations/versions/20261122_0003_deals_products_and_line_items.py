"""Deals (with contacts, stage history and line items) and products

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:42:01.177917
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column(
            "unit_price",
            sa.Numeric(precision=20, scale=4).with_variant(sa.BigInteger(), "sqlite"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_products_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(
            "ix_products_live_created",
            ["created_at", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_products_live_name",
            ["name_key", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_products_live_updated",
            ["updated_at", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "uq_products_external_id_live",
            ["external_id"],
            unique=True,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "uq_products_sku_live",
            ["sku"],
            unique=True,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )

    op.create_table(
        "deals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("stage_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "amount",
            sa.Numeric(precision=20, scale=4).with_variant(sa.BigInteger(), "sqlite"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expected_close_date", sa.Date(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("next_step", sa.String(length=500), nullable=True),
        sa.Column("lost_reason", sa.String(length=500), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'won', 'lost')", name=op.f("ck_deals_status")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_deals_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_deals_created_by_users")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_deals_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["pipelines.id"], name=op.f("fk_deals_pipeline_id_pipelines")
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["pipeline_stages.id"], name=op.f("fk_deals_stage_id_pipeline_stages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index("ix_deals_company_id", ["company_id"], unique=False)
        batch_op.create_index(
            "ix_deals_live_amount",
            ["amount", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_board_totals",
            ["pipeline_id", "status", "stage_id", "currency", "amount"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_close",
            ["expected_close_date", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_created",
            ["created_at", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_name",
            ["name_key", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_stage_amount",
            ["stage_id", "amount", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deals_live_updated",
            ["updated_at", "id"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index("ix_deals_owner_id", ["owner_id"], unique=False)
        batch_op.create_index("ix_deals_stage_id", ["stage_id"], unique=False)
        batch_op.create_index(
            "uq_deals_external_id_live",
            ["external_id"],
            unique=True,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )

    op.create_table(
        "deal_contacts",
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "role IN ('decision_maker', 'champion', 'influencer', 'other')",
            name=op.f("ck_deal_contacts_role"),
        ),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"], name=op.f("fk_deal_contacts_added_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_deal_contacts_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_contacts_deal_id_deals")
        ),
        sa.PrimaryKeyConstraint("deal_id", "contact_id", name=op.f("pk_deal_contacts")),
    )
    with op.batch_alter_table("deal_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_deal_contacts_contact_id", ["contact_id"], unique=False)

    op.create_table(
        "deal_stage_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage_id", sa.Uuid(), nullable=True),
        sa.Column("to_stage_id", sa.Uuid(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["changed_by"], ["users.id"], name=op.f("fk_deal_stage_history_changed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_deal_stage_history_deal_id_deals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_history")),
    )
    with op.batch_alter_table("deal_stage_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deal_stage_history_deal", ["deal_id", "changed_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_deal_stage_history_to_stage", ["to_stage_id", "changed_at"], unique=False
        )

    op.create_table(
        "line_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column(
            "quantity",
            sa.Numeric(precision=20, scale=4).with_variant(sa.BigInteger(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "unit_price",
            sa.Numeric(precision=20, scale=4).with_variant(sa.BigInteger(), "sqlite"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "discount_percent",
            sa.Numeric(precision=7, scale=4).with_variant(sa.BigInteger(), "sqlite"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_line_items_quantity")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_line_items_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_line_items_deal_id_deals")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_line_items_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_items")),
    )
    with op.batch_alter_table("line_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_line_items_deal_position", ["deal_id", "position", "id"], unique=False
        )
        batch_op.create_index("ix_line_items_product_id", ["product_id"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes with it, on both databases.
    for table in ("line_items", "deal_stage_history", "deal_contacts", "deals", "products"):
        op.drop_table(table)
