"""The audit log: who changed what, before and after, written in the change's transaction."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Index, String, Uuid, bindparam
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, JSONType, UTCDateTime, table_of
from crm_api.core.ids import uuid7
from crm_api.core.listing import ListSpec, sort_key
from crm_api.core.logging import request_id_var
from crm_api.core.principal import Principal


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_user_id: Mapped[UUID | None] = mapped_column(Uuid)
    actor_api_key_id: Mapped[UUID | None] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(40))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[UUID] = mapped_column(Uuid)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    request_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_audit_log_entity", "entity_type", "entity_id", "occurred_at", "id"),
        Index("ix_audit_log_occurred_at", "occurred_at", "id"),
    )


audit_log = table_of(AuditEntry)

AUDIT_LIST = ListSpec(
    table=audit_log,
    filters={
        "entity_type": lambda: audit_log.c.entity_type == bindparam("entity_type"),
        "entity_id": lambda: audit_log.c.entity_id == bindparam("entity_id"),
        "actor_user_id": lambda: audit_log.c.actor_user_id == bindparam("actor_user_id"),
    },
    sorts={"occurred_at": sort_key(audit_log.c.occurred_at, audit_log.c.id)},
    default_sort="-occurred_at",
)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """`{field: [before, after]}` for every field whose value differs."""
    if not before:  # a creation: every field that is set
        return {key: [None, value] for key, value in after.items() if value is not None}
    return {
        key: [before.get(key), value] for key, value in after.items() if before.get(key) != value
    }


def audit_row(
    *,
    principal: Principal | None,
    action: str,
    entity_type: str,
    entity_id: UUID,
    changes: dict[str, list[Any]],
    at: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "occurred_at": at,
        "actor_user_id": principal.user_id if principal else None,
        "actor_api_key_id": principal.api_key_id if principal else None,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "changes": changes,
        "request_id": request_id_var.get(),
    }
