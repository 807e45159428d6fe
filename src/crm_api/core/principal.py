"""Who is making a request, and what their role lets them do."""

from dataclasses import dataclass
from uuid import UUID

from crm_api.core.enums import Role
from crm_api.core.errors import Forbidden

READ_SCOPE = "read"
WRITE_SCOPE = "write"
ALL_SCOPES = (READ_SCOPE, WRITE_SCOPE)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    role: Role
    api_key_id: UUID | None
    scopes: frozenset[str]

    @property
    def manages_all(self) -> bool:
        return self.role in (Role.admin, Role.manager)

    def require_role(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(f"This action needs one of the roles: {', '.join(roles)}.")

    def require_read(self) -> None:
        if READ_SCOPE not in self.scopes:
            raise Forbidden("This API key lacks the `read` scope.")

    def require_write(self) -> None:
        if WRITE_SCOPE not in self.scopes:
            raise Forbidden("This API key lacks the `write` scope.")
        if self.role is Role.viewer:
            raise Forbidden("Viewers have read-only access.")

    def require_owner_or_manager(self, owner_id: UUID | None) -> None:
        """Reps may change only what they own; managers and admins change anything."""
        self.require_write()
        if not self.manages_all and owner_id != self.user_id:
            raise Forbidden("Reps may change only records they own.")

    def resolve_owner(self, requested: UUID | None) -> UUID:
        """The owner of a new record: the caller unless a manager or admin names another."""
        if requested is None or requested == self.user_id:
            return self.user_id
        if not self.manages_all:
            raise Forbidden("Reps may assign records only to themselves.")
        return requested
