"""Users through HTTP: who am I, listing, admin-only management, If-Match, activation."""

from datetime import datetime
from typing import Any

import pytest

from crm_api.core.db import Database
from crm_api.core.enums import Role
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor, make_actor

USER_FIELDS = {
    "id",
    "email",
    "name",
    "role",
    "team",
    "active",
    "version",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def actor(request: pytest.FixtureRequest, app: Any, db: Database) -> Actor:
    """A user of the role named by indirect parametrization."""
    return await make_actor(app, db, Role(request.param))


async def create_user(admin: Actor, **body: Any) -> dict[str, Any]:
    response = await admin.client.post("/v1/users", json=body)
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


class TestWhoAmI:
    @pytest.mark.parametrize("actor", ["admin", "manager", "rep", "viewer"], indirect=True)
    async def test_returns_the_caller(self, actor: Actor) -> None:
        response = await actor.client.get("/v1/users/me")
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        body = response.json()
        assert set(body) == USER_FIELDS
        assert body["id"] == str(actor.id)
        assert body["email"] == actor.email
        assert body["name"] == f"Test {actor.role.value}"
        assert body["role"] == actor.role.value
        assert body["team"] is None
        assert body["active"] is True
        assert body["version"] == 1
        assert body["created_at"] == body["updated_at"]


class TestListUsers:
    async def test_pages_in_creation_order_with_total(self, admin: Actor) -> None:
        created = [
            await create_user(admin, email=f"user{i}@example.com", name=f"User {i}")
            for i in range(3)
        ]
        expected = [str(admin.id)] + [user["id"] for user in created]

        first = await admin.client.get("/v1/users", params={"limit": 2, "include_total": "true"})
        assert first.status_code == 200, first.text
        first_body = first.json()
        assert [user["id"] for user in first_body["data"]] == expected[:2]
        assert first_body["total"] == 4
        assert first_body["next_cursor"]

        second = await admin.client.get(
            "/v1/users", params={"limit": 2, "cursor": first_body["next_cursor"]}
        )
        assert second.status_code == 200, second.text
        assert [user["id"] for user in second.json()["data"]] == expected[2:]
        assert second.json()["next_cursor"] is None
        assert "total" not in second.json()
        assert second.json()["data"][-1] == created[-1]

    async def test_filters_by_role(self, admin: Actor, rep: Actor, other_rep: Actor) -> None:
        response = await rep.client.get("/v1/users", params={"role": "rep"})
        assert response.status_code == 200, response.text
        assert {user["id"] for user in response.json()["data"]} == {str(rep.id), str(other_rep.id)}
        assert all(user["role"] == "rep" for user in response.json()["data"])

        admins = await rep.client.get("/v1/users", params={"role": "admin"})
        assert [user["id"] for user in admins.json()["data"]] == [str(admin.id)]

    async def test_filters_by_active(self, admin: Actor, rep: Actor, other_rep: Actor) -> None:
        response = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        assert response.status_code == 200, response.text

        inactive = await admin.client.get("/v1/users", params={"active": "false"})
        assert inactive.status_code == 200, inactive.text
        assert [user["id"] for user in inactive.json()["data"]] == [str(rep.id)]
        assert inactive.json()["data"][0]["active"] is False

        active = await admin.client.get("/v1/users", params={"active": "true"})
        assert {user["id"] for user in active.json()["data"]} == {str(admin.id), str(other_rep.id)}

    async def test_unknown_role_filter_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/users", params={"role": "superuser"})
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"query.role"}

    async def test_viewer_can_list(self, viewer: Actor) -> None:
        response = await viewer.client.get("/v1/users")
        assert response.status_code == 200, response.text
        assert [user["id"] for user in response.json()["data"]] == [str(viewer.id)]


