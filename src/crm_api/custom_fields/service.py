"""Custom field definitions: admins define them; removing an enum option records still hold
needs a replacement, applied to those records as ordinary (audited) updates."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Table, event, func, or_, select

from crm_api.companies.service import CompanyService
from crm_api.contacts.service import ContactService
from crm_api.core.concurrency import Versions
from crm_api.core.enums import Role
from crm_api.core.errors import Conflict, Invalid
from crm_api.core.normalize import sort_key_text
from crm_api.core.reader import Row
from crm_api.core.records import RecordService
from crm_api.custom_fields.catalog import CATALOG
from crm_api.custom_fields.expressions import custom_contains, custom_value, typed_bind
from crm_api.custom_fields.models import CustomFieldDefinition, FieldType, ObjectType
from crm_api.custom_fields.repository import BY_KEY, CUSTOM_FIELD
from crm_api.deals.service import DealService

NAME_KEY_LENGTH = CustomFieldDefinition.name_key.type.length
_WITH_OPTIONS = (FieldType.enum, FieldType.multi_enum)
_RECORD_SERVICES: Mapping[str, type[RecordService]] = {
    ObjectType.contact: ContactService,
    ObjectType.company: CompanyService,
    ObjectType.deal: DealService,
}


class CustomFieldService(RecordService):
    kind = CUSTOM_FIELD

    def authorize_change(self, current: Row) -> None:
        self.principal.require_write()
        self.principal.require_role(Role.admin)

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        self.principal.require_write()
        self.principal.require_role(Role.admin)
        record = await super().create(values)
        self._forget_after_commit()
        return record

    async def update(
        self, record_id: UUID, values: dict[str, Any], expected_version: Versions | None
    ) -> dict[str, Any]:
        replacements = values.pop("option_replacements", None) or {}
        current = await self._locked(record_id)
        self.authorize_change(current)
        if "options" in values:
            await self._replace_removed_options(current, values["options"], replacements)
        elif replacements:
            raise Invalid(
                "option_replacements go with a new list of options.",
                [("body.option_replacements", "send `options` too")],
            )
        record = await super().update(record_id, values, expected_version)
        self._forget_after_commit()
        return record

    async def archive(self, record_id: UUID, expected_version: Versions | None) -> None:
        await super().archive(record_id, expected_version)
        self._forget_after_commit()

    async def restore(self, record_id: UUID) -> dict[str, Any]:
        record = await super().restore(record_id)
        self._forget_after_commit()
        return record

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        if "label" in values:
            values["name_key"] = sort_key_text(values["label"], NAME_KEY_LENGTH)
        field_type = FieldType(values["type"] if current is None else current["type"])
        if "options" in values:
            _check_options(field_type, values["options"])
        elif current is None and field_type in _WITH_OPTIONS:
            _check_options(field_type, [])
        if current is None:
            await self._check_key_free(values["object_type"], values["key"])

    async def _check_key_free(self, object_type: str, key: str) -> None:
        holder = await self.reader.scalar(BY_KEY, {"object_type": object_type, "key": key})
        if holder is not None:
            raise Conflict(
                f"The {object_type} custom field {key!r} exists (archived ones keep their key).",
                existing_id=str(holder),
            )

    async def _replace_removed_options(
        self, current: Row, options: list[dict[str, Any]], replacements: Mapping[str, str | None]
    ) -> None:
        """409 with the count of records holding a removed option, unless `replacements` says
        what they get; then rewrites those records (archived ones too) before the options go."""
        kept = {option["value"] for option in options}
        removed = [option["value"] for option in current["options"] if option["value"] not in kept]
        _check_replacements(removed, kept, replacements)
        records = _RECORD_SERVICES[current["object_type"]](
            self.session, self.reader, self.principal, self.owners
        )
        key, field_type = current["key"], FieldType(current["type"])
        table = records.kind.table
        holders = await self._holders(table, key, field_type, removed)
        unreplaced = {value: count for value, count in holders.items() if value not in replacements}
        if unreplaced:
            total = sum(unreplaced.values())
            raise Conflict(
                f"{total} {current['object_type']} records hold the removed options "
                f"{', '.join(sorted(unreplaced))}; send option_replacements for them.",
                record_count=total,
            )
        if holders:
            values = list(holders)
            await records.replace_custom_values(
                self._holding(table, key, field_type, values),
                {f"v{index}": value for index, value in enumerate(values)},
                key,
                lambda value: _replaced(value, field_type, replacements),
            )

    async def _holders(
        self, table: Table, key: str, field_type: FieldType, values: list[str]
    ) -> dict[str, int]:
        """How many records (archived ones too) hold each of `values`."""
        counts: dict[str, int] = {}
        for value in values:
            matches = self._holding(table, key, field_type, [value])
            count = select(func.count()).select_from(table).where(matches)
            found = await self.session.scalar(count, {"v0": value})
            if found:
                counts[value] = found
        return counts

    @staticmethod
    def _holding(
        table: Table, key: str, field_type: FieldType, values: list[str]
    ) -> ColumnElement[bool]:
        column = table.c.custom_fields
        binds = [typed_bind(f"v{index}", FieldType.text) for index in range(len(values))]
        if field_type is FieldType.multi_enum:
            return or_(*(custom_contains(column, key, bind) for bind in binds))
        return custom_value(column, key, field_type).in_(binds)

    def _forget_after_commit(self) -> None:
        """Other writes in this process see the change once it commits (see catalog). A
        create outside a transaction has committed already (on PostgreSQL's raw pool)."""
        db = self.reader.db
        if not self.session.in_transaction():
            CATALOG.forget(db)
            return
        event.listen(
            self.session.sync_session, "after_commit", lambda _: CATALOG.forget(db), once=True
        )


def _check_options(field_type: FieldType, options: list[dict[str, Any]]) -> None:
    if field_type not in _WITH_OPTIONS:
        if options:
            raise Invalid(
                f"A {field_type} field has no options.", [("body.options", "must be empty")]
            )
        return
    if not options:
        raise Invalid(
            f"A {field_type} field needs options.", [("body.options", "give at least one")]
        )
    values = [option["value"] for option in options]
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise Invalid(
            "Option values must be unique.",
            [("body.options", f"repeats {', '.join(repeated)}")],
        )


def _check_replacements(
    removed: list[str], kept: set[str], replacements: Mapping[str, str | None]
) -> None:
    errors = []
    for old, new in replacements.items():
        if old not in removed:
            errors.append((f"body.option_replacements.{old}", "is not an option being removed"))
        elif new is not None and new not in kept:
            errors.append((f"body.option_replacements.{old}", "must be a remaining option"))
    if errors:
        raise Invalid("option_replacements do not fit the new options.", errors)


def _replaced(value: Any, field_type: FieldType, replacements: Mapping[str, str | None]) -> Any:
    """A record's new value once removed options are replaced (None: the value goes)."""
    if field_type is not FieldType.multi_enum:
        return replacements.get(value, value) if value in replacements else value
    items: list[str] = []
    for item in value:
        new = replacements.get(item, item) if item in replacements else item
        if new is not None and new not in items:
            items.append(new)
    return items or None
