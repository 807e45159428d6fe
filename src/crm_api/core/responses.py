"""JSON responses serialized once, by orjson, straight from plain rows; streamed downloads."""

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from crm_api.core.concurrency import etag


def _default(value: Any) -> str:
    # Decimal and anything else without a native orjson form: money travels as strings.
    return str(value)


def dump_json(content: Any) -> bytes:
    return orjson.dumps(content, default=_default)


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dump_json(content)


SHOWN_ONCE = {"Cache-Control": "no-store"}
"""The headers of a response that shows a secret (an API key, a webhook secret) once: no cache
keeps it, and an idempotent replay of it leaves the secret out."""


def record_response(
    record: dict[str, Any],
    *,
    status_code: int = 200,
    location: str | None = None,
    shows_secret: bool = False,
) -> JSONBody:
    """A single record, with its ETag (and Location for a create)."""
    headers = {"ETag": etag(record["version"])}
    if location:
        headers["Location"] = location
    if shows_secret:
        headers.update(SHOWN_ONCE)
    return JSONBody(record, status_code=status_code, headers=headers)


class Download(StreamingResponse):
    """A file streamed as it is made (chunked: a transfer cut short by an error is seen as
    broken, never as a shorter file), saved as `<name>-<UTC timestamp>.<extension>`."""

    extension = ""

    def __init__(self, body: AsyncGenerator[bytes, None], name: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        filename = f"{name}-{stamp}.{self.extension}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        super().__init__(body, headers=disposition)
        self.chunks = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that left stops the response between two chunks; the body (and any
            # read it started ahead) stops now, rather than whenever it is collected.
            await self.chunks.aclose()


class CSVDownload(Download):
    media_type = "text/csv"  # Starlette adds `; charset=utf-8` to text types
    extension = "csv"


class NDJSONDownload(Download):
    media_type = "application/x-ndjson"
    extension = "ndjson"
