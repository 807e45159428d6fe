from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import Field, field_validator
from pydantic import StringConstraints as Str

from crm_api.core.schemas import InputModel, NotNullable, ReadModel, WithSecret
from crm_api.webhooks.targets import RefusedTarget, check_url

EVENT_TYPE_PATTERN = r"^[a-z_]+\.[a-z_]+$"
EventType = Annotated[str, Str(pattern=EVENT_TYPE_PATTERN, max_length=60)]
Url = Annotated[str, Str(strip_whitespace=True, min_length=1, max_length=2000)]
Description = Annotated[str, Str(strip_whitespace=True, max_length=500)]
EventTypes = Annotated[
    list[EventType],
    Field(
        max_length=100,
        description="The event types to send (`deal.won`, …); empty: every event.",
    ),
]


def _sendable(url: str | None) -> str | None:
    if url is not None:
        try:
            check_url(url)
        except RefusedTarget as refused:
            raise ValueError(str(refused)) from None
    return url


class WebhookCreate(InputModel):
    url: Url = Field(description="Where to POST events; private addresses are refused.")
    event_types: EventTypes = Field(default_factory=list)
    active: bool = True
    description: Description | None = None

    _url = field_validator("url")(_sendable)


class WebhookUpdate(NotNullable):
    not_null: ClassVar[frozenset[str]] = frozenset({"url", "event_types", "active"})

    url: Url | None = None
    event_types: EventTypes | None = None
    active: bool | None = Field(
        default=None, description="Turning a disabled subscription on clears why it was off."
    )
    description: Description | None = None

    _url = field_validator("url")(_sendable)


class WebhookRead(ReadModel):
    id: UUID
    url: str
    event_types: list[str]
    active: bool
    description: str | None
    disabled_reason: str | None = Field(description="Why the worker turned it off, if it did.")
    failing_since: datetime | None = Field(description="First failure of the current streak.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the rotated-out secret signs too."
    )
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookWithSecret(WebhookRead, WithSecret):
    secret: str = Field(
        description="`whsec_…`: shown only now (an idempotent replay of this response leaves it "
        "out); verify signatures with it."
    )


class SecretRotation(InputModel):
    overlap_hours: float | None = Field(
        default=None,
        ge=0,
        le=720,
        description="How long the old secret keeps signing too; default "
        "`CRM_WEBHOOK_SECRET_OVERLAP_HOURS` (24).",
    )


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class AttemptRead(ReadModel):
    attempted_at: datetime
    status_code: int | None = Field(description="Null when no response came (see `error`).")
    latency_ms: int
    error: str | None


class DeliveryRead(ReadModel):
    id: UUID = Field(description="Sent as `webhook-id` on every attempt.")
    subscription_id: UUID
    event_id: UUID
    event_type: str
    event_sequence: int
    status: DeliveryStatus
    attempts: list[AttemptRead] = Field(description="Oldest first.")
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body sent: the event as the feed has it.")
