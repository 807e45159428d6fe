"""The CSV columns of each exported resource: its read shape flattened (`company.name`), then a
column per custom field. NDJSON needs none: its lines are the records as they are."""

from collections.abc import Iterable
from dataclasses import dataclass

from crm_api.custom_fields.models import ObjectType
from crm_api.exports.formats import LIST_SEPARATOR, Column, Record, custom_field, fields, nested

_NEXT_TASK = nested("next_task", "id", "title", "due_at", "priority", "assignee_id")
_RECORD = fields("version", "created_by", "created_at", "updated_at", "archived_at")


@dataclass(frozen=True)
class Layout:
    """A resource's standard columns; the custom field columns follow them."""

    object_type: ObjectType
    standard: tuple[Column, ...]
    notes: str = ""
    """What the description says beyond the column names."""

    def columns(self, custom_keys: Iterable[str]) -> list[Column]:
        return [*self.standard, *(custom_field(key) for key in custom_keys)]


CONTACTS = Layout(
    ObjectType.contact,
    (
        *fields("id", "first_name", "last_name", "email", "phone", "title", "company_id"),
        *nested("company", "name", "domain"),
        *fields("lifecycle_stage", "lifecycle_stage_changed_at", "lead_source", "owner_id"),
        *fields("email_opt_in", "do_not_contact", "external_id", "last_activity_at"),
        *fields("first_outreach_at"),
        *_NEXT_TASK,
        *_RECORD,
    ),
)

COMPANIES = Layout(
    ObjectType.company,
    (
        *fields("id", "name", "domain", "industry", "employee_count", "annual_revenue"),
        *fields("annual_revenue_currency", "phone"),
        *nested("address", "street", "city", "region", "postal_code", "country"),
        *fields("lifecycle_stage", "owner_id", "external_id", "last_activity_at"),
        *_RECORD,
    ),
)


def _contact_ids(record: Record) -> str:
    return LIST_SEPARATOR.join(str(link["contact_id"]) for link in record["contacts"])


DEALS = Layout(
    ObjectType.deal,
    (
        *fields("id", "name", "pipeline_id", "stage_id"),
        *nested("stage", "name", "probability"),
        *fields("status", "stage_changed_at", "amount", "currency", "weighted_amount"),
        *fields("expected_close_date", "owner_id", "company_id"),
        *nested("company", "name", "domain"),
        *fields("next_step", "lost_reason", "closed_at", "external_id", "last_activity_at"),
        *_NEXT_TASK,
        Column("contact_count", lambda record: len(record["contacts"])),
        Column("contact_ids", _contact_ids),
        Column("line_item_count", lambda record: len(record["line_items"])),
        *_RECORD,
    ),
    notes="A deal's contacts and line items are summarized in `contact_count`, `contact_ids` "
    f"(`{LIST_SEPARATOR}`-separated, in the order the deal lists them) and `line_item_count`; "
    "the NDJSON export has them whole.",
)
