"""The metrics' response bodies. Money is a decimal string in the requested currency, rounded
half-even to its minor unit; durations and percentages are JSON numbers rounded half-even to 2
decimals; a figure with nothing to compute from (an empty denominator) is null."""

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from crm_api.core.schemas import DecimalString

Percent = Annotated[float | None, Field(description="0-100, 2 decimals; null if nothing to divide")]
Days = Annotated[float | None, Field(description="Days, 2 decimals; null if no values")]
Hours = Annotated[float | None, Field(description="Hours, 2 decimals; null if no values")]
GroupKey = Annotated[
    str | None,
    Field(description="The user id, pipeline id, `YYYY-MM` month or lead source of the group."),
]


class Windowed(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    first: date = Field(alias="from", description="First day of the window (UTC), included.")
    last: date = Field(alias="to", description="Last day of the window (UTC), included.")


class MoneyFigures(BaseModel):
    currency: str
    excluded_deals: int = Field(
        description="Deals that match but are in another currency: counted here, in no sum."
    )


# -- pipeline ------------------------------------------------------------------------------------


class StageValue(BaseModel):
    stage_id: UUID
    name: str
    probability: int
    deals: int = Field(description="Open deals in the stage, in `currency`.")
    amount: DecimalString
    weighted_amount: DecimalString = Field(description="Σ amount * probability / 100.")
    excluded_deals: int


class PipelineValue(BaseModel):
    pipeline_id: UUID
    name: str
    deals: int
    amount: DecimalString
    weighted_amount: DecimalString
    excluded_deals: int
    stages: list[StageValue]


class PipelineMetrics(MoneyFigures):
    deals: int
    amount: DecimalString
    weighted_amount: DecimalString
    target: DecimalString | None = Field(description="The `target` asked for, if any.")
    coverage: float | None = Field(
        description="amount ÷ target (2 decimals): how many times the open pipeline covers "
        "the target; null without a target."
    )
    pipelines: list[PipelineValue]


# -- forecast ------------------------------------------------------------------------------------


class ForecastFigures(BaseModel):
    won_deals: int
    won_amount: DecimalString = Field(description="Deals won (closed_at) in the month.")
    open_deals: int
    commit: DecimalString = Field(
        description="Open deals expected to close in the month: Σ amount * probability / 100."
    )
    best_case: DecimalString = Field(description="The same open deals: Σ amount.")


class ForecastMonth(ForecastFigures):
    month: str = Field(description="`YYYY-MM`.")


class ForecastMetrics(Windowed, MoneyFigures):
    undated_open_deals: int = Field(
        description="Open deals with no expected close date: in no month (any currency)."
    )
    totals: ForecastFigures
    months: list[ForecastMonth] = Field(description="Every month the window touches, in order.")


# -- win rate, deal size, sales cycle ------------------------------------------------------------


class WinRate(BaseModel):
    won: int
    lost: int
    win_rate: Percent


class WinRateGroup(WinRate):
    key: GroupKey


class WinRateMetrics(Windowed, WinRate):
    group_by: str | None
    groups: list[WinRateGroup]


class DealSize(BaseModel):
    deals: int
    total: DecimalString | None
    mean: DecimalString | None
    median: DecimalString | None


class DealSizeGroup(DealSize):
    key: GroupKey


class DealSizeMetrics(Windowed, MoneyFigures, DealSize):
    group_by: str | None
    groups: list[DealSizeGroup]


class SalesCycle(BaseModel):
    deals: int
    mean_days: Days
    median_days: Days
    p90_days: Days


class SalesCycleGroup(SalesCycle):
    key: GroupKey


class SalesCycleMetrics(Windowed, SalesCycle):
    group_by: str | None
    groups: list[SalesCycleGroup]


# -- stage funnel --------------------------------------------------------------------------------


class FunnelStage(BaseModel):
    stage_id: UUID
    name: str
    kind: str
    reached: int = Field(description="Cohort deals that entered this stage or a later one.")
    conversion_to_next: Percent = Field(
        description="reached(next stage) ÷ reached(this stage); null for the last stage."
    )
    mean_days: Days = Field(description="Finished visits only: from entering to leaving.")
    median_days: Days
    visits: int = Field(description="Finished visits the times are computed from.")
    deals_now: int = Field(description="Cohort deals in this stage now.")
    stalled: int = Field(description="Open cohort deals in this stage for over `stall_days`.")


class FunnelMetrics(Windowed):
    pipeline_id: UUID
    stall_days: int
    deals: int = Field(description="The cohort: deals created in the window, in the pipeline.")
    lost: int = Field(description="Cohort deals lost now.")
    stalled: int
    stages: list[FunnelStage] = Field(description="Every stage but lost ones, in order.")


# -- contacts ------------------------------------------------------------------------------------


class LeadResponse(BaseModel):
    contacts: int
    contacted: int
    never_contacted: int
    mean_hours: Hours
    median_hours: Hours
    p90_hours: Hours


class LeadResponseGroup(LeadResponse):
    key: GroupKey


class LeadResponseMetrics(Windowed, LeadResponse):
    group_by: str | None
    groups: list[LeadResponseGroup]


class SourceConversion(BaseModel):
    contacts: int
    converted: int = Field(description="Of those, contacts that ever entered `customer`.")
    conversion: Percent
    won_deals: int = Field(description="Won deals in `currency` with one of them on it.")
    won_amount: DecimalString


class SourceConversionRow(SourceConversion):
    lead_source: str | None
    excluded_deals: int


class ConversionMetrics(Windowed, MoneyFigures):
    totals: SourceConversion
    sources: list[SourceConversionRow]


class ActivityWeek(BaseModel):
    week: str = Field(description="ISO week, `YYYY-Www`.")
    week_start: date = Field(description="Its Monday.")
    user_id: UUID = Field(description="Who logged the activities.")
    call: int
    email: int
    meeting: int
    note: int
    total: int


class ActivityMetrics(Windowed):
    totals: dict[str, int] = Field(description="Per type, and `total`.")
    weeks: list[ActivityWeek]


class RetentionMetrics(Windowed):
    customers_at_start: int = Field(
        description="Contacts whose lifecycle stage at the window's start was customer or "
        "evangelist."
    )
    churned: int = Field(description="Of those, contacts that entered `churned` in the window.")
    retained: int
    retention: Percent
    churn: Percent


# -- data quality --------------------------------------------------------------------------------


class FieldFill(BaseModel):
    field: str
    filled: int
    percent: Percent


class ObjectQuality(BaseModel):
    object: str
    records: int
    completeness: Percent = Field(description="Filled fields ÷ (fields * records).")
    fields: list[FieldFill]


class DuplicateContacts(BaseModel):
    email: int = Field(description="Contacts sharing an email, `+tags` removed.")
    phone: int = Field(description="Contacts sharing a phone number.")
    contacts: int = Field(description="Contacts sharing either.")


class DataQualityMetrics(BaseModel):
    completeness: Percent = Field(description="Over every field of every object.")
    objects: list[ObjectQuality]
    duplicates: DuplicateContacts
