"""FastAPI dependencies every router shares: caller, session, reader, If-Match, list params."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.concurrency import Versions, parse_if_match
from crm_api.core.db import Database
from crm_api.core.listing import DEFAULT_LIMIT, MAX_LIMIT, ListParams
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader
from crm_api.core.records import RecordService
from crm_api.core.schemas import SafeStr, UTCInstant
from crm_api.idempotency import guard as idempotency
from crm_api.users.auth import Authenticator
from crm_api.users.service import UserService


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer crm_…`")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a request's handlers work with: the caller, one session, and a reader."""

    principal: Principal
    session: AsyncSession
    reader: Reader
    authenticator: Authenticator

    def users(self) -> UserService:
        return UserService(self.session, self.reader, self.principal, self.authenticator)


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    principal = await authenticator.authenticate(header)
    if request.method in ("GET", "HEAD"):
        principal.require_read()
    return principal


async def get_context(
    request: Request, credentials: BearerCredentials
) -> AsyncIterator[RequestContext]:
    """Authenticates, then opens the request's session. One dependency rather than several,
    because each dependency FastAPI resolves costs time on every request. The session commits
    after the handler returns and before the response is sent, so a failed commit still
    reaches the client as an error; a write's Idempotency-Key and response commit with it."""
    principal = await _authenticate(request, credentials)
    db = get_db(request)
    session = db.sessionmaker()
    held = None
    try:
        held = await idempotency.claim(request, principal, session, postgres=not db.is_sqlite)
        yield RequestContext(
            principal, session, Reader(db, session), request.app.state.authenticator
        )
        if held is not None:
            await idempotency.settle(session, held)
        if session.in_transaction():
            await session.commit()
    finally:
        if held is not None:
            idempotency.release(held)
        # A session holds a connection only inside a transaction; one that never began one
        # (a create on PostgreSQL writes on the raw pool) or committed has nothing to close.
        if session.in_transaction():
            await session.close()


ContextDep = Annotated[RequestContext, Depends(get_context, scope="function")]


async def get_principal(context: ContextDep) -> Principal:
    return context.principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_read_principal(request: Request, credentials: BearerCredentials) -> Principal:
    """The caller of a read-only endpoint, authenticated without opening a session."""
    return await _authenticate(request, credentials)


ReadPrincipal = Annotated[Principal, Depends(get_read_principal)]


async def get_reader(request: Request, _: ReadPrincipal) -> Reader:
    """A read-only endpoint's reader, with no session: a generator dependency and a session
    per request cost more than a short metrics query (see core.reader)."""
    return Reader(get_db(request))


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def get_if_match(
    if_match: Annotated[
        SafeStr | None,
        Header(description='The ETag you read, e.g. `"3"`; a stale one gets 412.'),
    ] = None,
) -> Versions | None:
    return parse_if_match(if_match)


IfMatch = Annotated[Versions | None, Depends(get_if_match)]


SortParam = Annotated[
    SafeStr | None,
    Query(max_length=40, description="A sort key; prefix `-` for descending."),
]
"""A list's `sort` (lists and exports take the same)."""


async def get_list_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        SafeStr | None, Query(max_length=2000, description="`next_cursor` of the previous page.")
    ] = None,
    sort: SortParam = None,
    include_total: Annotated[bool, Query(description="Also count all matches.")] = False,
) -> ListParams:
    return ListParams(limit=limit, cursor=cursor, sort=sort, include_total=include_total)


ListParamsDep = Annotated[ListParams, Depends(get_list_params)]


async def get_user_service(context: ContextDep) -> UserService:
    return context.users()


UserServiceDep = Annotated[UserService, Depends(get_user_service)]

S = TypeVar("S", bound=RecordService)


def record_service(cls: type[S]) -> Callable[..., Awaitable[S]]:
    """A dependency that builds `cls` for the request, with users as its owner directory."""

    async def build(context: ContextDep) -> S:
        return cls(context.session, context.reader, context.principal, context.users())

    return build


def streaming_service(cls: type[S]) -> Callable[..., Awaitable[S]]:
    """A dependency that builds `cls` for reads that go on after the handler has returned (a
    streamed export). The request's session ends with the handler, so the service's reader has
    none: each statement runs on its own (on the raw pool; on SQLite in a short session)."""

    async def build(context: ContextDep) -> S:
        reader = Reader(context.reader.db)
        return cls(context.session, reader, context.principal, context.users())

    return build


async def get_time_range_filters(
    created_after: Annotated[UTCInstant | None, Query(description="created_at ≥ this")] = None,
    created_before: Annotated[UTCInstant | None, Query(description="created_at < this")] = None,
    updated_after: Annotated[UTCInstant | None, Query(description="updated_at ≥ this")] = None,
    updated_before: Annotated[UTCInstant | None, Query(description="updated_at < this")] = None,
) -> dict[str, Any]:
    return {
        "created_after": created_after,
        "created_before": created_before,
        "updated_after": updated_after,
        "updated_before": updated_before,
    }


TimeRangeFilters = Annotated[dict[str, Any], Depends(get_time_range_filters)]
SearchText = Annotated[
    SafeStr | None,
    Query(min_length=1, max_length=200, description="Case-insensitive prefix of a name or email."),
]
