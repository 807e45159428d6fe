"""The transactional outbox: one event per committed change, in the change's transaction.

An event's `outbox_id` is its insert order, which is not its commit order: a transaction that
inserted an event early can commit after one that inserted later. Its `sequence`, its position
in the change feed, is therefore assigned only once it has committed (`crm_api.feed.sequencer`),
so the feed only ever grows at its end.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, JSONType, UTCDateTime, table_of
from crm_api.core.ids import uuid7

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    __tablename__ = "events"

    outbox_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    id: Mapped[UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[UUID] = mapped_column(Uuid)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_fields: Mapped[list[str] | None] = mapped_column(JSONType)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)

    # Readers of the feed see placed events only; an insert (not yet placed) skips these.
    __table_args__ = (
        Index(
            "uq_events_sequence",
            "sequence",
            unique=True,
            postgresql_where=sequence.is_not(None),
            sqlite_where=sequence.is_not(None),
        ),
        Index(
            "ix_events_type_sequence",
            "type",
            "sequence",
            postgresql_where=sequence.is_not(None),
            sqlite_where=sequence.is_not(None),
        ),
        # The sequencer's work list: committed events still without a feed position.
        Index(
            "ix_events_unsequenced",
            "outbox_id",
            postgresql_where=sequence.is_(None),
            sqlite_where=sequence.is_(None),
        ),
        Index("ix_events_occurred_at", "occurred_at"),
    )


class FeedState(Base):
    """Named positions in the feed: how far it was purged, how far webhooks were fanned out."""

    __tablename__ = "feed_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


events = table_of(Event)
feed_state = table_of(FeedState)


def event_row(
    entity_type: str,
    action: str,
    entity_id: UUID,
    data: dict[str, Any],
    at: datetime,
    changed_fields: list[str] | None = None,
) -> dict[str, Any]:
    """The outbox row of the event `<entity_type>.<action>`."""
    return {
        "id": uuid7(),
        "type": f"{entity_type}.{action}",
        "entity_type": entity_type,
        "entity_id": entity_id,
        "occurred_at": at,
        "changed_fields": changed_fields,
        "data": data,
    }
