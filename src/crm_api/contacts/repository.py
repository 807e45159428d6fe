"""The only place with contact SQL: its read shape, list filters, sorts and lifecycle history."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select

from crm_api.companies.repository import (
    COMPANY_SUMMARY_COLUMNS,
    companies_matching,
    company_fields,
    company_summary,
)
from crm_api.contacts.models import Contact, LifecycleChange
from crm_api.core.db import table_of
from crm_api.core.enums import LifecycleStage
from crm_api.core.fulltext import TextIndex, text_match, text_rank
from crm_api.core.ids import uuid7
from crm_api.core.listing import ListSpec, prefix_match, prefix_search, record_filters, record_sorts
from crm_api.core.reader import Row
from crm_api.core.records import RecordKind
from crm_api.core.search import SearchSpec, TextSearch, column_fields
from crm_api.custom_fields.catalog import CustomFieldRules, CustomSearchFields
from crm_api.custom_fields.models import ObjectType
from crm_api.tasks.repository import next_task_columns, pop_next_task, with_next_task
from crm_api.users.repository import owner_fields

contacts = table_of(Contact)
lifecycle_changes = table_of(LifecycleChange)

_COMPANY = "company__"


def _with_company() -> Any:
    # The company summary is embedded in every contact read, so it is joined, not fetched.
    company_columns = [column.label(_COMPANY + column.key) for column in COMPANY_SUMMARY_COLUMNS]
    company = COMPANY_SUMMARY_COLUMNS[0].table
    stmt = select(contacts, *company_columns).outerjoin(
        company, company.c.id == contacts.c.company_id
    )
    return with_next_task(stmt, contacts)


_COMPANY_LABELS = tuple(_COMPANY + column.key for column in COMPANY_SUMMARY_COLUMNS)
_NOT_SHOWN = frozenset({"name_key", *_COMPANY_LABELS})
_COMPANY_SHAPE = tuple(zip(COMPANY_SUMMARY_COLUMNS, _COMPANY_LABELS, strict=True))


def to_read(row: Row) -> dict[str, Any]:
    record = {key: value for key, value in row.items() if key not in _NOT_SHOWN}
    record["company"] = company_summary(row, _COMPANY)
    pop_next_task(record)
    return record


LISTING = ListSpec(
    table=contacts,
    base=_with_company,
    filters={
        "lifecycle_stage": lambda: contacts.c.lifecycle_stage == bindparam("lifecycle_stage"),
        "owner_id": lambda: contacts.c.owner_id == bindparam("owner_id"),
        "company_id": lambda: contacts.c.company_id == bindparam("company_id"),
        "lead_source": lambda: contacts.c.lead_source == bindparam("lead_source"),
        **record_filters(contacts),
        "q": prefix_match(contacts, contacts.c.email),
    },
    sorts={
        **record_sorts(contacts),
    },
    default_sort="created_at",
    archived_column=contacts.c.archived_at,
    binders={"q": prefix_search},
)

TEXT = TextIndex(contacts, ("first_name", "last_name", "email"), split=("email",))

SEARCH = SearchSpec(
    listing=LISTING,
    fields={
        **column_fields(
            contacts,
            skip=("name_key", "next_task_id"),
            choices={"lifecycle_stage": LifecycleStage},
        ),
        **company_fields(contacts.c.company_id),
        **owner_fields(contacts.c.owner_id),
    },
    text=TextSearch(
        match=lambda query: text_match(TEXT, query),
        rank=lambda query: text_rank(TEXT, query),
        related=(contacts.c.company_id, companies_matching),
    ),
    custom_fields=CustomSearchFields(ObjectType.contact, contacts.c.custom_fields),
)

CONTACT = RecordKind(
    entity_type="contact",
    table=contacts,
    read=_with_company().where(contacts.c.id == bindparam("id")),
    to_read=to_read,
    listing=LISTING,
    unique_keys=("email", "external_id"),
    path="/v1/contacts",
    custom_fields=CustomFieldRules(ObjectType.contact),
    search=SEARCH,
)


def lifecycle_change_row(
    *, contact_id: UUID, from_stage: str | None, to_stage: str, at: datetime, by: UUID
) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "contact_id": contact_id,
        "from_stage": from_stage,
        "to_stage": to_stage,
        "changed_at": at,
        "changed_by": by,
    }


def in_read_shape(row: Row, company: Row | None, next_task: Row | None) -> Row:
    """A raw contact row in the read shape, given its company's and next task's summaries."""
    return {
        **row,
        **{label: (company or {}).get(column.key) for column, label in _COMPANY_SHAPE},
        **next_task_columns(next_task),
    }
