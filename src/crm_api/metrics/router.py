"""`/v1/metrics/*`: typed, read-only KPIs. Each endpoint's description is its definition."""

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import Query
from starlette.responses import Response

from crm_api.core.openapi import problems
from crm_api.core.responses import JSONBody
from crm_api.deps import ReaderDep
from crm_api.metrics.params import (
    ContactFilters,
    ContactGroup,
    CurrencyDep,
    DealFilters,
    DealGroup,
    OwnerFilter,
    WindowDep,
)
from crm_api.metrics.schemas import (
    ActivityMetrics,
    ConversionMetrics,
    DataQualityMetrics,
    DealSizeMetrics,
    ForecastMetrics,
    FunnelMetrics,
    LeadResponseMetrics,
    PipelineMetrics,
    RetentionMetrics,
    SalesCycleMetrics,
    WinRateMetrics,
)
from crm_api.metrics.service import MetricsService
from crm_api.routing import PrefixRouter

router = PrefixRouter(prefix="/v1/metrics", tags=["metrics"])
F = TypeVar("F", bound=Callable[..., Any])

ERRORS = problems(403)
DealGroupBy = Annotated[DealGroup | None, Query(description="Also break the figures down.")]
ContactGroupBy = Annotated[ContactGroup | None, Query(description="Also break the figures down.")]
COMMON = (
    " The window is whole UTC days `from`..`to` (default: the last 90 days, today included; "
    "at most 5 years). Archived records are in no figure."
)


def _metric(path: str, model: type, summary: str, description: str) -> Callable[[F], F]:
    return router.get(
        path,
        operation_id=f"metrics_{path.strip('/').replace('-', '_')}",
        response_model=model,
        responses=ERRORS,
        summary=summary,
        description=description,
    )


@_metric("/pipeline", PipelineMetrics, "Open pipeline per stage",
         "Open deals now, per open stage of each pipeline (default pipeline first): count, "
         "Σ amount and weighted Σ amount * probability / 100, per pipeline and in total. With "
         "`target`, `coverage` = amount ÷ target. A snapshot: no date window.")  # fmt: skip
async def pipeline(
    reader: ReaderDep,
    currency: CurrencyDep,
    filters: DealFilters,
    target: Annotated[
        Decimal | None,
        Query(gt=0, max_digits=18, decimal_places=4, description="A quota to cover."),
    ] = None,
) -> Response:
    return JSONBody(await MetricsService(reader).pipeline(filters, currency, target))


@_metric("/forecast", ForecastMetrics, "Forecast by month",
         "For each month the window touches: deals won (by `closed_at`) and their amount; the "
         "open deals expected to close that month (`expected_close_date`), as `best_case` "
         "(Σ amount) and `commit` (Σ amount * stage probability / 100)." + COMMON)  # fmt: skip
async def forecast(
    reader: ReaderDep,
    window: WindowDep,
    currency: CurrencyDep,
    filters: DealFilters,
) -> Response:
    return JSONBody(await MetricsService(reader).forecast(window, filters, currency))


@_metric("/win-rate", WinRateMetrics, "Win rate of deals closed in the window",
         "Deals closed (won or lost, by `closed_at`) in the window: won ÷ (won + lost) * 100, "
         "with the counts; per group with `group_by` (month: of `closed_at`)."
         + COMMON)  # fmt: skip
async def win_rate(
    reader: ReaderDep,
    window: WindowDep,
    filters: DealFilters,
    group_by: DealGroupBy = None,
) -> Response:
    return JSONBody(await MetricsService(reader).win_rate(window, filters, group_by))


@_metric("/deal-size", DealSizeMetrics, "Size of deals won in the window",
         "Deals won (by `closed_at`) in the window, in `currency`: count, total, mean and median "
         "amount (median: linear interpolation between the closest ranks)." + COMMON)  # fmt: skip
async def deal_size(
    reader: ReaderDep,
    window: WindowDep,
    currency: CurrencyDep,
    filters: DealFilters,
    group_by: DealGroupBy = None,
) -> Response:
    return JSONBody(await MetricsService(reader).deal_size(window, filters, group_by, currency))


