"""Liveness and readiness probes."""

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from crm_api.core.errors import problem_response
from crm_api.core.migrations import current_revisions
from crm_api.core.openapi import problems
from crm_api.core.responses import JSONBody
from crm_api.deps import get_db
from crm_api.routing import PrefixRouter

router = PrefixRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get(
    "/healthz", operation_id="health_live", response_model=Health, summary="The process is up"
)
async def healthz() -> Response:
    return JSONBody({"status": "ok"})


@router.get(
    "/readyz",
    operation_id="health_ready",
    response_model=Health,
    responses=problems(503, authenticated=False),
    summary="The database is reachable and migrated to head",
)
async def readyz(request: Request) -> Response:
    heads: set[str] = request.app.state.migration_heads
    try:
        current = await current_revisions(get_db(request).engine)
    except (SQLAlchemyError, OSError):
        return problem_response(503, "not-ready", "The database is unreachable.")
    if current != heads:
        detail = f"Schema at {sorted(current) or 'nothing'}, code expects {sorted(heads)}."
        return problem_response(503, "not-ready", detail)
    return JSONBody({"status": "ok"})
