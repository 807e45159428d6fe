"""The query parameters metrics share: the date window, filters, grouping and currency."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query

from crm_api.config import get_settings
from crm_api.core.errors import Invalid
from crm_api.core.ids import utcnow
from crm_api.core.schemas import Currency, Day, SafeStr

DEFAULT_DAYS = 90
MAX_YEARS = 5
EARLIEST, LATEST = date(1000, 1, 1), date(8999, 12, 31)
"""The days a window may hold: far enough from the calendar's ends (years 1 and 9999) that no
metric's date arithmetic around its window (the day after it, years or months before) leaves
the calendar."""


@dataclass(frozen=True, slots=True)
class Window:
    """Whole UTC days `first`..`last` (both included), as the instants [start, end)."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    def params(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "first": self.first, "last": self.last}

    def echo(self) -> dict[str, Any]:
        return {"from": self.first, "to": self.last}


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def get_window(
    first: Annotated[
        Day | None,
        Query(
            alias="from",
            description=f"First day (UTC), `YYYY-MM-DD`, included; default: {DEFAULT_DAYS - 1} "
            f"days before `to`. Days from {EARLIEST} to {LATEST}.",
        ),
    ] = None,
    last: Annotated[
        Day | None,
        Query(
            alias="to",
            description=f"Last day (UTC), `YYYY-MM-DD`, included; default: today. Days from "
            f"{EARLIEST} to {LATEST}.",
        ),
    ] = None,
) -> Window:
    covered = f"must be from {EARLIEST.isoformat()} to {LATEST.isoformat()}"
    beyond = [
        (name, covered)
        for day, name in ((first, "query.from"), (last, "query.to"))
        if day is not None and not EARLIEST <= day <= LATEST
    ]
    if beyond:
        raise Invalid("The window is outside the days metrics cover.", beyond)
    last = last or utcnow().date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise Invalid("`from` is after `to`.", [("query.from", "must not be after `to`")])
    if first < _years_before(last, MAX_YEARS):
        raise Invalid(
            f"The range spans more than {MAX_YEARS} years.",
            [("query.from", f"must be at most {MAX_YEARS} years before `to`")],
        )
    return Window(first, last)


WindowDep = Annotated[Window, Depends(get_window)]

OwnerId = Annotated[
    UUID | None, Query(description="Only records owned by this user (activities: logged by).")
]
PipelineId = Annotated[UUID | None, Query(description="Only deals in this pipeline.")]
LeadSource = Annotated[
    SafeStr | None, Query(max_length=100, description="Only contacts with this lead source.")
]


async def get_currency(
    currency: Annotated[
        Currency | None,
        Query(
            description="ISO 4217 code of the money figures; default: the configured base "
            "currency (`CRM_DEFAULT_CURRENCY`). Deals in other currencies are counted in "
            "`excluded_deals`, never added."
        ),
    ] = None,
) -> str:
    return currency or get_settings().default_currency


CurrencyDep = Annotated[str, Depends(get_currency)]


class DealGroup(StrEnum):
    owner = "owner"
    pipeline = "pipeline"
    month = "month"


class ContactGroup(StrEnum):
    owner = "owner"
    lead_source = "lead_source"
    month = "month"


Filters = dict[str, Any]
"""The filters a request set, by name: each one present changes the statement's shape."""


def present(**filters: Any) -> Filters:
    return {name: value for name, value in filters.items() if value is not None}


async def get_deal_filters(owner_id: OwnerId = None, pipeline_id: PipelineId = None) -> Filters:
    return present(owner_id=owner_id, pipeline_id=pipeline_id)


async def get_contact_filters(owner_id: OwnerId = None, lead_source: LeadSource = None) -> Filters:
    return present(owner_id=owner_id, lead_source=lead_source)


async def get_owner_filter(owner_id: OwnerId = None) -> Filters:
    return present(owner_id=owner_id)


DealFilters = Annotated[Filters, Depends(get_deal_filters)]
ContactFilters = Annotated[Filters, Depends(get_contact_filters)]
OwnerFilter = Annotated[Filters, Depends(get_owner_filter)]
