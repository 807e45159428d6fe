"""Companies through HTTP: CRUD, domain normalization and uniqueness, revenue, ownership."""

from datetime import datetime
from uuid import UUID, uuid4

import pytest

from tests.api.factories import archive, create_company, define_custom_field, list_ids
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class TestCreateCompany:
    async def test_returns_the_full_record_with_location_and_etag(
        self, admin: Actor, rep: Actor
    ) -> None:
        await define_custom_field(admin, "company", "segment", "text")
        response = await rep.client.post(
            "/v1/companies",
            json={
                "name": "  Acme   Corp ",
                "domain": "https://www.Acme.com/about",
                "industry": "Manufacturing",
                "employee_count": 250,
                "annual_revenue": "1250000.5",
                "annual_revenue_currency": "usd",
                "phone": "(415) 555-2671",
                "address": {"street": "1 Main St", "city": "Springfield", "country": "US"},
                "lifecycle_stage": "customer",
                "custom_fields": {"segment": "smb"},
                "external_id": "erp-acme",
            },
        )

        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/companies/{body['id']}"
        assert response.headers["etag"] == '"1"'
        assert UUID(body["id"]).version == 7
        assert body == {
            "id": body["id"],
            "name": "Acme Corp",
            "domain": "acme.com",
            "industry": "Manufacturing",
            "employee_count": 250,
            "annual_revenue": "1250000.50",
            "annual_revenue_currency": "USD",
            "phone": "+14155552671",
            "address": {
                "street": "1 Main St",
                "city": "Springfield",
                "region": None,
                "postal_code": None,
                "country": "US",
            },
            "lifecycle_stage": "customer",
            "owner_id": str(rep.id),
            "custom_fields": {"segment": "smb"},
            "external_id": "erp-acme",
            "last_activity_at": None,
            "merged_into_id": None,
            "version": 1,
            "created_by": str(rep.id),
            "created_at": body["created_at"],
            "updated_at": body["created_at"],
            "archived_at": None,
        }

    async def test_minimal_company_has_null_optionals(self, manager: Actor) -> None:
        body = await create_company(manager, name="Solo")

        assert body["owner_id"] == str(manager.id)
        assert {
            key: body[key]
            for key in (
                "domain",
                "annual_revenue",
                "annual_revenue_currency",
                "address",
                "lifecycle_stage",
                "external_id",
                "phone",
                "industry",
            )
        } == dict.fromkeys(
            (
                "domain",
                "annual_revenue",
                "annual_revenue_currency",
                "address",
                "lifecycle_stage",
                "external_id",
                "phone",
                "industry",
            )
        )
        assert body["custom_fields"] == {}

    async def test_name_is_required_and_not_blank(self, rep: Actor) -> None:
        missing = await rep.client.post("/v1/companies", json={"domain": "acme.com"})
        blank = await rep.client.post("/v1/companies", json={"name": " \t "})

        assert error_fields(assert_problem(missing, 422, "validation")) == {"body.name"}
        assert error_fields(assert_problem(blank, 422, "validation")) == {"body.name"}

    async def test_invalid_stage_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/companies", json={"name": "Acme", "lifecycle_stage": "whale"}
        )

        assert error_fields(assert_problem(response, 422, "validation")) == {"body.lifecycle_stage"}


class TestGetCompany:
    async def test_returns_the_record_with_its_etag(self, rep: Actor, viewer: Actor) -> None:
        created = await create_company(rep, name="Acme", domain="acme.com")

        response = await viewer.client.get(f"/v1/companies/{created['id']}")

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json() == created

    async def test_unknown_company_is_404(self, admin: Actor) -> None:
        missing = f"/v1/companies/{uuid4()}"

        assert_problem(await admin.client.get(missing), 404, "not-found")
        assert_problem(await admin.client.patch(missing, json={"name": "X"}), 404, "not-found")
        assert_problem(await admin.client.delete(missing), 404, "not-found")
        assert_problem(await admin.client.post(f"{missing}/restore"), 404, "not-found")

    async def test_malformed_id_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/companies/acme")

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"path.company_id"}


