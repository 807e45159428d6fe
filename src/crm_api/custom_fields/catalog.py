"""What a record's `custom_fields` may hold: the definitions of its object type, cached.

Every create and update of a contact, company or deal checks its custom field values here, so
the definitions are kept in memory rather than read per write. A change made through this
process is seen at once (the cache is dropped when it commits); one made by another server
process within `TTL_SECONDS`, and at once if a write names a key this process does not know yet.
"""

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement

from crm_api.core.db import Database
from crm_api.core.errors import Invalid
from crm_api.core.reader import Reader
from crm_api.core.search import Field, Kind
from crm_api.custom_fields.expressions import (
    custom_contains,
    custom_equals,
    custom_present,
    custom_value,
)
from crm_api.custom_fields.models import FieldType
from crm_api.custom_fields.repository import ALL_DEFINITIONS

TTL_SECONDS = 1.0
MAX_TEXT = 1000
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class Definition:
    key: str
    type: FieldType
    required: bool
    options: tuple[str, ...]
    archived: bool


Definitions = Mapping[str, Definition]
"""An object type's definitions by key, archived ones included."""


class Catalog:
    """The definitions of each database, loaded at most every `TTL_SECONDS`."""

    def __init__(self) -> None:
        self._loaded: WeakKeyDictionary[Database, tuple[float, dict[str, dict[str, Definition]]]]
        self._loaded = WeakKeyDictionary()
        # Bumped by every forget: a load that overlapped one may have read what was just
        # changed, so it is used once but not kept.
        self._generation = 0

    async def definitions(
        self, reader: Reader, object_type: str, fresh: bool = False
    ) -> Definitions:
        loaded = self._loaded.get(reader.db)
        if fresh or loaded is None or loaded[0] < time.monotonic():
            generation = self._generation
            loaded = (time.monotonic() + TTL_SECONDS, await _load(reader))
            if generation == self._generation:
                self._loaded[reader.db] = loaded
        return loaded[1].get(object_type, {})

    def forget(self, db: Database) -> None:
        self._generation += 1
        self._loaded.pop(db, None)


CATALOG = Catalog()


async def field_keys(reader: Reader, object_type: str) -> list[str]:
    """The keys of an object type's custom fields as defined now (archived ones included: their
    values are still stored), in key order."""
    return sorted(await CATALOG.definitions(reader, object_type, fresh=True))


async def _load(reader: Reader) -> dict[str, dict[str, Definition]]:
    by_type: dict[str, dict[str, Definition]] = {}
    for row in await reader.all(ALL_DEFINITIONS, {}):
        by_type.setdefault(row["object_type"], {})[row["key"]] = Definition(
            key=row["key"],
            type=FieldType(row["type"]),
            required=row["required"],
            options=tuple(option["value"] for option in row["options"]),
            archived=row["archived_at"] is not None,
        )
    return by_type


class CustomFieldRules:
    """The rules of one object type's `custom_fields` (see `crm_api.core.records`)."""

    def __init__(self, object_type: str) -> None:
        self.object_type = object_type

    async def checked(
        self, reader: Reader, sent: Mapping[str, Any] | None, current: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The values to store: on a create (`current` None) the ones sent; on an update the
        current ones with those sent merged in (null removes a value). 422 naming each key that
        is unknown or archived, of the wrong type, or required and missing (create) or nulled."""
        sent = sent or {}
        definitions = await CATALOG.definitions(reader, self.object_type)
        if any(key not in definitions for key in sent):
            definitions = await CATALOG.definitions(reader, self.object_type, fresh=True)
        errors = [
            (f"body.custom_fields.{key}", problem) for key, problem in _problems(definitions, sent)
        ]
        values = {**(current or {}), **sent}
        for definition in definitions.values():
            if not definition.required or definition.archived:
                continue
            missing = values.get(definition.key) in (None, [])
            if missing and (current is None or definition.key in sent):
                errors.append((f"body.custom_fields.{definition.key}", "is required"))
        if errors:
            raise Invalid("Some custom field values are not allowed; see `errors`.", errors)
        return {key: value for key, value in values.items() if value is not None}


def _problems(definitions: Definitions, sent: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for key, value in sent.items():
        definition = definitions.get(key)
        if definition is None:
            problems.append((key, "is not a custom field of this object type"))
        elif definition.archived:
            problems.append((key, "is an archived custom field; restore it to write it"))
        elif value is not None:
            problem = _type_problem(definition, value)
            if problem:
                problems.append((key, problem))
    return problems


def _type_problem(definition: Definition, value: Any) -> str | None:
    """What is wrong with a non-null `value` for `definition`, if anything."""
    match definition.type:
        case FieldType.text:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                return f"must be text of at most {MAX_TEXT} characters"
        case FieldType.number:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "must be a number"
            if isinstance(value, float) and not math.isfinite(value):
                return "must be a finite number"  # JSON parsers take NaN and Infinity
        case FieldType.date:
            if not isinstance(value, str) or not _is_day(value):
                return "must be a date, YYYY-MM-DD"
        case FieldType.boolean:
            if not isinstance(value, bool):
                return "must be true or false"
        case FieldType.enum:
            if not isinstance(value, str) or value not in definition.options:
                return f"must be one of: {', '.join(definition.options)}"
        case FieldType.multi_enum:
            if not isinstance(value, list) or any(item not in definition.options for item in value):
                return f"must be a list of: {', '.join(definition.options)}"
            if len(set(value)) != len(value):
                return "must not repeat an option"
    return None


def _is_day(value: str) -> bool:
    if not _ISO_DAY.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


_KINDS = {
    FieldType.text: Kind.text,
    FieldType.number: Kind.decimal,
    FieldType.date: Kind.day_text,
    FieldType.boolean: Kind.boolean,
    FieldType.enum: Kind.choice,
    FieldType.multi_enum: Kind.choices,
}


class CustomSearchFields:
    """An object type's custom fields as search fields (`custom_fields.<key>`), archived ones
    included: their values are still stored."""

    def __init__(self, object_type: str, column: ColumnElement[Any]) -> None:
        self.object_type = object_type
        self.column = column

    async def __call__(self, reader: Reader) -> dict[str, Field]:
        definitions = await CATALOG.definitions(reader, self.object_type)
        return {f"custom_fields.{key}": self._field(d) for key, d in definitions.items()}

    def _field(self, definition: Definition) -> Field:
        column, key, field_type = self.column, definition.key, definition.type
        if field_type is FieldType.multi_enum:
            return Field(
                kind=Kind.choices,
                value=lambda: custom_value(column, key, FieldType.text),
                choices=definition.options,
                sortable=False,
                holds=lambda value: custom_contains(column, key, value),
                present=lambda: custom_present(column, key),
            )
        return Field(
            kind=_KINDS[field_type],
            value=lambda: custom_value(column, key, field_type),
            choices=definition.options,
            equals=lambda value: custom_equals(column, key, field_type, value),
        )
