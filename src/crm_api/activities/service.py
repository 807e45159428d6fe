"""Activity rules: which fields each type takes, at least one live link, and what logging,
editing or archiving an activity does to `last_activity_at` and `first_outreach_at`.

An activity's contacts are `contact_ids` (what it is about) and, for meetings,
`attendee_contact_ids`; both are stored as rows of `activity_contacts`, and both count as the
activity's contacts for the derived fields.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select, update

from crm_api.activities.models import ActivityType
from crm_api.activities.repository import (
    ACTIVITY,
    CONTACTS_OF,
    REFRESH_COMPANIES,
    REFRESH_CONTACTS,
    REFRESH_DEALS,
    activities,
    activity_contacts,
)
from crm_api.companies.repository import companies
from crm_api.companies.service import CompanyService
from crm_api.contacts.repository import contacts
from crm_api.core.concurrency import Versions
from crm_api.core.derived import recompute
from crm_api.core.errors import Invalid
from crm_api.core.reader import Row
from crm_api.core.records import RecordService, chunks
from crm_api.deals.repository import deals
from crm_api.deals.service import DealService

CLOCK_SKEW = timedelta(minutes=2)
"""How far in the future a non-meeting may be logged: the caller's clock may run ahead."""
_LINK_FIELDS = ("contact_ids", "attendee_contact_ids")
_FLAGS = ("linked", "attendee")


