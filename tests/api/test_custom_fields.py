"""Custom field definitions (admin CRUD) and the values records may hold."""

from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from crm_api.core.audit import audit_log
from crm_api.core.db import Database
from crm_api.core.events import events
from tests.api.factories import create_company, create_contact, create_deal, unique_email
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

PATH = "/v1/custom-fields"


async def define(actor: Actor, **fields: Any) -> dict[str, Any]:
    body = {"object_type": "contact", "label": fields.get("key", "F").title(), **fields}
    response = await actor.client.post(PATH, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def options(*values: str) -> list[dict[str, str]]:
    return [{"value": value} for value in values]


class TestDefinitions:
    async def test_create_read_list_and_the_contract(self, admin: Actor, rep: Actor) -> None:
        response = await admin.client.post(
            PATH,
            json={
                "object_type": "contact",
                "key": "tier",
                "label": "Tier",
                "type": "enum",
                "options": [{"value": "gold", "label": "Gold"}, {"value": "silver"}],
                "required": False,
                "description": "Support tier",
            },
        )
        assert response.status_code == 201
        created = response.json()
        assert response.headers["location"] == f"{PATH}/{created['id']}"
        assert response.headers["etag"] == '"1"'
        assert created == {
            "id": created["id"],
            "object_type": "contact",
            "key": "tier",
            "label": "Tier",
            "type": "enum",
            "options": [{"value": "gold", "label": "Gold"}, {"value": "silver", "label": "silver"}],
            "required": False,
            "description": "Support tier",
            "version": 1,
            "created_by": str(admin.id),
            "created_at": created["created_at"],
            "updated_at": created["created_at"],
            "archived_at": None,
        }
        await define(admin, object_type="deal", key="segment", type="text")
        # Everyone reads definitions (frontends render forms from them); only admins write.
        listed = await rep.client.get(PATH, params={"object_type": "contact"})
        assert listed.status_code == 200
        assert [item["key"] for item in listed.json()["data"]] == ["tier"]
        got = await rep.client.get(f"{PATH}/{created['id']}")
        assert got.json() == created

    async def test_only_admins_write(self, manager: Actor, rep: Actor, admin: Actor) -> None:
        body = {"object_type": "contact", "key": "x", "label": "X", "type": "text"}
        for actor in (manager, rep):
            assert_problem(await actor.client.post(PATH, json=body), 403, "forbidden")
        field = await define(admin, key="x", type="text")
        patched = await manager.client.patch(f"{PATH}/{field['id']}", json={"label": "Y"})
        assert_problem(patched, 403, "forbidden")
        assert_problem(await rep.client.delete(f"{PATH}/{field['id']}"), 403, "forbidden")

    async def test_bad_definitions(self, admin: Actor) -> None:
        cases = [
            ({"key": "Bad Key", "type": "text"}, {"body.key"}),
            ({"key": "x", "type": "colour"}, {"body.type"}),
            ({"key": "x", "type": "enum"}, {"body.options"}),
            ({"key": "x", "type": "text", "options": options("a")}, {"body.options"}),
            ({"key": "x", "type": "enum", "options": options("a", "a")}, {"body.options"}),
            ({"key": "x", "type": "text", "colour": "red"}, {"body.colour"}),
            ({"key": "x", "type": "text", "object_type": "task"}, {"body.object_type"}),
        ]
        for fields, expected in cases:
            body = {"object_type": "contact", "label": "X", **fields}
            response = await admin.client.post(PATH, json=body)
            assert error_fields(assert_problem(response, 422, "validation")) == expected, fields

    async def test_a_key_is_unique_per_object_type_and_stays_taken(self, admin: Actor) -> None:
        first = await define(admin, key="region", type="text")
        await define(admin, object_type="company", key="region", type="text")
        again = await admin.client.post(
            PATH, json={"object_type": "contact", "key": "region", "label": "R", "type": "number"}
        )
        assert assert_problem(again, 409, "conflict")["existing_id"] == first["id"]
        assert (await admin.client.delete(f"{PATH}/{first['id']}")).status_code == 204
        after_archive = await admin.client.post(
            PATH, json={"object_type": "contact", "key": "region", "label": "R", "type": "text"}
        )
        assert assert_problem(after_archive, 409, "conflict")["existing_id"] == first["id"]

    async def test_key_type_and_object_type_never_change(self, admin: Actor) -> None:
        field = await define(admin, key="score", type="number")
        for change in ({"key": "points"}, {"type": "text"}, {"object_type": "deal"}):
            response = await admin.client.patch(f"{PATH}/{field['id']}", json=change)
            assert error_fields(assert_problem(response, 422, "validation")) == {
                f"body.{next(iter(change))}"
            }

    async def test_update_with_if_match_and_archive_restore(self, admin: Actor) -> None:
        field = await define(admin, key="score", type="number")
        stale = await admin.client.patch(
            f"{PATH}/{field['id']}", json={"label": "Points"}, headers={"If-Match": '"9"'}
        )
        assert assert_problem(stale, 412, "precondition-failed")["current_version"] == 1
        patched = await admin.client.patch(
            f"{PATH}/{field['id']}",
            json={"label": "Points", "required": True},
            headers={"If-Match": '"1"'},
        )
        assert patched.status_code == 200
        assert (patched.json()["label"], patched.json()["required"]) == ("Points", True)
        assert patched.headers["etag"] == '"2"'
        assert (await admin.client.delete(f"{PATH}/{field['id']}")).status_code == 204
        archived = await admin.client.get(PATH, params={"archived": "true"})
        assert [item["key"] for item in archived.json()["data"]] == ["score"]
        restored = await admin.client.post(f"{PATH}/{field['id']}/restore")
        assert restored.json()["archived_at"] is None


class TestValues:
    @pytest.fixture
    async def fields(self, admin: Actor) -> None:
        await define(admin, key="notes", type="text")
        await define(admin, key="score", type="number")
        await define(admin, key="renewal_date", type="date")
        await define(admin, key="vip", type="boolean")
        await define(admin, key="tier", type="enum", options=options("gold", "silver"))
        await define(admin, key="channels", type="multi_enum", options=options("email", "phone"))

    async def test_valid_values_are_stored_and_read_back(self, rep: Actor, fields: None) -> None:
        values = {
            "notes": "x" * 1000,
            "score": 7.5,
            "renewal_date": "2027-02-28",
            "vip": False,
            "tier": "gold",
            "channels": ["phone", "email"],
        }
        contact = await create_contact(rep, custom_fields=values)
        assert contact["custom_fields"] == values
        got = await rep.client.get(f"/v1/contacts/{contact['id']}")
        assert got.json()["custom_fields"] == values

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("notes", "x" * 1001),
            ("notes", 5),
            ("score", "7"),
            ("score", True),
            ("renewal_date", "2027-02-30"),
            ("renewal_date", "2027-02-28T10:00:00Z"),
            ("vip", "yes"),
            ("tier", "bronze"),
            ("tier", ["gold"]),
            ("channels", ["fax"]),
            ("channels", ["email", "email"]),
            ("channels", "email"),
            ("colour", "red"),
        ],
    )
    async def test_a_wrong_value_is_422_naming_the_field(
        self, rep: Actor, db: Database, fields: None, key: str, value: Any
    ) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ann", "custom_fields": {key: value}}
        )
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {f"body.custom_fields.{key}"}
        async with db.sessionmaker() as session:
            written = select(audit_log.c.id).where(audit_log.c.entity_type == "contact")
            assert (await session.execute(written)).first() is None

    async def test_nan_and_infinity_are_not_numbers(self, rep: Actor, fields: None) -> None:
        # JSON has neither, but Python's parser takes them; orjson would store them as null.
        for literal in ("NaN", "Infinity", "-Infinity"):
            body = '{"first_name": "Ann", "custom_fields": {"score": ' + literal + "}}"
            response = await rep.client.post(
                "/v1/contacts", content=body, headers={"content-type": "application/json"}
            )
            problem = assert_problem(response, 422, "validation")
            assert problem["errors"] == [
                {"field": "body.custom_fields.score", "message": "must be a finite number"}
            ]

    async def test_required_fields(self, admin: Actor, rep: Actor) -> None:
        legacy = await create_contact(rep, first_name="Before")
        await define(admin, key="region", type="text", required=True)
        missing = await rep.client.post("/v1/contacts", json={"first_name": "Ann"})
        body = assert_problem(missing, 422, "validation")
        assert body["errors"] == [{"field": "body.custom_fields.region", "message": "is required"}]
        made = await create_contact(rep, first_name="Ann", custom_fields={"region": "EMEA"})
        # A record made before the field was required may still change other fields...
        path = f"/v1/contacts/{legacy['id']}"
        assert (await rep.client.patch(path, json={"title": "CEO"})).status_code == 200
        # ...but nobody may clear a required value.
        cleared = await rep.client.patch(
            f"/v1/contacts/{made['id']}", json={"custom_fields": {"region": None}}
        )
        assert error_fields(assert_problem(cleared, 422, "validation")) == {
            "body.custom_fields.region"
        }

    async def test_patch_merges_custom_fields(self, rep: Actor, fields: None) -> None:
        contact = await create_contact(rep, custom_fields={"tier": "gold", "score": 1})
        path = f"/v1/contacts/{contact['id']}"
        patched = await rep.client.patch(path, json={"custom_fields": {"score": 2, "tier": None}})
        assert patched.json()["custom_fields"] == {"score": 2}
        assert patched.json()["version"] == 2

    async def test_archived_fields(self, admin: Actor, rep: Actor, fields: None) -> None:
        contact = await create_contact(rep, custom_fields={"vip": True, "score": 3})
        listed = await admin.client.get(PATH, params={"object_type": "contact"})
        vip = next(item for item in listed.json()["data"] if item["key"] == "vip")
        assert (await admin.client.delete(f"{PATH}/{vip['id']}")).status_code == 204
        path = f"/v1/contacts/{contact['id']}"
        write = await rep.client.patch(path, json={"custom_fields": {"vip": False}})
        body = assert_problem(write, 422, "validation")
        assert body["errors"][0]["message"].startswith("is an archived custom field")
        # Stored values stay, and other fields still change.
        patched = await rep.client.patch(path, json={"custom_fields": {"score": 4}})
        assert patched.json()["custom_fields"] == {"vip": True, "score": 4}

    async def test_each_object_type_has_its_own_fields(self, admin: Actor, rep: Actor) -> None:
        await define(admin, object_type="company", key="segment", type="text")
        await define(admin, object_type="deal", key="segment", type="enum", options=options("smb"))
        company = await create_company(rep, custom_fields={"segment": "anything"})
        assert company["custom_fields"] == {"segment": "anything"}
        deal = await create_deal(rep, custom_fields={"segment": "smb"})
        assert deal["custom_fields"] == {"segment": "smb"}
        wrong = await rep.client.post(
            "/v1/contacts", json={"first_name": "A", "custom_fields": {"segment": "smb"}}
        )
        assert error_fields(assert_problem(wrong, 422, "validation")) == {
            "body.custom_fields.segment"
        }

    async def test_batch_upsert_names_the_item(self, rep: Actor, fields: None) -> None:
        items = [
            {"external_id": "A", "email": unique_email(), "custom_fields": {"tier": "gold"}},
            {"external_id": "B", "email": unique_email(), "custom_fields": {"tier": "tin"}},
        ]
        response = await rep.client.post("/v1/contacts/batch/upsert", json={"items": items})
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.items.1.custom_fields.tier"}


