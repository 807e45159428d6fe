from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from crm_api.core.enums import LifecycleStage
from crm_api.core.schemas import (
    Currency,
    CustomFields,
    DecimalString,
    Domain,
    ExternalId,
    InputModel,
    Label,
    MoneyAmount,
    Name,
    NotNullable,
    Phone,
    ReadModel,
    ShortText,
)


class Address(InputModel):
    street: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: ShortText | None = None
    country: ShortText | None = Field(default=None, description="ISO 3166-1 alpha-2 preferred.")


class CompanyCreate(InputModel):
    name: Name
    domain: Domain | None = Field(
        default=None, description="A domain, URL or email; stored as the bare, IDNA-encoded host."
    )
    industry: Label | None = None
    employee_count: int | None = Field(default=None, ge=0, le=10_000_000)
    annual_revenue: MoneyAmount | None = None
    annual_revenue_currency: Currency | None = None
    phone: Phone | None = None
    address: Address | None = None
    lifecycle_stage: LifecycleStage | None = None
    owner_id: UUID | None = Field(default=None, description="Defaults to the caller.")
    custom_fields: CustomFields = Field(default_factory=dict)
    external_id: ExternalId | None = None


class CompanyUpdate(NotNullable):
    not_null = frozenset({"name", "owner_id", "custom_fields"})

    name: Name | None = None
    domain: Domain | None = None
    industry: Label | None = None
    employee_count: int | None = Field(default=None, ge=0, le=10_000_000)
    annual_revenue: MoneyAmount | None = None
    annual_revenue_currency: Currency | None = None
    phone: Phone | None = None
    address: Address | None = None
    lifecycle_stage: LifecycleStage | None = None
    owner_id: UUID | None = None
    custom_fields: CustomFields | None = None
    external_id: ExternalId | None = None


class CompanySummary(ReadModel):
    id: UUID
    name: str
    domain: str | None


class CompanyRead(ReadModel):
    id: UUID
    name: str
    domain: str | None
    industry: str | None
    employee_count: int | None
    annual_revenue: DecimalString | None
    annual_revenue_currency: str | None
    phone: str | None
    address: dict[str, Any] | None
    lifecycle_stage: LifecycleStage | None
    owner_id: UUID
    custom_fields: dict[str, Any]
    external_id: str | None
    last_activity_at: datetime | None = Field(description="Of its latest live activity.")
    merged_into_id: UUID | None = Field(
        description="The company this one was merged into (it is then archived; requests to "
        "it answer 404 naming this id)."
    )
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
