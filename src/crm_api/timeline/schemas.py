"""Timeline items: one envelope, a `data` schema per kind (a discriminated union)."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from crm_api.activities.models import ActivityType, CallOutcome, Direction
from crm_api.core.enums import LifecycleStage
from crm_api.core.schemas import ReadModel
from crm_api.tasks.models import Priority, TaskStatus


class Actor(ReadModel):
    id: UUID
    name: str


class ActivityData(ReadModel):
    activity_id: UUID
    type: ActivityType
    subject: str | None
    body: str | None
    duration_seconds: int | None
    direction: Direction | None
    outcome: CallOutcome | None
    contact_ids: list[UUID]
    attendee_contact_ids: list[UUID]
    company_id: UUID | None
    deal_id: UUID | None


class TaskData(ReadModel):
    task_id: UUID
    title: str
    due_at: datetime | None
    priority: Priority
    status: TaskStatus
    assignee_id: UUID


class StageChangeData(ReadModel):
    deal_id: UUID
    pipeline_id: UUID
    from_stage_id: UUID | None
    from_stage_name: str | None
    to_stage_id: UUID
    to_stage_name: str | None = Field(description="Null if the stage was deleted since.")


class LifecycleChangeData(ReadModel):
    from_stage: LifecycleStage | None
    to_stage: LifecycleStage


class FieldChangeData(ReadModel):
    changes: dict[str, list[Any]] = Field(description="Field → [before, after].")


class _Item(ReadModel):
    id: UUID = Field(description="The source row's id; (kind, id) is unique in a timeline.")
    occurred_at: datetime
    actor: Actor | None = Field(description="Who did it (null for the system).")
    summary: str = Field(description="One line for people, e.g. `Call (connected): Intro`.")


class ActivityItem(_Item):
    kind: Literal["activity"]
    data: ActivityData


class TaskCreatedItem(_Item):
    kind: Literal["task_created"]
    data: TaskData


class TaskCompletedItem(_Item):
    kind: Literal["task_completed"]
    data: TaskData


class StageChangedItem(_Item):
    kind: Literal["stage_changed"]
    data: StageChangeData


class LifecycleChangedItem(_Item):
    kind: Literal["lifecycle_changed"]
    data: LifecycleChangeData


class FieldChangedItem(_Item):
    kind: Literal["field_changed"]
    data: FieldChangeData


TimelineItem = Annotated[
    ActivityItem
    | TaskCreatedItem
    | TaskCompletedItem
    | StageChangedItem
    | LifecycleChangedItem
    | FieldChangedItem,
    Field(discriminator="kind"),
]


class TimelinePage(BaseModel):
    data: list[TimelineItem] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
