from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query
from pydantic import Field
from starlette.responses import Response

from crm_api.core.audit import AUDIT_LIST
from crm_api.core.enums import Role
from crm_api.core.listing import run_list
from crm_api.core.openapi import READ
from crm_api.core.principal import Principal
from crm_api.core.schemas import ReadModel, SafeStr, page_of
from crm_api.deps import ListParamsDep, ReaderDep, ReadPrincipal
from crm_api.routing import PrefixRouter, page_response

router = PrefixRouter(prefix="/v1/audit-log", tags=["audit-log"])


class AuditEntryRead(ReadModel):
    id: UUID
    occurred_at: datetime
    actor_user_id: UUID | None
    actor_api_key_id: UUID | None
    action: str = Field(description="`created`, `updated`, `archived`, `restored`, …")
    entity_type: str
    entity_id: UUID
    changes: dict[str, list[Any]] = Field(description="`{field: [before, after]}`")
    request_id: str | None


async def _managers_only(principal: ReadPrincipal) -> Principal:
    principal.require_role(Role.admin, Role.manager)
    return principal


@router.get(
    "",
    operation_id="audit_log_list",
    response_model=page_of(AuditEntryRead),
    responses=READ,
    summary="Read the audit log (managers and admins), newest first",
)
async def list_audit_log(
    _: Annotated[Principal, Depends(_managers_only)],
    reader: ReaderDep,
    params: ListParamsDep,
    entity_type: Annotated[SafeStr | None, Query(max_length=40)] = None,
    entity_id: UUID | None = None,
    actor_user_id: UUID | None = None,
) -> Response:
    filters = {"entity_type": entity_type, "entity_id": entity_id, "actor_user_id": actor_user_id}
    result = await run_list(reader, AUDIT_LIST, params, filters)
    return page_response(result.rows, result.next_cursor, result.total)
