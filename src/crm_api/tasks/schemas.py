from datetime import datetime
from uuid import UUID

from pydantic import Field

from crm_api.core.schemas import InputModel, LongText, Name, NotNullable, ReadModel, UTCInstant
from crm_api.tasks.models import Priority, TaskStatus

LINK = "At most one of contact_id, company_id and deal_id."


class TaskCreate(InputModel):
    title: Name
    notes: LongText | None = None
    due_at: UTCInstant | None = None
    priority: Priority = Priority.normal
    status: TaskStatus = TaskStatus.open
    assignee_id: UUID | None = Field(default=None, description="Defaults to the creator.")
    contact_id: UUID | None = Field(default=None, description=LINK)
    company_id: UUID | None = Field(default=None, description=LINK)
    deal_id: UUID | None = Field(default=None, description=LINK)


class TaskUpdate(NotNullable):
    not_null = frozenset({"title", "priority", "status", "assignee_id"})

    title: Name | None = None
    notes: LongText | None = None
    due_at: UTCInstant | None = None
    priority: Priority | None = None
    status: TaskStatus | None = Field(
        default=None, description="`done` sets completed_at; leaving `done` clears it."
    )
    assignee_id: UUID | None = None
    contact_id: UUID | None = Field(default=None, description=LINK)
    company_id: UUID | None = Field(default=None, description=LINK)
    deal_id: UUID | None = Field(default=None, description=LINK)


class TaskRead(ReadModel):
    id: UUID
    title: str
    notes: str | None
    due_at: datetime | None
    priority: Priority
    status: TaskStatus
    completed_at: datetime | None
    completed_by: UUID | None
    assignee_id: UUID
    contact_id: UUID | None
    company_id: UUID | None
    deal_id: UUID | None
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class NextTask(ReadModel):
    """The earliest open task by due date (undated last), embedded in contacts and deals."""

    id: UUID
    title: str
    due_at: datetime | None
    priority: Priority
    assignee_id: UUID
