"""`/v1/events`: the change feed, for integrations that must see every change exactly once."""

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.responses import Response

from crm_api.core.enums import Role
from crm_api.core.errors import Invalid
from crm_api.core.openapi import problems
from crm_api.core.principal import Principal
from crm_api.core.responses import JSONBody
from crm_api.core.schemas import SafeStr
from crm_api.deps import ReaderDep, ReadPrincipal
from crm_api.feed.schemas import EventPage, FeedCursor
from crm_api.feed.service import FeedService
from crm_api.routing import PrefixRouter

router = PrefixRouter(prefix="/v1/events", tags=["events"])
MAX_TYPES = 50
EVENT_TYPE = r"[a-z_]+\.[a-z_]+"


async def _managers_only(principal: ReadPrincipal) -> Principal:
    # The feed carries every record and user change, like the audit log.
    principal.require_role(Role.admin, Role.manager)
    return principal


def _service(request: Request, reader: ReaderDep) -> FeedService:
    return FeedService(reader, request.app.state.settings.event_retention_days)


Service = Annotated[FeedService, Depends(_service)]
ManagersOnly = Annotated[Principal, Depends(_managers_only)]


@router.get(
    "",
    operation_id="events_list",
    response_model=EventPage,
    responses=problems(403, 410),
    summary="Follow the change feed",
    description="Committed changes in the order they became visible, oldest first. Follow "
    "`next_cursor` (it is set on every page) and you get every event exactly once: an event "
    "is placed in the feed only once its transaction has committed, after every event already "
    "placed. Events are kept `CRM_EVENT_RETENTION_DAYS` (30) days; a cursor from before "
    "that gets 410: resync, then continue from `GET /v1/events/cursor`. Managers and admins.",
)
async def list_events(
    _: ManagersOnly,
    service: Service,
    after: Annotated[
        SafeStr | None,
        Query(
            max_length=200,
            description="`next_cursor` of the previous page; none: from the oldest event kept.",
        ),
    ] = None,
    types: Annotated[
        str | None,
        Query(
            max_length=2000,
            pattern=rf"^{EVENT_TYPE}(,{EVENT_TYPE})*$",
            description="Only these event types, comma-separated, e.g. `deal.won,deal.lost`.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page.")] = 100,
) -> Response:
    wanted = sorted(set(types.split(","))) if types else None
    if wanted and len(wanted) > MAX_TYPES:
        raise Invalid(f"At most {MAX_TYPES} types.", [("query.types", "too many types")])
    data, next_cursor = await service.page(after, wanted, limit)
    return JSONBody({"data": data, "next_cursor": next_cursor})


@router.get(
    "/cursor",
    operation_id="events_cursor",
    response_model=FeedCursor,
    responses=problems(403),
    summary="The cursor at the end of the feed",
    description="Take it before a full resync, then follow the feed from it: nothing that "
    "changes during the resync is missed. Managers and admins.",
)
async def feed_cursor(_: ManagersOnly, service: Service) -> Response:
    return JSONBody({"cursor": await service.latest()})
