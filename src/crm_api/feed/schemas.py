from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from crm_api.core.schemas import ReadModel


class EventRead(ReadModel):
    id: UUID = Field(description="Stable across retries of a webhook delivery of this event.")
    type: str = Field(description="`<entity>.<action>`, e.g. `deal.won`, `contact.updated`.")
    occurred_at: datetime
    sequence: int = Field(description="Position in the feed: increases along it, never reused.")
    entity_type: str
    entity_id: UUID
    changed_fields: list[str] | None = Field(
        description="For `*.updated`: the fields that changed; otherwise null."
    )
    data: dict[str, Any] = Field(
        description="The resource as the API returned it after the change."
    )


class EventPage(BaseModel):
    data: list[EventRead]
    next_cursor: str = Field(
        description="Pass as `after` for what follows; set on every page, also an empty one."
    )


class FeedCursor(BaseModel):
    cursor: str = Field(description="The end of the feed now: `after` for only newer events.")