@_metric("/sales-cycle", SalesCycleMetrics, "Days from creation to won",
         "Deals won (by `closed_at`) in the window: mean, median and 90th percentile of the "
         "days from `created_at` to `closed_at` (whole seconds; percentiles by linear "
         "interpolation between the closest ranks, as PostgreSQL's percentile_cont)."
         + COMMON)  # fmt: skip
async def sales_cycle(
    reader: ReaderDep,
    window: WindowDep,
    filters: DealFilters,
    group_by: DealGroupBy = None,
) -> Response:
    return JSONBody(await MetricsService(reader).sales_cycle(window, filters, group_by))


@_metric("/stage-funnel", FunnelMetrics, "Stage funnel of the deals created in the window",
         "The cohort: deals created in the window that are now in the pipeline (default: the "
         "default pipeline). For each stage but lost ones, in order: `reached` = cohort deals "
         "whose stage history enters it or a later stage; conversion to the next stage; mean "
         "and median days of the finished visits to it (entering to entering the next stage); "
         "the cohort deals in it now, and the open ones there for over `stall_days`."
         + COMMON)  # fmt: skip
async def stage_funnel(
    reader: ReaderDep,
    window: WindowDep,
    filters: DealFilters,
    stall_days: Annotated[
        int, Query(ge=1, le=3650, description="Idle for more than this many days is stalled.")
    ] = 14,
) -> Response:
    return JSONBody(await MetricsService(reader).stage_funnel(window, filters, stall_days))


@_metric("/lead-response", LeadResponseMetrics, "Time to first outreach",
         "Contacts created in the window: mean, median and 90th percentile of the hours from "
         "`created_at` to `first_outreach_at` (the first outbound call or email, or meeting; "
         "outreach dated before the contact counts as 0), over the contacts reached; and how "
         "many were never contacted. Month: of `created_at`." + COMMON)  # fmt: skip
async def lead_response(
    reader: ReaderDep,
    window: WindowDep,
    filters: ContactFilters,
    group_by: ContactGroupBy = None,
) -> Response:
    return JSONBody(await MetricsService(reader).lead_response(window, filters, group_by))


@_metric("/conversion-by-source", ConversionMetrics, "Conversion by lead source",
         "Contacts created in the window, per `lead_source` (null: none): how many, how many "
         "ever entered the `customer` lifecycle stage (from the lifecycle history) and the "
         "share; the won deals (any close date) they are on, in `currency`, and their amount. "
         "A deal counts once per source." + COMMON)  # fmt: skip
async def conversion_by_source(
    reader: ReaderDep,
    window: WindowDep,
    currency: CurrencyDep,
    filters: ContactFilters,
) -> Response:
    service = MetricsService(reader)
    return JSONBody(await service.conversion_by_source(window, filters, currency))


@_metric("/activity", ActivityMetrics, "Activities per type, user and ISO week",
         "Activities that happened (`occurred_at`) in the window, counted per ISO week (Monday "
         "to Sunday, UTC), per user who logged them and per type. `owner_id` selects who logged "
         "them." + COMMON)  # fmt: skip
async def activity(reader: ReaderDep, window: WindowDep, filters: OwnerFilter) -> Response:
    return JSONBody(await MetricsService(reader).activity(window, filters))


@_metric("/retention", RetentionMetrics, "Customer retention over the window",
         "Customers at the window's start: contacts whose last lifecycle change before it "
         "entered `customer` or `evangelist`. Churned: those of them that entered `churned` "
         "during the window. Retention = (customers - churned) ÷ customers; churn = churned ÷ "
         "customers." + COMMON)  # fmt: skip
async def retention(
    reader: ReaderDep,
    window: WindowDep,
    filters: ContactFilters,
) -> Response:
    return JSONBody(await MetricsService(reader).retention(window, filters))


@_metric("/data-quality", DataQualityMetrics, "How complete the records are",
         "For live contacts, companies and deals: the share with each key field filled (a "
         "deal's amount counts when above 0, its contacts when it has one), each object's "
         "completeness (filled ÷ fields * records) and the overall one over all three; and the "
         "live contacts sharing an email (with `+tags` removed) or a phone number with another "
         "live contact. A snapshot: no date window.")  # fmt: skip
async def data_quality(reader: ReaderDep, filters: OwnerFilter) -> Response:
    return JSONBody(await MetricsService(reader).data_quality(filters))
