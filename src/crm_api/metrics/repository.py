"""The metrics' statements. Each is built once per shape (which filters are set, how rows are
grouped) and cached, so the reader compiles it once and PostgreSQL plans it for that shape
rather than with catch-all `(:x IS NULL OR col = :x)` conditions that no index can serve.

Every statement reads live rows only (archived records are out of every figure), and leaves to
Python only what is per group, never per row: interpolating a percentile between the two values
SQL picked, dividing one total by another, rounding once.
"""

from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    tuple_,
)

from crm_api.activities.models import ActivityType
from crm_api.activities.repository import activities
from crm_api.companies.repository import companies
from crm_api.contacts.repository import contacts, lifecycle_changes
from crm_api.core.db import exact_sum
from crm_api.core.enums import LifecycleStage, StageKind
from crm_api.deals.repository import deal_contacts, deals, stage_history
from crm_api.metrics.sql import (
    MEDIAN,
    P90,
    email_key,
    epoch_seconds,
    has_tag,
    month_of,
    week_of,
)
from crm_api.pipelines.repository import pipelines, stages

Query = Select[*tuple[Any, ...]]
Filters = tuple[str, ...]
"""The names of the filters a request set, sorted: part of a statement's shape."""

PERCENTILES = (MEDIAN, P90)


def _where(
    columns: Mapping[str, ColumnElement[Any]], filters: Filters
) -> list[ColumnElement[bool]]:
    return [columns[name] == bindparam(name) for name in filters]


def _deal_filters(filters: Filters) -> list[ColumnElement[bool]]:
    columns = {"owner_id": deals.c.owner_id, "pipeline_id": deals.c.pipeline_id}
    return [deals.c.archived_at.is_(None), *_where(columns, filters)]


def _contact_filters(filters: Filters) -> list[ColumnElement[bool]]:
    columns = {"owner_id": contacts.c.owner_id, "lead_source": contacts.c.lead_source}
    return [contacts.c.archived_at.is_(None), *_where(columns, filters)]


