"""Managing webhook subscriptions and their delivery logs (managers and admins)."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.config import Settings
from crm_api.core.audit import diff
from crm_api.core.changes import write_change
from crm_api.core.concurrency import Versions, check_version
from crm_api.core.db import lock_for_write
from crm_api.core.enums import Role
from crm_api.core.errors import Invalid, NotFound
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.listing import ListParams, ListSpec, run_list, sort_key
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader, Row
from crm_api.feed.sequencer import FEED_END
from crm_api.webhooks.models import attempts, deliveries, subscriptions
from crm_api.webhooks.schemas import DeliveryStatus
from crm_api.webhooks.signing import new_secret
from crm_api.webhooks.targets import RefusedTarget, check_target

ENTITY = "webhook_subscription"
HIDDEN = ("secret", "previous_secret", "fanned_out_through")
PUBLIC = tuple(c.key for c in subscriptions.c if c.key not in HIDDEN)
SUBSCRIPTION_LIST = ListSpec(
    table=subscriptions,
    filters={"active": lambda: subscriptions.c.active == bindparam("active")},
    sorts={"created_at": sort_key(subscriptions.c.created_at, subscriptions.c.id)},
    default_sort="created_at",
)
DELIVERY_LIST = ListSpec(
    table=deliveries,
    filters={
        "subscription_id": lambda: deliveries.c.subscription_id == bindparam("subscription_id"),
        "status": lambda: deliveries.c.status == bindparam("status"),
    },
    sorts={"created_at": sort_key(deliveries.c.created_at, deliveries.c.id)},
    default_sort="-created_at",
)
ONE = select(subscriptions).where(subscriptions.c.id == bindparam("id"))
ATTEMPTS_OF = (
    select(attempts)
    .where(attempts.c.delivery_id.in_(bindparam("ids", expanding=True)))
    .order_by(attempts.c.attempted_at, attempts.c.id)
)


def public(row: Row) -> dict[str, Any]:
    return {name: row[name] for name in PUBLIC}


class WebhookService:
    def __init__(
        self, session: AsyncSession, reader: Reader, principal: Principal, settings: Settings
    ) -> None:
        self.session = session
        self.reader = reader
        self.principal = principal
        self.settings = settings
        principal.require_role(Role.admin, Role.manager)

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        self.principal.require_write()
        await self._check_target(values["url"])
        now = utcnow()
        row = {
            **values,
            "id": uuid7(),
            "event_types": sorted(set(values["event_types"])),
            "secret": new_secret(),
            "previous_secret": None,
            "previous_secret_expires_at": None,
            "failing_since": None,
            "disabled_reason": None,
            # It gets the events placed in the feed from now on (see webhooks.delivery).
            "fanned_out_through": await self.session.scalar(select(FEED_END)),
            "created_by": self.principal.user_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        await self.session.execute(subscriptions.insert(), row)
        await self._record("created", row, diff({}, public(row)), now)
        return {**public(row), "secret": row["secret"]}

    async def list_subscriptions(self, params: ListParams, active: bool | None) -> Any:
        result = await run_list(self.reader, SUBSCRIPTION_LIST, params, {"active": active})
        return [public(row) for row in result.rows], result.next_cursor, result.total

    async def get(self, subscription_id: UUID) -> dict[str, Any]:
        return public(await self._row(subscription_id))

    async def update(
        self, subscription_id: UUID, changes: dict[str, Any], expected: Versions | None
    ) -> dict[str, Any]:
        self.principal.require_write()
        current = await self._locked(subscription_id)
        check_version(expected, current["version"])
        if "url" in changes:
            await self._check_target(changes["url"])
        if "event_types" in changes:
            changes["event_types"] = sorted(set(changes["event_types"]))
        if changes.get("active") and not current["active"]:
            changes.update(disabled_reason=None, failing_since=None)
        changed = diff(public(current), {**public(current), **changes})
        if not changed:
            return public(current)
        now = utcnow()
        values = {**changes, "updated_at": now, "version": current["version"] + 1}
        return await self._write(current, values, "updated", changed, now)

    async def rotate_secret(
        self, subscription_id: UUID, overlap_hours: float | None
    ) -> dict[str, Any]:
        """A new secret; the old one keeps signing (both signatures are sent) for the overlap."""
        self.principal.require_write()
        current = await self._locked(subscription_id)
        now = utcnow()
        hours = (
            self.settings.webhook_secret_overlap_hours if overlap_hours is None else overlap_hours
        )
        values = {
            "secret": new_secret(),
            "previous_secret": current["secret"] if hours > 0 else None,
            "previous_secret_expires_at": now + timedelta(hours=hours) if hours > 0 else None,
            "updated_at": now,
            "version": current["version"] + 1,
        }
        changed = {"secret": ["…", "…"]}
        record = await self._write(current, values, "secret_rotated", changed, now)
        return {**record, "secret": values["secret"]}

    async def delete(self, subscription_id: UUID) -> None:
        self.principal.require_write()
        current = await self._locked(subscription_id)
        await self.session.execute(delete(subscriptions).where(subscriptions.c.id == current["id"]))
        await self._record("deleted", current, diff(public(current), {}), utcnow())

    async def deliveries(
        self, subscription_id: UUID, params: ListParams, status: DeliveryStatus | None
    ) -> Any:
        await self._row(subscription_id)
        filters = {"subscription_id": subscription_id, "status": status}
        result = await run_list(self.reader, DELIVERY_LIST, params, filters)
        return await self._with_attempts(result.rows), result.next_cursor, result.total

    async def replay(self, subscription_id: UUID, delivery_id: UUID) -> dict[str, Any]:
        """Sends a delivery again as soon as the worker runs, with the same `webhook-id`."""
        self.principal.require_write()
        await self._row(subscription_id)
        matches = (deliveries.c.id == delivery_id) & (
            deliveries.c.subscription_id == subscription_id
        )
        result = await self.session.execute(
            update(deliveries)
            .where(matches)
            .values(status=DeliveryStatus.pending, next_attempt_at=utcnow(), delivered_at=None)
            .returning(*deliveries.c)
        )
        row = result.mappings().first()
        if row is None:
            raise NotFound(f"Subscription {subscription_id} has no delivery {delivery_id}.")
        (delivery,) = await self._with_attempts([dict(row)])
        return delivery

    async def _with_attempts(self, rows: list[Row]) -> list[dict[str, Any]]:
        by_id: dict[UUID, dict[str, Any]] = {}
        for row in rows:
            by_id[row["id"]] = {**row, "attempts": []}
        if by_id:
            found = await self.session.execute(ATTEMPTS_OF, {"ids": list(by_id)})
            for attempt in found.mappings():
                by_id[attempt["delivery_id"]]["attempts"].append(dict(attempt))
        return list(by_id.values())

    async def _check_target(self, url: str) -> None:
        try:
            await check_target(url, self.settings.webhook_allow_private_targets)
        except RefusedTarget as refused:
            raise Invalid(
                "Webhooks cannot be sent to this URL.", [("body.url", str(refused))]
            ) from None

    async def _row(self, subscription_id: UUID) -> Row:
        row = await self.reader.one(ONE, {"id": subscription_id})
        if row is None:
            raise NotFound(f"No webhook subscription has id {subscription_id}.")
        return row

    async def _locked(self, subscription_id: UUID) -> Row:
        await lock_for_write(self.session)
        found = await self.session.execute(ONE.with_for_update(), {"id": subscription_id})
        row = found.mappings().first()
        if row is None:
            raise NotFound(f"No webhook subscription has id {subscription_id}.")
        return dict(row)

    async def _write(
        self,
        current: Row,
        values: dict[str, Any],
        action: str,
        changed: dict[str, list[Any]],
        at: datetime,
    ) -> dict[str, Any]:
        await self.session.execute(
            update(subscriptions).where(subscriptions.c.id == current["id"]).values(**values)
        )
        after = {**current, **values}
        await self._record(action, after, changed, at)
        return public(after)

    async def _record(
        self, action: str, row: Row, changes: dict[str, list[Any]], at: datetime
    ) -> None:
        await write_change(
            self.reader,
            principal=self.principal,
            action=action,
            entity_type=ENTITY,
            entity_id=row["id"],
            changes=changes,
            data=public(row),
            at=at,
        )
