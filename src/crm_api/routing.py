"""Routers, and the routes every archivable record resource has, declared once.

A resource passes its service dependency, its Create/Update/Read schemas and its filter
dependency; the handlers below stay two lines each and identical across resources.
"""

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, create_model
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from crm_api.core.errors import Invalid
from crm_api.core.filters import SearchRequest
from crm_api.core.listing import ListParams
from crm_api.core.openapi import CREATE, READ, WRITE, problems
from crm_api.core.records import RecordService
from crm_api.core.responses import JSONBody, record_response
from crm_api.core.schemas import (
    BatchUpsertResult,
    InputModel,
    SafeStr,
    UpsertOutcome,
    page_of,
    sent_fields,
)
from crm_api.core.upsert import MAX_ITEMS, upsert_many
from crm_api.deps import IfMatch, ListParamsDep
from crm_api.idempotency.guard import captures_response


class PrefixRouter(APIRouter):
    """An APIRouter that rejects a path outside its prefix with one string comparison, and
    whose write endpoints take part in idempotency (`crm_api.idempotency.guard`).

    FastAPI tries the routers of an app in turn, and every route of each in turn; each try costs
    several microseconds. Without this, a request to the last router paid for trying every route
    of all the others first (a fifth of a metrics request's time in Python)."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        """Write endpoints hand their response to the request's Idempotency-Key claim."""
        methods = set(kwargs.get("methods") or ())
        if methods - {"GET", "HEAD", "OPTIONS"}:
            endpoint = captures_response(endpoint)
        super().add_api_route(path, endpoint, **kwargs)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Under a root_path (behind a proxy) the path carries it: leave those to the full match.
        if not scope["path"].startswith(self.prefix) and not scope.get("root_path"):
            return Match.NONE, {}
        return super().matches(scope)


CUSTOM_FIELD_PARAMETERS = (
    "Custom fields filter as `custom_fields.<key>=<value>` (equality; a multi_enum field "
    "holding the option) and sort as `sort=custom_fields.<key>` (or `-custom_fields.<key>`)."
)
SEARCH_DESCRIPTION = (
    "Filters on any field (columns, `custom_fields.<key>`, `company.<field>`, `owner.<field>`) "
    "combined with `and` / `or`, and full-text `query` over names and emails (and the "
    "company's name and domain) ranked by relevance. Pages with keyset cursors over the whole "
    "result: there is no cap. A record is found as soon as its write has returned."
)
MAX_CUSTOM_PARAMETERS = 20


def custom_field_parameters(request: Request) -> dict[str, str]:
    """The list's `custom_fields.<key>=<value>` query parameters."""
    found = {
        name: value
        for name, value in request.query_params.items()
        if name.startswith("custom_fields.")
    }
    if len(found) > MAX_CUSTOM_PARAMETERS:
        raise Invalid(
            "Too many custom field filters.",
            [("query", f"at most {MAX_CUSTOM_PARAMETERS}; use search for more")],
        )
    return found


def page_response(
    data: list[dict[str, Any]], next_cursor: str | None, total: int | None
) -> JSONBody:
    body: dict[str, Any] = {"data": data, "next_cursor": next_cursor}
    if total is not None:
        body["total"] = total
    return JSONBody(body)


@dataclass(frozen=True)
class Upsert:
    """A resource's batch upsert: items match on `external_id`, else on `natural_key` (a
    contact's email, a company's domain) when there is one."""

    natural_key: str | None = None


