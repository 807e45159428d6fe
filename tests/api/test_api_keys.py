"""API keys through HTTP: self-service create, list, revoke; admins manage anyone's."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crm_api.core.audit import AuditEntry
from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.core.events import Event
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor, make_actor

KEY_FIELDS = {
    "id",
    "user_id",
    "name",
    "prefix",
    "scopes",
    "created_at",
    "last_used_at",
    "revoked_at",
}
UNKNOWN_ID = "01a203b2-0000-7000-8000-000000000000"


@pytest.fixture
async def actor(request: pytest.FixtureRequest, app: Any, db: Database) -> Actor:
    """A user of the role named by indirect parametrization."""
    return await make_actor(app, db, Role(request.param))


async def create_key(actor: Actor, **body: Any) -> dict[str, Any]:
    response = await actor.client.post("/v1/api-keys", json={"name": "erp-sync", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listed_keys(actor: Actor, **params: Any) -> list[dict[str, Any]]:
    response = await actor.client.get("/v1/api-keys", params=params)
    assert response.status_code == 200, response.text
    assert "secret" not in response.text
    data: list[dict[str, Any]] = response.json()["data"]
    for key in data:
        assert set(key) == KEY_FIELDS
    return data


def with_key(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestCreateKey:
    async def test_creates_for_yourself_showing_the_secret_once(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/api-keys", json={"name": "  erp   sync "})
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == KEY_FIELDS | {"secret"}
        assert body["secret"].startswith("crm_")
        assert len(body["secret"]) >= 40
        assert body["prefix"] == body["secret"][:12]
        assert body["user_id"] == str(rep.id)
        assert body["name"] == "erp sync"
        assert body["scopes"] == ["read", "write"]
        assert body["last_used_at"] is None
        assert body["revoked_at"] is None
        assert response.headers["location"] == f"/v1/api-keys/{body['id']}"

        listed = {key["id"]: key for key in await listed_keys(rep)}
        assert listed[body["id"]] == {k: v for k, v in body.items() if k != "secret"}

    async def test_the_new_secret_authenticates_as_the_owner(
        self, rep: Actor, anonymous: httpx.AsyncClient
    ) -> None:
        created = await create_key(rep)
        me = await anonymous.get("/v1/users/me", headers=with_key(created["secret"]))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == str(rep.id)

    async def test_each_key_has_its_own_secret(self, rep: Actor) -> None:
        first = await create_key(rep)
        second = await create_key(rep)
        assert first["secret"] != second["secret"]
        assert first["id"] != second["id"]
        assert rep.key not in {first["secret"], second["secret"]}

    async def test_read_only_scope(self, rep: Actor, anonymous: httpx.AsyncClient) -> None:
        created = await create_key(rep, scopes=["read"])
        assert created["scopes"] == ["read"]
        headers = with_key(created["secret"])
        assert (await anonymous.get("/v1/contacts", headers=headers)).status_code == 200
        denied = await anonymous.post("/v1/contacts", json={"first_name": "A"}, headers=headers)
        assert_problem(denied, 403, "forbidden")

    async def test_unknown_scope_and_empty_scopes_are_422(self, rep: Actor) -> None:
        unknown = await rep.client.post("/v1/api-keys", json={"name": "k", "scopes": ["admin"]})
        assert error_fields(assert_problem(unknown, 422, "validation")) == {"body.scopes.0"}
        empty = await rep.client.post("/v1/api-keys", json={"name": "k", "scopes": []})
        assert error_fields(assert_problem(empty, 422, "validation")) == {"body.scopes"}
        assert len(await listed_keys(rep)) == 1

    async def test_name_is_required(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/api-keys", json={})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.name"}

    async def test_admin_creates_a_key_for_another_user(
        self, admin: Actor, rep: Actor, anonymous: httpx.AsyncClient
    ) -> None:
        created = await create_key(admin, user_id=str(rep.id))
        assert created["user_id"] == str(rep.id)
        me = await anonymous.get("/v1/users/me", headers=with_key(created["secret"]))
        assert me.json()["id"] == str(rep.id)
        assert created["id"] in {key["id"] for key in await listed_keys(rep)}

    async def test_admin_cannot_create_a_key_for_an_unknown_or_inactive_user(
        self, admin: Actor, rep: Actor
    ) -> None:
        unknown = await admin.client.post("/v1/api-keys", json={"name": "k", "user_id": UNKNOWN_ID})
        assert error_fields(assert_problem(unknown, 422, "validation")) == {"body.user_id"}

        await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        inactive = await admin.client.post(
            "/v1/api-keys", json={"name": "k", "user_id": str(rep.id)}
        )
        assert error_fields(assert_problem(inactive, 422, "validation")) == {"body.user_id"}

    @pytest.mark.parametrize("actor", ["manager", "rep", "viewer"], indirect=True)
    async def test_non_admin_creating_for_someone_else_is_403(
        self, actor: Actor, other_rep: Actor
    ) -> None:
        response = await actor.client.post(
            "/v1/api-keys", json={"name": "k", "user_id": str(other_rep.id)}
        )
        assert_problem(response, 403, "forbidden")
        assert len(await listed_keys(other_rep)) == 1

    async def test_naming_yourself_as_user_id_is_allowed(self, rep: Actor) -> None:
        created = await create_key(rep, user_id=str(rep.id))
        assert created["user_id"] == str(rep.id)

    async def test_read_only_key_cannot_mint_a_write_key(self, app: Any, db: Database) -> None:
        reader = await make_actor(app, db, Role.admin, scopes=["read"])
        async with reader.client:
            for scopes in (["write"], ["read", "write"]):
                response = await reader.client.post(
                    "/v1/api-keys", json={"name": "escalate", "scopes": scopes}
                )
                assert_problem(response, 403, "forbidden")
            # The default scopes are read and write, so they are refused too.
            default = await reader.client.post("/v1/api-keys", json={"name": "escalate"})
            assert_problem(default, 403, "forbidden")
            keys = await reader.client.get("/v1/api-keys", params={"user_id": str(reader.id)})
            assert [key["scopes"] for key in keys.json()["data"]] == [["read"]]

    async def test_secret_never_reaches_the_audit_log_or_events(
        self, rep: Actor, db: Database
    ) -> None:
        created = await create_key(rep)
        async with db.sessionmaker() as session:
            audit = (await session.execute(select(AuditEntry.__table__))).mappings().all()
            events = (await session.execute(select(Event.__table__))).mappings().all()
        key_audit = [row for row in audit if str(row["entity_id"]) == created["id"]]
        assert [row["action"] for row in key_audit] == ["created"]
        key_events = [row for row in events if str(row["entity_id"]) == created["id"]]
        assert [row["type"] for row in key_events] == ["api_key.created"]
        for row in [*audit, *events]:
            assert created["secret"] not in str(dict(row))
        assert "key_hash" not in key_events[0]["data"]


class TestListKeys:
    async def test_lists_only_your_own(self, rep: Actor, other_rep: Actor) -> None:
        mine = await create_key(rep)
        await create_key(other_rep)
        keys = await listed_keys(rep)
        assert len(keys) == 2
        assert {key["user_id"] for key in keys} == {str(rep.id)}
        assert mine["id"] in {key["id"] for key in keys}

    async def test_rep_asking_for_someone_elses_keys_is_403(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        response = await rep.client.get("/v1/api-keys", params={"user_id": str(other_rep.id)})
        assert_problem(response, 403, "forbidden")

    async def test_admin_lists_everyones_or_one_users(
        self, admin: Actor, rep: Actor, other_rep: Actor
    ) -> None:
        await create_key(rep)
        everyone = await listed_keys(admin)
        assert len(everyone) == 4
        assert {key["user_id"] for key in everyone} == {
            str(admin.id),
            str(rep.id),
            str(other_rep.id),
        }

        reps = await listed_keys(admin, user_id=str(rep.id))
        assert len(reps) == 2
        assert {key["user_id"] for key in reps} == {str(rep.id)}

    async def test_pages(self, rep: Actor) -> None:
        for _ in range(2):
            await create_key(rep)
        first = await rep.client.get("/v1/api-keys", params={"limit": 2})
        assert first.status_code == 200, first.text
        assert len(first.json()["data"]) == 2
        assert first.json()["next_cursor"]
        second = await rep.client.get(
            "/v1/api-keys", params={"limit": 2, "cursor": first.json()["next_cursor"]}
        )
        assert second.status_code == 200, second.text
        assert len(second.json()["data"]) == 1
        assert second.json()["next_cursor"] is None
        ids = [key["id"] for key in first.json()["data"] + second.json()["data"]]
        assert len(set(ids)) == 3


class TestRevokeKey:
    async def test_revoke_own_key(self, rep: Actor, anonymous: httpx.AsyncClient) -> None:
        created = await create_key(rep)
        response = await rep.client.delete(f"/v1/api-keys/{created['id']}")
        assert response.status_code == 204, response.text
        assert response.content == b""

        listed = {key["id"]: key for key in await listed_keys(rep)}
        assert listed[created["id"]]["revoked_at"] is not None
        denied = await anonymous.get("/v1/users/me", headers=with_key(created["secret"]))
        assert_problem(denied, 401, "unauthorized")

    async def test_revoking_twice_is_204_and_keeps_the_first_revocation(self, rep: Actor) -> None:
        created = await create_key(rep)
        first = await rep.client.delete(f"/v1/api-keys/{created['id']}")
        assert first.status_code == 204, first.text
        revoked_at = {key["id"]: key for key in await listed_keys(rep)}[created["id"]]["revoked_at"]

        second = await rep.client.delete(f"/v1/api-keys/{created['id']}")
        assert second.status_code == 204, second.text
        listed = {key["id"]: key for key in await listed_keys(rep)}
        assert listed[created["id"]]["revoked_at"] == revoked_at

    async def test_rep_revoking_someone_elses_key_is_404_and_the_key_still_works(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        [other_key] = await listed_keys(other_rep)
        response = await rep.client.delete(f"/v1/api-keys/{other_key['id']}")
        assert_problem(response, 404, "not-found")

        me = await other_rep.client.get("/v1/users/me")
        assert me.status_code == 200, me.text
        [still] = await listed_keys(other_rep)
        assert still["revoked_at"] is None

    async def test_admin_revokes_anyones_key(self, admin: Actor, rep: Actor) -> None:
        [rep_key] = await listed_keys(rep)
        response = await admin.client.delete(f"/v1/api-keys/{rep_key['id']}")
        assert response.status_code == 204, response.text
        [revoked] = await listed_keys(admin, user_id=str(rep.id))
        assert revoked["revoked_at"] is not None

    async def test_unknown_key_is_404(self, rep: Actor) -> None:
        assert_problem(await rep.client.delete(f"/v1/api-keys/{UNKNOWN_ID}"), 404, "not-found")

    async def test_malformed_id_is_422(self, rep: Actor) -> None:
        response = await rep.client.delete("/v1/api-keys/not-a-uuid")
        assert error_fields(assert_problem(response, 422, "validation")) == {"path.key_id"}


class TestKeyLocation:
    async def test_location_of_a_created_key_can_be_read(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/api-keys", json={"name": "k"})
        assert response.status_code == 201, response.text
        read = await rep.client.get(response.headers["location"])
        assert read.status_code == 200, read.text
        assert read.json()["id"] == response.json()["id"]
        assert "secret" not in read.json()
