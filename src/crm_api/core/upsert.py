"""Batch upsert: up to 1000 records in one transaction, each matched on `external_id` (or a
natural key such as a contact's email), then created, updated (only the fields sent) or left
unchanged. All or nothing: any invalid item fails the call, naming the item's index.

Set-based where it counts: one locking read per match column finds every existing record, one
read per unique column finds clashes, and the writes go per table as executemany statements.
Each item still goes through its service's own checks (`stage_create`/`stage_update`), so an
upserted record is exactly what the single-record endpoints would have written, with its
history, audit row and events.

The steps (`existing_records`, `stage_item`, `unique_clashes`, `write_staged`) also serve CSV
imports, which fail one row rather than the whole call.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    ARRAY,
    JSON,
    Select,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from crm_api.core.batch import InsertBatch
from crm_api.core.db import json_text, lock_for_write
from crm_api.core.errors import Conflict, DomainError, Invalid
from crm_api.core.ids import utcnow
from crm_api.core.listing import one_of
from crm_api.core.reader import Reader, Row
from crm_api.core.records import RecordService
from crm_api.core.schemas import UpsertOutcome

MAX_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    id: UUID
    result: UpsertOutcome


@dataclass(slots=True)
class Staged:
    """One item's change, checked and not written yet: a creation (the record and its side
    rows in `rows`), an update (the columns to write in `values`, its side rows in `rows`), or
    nothing to do (`row` None)."""

    id: UUID
    outcome: UpsertOutcome
    row: Row | None = None
    """The record as the change leaves it."""
    changes: dict[str, list[Any]] = field(default_factory=dict)
    values: dict[str, Any] | None = None
    rows: InsertBatch = field(default_factory=InsertBatch)


class TableBatch(InsertBatch):
    """The rows of many changes, written per table: the record table first (others may
    reference its new rows), then the others in the order first seen (which keeps events in
    item order). On PostgreSQL each table's rows go by COPY in the session's transaction (an
    INSERT with 1000 rows of bind parameters costs more to parse and plan than to run); on
    SQLite, by executemany."""

    def __init__(self, first: Table) -> None:
        super().__init__()
        self.first = first

    async def flush(self, reader: Reader) -> None:
        rows, self._rows = self._rows, []
        groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {
            (self.first, tuple(self.first.c.keys())): []
        }
        for table, values in rows:
            groups.setdefault((table, tuple(values)), []).append(values)
        session = reader.write_session
        for (table, columns), values_list in groups.items():
            if not values_list:
                continue
            if reader.db.is_sqlite:
                await session.execute(insert(table), values_list)
                continue
            # As on the raw read path (core.reader), asyncpg takes these values natively; only
            # JSON goes as text (None stays NULL, as through SQLAlchemy).
            json_columns = [
                index for index, name in enumerate(columns) if isinstance(table.c[name].type, JSON)
            ]
            records = [[values[name] for name in columns] for values in values_list]
            for record in records:
                for index in json_columns:
                    if record[index] is not None:
                        record[index] = json_text(record[index])
            connection = await session.connection()
            driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
            await driver.copy_records_to_table(
                table.name, records=[tuple(r) for r in records], columns=columns
            )


def _at_item(error: DomainError, index: int) -> DomainError:
    """The error, pointing at the item it came from."""
    error.detail = f"Item {index}: {error.detail}"
    fields = error.extra.get("errors")
    if fields:
        prefix = f"body.items.{index}."
        error.extra["errors"] = [
            {**field, "field": prefix + field["field"].removeprefix("body.")} for field in fields
        ]
    return error


async def upsert_many(
    service: RecordService,
    items: Sequence[BaseModel],
    natural_key: str | None,
    update_model: type[BaseModel],
) -> list[ItemResult]:
    """Upserts `items` (create models). For a match, only the fields each item sent apply,
    and they must also be a valid update (`update_model`: e.g. no null for a field a PATCH
    may omit but not clear)."""
    service.principal.require_write()
    session = service.session
    await lock_for_write(session)
    await session.connection()  # one transaction from here: every write below joins it
    keys = [_match_key(item, natural_key) for item in items]
    _reject_repeats(keys)
    existing = await existing_records(service, keys)
    now = utcnow()
    results: list[ItemResult] = []
    changes: list[Staged] = []
    finals: list[tuple[int, UUID, Row]] = []
    for index, (item, key) in enumerate(zip(items, keys, strict=True)):
        current = existing.get(key) if key else None
        try:
            staged = await stage_item(service, item, current, update_model, now)
        except DomainError as error:
            raise _at_item(error, index) from None
        results.append(ItemResult(index, staged.id, staged.outcome))
        if staged.row is not None:
            changes.append(staged)
            finals.append((index, staged.id, staged.row))
    holders = _unique_holders(service, finals)
    try:
        await write_staged(service, changes)
    except (IntegrityError, asyncpg.UniqueViolationError):
        # The unique indexes decide; only when one refuses is it worth finding out which item
        # clashed with which record (the transaction is lost by then: look in a new one).
        await session.rollback()
        await _reject_clashes(service, holders)
        raise Conflict(
            "A concurrent write took one of these keys; retry the call (it is all or nothing)."
        ) from None
    return results


async def stage_item(
    service: RecordService,
    item: BaseModel,
    current: Row | None,
    update_model: type[BaseModel],
    now: datetime,
) -> Staged:
    """Checks `item` (a create model) as a creation, or, matched to `current`, as an update
    by the fields it sent; writes nothing. Raises the service's DomainErrors."""
    if current is None:
        rows = InsertBatch()
        row, _ = await service.stage_create(rows, item.model_dump(), now)
        return Staged(row["id"], UpsertOutcome.created, row, rows=rows)
    service.authorize_change(current)
    staged = await service.stage_update(current, _as_update(item, update_model), now)
    if staged is None:
        return Staged(current["id"], UpsertOutcome.unchanged)
    new_values, changes = staged
    after = {**current, **new_values}
    rows = InsertBatch()
    await service.changed(rows, "updated", current, after, changes, now)
    columns = service.kind.column_set
    stored = {key: value for key, value in new_values.items() if key in columns}
    return Staged(current["id"], UpsertOutcome.updated, after, changes, stored, rows)


