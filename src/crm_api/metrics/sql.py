"""SQL pieces that must give the same answer on PostgreSQL and SQLite.

Metrics bucket instants by UTC month and ISO week, subtract instants in whole seconds, and pick
order statistics for percentiles. Each database spells these differently; the constructs below
compile to each one's spelling so that the statements themselves are written once.

SQLite stores an instant as text with microseconds, and its date functions round that to
milliseconds: 23:59:59.9999 would become the next day. So its spellings first cut the text to
whole seconds (`_whole_seconds`), which is what PostgreSQL's floor and truncation give.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, Integer, String, case, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class epoch_seconds(FunctionElement[int]):  # noqa: N801 - used like a SQL function
    """Whole seconds since 1970 of a UTC instant (fractions of a second dropped), so durations
    are exact integers on both databases."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds)
def _epoch_seconds(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(floor(extract(epoch FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def _whole_seconds(element: FunctionElement[Any], compiler: Any, **kw: Any) -> str:
    """SQLite: the instant's text without its fraction of a second (a date's text is shorter)."""
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 19)"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(strftime('%s', {_whole_seconds(element, compiler, **kw)}) AS INTEGER)"


def _is_date(element: FunctionElement[Any]) -> bool:
    (column,) = element.clauses
    return isinstance(column.type, Date)


class month_of(FunctionElement[str]):  # noqa: N801
    """`YYYY-MM` of a UTC instant or of a date."""

    type = String()
    inherit_cache = True
    name = "month_of"


@compiles(month_of)
def _month_of(element: month_of, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    # An instant is read in UTC whatever the session's time zone; a date has none.
    utc = value if _is_date(element) else f"({value} AT TIME ZONE 'UTC')"
    return f"to_char({utc}, 'YYYY-MM')"


@compiles(month_of, "sqlite")
def _month_of_sqlite(element: month_of, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m', {_whole_seconds(element, compiler, **kw)})"


class week_of(FunctionElement[Any]):  # noqa: N801
    """The Monday (a date) starting the ISO week of a UTC instant."""

    type = Date()
    inherit_cache = True
    name = "week_of"


@compiles(week_of)
def _week_of(element: week_of, compiler: Any, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"CAST(date_trunc('week', {value} AT TIME ZONE 'UTC') AS DATE)"


@compiles(week_of, "sqlite")
def _week_of_sqlite(element: week_of, compiler: Any, **kw: Any) -> str:
    # Back six days, then forward to the next Monday: the Monday on or before the day.
    return f"date({_whole_seconds(element, compiler, **kw)}, '-6 days', 'weekday 1')"


class position_in(FunctionElement[int]):  # noqa: N801
    """1-based position of `needle` in `text`, 0 if absent (SQLite's instr, PostgreSQL's
    strpos)."""

    type = Integer()
    inherit_cache = True
    name = "position_in"


@compiles(position_in)
def _position_in(element: position_in, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(position_in, "sqlite")
def _position_in_sqlite(element: position_in, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


def has_tag(email: ColumnElement[str]) -> ColumnElement[bool]:
    """The address has a `+tag` in its local part."""
    plus = position_in(email, "+")
    return (plus > 0) & (plus < position_in(email, "@"))


def email_key(email: ColumnElement[str]) -> ColumnElement[str]:
    """The address without a `+tag` in its local part: `ann+news@x.com` → `ann@x.com`. Stored
    emails are already lower-cased, and unique among live contacts as stored, so this is what
    still finds one person entered twice."""
    plus, at = position_in(email, "+"), position_in(email, "@")
    return case(
        (
            has_tag(email),
            func.substr(email, 1, plus - 1, type_=String) + func.substr(email, at, type_=String),
        ),
        else_=email,
    )


# -- percentiles -------------------------------------------------------------------------------
#
# One definition on both databases: linear interpolation between the closest ranks (what
# PostgreSQL's percentile_cont computes). For n sorted values v[0..n-1], the p-th percentile
# (p = k/100) sits at position h = k(n-1)/100; it is v[floor h] + (v[ceil h] - v[floor h]) *
# frac(h). SQL picks the two values with integer arithmetic on row numbers (exact on both), and
# `Percentile.value` does the interpolation with exact decimals.


@dataclass(frozen=True, slots=True)
class Percentile:
    k: int
    """The percentile, 0-100."""

    @property
    def label(self) -> str:
        return f"p{self.k}"

    def columns(
        self, value: ColumnElement[Any], row_number: ColumnElement[int], n: ColumnElement[int]
    ) -> list[ColumnElement[Any]]:
        """The aggregate columns `<label>_lo` and `<label>_hi`, over rows ranked 1..n by value
        within the group (row_number() and count() windows)."""
        # Floor division of non-negative integers: the same on both databases.
        low_rank = (self.k * (n - 1)) // 100 + 1
        high_rank = (self.k * (n - 1) + 99) // 100 + 1
        return [
            func.max(case((row_number == low_rank, value))).label(f"{self.label}_lo"),
            func.max(case((row_number == high_rank, value))).label(f"{self.label}_hi"),
        ]

    def value(self, row: dict[str, Any], n: int) -> Decimal | None:
        low, high = row[f"{self.label}_lo"], row[f"{self.label}_hi"]
        if not n or low is None:
            return None
        fraction = Decimal(self.k * (n - 1) % 100) / 100
        return Decimal(low) + (Decimal(high) - Decimal(low)) * fraction


MEDIAN = Percentile(50)
P90 = Percentile(90)
