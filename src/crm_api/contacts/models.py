from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import (
    Base,
    JSONType,
    RecordColumns,
    UTCDateTime,
    custom_fields_index,
    live_index,
    record_indexes,
)
from crm_api.core.enums import LifecycleStage, sql_in

_LIVE_TAGGED = text("archived_at IS NULL AND email LIKE '%+%'")


class Contact(RecordColumns, Base):
    __tablename__ = "contacts"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(401))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(200))
    company_id: Mapped[UUID | None] = mapped_column(ForeignKey("companies.id"))
    lifecycle_stage: Mapped[str] = mapped_column(String(20))
    lifecycle_stage_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lead_source: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    email_opt_in: Mapped[bool] = mapped_column(Boolean)
    do_not_contact: Mapped[bool] = mapped_column(Boolean)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType)
    external_id: Mapped[str | None] = mapped_column(String(200))
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_outreach_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the first outbound call or email, or the first meeting, with the contact happened."""
    next_task_id: Mapped[UUID | None] = mapped_column(Uuid)
    """The earliest open task by due date, kept by the tasks slice (no foreign key: tasks
    reference contacts, and the two tables must not depend on each other)."""
    merged_into_id: Mapped[UUID | None] = mapped_column(ForeignKey("contacts.id"))
    """Set when the contact was merged into another (and archived with it): requests to it
    then answer 404 naming this one."""

    __table_args__ = (
        *record_indexes("contacts"),
        custom_fields_index("contacts"),
        CheckConstraint(f"lifecycle_stage {sql_in(LifecycleStage)}", name="lifecycle_stage"),
        live_index("uq_contacts_email_live", "email", unique=True),
        Index("ix_contacts_owner_id", "owner_id"),
        # Duplicate candidates: contacts sharing a phone are grouped from this index alone, and
        # the few +tagged emails (whose untagged form another contact may have) read from hers.
        live_index("ix_contacts_live_phone", "phone"),
        Index(
            "ix_contacts_live_tagged_email",
            "email",
            postgresql_where=_LIVE_TAGGED,
            sqlite_where=_LIVE_TAGGED,
        ),
        Index("ix_contacts_company_id", "company_id"),
    )


class LifecycleChange(Base):
    """Every change of a contact's lifecycle stage; conversion and churn metrics read this."""

    __tablename__ = "contact_lifecycle_changes"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    contact_id: Mapped[UUID] = mapped_column(ForeignKey("contacts.id"))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        Index("ix_contact_lifecycle_changes_contact", "contact_id", "changed_at", "id"),
        Index("ix_contact_lifecycle_changes_to_stage", "to_stage", "changed_at"),
    )