async def write_staged(service: RecordService, staged: Iterable[Staged]) -> None:
    """Writes staged changes in the session's transaction: the updates (one executemany per
    set of columns), then every new row per table, in the order staged. A unique index that
    refuses raises IntegrityError (asyncpg's UniqueViolationError from COPY)."""
    table = service.kind.table
    batch = TableBatch(table)
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in staged:
        batch.extend(change.rows)
        if change.values is not None:
            values = change.values
            updates.setdefault(tuple(sorted(values)), []).append({**values, "_id": change.id})
    session = service.session
    for names, rows in updates.items():
        statement = update(table).where(table.c.id == bindparam("_id"))
        await session.execute(statement.values({c: bindparam(c) for c in names}), rows)
    await batch.flush(service.reader)


def _as_update(item: BaseModel, update_model: type[BaseModel]) -> dict[str, Any]:
    """The fields the item sent, checked as an update."""
    try:
        sent = item.model_dump(mode="json", include=item.model_fields_set)
        patch = update_model.model_validate(sent)
    except ValidationError as error:
        fields: list[tuple[str, str]] = []
        for problem in error.errors():
            if problem["type"] == "not_nullable":  # names the fields in its context
                names = str(problem["ctx"]["fields"]).split(", ")
                fields += [(f"body.{name}", "may be omitted but not null") for name in names]
            else:
                path = ".".join(str(part) for part in problem["loc"])
                fields.append((f"body.{path}" if path else "body", problem["msg"]))
        raise Invalid("The item is not a valid change of the record it matches.", fields) from None
    return patch.model_dump(include=patch.model_fields_set)


def _match_key(item: BaseModel, natural_key: str | None) -> tuple[str, Any] | None:
    external_id = getattr(item, "external_id", None)
    if external_id is not None:
        return ("external_id", external_id)
    value = getattr(item, natural_key, None) if natural_key else None
    return (natural_key, value) if natural_key and value is not None else None


def _reject_repeats(keys: list[tuple[str, Any] | None]) -> None:
    first: dict[tuple[str, Any], int] = {}
    for index, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            column = key[0]
            raise Invalid(
                f"Items {first[key]} and {index} match the same {column}.",
                [(f"body.items.{index}.{column}", f"the same as item {first[key]}")],
            )
        first[key] = index


async def existing_records(
    service: RecordService, keys: Iterable[tuple[str, Any] | None]
) -> dict[tuple[str, Any], Row]:
    """The live records the keys (column, value) match, locked until commit."""
    by_column: dict[str, list[Any]] = {}
    for key in keys:
        if key is not None:
            by_column.setdefault(key[0], []).append(key[1])
    found: dict[tuple[str, Any], Row] = {}
    for column, values in by_column.items():
        for row in await _find_live(service, column, values, lock=True):
            found[(column, row[column])] = row
    return found


# A table created empty and loaded since (by these very upserts, before autovacuum got to it)
# has statistics that say its indexes are empty. The planner then takes any partial index on
# `archived_at IS NULL` (a phone index, say) as cheap as the unique index of the key, walks it
# whole for each value, and a bulk load turns quadratic. So a batch first brings the statistics
# up to date when the table has more than doubled since they were taken: a sampled ANALYZE, as
# after any bulk load, a handful of times over a table's growth.
_GROWTH = text(
    "SELECT pg_relation_size(oid) / current_setting('block_size')::int > 2 * greatest(relpages, 8)"
    " FROM pg_class WHERE oid = CAST(:name AS regclass)"
)