class TestUpdateCompany:
    async def test_changes_only_the_fields_sent(self, rep: Actor) -> None:
        created = await create_company(
            rep,
            name="Acme",
            domain="acme.com",
            industry="Retail",
            annual_revenue="10.5",
            annual_revenue_currency="EUR",
            address={"city": "Paris"},
        )

        response = await rep.client.patch(
            f"/v1/companies/{created['id']}", json={"employee_count": 12}
        )

        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["etag"] == '"2"'
        assert body == {
            **created,
            "employee_count": 12,
            "version": 2,
            "updated_at": body["updated_at"],
        }
        assert at(body["updated_at"]) > at(created["updated_at"])
        assert (await rep.client.get(f"/v1/companies/{created['id']}")).json() == body

    async def test_patch_that_changes_nothing_keeps_the_version(self, rep: Actor) -> None:
        created = await create_company(rep, name="Acme", domain="acme.com")

        response = await rep.client.patch(
            f"/v1/companies/{created['id']}", json={"name": " Acme ", "domain": "WWW.ACME.COM"}
        )

        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json() == created

    async def test_name_may_not_be_null(self, rep: Actor) -> None:
        created = await create_company(rep, name="Acme")

        response = await rep.client.patch(f"/v1/companies/{created['id']}", json={"name": None})

        assert_problem(response, 422, "validation")
        assert (await rep.client.get(f"/v1/companies/{created['id']}")).json() == created


class TestCompanyDomain:
    @pytest.mark.parametrize(
        ("given", "stored"),
        [
            ("https://www.Example.com:8080/path", "example.com"),
            ("user@example.com", "example.com"),
            ("EXAMPLE.com", "example.com"),
            ("example.com.", "example.com"),
            ("bücher.de", "xn--bcher-kva.de"),
            ("shop.example.co.uk", "shop.example.co.uk"),
        ],
    )
    async def test_is_normalized(self, rep: Actor, given: str, stored: str) -> None:
        company = await create_company(rep, domain=given)

        assert company["domain"] == stored

    @pytest.mark.parametrize("given", ["localhost", "not a domain", "http://", "exa_mple..com"])
    async def test_invalid_domain_is_422(self, rep: Actor, given: str) -> None:
        response = await rep.client.post("/v1/companies", json={"name": "Acme", "domain": given})

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.domain"}

    @pytest.mark.parametrize(
        "duplicate",
        ["example.com", "https://www.Example.com:8080/path", "user@example.com", "EXAMPLE.com"],
    )
    async def test_duplicate_in_any_form_is_409(self, rep: Actor, duplicate: str) -> None:
        holder = await create_company(rep, domain="example.com")

        response = await rep.client.post(
            "/v1/companies", json={"name": "Copycat", "domain": duplicate}
        )

        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == holder["id"]
        assert await list_ids(rep.client, "/v1/companies") == [holder["id"]]

    async def test_duplicate_idn_in_unicode_or_punycode_is_409(self, rep: Actor) -> None:
        holder = await create_company(rep, domain="https://BÜCHER.de/")

        response = await rep.client.post(
            "/v1/companies", json={"name": "Copycat", "domain": "xn--bcher-kva.de"}
        )

        assert assert_problem(response, 409, "conflict")["existing_id"] == holder["id"]

    async def test_patch_to_another_companys_domain_is_409(self, rep: Actor) -> None:
        holder = await create_company(rep, domain="taken.com")
        other = await create_company(rep, domain="free.com")

        response = await rep.client.patch(
            f"/v1/companies/{other['id']}", json={"domain": "http://www.taken.com"}
        )

        assert assert_problem(response, 409, "conflict")["existing_id"] == holder["id"]
        assert (await rep.client.get(f"/v1/companies/{other['id']}")).json() == other

    async def test_domain_is_free_again_after_archive(self, rep: Actor) -> None:
        first = await create_company(rep, domain="example.com")
        await archive(rep, f"/v1/companies/{first['id']}")

        second = await create_company(rep, domain="www.example.com")

        assert second["domain"] == "example.com"

    async def test_restore_when_the_domain_was_taken_is_409(self, rep: Actor) -> None:
        first = await create_company(rep, domain="example.com")
        await archive(rep, f"/v1/companies/{first['id']}")
        second = await create_company(rep, domain="example.com")

        response = await rep.client.post(f"/v1/companies/{first['id']}/restore")

        assert assert_problem(response, 409, "conflict")["existing_id"] == second["id"]
        assert (await rep.client.get(f"/v1/companies/{first['id']}")).json()["archived_at"]

    async def test_companies_without_domain_do_not_clash(self, rep: Actor) -> None:
        await create_company(rep, name="One")

        second = await rep.client.post("/v1/companies", json={"name": "Two"})

        assert second.status_code == 201, second.text

    async def test_duplicate_external_id_is_409(self, rep: Actor) -> None:
        holder = await create_company(rep, external_id="erp-9")
        other = await create_company(rep, external_id="erp-10")

        created = await rep.client.post(
            "/v1/companies", json={"name": "Copycat", "external_id": "erp-9"}
        )
        patched = await rep.client.patch(
            f"/v1/companies/{other['id']}", json={"external_id": "erp-9"}
        )

        assert assert_problem(created, 409, "conflict")["existing_id"] == holder["id"]
        assert assert_problem(patched, 409, "conflict")["existing_id"] == holder["id"]


