"""Deal rules: where a deal may stand and what a move implies, money that adds up, and the
contacts and line items that are part of a deal.

A deal is the unit of change for what it embeds: adding a contact or a line item is a change of
the deal (its version, audit row and `deal.updated` event), made under the deal's row lock.
"""

import decimal
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert, select, update

from crm_api.companies.service import CompanyService
from crm_api.config import get_settings
from crm_api.contacts.service import ContactService
from crm_api.core.audit import diff
from crm_api.core.batch import InsertBatch
from crm_api.core.concurrency import Versions, check_version
from crm_api.core.enums import StageKind
from crm_api.core.errors import Conflict, Invalid, NotFound
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.listing import ListParams
from crm_api.core.money import MAX_AMOUNT, require_scale, to_minor_units, trimmed
from crm_api.core.normalize import sort_key_text
from crm_api.core.reader import Row
from crm_api.core.records import RecordService, chunks
from crm_api.deals.models import Deal, DealContactRole
from crm_api.deals.repository import (
    ALL_STAGE_TOTALS,
    CONTACT_COUNT,
    CONTACT_LINK,
    CONTACTS_OF,
    DEAL,
    DEAL_IDS_IN_STAGE,
    DEALS_IN_STAGE,
    HISTORY,
    LAST_POSITION,
    LINE_ITEM,
    LINE_ITEM_COUNT,
    LINE_ITEMS_OF,
    OPEN_STAGE_TOTALS,
    contact_link_read,
    deal_contacts,
    deals,
    in_read_shape,
    line_items,
    stage_history,
    to_card,
    weighted,
)
from crm_api.pipelines.service import PipelineService
from crm_api.products.service import ProductService
from crm_api.tasks.repository import next_task_summary

NAME_KEY_LENGTH = Deal.name_key.type.length
ROLE_RANK = {role: rank for rank, role in enumerate(DealContactRole)}
"""How much a contact's role on a deal says: a decision maker most, `other` least."""
MAX_CONTACTS = 100
MAX_LINE_ITEMS = 200


def line_total(row: Row) -> Decimal:
    """quantity * unit price * (1 - discount), exact (no rounding)."""
    with decimal.localcontext(prec=80):
        total: Decimal = row["quantity"] * row["unit_price"] * (100 - row["discount_percent"])
        return total / 100


def deal_amount(rows: list[Row], currency: str) -> Decimal:
    """The sum of the exact line totals, rounded half-even once, to the currency's minor unit."""
    with decimal.localcontext(prec=80):
        total = sum((line_total(row) for row in rows), Decimal(0))
    return to_minor_units(total, currency)


def line_item_read(row: Row) -> dict[str, Any]:
    currency = row["currency"]
    return {
        **row,
        "quantity": trimmed(row["quantity"]),
        "unit_price": to_minor_units(row["unit_price"], currency),
        "discount_percent": trimmed(row["discount_percent"]),
        "amount": to_minor_units(line_total(row), currency),
    }


