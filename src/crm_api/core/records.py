"""Generic SQL and business flow for archivable, versioned, owned records.

A slice declares a `RecordKind` (its table, read query and unique keys) and subclasses
`RecordService` for its own rules; lookup-or-404, ownership checks, If-Match, uniqueness
conflicts, the audit row and the outbox event then happen here, once, for every slice.
"""

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any, NoReturn, Protocol, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy import ColumnElement, Select, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.audit import diff
from crm_api.core.batch import InsertBatch
from crm_api.core.changes import record_change
from crm_api.core.concurrency import Versions, check_version
from crm_api.core.db import lock_for_write
from crm_api.core.enums import Role
from crm_api.core.errors import Conflict, Invalid, NotFound, PreconditionFailed
from crm_api.core.events import event_row, events
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.integrity import is_unique_violation
from crm_api.core.listing import ListParams, ListResult, ListSpec, run_list
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader, Row
from crm_api.core.search import SearchSpec, run_search


class CustomFieldRules(Protocol):
    """What a kind's `custom_fields` may hold (the custom fields slice answers)."""

    object_type: str

    async def checked(
        self, reader: Reader, sent: Mapping[str, Any] | None, current: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The values to store after a create (`current` None) or an update sending `sent`;
        raises Invalid for values the definitions do not allow."""
        ...


CHUNK = 500
"""Records per statement when many are read or moved at once (bind parameter limits)."""


T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class RecordKind:
    entity_type: str
    table: Table
    read: Select[Any]
    """Selects one record by `:id` in its read shape (joins for embedded summaries)."""
    to_read: Callable[[Row], dict[str, Any]]
    """Turns a row of `read` (or of `listing`) into the API representation."""
    listing: ListSpec
    unique_keys: tuple[str, ...]
    """Columns unique among live rows; a clash is a 409 naming the holder."""
    path: str
    internal_columns: frozenset[str] = frozenset({"name_key"})
    """Derived columns that appear in neither the API nor the audit log."""
    owned: bool = True
    """Owned records are changed by their owner or a manager; the others (such as the product
    catalog) by managers and admins only."""
    owner_column: str = "owner_id"
    """Who owns an owned record (an activity's owner is who logged it)."""
    custom_fields: CustomFieldRules | None = None
    """The rules of the kind's `custom_fields` column, if it has one."""
    search: SearchSpec | None = None
    """What `POST …/search` reads, for kinds that have it."""

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        """The table's columns, in order."""
        return tuple(self.table.c.keys())

    @cached_property
    def column_set(self) -> frozenset[str]:
        # Membership in a ColumnCollection costs several times a set lookup, per value written.
        return frozenset(self.column_names)

    @cached_property
    def live_id(self) -> Select[Any]:
        """Selects the id by `:id` if the record is live."""
        table = self.table
        return select(table.c.id).where(
            table.c.id == bindparam("id"), table.c.archived_at.is_(None)
        )

    @cached_property
    def by_external_id(self) -> Select[Any]:
        """Selects the id of the live record with `:external_id`."""
        table = self.table
        return select(table.c.id).where(
            table.c.external_id == bindparam("external_id"), table.c.archived_at.is_(None)
        )

    @cached_property
    def lock(self) -> Select[Any]:
        """Selects the raw row by `:id` for update."""
        return select(self.table).where(self.table.c.id == bindparam("id")).with_for_update()


class OwnerDirectory(Protocol):
    """Who may own records: the users slice answers, core does not read its tables."""

    async def ensure_active(self, user_id: UUID, field: str) -> None: ...


class RecordRepository:
    """The SQL every record slice needs; flushes, never commits."""

    def __init__(self, kind: RecordKind, session: AsyncSession, reader: Reader) -> None:
        self.kind = kind
        self.table = kind.table
        self.session = session
        self.reader = reader

    async def read(self, record_id: UUID) -> Row | None:
        return await self.reader.one(self.kind.read, {"id": record_id})

    async def lock(self, record_id: UUID) -> Row | None:
        """The raw row, locked until commit (FOR UPDATE; on SQLite, the database write lock)."""
        await lock_for_write(self.session)
        result = await self.session.execute(self.kind.lock, {"id": record_id})
        row = result.mappings().first()
        return dict(row) if row else None

    async def update(self, record_id: UUID, version: int, values: Mapping[str, Any]) -> bool:
        """Writes `values` if the row is still at `version`; False if it moved on. `lock()`
        already makes that certain; the condition keeps it so should a caller skip the lock."""
        table = self.table
        stmt = update(table).where(table.c.id == record_id, table.c.version == version)
        result = await self.session.execute(stmt.values(**values))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def live_holder(self, column: str, value: Any, exclude: UUID | None) -> UUID | None:
        """The live record other than `exclude` whose `column` equals `value`."""
        table = self.table
        stmt = select(table.c.id).where(table.c[column] == value, table.c.archived_at.is_(None))
        if exclude is not None:
            stmt = stmt.where(table.c.id != exclude)
        return (await self.session.execute(stmt.limit(1))).scalar_one_or_none()

    async def is_live(self, record_id: UUID) -> bool:
        return await self.reader.one(self.kind.live_id, {"id": record_id}) is not None

    async def list_records(self, params: ListParams, filters: Mapping[str, Any]) -> ListResult:
        return await run_list(self.reader, self.kind.listing, params, filters)


class RecordService:
    """Create, read, update, archive and restore for one `RecordKind`.

    Subclasses override `prepare` (derived columns and reference checks) and `after_write`
    (side tables such as history) to add their rules.
    """

    kind: RecordKind

    def __init__(
        self,
        session: AsyncSession,
        reader: Reader,
        principal: Principal,
        owners: OwnerDirectory,
    ) -> None:
        self.session = session
        self.reader = reader
        self.principal = principal
        self.owners = owners
        self.repository = RecordRepository(self.kind, session, reader)

    async def ensure_live(self, record_id: UUID, field: str) -> None:
        """For other slices referencing this one: 422 unless `record_id` is a live record."""
        if not await self.repository.is_live(record_id):
            raise Invalid(
                f"No live {self.kind.entity_type} has id {record_id}.",
                [(field, f"must be the id of a live {self.kind.entity_type}")],
            )

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, record_id: UUID) -> dict[str, Any]:
        row = await self.repository.read(record_id)
        if row is None:
            raise NotFound(f"No {self.kind.entity_type} has id {record_id}.")
        self._refuse_merged(row)
        record = self.kind.to_read(row)
        await self.embed([record])
        return record

    async def get_by_external_id(self, external_id: str) -> dict[str, Any]:
        """The live record with this `external_id`."""
        found = await self.reader.scalar(self.kind.by_external_id, {"external_id": external_id})
        if found is None:
            raise NotFound(f"No live {self.kind.entity_type} has external_id {external_id!r}.")
        return await self.get(found)

    async def list_records(
        self,
        params: ListParams,
        filters: Mapping[str, Any],
        custom: Mapping[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """A page of the list; `custom` holds `custom_fields.<key>` query parameters (each an
        equality). Those, and a sort by a custom field, go through search."""
        sort = (params.sort or "").removeprefix("-")
        if self.kind.search is not None and (custom or sort.startswith("custom_fields.")):
            conditions = [
                {"field": name, "op": "eq", "value": value, "path": f"query.{name}"}
                for name, value in (custom or {}).items()
            ]
            tree = {"and": conditions} if conditions else None
            result = await run_search(
                self.reader,
                self.kind.search,
                params,
                tree=tree,
                list_filters=filters,
                where="query",
            )
        else:
            result = await self.repository.list_records(params, filters)
        return await self._page(result)

    async def walk(
        self,
        params: ListParams,
        filters: Mapping[str, Any],
        custom: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Every record of the list (`list_records`' arguments), as pages of `params.limit`
        records, each read after the one before's keyset cursor while the caller handles the
        one before. The first page is read before this returns, so an invalid sort or filter
        raises here, before a caller has sent anything."""
        page, cursor, _ = await self.list_records(params, filters, custom)
        return self._pages(page, cursor, params, filters, custom)

    async def _pages(
        self,
        page: list[dict[str, Any]],
        after: str | None,
        params: ListParams,
        filters: Mapping[str, Any],
        custom: Mapping[str, str] | None,
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        while after is not None:
            # The next page's query runs while the caller handles this one: the database's time
            # overlaps the caller's (encoding, sending) instead of adding to it.
            upcoming = asyncio.ensure_future(
                self.list_records(replace(params, cursor=after), filters, custom)
            )
            try:
                yield page
                page, after, _ = await upcoming
            finally:
                upcoming.cancel()  # done by now, unless the caller stopped early
        yield page

    async def search(
        self, params: ListParams, tree: Mapping[str, Any] | None, query: str | None
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """A page of the records matching a filter tree and a full-text query (see core.search)."""
        if self.kind.search is None:
            raise RuntimeError(f"{self.kind.entity_type} has no search")
        self.principal.require_read()
        result = await run_search(self.reader, self.kind.search, params, tree=tree, query=query)
        return await self._page(result)

    async def _page(
        self, result: ListResult
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        records = [self.kind.to_read(row) for row in result.rows]
        await self.embed(records)
        return records, result.next_cursor, result.total

    # -- writes --------------------------------------------------------------------------------

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        self.principal.require_write()
        # On SQLite, the write lock first: a transaction that read before writing could not
        # write once another had committed in between.
        await lock_for_write(self.session)
        batch = InsertBatch()
        row, record = await self.stage_create(batch, values, utcnow())
        try:
            await batch.flush(self.reader)
        except (IntegrityError, asyncpg.UniqueViolationError) as error:
            await self._raise_conflict(error, row, None)
        return record

    async def stage_create(
        self, batch: InsertBatch, values: dict[str, Any], now: datetime
    ) -> tuple[Row, dict[str, Any]]:
        """Checks a new record and adds its rows (record, history, audit, events) to `batch`;
        returns the row and the record as the API shows it. Writes nothing yet."""
        if self.kind.owned:
            column = self.kind.owner_column
            values[column] = await self.assign_owner(values.get(column))
        else:
            self.principal.require_role(Role.admin, Role.manager)
        if self.kind.custom_fields is not None:
            sent = values.get("custom_fields")
            values["custom_fields"] = await self.kind.custom_fields.checked(self.reader, sent, None)
        await self.prepare(values, None, now)
        row = {
            **dict.fromkeys(self.kind.column_names),  # every column, so the row is whole
            **values,
            "id": uuid7(),
            "version": 1,
            "created_by": self.principal.user_id,
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
        }
        batch.add(self.kind.table, self._columns_of(row))
        record = await self.changed(batch, "created", None, row, diff({}, values), now)
        return row, record

    async def update(
        self, record_id: UUID, values: dict[str, Any], expected_version: Versions | None
    ) -> dict[str, Any]:
        current = await self._locked_live(record_id)
        self.authorize_change(current)
        check_version(expected_version, current["version"])
        now = utcnow()
        staged = await self.stage_update(current, values, now)
        if staged is None:
            return await self.represent(current)
        new_values, changes = staged
        return await self._write(current, new_values, new_values, "updated", changes, now)

    async def stage_update(
        self, current: Row, values: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], dict[str, list[Any]]] | None:
        """Checks a change of `current` (which the caller may change); returns the new column
        values and the changes, or None when nothing changes. Writes nothing."""
        column = self.kind.owner_column
        if column in values and values[column] != current[column]:
            values[column] = await self.assign_owner(values[column])
        rules = self.kind.custom_fields
        if rules is not None and "custom_fields" in values:
            sent = values["custom_fields"]
            values["custom_fields"] = await rules.checked(
                self.reader, sent, current["custom_fields"]
            )
        await self.prepare(values, current, now)
        changes = diff(current, values)
        if not changes:
            return None
        new_values = {key: after for key, (_, after) in changes.items()}
        new_values.update(version=current["version"] + 1, updated_at=now)
        return new_values, changes

    async def archive(self, record_id: UUID, expected_version: Versions | None) -> None:
        current = await self._locked(record_id)
        self.authorize_change(current)
        check_version(expected_version, current["version"])
        if current["archived_at"] is not None:
            return  # archiving is idempotent
        now = utcnow()
        values = {"archived_at": now, "version": current["version"] + 1, "updated_at": now}
        await self._write(current, values, {}, "archived", {"archived_at": [None, now]}, now)

    async def restore(self, record_id: UUID) -> dict[str, Any]:
        current = await self._locked(record_id)
        self.authorize_change(current)
        if current["archived_at"] is None:
            return await self.represent(current)
        now = utcnow()
        values = {"archived_at": None, "version": current["version"] + 1, "updated_at": now}
        changes = {"archived_at": [current["archived_at"], None]}
        return await self._write(current, values, current, "restored", changes, now)

    async def replace_custom_values(
        self,
        holding: ColumnElement[bool],
        params: Mapping[str, Any],
        key: str,
        replace: Callable[[Any], Any],
    ) -> int:
        """Sets custom field `key` of every record matching `holding` (archived ones too) to
        `replace(value)` (None removes it), each as an update with its audit row and event;
        returns how many records changed."""
        table = self.kind.table
        found = await self.session.execute(
            select(table.c.id).where(holding).order_by(table.c.id), dict(params)
        )
        now = utcnow()
        changed = 0
        for record_id in found.scalars().all():
            # Merged and archived records too: they hold the value all the same.
            current = await self.repository.lock(record_id)
            if current is None:
                continue
            fields = dict(current["custom_fields"])
            new = replace(fields.get(key))
            if new is None:
                fields.pop(key, None)
            else:
                fields[key] = new
            if fields == current["custom_fields"]:
                continue
            values = {"custom_fields": fields, "version": current["version"] + 1, "updated_at": now}
            changes = {"custom_fields": [current["custom_fields"], fields]}
            await self._write(current, values, {}, "updated", changes, now)
            changed += 1
        return changed

    # -- moving references (merges) ------------------------------------------------------------

    async def read_many(self, record_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
        """Records by id as the API shows them, archived ones too (read as a list page is)."""
        table = self.kind.table
        base = self.kind.listing.base() if self.kind.listing.base else select(table)
        found: dict[UUID, dict[str, Any]] = {}
        for chunk in chunks(record_ids):
            result = await self.session.execute(base.where(table.c.id.in_(chunk)))
            records = [self.kind.to_read(dict(row)) for row in result.mappings()]
            await self.embed(records)
            found.update((record["id"], record) for record in records)
        return found

    async def repoint(
        self, column: str, from_ids: Sequence[UUID], to_id: UUID, at: datetime
    ) -> list[UUID]:
        """Moves every record (archived ones too) whose `column` is one of `from_ids` to `to_id`,
        each as a change of its own: a new version, an audit row and `<entity>.updated`. For a
        merge, whose caller was authorized for the records merged, not for these."""
        table = self.kind.table
        found = (
            select(table)
            .where(table.c[column].in_(from_ids))
            .order_by(table.c.id)
            .with_for_update()
        )
        rows = [dict(row) for row in (await self.session.execute(found)).mappings()]
        for chunk in chunks(rows):
            ids = [row["id"] for row in chunk]
            values = {column: to_id, "version": table.c.version + 1, "updated_at": at}
            await self.session.execute(update(table).where(table.c.id.in_(ids)).values(values))
            moves = {row["id"]: {column: [row[column], to_id]} for row in chunk}
            await self.record_moves(moves, at)
        return [row["id"] for row in rows]

    async def record_moves(
        self, changes: Mapping[UUID, dict[str, list[Any]]], at: datetime
    ) -> None:
        """The audit rows and `<entity>.updated` events of records whose links moved (written
        already, each with a new version); `changes` maps each id to its `{field: [before,
        after]}`."""
        records = await self.read_many(list(changes))
        batch = InsertBatch()
        for record_id, record_changes in changes.items():
            record_change(
                batch,
                principal=self.principal,
                action="updated",
                entity_type=self.kind.entity_type,
                entity_id=record_id,
                changes=record_changes,
                data=records[record_id],
                at=at,
            )
        await batch.flush(self.reader)

    def authorize_change(self, current: Row) -> None:
        """403 unless the caller may change `current` (see `RecordKind.owned`)."""
        if self.kind.owned:
            self.principal.require_owner_or_manager(current[self.kind.owner_column])
        else:
            self.principal.require_write()
            self.principal.require_role(Role.admin, Role.manager)

    # -- hooks ---------------------------------------------------------------------------------

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        """Derive columns and check references in `values` (a create when `current` is None);
        `at` is the write's one timestamp."""

    async def embed(self, records: list[dict[str, Any]]) -> None:
        """Add what a read shows from other tables (one query per table for a whole page)."""

    def after_write(self, batch: InsertBatch, before: Row | None, after: Row, at: datetime) -> None:
        """Add side rows (such as history) that belong to the change to `batch`."""

    async def represent(self, row: Row) -> dict[str, Any]:
        """The API representation of a raw table row (without re-reading it)."""
        return self.kind.to_read(row)

    async def domain_events(
        self, before: Row | None, after: Row, record: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Events that name what a change means (`deal.won`, `task.completed`), as (action,
        data), written besides the `<entity>.<action>` event every change has."""
        return []

    # -- shared steps --------------------------------------------------------------------------

    def _columns_of(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values that are columns of the record's table. A slice may add others (such as
        an activity's contact ids) that are diffed, audited and represented, but stored apart."""
        columns = self.kind.column_set
        return {key: value for key, value in values.items() if key in columns}

    async def _locked(self, record_id: UUID) -> Row:
        row = await self.repository.lock(record_id)
        if row is None:
            raise NotFound(f"No {self.kind.entity_type} has id {record_id}.")
        self._refuse_merged(row)
        return row

    def _refuse_merged(self, row: Row) -> None:
        """A record merged into another is gone for every request by its id (its history stays
        readable): 404 naming the record it lives on in."""
        merged_into = row.get("merged_into_id")
        if merged_into is not None:
            raise NotFound(
                f"The {self.kind.entity_type} {row['id']} was merged into {merged_into}.",
                merged_into_id=str(merged_into),
            )

    async def _locked_live(self, record_id: UUID) -> Row:
        row = await self._locked(record_id)
        if row["archived_at"] is not None:
            raise Conflict(
                f"The {self.kind.entity_type} is archived; restore it before changing it."
            )
        return row

    async def assign_owner(self, requested: UUID | None) -> UUID:
        """The owner of a new record, or the new owner of a changed one: the caller unless a
        manager or admin names another active user."""
        owner = self.principal.resolve_owner(requested)
        if owner != self.principal.user_id:
            await self.owners.ensure_active(owner, f"body.{self.kind.owner_column}")
        return owner

    async def _write(
        self,
        current: Row,
        values: dict[str, Any],
        unique: Mapping[str, Any],
        action: str,
        changes: dict[str, list[Any]],
        at: datetime,
    ) -> dict[str, Any]:
        """Updates the `current` row and records the change; `unique` holds the values that may
        clash with other records."""
        await self.write_row(current, values, unique)
        batch = InsertBatch()
        record = await self.changed(batch, action, current, {**current, **values}, changes, at)
        await batch.flush(self.reader)
        return record

    async def write_row(
        self, current: Row, values: Mapping[str, Any], unique: Mapping[str, Any]
    ) -> None:
        """Updates the `current` row only (its audit row and events are the caller's): 409 on a
        unique clash (`unique` holds the values that may clash), 412 if it moved on."""
        row_values = self._columns_of(values)
        try:
            written = await self.repository.update(current["id"], current["version"], row_values)
        except IntegrityError as error:
            await self._raise_conflict(error, unique, current["id"])
        if not written:
            latest = await self.repository.lock(current["id"])
            raise PreconditionFailed(
                f"The {self.kind.entity_type} changed while this request ran; re-read and retry.",
                current_version=latest["version"] if latest else None,
            )

    async def _raise_conflict(
        self, error: Exception, values: Mapping[str, Any], record_id: UUID | None
    ) -> NoReturn:
        """A unique-key clash becomes a 409 naming the live holder; anything else re-raises."""
        if not is_unique_violation(error):
            raise error
        await self.session.rollback()
        for column in self.kind.unique_keys:
            value = values.get(column)
            holder = value and await self.repository.live_holder(column, value, record_id)
            if holder:
                raise Conflict(
                    f"Another live {self.kind.entity_type} already has this {column}.",
                    existing_id=str(holder),
                ) from None
        raise Conflict(f"The {self.kind.entity_type} clashes with an existing one.") from None

    async def changed(
        self,
        batch: InsertBatch,
        action: str,
        before: Row | None,
        after: Row,
        changes: dict[str, list[Any]],
        at: datetime,
    ) -> dict[str, Any]:
        """Adds the change's side rows, audit row and event to `batch`; returns the record."""
        self.after_write(batch, before, after, at)
        record = await self.represent(after)
        hidden = self.kind.internal_columns
        record_change(
            batch,
            principal=self.principal,
            action=action,
            entity_type=self.kind.entity_type,
            entity_id=after["id"],
            changes={key: change for key, change in changes.items() if key not in hidden},
            data=record,
            at=at,
        )
        for event_action, data in await self.domain_events(before, after, record):
            event = event_row(self.kind.entity_type, event_action, after["id"], data, at)
            batch.add(events, event)
        return record
