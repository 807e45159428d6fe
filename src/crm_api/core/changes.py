"""A change's audit row and outbox event, added to the batch that writes the change."""

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.audit import audit_log, audit_row
from crm_api.core.batch import InsertBatch
from crm_api.core.events import event_row, events
from crm_api.core.principal import Principal


def jsonable(value: Any) -> Any:
    """Plain JSON values (UUIDs, datetimes and decimals as strings) for JSON columns."""
    return orjson.loads(orjson.dumps(value, default=str))


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
            changes=jsonable(changes),
            at=at,
        ),
    )
    batch.add(
        events,
        event_row(
            type=f"{entity_type}.{action}",
            entity_type=entity_type,
            entity_id=entity_id,
            data=jsonable(data),
            at=at,
            changed_fields=sorted(changes) if action == "updated" else None,
        ),
    )


async def write_change(session: AsyncSession, **change: Any) -> None:
    """`record_change` for a change whose own row is already written: flushes at once."""
    batch = InsertBatch()
    record_change(batch, **change)
    await batch.flush(session)
