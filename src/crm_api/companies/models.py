from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import (
    Base,
    JSONType,
    RecordColumns,
    UTCDateTime,
    custom_fields_index,
    live_index,
    record_indexes,
)
from crm_api.core.enums import LifecycleStage, sql_in


class Company(RecordColumns, Base):
    __tablename__ = "companies"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(253))
    industry: Mapped[str | None] = mapped_column(String(100))
    employee_count: Mapped[int | None] = mapped_column(Integer)
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    annual_revenue_currency: Mapped[str | None] = mapped_column(String(3))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(20))
    owner_id: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType)
    external_id: Mapped[str | None] = mapped_column(String(200))
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merged_into_id: Mapped[UUID | None] = mapped_column(ForeignKey("companies.id"))
    """Set when the company was merged into another (and archived with it)."""

    __table_args__ = (
        *record_indexes("companies"),
        custom_fields_index("companies"),
        CheckConstraint(f"lifecycle_stage {sql_in(LifecycleStage)}", name="lifecycle_stage"),
        live_index("uq_companies_domain_live", "domain", unique=True),
        Index("ix_companies_owner_id", "owner_id"),
    )