def _in_window(column: ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(column >= bindparam("start"), column < bindparam("end"))


def _won_in_window(filters: Filters) -> list[ColumnElement[bool]]:
    return [
        *_deal_filters(filters),
        deals.c.status == StageKind.won.value,
        _in_window(deals.c.closed_at),
    ]


def _deal_key(group: str | None, month_column: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    keys = {"owner": deals.c.owner_id, "pipeline": deals.c.pipeline_id, "month": month_column}
    return [keys[group].label("key")] if group else []


def _contact_key(group: str | None) -> list[ColumnElement[Any]]:
    keys = {
        "owner": contacts.c.owner_id,
        "lead_source": contacts.c.lead_source,
        "month": month_of(contacts.c.created_at),
    }
    return [keys[group].label("key")] if group else []


def order_statistics(values: Query, total: Callable[[Any], Any] = func.sum) -> Query:
    """Per `key` (if `values` has one): the rows, the non-null values `n`, their `total`, and the
    two values around each percentile (`sql.Percentile`). `values` selects `v` and maybe `key`."""
    source = values.subquery("vals")
    keys = [source.c.key] if "key" in source.c else []
    ranked = select(
        *source.c,
        func.row_number()
        .over(partition_by=keys or None, order_by=(source.c.v.is_(None), source.c.v))
        .label("rn"),
        func.count(source.c.v).over(partition_by=keys or None).label("n"),
    ).subquery("ranked")
    ranked_keys = [ranked.c.key] if keys else []
    return select(
        *ranked_keys,
        func.count().label("rows"),
        func.count(ranked.c.v).label("n"),
        total(ranked.c.v).label("total"),
        *(
            column
            for percentile in PERCENTILES
            for column in percentile.columns(ranked.c.v, ranked.c.rn, ranked.c.n)
        ),
    ).group_by(*ranked_keys)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """Rows meeting `condition`: 0, not NULL, over no rows."""
    return func.count(case((condition, 1)))


# -- pipeline ------------------------------------------------------------------------------------


@cache
def open_stages(filters: Filters) -> Query:
    """The open stages of every pipeline (or of `pipeline_id`), default pipeline first."""
    where = [stages.c.kind == StageKind.open.value]
    if "pipeline_id" in filters:
        where.append(pipelines.c.id == bindparam("pipeline_id"))
    return (
        select(
            pipelines.c.id.label("pipeline_id"),
            pipelines.c.name.label("pipeline_name"),
            stages.c.id.label("stage_id"),
            stages.c.name,
            stages.c.probability,
        )
        .join_from(stages, pipelines, stages.c.pipeline_id == pipelines.c.id)
        .where(*where)
        .order_by(pipelines.c.is_default.desc(), pipelines.c.created_at, pipelines.c.id)
        .order_by(stages.c.position, stages.c.id)
    )


@cache
def open_deals_by_stage(filters: Filters) -> Query:
    return (
        select(
            deals.c.stage_id,
            deals.c.currency,
            func.count().label("deals"),
            exact_sum(deals.c.amount).label("amount"),
        )
        .where(*_deal_filters(filters), deals.c.status == StageKind.open.value)
        .group_by(deals.c.stage_id, deals.c.currency)
    )


# -- forecast ------------------------------------------------------------------------------------


@cache
def won_by_month(filters: Filters) -> Query:
    month = month_of(deals.c.closed_at)
    return (
        select(
            month.label("month"),
            deals.c.currency,
            func.count().label("deals"),
            exact_sum(deals.c.amount).label("amount"),
        )
        .where(*_won_in_window(filters))
        .group_by(month, deals.c.currency)
    )


def _open_deals(filters: Filters) -> list[ColumnElement[bool]]:
    return [*_deal_filters(filters), deals.c.status == StageKind.open.value]


@cache
def open_by_close_month(filters: Filters) -> Query:
    month = month_of(deals.c.expected_close_date)
    return (
        select(
            month.label("month"),
            stages.c.probability,
            deals.c.currency,
            func.count().label("deals"),
            exact_sum(deals.c.amount).label("amount"),
        )
        .join_from(deals, stages, deals.c.stage_id == stages.c.id)
        .where(
            *_open_deals(filters),
            deals.c.expected_close_date >= bindparam("first"),
            deals.c.expected_close_date <= bindparam("last"),
        )
        .group_by(month, stages.c.probability, deals.c.currency)
    )


@cache
def undated_open_deals(filters: Filters) -> Query:
    return select(func.count().label("deals")).where(
        *_open_deals(filters), deals.c.expected_close_date.is_(None)
    )


# -- closed deals: win rate, deal size, sales cycle ----------------------------------------------


@cache
def win_rate(filters: Filters, group: str | None) -> Query:
    keys = _deal_key(group, month_of(deals.c.closed_at))
    return (
        select(
            *keys,
            _count_if(deals.c.status == StageKind.won.value).label("won"),
            _count_if(deals.c.status == StageKind.lost.value).label("lost"),
        )
        # closed_at is set exactly while a deal is won or lost.
        .where(*_deal_filters(filters), _in_window(deals.c.closed_at))
        .group_by(*keys)
    )


@cache
def deal_size(filters: Filters, group: str | None) -> Query:
    values = select(
        *_deal_key(group, month_of(deals.c.closed_at)), deals.c.amount.label("v")
    ).where(*_won_in_window(filters), deals.c.currency == bindparam("currency"))
    return order_statistics(values, exact_sum)


@cache
def won_in_other_currencies(filters: Filters) -> Query:
    return select(func.count().label("deals")).where(
        *_won_in_window(filters), deals.c.currency != bindparam("currency")
    )


@cache
def sales_cycle(filters: Filters, group: str | None) -> Query:
    seconds = epoch_seconds(deals.c.closed_at) - epoch_seconds(deals.c.created_at)
    values = select(*_deal_key(group, month_of(deals.c.closed_at)), seconds.label("v")).where(
        *_won_in_window(filters)
    )
    return order_statistics(values)


# -- stage funnel --------------------------------------------------------------------------------

FUNNEL_STAGES = (
    select(stages.c.id, stages.c.name, stages.c.kind, stages.c.position)
    .where(stages.c.pipeline_id == bindparam("pipeline_id"))
    .order_by(stages.c.position, stages.c.id)
)


def _cohort(filters: Filters) -> Any:
    """The funnel's deals: created in the window, now in the pipeline."""
    return (
        select(deals.c.id, deals.c.stage_id, deals.c.status, deals.c.stage_changed_at)
        .where(
            *_deal_filters((*filters, "pipeline_id")),
            _in_window(deals.c.created_at),
        )
        .cte("cohort")
    )


@cache
def funnel_furthest(filters: Filters) -> Query:
    """How many cohort deals got at most as far as each position: the furthest stage each one
    entered, by position, lost stages aside."""
    cohort = _cohort(filters)
    furthest = (
        select(stage_history.c.deal_id, func.max(stages.c.position).label("position"))
        .join_from(stage_history, cohort, cohort.c.id == stage_history.c.deal_id)
        .join(stages, stages.c.id == stage_history.c.to_stage_id)
        .where(
            stages.c.pipeline_id == bindparam("pipeline_id"),
            stages.c.kind != StageKind.lost.value,
        )
        .group_by(stage_history.c.deal_id)
        .subquery("furthest")
    )
    return select(furthest.c.position, func.count().label("deals")).group_by(furthest.c.position)


@cache
def funnel_time_in_stage(filters: Filters) -> Query:
    """Per stage, the seconds of every finished visit of a cohort deal: from entering the stage
    to entering the next one (the visit still going on is not counted)."""
    cohort = _cohort(filters)
    entered = epoch_seconds(stage_history.c.changed_at)
    visits = (
        select(
            stage_history.c.to_stage_id.label("key"),
            (
                func.lead(entered).over(
                    partition_by=stage_history.c.deal_id,
                    order_by=(stage_history.c.changed_at, stage_history.c.id),
                )
                - entered
            ).label("v"),
        )
        .join_from(stage_history, cohort, cohort.c.id == stage_history.c.deal_id)
        .subquery("visits")
    )
    return order_statistics(select(visits.c.key, visits.c.v).where(visits.c.v.is_not(None)))


@cache
def funnel_now(filters: Filters) -> Query:
    """Where the cohort's deals are now, and how many have sat there since `stalled_before`."""
    cohort = _cohort(filters)
    return select(
        cohort.c.stage_id,
        cohort.c.status,
        func.count().label("deals"),
        _count_if(cohort.c.stage_changed_at < bindparam("stalled_before")).label("stalled"),
    ).group_by(cohort.c.stage_id, cohort.c.status)


# -- contacts: lead response, conversion, retention ----------------------------------------------


def _created_in_window(filters: Filters) -> list[ColumnElement[bool]]:
    return [*_contact_filters(filters), _in_window(contacts.c.created_at)]


@cache
def lead_response(filters: Filters, group: str | None) -> Query:
    waited = epoch_seconds(contacts.c.first_outreach_at) - epoch_seconds(contacts.c.created_at)
    # Outreach logged as happening before the contact was entered counts as immediate.
    seconds = case((waited < 0, 0), else_=waited)
    values = select(*_contact_key(group), seconds.label("v")).where(*_created_in_window(filters))
    return order_statistics(values)


def _entered(stage_names: Iterable[LifecycleStage], contact: Any) -> Any:
    changes = lifecycle_changes.alias("entered")
    return exists().where(
        changes.c.contact_id == contact,
        or_(*(changes.c.to_stage == stage.value for stage in stage_names)),
    )


@cache
def conversion_by_source(filters: Filters) -> Query:
    converted = _entered([LifecycleStage.customer], contacts.c.id)
    return (
        select(
            contacts.c.lead_source,
            func.count().label("contacts"),
            _count_if(converted).label("converted"),
        )
        .where(*_created_in_window(filters))
        .group_by(contacts.c.lead_source)
    )


@cache
def won_by_source(filters: Filters) -> Query:
    """Won deals on the cohort's contacts, each deal once per source (a deal with contacts from
    two sources counts for both)."""
    linked = (
        select(contacts.c.lead_source, deals.c.id, deals.c.currency, deals.c.amount)
        .join_from(contacts, deal_contacts, deal_contacts.c.contact_id == contacts.c.id)
        .join(deals, deals.c.id == deal_contacts.c.deal_id)
        .where(
            *_created_in_window(filters),
            deals.c.status == StageKind.won.value,
            deals.c.archived_at.is_(None),
        )
        .distinct()
        .subquery("linked")
    )
    return select(
        linked.c.lead_source,
        linked.c.currency,
        func.count().label("deals"),
        exact_sum(linked.c.amount).label("amount"),
    ).group_by(linked.c.lead_source, linked.c.currency)


CUSTOMER_STAGES = (LifecycleStage.customer, LifecycleStage.evangelist)


@cache
def retention(filters: Filters) -> Query:
    """Customers at `start` (their last lifecycle change before it entered customer or
    evangelist), and how many of them entered churned during the window."""
    change, later = lifecycle_changes.alias("change"), lifecycle_changes.alias("later")
    superseded = exists().where(
        later.c.contact_id == change.c.contact_id,
        later.c.changed_at < bindparam("start"),
        tuple_(later.c.changed_at, later.c.id) > tuple_(change.c.changed_at, change.c.id),
    )
    customers = (
        select(change.c.contact_id)
        .join_from(change, contacts, contacts.c.id == change.c.contact_id)
        .where(
            *_contact_filters(filters),
            or_(*(change.c.to_stage == stage.value for stage in CUSTOMER_STAGES)),
            change.c.changed_at < bindparam("start"),
            ~superseded,
        )
        .subquery("customers")
    )
    churn = lifecycle_changes.alias("churn")
    churned = exists().where(
        churn.c.contact_id == customers.c.contact_id,
        churn.c.to_stage == LifecycleStage.churned.value,
        _in_window(churn.c.changed_at),
    )
    return select(func.count().label("customers"), _count_if(churned).label("churned")).select_from(
        customers
    )


# -- activity ------------------------------------------------------------------------------------


@cache
def activity_by_week(filters: Filters) -> Query:
    week = week_of(activities.c.occurred_at)
    where = [activities.c.archived_at.is_(None), _in_window(activities.c.occurred_at)]
    if "owner_id" in filters:
        where.append(activities.c.logged_by == bindparam("owner_id"))
    return (
        select(
            week.label("week_start"),
            activities.c.logged_by.label("user_id"),
            *(_count_if(activities.c.type == kind).label(kind) for kind in ActivityType),
            func.count().label("total"),
        )
        .where(*where)
        .group_by(week, activities.c.logged_by)
        .order_by(week, activities.c.logged_by)
    )


# -- data quality --------------------------------------------------------------------------------

CONTACT_FIELDS = {
    "first_name": contacts.c.first_name.is_not(None),
    "last_name": contacts.c.last_name.is_not(None),
    "email": contacts.c.email.is_not(None),
    "phone": contacts.c.phone.is_not(None),
    "title": contacts.c.title.is_not(None),
    "company": contacts.c.company_id.is_not(None),
    "lifecycle_stage": contacts.c.lifecycle_stage.is_not(None),
    "lead_source": contacts.c.lead_source.is_not(None),
    "owner": contacts.c.owner_id.is_not(None),
}
COMPANY_FIELDS = {
    "domain": companies.c.domain.is_not(None),
    "industry": companies.c.industry.is_not(None),
    "employee_count": companies.c.employee_count.is_not(None),
    "annual_revenue": companies.c.annual_revenue.is_not(None),
    "phone": companies.c.phone.is_not(None),
    "address": companies.c.address.is_not(None),
    "lifecycle_stage": companies.c.lifecycle_stage.is_not(None),
    "owner": companies.c.owner_id.is_not(None),
}
# The deals with a live contact, joined (a hash join) rather than tested per deal: an IN
# subquery too large for work_mem is rescanned for every deal on PostgreSQL.
_WITH_CONTACTS = (
    select(deal_contacts.c.deal_id)
    .join(contacts, contacts.c.id == deal_contacts.c.contact_id)
    .where(contacts.c.archived_at.is_(None))
    .distinct()
    .subquery("with_contacts")
)
DEAL_FIELDS = {
    "amount": deals.c.amount > 0,
    "expected_close_date": deals.c.expected_close_date.is_not(None),
    "company": deals.c.company_id.is_not(None),
    "contacts": _WITH_CONTACTS.c.deal_id.is_not(None),
    "next_step": deals.c.next_step.is_not(None),
    "owner": deals.c.owner_id.is_not(None),
}


def _filled(
    table: Any, fields: Mapping[str, ColumnElement[bool]], source: Any = None
) -> Callable[[Filters], Query]:
    @cache
    def statement(filters: Filters) -> Query:
        where = [table.c.archived_at.is_(None)]
        if "owner_id" in filters:
            where.append(table.c.owner_id == bindparam("owner_id"))
        counts = [_count_if(filled).label(name) for name, filled in fields.items()]
        return (
            select(func.count().label("records"), *counts)
            .select_from(table if source is None else source)
            .where(*where)
        )

    return statement


FILLED: dict[str, tuple[Mapping[str, ColumnElement[bool]], Callable[[Filters], Query]]] = {
    "contacts": (CONTACT_FIELDS, _filled(contacts, CONTACT_FIELDS)),
    "companies": (COMPANY_FIELDS, _filled(companies, COMPANY_FIELDS)),
    "deals": (
        DEAL_FIELDS,
        _filled(
            deals,
            DEAL_FIELDS,
            deals.outerjoin(_WITH_CONTACTS, _WITH_CONTACTS.c.deal_id == deals.c.id),
        ),
    ),
}


@cache
def duplicate_contacts(filters: Filters) -> Query:
    """Live contacts sharing a normalized email (`sql.email_key`) or a phone with another live
    contact (of any owner). The shared keys are found once each and joined (hash joins): tested
    per contact as `IN (subquery)`, PostgreSQL rescans a subquery too large for work_mem for
    every contact."""
    live = contacts.c.archived_at.is_(None)
    key = email_key(contacts.c.email)
    # Emails are unique among live contacts as stored, so a shared key always includes a tagged
    # address: only the (few) tagged addresses' keys are grouped, not every contact's.
    tagged = select(key.label("key")).where(live, has_tag(contacts.c.email)).distinct()
    tagged_keys = tagged.subquery("tagged_keys")
    shared_emails = (
        select(key.label("key"))
        .select_from(contacts.join(tagged_keys, tagged_keys.c.key == key))
        .where(live).group_by(key).having(func.count() > 1).subquery("shared_emails")
    )  # fmt: skip
    shared_phones = (
        select(contacts.c.phone).where(live, contacts.c.phone.is_not(None))
        .group_by(contacts.c.phone).having(func.count() > 1).subquery("shared_phones")
    )  # fmt: skip
    by_email = shared_emails.c.key.is_not(None)
    by_phone = shared_phones.c.phone.is_not(None)
    where: list[ColumnElement[bool]] = [live]
    if "owner_id" in filters:
        where.append(contacts.c.owner_id == bindparam("owner_id"))
    counts = {"email": by_email, "phone": by_phone, "contacts": or_(by_email, by_phone)}
    return (
        select(*(_count_if(shared).label(name) for name, shared in counts.items()))
        .select_from(
            contacts.outerjoin(shared_emails, shared_emails.c.key == key).outerjoin(
                shared_phones, shared_phones.c.phone == contacts.c.phone
            )
        )
        .where(*where)
    )
