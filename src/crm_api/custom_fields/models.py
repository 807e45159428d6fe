from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, JSONType, RecordColumns, live_index
from crm_api.core.enums import sql_in


class ObjectType(StrEnum):
    """The records that carry custom fields."""

    contact = "contact"
    company = "company"
    deal = "deal"


class FieldType(StrEnum):
    text = "text"
    number = "number"
    date = "date"
    boolean = "boolean"
    enum = "enum"
    multi_enum = "multi_enum"


class CustomFieldDefinition(RecordColumns, Base):
    __tablename__ = "custom_field_definitions"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(63))
    label: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    options: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    """For enum and multi_enum: `[{value, label}]`, in display order; empty otherwise."""
    required: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        # A key stays taken when its definition is archived: stored values keep their meaning.
        UniqueConstraint("object_type", "key"),
        CheckConstraint(f"object_type {sql_in(ObjectType)}", name="object_type"),
        CheckConstraint(f"type {sql_in(FieldType)}", name="type"),
        live_index("ix_custom_field_definitions_live_created", "created_at", "id"),
        live_index("ix_custom_field_definitions_live_updated", "updated_at", "id"),
        live_index("ix_custom_field_definitions_live_name", "name_key", "id"),
    )
