"""The timeline's SQL: one UNION ALL of per-kind branches, each reading its own index newest
first, merged by (occurred_at, kind rank, id) descending; then the details of one page's items.

A cursor names the last item shown: its time, its kind's rank and its id. Each branch turns that
into a condition its index can seek to, depending on how its rank compares with the cursor's
(same rank: the row is after (time, id); lower: at or before the time; higher: strictly before),
and reads at most `limit` rows. So a page deep in a long timeline costs what the first one does,
and items sharing a timestamp are neither skipped nor repeated.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Uuid,
    bindparam,
    column,
    literal_column,
    select,
    tuple_,
    union_all,
)

from crm_api.activities.repository import activities, activity_contacts
from crm_api.companies.repository import companies
from crm_api.contacts.repository import contacts, lifecycle_changes
from crm_api.core.audit import audit_log
from crm_api.core.db import UTCDateTime
from crm_api.core.listing import SortKey, one_of, sort_key
from crm_api.deals.repository import deals, stage_history
from crm_api.pipelines.repository import stages
from crm_api.tasks.repository import tasks
from crm_api.users.repository import users


class TimelineKind(StrEnum):
    # Declaration order is the rank: at one instant, later kinds are listed first.
    field_changed = "field_changed"
    lifecycle_changed = "lifecycle_changed"
    stage_changed = "stage_changed"
    task_created = "task_created"
    task_completed = "task_completed"
    activity = "activity"


RANK = {kind: rank for rank, kind in enumerate(TimelineKind)}
KIND_OF_RANK = dict(enumerate(TimelineKind))


class RecordType(StrEnum):
    contact = "contact"
    company = "company"
    deal = "deal"


@dataclass(frozen=True)
class Branch:
    """Where one kind of item comes from: its time and id columns and its rows' condition."""

    occurred_at: Any
    item_id: Any
    where: Callable[[], list[ColumnElement[bool]]]


def _record() -> Any:
    return bindparam("record_id", type_=Uuid())


def _activities_of_company() -> list[ColumnElement[bool]]:
    # A company's timeline has its own activities and those of its contacts and deals.
    of_contacts = (
        select(activity_contacts.c.activity_id)
        .join(contacts, contacts.c.id == activity_contacts.c.contact_id)
        .where(contacts.c.company_id == _record(), activity_contacts.c.live)
    )
    of_deals = select(deals.c.id).where(deals.c.company_id == _record())
    return [
        activities.c.archived_at.is_(None),
        (activities.c.company_id == _record())
        | activities.c.deal_id.in_(of_deals)
        | activities.c.id.in_(of_contacts),
    ]


def _task_branches(link: Any) -> dict[TimelineKind, Branch]:
    live = tasks.c.archived_at.is_(None)
    return {
        TimelineKind.task_created: Branch(
            tasks.c.created_at, tasks.c.id, lambda: [link == _record(), live]
        ),
        TimelineKind.task_completed: Branch(
            tasks.c.completed_at,
            tasks.c.id,
            lambda: [link == _record(), live, tasks.c.completed_at.is_not(None)],
        ),
    }


def _field_changes(record_type: RecordType) -> Branch:
    return Branch(
        audit_log.c.occurred_at,
        audit_log.c.id,
        lambda: [
            audit_log.c.entity_type == record_type.value,
            audit_log.c.entity_id == _record(),
            audit_log.c.action == "updated",
        ],
    )


BRANCHES: dict[RecordType, dict[TimelineKind, Branch]] = {
    RecordType.contact: {
        TimelineKind.activity: Branch(
            activity_contacts.c.occurred_at,
            activity_contacts.c.activity_id,
            lambda: [activity_contacts.c.contact_id == _record(), activity_contacts.c.live],
        ),
        **_task_branches(tasks.c.contact_id),
        TimelineKind.lifecycle_changed: Branch(
            lifecycle_changes.c.changed_at,
            lifecycle_changes.c.id,
            lambda: [lifecycle_changes.c.contact_id == _record()],
        ),
        TimelineKind.field_changed: _field_changes(RecordType.contact),
    },
    RecordType.company: {
        TimelineKind.activity: Branch(
            activities.c.occurred_at, activities.c.id, _activities_of_company
        ),
        **_task_branches(tasks.c.company_id),
        TimelineKind.field_changed: _field_changes(RecordType.company),
    },
    RecordType.deal: {
        TimelineKind.activity: Branch(
            activities.c.occurred_at,
            activities.c.id,
            lambda: [activities.c.deal_id == _record(), activities.c.archived_at.is_(None)],
        ),
        **_task_branches(tasks.c.deal_id),
        TimelineKind.stage_changed: Branch(
            stage_history.c.changed_at,
            stage_history.c.id,
            lambda: [stage_history.c.deal_id == _record()],
        ),
        TimelineKind.field_changed: _field_changes(RecordType.deal),
    },
}

