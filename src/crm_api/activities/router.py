from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from crm_api.activities.models import ActivityType
from crm_api.activities.schemas import ActivityCreate, ActivityRead, ActivityUpdate
from crm_api.activities.service import ActivityService
from crm_api.core.schemas import UTCInstant
from crm_api.deps import TimeRangeFilters, record_service
from crm_api.routing import PrefixRouter, add_record_routes

router = PrefixRouter(prefix="/v1/activities", tags=["activities"])


async def activity_filters(
    ranges: TimeRangeFilters,
    type: ActivityType | None = None,
    logged_by: UUID | None = None,
    contact_id: UUID | None = None,
    company_id: UUID | None = None,
    deal_id: UUID | None = None,
    occurred_after: Annotated[UTCInstant | None, Query(description="occurred_at ≥ this")] = None,
    occurred_before: Annotated[UTCInstant | None, Query(description="occurred_at < this")] = None,
) -> dict[str, Any]:
    return {
        **ranges,
        "type": type,
        "logged_by": logged_by,
        "contact_id": contact_id,
        "company_id": company_id,
        "deal_id": deal_id,
        "occurred_after": occurred_after,
        "occurred_before": occurred_before,
    }


add_record_routes(
    router,
    resource="activities",
    singular="activity",
    service=record_service(ActivityService),
    create=ActivityCreate,
    update=ActivityUpdate,
    read=ActivityRead,
    filters=activity_filters,
)
