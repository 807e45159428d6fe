from typing import Any

from crm_api.custom_fields.models import FieldType, ObjectType
from crm_api.custom_fields.schemas import CustomFieldCreate, CustomFieldRead, CustomFieldUpdate
from crm_api.custom_fields.service import CustomFieldService
from crm_api.deps import TimeRangeFilters, record_service
from crm_api.routing import PrefixRouter, add_record_routes

router = PrefixRouter(prefix="/v1/custom-fields", tags=["custom-fields"])


async def custom_field_filters(
    ranges: TimeRangeFilters,
    object_type: ObjectType | None = None,
    type: FieldType | None = None,
) -> dict[str, Any]:
    return {**ranges, "object_type": object_type, "type": type}


add_record_routes(
    router,
    resource="custom_fields",
    singular="custom_field",
    service=record_service(CustomFieldService),
    create=CustomFieldCreate,
    update=CustomFieldUpdate,
    read=CustomFieldRead,
    filters=custom_field_filters,
)