RECORD_TABLES = {RecordType.contact: contacts, RecordType.company: companies,
                 RecordType.deal: deals}  # fmt: skip
EXISTS = {
    record_type: select(table.c.id).where(table.c.id == bindparam("id"))
    for record_type, table in RECORD_TABLES.items()
}

CURSOR_KEY: SortKey = sort_key(
    column("occurred_at", UTCDateTime()), column("kind_rank", Integer()), column("item_id", Uuid())
)


def _cursor_condition(branch: Branch, rank: int, cursor_rank: int | None) -> list[Any]:
    if cursor_rank is None:
        return []
    at = bindparam("cursor_0", type_=UTCDateTime())
    if rank == cursor_rank:
        after = tuple_(at, bindparam("cursor_2", type_=Uuid()))
        return [tuple_(branch.occurred_at, branch.item_id) < after]
    if rank < cursor_rank:
        return [branch.occurred_at <= at]
    return [branch.occurred_at < at]


def kinds_of(record_type: RecordType, wanted: set[TimelineKind]) -> tuple[TimelineKind, ...]:
    """The wanted kinds this record type has, in rank order (one statement per such set)."""
    return tuple(kind for kind in TimelineKind if kind in wanted and kind in BRANCHES[record_type])


@cache
def page_statement(
    record_type: RecordType, kinds: tuple[TimelineKind, ...], cursor_rank: int | None
) -> Select[Any]:
    """Built once per shape (record type, `kinds_of`, the cursor's kind), so the raw path
    compiles it once."""
    members = []
    for kind in kinds:
        branch, rank = BRANCHES[record_type][kind], RANK[kind]
        inner = (
            select(
                branch.occurred_at.label("occurred_at"),
                literal_column(str(rank), Integer()).label("kind_rank"),
                branch.item_id.label("item_id"),
            )
            .where(*branch.where(), *_cursor_condition(branch, rank, cursor_rank))
            .order_by(branch.occurred_at.desc(), branch.item_id.desc())
            .limit(bindparam("limit"))
            .subquery(kind.value)
        )
        members.append(select(inner))
    merged = union_all(*members).subquery("timeline")
    return (
        select(merged)
        .order_by(merged.c.occurred_at.desc(), merged.c.kind_rank.desc(), merged.c.item_id.desc())
        .limit(bindparam("limit"))
    )


# -- the details of a page's items, by kind ------------------------------------------------------

_from_stage = stages.alias("from_stage")
_to_stage = stages.alias("to_stage")


SOURCE_OF = {kind: kind for kind in TimelineKind} | {
    TimelineKind.task_completed: TimelineKind.task_created
}
"""Kinds read from the same rows share one details query: a task's creation and completion
are one row."""


@cache
def details_statement(source: TimelineKind, postgres: bool) -> Select[Any]:
    """The rows behind a page's items of the kinds whose `SOURCE_OF` is `source`, by `:ids`."""
    if source is not SOURCE_OF[source]:
        raise ValueError(f"{source} items are read with {SOURCE_OF[source]} details")
    kind = source
    if kind is TimelineKind.activity:
        return select(activities).where(one_of(activities.c.id, "ids", postgres))
    if kind is TimelineKind.task_created:
        return select(tasks).where(one_of(tasks.c.id, "ids", postgres))
    if kind is TimelineKind.stage_changed:
        return (
            select(
                stage_history,
                _from_stage.c.name.label("from_stage_name"),
                _to_stage.c.name.label("to_stage_name"),
            )
            .outerjoin(_from_stage, _from_stage.c.id == stage_history.c.from_stage_id)
            .outerjoin(_to_stage, _to_stage.c.id == stage_history.c.to_stage_id)
            .where(one_of(stage_history.c.id, "ids", postgres))
        )
    if kind is TimelineKind.lifecycle_changed:
        return select(lifecycle_changes).where(one_of(lifecycle_changes.c.id, "ids", postgres))
    return select(audit_log).where(one_of(audit_log.c.id, "ids", postgres))


@cache
def activity_contacts_statement(postgres: bool) -> Select[Any]:
    return select(activity_contacts).where(one_of(activity_contacts.c.activity_id, "ids", postgres))


@cache
def actors_statement(postgres: bool) -> Select[Any]:
    return select(users.c.id, users.c.name).where(one_of(users.c.id, "ids", postgres))
