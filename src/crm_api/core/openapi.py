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
_PROBLEM = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_BUSY = {
    "description": "Busy: a deadlock, or a lock held past the lock timeout by concurrent writes; "
    "nothing was written. Retry after `Retry-After` seconds",
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    "content": _PROBLEM,
}


def problems(*statuses: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the given error statuses, plus the ones every endpoint can return (an
    authenticated one runs a transaction, which can be busy)."""
    codes = sorted({*statuses, 500} | ({401, 422} if authenticated else set()))
    declared: dict[int | str, dict[str, Any]] = {
        code: {"description": _DESCRIPTIONS[code], "content": _PROBLEM} for code in codes
    }
    if authenticated:
        declared[503] = _BUSY
    return declared


def download(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a file streamed with 200 (see `core.responses.Download`)."""
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": {"type": "string"}}},
            "headers": {
                "Content-Disposition": {
                    "description": '`attachment; filename="<name>-<UTC timestamp>.<extension>"`',
                    "schema": {"type": "string"},
                }
            },
        }
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
    _declare_idempotency(schema)
    return schema


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the same key with the same request within 24 h gets the "
    "first response again (with `Idempotent-Replayed: true`) instead of running twice; with "
    "another request, 422; while the first still runs, 409. A replay of a response that "
    "showed a secret once (a new API key or webhook secret) leaves the secret out. Per API "
    "key; 1 to 255 visible ASCII characters (400 otherwise).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_REPLAYED = {
    "description": "`true` when this is the stored response of an earlier request.",
    "schema": {"type": "string", "enum": ["true"]},
}


def _declare_idempotency(schema: dict[str, Any]) -> None:
    """Every write takes `Idempotency-Key` (see crm_api.idempotency.guard)."""
    extra = problems(400, 409)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
            responses = operation["responses"]
            for code, response in responses.items():
                if code.startswith("2"):
                    response.setdefault("headers", {})["Idempotent-Replayed"] = _REPLAYED
            for code, response in extra.items():
                responses.setdefault(str(code), response)
            operation["responses"] = dict(sorted(responses.items()))
