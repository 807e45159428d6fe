from datetime import datetime
from uuid import UUID

from pydantic import Field

from crm_api.core.schemas import (
    Currency,
    DecimalString,
    ExternalId,
    InputModel,
    LongText,
    MoneyAmount,
    Name,
    NotNullable,
    ReadModel,
    Sku,
)


class ProductCreate(InputModel):
    sku: Sku
    name: Name
    description: LongText | None = None
    unit_price: MoneyAmount = Field(description="Per unit, within the currency's minor unit.")
    currency: Currency
    active: bool = Field(default=True, description="Inactive products cannot be added to deals.")
    external_id: ExternalId | None = None


class ProductUpdate(NotNullable):
    not_null = frozenset({"sku", "name", "unit_price", "currency", "active"})

    sku: Sku | None = None
    name: Name | None = None
    description: LongText | None = None
    unit_price: MoneyAmount | None = None
    currency: Currency | None = None
    active: bool | None = None
    external_id: ExternalId | None = None


class ProductRead(ReadModel):
    id: UUID
    sku: str
    name: str
    description: str | None
    unit_price: DecimalString
    currency: str
    active: bool
    external_id: str | None
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
