"""The SQL the metrics share gives the same answers on both databases: percentiles (linear
interpolation between closest ranks: SQL picks the two ranks, `Percentile.value` interpolates),
UTC months and ISO weeks, whole-second durations and the email key for duplicates."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Integer, String, literal, select, union_all

from crm_api.core.db import Database, UTCDateTime
from crm_api.core.reader import Reader
from crm_api.metrics.repository import order_statistics
from crm_api.metrics.sql import MEDIAN, P90, email_key, epoch_seconds, month_of, week_of


def _values(rows: list[tuple[str, int | None]]) -> Any:
    return union_all(
        *(
            select(literal(key, String).label("key"), literal(v, Integer).label("v"))
            for key, v in rows
        )
    )


async def _statistics(db: Database, rows: list[tuple[str, int | None]]) -> dict[str, Any]:
    async with db.sessionmaker() as session:
        found = await Reader(db, session).all(order_statistics(_values(rows)), {})
    return {
        row["key"]: (
            row["rows"], row["n"], row["total"],
            MEDIAN.value(row, row["n"]), P90.value(row, row["n"]),
        )
        for row in found
    }  # fmt: skip


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [
        ([2, 10, 1], "2", "8.4"),  # h = 1 → 2; p90: h = 1.8 → 2 + 8 * .8 = 8.4
        ([10, 1, 3, 2], "2.5", "7.9"),  # h = 1.5 → 2.5; p90: h = 2.7 → 3 + 7 * .7 = 7.9
        (list(range(1, 11)), "5.5", "9.1"),  # h = 4.5 → 5.5; p90: h = 8.1 → 9.1
        ([7], "7", "7"),
    ],
)
async def test_percentiles_interpolate_between_closest_ranks(
    db: Database, values: list[int], median: str, p90: str
) -> None:
    found = await _statistics(db, [("a", v) for v in values])
    assert found == {"a": (len(values), len(values), sum(values), Decimal(median), Decimal(p90))}


async def test_groups_rank_apart_and_nulls_are_counted_as_rows_only(db: Database) -> None:
    rows = [("a", 4), ("b", 100), ("a", None), ("a", 1), ("b", None), ("a", 3)]
    found = await _statistics(db, rows)
    assert found == {
        # a: 1, 3, 4 and a null → median 3; p90 h = 1.8 → 3 + 1 * .8 = 3.8
        "a": (4, 3, 8, Decimal(3), Decimal("3.8")),
        "b": (2, 1, 100, Decimal(100), Decimal(100)),
    }


async def test_no_values_have_no_percentiles(db: Database) -> None:
    found = await _statistics(db, [("a", None)])
    assert found == {"a": (1, 0, None, None, None)}


@pytest.mark.parametrize(
    ("at", "month", "week"),
    [
        (datetime(2026, 11, 22, 23, 59, 59, 999999, UTC), "2026-11", date(2026, 11, 16)),  # Sun
        (datetime(2026, 11, 23, 0, 0, tzinfo=UTC), "2026-11", date(2026, 11, 23)),  # Monday
        (datetime(2027, 1, 1, 12, tzinfo=UTC), "2027-01", date(2026, 12, 28)),  # ISO 2026-W53
        (datetime(2024, 2, 29, 8, tzinfo=UTC), "2024-02", date(2024, 2, 26)),
    ],
)
async def test_months_and_weeks_are_utc(db: Database, at: datetime, month: str, week: date) -> None:
    instant = literal(at, UTCDateTime())
    statement = select(month_of(instant).label("month"), week_of(instant).label("week"))
    async with db.sessionmaker() as session:
        row = await Reader(db, session).one(statement, {})
    assert row == {"month": month, "week": week}


async def test_durations_are_whole_seconds_and_email_keys_drop_tags(db: Database) -> None:
    start = literal(datetime(2026, 1, 1, 0, 0, 0, 900000, UTC), UTCDateTime())
    end = literal(datetime(2026, 1, 2, 0, 0, 1, 100000, UTC), UTCDateTime())
    emails = ["ann+news@x.com", "ann@x.com", "a+b+c@x.com", "plain@x+y.com"]
    statement = select(
        (epoch_seconds(end) - epoch_seconds(start)).label("seconds"),
        *(email_key(literal(email, String)).label(f"e{i}") for i, email in enumerate(emails)),
    )
    async with db.sessionmaker() as session:
        row = await Reader(db, session).one(statement, {})
    # 1 day and 1 s apart once each instant drops its fraction (not 1 day + 0.2 s).
    assert row == {
        "seconds": 86_401,
        "e0": "ann@x.com",
        "e1": "ann@x.com",
        "e2": "a@x.com",
        "e3": "plain@x+y.com",  # a + after the @ is not a tag
    }
