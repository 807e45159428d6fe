"""The feed's one read: a page of events with where the feed ends and where retention cut it,
all in one statement, so the three are one snapshot (see FeedService.page)."""

from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select, true

from crm_api.core.events import events
from crm_api.core.listing import one_of
from crm_api.feed.sequencer import FEED_END, PURGE_MARK

EVENT_COLUMNS = (
    events.c.sequence,
    events.c.id,
    events.c.type,
    events.c.occurred_at,
    events.c.entity_type,
    events.c.entity_id,
    events.c.changed_fields,
    events.c.data,
)


@cache
def page_statement(postgres: bool, by_type: bool) -> Select[Any]:
    """Events after `:after` (`:types` only, if `by_type`), up to `:limit`, each with
    `feed_end` and `purged_through`; one row of nulls and those two when there are none."""
    head = select(
        FEED_END.label("feed_end"), PURGE_MARK.scalar_subquery().label("purged_through")
    ).subquery("head")
    page = select(*EVENT_COLUMNS).where(events.c.sequence > bindparam("after"))
    if by_type:
        page = page.where(one_of(events.c.type, "types", postgres))
    page_rows = page.order_by(events.c.sequence).limit(bindparam("limit")).subquery("page")
    return (
        select(head.c.feed_end, head.c.purged_through, *page_rows.c)
        .select_from(head.outerjoin(page_rows, true()))
        .order_by(page_rows.c.sequence)
    )


LATEST = select(FEED_END.label("feed_end"))