async def _ensure_statistics(service: RecordService) -> None:
    if service.reader.db.is_sqlite:
        return
    table = service.kind.table.name
    if await service.session.scalar(_GROWTH, {"name": table}):
        await service.session.execute(text(f"ANALYZE {table}"))


async def _find_live(
    service: RecordService, column: str, values: list[Any], *, lock: bool
) -> list[Row]:
    """The live records whose `column` is one of `values`: whole and locked until commit with
    `lock`, else only their id and `column`."""
    await _ensure_statistics(service)
    statement = _live_with(service.kind.table, column, not service.reader.db.is_sqlite, lock)
    result = await service.session.execute(statement, {"values": values})
    # Plain str keys: through the LATERAL subquery they are SQLAlchemy label objects.
    return [{str(key): value for key, value in row.items()} for row in result.mappings()]


def _live_with(table: Table, column: str, postgres: bool, lock: bool) -> Select[Any]:
    """The live rows whose `column` (unique among live rows) is one of `:values`: whole rows
    locked for update with `lock`, else their id and `column`. On PostgreSQL, a LATERAL join:
    one unique-index probe per value where the table is large."""
    shown = (table,) if lock else (table.c.id, table.c[column])
    if not postgres:
        found = select(*shown).where(
            table.c.archived_at.is_(None), one_of(table.c[column], "values", postgres)
        )
        return found.with_for_update() if lock else found
    values = bindparam("values", type_=ARRAY(table.c[column].type))
    keys = func.unnest(values).table_valued("value").render_derived(name="keys")
    matched = select(*shown).where(table.c[column] == keys.c.value, table.c.archived_at.is_(None))
    if lock:
        matched = matched.with_for_update()
    rows = matched.lateral("matched")
    return select(rows).select_from(keys).join(rows, true())


Holders = dict[str, dict[Any, tuple[int, UUID]]]
"""Per unique column: each value the call writes, with the item and record that hold it."""


def _unique_holders(service: RecordService, finals: list[tuple[int, UUID, Row]]) -> Holders:
    """The unique values (email, domain, external_id) the call's records end with; 422 when
    two items set the same one."""
    holders: Holders = {}
    for column in service.kind.unique_keys:
        of_column = holders[column] = {}
        for index, record_id, row in finals:
            value = row.get(column)
            if value is None:
                continue
            if value in of_column:
                first = of_column[value][0]
                raise Invalid(
                    f"Items {first} and {index} set the same {column}.",
                    [(f"body.items.{index}.{column}", f"the same as item {first}")],
                )
            of_column[value] = (index, record_id)
    return holders


async def _reject_clashes(service: RecordService, holders: Holders) -> None:
    """409 naming the first item whose unique value another live record holds."""
    for column, of_column in holders.items():
        if not of_column:
            continue
        for holder in await _find_live(service, column, list(of_column), lock=False):
            index, record_id = of_column[holder[column]]
            if holder["id"] != record_id:
                raise Conflict(
                    f"Item {index}: another live {service.kind.entity_type} already has this "
                    f"{column}.",
                    existing_id=str(holder["id"]),
                )


async def unique_clashes(service: RecordService, staged: Sequence[Staged]) -> dict[int, Conflict]:
    """Per position in `staged`, the unique value (email, domain, external_id) its change sets
    that another live record holds, or an earlier change in `staged` sets too: looked up before
    writing, so that one clash fails only its item. (A concurrent write can still take a value
    between this look and the write; the unique index then refuses it.)"""
    wanted: dict[str, dict[Any, list[int]]] = {}
    for position, change in enumerate(staged):
        if change.row is None:
            continue
        for column in service.kind.unique_keys:
            value = change.row.get(column)
            kept = change.outcome is UpsertOutcome.updated and column not in change.changes
            if value is None or kept:
                continue
            wanted.setdefault(column, {}).setdefault(value, []).append(position)
    found: dict[int, Conflict] = {}
    for column, by_value in wanted.items():
        for holder in await _find_live(service, column, list(by_value), lock=False):
            for position in by_value[holder[column]]:
                if holder["id"] != staged[position].id and position not in found:
                    found[position] = _clash(service, column, holder["id"])
    for column, by_value in wanted.items():
        for positions in by_value.values():
            holding = [position for position in positions if position not in found]
            for position in holding[1:]:
                found[position] = _clash(service, column, staged[holding[0]].id)
    return found


def _clash(service: RecordService, column: str, holder: UUID) -> Conflict:
    entity = service.kind.entity_type
    return Conflict(f"Another live {entity} already has this {column}.", existing_id=str(holder))
