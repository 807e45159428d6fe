"""The only place with activity SQL: reads, list filters, the contacts of activities, and the
derived `last_activity_at` / `first_outreach_at` of the records they are linked to."""

from typing import Any

from sqlalchemy import Update, and_, bindparam, func, or_, select, update

from crm_api.activities.models import Activity, ActivityContact, ActivityType, Direction
from crm_api.companies.repository import companies
from crm_api.contacts.repository import contacts
from crm_api.core.db import table_of
from crm_api.core.listing import ListSpec, one_of, record_filters, sort_key
from crm_api.core.reader import Row
from crm_api.core.records import RecordKind
from crm_api.deals.repository import deals

activities = table_of(Activity)
activity_contacts = table_of(ActivityContact)

_about_contact = activities.c.id.in_(
    select(activity_contacts.c.activity_id).where(
        activity_contacts.c.contact_id == bindparam("contact_id")
    )
)

LISTING = ListSpec(
    table=activities,
    filters={
        **record_filters(activities),
        "type": lambda: activities.c.type == bindparam("type"),
        "logged_by": lambda: activities.c.logged_by == bindparam("logged_by"),
        "contact_id": lambda: _about_contact,
        "company_id": lambda: activities.c.company_id == bindparam("company_id"),
        "deal_id": lambda: activities.c.deal_id == bindparam("deal_id"),
        "occurred_after": lambda: activities.c.occurred_at >= bindparam("occurred_after"),
        "occurred_before": lambda: activities.c.occurred_at < bindparam("occurred_before"),
    },
    sorts={
        "occurred_at": sort_key(activities.c.occurred_at, activities.c.id),
        "created_at": sort_key(activities.c.created_at, activities.c.id),
        "updated_at": sort_key(activities.c.updated_at, activities.c.id),
    },
    default_sort="-occurred_at",
    archived_column=activities.c.archived_at,
)


def to_read(row: Row) -> dict[str, Any]:
    """An activity row; its contact ids are added by the service."""
    return dict(row)


ACTIVITY = RecordKind(
    entity_type="activity",
    table=activities,
    read=select(activities).where(activities.c.id == bindparam("id")),
    to_read=to_read,
    listing=LISTING,
    unique_keys=(),
    path="/v1/activities",
    internal_columns=frozenset(),
    owner_column="logged_by",
)

CONTACTS_OF = {
    postgres: select(activity_contacts)
    .where(one_of(activity_contacts.c.activity_id, "activity_ids", postgres))
    .order_by(activity_contacts.c.activity_id, activity_contacts.c.contact_id)
    for postgres in (False, True)
}

# -- derived columns of the linked records -------------------------------------------------------

_live_link = and_(activity_contacts.c.contact_id == contacts.c.id, activity_contacts.c.live)
_outreach = or_(
    activities.c.type == ActivityType.meeting.value,
    and_(
        activities.c.type.in_([ActivityType.call.value, ActivityType.email.value]),
        activities.c.direction == Direction.outbound.value,
    ),
)


def _for_ids(table: Any) -> Any:
    return update(table).where(table.c.id.in_(bindparam("ids", expanding=True)))


REFRESH_CONTACTS: Update = _for_ids(contacts).values(
    last_activity_at=select(func.max(activity_contacts.c.occurred_at))
    .where(_live_link)
    .scalar_subquery(),
    first_outreach_at=select(func.min(activity_contacts.c.occurred_at))
    .join(activities, activities.c.id == activity_contacts.c.activity_id)
    .where(_live_link, _outreach)
    .scalar_subquery(),
)


def _refresh_by_column(table: Any, link: Any) -> Update:
    latest = select(func.max(activities.c.occurred_at)).where(
        link == table.c.id, activities.c.archived_at.is_(None)
    )
    stmt: Update = _for_ids(table).values(last_activity_at=latest.scalar_subquery())
    return stmt


REFRESH_COMPANIES = _refresh_by_column(companies, activities.c.company_id)
REFRESH_DEALS = _refresh_by_column(deals, activities.c.deal_id)
