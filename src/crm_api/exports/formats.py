"""CSV and NDJSON encodings of record pages, written page by page as they arrive.

NDJSON lines are the records exactly as the API returns them (`dump_json`, the serializer of
every JSON response). CSV flattens them into columns; its cells read as the JSON values do
(RFC 3339 timestamps, decimal strings for money, `true`/`false`), lists are joined with
`LIST_SEPARATOR`, and text that a spreadsheet would run as a formula is defused.
"""

import csv
import io
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from crm_api.core.responses import dump_json
from crm_api.core.spreadsheet import guarded

Record = dict[str, Any]
Pages = AsyncGenerator[list[Record], None]

LIST_SEPARATOR = ";"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    value: Callable[[Record], Any]


def fields(*names: str) -> tuple[Column, ...]:
    """Columns holding top-level fields of the record, named as the fields."""
    return tuple(Column(name, itemgetter(name)) for name in names)


def nested(outer: str, *inner: str) -> tuple[Column, ...]:
    """Columns `outer.<inner>` holding fields of an embedded object (empty without one)."""

    def column(key: str) -> Column:
        def value(record: Record) -> Any:
            embedded = record[outer]
            return None if embedded is None else embedded.get(key)

        return Column(f"{outer}.{key}", value)

    return tuple(column(key) for key in inner)


def custom_field(key: str) -> Column:
    return Column(f"custom_fields.{key}", lambda record: record["custom_fields"].get(key))


def _item(value: Any) -> str:
    return value if isinstance(value, str) else dump_json(value).decode()


def cell(value: Any) -> Any:
    """`value` as the csv writer takes it. Numbers, decimals, UUIDs, dates and None (an empty
    cell) it writes itself, as their JSON forms read."""
    kind = type(value)
    if kind is str:
        return guarded(value)
    if kind is datetime:
        return dump_json(value)[1:-1].decode()  # RFC 3339, exactly as in JSON
    if kind is bool:
        return "true" if value else "false"
    if kind is list:
        return guarded(LIST_SEPARATOR.join(_item(item) for item in value))
    if kind is dict:
        return guarded(dump_json(value).decode())
    return value


def _taken(buffer: io.StringIO) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text.encode()


async def csv_body(pages: Pages, columns: Iterable[Column]) -> AsyncGenerator[bytes, None]:
    """RFC 4180 CSV: a header row, then a row per record; CRLF line ends, fields quoted when
    they hold a comma, a quote or a line break. One chunk per page."""
    columns = tuple(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    getters = [column.value for column in columns]
    # Closing this body (a client gone) closes the pages at once, and with them a read ahead.
    async with aclosing(pages):
        async for page in pages:
            writer.writerows([cell(get(record)) for get in getters] for record in page)
            yield _taken(buffer)


async def ndjson_body(pages: Pages) -> AsyncGenerator[bytes, None]:
    """A JSON object per line, each ended by `\\n`. One chunk per page."""
    async with aclosing(pages):
        async for page in pages:
            if page:
                yield b"\n".join(map(dump_json, page)) + b"\n"
