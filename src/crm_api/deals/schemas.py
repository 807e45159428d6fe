from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import Field

from crm_api.companies.schemas import CompanySummary
from crm_api.contacts.schemas import ContactSummary
from crm_api.core.enums import StageKind
from crm_api.core.schemas import (
    Currency,
    CustomFields,
    Day,
    DecimalString,
    ExternalId,
    InputModel,
    LongText,
    MoneyAmount,
    Name,
    Note,
    NotNullable,
    Percent,
    Quantity,
    ReadModel,
)
from crm_api.deals.models import DealContactRole
from crm_api.pipelines.schemas import StageRead
from crm_api.tasks.schemas import NextTask

LOST_REASON = "Why the deal was lost: required to enter a lost stage, cleared on reopening."


class DealCreate(InputModel):
    name: Name
    pipeline_id: UUID | None = Field(
        default=None, description="Default: the stage's pipeline, else the default pipeline."
    )
    stage_id: UUID | None = Field(default=None, description="Default: the pipeline's first stage.")
    amount: MoneyAmount = Field(
        default=Decimal(0), description="Derived from the line items once the deal has any."
    )
    currency: Currency | None = Field(
        default=None, description="ISO 4217; default `CRM_DEFAULT_CURRENCY` (USD)."
    )
    expected_close_date: Day | None = None
    owner_id: UUID | None = Field(default=None, description="Defaults to the caller.")
    company_id: UUID | None = Field(default=None, description="A live company.")
    next_step: Note | None = None
    lost_reason: Note | None = Field(default=None, description=LOST_REASON)
    custom_fields: CustomFields = Field(default_factory=dict)
    external_id: ExternalId | None = None


class DealUpdate(NotNullable):
    not_null = frozenset(
        {"name", "pipeline_id", "stage_id", "amount", "currency", "owner_id", "custom_fields"}
    )

    name: Name | None = None
    pipeline_id: UUID | None = Field(default=None, description="Needs a `stage_id` of it.")
    stage_id: UUID | None = Field(default=None, description="Same as `POST …/move`.")
    amount: MoneyAmount | None = Field(default=None, description="409 if the deal has line items.")
    currency: Currency | None = None
    expected_close_date: Day | None = None
    owner_id: UUID | None = None
    company_id: UUID | None = None
    next_step: Note | None = None
    lost_reason: Note | None = Field(default=None, description=LOST_REASON)
    custom_fields: CustomFields | None = None
    external_id: ExternalId | None = None


class DealMove(InputModel):
    stage_id: UUID
    pipeline_id: UUID | None = Field(
        default=None, description="To move to another pipeline; `stage_id` must be one of its."
    )
    lost_reason: Note | None = Field(default=None, description=LOST_REASON)


class StageSummary(ReadModel):
    id: UUID
    name: str
    kind: StageKind
    probability: int


class DealContactInput(InputModel):
    contact_id: UUID
    role: DealContactRole = DealContactRole.other


class DealContactRead(ReadModel):
    contact_id: UUID
    role: DealContactRole
    added_at: datetime
    added_by: UUID | None
    contact: ContactSummary


class LineItemCreate(InputModel):
    product_id: UUID | None = Field(
        default=None, description="A live, active product; supplies name, price and currency."
    )
    name: Name | None = Field(default=None, description="Required without a product.")
    description: LongText | None = None
    quantity: Quantity
    unit_price: MoneyAmount | None = Field(default=None, description="Required without a product.")
    currency: Currency | None = Field(
        default=None, description="Must be the deal's currency (the default)."
    )
    discount_percent: Percent = Decimal(0)
    position: int | None = Field(default=None, ge=0, le=10_000, description="Default: last.")


class LineItemUpdate(NotNullable):
    not_null = frozenset({"name", "quantity", "unit_price", "discount_percent", "position"})

    name: Name | None = None
    description: LongText | None = None
    quantity: Quantity | None = None
    unit_price: MoneyAmount | None = None
    discount_percent: Percent | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)


class LineItemRead(ReadModel):
    id: UUID
    deal_id: UUID
    product_id: UUID | None
    name: str
    description: str | None
    quantity: DecimalString
    unit_price: DecimalString
    currency: str
    discount_percent: DecimalString
    amount: DecimalString = Field(
        description="quantity * unit_price * (1 - discount_percent/100), rounded half-even."
    )
    position: int
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class DealCard(ReadModel):
    """A deal without its contacts and line items, as on the board."""

    id: UUID
    name: str
    pipeline_id: UUID
    stage_id: UUID
    stage: StageSummary
    status: StageKind = Field(description="The kind of the deal's stage.")
    stage_changed_at: datetime
    amount: DecimalString
    currency: str
    weighted_amount: DecimalString = Field(
        description="amount * stage probability / 100, rounded half-even."
    )
    expected_close_date: date | None
    owner_id: UUID
    company_id: UUID | None
    company: CompanySummary | None
    next_step: str | None
    lost_reason: str | None
    closed_at: datetime | None = Field(description="Set on entering won or lost; null if open.")
    custom_fields: dict[str, Any]
    external_id: str | None
    last_activity_at: datetime | None = Field(description="Of its latest live activity.")
    next_task: NextTask | None
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class DealRead(DealCard):
    contacts: list[DealContactRead]
    line_items: list[LineItemRead] = Field(description="In `position` order.")


class DealStageChangeRead(ReadModel):
    id: UUID
    deal_id: UUID
    pipeline_id: UUID
    from_stage_id: UUID | None
    from_stage_name: str | None = Field(description="Null for the first stage, or if deleted.")
    to_stage_id: UUID
    to_stage_name: str | None = Field(description="Null if the stage was deleted since.")
    to_stage_kind: StageKind | None
    changed_at: datetime
    changed_by: UUID | None
    left_at: datetime | None = Field(description="When the deal left; null while it is there.")
    seconds_in_stage: int = Field(description="Until it left, or until now.")


class TimeInStage(ReadModel):
    stage_id: UUID
    stage_name: str | None
    seconds: int = Field(description="Over every visit.")
    visits: int


class DealStageHistory(ReadModel):
    data: list[DealStageChangeRead] = Field(description="Oldest first; the first is creation.")
    time_in_stage: list[TimeInStage]


class CurrencyTotal(ReadModel):
    currency: str
    count: int
    amount: DecimalString
    weighted_amount: DecimalString


class BoardColumn(ReadModel):
    stage: StageRead
    count: int = Field(description="Live deals in the stage (open ones unless include_closed).")
    totals: list[CurrencyTotal] = Field(description="Sums per currency: never mixed.")
    deals: list[DealCard]
    next_cursor: str | None = Field(
        description="For more of this stage: `GET /v1/deals?stage_id=…&sort=…&cursor=…`."
    )


class Board(ReadModel):
    pipeline_id: UUID
    name: str
    stages: list[BoardColumn]
