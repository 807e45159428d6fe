"""The only place with deal SQL: the read shape (stage and company joined), list filters and
sorts, the board's totals, and the deal's contacts, line items and stage history."""

from typing import Any

from sqlalchemy import Select, bindparam, func, select

from crm_api.companies.repository import (
    COMPANY_SUMMARY_COLUMNS,
    companies_matching,
    company_fields,
    company_summary,
)
from crm_api.contacts.repository import contacts
from crm_api.core.db import exact_sum, table_of
from crm_api.core.enums import StageKind
from crm_api.core.fulltext import TextIndex, text_match, text_rank
from crm_api.core.listing import (
    ListSpec,
    one_of,
    prefix_match,
    prefix_search,
    record_filters,
    record_sorts,
    sort_key,
)
from crm_api.core.money import to_minor_units
from crm_api.core.reader import Row
from crm_api.core.records import RecordKind
from crm_api.core.search import SearchSpec, TextSearch, column_fields
from crm_api.custom_fields.catalog import CustomFieldRules, CustomSearchFields
from crm_api.custom_fields.models import ObjectType
from crm_api.deals.models import Deal, DealContact, DealStageChange, LineItem
from crm_api.pipelines.repository import stages
from crm_api.tasks.repository import next_task_columns, pop_next_task, with_next_task
from crm_api.users.repository import owner_fields

deals = table_of(Deal)
deal_contacts = table_of(DealContact)
stage_history = table_of(DealStageChange)
line_items = table_of(LineItem)

_COMPANY = "company__"
_STAGE = "stage__"
STAGE_SUMMARY_COLUMNS = ("name", "probability")


def _with_stage_and_company() -> Select[Any]:
    # Every deal read shows its stage (for weighted_amount) and company summary: joined once.
    company = COMPANY_SUMMARY_COLUMNS[0].table
    stmt = (
        select(
            deals,
            *(stages.c[key].label(_STAGE + key) for key in STAGE_SUMMARY_COLUMNS),
            *(column.label(_COMPANY + column.key) for column in COMPANY_SUMMARY_COLUMNS),
        )
        .join(stages, stages.c.id == deals.c.stage_id)
        .outerjoin(company, company.c.id == deals.c.company_id)
    )
    return with_next_task(stmt, deals)


def weighted(amount: Any, probability: int, currency: str) -> Any:
    return to_minor_units(amount * probability / 100, currency)


def to_card(row: Row) -> dict[str, Any]:
    """A deal without its contacts and line items: list pages and board columns add those."""
    record = {
        key: value
        for key, value in row.items()
        if key != "name_key" and not key.startswith((_COMPANY, _STAGE))
    }
    currency = record["currency"]
    probability = row[_STAGE + "probability"]
    record["amount"] = to_minor_units(record["amount"], currency)
    record["weighted_amount"] = weighted(record["amount"], probability, currency)
    record["stage"] = {
        "id": row["stage_id"],
        "name": row[_STAGE + "name"],
        "kind": row["status"],
        "probability": probability,
    }
    record["company"] = company_summary(row, _COMPANY)
    pop_next_task(record)
    return record


def in_read_shape(row: Row, stage: Row, company: Row | None, next_task: Row | None) -> Row:
    """A raw deal row in the shape of `read`, given its stage, company and next task."""
    return {
        **row,
        **{_STAGE + key: stage[key] for key in STAGE_SUMMARY_COLUMNS},
        **{_COMPANY + key: (company or {}).get(key) for key in ("id", "name", "domain")},
        **next_task_columns(next_task),
    }


_has_contact = deals.c.id.in_(
    select(deal_contacts.c.deal_id).where(deal_contacts.c.contact_id == bindparam("contact_id"))
)

LISTING = ListSpec(
    table=deals,
    base=_with_stage_and_company,
    filters={
        "pipeline_id": lambda: deals.c.pipeline_id == bindparam("pipeline_id"),
        "stage_id": lambda: deals.c.stage_id == bindparam("stage_id"),
        "status": lambda: deals.c.status == bindparam("status"),
        "owner_id": lambda: deals.c.owner_id == bindparam("owner_id"),
        "company_id": lambda: deals.c.company_id == bindparam("company_id"),
        "contact_id": lambda: _has_contact,
        "expected_close_from": lambda: (
            deals.c.expected_close_date >= bindparam("expected_close_from")
        ),
        "expected_close_to": lambda: deals.c.expected_close_date <= bindparam("expected_close_to"),
        "amount_min": lambda: deals.c.amount >= bindparam("amount_min"),
        "amount_max": lambda: deals.c.amount <= bindparam("amount_max"),
        **record_filters(deals),
        "q": prefix_match(deals),
    },
    sorts={
        **record_sorts(deals),
        "amount": sort_key(deals.c.amount, deals.c.id),
        "expected_close_date": sort_key(deals.c.expected_close_date, deals.c.id),
    },
    default_sort="created_at",
    archived_column=deals.c.archived_at,
    binders={"q": prefix_search},
)

