"""The domain error tree and its RFC 9457 problem+json rendering."""

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://crm-api.dev/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. `body.email`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="A URI naming the kind of problem; stable, safe to switch on.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="For 422: every invalid field."
    )
    existing_id: str | None = Field(
        default=None, description="For a 409 uniqueness conflict: the record already holding it."
    )
    current_version: int | None = Field(
        default=None, description="For 412: the record's current version."
    )
    deal_count: int | None = Field(
        default=None, description="For a 409 on a stage that still holds deals: how many."
    )
    record_count: int | None = Field(
        default=None,
        description="For a 409 on removing enum options that records hold: how many records.",
    )
    merged_into_id: str | None = Field(
        default=None,
        description="For a 404 on a merged record (and a 409 on merging it again): the record "
        "it was merged into.",
    )


class DomainError(Exception):
    """Base of the errors a service raises; each maps to one HTTP status and problem type."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    slug = "internal"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(DomainError):
    status = HTTPStatus.BAD_REQUEST
    slug = "bad-request"


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    slug = "not-found"


class Conflict(DomainError):
    status = HTTPStatus.CONFLICT
    slug = "conflict"


class PreconditionFailed(DomainError):
    status = HTTPStatus.PRECONDITION_FAILED
    slug = "precondition-failed"


class Gone(DomainError):
    status = HTTPStatus.GONE
    slug = "cursor-expired"


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN
    slug = "forbidden"


class Unauthorized(DomainError):
    status = HTTPStatus.UNAUTHORIZED
    slug = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="crm-api"'}


class Busy(DomainError):
    """The database gave up on the request for concurrency's sake (a deadlock, a lock held past
    the lock timeout); its transaction rolled back, so a retry is safe."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    slug = "busy"
    headers = {"Retry-After": "1"}


class Invalid(DomainError):
    """A semantically invalid request; `errors` names the fields."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    slug = "validation"

    def __init__(self, detail: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(
            detail, errors=[{"field": field, "message": message} for field, message in errors]
        )


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_BASE + slug


def problem_response(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    body.update({key: value for key, value in extra.items() if value is not None})
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )
