from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query
from starlette.responses import Response

from crm_api.core.enums import StageKind
from crm_api.core.openapi import READ, WRITE, problems
from crm_api.core.responses import JSONBody, record_response
from crm_api.core.schemas import SafeStr, page_of, sent_fields
from crm_api.deals.schemas import (
    Board,
    DealContactInput,
    DealContactRead,
    DealCreate,
    DealMove,
    DealRead,
    DealStageHistory,
    DealUpdate,
    LineItemCreate,
    LineItemRead,
    LineItemUpdate,
)
from crm_api.deals.service import DealService
from crm_api.deps import IfMatch, TimeRangeFilters, record_service
from crm_api.routing import PrefixRouter, Upsert, add_record_routes, page_response

router = PrefixRouter(prefix="/v1/deals", tags=["deals"])
board_router = PrefixRouter(prefix="/v1/pipelines", tags=["pipelines"])

deal_service = record_service(DealService)
Deals = Annotated[DealService, Depends(deal_service)]
AmountBound = Annotated[
    Decimal | None,
    Query(ge=0, max_digits=18, decimal_places=4, description="Inclusive; in the deal's currency."),
]


async def deal_filters(
    ranges: TimeRangeFilters,
    pipeline_id: UUID | None = None,
    stage_id: UUID | None = None,
    status: StageKind | None = None,
    owner_id: UUID | None = None,
    company_id: UUID | None = None,
    contact_id: Annotated[UUID | None, Query(description="Deals this contact is on.")] = None,
    expected_close_from: Annotated[date | None, Query(description="Inclusive.")] = None,
    expected_close_to: Annotated[date | None, Query(description="Inclusive.")] = None,
    amount_min: AmountBound = None,
    amount_max: AmountBound = None,
    q: Annotated[
        SafeStr | None,
        Query(min_length=1, max_length=200, description="Case-insensitive prefix of a name word."),
    ] = None,
) -> dict[str, Any]:
    return {
        **ranges,
        "pipeline_id": pipeline_id,
        "stage_id": stage_id,
        "status": status,
        "owner_id": owner_id,
        "company_id": company_id,
        "contact_id": contact_id,
        "expected_close_from": expected_close_from,
        "expected_close_to": expected_close_to,
        "amount_min": amount_min,
        "amount_max": amount_max,
        "q": q,
    }


add_record_routes(
    router,
    resource="deals",
    singular="deal",
    service=deal_service,
    create=DealCreate,
    update=DealUpdate,
    read=DealRead,
    filters=deal_filters,
    upsert=Upsert(),
    searchable=True,
)


@router.post("/{deal_id}/move", operation_id="deals_move_stage", response_model=DealRead,
             responses=WRITE,
             summary="Move a deal to a stage (PATCH `stage_id` does the same)")  # fmt: skip
async def move_deal(deal_id: UUID, body: DealMove, deals: Deals, if_match: IfMatch) -> Response:
    return record_response(await deals.update(deal_id, sent_fields(body), if_match))


@router.get("/{deal_id}/stage-history", operation_id="deals_stage_history",
            response_model=DealStageHistory, responses=READ,
            summary="Every stage the deal entered, with time spent in each")  # fmt: skip
async def stage_history(deal_id: UUID, deals: Deals) -> Response:
    return JSONBody(await deals.stage_history(deal_id))


# -- contacts on a deal --------------------------------------------------------------------------


@router.get("/{deal_id}/contacts", operation_id="deals_list_contacts",
            response_model=page_of(DealContactRead), responses=READ,
            summary="The contacts on a deal, with their roles")  # fmt: skip
async def list_deal_contacts(deal_id: UUID, deals: Deals) -> Response:
    return page_response(await deals.list_contacts(deal_id), None, None)


@router.post("/{deal_id}/contacts", operation_id="deals_add_contact", status_code=201,
             response_model=DealContactRead,
             responses={200: {"description": "Already on the deal: its role is now `role`",
                              "model": DealContactRead}, **WRITE},
             summary="Put a contact on a deal with a role (or change its role)")  # fmt: skip
