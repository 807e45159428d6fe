from typing import Annotated
from uuid import UUID

from fastapi import Path, Query
from starlette.responses import Response

from crm_api.core.errors import Invalid
from crm_api.core.listing import DEFAULT_LIMIT, MAX_LIMIT
from crm_api.core.openapi import READ
from crm_api.core.responses import JSONBody
from crm_api.core.schemas import SafeStr
from crm_api.deps import ReaderDep
from crm_api.routing import PrefixRouter
from crm_api.timeline.repository import RecordType, TimelineKind
from crm_api.timeline.schemas import TimelinePage
from crm_api.timeline.service import TimelineService

router = PrefixRouter()

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[
    SafeStr | None, Query(max_length=2000, description="`next_cursor` of the previous page.")
]
Kinds = Annotated[
    list[SafeStr] | None,
    Query(
        description="Only these kinds: repeat the parameter or separate with commas "
        f"({', '.join(TimelineKind)})."
    ),
]


def _kinds(values: list[str] | None) -> set[TimelineKind]:
    if not values:
        return set(TimelineKind)
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    unknown = names - set(TimelineKind)
    if unknown:
        raise Invalid(
            "Unknown timeline kinds.",
            [("query.kinds", f"unknown: {', '.join(sorted(unknown))}; "
              f"known: {', '.join(TimelineKind)}")],
        )  # fmt: skip
    return {TimelineKind(name) for name in names}


def _add_timeline(record_type: RecordType, resource: str) -> None:
    RecordId = Annotated[UUID, Path(alias=f"{record_type.value}_id")]  # noqa: N806

    @router.get(
        f"/v1/{resource}/{{{record_type.value}_id}}/timeline",
        operation_id=f"{resource}_timeline",
        response_model=TimelinePage,
        responses=READ,
        tags=[resource],
        summary=f"The {record_type.value}'s timeline, newest first",
    )
    async def timeline(
        record_id: RecordId,
        reader: ReaderDep,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        kinds: Kinds = None,
    ) -> Response:
        items, next_cursor = await TimelineService(reader).page(
            record_type, record_id, _kinds(kinds), limit, cursor
        )
        return JSONBody({"data": items, "next_cursor": next_cursor})


for _record_type, _resource in ((RecordType.contact, "contacts"),
                                (RecordType.company, "companies"),
                                (RecordType.deal, "deals")):  # fmt: skip
    _add_timeline(_record_type, _resource)
