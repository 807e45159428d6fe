"""The transactional outbox: one event per committed change, in the change's transaction."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, JSONType, UTCDateTime, table_of
from crm_api.core.ids import uuid7


class Event(Base):
    __tablename__ = "events"

    sequence: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[UUID] = mapped_column(Uuid)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_fields: Mapped[list[str] | None] = mapped_column(JSONType)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)

    __table_args__ = (Index("ix_events_type_sequence", "type", "sequence"),)


events = table_of(Event)


def event_row(
    *,
    type: str,
    entity_type: str,
    entity_id: UUID,
    data: dict[str, Any],
    at: datetime,
    changed_fields: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "type": type,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "occurred_at": at,
        "changed_fields": changed_fields,
        "data": data,
    }