class TestCompanyRevenue:
    @pytest.mark.parametrize(
        ("amount", "currency", "shown"),
        [
            ("1250.5", "USD", "1250.50"),
            ("1250", "USD", "1250.00"),
            ("1000", "JPY", "1000"),
            ("1000.00", "JPY", "1000"),
            ("1.125", "KWD", "1.125"),
            ("0", "EUR", "0.00"),
        ],
    )
    async def test_is_shown_in_the_currencys_minor_units(
        self, rep: Actor, amount: str, currency: str, shown: str
    ) -> None:
        created = await create_company(rep, annual_revenue=amount, annual_revenue_currency=currency)

        read = await rep.client.get(f"/v1/companies/{created['id']}")

        assert created["annual_revenue"] == shown
        assert created["annual_revenue_currency"] == currency
        assert read.json()["annual_revenue"] == shown

    async def test_number_instead_of_string_is_422(self, rep: Actor) -> None:
        for amount in (1250.5, 1250):
            response = await rep.client.post(
                "/v1/companies",
                json={"name": "Acme", "annual_revenue": amount, "annual_revenue_currency": "USD"},
            )

            assert error_fields(assert_problem(response, 422, "validation")) == {
                "body.annual_revenue"
            }

    async def test_not_a_decimal_or_negative_is_422(self, rep: Actor) -> None:
        for amount in ("lots", "-5"):
            response = await rep.client.post(
                "/v1/companies",
                json={"name": "Acme", "annual_revenue": amount, "annual_revenue_currency": "USD"},
            )

            assert error_fields(assert_problem(response, 422, "validation")) == {
                "body.annual_revenue"
            }

    async def test_revenue_needs_a_currency_and_vice_versa(self, rep: Actor) -> None:
        no_currency = await rep.client.post(
            "/v1/companies", json={"name": "Acme", "annual_revenue": "10"}
        )
        no_amount = await rep.client.post(
            "/v1/companies", json={"name": "Acme", "annual_revenue_currency": "USD"}
        )

        for response in (no_currency, no_amount):
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) & {"body.annual_revenue", "body.annual_revenue_currency"}
        assert await list_ids(rep.client, "/v1/companies") == []

    async def test_patch_may_not_split_the_pair(self, rep: Actor) -> None:
        created = await create_company(rep, annual_revenue="10", annual_revenue_currency="USD")
        path = f"/v1/companies/{created['id']}"

        split = await rep.client.patch(path, json={"annual_revenue": None})
        both = await rep.client.patch(
            path, json={"annual_revenue": None, "annual_revenue_currency": None}
        )

        assert_problem(split, 422, "validation")
        assert both.status_code == 200, both.text
        assert (both.json()["annual_revenue"], both.json()["annual_revenue_currency"]) == (
            None,
            None,
        )

    async def test_unknown_currency_is_422(self, rep: Actor) -> None:
        for currency in ("XYZ", "US", "DOLLAR"):
            response = await rep.client.post(
                "/v1/companies",
                json={"name": "Acme", "annual_revenue": "1", "annual_revenue_currency": currency},
            )

            assert error_fields(assert_problem(response, 422, "validation")) == {
                "body.annual_revenue_currency"
            }

    async def test_more_decimals_than_the_currency_allows_is_422(self, rep: Actor) -> None:
        jpy = await rep.client.post(
            "/v1/companies",
            json={"name": "Acme", "annual_revenue": "1000.5", "annual_revenue_currency": "JPY"},
        )
        usd = await rep.client.post(
            "/v1/companies",
            json={"name": "Acme", "annual_revenue": "1.001", "annual_revenue_currency": "USD"},
        )

        assert error_fields(assert_problem(jpy, 422, "validation")) == {"body.annual_revenue"}
        assert error_fields(assert_problem(usd, 422, "validation")) == {"body.annual_revenue"}

    async def test_switching_currency_rechecks_the_decimals(self, rep: Actor) -> None:
        created = await create_company(rep, annual_revenue="10.50", annual_revenue_currency="USD")

        response = await rep.client.patch(
            f"/v1/companies/{created['id']}", json={"annual_revenue_currency": "JPY"}
        )

        assert error_fields(assert_problem(response, 422, "validation")) == {"body.annual_revenue"}


