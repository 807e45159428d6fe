"""Search: a typed filter tree over any field of a resource (its columns, its custom fields and
fields of the records it points to), full-text `query` ranked by relevance, any sort, and
keyset cursors over the whole result (no cap).

A resource declares a `SearchSpec`: its fields by name, and what its full-text query reads. A
request's tree is checked against it (every field known, every operator allowed for the field's
type, every value of that type; at most `MAX_DEPTH` levels and `MAX_CONDITIONS` conditions) and
compiled to one WHERE clause with numbered binds.

Semantics, the same on both databases: a comparison (`eq`, `lt`, `contains`, ...) never matches
a record without a value; `neq` matches records whose value differs or is missing; `is_null`
with `true` matches records without a value, with `false` those with one. Text comparisons are
case-sensitive except `contains` and `starts_with`, which ignore case.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, func, not_, or_, select
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.types import Boolean, Date, Integer, Numeric, String, Uuid

from crm_api.core.bounds import check_decimal, check_integer, decimal_places
from crm_api.core.db import FixedDecimal, UTCDateTime, unicode_lower
from crm_api.core.errors import Invalid
from crm_api.core.listing import (
    ListParams,
    ListResult,
    ListSpec,
    SortKey,
    decode_cursor,
    encode_cursor,
    one_of,
)
from crm_api.core.reader import Reader

MAX_DEPTH = 4
MAX_CONDITIONS = 50
MAX_IN_VALUES = 500
MAX_TEXT = 1000
MAX_QUERY_TOKENS = 10


class Op(StrEnum):
    eq = "eq"
    neq = "neq"
    in_ = "in"
    lt = "lt"
    lte = "lte"
    gt = "gt"
    gte = "gte"
    contains = "contains"
    starts_with = "starts_with"
    is_null = "is_null"


class Kind(StrEnum):
    """What a field holds, which decides its operators and how a value is read."""

    text = "text"
    choice = "choice"
    integer = "integer"
    decimal = "decimal"
    boolean = "boolean"
    timestamp = "timestamp"
    day = "day"
    day_text = "day_text"  # a custom date field: ISO text, which sorts and compares as dates
    uuid = "uuid"
    choices = "choices"  # a multi_enum custom field: a list of options


_ORDERED = {Op.eq, Op.neq, Op.in_, Op.lt, Op.lte, Op.gt, Op.gte, Op.is_null}
OPERATORS: Mapping[Kind, frozenset[Op]] = {
    Kind.text: frozenset({*_ORDERED, Op.contains, Op.starts_with}),
    Kind.choice: frozenset({Op.eq, Op.neq, Op.in_, Op.is_null}),
    Kind.integer: frozenset(_ORDERED),
    Kind.decimal: frozenset(_ORDERED),
    Kind.boolean: frozenset({Op.eq, Op.neq, Op.is_null}),
    Kind.timestamp: frozenset(_ORDERED - {Op.in_}),
    Kind.day: frozenset(_ORDERED),
    Kind.day_text: frozenset(_ORDERED),
    Kind.uuid: frozenset({Op.eq, Op.neq, Op.in_, Op.is_null}),
    # A list of options: `eq` and `contains` hold one option, `in` any of several.
    Kind.choices: frozenset({Op.eq, Op.contains, Op.in_, Op.is_null}),
}


@dataclass(frozen=True)
class Field:
    """A searchable field. `value` is its SQL value (None when a record has none); `related`
    says the field belongs to the record a foreign key of this one points to: `(foreign key,
    related table's key)`, and `value` is then over the related table."""

    kind: Kind
    value: Callable[[], ColumnElement[Any]]
    choices: tuple[str, ...] = ()
    related: tuple[KeyedColumnElement[Any], KeyedColumnElement[Any]] | None = None
    sortable: bool = True
    equals: Callable[[Any], ColumnElement[bool]] | None = None
    """An index-friendly equality (custom fields on PostgreSQL: containment); else `value ==`."""
    holds: Callable[[Any], ColumnElement[bool]] | None = None
    """For `choices`: whether the list holds one value."""
    present: Callable[[], ColumnElement[bool]] | None = None
    """Whether a record has a value, where that is more than `value IS NOT NULL`."""


@dataclass(frozen=True)
class TextSearch:
    """What `query` reads: `match(bind)` and `rank(bind)` over the resource's own text, and
    optionally the records whose foreign key points at a row matching `related`."""

    match: Callable[[Any], ColumnElement[bool]]
    rank: Callable[[Any], ColumnElement[Any]]
    related: tuple[KeyedColumnElement[Any], Callable[[Any], Select[Any]]] | None = None


@dataclass(frozen=True)
class SearchSpec:
    """A resource's fields and full-text search, over its `ListSpec`'s base select."""

    listing: ListSpec
    fields: Mapping[str, Field]
    text: TextSearch
    custom_fields: Callable[[Reader], Any] | None = None
    """Loads the resource's custom fields as `{name: Field}` (dynamic: definitions change)."""