class TestRemovingOptions:
    async def test_removing_an_option_in_use_is_409_with_the_count(
        self, admin: Actor, rep: Actor
    ) -> None:
        tier = await define(admin, key="tier", type="enum", options=options("gold", "silver"))
        await create_contact(rep, custom_fields={"tier": "silver"})
        archived = await create_contact(rep, custom_fields={"tier": "silver"})
        await rep.client.delete(f"/v1/contacts/{archived['id']}")
        await create_contact(rep, custom_fields={"tier": "gold"})
        response = await admin.client.patch(
            f"{PATH}/{tier['id']}", json={"options": options("gold")}
        )
        body = assert_problem(response, 409, "conflict")
        assert body["record_count"] == 2  # archived records count: they may come back
        unchanged = await admin.client.get(f"{PATH}/{tier['id']}")
        assert [option["value"] for option in unchanged.json()["options"]] == ["gold", "silver"]

    async def test_an_unused_option_goes_freely(self, admin: Actor, rep: Actor) -> None:
        tier = await define(admin, key="tier", type="enum", options=options("gold", "silver"))
        await create_contact(rep, custom_fields={"tier": "gold"})
        response = await admin.client.patch(
            f"{PATH}/{tier['id']}", json={"options": options("gold", "platinum")}
        )
        assert response.status_code == 200
        assert [option["value"] for option in response.json()["options"]] == ["gold", "platinum"]
        refused = await rep.client.post(
            "/v1/contacts", json={"first_name": "A", "custom_fields": {"tier": "silver"}}
        )
        assert_problem(refused, 422, "validation")

    async def test_replacements_rewrite_the_records_as_audited_updates(
        self, admin: Actor, rep: Actor, db: Database
    ) -> None:
        tier = await define(admin, key="tier", type="enum", options=options("gold", "silver"))
        channels = await define(
            admin, key="channels", type="multi_enum", options=options("email", "fax", "phone")
        )
        one = await create_contact(rep, custom_fields={"tier": "silver", "channels": ["fax"]})
        two = await create_contact(
            rep, custom_fields={"tier": "gold", "channels": ["phone", "fax", "email"]}
        )
        response = await admin.client.patch(
            f"{PATH}/{tier['id']}",
            json={"options": options("gold"), "option_replacements": {"silver": "gold"}},
        )
        assert response.status_code == 200
        response = await admin.client.patch(
            f"{PATH}/{channels['id']}",
            json={"options": options("email", "phone"), "option_replacements": {"fax": None}},
        )
        assert response.status_code == 200
        first = (await rep.client.get(f"/v1/contacts/{one['id']}")).json()
        second = (await rep.client.get(f"/v1/contacts/{two['id']}")).json()
        assert (first["custom_fields"], first["version"]) == ({"tier": "gold"}, 3)
        assert second["custom_fields"] == {"tier": "gold", "channels": ["phone", "email"]}
        assert second["version"] == 2  # its tier was gold already: one rewrite, for fax
        async with db.sessionmaker() as session:
            audited = await session.execute(
                select(audit_log.c.changes).where(audit_log.c.entity_id == UUID(one["id"]))
            )
            updates = [row.changes for row in audited if "custom_fields" in row.changes]
            updated = await session.execute(
                select(events.c.changed_fields).where(
                    events.c.entity_id == UUID(one["id"]), events.c.type == "contact.updated"
                )
            )
        assert {"tier": "silver", "channels": ["fax"]} in [c["custom_fields"][0] for c in updates]
        assert [row.changed_fields for row in updated] == [["custom_fields"]] * 2

    async def test_bad_replacements(self, admin: Actor) -> None:
        tier = await define(admin, key="tier", type="enum", options=options("gold", "silver"))
        cases = [
            {"options": options("gold"), "option_replacements": {"bronze": "gold"}},
            {"options": options("gold"), "option_replacements": {"silver": "platinum"}},
            {"option_replacements": {"silver": "gold"}},
        ]
        for body in cases:
            response = await admin.client.patch(f"{PATH}/{tier['id']}", json=body)
            assert_problem(response, 422, "validation")
