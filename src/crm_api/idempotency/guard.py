"""Idempotency keys on writes, stored in the write's own transaction.

A write sent with `Idempotency-Key` claims the key before it runs and stores its response in
the same transaction as its effect. So a crash after the commit still leaves the key with its
response (the retry replays it), and a crash before it leaves neither (the retry runs it). A
second request with the key while the first runs gets 409: this process remembers the keys its
requests hold, and on PostgreSQL an advisory lock, held to the end of the transaction, tells
the other processes.
"""

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps
from typing import Any, BinaryIO, ParamSpec
from uuid import UUID

import orjson
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from crm_api.core.db import Database, lock_for_write
from crm_api.core.errors import BadRequest, Conflict, Invalid
from crm_api.core.ids import utcnow
from crm_api.core.principal import Principal
from crm_api.core.responses import SHOWN_ONCE
from crm_api.idempotency.models import idempotency_keys

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
RETENTION = timedelta(hours=24)
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_KEPT_HEADERS = ("content-type", "location", "etag", "cache-control")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

P = ParamSpec("P")


@dataclass
class Claim:
    """A key this request holds; `response` is what its endpoint returned."""

    api_key_id: UUID
    key: str
    fingerprint: str
    response: Response | None = field(default=None)


class Replay(Exception):
    """The key's first response, to send again."""

    def __init__(self, stored: dict[str, Any]) -> None:
        super().__init__(stored["key"])
        self.stored = stored

    def response(self) -> Response:
        headers = {**self.stored["headers"], REPLAYED: "true"}
        content = self.stored["body"].encode()
        return Response(content, status_code=self.stored["status_code"], headers=headers)


_in_flight: set[tuple[UUID, str]] = set()
_current: ContextVar[Claim | None] = ContextVar("idempotency_claim", default=None)


async def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode() + b"\0")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        # A client picks a new random boundary for each multipart request, so a retry of the
        # same form differs in its bytes: the fields and files are compared instead. (The
        # endpoint has parsed the form already; its body cannot be read again.)
        form = await request.form()
        for name, value in form.multi_items():
            digest.update(name.encode() + b"\0")
            if isinstance(value, UploadFile):
                name_and_type = f"{value.filename}\0{value.content_type}\0"
                digest.update(b"file\0" + name_and_type.encode())
                digest.update(await asyncio.to_thread(_file_digest, value.file))
            else:
                digest.update(value.encode() + b"\0")
    else:
        digest.update(await request.body())
    return digest.hexdigest()


def _file_digest(file: BinaryIO) -> bytes:
    digest = hashlib.sha256()
    file.seek(0)
    while chunk := file.read(1 << 20):
        digest.update(chunk)
    file.seek(0)
    return digest.digest()


def _lock_id(claim_id: tuple[UUID, str]) -> int:
    digest = hashlib.sha256(claim_id[0].bytes + claim_id[1].encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def claim(
    request: Request, principal: Principal, session: AsyncSession, postgres: bool
) -> Claim | None:
    """Claims the request's key, if it sent one; raises Replay if the key already has a
    response, 409 if a request holding it is still running, 422 if it was used for another
    request, 400 if it is malformed."""
    key = request.headers.get(HEADER)
    if key is None or request.method in _SAFE_METHODS:
        return None
    if not _KEY.fullmatch(key) or principal.api_key_id is None:
        raise BadRequest(f"{HEADER} must be 1 to 255 visible ASCII characters.")
    claim_id = (principal.api_key_id, key)
    busy = Conflict(f"A request with this {HEADER} is still running; retry later.")
    if claim_id in _in_flight:
        raise busy
    # The write and its key are one transaction from here: on SQLite, take the write lock
    # before the first read, or a concurrent commit could stop this one from writing later.
    await lock_for_write(session)
    if postgres and not await session.scalar(
        select(func.pg_try_advisory_xact_lock(_lock_id(claim_id)))
    ):
        raise busy
    fingerprint = await _fingerprint(request)
    matches = (idempotency_keys.c.api_key_id == claim_id[0]) & (idempotency_keys.c.key == key)
    stored = (await session.execute(select(idempotency_keys).where(matches))).mappings().first()
    if stored is not None and stored["created_at"] > utcnow() - RETENTION:
        if stored["fingerprint"] != fingerprint:
            raise Invalid(
                f"This {HEADER} was used for a different request.",
                [(f"header.{HEADER}", "already used with another method, path or body")],
            )
        raise Replay(dict(stored))
    if stored is not None:  # expired: the key is free again
        await session.execute(delete(idempotency_keys).where(matches))
    _in_flight.add(claim_id)
    held = Claim(claim_id[0], key, fingerprint)
    _current.set(held)
    return held


async def settle(session: AsyncSession, held: Claim) -> None:
    """Stores the endpoint's response with the key, in the write's transaction (before its
    commit). Errors raise past this, so they roll back and store nothing: a retry runs again."""
    response = held.response
    if response is None:
        return
    headers = {name: value for name, value in response.headers.items() if name in _KEPT_HEADERS}
    body = bytes(response.body)
    if headers.get("cache-control") == SHOWN_ONCE["Cache-Control"]:
        # A secret is shown once: the stored copy, and so a replay, goes without it.
        document = orjson.loads(body)
        document.pop("secret", None)
        body = orjson.dumps(document)
    row = {
        "api_key_id": held.api_key_id,
        "key": held.key,
        "fingerprint": held.fingerprint,
        "status_code": response.status_code,
        "headers": headers,
        "body": body.decode(),
        "created_at": utcnow(),
    }
    await session.execute(insert(idempotency_keys), row)


def release(held: Claim) -> None:
    _in_flight.discard((held.api_key_id, held.key))
    _current.set(None)


def captures_response(
    endpoint: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Wraps a write endpoint so the request's claim, if any, gets the response it returns."""

    @wraps(endpoint)
    async def endpoint_capturing(*args: P.args, **kwargs: P.kwargs) -> Response:
        response = await endpoint(*args, **kwargs)
        held = _current.get()
        if held is not None:
            held.response = response
        return response

    return endpoint_capturing


async def purge_expired_keys(db: Database) -> int:
    """Deletes keys past retention; returns how many."""
    expired = idempotency_keys.c.created_at <= utcnow() - RETENTION
    async with db.sessionmaker() as session:
        result = await session.execute(delete(idempotency_keys).where(expired))
        await session.commit()
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count
