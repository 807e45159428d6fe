from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from crm_api.core.schemas import InputModel, Label, Name, NotNullable, ReadModel
from crm_api.custom_fields.models import FieldType, ObjectType

MAX_OPTIONS = 200

FieldKey = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(description="snake_case, unique per object type, never changes."),
]
OptionValue = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class FieldOption(InputModel):
    value: OptionValue = Field(description="What records store; unique within the field.")
    label: Label | None = Field(default=None, description="What people see; the value if unset.")


Options = Annotated[list[FieldOption], Field(max_length=MAX_OPTIONS)]


class CustomFieldCreate(InputModel):
    object_type: ObjectType
    key: FieldKey
    label: Name
    type: FieldType
    options: Options = Field(
        default_factory=list, description="Required for enum and multi_enum; none otherwise."
    )
    required: bool = Field(default=False, description="Creates must set it (422 otherwise).")
    description: Description | None = None


class CustomFieldUpdate(NotNullable):
    """`object_type`, `key` and `type` never change: stored values depend on them."""

    not_null = frozenset({"label", "options", "required"})

    label: Name | None = None
    options: Options | None = Field(
        default=None, description="The whole new list. Removing a value records still hold is 409 "
        "unless `option_replacements` says what they get instead.",
    )  # fmt: skip
    option_replacements: dict[OptionValue, OptionValue | None] | None = Field(
        default=None,
        description="For each removed option value, the remaining value records holding it get "
        "(null: the value is removed from them).",
    )
    required: bool | None = None
    description: Description | None = None


class FieldOptionRead(BaseModel):
    value: str
    label: str


class CustomFieldRead(ReadModel):
    id: UUID
    object_type: ObjectType
    key: str
    label: str
    type: FieldType
    options: list[FieldOptionRead]
    required: bool
    description: str | None
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
