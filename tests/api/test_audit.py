"""The audit log through HTTP: who changed what, before → after, newest first; and that a failed
write leaves neither an audit row nor an outbox event behind."""

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_api.core.audit import AuditEntry
from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.core.events import Event
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor, make_actor

ENTRY_FIELDS = {
    "id",
    "occurred_at",
    "actor_user_id",
    "actor_api_key_id",
    "action",
    "entity_type",
    "entity_id",
    "changes",
    "request_id",
}


@pytest.fixture
async def actor(request: pytest.FixtureRequest, app: Any, db: Database) -> Actor:
    """A user of the role named by indirect parametrization."""
    return await make_actor(app, db, Role(request.param))


async def own_key_id(actor: Actor) -> str:
    response = await actor.client.get("/v1/api-keys", params={"user_id": str(actor.id)})
    assert response.status_code == 200, response.text
    [key] = response.json()["data"]
    key_id: str = key["id"]
    return key_id


async def audit_of(reader: Actor, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    response = await reader.client.get(
        "/v1/audit-log", params={"entity_type": entity_type, "entity_id": entity_id}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    entries: list[dict[str, Any]] = body["data"]
    for entry in entries:
        assert set(entry) == ENTRY_FIELDS
    return entries


async def row_counts(db: Database) -> tuple[int, int]:
    async with db.sessionmaker() as session:
        audit = (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one()
        events = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
    return audit, events


class TestContactHistory:
    @pytest.mark.parametrize("actor", ["manager", "admin"], indirect=True)
    async def test_created_updated_archived_restored_newest_first(
        self, actor: Actor, rep: Actor
    ) -> None:
        reader = actor
        key_id = await own_key_id(rep)

        created = await rep.client.post(
            "/v1/contacts",
            json={"first_name": "Ann", "email": "ann@example.com"},
            headers={"X-Request-ID": "req-create"},
        )
        assert created.status_code == 201, created.text
        contact = created.json()
        contact_id = contact["id"]
        updated = await rep.client.patch(
            f"/v1/contacts/{contact_id}",
            json={"first_name": "Anne", "email": "ann@example.com"},
            headers={"If-Match": '"1"', "X-Request-ID": "req-update"},
        )
        assert updated.status_code == 200, updated.text
        archived = await rep.client.delete(
            f"/v1/contacts/{contact_id}", headers={"X-Request-ID": "req-archive"}
        )
        assert archived.status_code == 204, archived.text
        archived_at = (await rep.client.get(f"/v1/contacts/{contact_id}")).json()["archived_at"]
        assert archived_at is not None
        restored = await rep.client.post(
            f"/v1/contacts/{contact_id}/restore", headers={"X-Request-ID": "req-restore"}
        )
        assert restored.status_code == 200, restored.text

        entries = await audit_of(reader, "contact", contact_id)
        assert [entry["action"] for entry in entries] == [
            "restored",
            "archived",
            "updated",
            "created",
        ]
        for entry in entries:
            assert entry["entity_type"] == "contact"
            assert entry["entity_id"] == contact_id
            assert entry["actor_user_id"] == str(rep.id)
            assert entry["actor_api_key_id"] == key_id
        occurred = [datetime.fromisoformat(entry["occurred_at"]) for entry in entries]
        assert occurred == sorted(occurred, reverse=True)
        assert len(set(occurred)) == 4

        restored_entry, archived_entry, updated_entry, created_entry = entries
        assert restored_entry["changes"] == {"archived_at": [archived_at, None]}
        assert restored_entry["request_id"] == "req-restore"
        assert archived_entry["changes"] == {"archived_at": [None, archived_at]}
        assert archived_entry["occurred_at"] == archived_at
        assert archived_entry["request_id"] == "req-archive"
        # Only what changed, before → after: the unchanged email is not there.
        assert updated_entry["changes"] == {"first_name": ["Ann", "Anne"]}
        assert updated_entry["occurred_at"] == updated.json()["updated_at"]
        assert updated_entry["request_id"] == "req-update"
        assert created_entry["changes"] == {
            "first_name": [None, "Ann"],
            "email": [None, "ann@example.com"],
            "lifecycle_stage": [None, "lead"],
            "lifecycle_stage_changed_at": [None, contact["lifecycle_stage_changed_at"]],
            "owner_id": [None, str(rep.id)],
            "email_opt_in": [None, False],
            "do_not_contact": [None, False],
            "custom_fields": [None, {}],
        }
        assert created_entry["occurred_at"] == contact["created_at"]
        assert created_entry["request_id"] == "req-create"

    async def test_the_acting_user_is_recorded(self, manager: Actor, rep: Actor) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        response = await manager.client.patch(
            f"/v1/contacts/{contact['id']}", json={"last_name": "Lee"}
        )
        assert response.status_code == 200, response.text

        updated, created = await audit_of(manager, "contact", contact["id"])
        assert (created["actor_user_id"], created["actor_api_key_id"]) == (
            str(rep.id),
            await own_key_id(rep),
        )
        assert (updated["actor_user_id"], updated["actor_api_key_id"]) == (
            str(manager.id),
            await own_key_id(manager),
        )
        assert updated["changes"] == {"last_name": [None, "Lee"]}

    async def test_a_patch_that_changes_nothing_writes_no_entry(
        self, manager: Actor, rep: Actor, db: Database
    ) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        before = await row_counts(db)
        response = await rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"first_name": "Ann"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1
        assert await row_counts(db) == before
        assert [e["action"] for e in await audit_of(manager, "contact", contact["id"])] == [
            "created"
        ]

    async def test_entries_are_filtered_to_the_entity(self, manager: Actor, rep: Actor) -> None:
        first = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        second = (await rep.client.post("/v1/contacts", json={"first_name": "Bob"})).json()
        [entry] = await audit_of(manager, "contact", first["id"])
        assert entry["entity_id"] == first["id"]
        [entry] = await audit_of(manager, "contact", second["id"])
        assert entry["entity_id"] == second["id"]
        assert await audit_of(manager, "company", first["id"]) == []

    async def test_filter_by_actor(self, manager: Actor, rep: Actor, other_rep: Actor) -> None:
        await rep.client.post("/v1/contacts", json={"first_name": "Ann"})
        theirs = (await other_rep.client.post("/v1/contacts", json={"first_name": "Bob"})).json()
        response = await manager.client.get(
            "/v1/audit-log", params={"actor_user_id": str(other_rep.id)}
        )
        assert response.status_code == 200, response.text
        assert [(e["entity_id"], e["action"]) for e in response.json()["data"]] == [
            (theirs["id"], "created")
        ]


class TestUserHistory:
    async def test_user_changes_are_audited(self, admin: Actor, rep: Actor) -> None:
        await admin.client.patch(f"/v1/users/{rep.id}", json={"team": "North"})
        await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        await admin.client.post(f"/v1/users/{rep.id}/activate")

        *entries, bootstrap = await audit_of(admin, "user", str(rep.id))
        assert [(e["action"], e["changes"]) for e in entries] == [
            ("activated", {"active": [False, True]}),
            ("deactivated", {"active": [True, False]}),
            ("updated", {"team": [None, "North"]}),
        ]
        assert {e["actor_user_id"] for e in entries} == {str(admin.id)}
        assert {e["actor_api_key_id"] for e in entries} == {await own_key_id(admin)}
        # The fixture created the user with no principal, as the CLI does.
        assert bootstrap["action"] == "created"
        assert (bootstrap["actor_user_id"], bootstrap["actor_api_key_id"]) == (None, None)


class TestAuditPaging:
    async def test_pages_newest_first_without_gaps_or_repeats(
        self, manager: Actor, rep: Actor
    ) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "A0"})).json()
        for i in range(1, 5):
            response = await rep.client.patch(
                f"/v1/contacts/{contact['id']}", json={"first_name": f"A{i}"}
            )
            assert response.status_code == 200, response.text
        params = {"entity_type": "contact", "entity_id": contact["id"], "limit": 2}

        seen: list[dict[str, Any]] = []
        cursor = None
        for _ in range(3):
            page = await manager.client.get(
                "/v1/audit-log", params={**params, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            seen += page.json()["data"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert cursor is None
        assert [entry["changes"].get("first_name", [None, None])[1] for entry in seen] == [
            "A4",
            "A3",
            "A2",
            "A1",
            "A0",
        ]
        assert len({entry["id"] for entry in seen}) == 5


class TestAuditAccess:
    @pytest.mark.parametrize("actor", ["rep", "viewer"], indirect=True)
    async def test_reps_and_viewers_get_403(self, actor: Actor) -> None:
        response = await actor.client.get("/v1/audit-log")
        body = assert_problem(response, 403, "forbidden")
        assert "data" not in body

    async def test_anonymous_gets_401(self, anonymous: Any) -> None:
        assert_problem(await anonymous.get("/v1/audit-log"), 401, "unauthorized")

    async def test_malformed_entity_id_is_422(self, manager: Actor) -> None:
        response = await manager.client.get("/v1/audit-log", params={"entity_id": "nope"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.entity_id"}


class TestFailedWritesLeaveNothing:
    async def test_duplicate_contact_email(self, rep: Actor, manager: Actor, db: Database) -> None:
        first = (await rep.client.post("/v1/contacts", json={"email": "dup@example.com"})).json()
        before = await row_counts(db)

        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Copy", "email": "DUP@example.com"}
        )
        assert_problem(response, 409, "conflict")
        assert await row_counts(db) == before
        assert len(await audit_of(manager, "contact", first["id"])) == 1

    async def test_duplicate_email_on_update(
        self, rep: Actor, manager: Actor, db: Database
    ) -> None:
        await rep.client.post("/v1/contacts", json={"email": "taken@example.com"})
        other = (await rep.client.post("/v1/contacts", json={"email": "free@example.com"})).json()
        before = await row_counts(db)

        response = await rep.client.patch(
            f"/v1/contacts/{other['id']}", json={"email": "taken@example.com"}
        )
        assert_problem(response, 409, "conflict")
        assert await row_counts(db) == before
        current = (await rep.client.get(f"/v1/contacts/{other['id']}")).json()
        assert current["email"] == "free@example.com"
        assert current["version"] == 1

    async def test_stale_if_match(self, rep: Actor, db: Database) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        await rep.client.patch(f"/v1/contacts/{contact['id']}", json={"first_name": "Anne"})
        before = await row_counts(db)

        stale_patch = await rep.client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"first_name": "Annie"},
            headers={"If-Match": '"1"'},
        )
        assert_problem(stale_patch, 412, "precondition-failed")
        stale_delete = await rep.client.delete(
            f"/v1/contacts/{contact['id']}", headers={"If-Match": '"1"'}
        )
        assert_problem(stale_delete, 412, "precondition-failed")
        assert await row_counts(db) == before
        current = (await rep.client.get(f"/v1/contacts/{contact['id']}")).json()
        assert (current["first_name"], current["version"], current["archived_at"]) == (
            "Anne",
            2,
            None,
        )

    async def test_forbidden_write(self, rep: Actor, other_rep: Actor, db: Database) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        before = await row_counts(db)
        response = await other_rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"first_name": "Mine"}
        )
        assert_problem(response, 403, "forbidden")
        assert await row_counts(db) == before

    async def test_invalid_write(self, rep: Actor, db: Database) -> None:
        before = await row_counts(db)
        response = await rep.client.post("/v1/contacts", json={"title": "No name"})
        assert_problem(response, 422, "validation")
        assert await row_counts(db) == before

    async def test_duplicate_user_email(self, admin: Actor, db: Database) -> None:
        await admin.client.post("/v1/users", json={"email": "bob@example.com", "name": "Bob"})
        before = await row_counts(db)
        response = await admin.client.post(
            "/v1/users", json={"email": "bob@example.com", "name": "Bob Again"}
        )
        assert_problem(response, 409, "conflict")
        assert await row_counts(db) == before

    async def test_stale_user_if_match(self, admin: Actor, rep: Actor, db: Database) -> None:
        await admin.client.patch(f"/v1/users/{rep.id}", json={"team": "North"})
        before = await row_counts(db)
        response = await admin.client.patch(
            f"/v1/users/{rep.id}", json={"role": "admin"}, headers={"If-Match": '"1"'}
        )
        assert_problem(response, 412, "precondition-failed")
        assert await row_counts(db) == before

    async def test_admin_deactivating_themself(self, admin: Actor, db: Database) -> None:
        before = await row_counts(db)
        assert_problem(await admin.client.post(f"/v1/users/{admin.id}/deactivate"), 409, "conflict")
        assert await row_counts(db) == before


class TestEventsMatchAudit:
    async def test_each_write_has_one_event_of_the_same_kind(
        self, rep: Actor, db: Database
    ) -> None:
        contact = (await rep.client.post("/v1/contacts", json={"first_name": "Ann"})).json()
        await rep.client.patch(f"/v1/contacts/{contact['id']}", json={"first_name": "Anne"})
        await rep.client.delete(f"/v1/contacts/{contact['id']}")
        await rep.client.post(f"/v1/contacts/{contact['id']}/restore")

        async with db.sessionmaker() as session:
            events = (
                (
                    await session.execute(
                        select(Event.__table__)
                        .where(Event.entity_type == "contact")
                        .order_by(Event.outbox_id)
                    )
                )
                .mappings()
                .all()
            )
        assert [(e["type"], str(e["entity_id"])) for e in events] == [
            ("contact.created", contact["id"]),
            ("contact.updated", contact["id"]),
            ("contact.archived", contact["id"]),
            ("contact.restored", contact["id"]),
        ]
        assert events[1]["changed_fields"] == ["first_name"]
        sequences = [e["outbox_id"] for e in events]
        assert sequences == sorted(sequences)
        assert len(set(sequences)) == 4
