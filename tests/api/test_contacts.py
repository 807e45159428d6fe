"""Contacts through HTTP: CRUD, normalization, uniqueness, lifecycle, company link, ownership."""

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import select

from crm_api.contacts.models import LifecycleChange
from crm_api.core.db import Database
from tests.api.factories import (
    archive,
    create_company,
    create_contact,
    define_custom_field,
    list_ids,
    unique_email,
)
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def lifecycle_history(db: Database, contact_id: str) -> list[tuple[str | None, str]]:
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(LifecycleChange.from_stage, LifecycleChange.to_stage)
            .where(LifecycleChange.contact_id == UUID(contact_id))
            .order_by(LifecycleChange.changed_at, LifecycleChange.id)
        )
        return [(row.from_stage, row.to_stage) for row in rows]


class TestCreateContact:
    async def test_returns_the_full_record_with_location_and_etag(
        self, admin: Actor, rep: Actor
    ) -> None:
        await define_custom_field(admin, "contact", "tier", "text")
        await define_custom_field(admin, "contact", "score", "number")
        email = unique_email("ada")
        response = await rep.client.post(
            "/v1/contacts",
            json={
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": email,
                "phone": "415-555-2671",
                "title": "Analyst",
                "lead_source": "referral",
                "email_opt_in": True,
                "custom_fields": {"tier": "gold", "score": 7},
                "external_id": "erp-1",
            },
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/contacts/{body['id']}"
        assert response.headers["etag"] == '"1"'
        assert UUID(body["id"]).version == 7
        assert body == {
            "id": body["id"],
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email,
            "phone": "+14155552671",
            "title": "Analyst",
            "company_id": None,
            "company": None,
            "lifecycle_stage": "lead",
            "lifecycle_stage_changed_at": body["lifecycle_stage_changed_at"],
            "lead_source": "referral",
            "owner_id": str(rep.id),
            "email_opt_in": True,
            "do_not_contact": False,
            "custom_fields": {"tier": "gold", "score": 7},
            "external_id": "erp-1",
            "last_activity_at": None,
            "first_outreach_at": None,
            "next_task": None,
            "merged_into_id": None,
            "version": 1,
            "created_by": str(rep.id),
            "created_at": body["created_at"],
            "updated_at": body["created_at"],
            "archived_at": None,
        }
        assert at(body["created_at"]).utcoffset() is not None

    async def test_owner_defaults_to_the_caller(self, manager: Actor) -> None:
        contact = await create_contact(manager, first_name="Grace")

        assert contact["owner_id"] == str(manager.id)
        assert contact["created_by"] == str(manager.id)

    async def test_embeds_a_company_summary(self, rep: Actor) -> None:
        company = await create_company(rep, name="Initech", domain="initech.com")

        contact = await create_contact(rep, first_name="Peter", company_id=company["id"])

        assert contact["company_id"] == company["id"]
        assert contact["company"] == {
            "id": company["id"],
            "name": "Initech",
            "domain": "initech.com",
        }

    async def test_company_summary_follows_a_company_rename(self, rep: Actor) -> None:
        company = await create_company(rep, name="Initech")
        contact = await create_contact(rep, first_name="Peter", company_id=company["id"])
        renamed = await rep.client.patch(
            f"/v1/companies/{company['id']}", json={"name": "Initrode"}
        )
        assert renamed.status_code == 200, renamed.text

        response = await rep.client.get(f"/v1/contacts/{contact['id']}")

        assert response.json()["company"] == {
            "id": company["id"],
            "name": "Initrode",
            "domain": None,
        }

    async def test_unknown_field_is_422(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/contacts", json={"first_name": "A", "nickname": "B"})

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.nickname"}


class TestGetContact:
    async def test_returns_the_record_with_its_etag(self, rep: Actor, viewer: Actor) -> None:
        created = await create_contact(rep, first_name="Linus")

        response = await viewer.client.get(f"/v1/contacts/{created['id']}")

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json() == created

    async def test_unknown_contact_is_404(self, rep: Actor) -> None:
        response = await rep.client.get(f"/v1/contacts/{uuid4()}")

        assert_problem(response, 404, "not-found")

    async def test_malformed_id_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts/not-a-uuid")

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"path.contact_id"}

    async def test_unknown_contact_is_404_for_every_write(self, admin: Actor) -> None:
        missing = f"/v1/contacts/{uuid4()}"

        assert_problem(await admin.client.patch(missing, json={"title": "x"}), 404, "not-found")
        assert_problem(await admin.client.delete(missing), 404, "not-found")
        assert_problem(await admin.client.post(f"{missing}/restore"), 404, "not-found")

    async def test_malformed_id_is_422_for_every_write(self, admin: Actor) -> None:
        for response in (
            await admin.client.patch("/v1/contacts/123", json={"title": "x"}),
            await admin.client.delete("/v1/contacts/123"),
            await admin.client.post("/v1/contacts/123/restore"),
        ):
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"path.contact_id"}