class TestCompanyAddress:
    async def test_unknown_key_is_422(self, rep: Actor) -> None:
        response = await rep.client.post(
            "/v1/companies", json={"name": "Acme", "address": {"city": "Oslo", "planet": "Earth"}}
        )

        assert error_fields(assert_problem(response, 422, "validation")) == {"body.address.planet"}

    async def test_patch_replaces_the_address_in_the_shape_create_gives(self, rep: Actor) -> None:
        created_with = await create_company(rep, address={"city": "Bergen"})
        patched = await create_company(rep, address={"city": "Oslo", "country": "NO"})

        response = await rep.client.patch(
            f"/v1/companies/{patched['id']}", json={"address": {"city": "Bergen"}}
        )

        assert created_with["address"] == {
            "street": None,
            "city": "Bergen",
            "region": None,
            "postal_code": None,
            "country": None,
        }
        assert response.status_code == 200, response.text
        assert response.json()["address"] == created_with["address"]


class TestCompanyOwnership:
    async def test_rep_edits_and_archives_own_company(self, rep: Actor) -> None:
        company = await create_company(rep)
        path = f"/v1/companies/{company['id']}"

        assert (await rep.client.patch(path, json={"industry": "Tech"})).status_code == 200
        assert (await rep.client.delete(path)).status_code == 204
        assert (await rep.client.post(f"{path}/restore")).status_code == 200

    async def test_rep_cannot_change_another_reps_company(
        self, rep: Actor, other_rep: Actor
    ) -> None:
        company = await create_company(other_rep)
        path = f"/v1/companies/{company['id']}"

        assert_problem(await rep.client.patch(path, json={"industry": "x"}), 403, "forbidden")
        assert_problem(await rep.client.delete(path), 403, "forbidden")
        assert (await rep.client.get(path)).json() == company

    async def test_rep_cannot_assign_someone_else(self, rep: Actor, other_rep: Actor) -> None:
        created = await rep.client.post(
            "/v1/companies", json={"name": "Acme", "owner_id": str(other_rep.id)}
        )
        own = await create_company(rep)
        patched = await rep.client.patch(
            f"/v1/companies/{own['id']}", json={"owner_id": str(other_rep.id)}
        )

        assert_problem(created, 403, "forbidden")
        assert_problem(patched, 403, "forbidden")
        assert await list_ids(rep.client, "/v1/companies") == [own["id"]]

    async def test_manager_and_admin_assign_anyone(
        self, manager: Actor, admin: Actor, rep: Actor
    ) -> None:
        by_manager = await create_company(manager, owner_id=str(rep.id))
        by_admin = await create_company(admin)
        reassigned = await admin.client.patch(
            f"/v1/companies/{by_admin['id']}", json={"owner_id": str(rep.id)}
        )

        assert by_manager["owner_id"] == str(rep.id)
        assert reassigned.status_code == 200, reassigned.text
        assert reassigned.json()["owner_id"] == str(rep.id)

    async def test_unknown_owner_is_422(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/companies", json={"name": "Acme", "owner_id": str(uuid4())}
        )

        assert error_fields(assert_problem(response, 422, "validation")) == {"body.owner_id"}

    async def test_viewer_reads_but_cannot_write(self, viewer: Actor, rep: Actor) -> None:
        company = await create_company(rep)
        path = f"/v1/companies/{company['id']}"

        for response in (
            await viewer.client.post("/v1/companies", json={"name": "Mine"}),
            await viewer.client.patch(path, json={"name": "Mine"}),
            await viewer.client.delete(path),
        ):
            assert_problem(response, 403, "forbidden")
        assert (await viewer.client.get(path)).json() == company
        assert await list_ids(viewer.client, "/v1/companies") == [company["id"]]


class TestCompanyNameSort:
    async def test_name_sort_ignores_case(self, rep: Actor) -> None:
        names = ["beta", "Delta", "alpha", "Charlie", "ALPHA Two"]
        ids = {name: (await create_company(rep, name=name))["id"] for name in names}

        ascending = await list_ids(rep.client, "/v1/companies", sort="name")
        descending = await list_ids(rep.client, "/v1/companies", sort="-name")

        expected = [ids[name] for name in ["alpha", "ALPHA Two", "beta", "Charlie", "Delta"]]
        assert ascending == expected
        assert descending == expected[::-1]
