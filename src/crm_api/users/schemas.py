from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field
from pydantic import StringConstraints as Str

from crm_api.core.enums import Role
from crm_api.core.principal import ALL_SCOPES
from crm_api.core.schemas import Email, InputModel, Name, NotNullable, ReadModel, WithSecret
from crm_api.core.schemas import Label as Team


class UserCreate(InputModel):
    email: Email
    name: Name
    role: Role = Role.rep
    team: Team | None = None


class UserUpdate(NotNullable):
    not_null = frozenset({"name", "role"})

    name: Name | None = None
    role: Role | None = None
    team: Team | None = None


class UserRead(ReadModel):
    id: UUID
    email: str
    name: str
    role: Role
    team: str | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(InputModel):
    name: Name = Field(description="A label to recognize the key by, e.g. `erp-sync`.")
    scopes: list[Annotated[str, Str(pattern="^(read|write)$")]] = Field(
        default_factory=lambda: list(ALL_SCOPES), min_length=1
    )
    user_id: UUID | None = Field(
        default=None, description="Admins may create keys for another user; default is yourself."
    )


class ApiKeyRead(ReadModel):
    id: UUID
    user_id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognize it by.")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead, WithSecret):
    secret: str = Field(
        description="The key itself. Shown once, only a hash is stored: an idempotent replay "
        "of this response leaves it out."
    )
