"""Declared error responses, and the OpenAPI document with the problem schemas in it."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from crm_api.core.errors import PROBLEM_MEDIA_TYPE, FieldError, Problem

_DESCRIPTIONS = {
    400: "The body is not readable (e.g. not UTF-8)",
    401: "Missing or invalid API key",
    403: "The caller's role or key scope does not allow this",
    404: "No such record",
    409: "Conflicts with the current state (uniqueness, archived record)",
    412: "If-Match names a stale version",
    410: "The cursor points to events past retention: resync, then take a new cursor",
    413: "Request body too large",
    422: "Invalid input; `errors` names each field",
    500: "Unexpected server error",
    503: "Not ready: the database is unreachable or not migrated",
}


def problems(*statuses: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the given error statuses, plus the ones every endpoint can return."""
    codes = sorted({*statuses, 500} | ({401, 422} if authenticated else set()))
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }


READ = problems(403, 404)
WRITE = problems(400, 403, 404, 409, 412, 413)
CREATE = problems(400, 403, 409, 413)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components["Problem"].pop("$defs", None)
    components["FieldError"] = FieldError.model_json_schema()
    return schema
