"""Deals, the contacts on them, their stage history and their line items."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import (
    LIVE,
    Base,
    FixedDecimal,
    JSONType,
    RecordColumns,
    UTCDateTime,
    custom_fields_index,
    live_index,
    record_indexes,
)
from crm_api.core.enums import StageKind, sql_in


class DealContactRole(StrEnum):
    decision_maker = "decision_maker"
    champion = "champion"
    influencer = "influencer"
    other = "other"


_LIVE_OPEN = text("archived_at IS NULL AND status = 'open'")


class Deal(RecordColumns, Base):
    __tablename__ = "deals"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    pipeline_id: Mapped[UUID] = mapped_column(ForeignKey("pipelines.id"))
    stage_id: Mapped[UUID] = mapped_column(ForeignKey("pipeline_stages.id"))
    status: Mapped[str] = mapped_column(String(10))
    """The kind of the stage, kept on the row so lists and the board filter on an index; a
    stage holding deals cannot change kind, so the two never disagree."""
    stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal] = mapped_column(FixedDecimal())
    currency: Mapped[str] = mapped_column(String(3))
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    owner_id: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    company_id: Mapped[UUID | None] = mapped_column(ForeignKey("companies.id"))
    next_step: Mapped[str | None] = mapped_column(String(500))
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType)
    external_id: Mapped[str | None] = mapped_column(String(200))
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_task_id: Mapped[UUID | None] = mapped_column(Uuid)
    """As on contacts: the earliest open task by due date."""

    __table_args__ = (
        *record_indexes("deals"),
        custom_fields_index("deals"),
        CheckConstraint(f"status {sql_in(StageKind)}", name="status"),
        live_index("ix_deals_live_amount", "amount", "id"),
        live_index("ix_deals_live_close", "expected_close_date", "id"),
        # A stage's column on the board, and "open deals of a stage by amount".
        live_index("ix_deals_live_stage_amount", "stage_id", "amount", "id"),
        # The board's per-stage totals, read from the index alone.
        live_index(
            "ix_deals_live_board_totals", "pipeline_id", "status", "stage_id", "currency", "amount"
        ),
        # Metrics over deals closed in a window (win rate, deal size, sales cycle, forecast),
        # over open deals by expected close month (forecast), and over the deals a pipeline's
        # funnel follows, by creation: index-only scans on PostgreSQL.
        Index(
            "ix_deals_live_closed",
            "closed_at",
            postgresql_include=[
                "status",
                "owner_id",
                "pipeline_id",
                "currency",
                "amount",
                "created_at",
            ],
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
        Index(
            "ix_deals_open_close",
            "expected_close_date",
            postgresql_include=["stage_id", "currency", "amount", "owner_id", "pipeline_id"],
            postgresql_where=_LIVE_OPEN,
            sqlite_where=_LIVE_OPEN,
        ),
        Index(
            "ix_deals_live_pipeline_created",
            "pipeline_id",
            "created_at",
            postgresql_include=["stage_id", "status", "stage_changed_at", "owner_id"],
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        ),
        Index("ix_deals_stage_id", "stage_id"),
        Index("ix_deals_owner_id", "owner_id"),
        Index("ix_deals_company_id", "company_id"),
    )


class DealContact(Base):
    __tablename__ = "deal_contacts"

    deal_id: Mapped[UUID] = mapped_column(ForeignKey("deals.id"), primary_key=True)
    contact_id: Mapped[UUID] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint(f"role {sql_in(DealContactRole)}", name="role"),
        Index("ix_deal_contacts_contact_id", "contact_id"),
    )


class DealStageChange(Base):
    """Every stage a deal entered, the first at creation. Stage ids are not foreign keys: a
    deleted stage's history stays."""

    __tablename__ = "deal_stage_history"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    deal_id: Mapped[UUID] = mapped_column(ForeignKey("deals.id"))
    pipeline_id: Mapped[UUID] = mapped_column(Uuid)
    from_stage_id: Mapped[UUID | None] = mapped_column(Uuid)
    to_stage_id: Mapped[UUID] = mapped_column(Uuid)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        Index("ix_deal_stage_history_deal", "deal_id", "changed_at", "id"),
        Index("ix_deal_stage_history_to_stage", "to_stage_id", "changed_at"),
    )


class LineItem(Base):
    __tablename__ = "line_items"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    deal_id: Mapped[UUID] = mapped_column(ForeignKey("deals.id"))
    product_id: Mapped[UUID | None] = mapped_column(ForeignKey("products.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    quantity: Mapped[Decimal] = mapped_column(FixedDecimal())
    unit_price: Mapped[Decimal] = mapped_column(FixedDecimal())
    currency: Mapped[str] = mapped_column(String(3))
    discount_percent: Mapped[Decimal] = mapped_column(FixedDecimal(precision=7))
    position: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        Index("ix_line_items_deal_position", "deal_id", "position", "id"),
        Index("ix_line_items_product_id", "product_id"),
    )
