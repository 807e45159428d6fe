"""Keyset pagination with opaque cursors, declared once per resource.

A resource declares its sort keys (each a tuple of columns ending in the primary key, so the
order is total) and its filters (each a where-clause over named bind parameters). A list request
then has a *shape* (which filters, which sort, whether a cursor) that fixes its SQL, so the SQL
is compiled once per shape; only the values vary.
"""

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import orjson
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import KeyedColumnElement

from crm_api.core.bounds import check_decimal, check_integer
from crm_api.core.errors import Invalid
from crm_api.core.reader import Reader, Row

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class SortKey:
    """Columns to order by, last one unique; only the first may be nullable (its nulls sort
    last ascending, first descending, on both databases). `parse` turns cursor JSON back into
    values."""

    columns: tuple[Any, ...]
    """Columns, or SQL expressions labelled by whoever selects them (search's sort values)."""
    parse: tuple[Callable[[Any], Any], ...]
    first_nullable: bool | None = None
    """Whether the first may be NULL; by default, what its column says."""

    @property
    def nullable(self) -> bool:
        if self.first_nullable is not None:
            return self.first_nullable
        return bool(getattr(self.columns[0], "nullable", False))

    def order_by(self, descending: bool) -> list[Any]:
        first, *rest = self.columns
        if descending:
            lead = first.desc().nulls_first() if self.nullable else first.desc()
            return [lead, *(c.desc() for c in rest)]
        lead = first.asc().nulls_last() if self.nullable else first.asc()
        return [lead, *(c.asc() for c in rest)]

    def after(self, descending: bool, cursor_is_null: bool) -> ColumnElement[bool]:
        """Rows after the cursor (`cursor_0`, `cursor_1`, … binds) in this order."""
        binds = [bindparam(f"cursor_{i}", type_=c.type) for i, c in enumerate(self.columns)]
        first, *rest = self.columns

        def beyond(columns: list[Any], values: list[Any]) -> ColumnElement[bool]:
            row, cursor = tuple_(*columns), tuple_(*values)
            return row < cursor if descending else row > cursor

        if not self.nullable:
            return beyond(list(self.columns), binds)
        # A NULL never compares, so the null block is reached or walked explicitly.
        if cursor_is_null:
            within_nulls = and_(first.is_(None), beyond(rest, binds[1:]))
            return or_(within_nulls, first.is_not(None)) if descending else within_nulls
        past = beyond(list(self.columns), binds)
        return past if descending else or_(past, first.is_(None))


def _utc_from_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("cursor timestamps carry a timezone")
    return value.astimezone(UTC)


def sort_key(*columns: KeyedColumnElement[Any]) -> SortKey:
    parsers: list[Callable[[Any], Any]] = []
    for column in columns:
        # A TypeDecorator reports `object`; the type it decorates knows the Python type.
        python_type = getattr(column.type, "impl", column.type).python_type
        if python_type is datetime:
            parsers.append(_utc_from_iso)
        elif python_type is date:
            parsers.append(date.fromisoformat)
        elif python_type is UUID:
            parsers.append(UUID)
        else:
            parsers.append(python_type)
    return SortKey(columns=columns, parse=tuple(parsers))


@dataclass(frozen=True)
class ListSpec:
    """How one resource lists: base select, filters by name, sorts by name."""

    table: Table
    filters: Mapping[str, Callable[[], ColumnElement[bool]]]
    sorts: Mapping[str, SortKey]
    default_sort: str
    base: Callable[[], Select[Any]] | None = None
    """The page's SELECT before filters (default: the table's columns), e.g. with joins."""
    archived_column: KeyedColumnElement[Any] | None = None
    binders: Mapping[str, Callable[[Any], dict[str, Any]]] = field(default_factory=dict)
    """Filters whose value binds as other parameters (default: one parameter, the filter's name)."""
    _cache: dict[Any, Select[Any]] = field(default_factory=dict, compare=False)

    def parse_sort(self, sort: str | None) -> tuple[str, bool]:
        text = sort or self.default_sort
        descending = text.startswith("-")
        name = text.removeprefix("-")
        if name not in self.sorts:
            allowed = ", ".join(f"{s}, -{s}" for s in self.sorts)
            raise Invalid("Unknown sort.", [("query.sort", f"must be one of: {allowed}")])
        return name, descending

    def page_statement(
        self,
        filters: tuple[str, ...],
        sort: str,
        descending: bool,
        after: Literal["value", "null"] | None,
        archived: bool,
    ) -> Select[Any]:
        """`after` says whether there is a cursor, and if so whether its first value is null."""
        key = ("page", filters, sort, descending, after, archived)
        stmt = self._cache.get(key)
        if stmt is None:
            order = self.sorts[sort]
            base = self.base() if self.base else select(self.table)
            stmt = self.filtered(base, filters, archived)
            if after is not None:
                stmt = stmt.where(order.after(descending, cursor_is_null=after == "null"))
            stmt = stmt.order_by(*order.order_by(descending)).limit(bindparam("limit"))
            self._cache[key] = stmt
        return stmt

    def count_statement(self, filters: tuple[str, ...], archived: bool) -> Select[Any]:
        key = ("count", filters, archived)
        stmt = self._cache.get(key)
        if stmt is None:
            stmt = self.filtered(select(self.table.c.id), filters, archived)
            stmt = select(func.count()).select_from(stmt.subquery())
            self._cache[key] = stmt
        return stmt

    def filtered(self, stmt: Select[Any], filters: tuple[str, ...], archived: bool) -> Select[Any]:
        """`stmt` restricted to live (or archived) rows and the named filters."""
        if self.archived_column is not None:
            column = self.archived_column
            stmt = stmt.where(column.is_not(None) if archived else column.is_(None))
        return stmt.where(*(self.filters[name]() for name in filters))