def add_record_routes(
    router: APIRouter,
    *,
    resource: str,
    singular: str,
    service: Callable[..., Awaitable[RecordService]],
    create: type[BaseModel],
    update: type[BaseModel],
    read: type[BaseModel],
    filters: Callable[..., Awaitable[dict[str, Any]]],
    upsert: Upsert | None = None,
    searchable: bool = False,
) -> None:
    """List, create, get, update, archive and restore on `router` for one resource; with
    `upsert`, also batch upsert and lookup by external id; when `searchable` (its kind has a
    SearchSpec), search, and custom field filters and sorts on the list."""
    ServiceDep = Annotated[RecordService, Depends(service)]  # noqa: N806
    FiltersDep = Annotated[dict[str, Any], Depends(filters)]  # noqa: N806
    RecordId = Annotated[UUID, Path(alias=f"{singular}_id")]  # noqa: N806
    Archived = Annotated[  # noqa: N806
        bool, Query(description="List archived records instead of live ones.")
    ]

    @router.get(
        "",
        operation_id=f"{resource}_list",
        response_model=page_of(read),
        responses=READ,
        summary=f"List {resource.replace('_', ' ')}",
        description=CUSTOM_FIELD_PARAMETERS if searchable else None,
    )
    async def list_records(
        request: Request,
        service: ServiceDep,
        params: ListParamsDep,
        filters: FiltersDep,
        archived: Archived = False,
    ) -> Response:
        custom = custom_field_parameters(request) if searchable else None
        page = await service.list_records(replace(params, archived=archived), filters, custom)
        return page_response(*page)

    if searchable:

        @router.post(
            "/search",
            operation_id=f"{resource}_search",
            response_model=page_of(read),
            responses=problems(403, 413),
            summary=f"Search {resource.replace('_', ' ')}",
            description=SEARCH_DESCRIPTION,
        )
        async def search_records(body: SearchRequest, service: ServiceDep) -> Response:
            params = ListParams(
                limit=body.limit,
                cursor=body.cursor,
                sort=body.sort,
                include_total=body.include_total,
                archived=body.archived,
            )
            return page_response(*await service.search(params, body.tree(), body.query))

    @router.post(
        "",
        operation_id=f"{resource}_create",
        status_code=201,
        response_model=read,
        responses=CREATE,
        summary=f"Create a {singular.replace('_', ' ')}",
    )
    async def create_record(body: create, service: ServiceDep) -> Response:  # type: ignore[valid-type]
        record = await service.create(body.model_dump())  # type: ignore[attr-defined]
        location = f"{service.kind.path}/{record['id']}"
        return record_response(record, status_code=201, location=location)

    @router.get(
        f"/{{{singular}_id}}",
        operation_id=f"{resource}_get",
        response_model=read,
        responses=READ,
        summary=f"Get a {singular.replace('_', ' ')}",
    )
    async def get_record(record_id: RecordId, service: ServiceDep) -> Response:
        return record_response(await service.get(record_id))

    @router.patch(
        f"/{{{singular}_id}}",
        operation_id=f"{resource}_update",
        response_model=read,
        responses=WRITE,
        summary=f"Update a {singular.replace('_', ' ')} (only the fields sent)",
    )
    async def update_record(
        record_id: RecordId,
        body: update,  # type: ignore[valid-type]
        service: ServiceDep,
        if_match: IfMatch,
    ) -> Response:
        changes = sent_fields(body)
        return record_response(await service.update(record_id, changes, if_match))

    @router.delete(
        f"/{{{singular}_id}}",
        operation_id=f"{resource}_archive",
        status_code=204,
        responses=WRITE,
        summary=f"Archive a {singular.replace('_', ' ')} (restorable)",
    )
    async def archive_record(
        record_id: RecordId, service: ServiceDep, if_match: IfMatch
    ) -> Response:
        await service.archive(record_id, if_match)
        return Response(status_code=204)

    @router.post(
        f"/{{{singular}_id}}/restore",
        operation_id=f"{resource}_restore",
        response_model=read,
        responses=WRITE,
        summary=f"Restore an archived {singular.replace('_', ' ')}",
    )
    async def restore_record(record_id: RecordId, service: ServiceDep) -> Response:
        return record_response(await service.restore(record_id))

    if upsert is not None:
        _add_upsert_routes(router, resource, singular, service, create, update, read, upsert)


def _add_upsert_routes(
    router: APIRouter,
    resource: str,
    singular: str,
    service: Callable[..., Awaitable[RecordService]],
    create: type[BaseModel],
    update: type[BaseModel],
    read: type[BaseModel],
    upsert: Upsert,
) -> None:
    """`POST …/batch/upsert` and `GET …/by-external-id/{external_id}` for one resource."""
    ServiceDep = Annotated[RecordService, Depends(service)]  # noqa: N806
    natural_key = upsert.natural_key
    body_model = create_model(
        f"{singular.title()}BatchUpsert",
        items=(list[create], Field(min_length=1, max_length=MAX_ITEMS)),  # type: ignore[valid-type]
        __base__=InputModel,
    )
    matched_on = "`external_id`" + (f", else `{natural_key}`" if natural_key else "")

    @router.post(
        "/batch/upsert",
        operation_id=f"{resource}_batch_upsert",
        response_model=BatchUpsertResult,
        responses=CREATE,
        summary=f"Create or update up to {MAX_ITEMS} {resource} in one transaction",
        description=f"Each item is matched on {matched_on} among live {resource}: no match "
        "creates it, a match gets the fields the item sent. All or nothing: an invalid item "
        "fails the call, and its errors name it (`body.items.3.email`).",
    )
    async def batch_upsert(body: body_model, service: ServiceDep) -> Response:
        results = await upsert_many(service, body.items, natural_key, update)  # type: ignore[attr-defined]
        counts = Counter(result.result for result in results)
        rows = [{"index": r.index, "id": r.id, "result": r.result} for r in results]
        return JSONBody({"results": rows} | {o.value: counts[o] for o in UpsertOutcome})

    @router.get(
        "/by-external-id/{external_id}",
        operation_id=f"{resource}_get_by_external_id",
        response_model=read,
        responses=READ,
        summary=f"Get the live {singular} with this external_id",
    )
    async def get_by_external_id(
        external_id: Annotated[SafeStr, Path(max_length=200)], service: ServiceDep
    ) -> Response:
        return record_response(await service.get_by_external_id(external_id))
