"""Reading the change feed: pages after a cursor, in sequence order, never skipping an event."""

from typing import Any

from crm_api.core.errors import Gone, Invalid
from crm_api.core.events import events
from crm_api.core.listing import SortKey, decode_cursor, encode_cursor
from crm_api.core.reader import Reader
from crm_api.feed.repository import EVENT_COLUMNS, LATEST, page_statement
from crm_api.feed.sequencer import place_committed

_CURSOR = "feed"
_KEY = SortKey(columns=(events.c.sequence,), parse=(int,))
_FIELDS = tuple(column.key for column in EVENT_COLUMNS)


def encode_position(position: int) -> str:
    return encode_cursor(_CURSOR, [position])


def decode_position(cursor: str) -> int:
    (position,) = decode_cursor(cursor, _CURSOR, _KEY, field="query.after")
    if position is None or not 0 <= position < 2**63:  # a BIGINT
        raise Invalid("The cursor is not valid.", [("query.after", "not a feed position")])
    return int(position)


class FeedService:
    def __init__(self, reader: Reader, retention_days: int) -> None:
        self.reader = reader
        self.retention_days = retention_days

    async def page(
        self, after: str | None, types: list[str] | None, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        """Events after the cursor (from the oldest kept, without one), and the cursor to go on
        from. The page, the feed's end and retention's mark come from one statement: when the
        page is not full, every matching event up to the end is in it, so the next cursor can
        move to the end (a reader of rare types does not fall behind retention)."""
        await place_committed(self.reader.db, wait=False)
        position = decode_position(after) if after else 0
        postgres = not self.reader.db.is_sqlite
        params = {"after": position, "limit": limit, "types": types}
        rows = await self.reader.all(page_statement(postgres, bool(types)), params)
        head = rows[0]
        if after and position < head["purged_through"]:
            raise Gone(
                f"Events after this cursor were deleted (they are kept {self.retention_days} "
                "days). Re-read the records you follow, then continue from "
                "`GET /v1/events/cursor`."
            )
        page = [{name: row[name] for name in _FIELDS} for row in rows if row["id"] is not None]
        if len(page) == limit:
            end = page[-1]["sequence"]
        else:
            end = max(head["feed_end"], head["purged_through"], position)
        return page, encode_position(end)

    async def latest(self) -> str:
        await place_committed(self.reader.db, wait=False)
        return encode_position(await self.reader.scalar(LATEST, {}))
