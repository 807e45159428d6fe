"""The only place with user and API key SQL. Flushes, never commits."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import KeyedColumnElement

from crm_api.core.db import lock_for_write, table_of
from crm_api.core.enums import Role
from crm_api.core.listing import ListParams, ListResult, ListSpec, run_list, sort_key
from crm_api.core.reader import Reader, Row
from crm_api.core.search import Field, column_fields
from crm_api.users.models import ApiKey, User

users = table_of(User)
api_keys = table_of(ApiKey)


def owner_fields(owner: KeyedColumnElement[Any]) -> dict[str, Field]:
    """`owner.email`, `owner.name`, `owner.team`, `owner.role` and `owner.active` of the user
    `owner` (a record's owner column) names, for search."""
    return column_fields(
        users,
        prefix="owner.",
        skip=("id", "version", "created_at", "updated_at"),
        choices={"role": Role},
        related=(owner, users.c.id),
    )


_by_id = select(users).where(users.c.id == bindparam("id"))
_by_email = select(users).where(users.c.email == bindparam("email"))
_key_by_id = select(api_keys).where(api_keys.c.id == bindparam("id"))
_principal_by_key_hash = (
    select(
        api_keys.c.id.label("api_key_id"),
        api_keys.c.scopes,
        api_keys.c.last_used_at,
        users.c.id.label("user_id"),
        users.c.role,
    )
    .join(users, users.c.id == api_keys.c.user_id)
    .where(
        api_keys.c.key_hash == bindparam("key_hash"),
        api_keys.c.revoked_at.is_(None),
        users.c.active.is_(True),
    )
)

USER_LIST = ListSpec(
    table=users,
    filters={
        "role": lambda: users.c.role == bindparam("role"),
        "active": lambda: users.c.active == bindparam("active"),
        "team": lambda: users.c.team == bindparam("team"),
    },
    sorts={
        "created_at": sort_key(users.c.created_at, users.c.id),
        "email": sort_key(users.c.email, users.c.id),
    },
    default_sort="created_at",
)

API_KEY_LIST = ListSpec(
    table=api_keys,
    filters={"user_id": lambda: api_keys.c.user_id == bindparam("user_id")},
    sorts={"created_at": sort_key(api_keys.c.created_at, api_keys.c.id)},
    default_sort="created_at",
)


class UserRepository:
    def __init__(self, session: AsyncSession, reader: Reader) -> None:
        self.session = session
        self.reader = reader

    async def get(self, user_id: UUID) -> Row | None:
        return await self.reader.one(_by_id, {"id": user_id})

    async def get_for_update(self, user_id: UUID) -> Row | None:
        await lock_for_write(self.session)
        result = await self.session.execute(_by_id.with_for_update(), {"id": user_id})
        row = result.mappings().first()
        return dict(row) if row else None

    async def get_by_email(self, email: str) -> Row | None:
        return await self.reader.one(_by_email, {"email": email})

    async def insert(self, values: Mapping[str, Any]) -> None:
        await self.session.execute(insert(users), dict(values))

    async def update(self, user_id: UUID, version: int, values: Mapping[str, Any]) -> bool:
        """Writes `values` if the user is still at `version`; False if it moved on."""
        stmt = update(users).where(users.c.id == user_id, users.c.version == version)
        result = await self.session.execute(stmt.values(**values))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def list_users(self, params: ListParams, filters: Mapping[str, Any]) -> ListResult:
        return await run_list(self.reader, USER_LIST, params, filters)


class ApiKeyRepository:
    def __init__(self, session: AsyncSession, reader: Reader) -> None:
        self.session = session
        self.reader = reader

    async def get(self, key_id: UUID) -> Row | None:
        return await self.reader.one(_key_by_id, {"id": key_id})

    async def insert(self, values: Mapping[str, Any]) -> None:
        await self.session.execute(insert(api_keys), dict(values))

    async def revoke(self, key_id: UUID, at: datetime) -> bool:
        """Revokes the key unless it already is; False if another request got there first."""
        stmt = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        result = await self.session.execute(stmt.values(revoked_at=at))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def list_keys(self, params: ListParams, filters: Mapping[str, Any]) -> ListResult:
        return await run_list(self.reader, API_KEY_LIST, params, filters)

    async def principal_by_hash(self, key_hash: str) -> Row | None:
        return await self.reader.one(_principal_by_key_hash, {"key_hash": key_hash})

    async def touch(self, key_id: UUID, at: datetime) -> None:
        await self.session.execute(
            update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=at)
        )
