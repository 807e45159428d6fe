"""A change's audit row and outbox event, added to the batch that writes the change."""

from datetime import datetime
from typing import Any
from uuid import UUID

from crm_api.core.audit import audit_log, audit_row
from crm_api.core.batch import InsertBatch
from crm_api.core.events import event_row, events
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader


def record_change(
    batch: InsertBatch,
    *,
    principal: Principal | None,
    action: str,
    entity_type: str,
    entity_id: UUID,
    changes: dict[str, list[Any]],
    data: dict[str, Any],
    at: datetime,
) -> None:
    """`action` is a past-tense verb (`created`, `updated`, …); the event is `<entity>.<action>`."""
    batch.add(
        audit_log,
        audit_row(
            principal=principal,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            changes=changes,
            at=at,
        ),
    )
    changed_fields = sorted(changes) if action == "updated" else None
    batch.add(events, event_row(entity_type, action, entity_id, data, at, changed_fields))


async def write_change(reader: Reader, **change: Any) -> None:
    """`record_change` for a change whose own row is already written: flushes at once."""
    batch = InsertBatch()
    record_change(batch, **change)
    await batch.flush(reader)
