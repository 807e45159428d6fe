"""One call that writes a change's audit row and outbox event together."""

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.audit import record_audit
from crm_api.core.events import record_event
from crm_api.core.principal import Principal


def jsonable(value: Any) -> Any:
    """Plain JSON values (UUIDs, datetimes and decimals as strings) for JSON columns."""
    return orjson.loads(orjson.dumps(value, default=str))


async def record_change(
    session: AsyncSession,
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
    await record_audit(
        session,
        principal=principal,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        changes=jsonable(changes),
        at=at,
    )
    await record_event(
        session,
        type=f"{entity_type}.{action}",
        entity_type=entity_type,
        entity_id=entity_id,
        data=jsonable(data),
        at=at,
        changed_fields=sorted(changes) if action == "updated" else None,
    )
