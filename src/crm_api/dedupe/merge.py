"""Merging duplicates into a primary record, atomically.

Everything is checked before anything is written: the request (422), that every record exists
(404) and is live and not merged (409), that the caller may change every one of them (403),
the primary's If-Match (412), and the primary's new values, as a PATCH's are (422: an inactive
owner, an archived company, …). Then, in the request's one transaction:

1. the duplicates are archived with `merged_into_id` (which also frees their unique values,
   unique among live records only, for the primary to take);
2. the primary takes the chosen values;
3. what pointed to a duplicate points to the primary: each such record is a change of its own
   (a new version, an audit row and `<entity>.updated`);
4. derived fields (last activity, first outreach, next task) are recomputed for all of them;
5. the audit rows and events of the duplicates (`<entity>.archived`) and of the primary
   (`<entity>.updated`, with a `merged_ids` change), then `<entity>.merged`.

A failure anywhere leaves nothing written. History stays where it was: the duplicates' audit
log, lifecycle changes and stage history keep their ids (and their timelines stay readable).
"""

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.activities.service import ActivityService
from crm_api.companies.service import CompanyService
from crm_api.contacts.service import ContactService
from crm_api.core.batch import InsertBatch
from crm_api.core.concurrency import Versions, check_version
from crm_api.core.db import lock_for_write
from crm_api.core.errors import Conflict, Invalid, NotFound
from crm_api.core.events import event_row, events
from crm_api.core.ids import utcnow
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader, Row
from crm_api.core.records import OwnerDirectory, RecordService
from crm_api.custom_fields.catalog import CATALOG
from crm_api.deals.service import DealService
from crm_api.dedupe.schemas import COMPANY_FIELDS, CONTACT_FIELDS
from crm_api.tasks.service import TaskService

S = TypeVar("S", bound=RecordService)
CUSTOM = "custom_fields."
_CUSTOM_KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")