TEXT = TextIndex(deals, ("name",))

SEARCH = SearchSpec(
    listing=LISTING,
    fields={
        **column_fields(deals, skip=("name_key", "next_task_id"), choices={"status": StageKind}),
        **company_fields(deals.c.company_id),
        **owner_fields(deals.c.owner_id),
    },
    text=TextSearch(
        match=lambda query: text_match(TEXT, query),
        rank=lambda query: text_rank(TEXT, query),
        related=(deals.c.company_id, companies_matching),
    ),
    custom_fields=CustomSearchFields(ObjectType.deal, deals.c.custom_fields),
)

DEAL = RecordKind(
    entity_type="deal",
    table=deals,
    read=_with_stage_and_company().where(deals.c.id == bindparam("id")),
    to_read=to_card,
    listing=LISTING,
    unique_keys=("external_id",),
    path="/v1/deals",
    custom_fields=CustomFieldRules(ObjectType.deal),
    search=SEARCH,
)


# -- what a deal read embeds, for one deal or a page of them -------------------------------------


def _contacts_of(postgres: bool) -> Select[Any]:
    return (
        select(
            deal_contacts,
            contacts.c.first_name,
            contacts.c.last_name,
            contacts.c.email,
        )
        .join(contacts, contacts.c.id == deal_contacts.c.contact_id)
        .where(one_of(deal_contacts.c.deal_id, "deal_ids", postgres))
        .order_by(deal_contacts.c.deal_id, deal_contacts.c.added_at, deal_contacts.c.contact_id)
    )


def _line_items_of(postgres: bool) -> Select[Any]:
    return (
        select(line_items)
        .where(one_of(line_items.c.deal_id, "deal_ids", postgres))
        .order_by(line_items.c.deal_id, line_items.c.position, line_items.c.id)
    )


CONTACTS_OF = {postgres: _contacts_of(postgres) for postgres in (False, True)}
LINE_ITEMS_OF = {postgres: _line_items_of(postgres) for postgres in (False, True)}

LINE_ITEM = select(line_items).where(
    line_items.c.id == bindparam("id"), line_items.c.deal_id == bindparam("deal_id")
)
LINE_ITEM_COUNT = select(func.count()).where(line_items.c.deal_id == bindparam("deal_id"))
LAST_POSITION = select(func.max(line_items.c.position)).where(
    line_items.c.deal_id == bindparam("deal_id")
)
CONTACT_LINK = select(deal_contacts).where(
    deal_contacts.c.deal_id == bindparam("deal_id"),
    deal_contacts.c.contact_id == bindparam("contact_id"),
)
CONTACT_COUNT = select(func.count()).where(deal_contacts.c.deal_id == bindparam("deal_id"))


def contact_link_read(row: Row) -> dict[str, Any]:
    return {
        "contact_id": row["contact_id"],
        "role": row["role"],
        "added_at": row["added_at"],
        "added_by": row["added_by"],
        "contact": {
            "id": row["contact_id"],
            "first_name": row["first_name"],
            "last_name": row["last_name"],
            "email": row["email"],
        },
    }


# -- stage history -------------------------------------------------------------------------------

_from_stage = stages.alias("from_stage")
_to_stage = stages.alias("to_stage")
HISTORY = (
    select(
        stage_history,
        _from_stage.c.name.label("from_stage_name"),
        _to_stage.c.name.label("to_stage_name"),
        _to_stage.c.kind.label("to_stage_kind"),
    )
    .outerjoin(_from_stage, _from_stage.c.id == stage_history.c.from_stage_id)
    .outerjoin(_to_stage, _to_stage.c.id == stage_history.c.to_stage_id)
    .where(stage_history.c.deal_id == bindparam("deal_id"))
    .order_by(stage_history.c.changed_at, stage_history.c.id)
)


# -- board and stage occupancy -------------------------------------------------------------------


def _stage_totals(open_only: bool) -> Select[Any]:
    stmt = (
        select(
            deals.c.stage_id,
            deals.c.currency,
            func.count().label("count"),
            exact_sum(deals.c.amount).label("amount"),
        )
        .where(deals.c.pipeline_id == bindparam("pipeline_id"), deals.c.archived_at.is_(None))
        .group_by(deals.c.stage_id, deals.c.currency)
        .order_by(deals.c.stage_id, deals.c.currency)
    )
    # A plain comparison, not IN (…): the raw path cannot expand IN lists.
    return stmt.where(deals.c.status == StageKind.open.value) if open_only else stmt


OPEN_STAGE_TOTALS = _stage_totals(open_only=True)
ALL_STAGE_TOTALS = _stage_totals(open_only=False)

DEALS_IN_STAGE = select(func.count()).where(deals.c.stage_id == bindparam("stage_id"))
DEAL_IDS_IN_STAGE = (
    select(deals.c.id)
    .where(deals.c.stage_id == bindparam("stage_id"))
    .order_by(deals.c.id)
    .with_for_update()
)
