"""FastAPI dependencies every router shares: session, reader, caller, If-Match, list params."""

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.concurrency import parse_if_match
from crm_api.core.db import Database
from crm_api.core.listing import DEFAULT_LIMIT, MAX_LIMIT, ListParams
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader
from crm_api.core.records import RecordService
from crm_api.core.schemas import SafeStr
from crm_api.users.auth import Authenticator
from crm_api.users.service import UserService


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed after the handler returns and before the response
    is sent, so a failed commit still reaches the client as an error."""
    async with get_db(request).sessionmaker() as session:
        yield session
        if session.in_transaction():
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def get_reader(request: Request, session: SessionDep) -> Reader:
    return Reader(get_db(request), session)


ReaderDep = Annotated[Reader, Depends(get_reader)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer crm_…`")


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]


async def get_principal(
    authenticator: AuthenticatorDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return await authenticator.authenticate(header)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_if_match(
    if_match: Annotated[
        SafeStr | None,
        Header(description='The ETag you read, e.g. `"3"`; a stale one gets 412.'),
    ] = None,
) -> int | None:
    return parse_if_match(if_match)


IfMatch = Annotated[int | None, Depends(get_if_match)]


def get_list_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        SafeStr | None, Query(max_length=2000, description="`next_cursor` of the previous page.")
    ] = None,
    sort: Annotated[
        SafeStr | None,
        Query(max_length=40, description="A sort key; prefix `-` for descending."),
    ] = None,
    include_total: Annotated[bool, Query(description="Also count all matches.")] = False,
) -> ListParams:
    return ListParams(limit=limit, cursor=cursor, sort=sort, include_total=include_total)


ListParamsDep = Annotated[ListParams, Depends(get_list_params)]


def get_user_service(
    session: SessionDep,
    reader: ReaderDep,
    principal: CurrentPrincipal,
    authenticator: AuthenticatorDep,
) -> UserService:
    return UserService(session, reader, principal, authenticator)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]

S = TypeVar("S", bound=RecordService)


def record_service(cls: type[S]) -> Callable[..., Any]:
    """A dependency that builds `cls` for the request, with users as its owner directory."""

    def build(
        session: SessionDep, reader: ReaderDep, principal: CurrentPrincipal, users: UserServiceDep
    ) -> S:
        return cls(session, reader, principal, users)

    return build


def get_time_range_filters(
    created_after: Annotated[AwareDatetime | None, Query(description="created_at ≥ this")] = None,
    created_before: Annotated[AwareDatetime | None, Query(description="created_at < this")] = None,
    updated_after: Annotated[AwareDatetime | None, Query(description="updated_at ≥ this")] = None,
    updated_before: Annotated[AwareDatetime | None, Query(description="updated_at < this")] = None,
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