@dataclass(frozen=True)
class ListParams:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    sort: str | None = None
    include_total: bool = False
    archived: bool = False


@dataclass(frozen=True)
class ListResult:
    rows: list[Row]
    next_cursor: str | None
    total: int | None


def encode_cursor(sort: str, values: list[Any]) -> str:
    payload = orjson.dumps({"s": sort, "v": values}, default=str)
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str, key: SortKey, field: str = "query.cursor") -> list[Any]:
    bad = Invalid("The cursor is not valid.", [(field, "malformed or foreign cursor")])
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        values = payload["v"]
        if payload["s"] != sort or len(values) != len(key.columns):
            raise bad
        parsed = [
            None if value is None and i == 0 and key.nullable else parse(value)
            for i, (parse, value) in enumerate(zip(key.parse, values, strict=True))
        ]
        for column, value in zip(key.columns, parsed, strict=True):
            _check_bindable(column, value)
        return parsed
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        ArithmeticError,  # OverflowError, decimal.InvalidOperation
        binascii.Error,
        orjson.JSONDecodeError,
    ):
        raise bad from None


def _check_bindable(column: ColumnElement[Any], value: Any) -> None:
    """Raises ValueError for a value (a forged cursor's) the database could not compare with
    `column`: NUL in text, or a number past the column's bounds (`core.bounds`)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL")
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(column.type, Integer):
        check_integer(column.type, value)
    if isinstance(value, Decimal):
        check_decimal(column.type, value)


def one_of(column: ColumnElement[Any], param: str, postgres: bool) -> ColumnElement[bool]:
    """`column` is one of the list bound as `param`. PostgreSQL takes the list as one array
    parameter (one compiled statement for any length, as the raw path needs); SQLite expands it."""
    if postgres:
        array = bindparam(param, type_=ARRAY(column.type))
        condition: ColumnElement[bool] = column == any_(array)
        return condition
    return column.in_(bindparam(param, expanding=True))


def record_filters(table: Table) -> dict[str, Callable[[], ColumnElement[bool]]]:
    """The created/updated ranges every record list takes, bound to the filters' own names."""
    return {
        "created_after": lambda: table.c.created_at >= bindparam("created_after"),
        "created_before": lambda: table.c.created_at < bindparam("created_before"),
        "updated_after": lambda: table.c.updated_at >= bindparam("updated_after"),
        "updated_before": lambda: table.c.updated_at < bindparam("updated_before"),
    }


def record_sorts(table: Table) -> dict[str, SortKey]:
    """The orders every record list has (each backed by an index of `record_indexes`)."""
    return {
        "created_at": sort_key(table.c.created_at, table.c.id),
        "updated_at": sort_key(table.c.updated_at, table.c.id),
        "name": sort_key(table.c.name_key, table.c.id),
    }


def prefix_match(table: Table, *also: KeyedColumnElement[Any]) -> Callable[[], ColumnElement[bool]]:
    """The `q` filter: `name_key` starts with the binds of `prefix_search` (whole key or any
    word), or one of the `also` columns starts with it."""

    def condition() -> ColumnElement[bool]:
        name_key = table.c.name_key
        return or_(
            name_key.like(bindparam("q"), escape="\\"),
            name_key.like(bindparam("q_word"), escape="\\"),
            *(column.like(bindparam("q"), escape="\\") for column in also),
        )

    return condition


def prefix_search(value: str) -> dict[str, Any]:
    """Binds for a case-insensitive prefix match on a lower-cased key: whole key or any word."""
    escaped = value.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"q": escaped + "%", "q_word": "% " + escaped + "%"}


async def run_list(
    reader: Reader, spec: ListSpec, params: ListParams, filters: Mapping[str, Any]
) -> ListResult:
    """One page of `spec` with the given filter values (None means not filtered)."""
    sort, descending = spec.parse_sort(params.sort)
    sort_token = f"-{sort}" if descending else sort
    key = spec.sorts[sort]
    active = {name: value for name, value in filters.items() if value is not None}
    names = tuple(sorted(active))
    bind: dict[str, Any] = {}
    for name, value in active.items():
        binder = spec.binders.get(name)
        bind.update(binder(value) if binder else {name: value})
    bind["limit"] = params.limit + 1
    after: Literal["value", "null"] | None = None
    if params.cursor:
        values = decode_cursor(params.cursor, sort_token, key)
        after = "null" if values[0] is None else "value"
        bind.update({f"cursor_{i}": value for i, value in enumerate(values)})
    stmt = spec.page_statement(names, sort, descending, after, params.archived)
    rows = await reader.all(stmt, bind)
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        next_cursor = encode_cursor(sort_token, [last[c.key] for c in key.columns])
    total = None
    if params.include_total:
        count = spec.count_statement(names, params.archived)
        bind.pop("limit")
        total = await reader.scalar(count, bind)
    return ListResult(rows=rows, next_cursor=next_cursor, total=total)
