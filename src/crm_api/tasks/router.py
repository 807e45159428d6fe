from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query
from starlette.responses import Response

from crm_api.core.errors import Invalid
from crm_api.core.ids import utcnow
from crm_api.core.openapi import WRITE
from crm_api.core.responses import record_response
from crm_api.core.schemas import SafeStr, UTCInstant
from crm_api.deps import CurrentPrincipal, IfMatch, TimeRangeFilters, record_service
from crm_api.routing import PrefixRouter, add_record_routes
from crm_api.tasks.models import TaskStatus
from crm_api.tasks.schemas import TaskCreate, TaskRead, TaskUpdate
from crm_api.tasks.service import TaskService

router = PrefixRouter(prefix="/v1/tasks", tags=["tasks"])

task_service = record_service(TaskService)
Tasks = Annotated[TaskService, Depends(task_service)]


async def task_filters(
    principal: CurrentPrincipal,
    ranges: TimeRangeFilters,
    assignee_id: Annotated[
        SafeStr | None,
        Query(max_length=36, description="A user id, or `me` for the caller."),
    ] = None,
    status: TaskStatus | None = None,
    overdue: Annotated[
        bool | None, Query(description="true: open and due before now; false: the others.")
    ] = None,
    due_after: Annotated[UTCInstant | None, Query(description="due_at ≥ this")] = None,
    due_before: Annotated[UTCInstant | None, Query(description="due_at < this")] = None,
    contact_id: UUID | None = None,
    company_id: UUID | None = None,
    deal_id: UUID | None = None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        **ranges,
        "assignee_id": _assignee(assignee_id, principal.user_id),
        "status": status,
        "overdue": now if overdue is True else None,
        "not_overdue": now if overdue is False else None,
        "due_after": due_after,
        "due_before": due_before,
        "contact_id": contact_id,
        "company_id": company_id,
        "deal_id": deal_id,
    }


def _assignee(value: str | None, me: UUID) -> UUID | None:
    if value is None or value == "me":
        return None if value is None else me
    try:
        return UUID(value)
    except ValueError:
        raise Invalid(
            "assignee_id is a user id or `me`.", [("query.assignee_id", "a UUID or `me`")]
        ) from None


add_record_routes(
    router,
    resource="tasks",
    singular="task",
    service=task_service,
    create=TaskCreate,
    update=TaskUpdate,
    read=TaskRead,
    filters=task_filters,
)


@router.post("/{task_id}/complete", operation_id="tasks_complete", response_model=TaskRead,
             responses=WRITE, summary="Mark a task done (sets completed_at)")  # fmt: skip
async def complete_task(task_id: UUID, tasks: Tasks, if_match: IfMatch) -> Response:
    return record_response(await tasks.update(task_id, {"status": TaskStatus.done}, if_match))


@router.post("/{task_id}/reopen", operation_id="tasks_reopen", response_model=TaskRead,
             responses=WRITE, summary="Open a done or cancelled task again")  # fmt: skip
async def reopen_task(task_id: UUID, tasks: Tasks, if_match: IfMatch) -> Response:
    return record_response(await tasks.update(task_id, {"status": TaskStatus.open}, if_match))
