"""SQL over a record's `custom_fields` JSON, the same meaning on PostgreSQL and SQLite.

A value reads as SQL only when it has its definition's JSON type (a number as a number, and so
on) and as NULL otherwise, so values stored before a field was defined never break a query.
Keys are inlined into the SQL: definition keys are snake_case slugs, checked on the way in.

On PostgreSQL, equality and membership go through `@>` containment, which the GIN index on each
table's `custom_fields` (jsonb_path_ops) answers; ranges and sorts read the value per row.
"""

import re
from typing import Any

from sqlalchemy import ColumnElement, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean, Float, Numeric, String, TypeDecorator, TypeEngine

from crm_api.custom_fields.models import FieldType

_KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")


class _JsonNumber(TypeDecorator[Any]):
    """A JSON number as SQL: NUMERIC on PostgreSQL (jsonb keeps every digit). SQLite keeps a
    double and SQLAlchemy's Numeric would round it to 10 places on the way out, so a keyset
    cursor made from it would no longer find its row: there it is a float both ways."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Float())
        return dialect.type_descriptor(Numeric())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return float(value) if value is not None and dialect.name == "sqlite" else value


_SQL_TYPES: dict[FieldType, TypeEngine[Any]] = {
    FieldType.number: _JsonNumber(),
    FieldType.boolean: Boolean(),
}
_PG_JSON_TYPE = {FieldType.number: "number", FieldType.boolean: "boolean"}
_PG_CAST = {FieldType.number: "::numeric", FieldType.boolean: "::boolean"}
_SQLITE_JSON_TYPES = {
    FieldType.number: "('integer', 'real')",
    FieldType.boolean: "('true', 'false')",
}


def _checked_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a custom field key: {key!r}")
    return key


class _OnCustomField(FunctionElement[Any]):
    """SQL over custom field `key` of JSON `column`: the key (and the field's type, where it
    matters) are part of the SQL, so of the statement's cache key too."""

    inherit_cache = True

    def __init__(
        self,
        column: ColumnElement[Any],
        key: str,
        field_type: FieldType = FieldType.multi_enum,
        *arguments: Any,
    ) -> None:
        self.field_key = _checked_key(key)
        self.field_type = field_type
        super().__init__(column, *arguments)

    def _gen_cache_key(self, anon_map: Any, bindparams: Any) -> Any:
        return (*super()._gen_cache_key(anon_map, bindparams), self.field_key, self.field_type)


class custom_value(_OnCustomField):  # noqa: N801 - used like a SQL function
    """The value of custom field `key` in JSON `column`, as SQL of the field's type: text for
    text, date (ISO text, which sorts by date) and enum; numeric; boolean."""

    inherit_cache = True
    name = "custom_value"

    def __init__(self, column: ColumnElement[Any], key: str, field_type: FieldType) -> None:
        super().__init__(column, key, field_type)
        self.type = _SQL_TYPES.get(field_type, String())


@compiles(custom_value, "postgresql")
def _custom_value_pg(element: custom_value, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    json_type = _PG_JSON_TYPE.get(element.field_type, "string")
    cast = _PG_CAST.get(element.field_type, "")
    field, text = f"{column} -> '{element.field_key}'", f"{column} ->> '{element.field_key}'"
    return f"(CASE WHEN jsonb_typeof({field}) = '{json_type}' THEN ({text}){cast} END)"


@compiles(custom_value, "sqlite")
def _custom_value_sqlite(element: custom_value, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    path = f"'$.{element.field_key}'"
    json_types = _SQLITE_JSON_TYPES.get(element.field_type, "('text')")
    value = f"json_extract({column}, {path})"
    if element.field_type is FieldType.boolean:  # json_extract gives 1 / 0
        value = f"(json_type({column}, {path}) = 'true')"
    return f"(CASE WHEN json_type({column}, {path}) IN {json_types} THEN {value} END)"


class custom_contains(_OnCustomField):  # noqa: N801 - used like a SQL function
    """Whether the list in custom field `key` of JSON `column` holds `value` (a multi_enum)."""

    inherit_cache = True
    name = "custom_contains"
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], key: str, value: Any) -> None:
        super().__init__(column, key, FieldType.multi_enum, value)


@compiles(custom_contains, "postgresql")
def _custom_contains_pg(element: custom_contains, compiler: Any, **kw: Any) -> str:
    column, value = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} @> jsonb_build_object('{element.field_key}', jsonb_build_array({value})))"


@compiles(custom_contains, "sqlite")
def _custom_contains_sqlite(element: custom_contains, compiler: Any, **kw: Any) -> str:
    column, value = (compiler.process(clause, **kw) for clause in element.clauses)
    # The key is a checked slug and the rest compiled SQL: nothing here comes from a request.
    items = f"json_each({column}, '$.{element.field_key}')"
    holds = f"EXISTS (SELECT 1 FROM {items} AS item WHERE item.value = {value})"  # noqa: S608
    return f"(json_type({column}, '$.{element.field_key}') = 'array' AND {holds})"


class custom_present(_OnCustomField):  # noqa: N801 - used like a SQL function
    """Whether the list in custom field `key` of JSON `column` holds anything (a multi_enum)."""

    inherit_cache = True
    name = "custom_present"
    type = Boolean()


@compiles(custom_present, "postgresql")
def _custom_present_pg(element: custom_present, compiler: Any, **kw: Any) -> str:
    field = f"{compiler.process(element.clauses, **kw)} -> '{element.field_key}'"
    # CASE, not AND: jsonb_array_length fails on a scalar, and AND may evaluate it first.
    listed = f"jsonb_array_length({field}) > 0"
    return f"(CASE WHEN jsonb_typeof({field}) = 'array' THEN {listed} ELSE false END)"


@compiles(custom_present, "sqlite")
def _custom_present_sqlite(element: custom_present, compiler: Any, **kw: Any) -> str:
    column, path = compiler.process(element.clauses, **kw), f"'$.{element.field_key}'"
    listed = f"json_array_length({column}, {path}) > 0"
    return f"(CASE WHEN json_type({column}, {path}) = 'array' THEN {listed} ELSE 0 END)"


class custom_equals(_OnCustomField):  # noqa: N801 - used like a SQL function
    """Whether custom field `key` of JSON `column` equals `value` (a scalar of its type)."""

    inherit_cache = True
    name = "custom_equals"
    type = Boolean()

    def __init__(
        self, column: ColumnElement[Any], key: str, field_type: FieldType, value: Any
    ) -> None:
        super().__init__(column, key, field_type, value)


@compiles(custom_equals, "postgresql")
def _custom_equals_pg(element: custom_equals, compiler: Any, **kw: Any) -> str:
    column, value = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"({column} @> jsonb_build_object('{element.field_key}', {value}))"


@compiles(custom_equals, "sqlite")
def _custom_equals_sqlite(element: custom_equals, compiler: Any, **kw: Any) -> str:
    column = element.clauses.clauses[0]
    value = compiler.process(element.clauses.clauses[1], **kw)
    read = compiler.process(custom_value(column, element.field_key, element.field_type), **kw)
    return f"({read} = {value})"


def typed_bind(name: str, field_type: FieldType) -> Any:
    """A bind parameter carrying a value of `field_type` into the expressions above."""
    return bindparam(name, type_=_SQL_TYPES.get(field_type, String()))
