from decimal import Decimal
from uuid import UUID

from sqlalchemy import Boolean, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, FixedDecimal, RecordColumns, live_index, record_indexes


class Product(RecordColumns, Base):
    __tablename__ = "products"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    sku: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    unit_price: Mapped[Decimal] = mapped_column(FixedDecimal())
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean)
    external_id: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        *record_indexes("products"),
        live_index("uq_products_sku_live", "sku", unique=True),
    )