class Merger:
    """The merge of one kind of record; subclasses say which fields a merge chooses and what
    points to such a record."""

    service_class: ClassVar[type[RecordService]]
    fields: ClassVar[tuple[str, ...]]
    together: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """A field chosen with others (a revenue and its currency)."""
    any_true: ClassVar[frozenset[str]] = frozenset()
    """Flags true after a merge if any record's is, unless a record is chosen for them."""

    def __init__(
        self, session: AsyncSession, reader: Reader, principal: Principal, owners: OwnerDirectory
    ) -> None:
        self.session = session
        self.reader = reader
        self.principal = principal
        self.owners = owners
        self.records = self.service_class(session, reader, principal, owners)
        self.entity = self.records.kind.entity_type

    async def merge(
        self,
        primary_id: UUID,
        duplicate_ids: list[UUID],
        field_choices: dict[str, UUID],
        expected_version: Versions | None,
    ) -> dict[str, Any]:
        """Merges the duplicates into the primary; returns `{primary, merged_ids}`."""
        self.principal.require_write()
        self._check_request(primary_id, duplicate_ids, field_choices)
        rows = await self._lock_all([primary_id, *duplicate_ids])
        for row in rows.values():
            self.records.authorize_change(row)
        primary = rows[primary_id]
        check_version(expected_version, primary["version"])
        duplicates = [rows[record_id] for record_id in duplicate_ids]
        values = await self._chosen(primary, duplicates, field_choices)
        now = utcnow()
        # The primary's new values are checked as a PATCH's are (owner, company, …), still
        # before anything is written.
        staged = await self.records.stage_update(dict(primary), values, now)
        new_values, changes = staged or ({"version": primary["version"] + 1, "updated_at": now}, {})
        repository = self.records.repository
        for duplicate in duplicates:
            archived = {"archived_at": now, "merged_into_id": primary_id,
                        "version": duplicate["version"] + 1, "updated_at": now}  # fmt: skip
            await repository.update(duplicate["id"], duplicate["version"], archived)
        await self.records.write_row(primary, new_values, values)
        await self.move_links(duplicate_ids, primary_id, now)
        await self.refresh_derived([primary_id, *duplicate_ids])

        batch = InsertBatch()
        for duplicate in duplicates:
            after = await self._fresh(duplicate["id"])
            archived_changes: dict[str, list[Any]] = {
                "archived_at": [None, now],
                "merged_into_id": [None, primary_id],
            }
            await self.records.changed(batch, "archived", duplicate, after, archived_changes, now)
        changes["merged_ids"] = [None, duplicate_ids]
        after = await self._fresh(primary_id)
        record = await self.records.changed(batch, "updated", primary, after, changes, now)
        result = {"primary": record, "merged_ids": duplicate_ids}
        batch.add(events, event_row(self.entity, "merged", primary_id, result, now))
        await batch.flush(self.reader)
        return result

    # -- what each kind says -------------------------------------------------------------------

    async def move_links(self, from_ids: Sequence[UUID], to_id: UUID, at: datetime) -> None:
        """Points what pointed to the duplicates to the primary."""
        raise NotImplementedError

    async def refresh_derived(self, record_ids: list[UUID]) -> None:
        """Recomputes the derived fields of the merged records."""

    async def fills(self, field: str, value: Any) -> bool:
        """Whether a duplicate's `value` may fill the primary's blank `field` unasked (a value
        chosen in `field_choices` is checked as a PATCH would check it)."""
        return True

    # -- checks --------------------------------------------------------------------------------

    def _check_request(
        self, primary_id: UUID, duplicate_ids: list[UUID], field_choices: dict[str, UUID]
    ) -> None:
        errors: list[tuple[str, str]] = []
        if primary_id in duplicate_ids:
            errors.append(("body.duplicate_ids", "must not contain primary_id"))
        if len(set(duplicate_ids)) != len(duplicate_ids):
            errors.append(("body.duplicate_ids", "must not repeat an id"))
        merged = {primary_id, *duplicate_ids}
        for field, source in field_choices.items():
            key = field.removeprefix(CUSTOM)
            known = field in self.fields or (field != key and bool(_CUSTOM_KEY.fullmatch(key)))
            if not known:
                allowed = ", ".join((*self.fields, CUSTOM + "<key>"))
                errors.append((f"body.field_choices.{field}", f"not a field; one of: {allowed}"))
            elif source not in merged:
                message = "must be primary_id or one of duplicate_ids"
                errors.append((f"body.field_choices.{field}", message))
        if errors:
            raise Invalid(f"The {self.entity} merge is invalid; see `errors`.", errors)

    async def _lock_all(self, record_ids: list[UUID]) -> dict[UUID, Row]:
        """Every record, locked in id order (so two merges never wait on each other in a
        circle); 404 for unknown ones, 409 for archived or merged ones."""
        await lock_for_write(self.session)
        rows: dict[UUID, Row] = {}
        for record_id in sorted(record_ids):
            row = await self.records.repository.lock(record_id)
            if row is not None:
                rows[record_id] = row
        missing = [str(record_id) for record_id in record_ids if record_id not in rows]
        if missing:
            raise NotFound(f"No {self.entity} has id {', '.join(missing)}.")
        for record_id in record_ids:
            row = rows[record_id]
            if row["merged_into_id"] is not None:
                raise Conflict(
                    f"The {self.entity} {record_id} was already merged into "
                    f"{row['merged_into_id']}.",
                    merged_into_id=str(row["merged_into_id"]),
                )
            if row["archived_at"] is not None:
                raise Conflict(
                    f"The {self.entity} {record_id} is archived; restore it before merging."
                )
        return rows

    # -- values --------------------------------------------------------------------------------

    async def _chosen(
        self, primary: Row, duplicates: list[Row], field_choices: dict[str, UUID]
    ) -> dict[str, Any]:
        """The primary's new values (only those that differ from its own)."""
        by_id = {row["id"]: row for row in (primary, *duplicates)}
        values: dict[str, Any] = {}
        for field in self.fields:
            columns = self.together.get(field, (field,))
            source = field_choices.get(field)
            if source is not None:
                chosen = by_id[source]
            elif field in self.any_true:
                values[field] = any(row[field] for row in by_id.values())
                continue
            else:
                chosen = primary
                if primary[field] is None:
                    for duplicate in duplicates:
                        value = duplicate[field]
                        if value is not None and await self.fills(field, value):
                            chosen = duplicate
                            break
            values.update((column, chosen[column]) for column in columns)
        patch = await self._custom_patch(primary, duplicates, by_id, field_choices)
        if patch:
            values["custom_fields"] = patch
        return {key: value for key, value in values.items() if value != primary[key]}

    async def _custom_patch(
        self,
        primary: Row,
        duplicates: Sequence[Row],
        by_id: Mapping[UUID, Row],
        field_choices: Mapping[str, UUID],
    ) -> dict[str, Any]:
        """The primary's custom field changes, as a PATCH sends them (null clears a value):
        its blanks filled from the duplicates (live fields only: an archived or unknown key is
        kept where it is, not spread), then the values `field_choices` names."""
        rules = self.records.kind.custom_fields
        definitions = await CATALOG.definitions(self.reader, rules.object_type) if rules else {}
        current = primary["custom_fields"]
        patch: dict[str, Any] = {}
        for duplicate in duplicates:
            for key, value in duplicate["custom_fields"].items():
                definition = definitions.get(key)
                live = definition is not None and not definition.archived
                if live and value is not None and current.get(key) is None:
                    patch.setdefault(key, value)
        for field, source in field_choices.items():
            if field.startswith(CUSTOM):
                key = field.removeprefix(CUSTOM)
                patch[key] = by_id[source]["custom_fields"].get(key)
        return {key: value for key, value in patch.items() if current.get(key) != value}

    async def _fresh(self, record_id: UUID) -> Row:
        row = await self.records.repository.lock(record_id)
        assert row is not None  # locked since the start
        return row

    def _service(self, cls: type[S]) -> S:
        return cls(self.session, self.reader, self.principal, self.owners)


class ContactMerger(Merger):
    service_class = ContactService
    fields = CONTACT_FIELDS
    any_true = frozenset({"do_not_contact"})

    async def move_links(self, from_ids: Sequence[UUID], to_id: UUID, at: datetime) -> None:
        await self._service(ActivityService).repoint_contacts(from_ids, to_id, at)
        await self._service(TaskService).repoint("contact_id", from_ids, to_id, at)
        await self._service(DealService).repoint_contacts(from_ids, to_id, at)

    async def refresh_derived(self, record_ids: list[UUID]) -> None:
        await self._service(ActivityService).refresh_derived(contact_ids=record_ids)
        await self._service(TaskService).refresh_next_task_of_contacts(record_ids)

    async def fills(self, field: str, value: Any) -> bool:
        # An archived company is not filled in unasked (a PATCH to it would be refused).
        if field == "company_id":
            return await self._service(CompanyService).repository.is_live(value)
        return True


class CompanyMerger(Merger):
    service_class = CompanyService
    fields = COMPANY_FIELDS
    together = {"annual_revenue": ("annual_revenue", "annual_revenue_currency")}

    async def move_links(self, from_ids: Sequence[UUID], to_id: UUID, at: datetime) -> None:
        for service in (ContactService, DealService, ActivityService, TaskService):
            await self._service(service).repoint("company_id", from_ids, to_id, at)

    async def refresh_derived(self, record_ids: list[UUID]) -> None:
        await self._service(ActivityService).refresh_derived(company_ids=record_ids)
