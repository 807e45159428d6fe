"""Users and API keys: admin-only user management, self-service keys."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.audit import diff
from crm_api.core.changes import write_change
from crm_api.core.concurrency import Versions, check_version
from crm_api.core.enums import Role
from crm_api.core.errors import Conflict, Forbidden, Invalid, NotFound, PreconditionFailed
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.integrity import is_unique_violation
from crm_api.core.listing import ListParams
from crm_api.core.principal import WRITE_SCOPE, Principal
from crm_api.core.reader import Reader, Row
from crm_api.users.auth import Authenticator, generate_api_key
from crm_api.users.repository import ApiKeyRepository, UserRepository

_KEY_HIDDEN = ("key_hash",)


def _public_key(row: Row) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in _KEY_HIDDEN}


class UserService:
    def __init__(
        self,
        session: AsyncSession,
        reader: Reader,
        principal: Principal | None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.session = session
        self.reader = reader
        self.authenticator = authenticator
        self.principal = principal
        self.users = UserRepository(session, reader)
        self.keys = ApiKeyRepository(session, reader)

    # -- users ---------------------------------------------------------------------------------

    async def get(self, user_id: UUID) -> Row:
        row = await self.users.get(user_id)
        if row is None:
            raise NotFound(f"No user has id {user_id}.")
        return row

    async def ensure_active(self, user_id: UUID, field: str) -> None:
        row = await self.users.get(user_id)
        if row is None or not row["active"]:
            raise Invalid(
                f"No active user has id {user_id}.", [(field, "must be the id of an active user")]
            )

    async def list_users(
        self, params: ListParams, filters: Mapping[str, Any]
    ) -> tuple[list[Row], str | None, int | None]:
        result = await self.users.list_users(params, filters)
        return result.rows, result.next_cursor, result.total

    async def create(self, values: dict[str, Any]) -> Row:
        self._require_admin()
        now = utcnow()
        user_id = uuid7()
        row = {
            **values,
            "id": user_id,
            "active": True,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self.users.insert(row)
        except IntegrityError as error:
            if not is_unique_violation(error):
                raise
            await self.session.rollback()
            existing = await self.users.get_by_email(values["email"])
            raise Conflict(
                "A user with this email exists.",
                existing_id=str(existing["id"]) if existing else None,
            ) from None
        return await self._changed("created", user_id, diff({}, values), now)

    async def update(
        self, user_id: UUID, values: dict[str, Any], expected_version: Versions | None
    ) -> Row:
        self._require_admin()
        current = await self._locked(user_id)
        check_version(expected_version, current["version"])
        # As with deactivation: an admin who demoted themself could not undo it, and might
        # have been the last admin.
        demoting = "role" in values and values["role"] != current["role"]
        if demoting and self._is_caller(user_id):
            raise Conflict("You cannot change your own role; another admin can.")
        return await self._apply(current, values)

    def _is_caller(self, user_id: UUID) -> bool:
        return self.principal is not None and user_id == self.principal.user_id

    async def set_active(self, user_id: UUID, active: bool) -> Row:
        self._require_admin()
        current = await self._locked(user_id)
        if self._is_caller(user_id) and not active:
            raise Conflict("You cannot deactivate yourself.")
        return await self._apply(current, {"active": active})

    async def _apply(self, current: Row, values: dict[str, Any]) -> Row:
        changes = diff(current, values)
        if not changes:
            return current
        now = utcnow()
        new_values = {key: after for key, (_, after) in changes.items()}
        new_values.update(version=current["version"] + 1, updated_at=now)
        if not await self.users.update(current["id"], current["version"], new_values):
            raise PreconditionFailed("The user changed while this request ran; re-read and retry.")
        if self.authenticator is not None:
            self.authenticator.forget_user(self.session, current["id"])
        action = "updated"
        if "active" in changes:
            action = "activated" if values["active"] else "deactivated"
        return await self._changed(action, current["id"], changes, now)

    async def _locked(self, user_id: UUID) -> Row:
        row = await self.users.get_for_update(user_id)
        if row is None:
            raise NotFound(f"No user has id {user_id}.")
        return row

    async def _changed(
        self, action: str, user_id: UUID, changes: dict[str, list[Any]], at: Any
    ) -> Row:
        row = await self.get(user_id)
        await write_change(
            self.reader,
            principal=self.principal,
            action=action,
            entity_type="user",
            entity_id=user_id,
            changes=changes,
            data=row,
            at=at,
        )
        return row

    def _require_admin(self) -> None:
        # The CLI acts with no principal: it is the operator bootstrapping the system.
        if self.principal is not None:
            self.principal.require_write()
            self.principal.require_role(Role.admin)

    # -- API keys ------------------------------------------------------------------------------

    async def create_api_key(
        self, *, name: str, scopes: list[str], user_id: UUID | None
    ) -> dict[str, Any]:
        self._require_key_admin()
        owner_id = self._key_owner(user_id)
        if self.principal is not None and not set(scopes) <= self.principal.scopes:
            raise Forbidden("A key cannot grant scopes the calling key does not have.")
        await self.ensure_active(owner_id, "body.user_id")
        secret, prefix, key_hash = generate_api_key()
        now = utcnow()
        key_id = uuid7()
        row = {
            "id": key_id,
            "user_id": owner_id,
            "name": name,
            "prefix": prefix,
            "key_hash": key_hash,
            "scopes": sorted(set(scopes)),
            "created_at": now,
            "last_used_at": None,
            "revoked_at": None,
        }
        await self.keys.insert(row)
        public = _public_key(row)
        await write_change(
            self.reader,
            principal=self.principal,
            action="created",
            entity_type="api_key",
            entity_id=key_id,
            changes=diff({}, {"name": name, "user_id": owner_id, "scopes": row["scopes"]}),
            data=public,
            at=now,
        )
        return {**public, "secret": secret}

    async def list_api_keys(
        self, params: ListParams, user_id: UUID | None
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        owner_id = self._key_owner(user_id) if user_id or not self._is_admin() else None
        result = await self.keys.list_keys(params, {"user_id": owner_id})
        return [_public_key(row) for row in result.rows], result.next_cursor, result.total

    async def get_api_key(self, key_id: UUID) -> dict[str, Any]:
        return _public_key(await self._visible_key(key_id))

    async def revoke_api_key(self, key_id: UUID) -> None:
        self._require_key_admin()
        row = await self._visible_key(key_id)
        if row["revoked_at"] is not None:
            return
        now = utcnow()
        if not await self.keys.revoke(key_id, now):
            return  # revoked meanwhile by a concurrent request, which recorded it
        await write_change(
            self.reader,
            principal=self.principal,
            action="revoked",
            entity_type="api_key",
            entity_id=key_id,
            changes={"revoked_at": [None, now]},
            data=_public_key({**row, "revoked_at": now}),
            at=now,
        )
        if self.authenticator is not None:
            self.authenticator.forget_key(self.session, key_id)

    async def _visible_key(self, key_id: UUID) -> Row:
        """The key if the caller may see it: their own, or any for an admin."""
        row = await self.keys.get(key_id)
        if row is None or (not self._is_admin() and row["user_id"] != self._caller_id()):
            raise NotFound(f"No API key of yours has id {key_id}.")
        return row

    def _require_key_admin(self) -> None:
        # Minting or revoking credentials is a write, whatever the caller's role.
        if self.principal is not None and WRITE_SCOPE not in self.principal.scopes:
            raise Forbidden("Managing API keys needs a key with the `write` scope.")

    def _key_owner(self, user_id: UUID | None) -> UUID:
        if self.principal is None:
            return user_id or self._caller_id()
        if user_id is None or user_id == self.principal.user_id:
            return self.principal.user_id
        if not self._is_admin():
            raise Forbidden("Only admins manage other users' API keys.")
        return user_id

    def _caller_id(self) -> UUID:
        if self.principal is None:
            raise Invalid("Name the user the key is for.", [("user_id", "required")])
        return self.principal.user_id

    def _is_admin(self) -> bool:
        return self.principal is None or self.principal.role is Role.admin