class TestUpdateContact:
    async def test_changes_only_the_fields_sent(self, admin: Actor, rep: Actor) -> None:
        await define_custom_field(admin, "contact", "tier", "text")
        created = await create_contact(
            rep,
            first_name="Ada",
            last_name="Lovelace",
            email=unique_email(),
            phone="+14155552671",
            title="Analyst",
            lead_source="web",
            custom_fields={"tier": "gold"},
        )

        response = await rep.client.patch(f"/v1/contacts/{created['id']}", json={"title": "CTO"})

        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["etag"] == '"2"'
        assert body == {
            **created,
            "title": "CTO",
            "version": 2,
            "updated_at": body["updated_at"],
        }
        assert at(body["updated_at"]) > at(created["updated_at"])
        again = await rep.client.get(f"/v1/contacts/{created['id']}")
        assert again.headers["etag"] == '"2"'
        assert again.json() == body

    async def test_null_clears_a_nullable_field(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Ada", phone="+14155552671", title="CTO")

        response = await rep.client.patch(
            f"/v1/contacts/{created['id']}", json={"phone": None, "title": None}
        )

        assert response.status_code == 200, response.text
        assert response.json()["phone"] is None
        assert response.json()["title"] is None
        assert response.json()["first_name"] == "Ada"

    async def test_each_change_bumps_the_version(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Ada")
        path = f"/v1/contacts/{created['id']}"

        first = await rep.client.patch(path, json={"title": "One"})
        second = await rep.client.patch(path, json={"title": "Two"})

        assert (first.json()["version"], first.headers["etag"]) == (2, '"2"')
        assert (second.json()["version"], second.headers["etag"]) == (3, '"3"')

    async def test_patch_that_changes_nothing_keeps_the_version(self, rep: Actor) -> None:
        email = unique_email()
        created = await create_contact(rep, first_name="Ada", email=email, title="CTO")
        path = f"/v1/contacts/{created['id']}"

        same = await rep.client.patch(
            path,
            json={
                "first_name": "  Ada ",
                "email": f" {email.upper()} ",
                "title": "CTO",
                "lifecycle_stage": "lead",
            },
        )
        empty = await rep.client.patch(path, json={})

        for response in (same, empty):
            assert response.status_code == 200, response.text
            assert response.headers["etag"] == '"1"'
            assert response.json() == created

    async def test_non_nullable_field_sent_as_null_is_422(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Ada")

        response = await rep.client.patch(
            f"/v1/contacts/{created['id']}", json={"lifecycle_stage": None, "owner_id": None}
        )

        body = assert_problem(response, 422, "validation")
        assert [error["field"] for error in body["errors"]] == ["body"]
        assert "lifecycle_stage, owner_id" in body["errors"][0]["message"]
        unchanged = await rep.client.get(f"/v1/contacts/{created['id']}")
        assert unchanged.json() == created

    async def test_clearing_every_identifying_field_is_422(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Ada", email=unique_email())

        response = await rep.client.patch(
            f"/v1/contacts/{created['id']}", json={"first_name": None, "email": None}
        )

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.first_name", "body.last_name", "body.email"}
        unchanged = await rep.client.get(f"/v1/contacts/{created['id']}")
        assert unchanged.json() == created


class TestContactNormalization:
    async def test_email_is_trimmed_and_lower_cased(self, rep: Actor) -> None:
        contact = await create_contact(rep, email="  Jane.Doe+CRM@Example.COM ")

        assert contact["email"] == "jane.doe+crm@example.com"

    async def test_email_is_normalized_on_patch(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Jane")

        response = await rep.client.patch(
            f"/v1/contacts/{created['id']}", json={"email": " JANE@EXAMPLE.ORG"}
        )

        assert response.json()["email"] == "jane@example.org"

    async def test_invalid_email_is_422_naming_the_field(self, rep: Actor) -> None:
        for email in ("not-an-email", "jane@localhost", "two@@example.com", "a b@example.com"):
            response = await rep.client.post("/v1/contacts", json={"email": email})

            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.email"}, email

    async def test_national_phone_is_read_in_the_default_region(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada", phone="(415) 555-2671")

        assert contact["phone"] == "+14155552671"

    async def test_international_phone_keeps_its_country(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada", phone="+44 20 7946 0958")

        assert contact["phone"] == "+442079460958"

    async def test_phone_is_normalized_on_patch(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Ada")

        response = await rep.client.patch(
            f"/v1/contacts/{created['id']}", json={"phone": "415.555.2671"}
        )

        assert response.json()["phone"] == "+14155552671"

    async def test_invalid_phone_is_422(self, rep: Actor) -> None:
        for phone in ("12345", "not a phone", "555-0100"):
            response = await rep.client.post(
                "/v1/contacts", json={"first_name": "Ada", "phone": phone}
            )

            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.phone"}, phone

    async def test_names_are_trimmed_and_inner_whitespace_collapsed(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="  Mary \t Ann ", last_name=" van   Dyke\n")

        assert contact["first_name"] == "Mary Ann"
        assert contact["last_name"] == "van Dyke"

    async def test_whitespace_only_name_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "   ", "email": unique_email()}
        )

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.first_name"}

    async def test_contact_without_name_or_email_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"phone": "+14155552671", "title": "CTO"}
        )

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.first_name", "body.last_name", "body.email"}
        assert await list_ids(rep.client, "/v1/contacts") == []


class TestContactUniqueness:
    async def test_duplicate_email_is_409_naming_the_holder(self, rep: Actor) -> None:
        first = await create_contact(rep, email="dup@example.com")

        response = await rep.client.post("/v1/contacts", json={"email": " Dup@Example.com"})

        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == first["id"]
        assert await list_ids(rep.client, "/v1/contacts") == [first["id"]]

    async def test_email_is_free_again_after_the_holder_is_archived(self, rep: Actor) -> None:
        first = await create_contact(rep, email="dup@example.com")
        await archive(rep, f"/v1/contacts/{first['id']}")

        second = await create_contact(rep, email="dup@example.com")

        assert second["id"] != first["id"]
        assert second["email"] == "dup@example.com"

    async def test_restore_when_the_email_was_taken_is_409(self, rep: Actor) -> None:
        first = await create_contact(rep, email="dup@example.com")
        await archive(rep, f"/v1/contacts/{first['id']}")
        second = await create_contact(rep, email="dup@example.com")

        response = await rep.client.post(f"/v1/contacts/{first['id']}/restore")

        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == second["id"]
        still_archived = await rep.client.get(f"/v1/contacts/{first['id']}")
        assert still_archived.json()["archived_at"] is not None
        assert still_archived.json()["version"] == 2

    async def test_patch_to_another_contacts_email_is_409(self, rep: Actor) -> None:
        holder = await create_contact(rep, email="taken@example.com")
        other = await create_contact(rep, email="free@example.com")

        response = await rep.client.patch(
            f"/v1/contacts/{other['id']}", json={"email": "TAKEN@example.com"}
        )

        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == holder["id"]
        unchanged = await rep.client.get(f"/v1/contacts/{other['id']}")
        assert unchanged.json() == other

    async def test_duplicate_external_id_is_409(self, rep: Actor) -> None:
        first = await create_contact(rep, first_name="A", external_id="erp-42")

        created = await rep.client.post(
            "/v1/contacts", json={"first_name": "B", "external_id": " erp-42 "}
        )
        other = await create_contact(rep, first_name="C", external_id="erp-43")
        patched = await rep.client.patch(
            f"/v1/contacts/{other['id']}", json={"external_id": "erp-42"}
        )

        assert assert_problem(created, 409, "conflict")["existing_id"] == first["id"]
        assert assert_problem(patched, 409, "conflict")["existing_id"] == first["id"]

    async def test_external_id_is_free_again_after_archive(self, rep: Actor) -> None:
        first = await create_contact(rep, first_name="A", external_id="erp-42")
        await archive(rep, f"/v1/contacts/{first['id']}")

        second = await create_contact(rep, first_name="B", external_id="erp-42")

        assert second["external_id"] == "erp-42"

    async def test_contacts_without_email_do_not_clash(self, rep: Actor) -> None:
        await create_contact(rep, first_name="A")

        second = await rep.client.post("/v1/contacts", json={"first_name": "B"})

        assert second.status_code == 201, second.text


class TestContactLifecycle:
    async def test_defaults_to_lead_and_records_the_first_stage(
        self, rep: Actor, db: Database
    ) -> None:
        contact = await create_contact(rep, first_name="Ada")

        assert contact["lifecycle_stage"] == "lead"
        assert await lifecycle_history(db, contact["id"]) == [(None, "lead")]

    async def test_can_be_created_in_any_stage(self, rep: Actor, db: Database) -> None:
        contact = await create_contact(rep, first_name="Ada", lifecycle_stage="customer")

        assert contact["lifecycle_stage"] == "customer"
        assert await lifecycle_history(db, contact["id"]) == [(None, "customer")]

    async def test_invalid_stage_is_422(self, rep: Actor) -> None:
        created = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ada", "lifecycle_stage": "prospect"}
        )
        contact = await create_contact(rep, first_name="Ada")
        patched = await rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"lifecycle_stage": "LEAD"}
        )

        assert error_fields(assert_problem(created, 422, "validation")) == {"body.lifecycle_stage"}
        assert error_fields(assert_problem(patched, 422, "validation")) == {"body.lifecycle_stage"}

    async def test_change_moves_the_changed_at_and_adds_history(
        self, rep: Actor, db: Database
    ) -> None:
        contact = await create_contact(rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"

        mql = (await rep.client.patch(path, json={"lifecycle_stage": "mql"})).json()
        sql = (await rep.client.patch(path, json={"lifecycle_stage": "sql"})).json()

        assert mql["lifecycle_stage"] == "mql"
        assert at(mql["lifecycle_stage_changed_at"]) > at(contact["lifecycle_stage_changed_at"])
        assert at(sql["lifecycle_stage_changed_at"]) > at(mql["lifecycle_stage_changed_at"])
        assert sql["version"] == 3
        assert await lifecycle_history(db, contact["id"]) == [
            (None, "lead"),
            ("lead", "mql"),
            ("mql", "sql"),
        ]

    async def test_patch_to_the_same_stage_changes_nothing(self, rep: Actor, db: Database) -> None:
        contact = await create_contact(rep, first_name="Ada", lifecycle_stage="mql")
        path = f"/v1/contacts/{contact['id']}"

        same = await rep.client.patch(path, json={"lifecycle_stage": "mql"})
        other_field = await rep.client.patch(path, json={"lifecycle_stage": "mql", "title": "CTO"})

        assert same.json() == contact
        body = other_field.json()
        assert body["version"] == 2
        assert body["lifecycle_stage_changed_at"] == contact["lifecycle_stage_changed_at"]
        assert await lifecycle_history(db, contact["id"]) == [(None, "mql")]

    async def test_stage_change_time_is_the_write_time(self, rep: Actor, db: Database) -> None:
        """One clock per write: the contact's changed_at, updated_at and the history row agree."""
        contact = await create_contact(rep, first_name="Ada")
        assert contact["lifecycle_stage_changed_at"] == contact["created_at"]

        response = await rep.client.patch(
            f"/v1/contacts/{contact['id']}", json={"lifecycle_stage": "customer"}
        )

        body = response.json()
        assert body["lifecycle_stage_changed_at"] == body["updated_at"]
        async with db.sessionmaker() as session:
            changed_at = (
                await session.execute(
                    select(LifecycleChange.changed_at).where(
                        LifecycleChange.contact_id == UUID(contact["id"]),
                        LifecycleChange.to_stage == "customer",
                    )
                )
            ).scalar_one()
        assert changed_at == at(body["lifecycle_stage_changed_at"])


class TestContactCompanyReference:
    async def test_unknown_company_on_create_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ada", "company_id": str(uuid4())}
        )

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.company_id"}

    async def test_archived_company_on_create_is_422(self, rep: Actor) -> None:
        company = await create_company(rep)
        await archive(rep, f"/v1/companies/{company['id']}")

        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ada", "company_id": company["id"]}
        )

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.company_id"}

    async def test_unknown_or_archived_company_on_patch_is_422(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada")
        company = await create_company(rep)
        await archive(rep, f"/v1/companies/{company['id']}")
        path = f"/v1/contacts/{contact['id']}"

        for company_id in (str(uuid4()), company["id"]):
            response = await rep.client.patch(path, json={"company_id": company_id})

            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.company_id"}
        assert (await rep.client.get(path)).json() == contact

    async def test_patch_links_and_unlinks_a_company(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada")
        company = await create_company(rep, name="Hooli", domain="hooli.com")
        path = f"/v1/contacts/{contact['id']}"

        linked = await rep.client.patch(path, json={"company_id": company["id"]})
        unlinked = await rep.client.patch(path, json={"company_id": None})

        assert linked.json()["company"] == {
            "id": company["id"],
            "name": "Hooli",
            "domain": "hooli.com",
        }
        assert unlinked.json()["company_id"] is None
        assert unlinked.json()["company"] is None


class TestContactOwnership:
    async def test_rep_edits_and_archives_own_contact(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"

        patched = await rep.client.patch(path, json={"title": "CTO"})
        archived = await rep.client.delete(path)

        assert patched.status_code == 200, patched.text
        assert archived.status_code == 204, archived.text

    async def test_rep_cannot_change_another_reps_contact(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        contact = await create_contact(other_rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"

        assert_problem(await rep.client.patch(path, json={"title": "CTO"}), 403, "forbidden")
        assert_problem(await rep.client.delete(path), 403, "forbidden")
        assert (await rep.client.get(path)).json() == contact

    async def test_rep_cannot_restore_another_reps_contact(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        contact = await create_contact(other_rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"
        await archive(other_rep, path)

        assert_problem(await rep.client.post(f"{path}/restore"), 403, "forbidden")
        assert (await rep.client.get(path)).json()["archived_at"] is not None

    async def test_rep_cannot_assign_someone_else_on_create(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        response = await rep.client.post(
            "/v1/contacts", json={"first_name": "Ada", "owner_id": str(other_rep.id)}
        )

        assert_problem(response, 403, "forbidden")
        assert await list_ids(rep.client, "/v1/contacts") == []

    async def test_rep_may_name_themselves_as_owner(self, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada", owner_id=str(rep.id))

        assert contact["owner_id"] == str(rep.id)

    async def test_rep_cannot_hand_own_contact_to_someone_else(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        contact = await create_contact(rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"

        response = await rep.client.patch(path, json={"owner_id": str(other_rep.id)})

        assert_problem(response, 403, "forbidden")
        assert (await rep.client.get(path)).json() == contact

    async def test_manager_and_admin_assign_anyone(
        self, manager: Actor, admin: Actor, rep: Actor, other_rep: Actor
    ) -> None:
        by_manager = await create_contact(manager, first_name="Ada", owner_id=str(rep.id))
        by_admin = await create_contact(admin, first_name="Bob", owner_id=str(other_rep.id))

        reassigned = await manager.client.patch(
            f"/v1/contacts/{by_admin['id']}", json={"owner_id": str(rep.id)}
        )
        edited_by_admin = await admin.client.patch(
            f"/v1/contacts/{by_manager['id']}", json={"title": "CTO"}
        )

        assert by_manager["owner_id"] == str(rep.id)
        assert by_manager["created_by"] == str(manager.id)
        assert by_admin["owner_id"] == str(other_rep.id)
        assert reassigned.status_code == 200, reassigned.text
        assert reassigned.json()["owner_id"] == str(rep.id)
        assert edited_by_admin.status_code == 200, edited_by_admin.text
        # the new owner can now edit it
        mine = await rep.client.patch(f"/v1/contacts/{by_admin['id']}", json={"title": "VP"})
        assert mine.status_code == 200, mine.text

    async def test_unknown_owner_is_422(self, manager: Actor) -> None:
        created = await manager.client.post(
            "/v1/contacts", json={"first_name": "Ada", "owner_id": str(uuid4())}
        )
        contact = await create_contact(manager, first_name="Bob")
        patched = await manager.client.patch(
            f"/v1/contacts/{contact['id']}", json={"owner_id": str(uuid4())}
        )

        assert error_fields(assert_problem(created, 422, "validation")) == {"body.owner_id"}
        assert error_fields(assert_problem(patched, 422, "validation")) == {"body.owner_id"}

    async def test_viewer_reads_but_cannot_write(self, viewer: Actor, rep: Actor) -> None:
        contact = await create_contact(rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"

        created = await viewer.client.post("/v1/contacts", json={"first_name": "Eve"})
        patched = await viewer.client.patch(path, json={"title": "CTO"})
        deleted = await viewer.client.delete(path)
        restored = await viewer.client.post(f"{path}/restore")
        read = await viewer.client.get(path)
        listed = await list_ids(viewer.client, "/v1/contacts")

        for response in (created, patched, deleted, restored):
            assert_problem(response, 403, "forbidden")
        assert read.status_code == 200
        assert read.json() == contact
        assert listed == [contact["id"]]
