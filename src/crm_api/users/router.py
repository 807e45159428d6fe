from typing import Annotated
from uuid import UUID

from fastapi import Query
from starlette.responses import Response

from crm_api.core.enums import Role
from crm_api.core.openapi import CREATE, READ, WRITE, problems
from crm_api.core.responses import SHOWN_ONCE, JSONBody, record_response
from crm_api.core.schemas import SafeStr, page_of, sent_fields
from crm_api.deps import CurrentPrincipal, IfMatch, ListParamsDep, UserServiceDep
from crm_api.routing import PrefixRouter, page_response
from crm_api.users.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    UserCreate,
    UserRead,
    UserUpdate,
)

router = PrefixRouter(prefix="/v1/users", tags=["users"])
keys_router = PrefixRouter(prefix="/v1/api-keys", tags=["api-keys"])


@router.get("/me", operation_id="users_me", response_model=UserRead, responses=READ)
async def me(principal: CurrentPrincipal, users: UserServiceDep) -> Response:
    return record_response(await users.get(principal.user_id))


@router.get("", operation_id="users_list", response_model=page_of(UserRead), responses=READ)
async def list_users(
    users: UserServiceDep,
    params: ListParamsDep,
    role: Role | None = None,
    active: bool | None = None,
    team: Annotated[SafeStr | None, Query(max_length=200)] = None,
) -> Response:
    page = await users.list_users(params, {"role": role, "active": active, "team": team})
    return page_response(*page)


@router.post(
    "",
    operation_id="users_create",
    status_code=201,
    response_model=UserRead,
    responses=CREATE,
    summary="Create a user (admin)",
)
async def create_user(body: UserCreate, users: UserServiceDep) -> Response:
    user = await users.create(body.model_dump())
    return record_response(user, status_code=201, location=f"/v1/users/{user['id']}")


@router.get("/{user_id}", operation_id="users_get", response_model=UserRead, responses=READ)
async def get_user(user_id: UUID, users: UserServiceDep) -> Response:
    return record_response(await users.get(user_id))


@router.patch(
    "/{user_id}",
    operation_id="users_update",
    response_model=UserRead,
    responses=WRITE,
    summary="Update a user (admin)",
)
async def update_user(
    user_id: UUID, body: UserUpdate, users: UserServiceDep, if_match: IfMatch
) -> Response:
    changes = sent_fields(body)
    return record_response(await users.update(user_id, changes, if_match))


@router.post(
    "/{user_id}/deactivate",
    operation_id="users_deactivate",
    response_model=UserRead,
    responses=WRITE,
    summary="Deactivate a user and stop their keys (admin)",
)
async def deactivate_user(user_id: UUID, users: UserServiceDep) -> Response:
    return record_response(await users.set_active(user_id, False))


@router.post(
    "/{user_id}/activate",
    operation_id="users_activate",
    response_model=UserRead,
    responses=WRITE,
    summary="Reactivate a user (admin)",
)
async def activate_user(user_id: UUID, users: UserServiceDep) -> Response:
    return record_response(await users.set_active(user_id, True))


@keys_router.post(
    "",
    operation_id="api_keys_create",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=CREATE,
    summary="Create an API key; the secret is shown once",
)
async def create_api_key(body: ApiKeyCreate, users: UserServiceDep) -> Response:
    key = await users.create_api_key(name=body.name, scopes=body.scopes, user_id=body.user_id)
    headers = {"Location": f"/v1/api-keys/{key['id']}", **SHOWN_ONCE}
    return JSONBody(key, status_code=201, headers=headers)


@keys_router.get(
    "",
    operation_id="api_keys_list",
    response_model=page_of(ApiKeyRead),
    responses=READ,
    summary="List your API keys (admins: anyone's)",
)
async def list_api_keys(
    users: UserServiceDep, params: ListParamsDep, user_id: UUID | None = None
) -> Response:
    return page_response(*await users.list_api_keys(params, user_id))


@keys_router.get(
    "/{key_id}",
    operation_id="api_keys_get",
    response_model=ApiKeyRead,
    responses=READ,
    summary="Get one of your API keys (admins: anyone's)",
)
async def get_api_key(key_id: UUID, users: UserServiceDep) -> Response:
    return JSONBody(await users.get_api_key(key_id))


@keys_router.delete(
    "/{key_id}",
    operation_id="api_keys_revoke",
    status_code=204,
    responses=problems(403, 404),
    summary="Revoke an API key",
)
async def revoke_api_key(key_id: UUID, users: UserServiceDep) -> Response:
    await users.revoke_api_key(key_id)
    return Response(status_code=204)
