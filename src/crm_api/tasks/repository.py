"""The only place with task SQL: its read shape, list filters and sorts, and the `next_task` that
contacts and deals embed."""

from typing import Any
from uuid import UUID

from sqlalchemy import Select, Table, bindparam, or_, select, update

from crm_api.core.db import table_of
from crm_api.core.listing import ListSpec, record_filters, sort_key
from crm_api.core.reader import Reader, Row
from crm_api.core.records import RecordKind
from crm_api.tasks.models import Task, TaskStatus

tasks = table_of(Task)

_open = tasks.c.status == TaskStatus.open.value
_overdue = _open & (tasks.c.due_at < bindparam("now"))

LISTING = ListSpec(
    table=tasks,
    filters={
        **record_filters(tasks),
        "assignee_id": lambda: tasks.c.assignee_id == bindparam("assignee_id"),
        "status": lambda: tasks.c.status == bindparam("status"),
        "overdue": lambda: _overdue,
        "not_overdue": lambda: or_(
            ~_open, tasks.c.due_at.is_(None), tasks.c.due_at >= bindparam("now")
        ),
        "due_after": lambda: tasks.c.due_at >= bindparam("due_after"),
        "due_before": lambda: tasks.c.due_at < bindparam("due_before"),
        "contact_id": lambda: tasks.c.contact_id == bindparam("contact_id"),
        "company_id": lambda: tasks.c.company_id == bindparam("company_id"),
        "deal_id": lambda: tasks.c.deal_id == bindparam("deal_id"),
    },
    sorts={
        "due_at": sort_key(tasks.c.due_at, tasks.c.priority_rank, tasks.c.id),
        "created_at": sort_key(tasks.c.created_at, tasks.c.id),
        "updated_at": sort_key(tasks.c.updated_at, tasks.c.id),
    },
    default_sort="due_at",
    archived_column=tasks.c.archived_at,
    binders={"overdue": lambda now: {"now": now}, "not_overdue": lambda now: {"now": now}},
)


def to_read(row: Row) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "priority_rank"}


TASK = RecordKind(
    entity_type="task",
    table=tasks,
    read=select(tasks).where(tasks.c.id == bindparam("id")),
    to_read=to_read,
    listing=LISTING,
    unique_keys=(),
    path="/v1/tasks",
    internal_columns=frozenset({"priority_rank"}),
    owner_column="assignee_id",
)

# -- next_task, for the records that embed it ----------------------------------------------------

NEXT_TASK_COLUMNS = (
    tasks.c.id,
    tasks.c.title,
    tasks.c.due_at,
    tasks.c.priority,
    tasks.c.assignee_id,
)
_NEXT = "next_task__"


def with_next_task(stmt: Select[Any], record: Table) -> Select[Any]:
    """`stmt` (a read of `record`) also selecting its next task's summary."""
    alias = tasks.alias("next_task")
    columns = [alias.c[column.key].label(_NEXT + column.key) for column in NEXT_TASK_COLUMNS]
    return stmt.add_columns(*columns).outerjoin(alias, alias.c.id == record.c.next_task_id)


_NEXT_LABELS = tuple((column.key, _NEXT + column.key) for column in NEXT_TASK_COLUMNS)


def pop_next_task(record: dict[str, Any]) -> None:
    """Replaces the `next_task__*` columns (and `next_task_id`) of a read row by `next_task`."""
    summary = {key: record.pop(label, None) for key, label in _NEXT_LABELS}
    record.pop("next_task_id", None)
    record["next_task"] = summary if summary["id"] is not None else None


_NEXT_TASK_SUMMARY = select(*NEXT_TASK_COLUMNS).where(tasks.c.id == bindparam("id"))


async def next_task_summary(reader: Reader, task_id: UUID | None) -> Row | None:
    """For a record's representation after a write (reads join it instead)."""
    return await reader.one(_NEXT_TASK_SUMMARY, {"id": task_id}) if task_id else None


def next_task_columns(summary: Row | None) -> Row:
    """A next task's summary (or none) in the `next_task__*` labels of a read row."""
    summary = summary or {}
    return {label: summary.get(key) for key, label in _NEXT_LABELS}


def refresh_next_task(record: Table, link: Any) -> Any:
    """UPDATE `record` SET next_task_id = its earliest open, live task by due date (undated
    last, then priority), for the ids bound as `:ids`."""
    earliest = (
        select(tasks.c.id)
        .where(link == record.c.id, _open, tasks.c.archived_at.is_(None))
        .order_by(tasks.c.due_at.asc().nulls_last(), tasks.c.priority_rank, tasks.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return (
        update(record)
        .where(record.c.id.in_(bindparam("ids", expanding=True)))
        .values(next_task_id=earliest)
    )
