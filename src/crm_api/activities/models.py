from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, RecordColumns, UTCDateTime, live_index
from crm_api.core.enums import sql_in


class ActivityType(StrEnum):
    call = "call"
    email = "email"
    meeting = "meeting"
    note = "note"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class CallOutcome(StrEnum):
    connected = "connected"
    no_answer = "no_answer"
    left_voicemail = "left_voicemail"
    busy = "busy"
    wrong_number = "wrong_number"


class Activity(RecordColumns, Base):
    __tablename__ = "activities"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    type: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[str | None] = mapped_column(String(10))
    outcome: Mapped[str | None] = mapped_column(String(20))
    company_id: Mapped[UUID | None] = mapped_column(ForeignKey("companies.id"))
    deal_id: Mapped[UUID | None] = mapped_column(ForeignKey("deals.id"))
    logged_by: Mapped[UUID] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint(f"type {sql_in(ActivityType)}", name="type"),
        CheckConstraint(f"direction {sql_in(Direction)}", name="direction"),
        CheckConstraint(f"outcome {sql_in(CallOutcome)}", name="outcome"),
        CheckConstraint("duration_seconds >= 0", name="duration_seconds"),
        live_index("ix_activities_live_occurred", "occurred_at", "id"),
        live_index("ix_activities_live_company", "company_id", "occurred_at", "id"),
        live_index("ix_activities_live_deal", "deal_id", "occurred_at", "id"),
        Index("ix_activities_logged_by", "logged_by"),
    )


class ActivityContact(Base):
    """A contact an activity is about (or, for meetings, who attended). `occurred_at` and
    `live` repeat the activity's so a contact's activities are read newest first from one
    index: the timeline and `last_activity_at` both depend on that."""

    __tablename__ = "activity_contacts"

    activity_id: Mapped[UUID] = mapped_column(ForeignKey("activities.id"), primary_key=True)
    contact_id: Mapped[UUID] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    linked: Mapped[bool] = mapped_column(Boolean)
    attendee: Mapped[bool] = mapped_column(Boolean)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    live: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_activity_contacts_contact", "contact_id", "live", "occurred_at", "activity_id"),
    )
