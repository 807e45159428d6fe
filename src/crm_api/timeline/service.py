"""Reads one page of a record's timeline and dresses its items in the shared envelope."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from crm_api.core.errors import Invalid, NotFound
from crm_api.core.listing import decode_cursor, encode_cursor
from crm_api.core.reader import Reader, Row
from crm_api.timeline.repository import (
    CURSOR_KEY,
    EXISTS,
    KIND_OF_RANK,
    RANK,
    SOURCE_OF,
    RecordType,
    TimelineKind,
    activity_contacts_statement,
    actors_statement,
    details_statement,
    kinds_of,
    page_statement,
)

_CURSOR_SORT = "timeline"


class TimelineService:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.postgres = not reader.db.is_sqlite

    async def page(
        self,
        record_type: RecordType,
        record_id: UUID,
        kinds: set[TimelineKind],
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        if await self.reader.one(EXISTS[record_type], {"id": record_id}) is None:
            raise NotFound(f"No {record_type.value} has id {record_id}.")
        shown = kinds_of(record_type, kinds)
        if not shown:
            return [], None
        params: dict[str, Any] = {"record_id": record_id, "limit": limit + 1}
        cursor_rank = None
        if cursor:
            at, cursor_rank, item_id = decode_cursor(cursor, _CURSOR_SORT, CURSOR_KEY)
            if cursor_rank not in KIND_OF_RANK:
                raise Invalid("The cursor is not valid.", [("query.cursor", "unknown kind")])
            params.update(cursor_0=at, cursor_2=item_id)
        rows = await self.reader.all(page_statement(record_type, shown, cursor_rank), params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            values = [last["occurred_at"], last["kind_rank"], last["item_id"]]
            next_cursor = encode_cursor(_CURSOR_SORT, values)
        return await self._items(rows), next_cursor

    async def _items(self, rows: list[Row]) -> list[dict[str, Any]]:
        wanted: dict[TimelineKind, set[UUID]] = {}
        for row in rows:
            source = SOURCE_OF[KIND_OF_RANK[row["kind_rank"]]]
            wanted.setdefault(source, set()).add(row["item_id"])
        details: dict[TimelineKind, dict[UUID, Row]] = {}
        for kind, ids in wanted.items():
            found = await self.reader.all(
                details_statement(kind, self.postgres), {"ids": list(ids)}
            )
            details[kind] = {row["id"]: row for row in found}
        if TimelineKind.activity in details:
            await self._add_activity_contacts(details[TimelineKind.activity])
        items = [
            _ITEMS[kind](details[SOURCE_OF[kind]][row["item_id"]]) | {"kind": kind.value,
                                                          "occurred_at": row["occurred_at"]}
            for row in rows
            for kind in (KIND_OF_RANK[row["kind_rank"]],)
        ]  # fmt: skip
        await self._add_actors(items)
        return items

    async def _add_activity_contacts(self, activities: dict[UUID, Row]) -> None:
        for activity in activities.values():
            activity.update(contact_ids=[], attendee_contact_ids=[])
        stmt = activity_contacts_statement(self.postgres)
        for link in await self.reader.all(stmt, {"ids": list(activities)}):
            activity = activities[link["activity_id"]]
            if link["linked"]:
                activity["contact_ids"].append(link["contact_id"])
            if link["attendee"]:
                activity["attendee_contact_ids"].append(link["contact_id"])

    async def _add_actors(self, items: list[dict[str, Any]]) -> None:
        ids = {item["actor"] for item in items if item["actor"] is not None}
        names: dict[UUID, str] = {}
        if ids:
            rows = await self.reader.all(actors_statement(self.postgres), {"ids": list(ids)})
            names = {row["id"]: row["name"] for row in rows}
        for item in items:
            actor = item["actor"]
            item["actor"] = {"id": actor, "name": names[actor]} if actor in names else None


# -- one function per kind: the envelope's id, actor, summary and data from the source row -------


def _activity(row: Row) -> dict[str, Any]:
    label = row["type"].capitalize()
    if row["outcome"]:
        label += f" ({row['outcome'].replace('_', ' ')})"
    data = {key: row[key] for key in ("type", "subject", "body", "duration_seconds", "direction",
                                      "outcome", "contact_ids", "attendee_contact_ids",
                                      "company_id", "deal_id")}  # fmt: skip
    summary = f"{label}: {row['subject']}" if row["subject"] else label
    return _item(row["id"], row["logged_by"], summary, {"activity_id": row["id"], **data})


def _task(verb: str, actor_column: str) -> Callable[[Row], dict[str, Any]]:
    def item(row: Row) -> dict[str, Any]:
        data = {key: row[key] for key in ("title", "due_at", "priority", "status", "assignee_id")}
        summary = f"Task {verb}: {row['title']}"
        return _item(row["id"], row[actor_column], summary, {"task_id": row["id"], **data})

    return item


def _stage_change(row: Row) -> dict[str, Any]:
    to_name = row["to_stage_name"] or "a deleted stage"
    from_name = row["from_stage_name"] or ("a deleted stage" if row["from_stage_id"] else None)
    summary = f"Stage: {from_name} → {to_name}" if from_name else f"Stage: {to_name}"
    keys = ("deal_id", "pipeline_id", "from_stage_id", "from_stage_name", "to_stage_id",
            "to_stage_name")  # fmt: skip
    data = {key: row[key] for key in keys}
    return _item(row["id"], row["changed_by"], summary, data)


def _lifecycle_change(row: Row) -> dict[str, Any]:
    before, after = row["from_stage"], row["to_stage"]
    summary = f"Lifecycle: {before} → {after}" if before else f"Lifecycle: {after}"
    return _item(row["id"], row["changed_by"], summary, {"from_stage": before, "to_stage": after})


def _field_change(row: Row) -> dict[str, Any]:
    changes = row["changes"] or {}
    summary = "Changed " + ", ".join(sorted(changes))
    return _item(row["id"], row["actor_user_id"], summary, {"changes": changes})


def _item(item_id: UUID, actor: UUID | None, summary: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": item_id, "actor": actor, "summary": summary, "data": data}


_ITEMS: dict[TimelineKind, Callable[[Row], dict[str, Any]]] = {
    TimelineKind.activity: _activity,
    TimelineKind.task_created: _task("created", "created_by"),
    TimelineKind.task_completed: _task("completed", "completed_by"),
    TimelineKind.stage_changed: _stage_change,
    TimelineKind.lifecycle_changed: _lifecycle_change,
    TimelineKind.field_changed: _field_change,
}
assert set(_ITEMS) == set(RANK)