class DealService(RecordService):
    kind = DEAL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stages: dict[UUID, Row] = {}

    # -- reads ---------------------------------------------------------------------------------

    async def list_contacts(self, deal_id: UUID) -> list[dict[str, Any]]:
        await self._require_exists(deal_id)
        rows = await self.reader.all(CONTACTS_OF[self._postgres], {"deal_ids": [deal_id]})
        return [contact_link_read(row) for row in rows]

    async def get_contact(self, deal_id: UUID, contact_id: UUID) -> dict[str, Any]:
        for link in await self.list_contacts(deal_id):
            if link["contact_id"] == contact_id:
                return link
        raise NotFound(f"Contact {contact_id} is not on deal {deal_id}.")

    async def list_line_items(self, deal_id: UUID) -> list[dict[str, Any]]:
        await self._require_exists(deal_id)
        rows = await self.reader.all(LINE_ITEMS_OF[self._postgres], {"deal_ids": [deal_id]})
        return [line_item_read(row) for row in rows]

    async def get_line_item(self, deal_id: UUID, item_id: UUID) -> dict[str, Any]:
        return line_item_read(await self._line_item(deal_id, item_id))

    async def stage_history(self, deal_id: UUID) -> dict[str, Any]:
        """Every stage the deal entered, with how long it stayed; the last entry runs until now."""
        await self._require_exists(deal_id)
        rows = await self.reader.all(HISTORY, {"deal_id": deal_id})
        now = utcnow()
        entries: list[dict[str, Any]] = []
        totals: dict[UUID, dict[str, Any]] = {}
        for row, following in zip(rows, [*rows[1:], None], strict=True):
            left_at = following["changed_at"] if following else None
            seconds = int(((left_at or now) - row["changed_at"]).total_seconds())
            entries.append({**row, "left_at": left_at, "seconds_in_stage": seconds})
            stage = totals.setdefault(
                row["to_stage_id"],
                {"stage_id": row["to_stage_id"], "stage_name": row["to_stage_name"],
                 "seconds": 0, "visits": 0},
            )  # fmt: skip
            stage["seconds"] += seconds
            stage["visits"] += 1
        return {"data": entries, "time_in_stage": list(totals.values())}

    async def board(
        self, pipeline_id: UUID, per_stage: int, sort: str | None, include_closed: bool
    ) -> dict[str, Any]:
        pipeline = await self._pipelines().get(pipeline_id)
        self.kind.listing.parse_sort(sort)  # an unknown sort is 422 even with no open stage
        statement = ALL_STAGE_TOTALS if include_closed else OPEN_STAGE_TOTALS
        totals: dict[UUID, list[Row]] = {}
        for row in await self.reader.all(statement, {"pipeline_id": pipeline_id}):
            totals.setdefault(row["stage_id"], []).append(row)
        columns = []
        for stage in pipeline["stages"]:
            cards: list[dict[str, Any]] = []
            next_cursor = None
            if include_closed or stage["kind"] == StageKind.open:
                params = ListParams(limit=per_stage, sort=sort)
                page = await self.repository.list_records(params, {"stage_id": stage["id"]})
                cards = [self.kind.to_read(row) for row in page.rows]
                next_cursor = page.next_cursor
            rows = totals.get(stage["id"], [])
            columns.append(
                {
                    "stage": stage,
                    "count": sum(row["count"] for row in rows),
                    "totals": [_currency_total(row, stage["probability"]) for row in rows],
                    "deals": cards,
                    "next_cursor": next_cursor,
                }
            )
        return {"pipeline_id": pipeline_id, "name": pipeline["name"], "stages": columns}

    # -- record hooks --------------------------------------------------------------------------

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        if "name" in values:
            values["name_key"] = sort_key_text(values["name"], NAME_KEY_LENGTH)
        if current is None and values.get("currency") is None:
            values["currency"] = get_settings().default_currency
        company_id = values.get("company_id")
        if company_id is not None and (current is None or company_id != current["company_id"]):
            await self._companies().ensure_live(company_id, "body.company_id")
        await self._place(values, current, at)
        await self._check_money(values, current)

    def after_write(self, batch: InsertBatch, before: Row | None, after: Row, at: datetime) -> None:
        from_stage = before["stage_id"] if before else None
        if from_stage != after["stage_id"]:
            batch.add(
                stage_history,
                {
                    "id": uuid7(),
                    "deal_id": after["id"],
                    "pipeline_id": after["pipeline_id"],
                    "from_stage_id": from_stage,
                    "to_stage_id": after["stage_id"],
                    "changed_at": at,
                    "changed_by": self.principal.user_id,
                },
            )

    async def domain_events(
        self, before: Row | None, after: Row, record: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """`stage_changed` on a move; `won` and `lost` on entering that status, with the whole
        company, so an ERP can create the order from the event alone."""
        happened: list[tuple[str, dict[str, Any]]] = []
        if before is not None and before["stage_id"] != after["stage_id"]:
            happened.append(("stage_changed", record))
        status = after["status"]
        if status != StageKind.open and status != (before["status"] if before else None):
            company_id = after["company_id"]
            company = await self._companies().get(company_id) if company_id else None
            happened.append((status, {**record, "company": company}))
        return happened

    async def represent(self, row: Row) -> dict[str, Any]:
        stage = await self._stage(row["stage_id"], "body.stage_id")
        company_id = row["company_id"]
        company = await self._companies().summary(company_id) if company_id else None
        next_task = await next_task_summary(self.reader, row["next_task_id"])
        record = to_card(in_read_shape(row, stage, company, next_task))
        if row["version"] == 1:
            # A deal's first version has no contacts or line items: adding one is a new version.
            record.update(contacts=[], line_items=[])
        else:
            await self.embed([record])
        return record

    # -- contacts on the deal ------------------------------------------------------------------

    async def add_contact(
        self, deal_id: UUID, contact_id: UUID, role: str, expected: Versions | None
    ) -> tuple[dict[str, Any], bool]:
        """Links a contact with `role` (or changes its role); True if the link is new."""
        current = await self._locked_for_change(deal_id, expected)
        await self._contacts().ensure_live(contact_id, "body.contact_id")
        key = {"deal_id": deal_id, "contact_id": contact_id}
        link = await self.reader.one(CONTACT_LINK, key)
        now = utcnow()
        if link is None:
            if await self.reader.scalar(CONTACT_COUNT, {"deal_id": deal_id}) >= MAX_CONTACTS:
                raise Invalid(
                    f"A deal holds at most {MAX_CONTACTS} contacts.",
                    [("body.contact_id", "remove a contact first")],
                )
            row = {**key, "role": role, "added_at": now, "added_by": self.principal.user_id}
            await self.session.execute(insert(deal_contacts).values(row))
        elif link["role"] != role:
            await self.session.execute(update(deal_contacts).filter_by(**key).values(role=role))
        else:
            return await self.get_contact(deal_id, contact_id), False
        changes = {f"contacts.{contact_id}": [link["role"] if link else None, role]}
        await self._touch(current, {}, changes, now)
        return await self.get_contact(deal_id, contact_id), link is None

    async def remove_contact(
        self, deal_id: UUID, contact_id: UUID, expected: Versions | None
    ) -> None:
        current = await self._locked_for_change(deal_id, expected)
        key = {"deal_id": deal_id, "contact_id": contact_id}
        link = await self.reader.one(CONTACT_LINK, key)
        if link is None:
            raise NotFound(f"Contact {contact_id} is not on deal {deal_id}.")
        await self.session.execute(delete(deal_contacts).filter_by(**key))
        await self._touch(current, {}, {f"contacts.{contact_id}": [link["role"], None]}, utcnow())

    async def repoint_contacts(self, from_ids: Sequence[UUID], to_id: UUID, at: datetime) -> None:
        """Puts the contact `to_id` on every deal (archived ones too) of the contacts `from_ids`
        in their place, each deal as a change of its own (a new version, an audit row and
        `deal.updated`). A deal that had several of them keeps one link: `to_id`'s if it had
        one (else the earliest added), with the most meaningful of their roles (`to_id`'s on a
        tie)."""
        moved = [*from_ids, to_id]
        of_contacts = select(deal_contacts.c.deal_id).where(
            deal_contacts.c.contact_id.in_(from_ids)
        )
        locked = (
            select(deals.c.id)
            .where(deals.c.id.in_(of_contacts))
            .order_by(deals.c.id)
            .with_for_update()
        )
        deal_ids = list((await self.session.execute(locked)).scalars())
        for chunk in chunks(deal_ids):
            links: dict[UUID, dict[UUID, Row]] = defaultdict(dict)
            stmt = select(deal_contacts).where(
                deal_contacts.c.deal_id.in_(chunk), deal_contacts.c.contact_id.in_(moved)
            )
            for link in (await self.session.execute(stmt)).mappings():
                links[link["deal_id"]][link["contact_id"]] = dict(link)
            kept, changes = [], {}
            for deal_id in chunk:
                primary = links[deal_id].get(to_id)
                others = sorted(
                    (link for contact_id, link in links[deal_id].items() if contact_id != to_id),
                    key=lambda link: (link["added_at"], link["contact_id"]),
                )
                base = primary or others[0]
                role = min((link["role"] for link in [base, *others]), key=ROLE_RANK.__getitem__)
                kept.append({**base, "contact_id": to_id, "role": role})
                deal_changes = {f"contacts.{link['contact_id']}": [link["role"], None]
                                for link in others}  # fmt: skip
                if primary is None or primary["role"] != role:
                    deal_changes[f"contacts.{to_id}"] = [primary and primary["role"], role]
                changes[deal_id] = deal_changes
            stale = deal_contacts.c.deal_id.in_(chunk) & deal_contacts.c.contact_id.in_(moved)
            await self.session.execute(delete(deal_contacts).where(stale))
            await self.session.execute(insert(deal_contacts), kept)
            await self.session.execute(
                update(deals)
                .where(deals.c.id.in_(chunk))
                .values(version=deals.c.version + 1, updated_at=at)
            )
            await self.record_moves(changes, at)

    # -- line items ----------------------------------------------------------------------------

    async def add_line_item(self, deal_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
        current = await self._locked_for_change(deal_id, None)
        if await self.reader.scalar(LINE_ITEM_COUNT, {"deal_id": deal_id}) >= MAX_LINE_ITEMS:
            raise Invalid(
                f"A deal holds at most {MAX_LINE_ITEMS} line items.",
                [("body", "remove a line item first")],
            )
        await self._price_from_product(values)
        values["currency"] = values.get("currency") or current["currency"]
        self._check_line_money(values, current)
        now = utcnow()
        if values.get("position") is None:
            last = await self.reader.scalar(LAST_POSITION, {"deal_id": deal_id})
            values["position"] = 0 if last is None else last + 1
        else:
            await self._make_room(deal_id, values["position"], None, now)
        row = {
            **values,
            "id": uuid7(),
            "deal_id": deal_id,
            "version": 1,
            "created_by": self.principal.user_id,
            "created_at": now,
            "updated_at": now,
        }
        await self.session.execute(insert(line_items).values(row))
        item = line_item_read(row)
        await self._reprice(current, {f"line_items.{row['id']}": [None, item]}, now)
        return item

    async def update_line_item(
        self, deal_id: UUID, item_id: UUID, values: dict[str, Any], expected: Versions | None
    ) -> dict[str, Any]:
        current = await self._locked_for_change(deal_id, None)
        before = await self._line_item(deal_id, item_id)
        check_version(expected, before["version"])
        changes = diff(before, values)
        if not changes:
            return line_item_read(before)
        self._check_line_money({**before, **values}, current)
        now = utcnow()
        if "position" in changes:
            await self._make_room(deal_id, values["position"], item_id, now)
        new_values = {key: after for key, (_, after) in changes.items()}
        new_values.update(version=before["version"] + 1, updated_at=now)
        await self.session.execute(
            update(line_items).where(line_items.c.id == item_id).values(**new_values)
        )
        item = line_item_read({**before, **new_values})
        await self._reprice(current, {f"line_items.{item_id}": [line_item_read(before), item]}, now)
        return item

    async def delete_line_item(
        self, deal_id: UUID, item_id: UUID, expected: Versions | None
    ) -> None:
        current = await self._locked_for_change(deal_id, None)
        before = await self._line_item(deal_id, item_id)
        check_version(expected, before["version"])
        await self.session.execute(delete(line_items).where(line_items.c.id == item_id))
        changes = {f"line_items.{item_id}": [line_item_read(before), None]}
        await self._reprice(current, changes, utcnow())

    # -- stage occupancy, for the pipelines slice ----------------------------------------------

    async def deals_in_stage(self, stage_id: UUID) -> int:
        count: int = await self.reader.scalar(DEALS_IN_STAGE, {"stage_id": stage_id})
        return count

    async def move_stage_deals(self, from_stage: Row, to_stage: Row, at: datetime) -> None:
        """Moves every deal (archived ones too) of a stage being deleted to another stage of
        the same kind, each as a change of its own: history row, audit row and event."""
        self._stages[to_stage["id"]] = to_stage
        for row in await self.reader.all(DEAL_IDS_IN_STAGE, {"stage_id": from_stage["id"]}):
            current = await self._locked(row["id"])
            values = {"stage_id": to_stage["id"], "stage_changed_at": at,
                      "version": current["version"] + 1, "updated_at": at}  # fmt: skip
            changes = {"stage_id": [from_stage["id"], to_stage["id"]]}
            await self._write(current, values, {}, "updated", changes, at)

    # -- shared steps --------------------------------------------------------------------------

    @property
    def _postgres(self) -> bool:
        return not self.reader.db.is_sqlite

    async def embed(self, records: list[dict[str, Any]]) -> None:
        """Adds each record's contacts and line items: two queries for any number of deals."""
        by_id = {record["id"]: record for record in records}
        for record in records:
            record.update(contacts=[], line_items=[])
        if not records:
            return
        params = {"deal_ids": list(by_id)}
        for row in await self.reader.all(CONTACTS_OF[self._postgres], params):
            by_id[row["deal_id"]]["contacts"].append(contact_link_read(row))
        for row in await self.reader.all(LINE_ITEMS_OF[self._postgres], params):
            by_id[row["deal_id"]]["line_items"].append(line_item_read(row))

    async def _require_exists(self, deal_id: UUID) -> None:
        if await self.repository.read(deal_id) is None:
            raise NotFound(f"No deal has id {deal_id}.")

    async def _locked_for_change(self, deal_id: UUID, expected: Versions | None) -> Row:
        current = await self._locked_live(deal_id)
        self.authorize_change(current)
        check_version(expected, current["version"])
        return current

    async def _touch(
        self, current: Row, values: dict[str, Any], changes: dict[str, list[Any]], at: datetime
    ) -> dict[str, Any]:
        """Records a change of what the deal embeds as a new version of the deal."""
        values = {**values, "version": current["version"] + 1, "updated_at": at}
        return await self._write(current, values, {}, "updated", changes, at)

    async def _place(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        """Resolves pipeline and stage; a stage change sets status, closed_at and history."""
        pipeline_id = values.pop("pipeline_id", None)
        stage_id = values.pop("stage_id", None)
        if current is None:
            stage = await self._entry_stage(pipeline_id, stage_id)
        else:
            other_pipeline = pipeline_id is not None and pipeline_id != current["pipeline_id"]
            if other_pipeline and stage_id is None:
                raise Invalid(
                    "Moving a deal to another pipeline needs a stage of that pipeline.",
                    [("body.stage_id", "required when pipeline_id changes")],
                )
            if stage_id is None or stage_id == current["stage_id"]:
                _check_lost_reason(values, current, current["status"])
                return
            stage = await self._stage(stage_id, "body.stage_id", entering=True)
            _require_in_pipeline(stage, pipeline_id or current["pipeline_id"])
        values.update(pipeline_id=stage["pipeline_id"], stage_id=stage["id"], status=stage["kind"])
        values["stage_changed_at"] = at
        if current is None or stage["kind"] != current["status"]:
            values["closed_at"] = None if stage["kind"] == StageKind.open else at
        _check_lost_reason(values, current, stage["kind"])

    async def _entry_stage(self, pipeline_id: UUID | None, stage_id: UUID | None) -> Row:
        if stage_id is None:
            stage = await self._pipelines().entry_stage(pipeline_id, "body.pipeline_id")
            self._stages[stage["id"]] = stage
            return stage
        stage = await self._stage(stage_id, "body.stage_id", entering=True)
        if pipeline_id is not None:
            _require_in_pipeline(stage, pipeline_id)
        return stage

    async def _stage(self, stage_id: UUID, field: str, *, entering: bool = False) -> Row:
        stage = self._stages.get(stage_id)
        if stage is None:
            pipelines = self._pipelines()
            if entering:
                found = await pipelines.stage_to_enter(stage_id)
            else:
                found = await pipelines.repository.stage(stage_id)
            if found is None:
                raise Invalid(f"No stage has id {stage_id}.", [(field, "must be a stage id")])
            stage = self._stages[stage_id] = found
        return stage

    async def _check_money(self, values: dict[str, Any], current: Row | None) -> None:
        if current is not None:
            amount_changes = "amount" in values and values["amount"] != current["amount"]
            currency_changes = values.get("currency", current["currency"]) != current["currency"]
            if (amount_changes or currency_changes) and await self._has_line_items(current["id"]):
                field = "amount" if amount_changes else "currency"
                raise Conflict(f"This deal's {field} follows its line items; change those instead.")
        if "amount" in values or "currency" in values:
            merged = {**(current or {}), **values}
            require_scale(merged["amount"], merged["currency"], "body.amount")

    async def _has_line_items(self, deal_id: UUID) -> bool:
        return bool(await self.reader.scalar(LINE_ITEM_COUNT, {"deal_id": deal_id}))

    async def _price_from_product(self, values: dict[str, Any]) -> None:
        """Fills name, price and currency from the product, where the item does not set them."""
        product_id = values.get("product_id")
        if product_id is not None:
            product = await self._products().priced(product_id, "body.product_id")
            for field, source in (("name", "name"), ("unit_price", "unit_price"),
                                  ("currency", "currency")):  # fmt: skip
                if values.get(field) is None:
                    values[field] = product[source]
        missing = [field for field in ("name", "unit_price") if values.get(field) is None]
        if missing:
            raise Invalid(
                "A line item without a product needs its own name and unit_price.",
                [(f"body.{field}", "required without product_id") for field in missing],
            )

    @staticmethod
    def _check_line_money(item: dict[str, Any], deal: Row) -> None:
        if item["currency"] != deal["currency"]:
            raise Invalid(
                "A line item's currency must be its deal's.",
                [("body.currency", f"must be {deal['currency']}, the deal's currency")],
            )
        require_scale(item["unit_price"], item["currency"], "body.unit_price")

    async def _reprice(self, current: Row, changes: dict[str, list[Any]], at: datetime) -> None:
        """After a line item change: the deal's amount is the sum of what is left (unchanged
        once the last item is gone), and the change is a new version of the deal."""
        rows = await self.reader.all(LINE_ITEMS_OF[self._postgres], {"deal_ids": [current["id"]]})
        values: dict[str, Any] = {}
        if rows:
            amount = deal_amount(rows, current["currency"])
            if amount >= MAX_AMOUNT:
                raise Invalid(
                    "The line items would make the deal's amount larger than any amount can be.",
                    [("body", f"the items' total must stay below {MAX_AMOUNT:,}")],
                )
            if amount != current["amount"]:
                values["amount"] = amount
                changes = {**changes, "amount": [current["amount"], amount]}
        await self._touch(current, values, changes, at)

    async def _make_room(
        self, deal_id: UUID, position: int, moving: UUID | None, at: datetime
    ) -> None:
        """Shifts the items at `position` and after down by one, so an item put there lands
        before them (positions are sort keys: gaps are harmless)."""
        table = line_items
        stmt = update(table).where(
            table.c.deal_id == deal_id, table.c.position >= position, table.c.id != moving
        )
        values = {"position": table.c.position + 1, "version": table.c.version + 1}
        await self.session.execute(stmt.values(**values, updated_at=at))

    async def _line_item(self, deal_id: UUID, item_id: UUID) -> Row:
        row = await self.reader.one(LINE_ITEM, {"id": item_id, "deal_id": deal_id})
        if row is None:
            raise NotFound(f"Deal {deal_id} has no line item {item_id}.")
        return row

    def _pipelines(self) -> PipelineService:
        return PipelineService(self.session, self.reader, self.principal, self)

    def _companies(self) -> CompanyService:
        return CompanyService(self.session, self.reader, self.principal, self.owners)

    def _contacts(self) -> ContactService:
        return ContactService(self.session, self.reader, self.principal, self.owners)

    def _products(self) -> ProductService:
        return ProductService(self.session, self.reader, self.principal, self.owners)


def _currency_total(row: Row, probability: int) -> dict[str, Any]:
    currency = row["currency"]
    amount = to_minor_units(row["amount"], currency)
    return {
        "currency": currency,
        "count": row["count"],
        "amount": amount,
        "weighted_amount": weighted(amount, probability, currency),
    }


def _require_in_pipeline(stage: Row, pipeline_id: UUID) -> None:
    if stage["pipeline_id"] != pipeline_id:
        raise Invalid(
            "The stage belongs to another pipeline.",
            [("body.stage_id", "must be a stage of the deal's pipeline (or of pipeline_id)")],
        )


def _check_lost_reason(values: dict[str, Any], current: Row | None, status: str) -> None:
    """A lost deal says why; a deal that is not lost has no lost reason (reopening clears it)."""
    if status == StageKind.lost:
        reason = values.get("lost_reason", current["lost_reason"] if current else None)
        if not reason:
            raise Invalid(
                "Moving a deal to a lost stage needs a lost_reason.",
                [("body.lost_reason", "required for a lost deal")],
            )
        return
    if values.get("lost_reason"):
        raise Invalid(
            "Only a lost deal has a lost reason.",
            [("body.lost_reason", "must be null unless the deal moves to a lost stage")],
        )
    if "lost_reason" in values or (current is not None and current["lost_reason"] is not None):
        values["lost_reason"] = None
