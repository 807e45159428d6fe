from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field

from crm_api.activities.models import ActivityType, CallOutcome, Direction
from crm_api.core.schemas import InputModel, NotNullable, ReadModel, ShortText, UTCInstant

BODY_MAX_BYTES = 64 * 1024


def _body_size(value: str) -> str:
    if len(value.encode("utf-8")) > BODY_MAX_BYTES:
        raise ValueError(f"must be at most {BODY_MAX_BYTES} bytes (64 KiB) of UTF-8")
    return value


def _distinct(value: list[UUID]) -> list[UUID]:
    if len(set(value)) != len(value):
        raise ValueError("must not repeat an id")
    return value


Body = Annotated[str, AfterValidator(_body_size)]
ContactIds = Annotated[list[UUID], Field(max_length=100), AfterValidator(_distinct)]

LINKS = "An activity links to at least one contact, company or deal; each must be live."


class ActivityCreate(InputModel):
    type: ActivityType
    subject: ShortText | None = None
    body: Body | None = Field(default=None, description="At most 64 KiB of UTF-8.")
    occurred_at: UTCInstant | None = Field(
        default=None, description="Default: now. Only meetings may be in the future."
    )
    duration_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    direction: Direction | None = Field(default=None, description="Calls and emails only.")
    outcome: CallOutcome | None = Field(default=None, description="Calls only.")
    contact_ids: ContactIds = Field(default_factory=list, description=LINKS)
    attendee_contact_ids: ContactIds = Field(
        default_factory=list, description="Meetings only; attendees count as linked contacts."
    )
    company_id: UUID | None = None
    deal_id: UUID | None = None
    logged_by: UUID | None = Field(default=None, description="Defaults to the caller.")


class ActivityUpdate(NotNullable):
    not_null = frozenset(
        {"type", "occurred_at", "contact_ids", "attendee_contact_ids", "logged_by"}
    )

    type: ActivityType | None = None
    subject: ShortText | None = None
    body: Body | None = None
    occurred_at: UTCInstant | None = None
    duration_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)
    direction: Direction | None = None
    outcome: CallOutcome | None = None
    contact_ids: ContactIds | None = Field(default=None, description="Replaces the list.")
    attendee_contact_ids: ContactIds | None = Field(default=None, description="Replaces the list.")
    company_id: UUID | None = None
    deal_id: UUID | None = None
    logged_by: UUID | None = None


class ActivityRead(ReadModel):
    id: UUID
    type: ActivityType
    subject: str | None
    body: str | None
    occurred_at: datetime
    duration_seconds: int | None
    direction: Direction | None
    outcome: CallOutcome | None
    contact_ids: list[UUID]
    attendee_contact_ids: list[UUID]
    company_id: UUID | None
    deal_id: UUID | None
    logged_by: UUID
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