# -- the request's tree ----------------------------------------------------------------------


@dataclass
class _Compiler:
    fields: Mapping[str, Field]
    postgres: bool
    binds: dict[str, Any] = field(default_factory=dict)
    conditions: int = 0

    def bind(self, value: Any, type_: Any = None) -> Any:
        name = f"f{len(self.binds)}"
        self.binds[name] = value
        return bindparam(name, type_=type_)

    def node(self, node: Mapping[str, Any], path: str, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise Invalid(
                f"Filters nest at most {MAX_DEPTH} levels.", [(path, "nested too deeply")]
            )
        for group, combine in (("and", and_), ("or", or_)):
            if group in node:
                children = node[group]
                parts = [
                    self.node(child, f"{path}.{group}.{index}", depth + 1)
                    for index, child in enumerate(children)
                ]
                return combine(*parts)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise Invalid(
                f"A filter holds at most {MAX_CONDITIONS} conditions.",
                [(path, "too many conditions")],
            )
        return self.condition(node, path)

    def condition(self, node: Mapping[str, Any], path: str) -> ColumnElement[bool]:
        own = node.get("path")  # a condition made from a query parameter names that
        name, op = node["field"], Op(node["op"])
        spec = self.fields.get(name)
        if spec is None:
            raise Invalid(f"Unknown field {name!r}.", [(own or f"{path}.field", "no such field")])
        if op not in OPERATORS[spec.kind]:
            allowed = ", ".join(sorted(OPERATORS[spec.kind]))
            raise Invalid(
                f"{op} does not apply to {name}.",
                [(own or f"{path}.op", f"must be one of: {allowed}")],
            )
        value = node.get("value")
        where = own or f"{path}.value"
        if op is Op.is_null:
            if not isinstance(value, bool):
                raise Invalid("is_null takes true or false.", [(where, "must be true or false")])
            return self._related(spec, _missing(spec) if value else not_(_missing(spec)), value)
        if op is Op.in_:
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
                raise Invalid(
                    "in takes a list.", [(where, f"must be a list of 1 to {MAX_IN_VALUES} values")]
                )
            values = [_parsed(spec, item, f"{where}.{index}") for index, item in enumerate(value)]
            return self._related(spec, self._in(spec, values), False)
        parsed = _parsed(spec, value, where)
        if op is Op.neq:
            return self._related(spec, self._equals(spec, parsed), False, negate=True)
        return self._related(spec, self._compare(spec, op, parsed), False)

    def _equals(self, spec: Field, value: Any) -> ColumnElement[bool]:
        if spec.equals is not None:
            return spec.equals(self.bind(value, _bind_type(spec)))
        equal: ColumnElement[bool] = spec.value() == self.bind(value, _bind_type(spec))
        return equal

    def _in(self, spec: Field, values: list[Any]) -> ColumnElement[bool]:
        if spec.kind is Kind.choices and spec.holds is not None:
            return or_(*(spec.holds(self.bind(value, String())) for value in values))
        if spec.equals is not None:
            return or_(*(self._equals(spec, value) for value in values))
        name = f"f{len(self.binds)}"
        self.binds[name] = values
        return one_of(spec.value(), name, self.postgres)

    def _compare(self, spec: Field, op: Op, value: Any) -> ColumnElement[bool]:
        if spec.kind is Kind.choices and spec.holds is not None:  # eq or contains
            return spec.holds(self.bind(value, String()))
        if op is Op.eq:
            return self._equals(spec, value)
        column = spec.value()
        if op in (Op.contains, Op.starts_with):
            # Both sides folded by the database, so they fold alike (Python's casefold would
            # turn "ß" into "ss", which lower() in SQL does not).
            pattern = _like_escaped(value)
            pattern = f"%{pattern}%" if op is Op.contains else f"{pattern}%"
            folded = unicode_lower(self.bind(pattern, String()))
            return unicode_lower(column).like(folded, escape="\\")
        bound = self.bind(value, _bind_type(spec))
        compare: dict[Op, ColumnElement[bool]] = {Op.lt: column < bound, Op.lte: column <= bound}
        compare.update({Op.gt: column > bound, Op.gte: column >= bound})
        return compare[op]

    @staticmethod
    def _related(
        spec: Field, condition: ColumnElement[bool], matches_missing: bool, negate: bool = False
    ) -> ColumnElement[bool]:
        """`condition` (over the field's table) as a condition on the searched record. A
        negation also matches a record whose value is missing."""
        if spec.related is None:
            if negate:
                return or_(_missing(spec), not_(condition))
            return condition
        key, target = spec.related
        related = key.in_(select(target).where(condition))
        if negate:
            return or_(key.is_(None), not_(related))
        return or_(key.is_(None), related) if matches_missing else related


def _missing(spec: Field) -> ColumnElement[bool]:
    if spec.present is not None:
        return not_(spec.present())
    return spec.value().is_(None)


def _bind_type(spec: Field) -> Any:
    """Binds take the field's SQL type, so each database gets its own form of the value."""
    return spec.value().type


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parsed(spec: Field, value: Any, where: str) -> Any:
    """`value` read as the field's type; 422 naming `where` when it is not one."""
    try:
        return _PARSERS[spec.kind](spec, value)
    except (ValueError, TypeError, InvalidOperation, OverflowError) as error:
        raise Invalid("A filter value does not fit its field.", [(where, str(error))]) from None


def _text(spec: Field, value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
        raise ValueError(f"must be text of at most {MAX_TEXT} characters")
    return value


def _choice(spec: Field, value: Any) -> str:
    if not isinstance(value, str) or value not in spec.choices:
        raise ValueError(f"must be one of: {', '.join(spec.choices)}")
    return value


def _integer(spec: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    check_integer(spec.value().type, value)
    return value


MAX_DECIMAL_PLACES = 20
"""For a filter on a decimal without a scale of its own (a custom number)."""


def _decimal(spec: Field, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('must be a number or a decimal string such as "12.50"')
    number = Decimal(str(value).strip())
    if not number.is_finite() or abs(number) >= Decimal(10) ** 20:
        raise ValueError("must be a finite number below 10^20")
    column_type = spec.value().type
    unscaled = getattr(column_type, "scale", None) is None
    if unscaled and decimal_places(number) > MAX_DECIMAL_PLACES:
        raise ValueError(f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    check_decimal(column_type, number)
    return number


def _boolean(spec: Field, value: Any) -> bool:
    # "true" and "false" as text too: list filters arrive as query strings.
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _timestamp(spec: Field, value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp with a timezone")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("must be an RFC 3339 timestamp with a timezone")
    return moment.astimezone(UTC)


def _day(spec: Field, value: Any) -> date:
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return date.fromisoformat(value)


def _day_text(spec: Field, value: Any) -> str:
    return _day(spec, value).isoformat()


def _uuid(spec: Field, value: Any) -> UUID:
    if not isinstance(value, str):
        raise ValueError("must be a UUID")
    return UUID(value)


_PARSERS: Mapping[Kind, Callable[[Field, Any], Any]] = {
    Kind.text: _text,
    Kind.choice: _choice,
    Kind.integer: _integer,
    Kind.decimal: _decimal,
    Kind.boolean: _boolean,
    Kind.timestamp: _timestamp,
    Kind.day: _day,
    Kind.day_text: _day_text,
    Kind.uuid: _uuid,
    Kind.choices: _choice,
}


# -- fields from tables ----------------------------------------------------------------------


def kind_of(column: KeyedColumnElement[Any]) -> Kind | None:
    """The kind of a plain column, or None for one search does not read (JSON)."""
    column_type = column.type
    checks: Sequence[tuple[type[Any], Kind]] = (
        (UTCDateTime, Kind.timestamp),
        (FixedDecimal, Kind.decimal),
        (Boolean, Kind.boolean),
        (Uuid, Kind.uuid),
        (Date, Kind.day),
        (Integer, Kind.integer),
        (Numeric, Kind.decimal),
        (String, Kind.text),
    )
    for python_type, kind in checks:
        if isinstance(column_type, python_type):
            return kind
    return None


def column_fields(
    table: Table,
    *,
    prefix: str = "",
    skip: Sequence[str] = (),
    choices: Mapping[str, type[StrEnum]] | None = None,
    related: tuple[KeyedColumnElement[Any], KeyedColumnElement[Any]] | None = None,
) -> dict[str, Field]:
    """A field per column of `table` (named `prefix + column`), but `skip`ped ones and JSON.
    `choices` names columns holding one of an enum's values."""
    fields: dict[str, Field] = {}
    for column in table.columns:
        if column.key in skip:
            continue
        enum = (choices or {}).get(column.key)
        kind = Kind.choice if enum else kind_of(column)
        if kind is None:
            continue
        fields[prefix + column.key] = Field(
            kind=kind,
            value=lambda column=column: column,  # type: ignore[misc]
            choices=tuple(member.value for member in enum) if enum else (),
            related=related,
            sortable=related is None,
        )
    return fields


# -- running a search ------------------------------------------------------------------------

RELEVANCE = "relevance"


@dataclass(frozen=True)
class Sort:
    name: str
    key: SortKey
    descending: bool


def query_tokens(query: str) -> list[str]:
    """The words of a full-text query, case-folded; 422 when there are none."""
    # lower(), as the text search configurations fold (casefold would make "ß" "ss").
    tokens = re.findall(r"\w+", query.lower())[:MAX_QUERY_TOKENS]
    if not tokens:
        raise Invalid("The query has no words.", [("body.query", "needs a letter or digit")])
    return tokens


async def run_search(
    reader: Reader,
    spec: SearchSpec,
    params: ListParams,
    *,
    tree: Mapping[str, Any] | None = None,
    query: str | None = None,
    list_filters: Mapping[str, Any] | None = None,
    where: str = "body",
) -> ListResult:
    """One page of `spec` matching the tree, the query and the list filters (named as in the
    resource's ListSpec), in `params.sort` order (relevance first when there is a query)."""
    postgres = not reader.db.is_sqlite
    fields = dict(spec.fields)
    if spec.custom_fields is not None:
        fields.update(await spec.custom_fields(reader))
    compiler = _Compiler(fields, postgres)
    listing = spec.listing
    base = listing.base() if listing.base else select(listing.table)
    conditions: list[ColumnElement[bool]] = []
    if tree is not None:
        conditions.append(compiler.node(tree, f"{where}.filter", 1))
    active = {name: value for name, value in (list_filters or {}).items() if value is not None}
    for name, value in active.items():
        binder = listing.binders.get(name)
        compiler.binds.update(binder(value) if binder else {name: value})
    statement = listing.filtered(base, tuple(sorted(active)), params.archived)
    statement = statement.where(*conditions)
    rank: ColumnElement[Any] | None = None
    if query is not None:
        text_bind = compiler.bind(_text_query(query_tokens(query), postgres), String())
        matched = spec.text.match(text_bind)
        if spec.text.related is not None:
            # One set of ids from two indexed reads (the text index; the foreign key's index
            # for the matching related records): an OR of the two would scan every row.
            key, related_rows = spec.text.related
            ids = listing.table.c.id
            own = select(ids).where(matched)
            via = select(ids).where(key.in_(related_rows(text_bind)))
            matched = ids.in_(own.union(via))
        statement = statement.where(matched)
        rank = spec.text.rank(text_bind)
    sort = _sort(spec, fields, params.sort, rank, f"{where}.sort")
    token = f"-{sort.name}" if sort.descending else sort.name
    count = select(func.count()).select_from(statement.subquery())  # all matches, any page
    labelled = [column.label(f"sort_{index}") for index, column in enumerate(sort.key.columns)]
    statement = statement.add_columns(*labelled)
    if params.cursor:
        values = decode_cursor(params.cursor, token, sort.key, field=f"{where}.cursor")
        after = sort.key.after(sort.descending, cursor_is_null=values[0] is None)
        compiler.binds.update({f"cursor_{index}": value for index, value in enumerate(values)})
        statement = statement.where(after)
    statement = statement.order_by(*sort.key.order_by(sort.descending)).limit(params.limit + 1)
    rows = await reader.all(statement, compiler.binds, cached=False)
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        next_cursor = encode_cursor(token, [last[f"sort_{i}"] for i in range(len(labelled))])
    for row in rows:
        for index in range(len(labelled)):
            row.pop(f"sort_{index}", None)
    total = None
    if params.include_total:
        total = await reader.scalar(count, compiler.binds, cached=False)
    return ListResult(rows=rows, next_cursor=next_cursor, total=total)


def _text_query(tokens: list[str], postgres: bool) -> str:
    # Tokens are \w runs: no quotes or operators reach either query language.
    if postgres:
        return " ".join(tokens)  # words, made prefixes by `core.fulltext`
    return " AND ".join(f'"{token}"*' for token in tokens)


def _sort(
    spec: SearchSpec, fields: Mapping[str, Field], requested: str | None, rank: Any, where: str
) -> Sort:
    listing = spec.listing
    id_column = listing.table.c.id
    text = requested or (f"-{RELEVANCE}" if rank is not None else listing.default_sort)
    descending = text.startswith("-")
    name = text.removeprefix("-")
    if name == RELEVANCE and rank is not None:
        return Sort(name, SortKey(columns=(rank, id_column), parse=(float, UUID)), descending)
    if name in listing.sorts:
        return Sort(name, listing.sorts[name], descending)
    found = fields.get(name)
    if found is not None and found.sortable and found.kind is not Kind.choices:
        value = found.value()
        parse = _CURSOR_PARSERS.get(found.kind, str)
        key = SortKey(columns=(value, id_column), parse=(parse, UUID), first_nullable=True)
        return Sort(name, key, descending)
    sortable = sorted(
        {
            *listing.sorts,
            *(n for n, f in fields.items() if f.sortable and f.kind is not Kind.choices),
        }
    )
    if rank is not None:
        sortable.append(RELEVANCE)
    raise Invalid(
        "Unknown sort.", [(where, f"must be a field (prefix - to descend): {', '.join(sortable)}")]
    )


_CURSOR_PARSERS: Mapping[Kind, Callable[[Any], Any]] = {
    Kind.integer: int,
    Kind.decimal: lambda value: Decimal(str(value)),
    Kind.boolean: bool,
    Kind.timestamp: lambda value: datetime.fromisoformat(value).astimezone(UTC),
    Kind.day: date.fromisoformat,
    Kind.uuid: UUID,
}