class ActivityService(RecordService):
    kind = ACTIVITY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._touched: dict[str, set[UUID]] = {
            "contacts": set(),
            "companies": set(),
            "deals": set(),
        }

    # -- writes: each refreshes the derived fields of every record it touched ------------------

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        record = await super().create(values)
        await self._refresh_touched()
        return record

    async def update(
        self, record_id: UUID, values: dict[str, Any], expected_version: Versions | None
    ) -> dict[str, Any]:
        record = await super().update(record_id, values, expected_version)
        await self._refresh_touched()
        return record

    async def archive(self, record_id: UUID, expected_version: Versions | None) -> None:
        await super().archive(record_id, expected_version)
        await self._set_live(record_id, False)

    async def restore(self, record_id: UUID) -> dict[str, Any]:
        record = await super().restore(record_id)
        await self._set_live(record_id, True)
        return record

    # -- merges --------------------------------------------------------------------------------

    async def repoint_contacts(self, from_ids: Sequence[UUID], to_id: UUID, at: datetime) -> None:
        """Links every activity (archived ones too) of the contacts `from_ids` to `to_id` in
        their place, each activity as a change of its own (a new version, an audit row and
        `activity.updated`). An activity that had several of them has one link left, flagged
        linked and attendee as any of them was. Refresh the derived fields after."""
        table = activity_contacts
        moved = [*from_ids, to_id]
        of_contacts = select(table.c.activity_id).where(table.c.contact_id.in_(from_ids))
        locked = (
            select(activities.c.id)
            .where(activities.c.id.in_(of_contacts))
            .order_by(activities.c.id)
            .with_for_update()
        )
        activity_ids = list((await self.session.execute(locked)).scalars())
        for chunk in chunks(activity_ids):
            links: dict[UUID, dict[UUID, Row]] = defaultdict(dict)
            result = await self.session.execute(select(table).where(table.c.activity_id.in_(chunk)))
            for link in result.mappings():
                links[link["activity_id"]][link["contact_id"]] = dict(link)
            kept, changes = [], {}
            for activity_id in chunk:
                mine = links[activity_id]
                before = {contact_id: _flags(link) for contact_id, link in mine.items()}
                joined = [link for contact_id, link in mine.items() if contact_id in moved]
                flags = {flag: any(link[flag] for link in joined) for flag in _FLAGS}
                after = {c: f for c, f in before.items() if c not in moved} | {to_id: flags}
                kept.append({**joined[0], **flags, "contact_id": to_id})
                lists_before, lists_after = _lists(before), _lists(after)
                changes[activity_id] = {
                    field: [lists_before[field], lists_after[field]]
                    for field in _LINK_FIELDS
                    if lists_before[field] != lists_after[field]
                }
            stale = table.c.activity_id.in_(chunk) & table.c.contact_id.in_(moved)
            await self.session.execute(delete(table).where(stale))
            await self.session.execute(insert(table), kept)
            await self.session.execute(
                update(activities)
                .where(activities.c.id.in_(chunk))
                .values(version=activities.c.version + 1, updated_at=at)
            )
            await self.record_moves(changes, at)

    async def refresh_derived(
        self, *, contact_ids: Iterable[UUID] = (), company_ids: Iterable[UUID] = ()
    ) -> None:
        """Recomputes `last_activity_at` (and `first_outreach_at`) of these records, after a
        merge moved activities between them."""
        self._touched["contacts"].update(contact_ids)
        self._touched["companies"].update(company_ids)
        await self._refresh_touched()

    # -- record hooks --------------------------------------------------------------------------

    def authorize_change(self, current: Row) -> None:
        super().authorize_change(current)
        self._touch(current)

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        before = await self._links_of(current) if current else {}
        if current is not None:
            # The lists as they were, so the change shows in the diff, the audit and the event.
            current.update(_lists(before))
        lists = {field: sorted(values.get(field, _lists(before)[field]), key=str)
                 for field in _LINK_FIELDS}  # fmt: skip
        values.update(lists)
        merged = {**(current or {}), **values}
        if merged.get("occurred_at") is None:
            values["occurred_at"] = merged["occurred_at"] = at
        _check_fields(merged, at)
        links = _links(merged)
        if not (links or merged.get("company_id") or merged.get("deal_id")):
            raise Invalid(
                "An activity needs at least one contact, company or deal.",
                [("body.contact_ids", "link at least one contact, company or deal")],
            )
        await self._check_live_links(values, current, set(links) - set(before))
        if current is not None:
            await self._store_links(current["id"], before, links, merged["occurred_at"])
        self._touch(merged, links)

    def after_write(self, batch: Any, before: Row | None, after: Row, at: datetime) -> None:
        if before is None:
            for contact_id, flags in _links(after).items():
                batch.add(activity_contacts, {"activity_id": after["id"], "contact_id": contact_id,
                                              "occurred_at": after["occurred_at"], "live": True,
                                              **flags})  # fmt: skip

    async def represent(self, row: Row) -> dict[str, Any]:
        record = self.kind.to_read(row)
        if not all(field in row for field in _LINK_FIELDS):
            record.update(_lists(await self._links_of(row)))
        return record

    # -- shared steps --------------------------------------------------------------------------

    async def embed(self, records: list[dict[str, Any]]) -> None:
        by_id = {record["id"]: record for record in records}
        for record in records:
            record.update(contact_ids=[], attendee_contact_ids=[])
        if not records:
            return
        postgres = not self.reader.db.is_sqlite
        rows = await self.reader.all(CONTACTS_OF[postgres], {"activity_ids": list(by_id)})
        for row in rows:
            record = by_id[row["activity_id"]]
            if row["linked"]:
                record["contact_ids"].append(row["contact_id"])
            if row["attendee"]:
                record["attendee_contact_ids"].append(row["contact_id"])

    async def _links_of(self, row: Row) -> dict[UUID, dict[str, bool]]:
        stmt = select(activity_contacts).where(activity_contacts.c.activity_id == row["id"])
        result = await self.session.execute(stmt)
        return {
            link["contact_id"]: {"linked": link["linked"], "attendee": link["attendee"]}
            for link in result.mappings()
        }

    async def _check_live_links(
        self, values: dict[str, Any], current: Row | None, new_contacts: set[UUID]
    ) -> None:
        if new_contacts:
            live = select(contacts.c.id).where(
                contacts.c.id.in_(new_contacts), contacts.c.archived_at.is_(None)
            )
            missing = new_contacts - set((await self.session.execute(live)).scalars())
            if missing:
                raise Invalid(
                    "Every linked contact must be a live contact.",
                    [("body.contact_ids", f"not a live contact: {record_id}")
                     for record_id in sorted(missing, key=str)],
                )  # fmt: skip
        checks = (("company_id", CompanyService), ("deal_id", DealService))
        for field, service in checks:
            record_id = values.get(field)
            if record_id is not None and (current is None or record_id != current[field]):
                checker = service(self.session, self.reader, self.principal, self.owners)
                await checker.ensure_live(record_id, f"body.{field}")

    async def _store_links(
        self,
        activity_id: UUID,
        before: dict[UUID, dict[str, bool]],
        after: dict[UUID, dict[str, bool]],
        occurred_at: datetime,
    ) -> None:
        """Makes the activity's contact rows `after` (an update; a create inserts them)."""
        table = activity_contacts
        gone = set(before) - set(after)
        if gone:
            await self.session.execute(
                delete(table).where(
                    table.c.activity_id == activity_id, table.c.contact_id.in_(gone)
                )
            )
        for contact_id, flags in after.items():
            row = {**flags, "occurred_at": occurred_at}
            if contact_id in before:
                await self.session.execute(
                    update(table)
                    .where(table.c.activity_id == activity_id, table.c.contact_id == contact_id)
                    .values(row)
                )
            else:
                await self.session.execute(
                    insert(table).values(
                        activity_id=activity_id, contact_id=contact_id, live=True, **row
                    )
                )
        self._touched["contacts"].update(before)

    async def _set_live(self, activity_id: UUID, live: bool) -> None:
        table = activity_contacts
        self._touched["contacts"].update(await self._links_of({"id": activity_id}))
        await self.session.execute(
            update(table).where(table.c.activity_id == activity_id).values(live=live)
        )
        await self._refresh_touched()

    def _touch(self, row: Row, links: dict[UUID, Any] | None = None) -> None:
        """Remembers the records whose derived fields the change may move."""
        self._touched["companies"].add(row["company_id"])
        self._touched["deals"].add(row["deal_id"])
        if links is not None:
            self._touched["contacts"].update(links)

    async def _refresh_touched(self) -> None:
        touched = self._touched
        for key, table, stmt in (("contacts", contacts, REFRESH_CONTACTS),
                                 ("companies", companies, REFRESH_COMPANIES),
                                 ("deals", deals, REFRESH_DEALS)):  # fmt: skip
            await recompute(self.session, table, stmt, touched[key])
            touched[key] = set()


