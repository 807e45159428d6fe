"""The reads duplicate detection needs: narrow rows, never a whole table of full records.

Each statement exists per shape (scoped to an owner or not; PostgreSQL's array parameters or
SQLite's expanded lists) and is built once, so the raw read path compiles it once.
"""

from collections.abc import Callable
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, select, text

from crm_api.companies.repository import companies
from crm_api.contacts.repository import contacts
from crm_api.core.listing import one_of
from crm_api.dedupe.matching import MAX_SHARING

_live = contacts.c.archived_at.is_(None)
_NAMES = (contacts.c.id, contacts.c.company_id, contacts.c.first_name, contacts.c.last_name)


def _owned(owned: bool, table: Any = contacts) -> list[ColumnElement[bool]]:
    return [table.c.owner_id == bindparam("owner_id")] if owned else []


def _both(build: Callable[[bool], Select[Any]]) -> dict[bool, Select[Any]]:
    return {owned: build(owned) for owned in (False, True)}


def _shapes(build: Callable[[bool, bool], Select[Any]]) -> dict[tuple[bool, bool], Select[Any]]:
    """Keyed by (postgres, owned)."""
    return {(pg, owned): build(pg, owned) for pg in (False, True) for owned in (False, True)}


# -- contacts: exact keys ------------------------------------------------------------------------


# Two steps, each on an index: the shared phones from the live phone index alone (grouped in
# its order), then their holders by phone.
SHARED_PHONES = _both(
    lambda owned: (
        select(contacts.c.phone)
        .where(_live, contacts.c.phone.is_not(None), *_owned(owned))
        .group_by(contacts.c.phone)
        .having(func.count().between(2, MAX_SHARING))
    )
)
PHONE_HOLDERS = _shapes(
    lambda pg, owned: select(contacts.c.id, contacts.c.company_id, contacts.c.phone).where(
        _live, one_of(contacts.c.phone, "phones", pg), *_owned(owned)
    )
)

# Emails are unique among live contacts as stored, so two can only share an email key when one
# of them has a +tag: those are read (from their own small index), then the untagged holders of
# their keys. The condition is SQL text, as the index's, so PostgreSQL can prove it uses it.
TAGGED = text("email LIKE '%+%'")
TAGGED_EMAILS = _both(
    lambda owned: select(contacts.c.id, contacts.c.company_id, contacts.c.email).where(
        _live, TAGGED, *_owned(owned)
    )
)
EMAIL_HOLDERS = _shapes(
    lambda pg, owned: select(contacts.c.id, contacts.c.company_id, contacts.c.email).where(
        _live, one_of(contacts.c.email, "emails", pg), *_owned(owned)
    )
)

# -- contacts: names by company ------------------------------------------------------------------


class Window(Enum):
    """Where a window of contacts (ordered by company) starts."""

    start = "start"  # the first company
    at = "at"  # at `:company_id` (included)
    after = "after"  # after `:company_id`


def _window(owned: bool, start: Window) -> Select[Any]:
    where = {
        Window.start: contacts.c.company_id.is_not(None),
        Window.at: contacts.c.company_id >= bindparam("company_id"),
        Window.after: contacts.c.company_id > bindparam("company_id"),
    }[start]
    return (
        select(*_NAMES)
        .where(_live, where, *_owned(owned))
        .order_by(contacts.c.company_id)
        .limit(bindparam("limit"))
    )


WINDOWS = {(owned, start): _window(owned, start) for owned in (False, True) for start in Window}
OF_COMPANIES = _shapes(
    lambda pg, owned: select(*_NAMES).where(
        _live, one_of(contacts.c.company_id, "company_ids", pg), *_owned(owned)
    )
)
CONTACT_SUMMARIES = {
    pg: select(
        contacts.c.id,
        contacts.c.first_name,
        contacts.c.last_name,
        contacts.c.email,
        contacts.c.phone,
        contacts.c.company_id,
        contacts.c.owner_id,
    ).where(one_of(contacts.c.id, "ids", pg))
    for pg in (False, True)
}

# -- companies -----------------------------------------------------------------------------------

_COMPANY_COLUMNS = (
    companies.c.id,
    companies.c.name,
    companies.c.domain,
    companies.c.phone,
    companies.c.owner_id,
)
LIVE_COMPANIES = _both(
    lambda owned: select(*_COMPANY_COLUMNS).where(
        companies.c.archived_at.is_(None), *_owned(owned, companies)
    )
)
COMPANY_SUMMARIES = {
    pg: select(*_COMPANY_COLUMNS).where(one_of(companies.c.id, "ids", pg)) for pg in (False, True)
}
