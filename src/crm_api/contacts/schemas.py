from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from crm_api.companies.schemas import CompanySummary
from crm_api.core.enums import LifecycleStage
from crm_api.core.schemas import (
    CustomFields,
    Email,
    ExternalId,
    InputModel,
    Label,
    Name,
    NotNullable,
    Phone,
    ReadModel,
    ShortText,
)
from crm_api.tasks.schemas import NextTask

LeadSource = Label


class ContactCreate(InputModel):
    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = Field(default=None, description="Trimmed and lower-cased.")
    phone: Phone | None = Field(
        default=None, description="Stored as E.164; read in the default region without a +."
    )
    title: ShortText | None = None
    company_id: UUID | None = None
    lifecycle_stage: LifecycleStage = LifecycleStage.lead
    lead_source: LeadSource | None = None
    owner_id: UUID | None = Field(default=None, description="Defaults to the caller.")
    email_opt_in: bool = False
    do_not_contact: bool = False
    custom_fields: CustomFields = Field(default_factory=dict)
    external_id: ExternalId | None = None


class ContactUpdate(NotNullable):
    not_null = frozenset(
        {"lifecycle_stage", "owner_id", "email_opt_in", "do_not_contact", "custom_fields"}
    )

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    title: ShortText | None = None
    company_id: UUID | None = None
    lifecycle_stage: LifecycleStage | None = None
    lead_source: LeadSource | None = None
    owner_id: UUID | None = None
    email_opt_in: bool | None = None
    do_not_contact: bool | None = None
    custom_fields: CustomFields | None = None
    external_id: ExternalId | None = None


class ContactRead(ReadModel):
    id: UUID
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    title: str | None
    company_id: UUID | None
    company: CompanySummary | None
    lifecycle_stage: LifecycleStage
    lifecycle_stage_changed_at: datetime
    lead_source: str | None
    owner_id: UUID
    email_opt_in: bool
    do_not_contact: bool
    custom_fields: dict[str, Any]
    external_id: str | None
    last_activity_at: datetime | None = Field(description="Of its latest live activity.")
    first_outreach_at: datetime | None = Field(
        description="Of its first outbound call or email, or first meeting."
    )
    next_task: NextTask | None
    merged_into_id: UUID | None = Field(
        description="The contact this one was merged into (it is then archived; requests to "
        "it answer 404 naming this id)."
    )
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class ContactSummary(ReadModel):
    id: UUID
    first_name: str | None
    last_name: str | None
    email: str | None
