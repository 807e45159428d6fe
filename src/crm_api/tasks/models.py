from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, RecordColumns, UTCDateTime, live_index
from crm_api.core.enums import sql_in


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"


PRIORITY_RANK = {Priority.high: 0, Priority.normal: 1, Priority.low: 2}
"""Ascending rank sorts high first."""


class TaskStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


_LINKS = ("contact", "company", "deal")
_COMPLETED = text("completed_at IS NOT NULL")
_ONE_LINK = " + ".join(
    f"(CASE WHEN {column} IS NULL THEN 0 ELSE 1 END)"
    for column in ("contact_id", "company_id", "deal_id")
)


class Task(RecordColumns, Base):
    __tablename__ = "tasks"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[str] = mapped_column(String(10))
    priority_rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("users.id"))
    assignee_id: Mapped[UUID] = mapped_column(Uuid, ForeignKey("users.id"))
    contact_id: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("contacts.id"))
    company_id: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("companies.id"))
    deal_id: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("deals.id"))

    __table_args__ = (
        CheckConstraint(f"priority {sql_in(Priority)}", name="priority"),
        CheckConstraint(f"status {sql_in(TaskStatus)}", name="status"),
        CheckConstraint(f"{_ONE_LINK} <= 1", name="one_link"),
        live_index("ix_tasks_live_due", "due_at", "priority_rank", "id"),
        live_index("ix_tasks_live_assignee_due", "assignee_id", "due_at", "priority_rank", "id"),
        *(Index(f"ix_tasks_{link}", f"{link}_id", "created_at", "id") for link in _LINKS),
        # A record's timeline reads its completed tasks newest first.
        *(
            Index(
                f"ix_tasks_{link}_completed",
                f"{link}_id",
                "completed_at",
                "id",
                postgresql_where=_COMPLETED,
                sqlite_where=_COMPLETED,
            )
            for link in _LINKS
        ),
    )
