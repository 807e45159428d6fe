"""Authentication through HTTP: bearer keys, revocation, deactivation, scopes, stored hashes."""

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.users.models import ApiKey
from tests.api.helpers import assert_problem
from tests.conftest import Actor, make_actor

BEARER_CHALLENGE = 'Bearer realm="crm-api"'


def assert_unauthorized(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    assert body["detail"]
    return body


async def create_key(actor: Actor, **body: Any) -> dict[str, Any]:
    response = await actor.client.post("/v1/api-keys", json={"name": "second", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def list_keys(actor: Actor) -> dict[str, dict[str, Any]]:
    response = await actor.client.get("/v1/api-keys")
    assert response.status_code == 200, response.text
    return {key["id"]: key for key in response.json()["data"]}


class TestMissingOrMalformedCredentials:
    async def test_no_authorization_header_is_401_with_bearer_challenge(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        response = await anonymous.get("/v1/contacts")
        body = assert_unauthorized(response)
        assert response.headers["www-authenticate"] == BEARER_CHALLENGE
        assert body == {
            "type": "https://crm-api.dev/problems/unauthorized",
            "title": "Unauthorized",
            "status": 401,
            "detail": "Send an API key as `Authorization: Bearer <key>`.",
            "request_id": response.headers["x-request-id"],
        }

    async def test_basic_scheme_is_401(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get(
            "/v1/users/me", headers={"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}
        )
        assert_unauthorized(response)

    async def test_basic_scheme_carrying_a_valid_key_is_401(
        self, anonymous: httpx.AsyncClient, rep: Actor
    ) -> None:
        response = await anonymous.get(
            "/v1/users/me", headers={"Authorization": f"Basic {rep.key}"}
        )
        assert_unauthorized(response)

    async def test_garbage_key_is_401(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get(
            "/v1/users/me", headers={"Authorization": "Bearer not-a-key-at-all"}
        )
        assert_unauthorized(response)

    async def test_empty_bearer_is_401(self, anonymous: httpx.AsyncClient) -> None:
        response = await anonymous.get("/v1/users/me", headers={"Authorization": "Bearer "})
        assert_unauthorized(response)

    async def test_well_formed_unknown_key_is_401(
        self, anonymous: httpx.AsyncClient, rep: Actor
    ) -> None:
        unknown = "crm_" + "A" * 43
        response = await anonymous.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {unknown}"}
        )
        body = assert_unauthorized(response)
        assert body["detail"] == "The API key is unknown, revoked, or its user is inactive."

    async def test_known_key_with_a_changed_character_is_401(
        self, anonymous: httpx.AsyncClient, rep: Actor
    ) -> None:
        tampered = rep.key[:-1] + ("B" if rep.key[-1] != "B" else "C")
        response = await anonymous.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {tampered}"}
        )
        assert_unauthorized(response)

    async def test_health_probes_need_no_key(self, anonymous: httpx.AsyncClient) -> None:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200

    async def test_valid_key_authenticates_as_its_user(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/users/me")
        assert response.status_code == 200, response.text
        assert response.json()["id"] == str(rep.id)

    async def test_scheme_is_case_insensitive(
        self, anonymous: httpx.AsyncClient, rep: Actor
    ) -> None:
        response = await anonymous.get(
            "/v1/users/me", headers={"Authorization": f"bearer {rep.key}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == str(rep.id)


class TestRevokedKey:
    async def test_revoked_key_is_401_at_once(
        self, rep: Actor, anonymous: httpx.AsyncClient
    ) -> None:
        second = await create_key(rep)
        headers = {"Authorization": f"Bearer {second['secret']}"}
        # Used once, so the authenticator has it cached when it is revoked.
        assert (await anonymous.get("/v1/users/me", headers=headers)).status_code == 200

        revoked = await rep.client.delete(f"/v1/api-keys/{second['id']}")
        assert revoked.status_code == 204, revoked.text

        assert_unauthorized(await anonymous.get("/v1/users/me", headers=headers))
        # The key that revoked it is unaffected.
        assert (await rep.client.get("/v1/users/me")).status_code == 200

    async def test_revoking_the_key_in_use_locks_out_its_next_request(self, rep: Actor) -> None:
        [own_key_id] = await list_keys(rep)
        response = await rep.client.delete(f"/v1/api-keys/{own_key_id}")
        assert response.status_code == 204, response.text
        assert_unauthorized(await rep.client.get("/v1/users/me"))

    async def test_key_revoked_by_an_admin_is_401(self, admin: Actor, rep: Actor) -> None:
        assert (await rep.client.get("/v1/users/me")).status_code == 200
        [rep_key_id] = await list_keys(rep)
        response = await admin.client.delete(f"/v1/api-keys/{rep_key_id}")
        assert response.status_code == 204, response.text
        assert_unauthorized(await rep.client.get("/v1/users/me"))


class TestDeactivatedUser:
    async def test_key_stops_working_on_deactivate_and_works_again_on_activate(
        self, admin: Actor, rep: Actor
    ) -> None:
        assert (await rep.client.get("/v1/users/me")).status_code == 200

        deactivated = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        assert deactivated.status_code == 200, deactivated.text
        assert deactivated.json()["active"] is False
        assert_unauthorized(await rep.client.get("/v1/users/me"))
        assert_unauthorized(await rep.client.get("/v1/contacts"))

        activated = await admin.client.post(f"/v1/users/{rep.id}/activate")
        assert activated.status_code == 200, activated.text
        assert activated.json()["active"] is True
        me = await rep.client.get("/v1/users/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == str(rep.id)

    async def test_every_key_of_the_user_stops_working(
        self, admin: Actor, rep: Actor, anonymous: httpx.AsyncClient
    ) -> None:
        second = await create_key(rep)
        headers = {"Authorization": f"Bearer {second['secret']}"}
        assert (await anonymous.get("/v1/users/me", headers=headers)).status_code == 200

        response = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        assert response.status_code == 200, response.text
        assert_unauthorized(await anonymous.get("/v1/users/me", headers=headers))
        assert_unauthorized(await rep.client.get("/v1/users/me"))


class TestLastUsedAt:
    async def test_is_null_until_the_key_is_used_then_set(
        self, rep: Actor, anonymous: httpx.AsyncClient
    ) -> None:
        second = await create_key(rep)
        assert second["last_used_at"] is None
        assert (await list_keys(rep))[second["id"]]["last_used_at"] is None

        used = await anonymous.get(
            "/v1/contacts", headers={"Authorization": f"Bearer {second['secret']}"}
        )
        assert used.status_code == 200, used.text

        listed = (await list_keys(rep))[second["id"]]
        assert listed["last_used_at"] is not None
        last_used_at = datetime.fromisoformat(listed["last_used_at"])
        assert last_used_at.utcoffset() is not None
        assert last_used_at >= datetime.fromisoformat(second["created_at"])

    async def test_the_calling_key_is_marked_used(self, rep: Actor) -> None:
        [key] = (await list_keys(rep)).values()
        assert key["last_used_at"] is not None
        assert datetime.fromisoformat(key["last_used_at"]) >= datetime.fromisoformat(
            key["created_at"]
        )


class TestReadOnlyScope:
    async def test_read_key_can_read_but_not_write(self, app: Any, db: Database) -> None:
        reader = await make_actor(app, db, Role.rep, scopes=["read"])
        async with reader.client:
            listed = await reader.client.get("/v1/contacts")
            assert listed.status_code == 200, listed.text
            assert listed.json() == {"data": [], "next_cursor": None}
            assert (await reader.client.get("/v1/users/me")).status_code == 200

            response = await reader.client.post("/v1/contacts", json={"first_name": "Ann"})
            body = assert_problem(response, 403, "forbidden")
            assert body["detail"] == "This API key lacks the `write` scope."

            # Nothing was created.
            assert (await reader.client.get("/v1/contacts")).json()["data"] == []

    async def test_read_key_of_an_admin_cannot_create_users(self, app: Any, db: Database) -> None:
        reader = await make_actor(app, db, Role.admin, scopes=["read"])
        async with reader.client:
            response = await reader.client.post(
                "/v1/users", json={"email": "new@example.com", "name": "New"}
            )
            assert_problem(response, 403, "forbidden")

    async def test_read_key_cannot_update_or_archive(
        self, app: Any, db: Database, rep: Actor
    ) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        reader = await make_actor(app, db, Role.manager, scopes=["read"])
        async with reader.client:
            patched = await reader.client.patch(
                f"/v1/contacts/{contact['id']}", json={"first_name": "Anne"}
            )
            assert_problem(patched, 403, "forbidden")
            archived = await reader.client.delete(f"/v1/contacts/{contact['id']}")
            assert_problem(archived, 403, "forbidden")
        unchanged = await rep.client.get(f"/v1/contacts/{contact['id']}")
        assert unchanged.json()["first_name"] == "Ann"
        assert unchanged.json()["archived_at"] is None


class TestStoredKeys:
    async def test_only_a_hash_is_stored_and_prefix_is_the_first_12_chars(
        self, rep: Actor, db: Database
    ) -> None:
        created = await create_key(rep)
        secret = created["secret"]
        assert created["prefix"] == secret[:12]

        async with db.sessionmaker() as session:
            rows = (await session.execute(select(ApiKey.__table__))).mappings().all()
        by_id = {str(row["id"]): dict(row) for row in rows}
        assert set(by_id) == {created["id"], *(await list_keys(rep))}

        for row in by_id.values():
            for column, value in row.items():
                assert value != secret, column
                assert secret not in str(value), column
        stored = by_id[created["id"]]
        assert stored["prefix"] == secret[:12]
        assert stored["key_hash"] != secret
        assert len(stored["key_hash"]) == 64
        int(stored["key_hash"], 16)  # a hex digest

        # The fixture's key too: only a hash of it is on disk.
        for row in by_id.values():
            assert rep.key not in {str(value) for value in row.values()}
