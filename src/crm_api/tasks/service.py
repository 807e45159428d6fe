"""Task rules: who may assign and change them, completion, one linked record, and the
`next_task` of the contact or deal a task is linked to."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from crm_api.companies.service import CompanyService
from crm_api.contacts.repository import contacts
from crm_api.contacts.service import ContactService
from crm_api.core.concurrency import Versions
from crm_api.core.derived import recompute
from crm_api.core.errors import Forbidden, Invalid
from crm_api.core.reader import Row
from crm_api.core.records import RecordService
from crm_api.deals.repository import deals
from crm_api.deals.service import DealService
from crm_api.tasks.models import PRIORITY_RANK, TaskStatus
from crm_api.tasks.repository import TASK, refresh_next_task, tasks

LINKS = ("contact_id", "company_id", "deal_id")
_REFRESH_CONTACTS = refresh_next_task(contacts, tasks.c.contact_id)
_REFRESH_DEALS = refresh_next_task(deals, tasks.c.deal_id)


class TaskService(RecordService):
    kind = TASK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._linked_before: Row = {}

    async def domain_events(
        self, before: Row | None, after: Row, record: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        done = after["status"] == TaskStatus.done
        if done and (before is None or before["status"] != TaskStatus.done):
            return [("completed", record)]
        return []

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        task = await super().create(values)
        await self._refresh_next_tasks(task)
        return task

    async def update(
        self, record_id: UUID, values: dict[str, Any], expected_version: Versions | None
    ) -> dict[str, Any]:
        task = await super().update(record_id, values, expected_version)
        await self._refresh_next_tasks(task)
        return task

    async def archive(self, record_id: UUID, expected_version: Versions | None) -> None:
        await super().archive(record_id, expected_version)
        await self._refresh_next_tasks({})

    async def restore(self, record_id: UUID) -> dict[str, Any]:
        task = await super().restore(record_id)
        await self._refresh_next_tasks(task)
        return task

    async def refresh_next_task_of_contacts(self, contact_ids: Iterable[UUID]) -> None:
        """Recomputes `next_task` of these contacts, after a merge moved tasks between them."""
        await recompute(self.session, contacts, _REFRESH_CONTACTS, contact_ids)

    # -- record hooks --------------------------------------------------------------------------

    async def assign_owner(self, requested: UUID | None) -> UUID:
        """Anyone may give a task to any active user (asking a colleague is what tasks are for);
        who may *re*assign is `authorize_change`'s question."""
        assignee = requested or self.principal.user_id
        if assignee != self.principal.user_id:
            await self.owners.ensure_active(assignee, "body.assignee_id")
        return assignee

    def authorize_change(self, current: Row) -> None:
        principal = self.principal
        principal.require_write()
        involved = (current["created_by"], current["assignee_id"])
        if not principal.manages_all and principal.user_id not in involved:
            raise Forbidden("Reps may change only tasks they created or are assigned.")
        self._linked_before = {field: current[field] for field in LINKS}

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        if "priority" in values:
            values["priority_rank"] = PRIORITY_RANK[values["priority"]]
        merged = {**(current or {}), **values}
        linked = [field for field in LINKS if merged.get(field) is not None]
        if len(linked) > 1:
            raise Invalid(
                "A task links to one record at most.",
                [
                    (f"body.{field}", "only one of contact_id, company_id, deal_id")
                    for field in linked
                ],
            )
        await self._check_link(values, current)
        status = merged["status"]
        previous = current["status"] if current else None
        if status != previous and status == TaskStatus.done:
            values.update(completed_at=at, completed_by=self.principal.user_id)
        elif status != previous and previous == TaskStatus.done:
            values.update(completed_at=None, completed_by=None)

    # -- shared steps --------------------------------------------------------------------------

    async def _check_link(self, values: dict[str, Any], current: Row | None) -> None:
        services = {"contact_id": ContactService, "company_id": CompanyService,
                    "deal_id": DealService}  # fmt: skip
        for field, service in services.items():
            record_id = values.get(field)
            if record_id is not None and (current is None or record_id != current[field]):
                checker = service(self.session, self.reader, self.principal, self.owners)
                await checker.ensure_live(record_id, f"body.{field}")

    async def _refresh_next_tasks(self, task: dict[str, Any]) -> None:
        """The `next_task` of the records the task is and was linked to."""
        before, self._linked_before = self._linked_before, {}
        for field, table, stmt in (("contact_id", contacts, _REFRESH_CONTACTS),
                                   ("deal_id", deals, _REFRESH_DEALS)):  # fmt: skip
            await recompute(self.session, table, stmt, (before.get(field), task.get(field)))
