"""`/v1/webhooks`: subscriptions, their secrets, and their delivery logs."""

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from starlette.responses import Response

from crm_api.core.openapi import CREATE, READ, WRITE
from crm_api.core.responses import JSONBody, record_response
from crm_api.core.schemas import page_of, sent_fields
from crm_api.deps import ContextDep, IfMatch, ListParamsDep
from crm_api.routing import PrefixRouter, page_response
from crm_api.webhooks.schemas import (
    DeliveryRead,
    DeliveryStatus,
    SecretRotation,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
)
from crm_api.webhooks.service import WebhookService

router = PrefixRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _service(request: Request, context: ContextDep) -> WebhookService:
    settings = request.app.state.settings
    return WebhookService(context.session, context.reader, context.principal, settings)


Service = Annotated[WebhookService, Depends(_service)]
Path = "/{subscription_id}"


@router.post(
    "",
    operation_id="webhooks_create",
    status_code=201,
    response_model=WebhookWithSecret,
    responses=CREATE,
    summary="Subscribe a URL to events (managers and admins); the secret is shown only now",
)
async def create_webhook(body: WebhookCreate, service: Service) -> Response:
    created = await service.create(body.model_dump())
    location = f"/v1/webhooks/{created['id']}"
    return record_response(created, status_code=201, location=location, shows_secret=True)


@router.get("", operation_id="webhooks_list", response_model=page_of(WebhookRead), responses=READ)
async def list_webhooks(
    service: Service, params: ListParamsDep, active: bool | None = None
) -> Response:
    return page_response(*await service.list_subscriptions(params, active))


@router.get(Path, operation_id="webhooks_get", response_model=WebhookRead, responses=READ)
async def get_webhook(subscription_id: UUID, service: Service) -> Response:
    return record_response(await service.get(subscription_id))


@router.patch(
    Path,
    operation_id="webhooks_update",
    response_model=WebhookRead,
    responses=WRITE,
    summary="Change a subscription (only the fields sent)",
)
async def update_webhook(
    subscription_id: UUID, body: WebhookUpdate, service: Service, if_match: IfMatch
) -> Response:
    return record_response(await service.update(subscription_id, sent_fields(body), if_match))


@router.delete(
    Path,
    operation_id="webhooks_delete",
    status_code=204,
    responses=WRITE,
    summary="Delete a subscription and its delivery log",
)
async def delete_webhook(subscription_id: UUID, service: Service) -> Response:
    await service.delete(subscription_id)
    return Response(status_code=204)


@router.post(
    f"{Path}/rotate-secret",
    operation_id="webhooks_rotate_secret",
    response_model=WebhookWithSecret,
    responses=WRITE,
    summary="A new secret, shown only now; the old one also signs for the overlap",
)
async def rotate_webhook_secret(
    subscription_id: UUID, body: SecretRotation, service: Service
) -> Response:
    rotated = await service.rotate_secret(subscription_id, body.overlap_hours)
    return record_response(rotated, shows_secret=True)


@router.get(
    f"{Path}/deliveries",
    operation_id="webhooks_deliveries",
    response_model=page_of(DeliveryRead),
    responses=READ,
    summary="The delivery log, newest first: every attempt with status, latency and error",
)
async def list_deliveries(
    subscription_id: UUID,
    service: Service,
    params: ListParamsDep,
    status: DeliveryStatus | None = None,
) -> Response:
    return page_response(*await service.deliveries(subscription_id, params, status))


@router.post(
    f"{Path}/deliveries/{{delivery_id}}/replay",
    operation_id="webhooks_replay_delivery",
    status_code=202,
    response_model=DeliveryRead,
    responses=WRITE,
    summary="Send one delivery again (same webhook-id), as soon as the worker runs",
)
async def replay_delivery(subscription_id: UUID, delivery_id: UUID, service: Service) -> Response:
    return JSONBody(await service.replay(subscription_id, delivery_id), status_code=202)
