from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query
from starlette.responses import Response

from crm_api.core.openapi import CREATE, READ, WRITE
from crm_api.core.responses import record_response
from crm_api.core.schemas import page_of, sent_fields
from crm_api.deals.service import DealService
from crm_api.deps import ContextDep, IfMatch
from crm_api.pipelines.schemas import (
    PipelineCreate,
    PipelineRead,
    PipelineUpdate,
    StageCreate,
    StageOrder,
    StageUpdate,
)
from crm_api.pipelines.service import PipelineService
from crm_api.routing import PrefixRouter, page_response

router = PrefixRouter(prefix="/v1/pipelines", tags=["pipelines"])


async def _service(context: ContextDep) -> PipelineService:
    deals = DealService(context.session, context.reader, context.principal, context.users())
    return PipelineService(context.session, context.reader, context.principal, deals)


Pipelines = Annotated[PipelineService, Depends(_service)]


@router.get("", operation_id="pipelines_list", response_model=page_of(PipelineRead), responses=READ,
            summary="List pipelines with their stages in order")  # fmt: skip
async def list_pipelines(service: Pipelines) -> Response:
    # Pipelines are few: one page, in the same envelope as every other list.
    return page_response(await service.list_pipelines(), None, None)


@router.post("", operation_id="pipelines_create", status_code=201, response_model=PipelineRead,
             responses=CREATE, summary="Create a pipeline (managers, admins)")  # fmt: skip
async def create_pipeline(body: PipelineCreate, service: Pipelines) -> Response:
    stages = [stage.model_dump() for stage in body.stages]
    pipeline = await service.create(body.name, stages)
    location = f"/v1/pipelines/{pipeline['id']}"
    return record_response(pipeline, status_code=201, location=location)


@router.get("/{pipeline_id}", operation_id="pipelines_get", response_model=PipelineRead,
            responses=READ, summary="Get a pipeline")  # fmt: skip
async def get_pipeline(pipeline_id: UUID, service: Pipelines) -> Response:
    return record_response(await service.get(pipeline_id))


@router.patch("/{pipeline_id}", operation_id="pipelines_update", response_model=PipelineRead,
              responses=WRITE, summary="Rename a pipeline")  # fmt: skip
async def update_pipeline(
    pipeline_id: UUID, body: PipelineUpdate, service: Pipelines, if_match: IfMatch
) -> Response:
    return record_response(await service.rename(pipeline_id, body.name, if_match))


@router.post("/{pipeline_id}/stages", operation_id="pipelines_add_stage",
             response_model=PipelineRead, responses=WRITE,
             summary="Add a stage (at `position`, default last)")  # fmt: skip
async def add_stage(
    pipeline_id: UUID, body: StageCreate, service: Pipelines, if_match: IfMatch
) -> Response:
    return record_response(await service.add_stage(pipeline_id, body.model_dump(), if_match))


@router.patch("/{pipeline_id}/stages/{stage_id}", operation_id="pipelines_update_stage",
              response_model=PipelineRead, responses=WRITE,
              summary="Change a stage's name, probability or kind")  # fmt: skip
async def update_stage(
    pipeline_id: UUID, stage_id: UUID, body: StageUpdate, service: Pipelines, if_match: IfMatch
) -> Response:
    pipeline = await service.update_stage(pipeline_id, stage_id, sent_fields(body), if_match)
    return record_response(pipeline)


@router.post("/{pipeline_id}/stages/reorder", operation_id="pipelines_reorder_stages",
             response_model=PipelineRead, responses=WRITE,
             summary="Put all stages in a new order, in one call")  # fmt: skip
async def reorder_stages(
    pipeline_id: UUID, body: StageOrder, service: Pipelines, if_match: IfMatch
) -> Response:
    return record_response(await service.reorder(pipeline_id, body.stage_ids, if_match))


@router.delete("/{pipeline_id}/stages/{stage_id}", operation_id="pipelines_delete_stage",
               response_model=PipelineRead, responses=WRITE,
               summary="Delete a stage (409 while it holds deals, unless they move)")  # fmt: skip
async def delete_stage(
    pipeline_id: UUID,
    stage_id: UUID,
    service: Pipelines,
    if_match: IfMatch,
    move_deals_to: Annotated[
        UUID | None,
        Query(description="A stage of the same pipeline and kind that takes the stage's deals."),
    ] = None,
) -> Response:
    pipeline = await service.delete_stage(pipeline_id, stage_id, move_deals_to, if_match)
    return record_response(pipeline)
