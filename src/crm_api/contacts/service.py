"""Contact rules: identifiability, the company reference, and lifecycle history."""

from datetime import datetime
from typing import Any

from crm_api.companies.service import CompanyService
from crm_api.contacts.models import Contact
from crm_api.contacts.repository import (
    CONTACT,
    in_read_shape,
    lifecycle_change_row,
    lifecycle_changes,
)
from crm_api.core.batch import InsertBatch
from crm_api.core.errors import Invalid
from crm_api.core.normalize import sort_key_text
from crm_api.core.reader import Row
from crm_api.core.records import RecordService
from crm_api.tasks.repository import next_task_summary

_IDENTIFYING = ("first_name", "last_name", "email")
NAME_KEY_LENGTH = Contact.name_key.type.length


def name_key(first_name: str | None, last_name: str | None) -> str:
    """The `name` sort key: last name, then first name, case-folded."""
    name = " ".join(part for part in (last_name, first_name) if part)
    return sort_key_text(name, NAME_KEY_LENGTH)


class ContactService(RecordService):
    kind = CONTACT

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        merged = {**(current or {}), **values}
        if not any(merged.get(field) for field in _IDENTIFYING):
            raise Invalid(
                "A contact needs a first name, a last name or an email.",
                [(f"body.{field}", "one of these is required") for field in _IDENTIFYING],
            )
        if "first_name" in values or "last_name" in values:
            values["name_key"] = name_key(merged.get("first_name"), merged.get("last_name"))
        stage = values.get("lifecycle_stage")
        if stage is not None and (current is None or stage != current["lifecycle_stage"]):
            values["lifecycle_stage_changed_at"] = at
        company_id = values.get("company_id")
        if company_id is not None and (current is None or company_id != current["company_id"]):
            await self._companies().ensure_live(company_id, "body.company_id")

    def after_write(self, batch: InsertBatch, before: Row | None, after: Row, at: datetime) -> None:
        from_stage = before["lifecycle_stage"] if before else None
        if from_stage != after["lifecycle_stage"]:
            change = lifecycle_change_row(
                contact_id=after["id"],
                from_stage=from_stage,
                to_stage=after["lifecycle_stage"],
                at=at,
                by=self.principal.user_id,
            )
            batch.add(lifecycle_changes, change)

    async def represent(self, row: Row) -> dict[str, Any]:
        company_id = row["company_id"]
        company = await self._companies().summary(company_id) if company_id else None
        next_task = await next_task_summary(self.reader, row["next_task_id"])
        return self.kind.to_read(in_read_shape(row, company, next_task))

    def _companies(self) -> CompanyService:
        return CompanyService(self.session, self.reader, self.principal, self.owners)