class TestCreateUser:
    async def test_admin_creates_with_normalized_email_location_and_etag(
        self, admin: Actor
    ) -> None:
        response = await admin.client.post(
            "/v1/users",
            json={
                "email": "  Bob.Smith@Example.COM ",
                "name": "  Bob   Smith ",
                "role": "manager",
                "team": " EMEA ",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == USER_FIELDS
        assert body["email"] == "bob.smith@example.com"
        assert body["name"] == "Bob Smith"
        assert body["role"] == "manager"
        assert body["team"] == "EMEA"
        assert body["active"] is True
        assert body["version"] == 1
        assert body["created_at"] == body["updated_at"]
        assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None
        assert response.headers["location"] == f"/v1/users/{body['id']}"
        assert response.headers["etag"] == '"1"'

        read = await admin.client.get(response.headers["location"])
        assert read.status_code == 200, read.text
        assert read.json() == body
        assert read.headers["etag"] == '"1"'

    async def test_role_defaults_to_rep(self, admin: Actor) -> None:
        user = await create_user(admin, email="dee@example.com", name="Dee")
        assert user["role"] == "rep"
        assert user["team"] is None

    async def test_duplicate_email_is_409_naming_the_existing_user(self, admin: Actor) -> None:
        first = await create_user(admin, email="bob@example.com", name="Bob")
        response = await admin.client.post(
            "/v1/users", json={"email": " BOB@example.com", "name": "Other Bob"}
        )
        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == first["id"]
        listed = await admin.client.get("/v1/users", params={"include_total": "true"})
        assert listed.json()["total"] == 2

    async def test_duplicate_of_a_fixture_users_email_is_409(
        self, admin: Actor, rep: Actor
    ) -> None:
        response = await admin.client.post(
            "/v1/users", json={"email": rep.email.upper(), "name": "Copy"}
        )
        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == str(rep.id)

    async def test_invalid_role_is_422(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/users", json={"email": "x@example.com", "name": "X", "role": "superuser"}
        )
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.role"}

    async def test_missing_and_invalid_fields_are_all_named(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/users", json={"email": "not-an-email", "role": "boss", "extra": 1}
        )
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.email", "body.name", "body.role", "body.extra"}

    async def test_blank_name_is_422(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/users", json={"email": "x@example.com", "name": "   "}
        )
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.name"}

    @pytest.mark.parametrize("actor", ["manager", "rep", "viewer"], indirect=True)
    async def test_non_admins_get_403(self, actor: Actor, admin: Actor) -> None:
        response = await actor.client.post(
            "/v1/users", json={"email": "sneaky@example.com", "name": "Sneaky", "role": "admin"}
        )
        assert_problem(response, 403, "forbidden")
        listed = await admin.client.get("/v1/users", params={"include_total": "true"})
        assert "sneaky@example.com" not in {user["email"] for user in listed.json()["data"]}


class TestUpdateUser:
    async def test_role_change_with_if_match_bumps_version(self, admin: Actor, rep: Actor) -> None:
        read = await admin.client.get(f"/v1/users/{rep.id}")
        assert read.headers["etag"] == '"1"'

        response = await admin.client.patch(
            f"/v1/users/{rep.id}",
            json={"role": "manager", "team": "Sales"},
            headers={"If-Match": read.headers["etag"]},
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"2"'
        body = response.json()
        assert body == {
            **read.json(),
            "role": "manager",
            "team": "Sales",
            "version": 2,
            "updated_at": body["updated_at"],
        }
        assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
            read.json()["updated_at"]
        )

    async def test_stale_if_match_is_412_and_changes_nothing(
        self, admin: Actor, rep: Actor
    ) -> None:
        first = await admin.client.patch(
            f"/v1/users/{rep.id}", json={"team": "North"}, headers={"If-Match": '"1"'}
        )
        assert first.status_code == 200, first.text

        stale = await admin.client.patch(
            f"/v1/users/{rep.id}", json={"role": "admin"}, headers={"If-Match": '"1"'}
        )
        body = assert_problem(stale, 412, "precondition-failed")
        assert body["current_version"] == 2

        current = await admin.client.get(f"/v1/users/{rep.id}")
        assert current.json()["role"] == "rep"
        assert current.json()["version"] == 2

    async def test_without_if_match_applies(self, admin: Actor, rep: Actor) -> None:
        response = await admin.client.patch(f"/v1/users/{rep.id}", json={"name": "  Renamed  Rep "})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Renamed Rep"

    async def test_name_null_is_422(self, admin: Actor, rep: Actor) -> None:
        response = await admin.client.patch(f"/v1/users/{rep.id}", json={"name": None})
        body = assert_problem(response, 422, "validation")
        assert len(body["errors"]) == 1
        assert "name" in body["errors"][0]["message"]
        assert (await admin.client.get(f"/v1/users/{rep.id}")).json()["name"] == "Test rep"

    async def test_role_null_is_422(self, admin: Actor, rep: Actor) -> None:
        response = await admin.client.patch(f"/v1/users/{rep.id}", json={"role": None})
        body = assert_problem(response, 422, "validation")
        assert "role" in body["errors"][0]["message"]

    async def test_team_may_be_cleared(self, admin: Actor, rep: Actor) -> None:
        await admin.client.patch(f"/v1/users/{rep.id}", json={"team": "North"})
        response = await admin.client.patch(f"/v1/users/{rep.id}", json={"team": None})
        assert response.status_code == 200, response.text
        assert response.json()["team"] is None
        assert response.json()["version"] == 3

    async def test_unknown_user_is_404(self, admin: Actor) -> None:
        response = await admin.client.patch(
            "/v1/users/01a203b2-0000-7000-8000-000000000000", json={"name": "Nobody"}
        )
        assert_problem(response, 404, "not-found")

    @pytest.mark.parametrize("actor", ["manager", "rep", "viewer"], indirect=True)
    async def test_non_admins_get_403(self, actor: Actor, admin: Actor) -> None:
        response = await actor.client.patch(f"/v1/users/{actor.id}", json={"role": "admin"})
        assert_problem(response, 403, "forbidden")
        assert (await actor.client.get("/v1/users/me")).json()["role"] == actor.role.value

    async def test_demotion_takes_effect_on_the_next_request(
        self, admin: Actor, manager: Actor
    ) -> None:
        # The manager has used their key, so their principal is cached with the manager role.
        assert (await manager.client.get("/v1/audit-log")).status_code == 200

        response = await admin.client.patch(f"/v1/users/{manager.id}", json={"role": "rep"})
        assert response.status_code == 200, response.text

        assert_problem(await manager.client.get("/v1/audit-log"), 403, "forbidden")

    async def test_promotion_takes_effect_on_the_next_request(
        self, admin: Actor, rep: Actor
    ) -> None:
        assert_problem(await rep.client.get("/v1/audit-log"), 403, "forbidden")

        response = await admin.client.patch(f"/v1/users/{rep.id}", json={"role": "manager"})
        assert response.status_code == 200, response.text

        assert (await rep.client.get("/v1/audit-log")).status_code == 200


class TestActivation:
    async def test_admin_deactivates_and_activates(self, admin: Actor, rep: Actor) -> None:
        deactivated = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        assert deactivated.status_code == 200, deactivated.text
        assert deactivated.json()["active"] is False
        assert deactivated.json()["version"] == 2
        assert deactivated.headers["etag"] == '"2"'

        activated = await admin.client.post(f"/v1/users/{rep.id}/activate")
        assert activated.status_code == 200, activated.text
        assert activated.json()["active"] is True
        assert activated.json()["version"] == 3
        assert activated.headers["etag"] == '"3"'

    async def test_deactivating_twice_changes_nothing_the_second_time(
        self, admin: Actor, rep: Actor
    ) -> None:
        first = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        second = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        assert second.status_code == 200, second.text
        assert second.json() == first.json()

    @pytest.mark.parametrize("actor", ["manager", "rep", "viewer"], indirect=True)
    @pytest.mark.parametrize("action", ["deactivate", "activate"])
    async def test_non_admins_get_403(self, action: str, actor: Actor, other_rep: Actor) -> None:
        response = await actor.client.post(f"/v1/users/{other_rep.id}/{action}")
        assert_problem(response, 403, "forbidden")
        assert (await other_rep.client.get("/v1/users/me")).json()["active"] is True

    async def test_admin_cannot_deactivate_themself(self, admin: Actor) -> None:
        response = await admin.client.post(f"/v1/users/{admin.id}/deactivate")
        body = assert_problem(response, 409, "conflict")
        assert body["detail"] == "You cannot deactivate yourself."
        me = await admin.client.get("/v1/users/me")
        assert me.status_code == 200, me.text
        assert me.json()["active"] is True

    async def test_admin_cannot_change_their_own_role(self, admin: Actor) -> None:
        path = f"/v1/users/{admin.id}"
        response = await admin.client.patch(path, json={"role": "viewer"})
        body = assert_problem(response, 409, "conflict")
        assert body["detail"] == "You cannot change your own role; another admin can."
        me = (await admin.client.get("/v1/users/me")).json()
        assert (me["role"], me["version"]) == ("admin", 1)
        # Their other fields, and the same role, are theirs to send.
        same = await admin.client.patch(path, json={"role": "admin", "name": "Renamed"})
        assert same.status_code == 200, same.text
        assert (same.json()["role"], same.json()["name"]) == ("admin", "Renamed")

    async def test_unknown_user_is_404(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/users/01a203b2-0000-7000-8000-000000000000/deactivate"
        )
        assert_problem(response, 404, "not-found")


class TestGetUser:
    async def test_any_role_reads_a_user_with_etag(self, viewer: Actor, rep: Actor) -> None:
        response = await viewer.client.get(f"/v1/users/{rep.id}")
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json()["id"] == str(rep.id)
        assert response.json()["email"] == rep.email

    async def test_unknown_is_404_and_malformed_id_is_422(self, rep: Actor) -> None:
        assert_problem(
            await rep.client.get("/v1/users/01a203b2-0000-7000-8000-000000000000"),
            404,
            "not-found",
        )
        body = assert_problem(await rep.client.get("/v1/users/not-a-uuid"), 422, "validation")
        assert error_fields(body) == {"path.user_id"}