def _flags(link: Row) -> dict[str, bool]:
    return {flag: link[flag] for flag in _FLAGS}


def _lists(links: dict[UUID, dict[str, bool]]) -> dict[str, list[UUID]]:
    return {
        "contact_ids": sorted((c for c, flags in links.items() if flags["linked"]), key=str),
        "attendee_contact_ids": sorted(
            (c for c, flags in links.items() if flags["attendee"]), key=str
        ),
    }


def _links(row: Row) -> dict[UUID, dict[str, bool]]:
    """The contact rows an activity with these lists has."""
    linked, attendees = set(row["contact_ids"]), set(row["attendee_contact_ids"])
    return {
        contact_id: {"linked": contact_id in linked, "attendee": contact_id in attendees}
        for contact_id in linked | attendees
    }


def _check_fields(activity: Row, now: datetime) -> None:
    """Which fields each type takes, and when it may have happened."""
    kind = activity["type"]
    errors = []
    if kind != ActivityType.meeting and activity["occurred_at"] > now + CLOCK_SKEW:
        errors.append(("body.occurred_at", "only meetings may be in the future"))
    if activity.get("direction") and kind not in (ActivityType.call, ActivityType.email):
        errors.append(("body.direction", "only calls and emails have a direction"))
    if activity.get("outcome") and kind != ActivityType.call:
        errors.append(("body.outcome", "only calls have an outcome"))
    if activity["attendee_contact_ids"] and kind != ActivityType.meeting:
        errors.append(("body.attendee_contact_ids", "only meetings have attendees"))
    if errors:
        raise Invalid(f"These fields do not fit a {kind}.", errors)