async def add_deal_contact(
    deal_id: UUID, body: DealContactInput, deals: Deals, if_match: IfMatch
) -> Response:
    link, created = await deals.add_contact(deal_id, body.contact_id, body.role, if_match)
    location = f"/v1/deals/{deal_id}/contacts/{body.contact_id}"
    return JSONBody(link, status_code=201 if created else 200, headers={"Location": location})


@router.get("/{deal_id}/contacts/{contact_id}", operation_id="deals_get_contact",
            response_model=DealContactRead, responses=READ,
            summary="One contact on a deal")  # fmt: skip
async def get_deal_contact(deal_id: UUID, contact_id: UUID, deals: Deals) -> Response:
    return JSONBody(await deals.get_contact(deal_id, contact_id))


@router.delete("/{deal_id}/contacts/{contact_id}", operation_id="deals_remove_contact",
               status_code=204, responses=WRITE,
               summary="Take a contact off a deal")  # fmt: skip
async def remove_deal_contact(
    deal_id: UUID, contact_id: UUID, deals: Deals, if_match: IfMatch
) -> Response:
    await deals.remove_contact(deal_id, contact_id, if_match)
    return Response(status_code=204)


# -- line items ----------------------------------------------------------------------------------


@router.get("/{deal_id}/line-items", operation_id="deals_list_line_items",
            response_model=page_of(LineItemRead), responses=READ,
            summary="A deal's line items, in position order")  # fmt: skip
async def list_line_items(deal_id: UUID, deals: Deals) -> Response:
    return page_response(await deals.list_line_items(deal_id), None, None)


@router.post("/{deal_id}/line-items", operation_id="deals_add_line_item", status_code=201,
             response_model=LineItemRead, responses=problems(400, 403, 404, 409, 413),
             summary="Add a line item (the deal's amount becomes the items' sum)")  # fmt: skip
async def add_line_item(deal_id: UUID, body: LineItemCreate, deals: Deals) -> Response:
    item = await deals.add_line_item(deal_id, body.model_dump())
    location = f"/v1/deals/{deal_id}/line-items/{item['id']}"
    return record_response(item, status_code=201, location=location)


@router.get("/{deal_id}/line-items/{line_item_id}", operation_id="deals_get_line_item",
            response_model=LineItemRead, responses=READ, summary="One line item")  # fmt: skip
async def get_line_item(deal_id: UUID, line_item_id: UUID, deals: Deals) -> Response:
    return record_response(await deals.get_line_item(deal_id, line_item_id))


@router.patch("/{deal_id}/line-items/{line_item_id}", operation_id="deals_update_line_item",
              response_model=LineItemRead, responses=WRITE,
              summary="Change a line item (only the fields sent)")  # fmt: skip
async def update_line_item(
    deal_id: UUID, line_item_id: UUID, body: LineItemUpdate, deals: Deals, if_match: IfMatch
) -> Response:
    item = await deals.update_line_item(deal_id, line_item_id, sent_fields(body), if_match)
    return record_response(item)


@router.delete("/{deal_id}/line-items/{line_item_id}", operation_id="deals_delete_line_item",
               status_code=204, responses=WRITE, summary="Remove a line item")  # fmt: skip
async def delete_line_item(
    deal_id: UUID, line_item_id: UUID, deals: Deals, if_match: IfMatch
) -> Response:
    await deals.delete_line_item(deal_id, line_item_id, if_match)
    return Response(status_code=204)


# -- the board -----------------------------------------------------------------------------------


@board_router.get("/{pipeline_id}/board", operation_id="pipelines_board", response_model=Board,
                  responses=READ,
                  summary="Per stage, in order: open deals' count, totals and first ones",
                  )  # fmt: skip
async def pipeline_board(
    pipeline_id: UUID,
    deals: Deals,
    limit: Annotated[int, Query(ge=1, le=100, description="Deals shown per stage.")] = 20,
    sort: Annotated[
        SafeStr | None, Query(max_length=40, description="A deal sort; default `-amount`.")
    ] = None,
    include_closed: Annotated[
        bool, Query(description="Also count and show the deals in won and lost stages.")
    ] = False,
) -> Response:
    return JSONBody(await deals.board(pipeline_id, limit, sort or "-amount", include_closed))
