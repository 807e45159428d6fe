"""POST /v1/{contacts,companies,deals}/search: filter trees, full text, sorts and cursors; and
custom field filters and sorts on lists."""

from typing import Any

import pytest
from sqlalchemy import literal, select, text

from crm_api.companies.repository import TEXT as COMPANY_TEXT
from crm_api.companies.repository import companies
from crm_api.contacts.repository import TEXT as CONTACT_TEXT
from crm_api.contacts.repository import contacts
from crm_api.core.db import Database
from crm_api.core.fulltext import text_match
from crm_api.custom_fields.expressions import custom_equals
from crm_api.custom_fields.models import FieldType
from crm_api.deals.repository import TEXT as DEAL_TEXT
from crm_api.deals.repository import deals
from tests.api.factories import (
    create_company,
    create_contact,
    create_deal,
    define_custom_field,
    unique_email,
)
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


async def search(actor: Actor, resource: str, **body: Any) -> dict[str, Any]:
    response = await actor.client.post(f"/v1/{resource}/search", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def names(page: dict[str, Any]) -> list[str]:
    return [record["first_name"] for record in page["data"]]


def condition(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.fixture
async def people(admin: Actor, rep: Actor) -> dict[str, Any]:
    """Five contacts at two companies, with custom fields, owned by admin or rep."""
    await define_custom_field(admin, "contact", "score", "number")
    await define_custom_field(admin, "contact", "renewal", "date")
    await define_custom_field(admin, "contact", "vip", "boolean")
    await define_custom_field(
        admin, "contact", "tier", "enum", options=[{"value": "gold"}, {"value": "silver"}]
    )
    await define_custom_field(
        admin,
        "contact",
        "channels",
        "multi_enum",
        options=[{"value": "email"}, {"value": "phone"}],
    )
    acme = await create_company(admin, name="Acme Rockets", domain="acme-rockets.example")
    globex = await create_company(rep, name="Globex", domain="globex.example")
    made = {}
    for first, last, email, company, owner, custom in [
        ("Ada", "Lovelace", "ada@analytical.example", acme, admin,
         {"score": 10, "tier": "gold", "channels": ["email"], "renewal": "2027-01-15"}),
        ("Grace", "Hopper", "grace@navy.example", acme, rep,
         {"score": 7.5, "tier": "silver", "channels": ["email", "phone"], "vip": True}),
        ("Alan", "Turing", "alan@bletchley.example", globex, rep,
         {"score": 3, "channels": ["phone"], "renewal": "2026-06-01", "vip": False}),
        ("Edsger", "Dijkstra", "edsger@acmeworks.example", None, admin, {"tier": "gold"}),
        ("Barbara", "Liskov", None, globex, admin, {}),
    ]:  # fmt: skip
        made[first] = await create_contact(
            owner,
            first_name=first,
            last_name=last,
            email=email,
            company_id=company["id"] if company else None,
            custom_fields=custom,
            lifecycle_stage="customer" if first in ("Ada", "Alan") else "lead",
        )
    return {"acme": acme, "globex": globex, **made}


class TestFilters:
    async def test_columns_custom_fields_and_related_fields(
        self, rep: Actor, people: dict[str, Any]
    ) -> None:
        cases: list[tuple[dict[str, Any], list[str]]] = [
            (condition("lifecycle_stage", "eq", "customer"), ["Ada", "Alan"]),
            (condition("lifecycle_stage", "neq", "customer"), ["Grace", "Edsger", "Barbara"]),
            (condition("email", "is_null", True), ["Barbara"]),
            (condition("email", "contains", "ACME"), ["Edsger"]),
            (condition("last_name", "starts_with", "li"), ["Barbara"]),
            (condition("first_name", "in", ["Ada", "Alan", "Zed"]), ["Ada", "Alan"]),
            (condition("custom_fields.score", "gte", 7.5), ["Ada", "Grace"]),
            (condition("custom_fields.score", "lt", "7.5"), ["Alan"]),
            (condition("custom_fields.score", "eq", 10), ["Ada"]),
            (condition("custom_fields.score", "neq", 10), ["Grace", "Alan", "Edsger", "Barbara"]),
            (condition("custom_fields.tier", "eq", "gold"), ["Ada", "Edsger"]),
            (condition("custom_fields.tier", "is_null", True), ["Alan", "Barbara"]),
            (condition("custom_fields.channels", "contains", "phone"), ["Grace", "Alan"]),
            (condition("custom_fields.channels", "in", ["email", "phone"]),
             ["Ada", "Grace", "Alan"]),
            (condition("custom_fields.channels", "is_null", True), ["Edsger", "Barbara"]),
            (condition("custom_fields.vip", "eq", False), ["Alan"]),
            (condition("custom_fields.renewal", "lt", "2027-01-01"), ["Alan"]),
            (condition("company.domain", "eq", "globex.example"), ["Alan", "Barbara"]),
            (condition("company.name", "starts_with", "acme"), ["Ada", "Grace"]),
            (condition("company.domain", "is_null", True), ["Edsger"]),
            (condition("company.domain", "neq", "globex.example"), ["Ada", "Grace", "Edsger"]),
            (condition("owner.email", "eq", rep.email), ["Grace", "Alan"]),
            (
                {"and": [
                    condition("company.name", "eq", "Acme Rockets"),
                    {"or": [condition("custom_fields.vip", "eq", True),
                            condition("custom_fields.tier", "eq", "gold")]},
                ]},
                ["Ada", "Grace"],
            ),
        ]  # fmt: skip
        for tree, expected in cases:
            page = await search(rep, "contacts", filter=tree, sort="created_at")
            assert names(page) == expected, tree

    async def test_bad_trees_are_422_naming_the_place(
        self, rep: Actor, people: dict[str, Any]
    ) -> None:
        deep = condition("first_name", "eq", "Ada")
        for _ in range(4):
            deep = {"and": [deep]}
        many = {"or": [condition("first_name", "eq", str(n)) for n in range(51)]}
        cases = [
            (condition("colour", "eq", "red"), "body.filter.field"),
            (condition("first_name", "gt", 5), "body.filter.value"),
            (condition("lifecycle_stage", "contains", "cust"), "body.filter.op"),
            (condition("lifecycle_stage", "eq", "vip"), "body.filter.value"),
            (condition("custom_fields.score", "eq", "ten"), "body.filter.value"),
            (condition("custom_fields.tier", "lt", "gold"), "body.filter.op"),
            (condition("created_at", "gt", "2026-01-01"), "body.filter.value"),
            (condition("email", "is_null", "yes"), "body.filter.value"),
            (condition("custom_fields.score", "gt", "1e-20000"), "body.filter.value"),
            (condition("company.annual_revenue", "gt", "1e19"), "body.filter.value"),
            (condition("email", "in", []), "body.filter.value"),
            ({"and": [{"or": [condition("email", "in", ["a", 5])]}]},
             "body.filter.and.0.or.0.value.1"),
            (deep, "body.filter.and.0.and.0.and.0.and.0"),
            ({"and": []}, "body.filter.and"),
            ({"field": "email"}, "body.filter.op"),
        ]  # fmt: skip
        for tree, field in cases:
            response = await rep.client.post("/v1/contacts/search", json={"filter": tree})
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {field}, (tree, body)
        response = await rep.client.post("/v1/contacts/search", json={"filter": many})
        assert_problem(response, 422, "validation")
        response = await rep.client.post("/v1/contacts/search", json={"sort": "colour"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.sort"}
        response = await rep.client.post("/v1/contacts/search", json={"limit": 501})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.limit"}
        response = await rep.client.post("/v1/contacts/search", json={"cursor": "nope"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.cursor"}
        response = await rep.client.post("/v1/contacts/search", json={"query": "!!"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.query"}


class TestFullText:
    async def test_names_emails_and_company_names_ranked(
        self, rep: Actor, people: dict[str, Any]
    ) -> None:
        page = await search(rep, "contacts", query="acme")
        # Edsger's own email matches; Ada and Grace match through their company's name.
        assert names(page)[0] == "Edsger"
        assert sorted(names(page)) == ["Ada", "Edsger", "Grace"]
        assert names(await search(rep, "contacts", query="ada love")) == ["Ada"]
        assert names(await search(rep, "contacts", query="HOPP")) == ["Grace"]
        assert names(await search(rep, "contacts", query="zzz")) == []
        filtered = await search(
            rep, "contacts", query="acme", filter=condition("lifecycle_stage", "eq", "lead")
        )
        assert sorted(names(filtered)) == ["Edsger", "Grace"]

    async def test_a_record_is_found_right_after_its_write(self, rep: Actor) -> None:
        created = await create_contact(rep, first_name="Quintessa", email=unique_email("q"))
        assert names(await search(rep, "contacts", query="quintes")) == ["Quintessa"]
        path = f"/v1/contacts/{created['id']}"
        await rep.client.patch(path, json={"first_name": "Octavia"})
        assert names(await search(rep, "contacts", query="quintes")) == []
        assert names(await search(rep, "contacts", query="octavia")) == ["Octavia"]
        await rep.client.delete(path)
        assert names(await search(rep, "contacts", query="octavia")) == []
        archived = await search(rep, "contacts", query="octavia", archived=True)
        assert names(archived) == ["Octavia"]

    async def test_companies_and_deals(self, rep: Actor) -> None:
        await create_company(rep, name="Initech Software", domain="initech.example")
        await create_company(rep, name="Umbrella", domain="umbrella-corp.example")
        found = await search(rep, "companies", query="initech")
        assert [c["name"] for c in found["data"]] == ["Initech Software"]
        found = await search(rep, "companies", query="corp")
        assert [c["name"] for c in found["data"]] == ["Umbrella"]
        await create_deal(rep, name="Initech renewal 2027")
        found = await search(rep, "deals", query="renewal")
        assert [d["name"] for d in found["data"]] == ["Initech renewal 2027"]

    async def test_accents_are_ignored_both_ways(self, rep: Actor) -> None:
        await create_contact(rep, first_name="José", last_name="Müller", email=unique_email("j"))
        await create_contact(rep, first_name="Jose", last_name="Muller", email=unique_email("k"))
        await create_company(rep, name="Crème Brûlée Ltd", domain="creme.example")
        for query in ("jose muller", "JOSÉ MÜLLER", "josé mull"):
            assert sorted(names(await search(rep, "contacts", query=query))) == ["Jose", "José"]
        found = await search(rep, "companies", query="brulee creme")
        assert [c["name"] for c in found["data"]] == ["Crème Brûlée Ltd"]

    async def test_letters_that_unaccent_to_quotes(self, rep: Actor) -> None:
        # unaccent turns the okina and the modifier apostrophe into ' (these were 500s).
        await create_company(rep, name="Hawai\u02bbi Tours", domain="hawaii-tours.example")
        await create_contact(rep, first_name="Seán", last_name="O\u02bcbrien")
        found = await search(rep, "companies", query="Hawai\u02bbi")
        assert [c["name"] for c in found["data"]] == ["Hawai\u02bbi Tours"]
        assert names(await search(rep, "contacts", query="o\u02bcbrien")) == ["Seán"]
        for query in ("\u02bc", "\u0149 x"):
            response = await rep.client.post("/v1/contacts/search", json={"query": query})
            assert response.status_code == 200, response.text


class TestPaging:
    async def test_cursors_walk_the_whole_result_in_any_order(
        self, rep: Actor, people: dict[str, Any]
    ) -> None:
        for sort, expected in [
            ("created_at", ["Ada", "Grace", "Alan", "Edsger", "Barbara"]),
            # Missing values sort last ascending and first descending, as in every list.
            ("-custom_fields.score", ["Barbara", "Edsger", "Ada", "Grace", "Alan"]),
            ("custom_fields.score", ["Alan", "Grace", "Ada", "Edsger", "Barbara"]),
            ("custom_fields.renewal", ["Alan", "Ada", "Grace", "Edsger", "Barbara"]),
            ("name", ["Edsger", "Grace", "Barbara", "Ada", "Alan"]),
            ("email", ["Ada", "Alan", "Edsger", "Grace", "Barbara"]),
        ]:
            seen: list[str] = []
            body: dict[str, Any] = {"sort": sort, "limit": 2}
            while True:
                page = await search(rep, "contacts", **body)
                seen += names(page)
                if page["next_cursor"] is None:
                    break
                body["cursor"] = page["next_cursor"]
            assert seen == expected, sort

    async def test_relevance_pages_and_totals(self, rep: Actor) -> None:
        for number in range(5):
            await create_contact(rep, first_name=f"Pat{number}", last_name="Smith")
        first = await search(rep, "contacts", query="smith", limit=3, include_total=True)
        assert first["total"] == 5
        second = await search(
            rep, "contacts", query="smith", limit=3, cursor=first["next_cursor"], include_total=True
        )
        assert (second["next_cursor"], second["total"]) == (None, 5)
        assert sorted(names(first) + names(second)) == [f"Pat{n}" for n in range(5)]


class TestListsWithCustomFields:
    async def test_filter_and_sort_lists(self, rep: Actor, people: dict[str, Any]) -> None:
        response = await rep.client.get(
            "/v1/contacts", params={"custom_fields.tier": "gold", "lifecycle_stage": "lead"}
        )
        assert names(response.json()) == ["Edsger"]
        response = await rep.client.get(
            "/v1/contacts",
            params={"custom_fields.channels": "phone", "sort": "-custom_fields.score"},
        )
        assert names(response.json()) == ["Grace", "Alan"]
        response = await rep.client.get("/v1/contacts", params={"custom_fields.vip": "true"})
        assert names(response.json()) == ["Grace"]
        response = await rep.client.get("/v1/contacts", params={"custom_fields.score": "many"})
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"query.custom_fields.score"}
        response = await rep.client.get("/v1/contacts", params={"custom_fields.colour": "x"})
        assert error_fields(assert_problem(response, 422, "validation")) == {
            "query.custom_fields.colour"
        }


class TestIndexes:
    async def test_postgresql_answers_text_and_custom_field_filters_from_indexes(
        self, db: Database
    ) -> None:
        if db.is_sqlite:
            pytest.skip("SQLite's full text is its FTS5 tables; it has no GIN indexes")
        statements = {
            "ix_contacts_search": select(contacts.c.id).where(
                text_match(CONTACT_TEXT, literal("ada"))
            ),
            "ix_companies_search": select(companies.c.id).where(
                text_match(COMPANY_TEXT, literal("acme"))
            ),
            "ix_deals_search": select(deals.c.id).where(text_match(DEAL_TEXT, literal("x"))),
            "ix_contacts_custom_fields": select(contacts.c.id).where(
                custom_equals(contacts.c.custom_fields, "tier", FieldType.enum, literal("gold"))
            ),
        }
        async with db.sessionmaker() as session:
            await session.execute(text("SET enable_seqscan = off"))
            for index, statement in statements.items():
                sql = statement.compile(
                    dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
                )
                plan = (await session.execute(text(f"EXPLAIN {sql}"))).scalars().all()
                assert any(index in line for line in plan), (index, plan)


class TestEdges:
    async def test_integers_beyond_a_column_are_422(self, rep: Actor) -> None:
        for field in ("employee_count", "version"):
            for value in (2**31, -(2**31) - 1, 2**63):
                response = await rep.client.post(
                    "/v1/companies/search", json={"filter": condition(field, "gt", value)}
                )
                assert error_fields(assert_problem(response, 422, "validation")) == {
                    "body.filter.value"
                }, (field, value)
            response = await rep.client.post(
                "/v1/companies/search", json={"filter": condition(field, "lt", 2**31 - 1)}
            )
            assert response.status_code == 200, response.text
        deep = {"field": "company.employee_count", "op": "in", "value": [1, 2**31]}
        response = await rep.client.post("/v1/contacts/search", json={"filter": deep})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.filter.value.1"}

    async def test_decimal_values_beyond_a_column_are_422(self, rep: Actor) -> None:
        for value in ("0.00001", "99999999999999999999", "1e15"):
            response = await rep.client.post(
                "/v1/deals/search", json={"filter": condition("amount", "gt", value)}
            )
            assert error_fields(assert_problem(response, 422, "validation")) == {
                "body.filter.value"
            }, value
        response = await rep.client.get("/v1/contacts", params={"custom_fields.x": "1"})
        assert_problem(response, 422, "validation")

    async def test_float_custom_numbers_page_without_repeats(
        self, admin: Actor, rep: Actor
    ) -> None:
        # Doubles that a 10-place decimal would round alike (SQLite keeps doubles).
        await define_custom_field(admin, "contact", "score", "number")
        scores = [(n + 1) * 1e-14 for n in range(7)] + [0.1 + 0.2, 0.3]
        for n, score in enumerate(scores):
            await create_contact(rep, first_name=f"S{n}", custom_fields={"score": score})
        for sort in ("custom_fields.score", "-custom_fields.score"):
            seen: list[str] = []
            body: dict[str, Any] = {"sort": sort, "limit": 2}
            for _ in range(10):
                page = await search(rep, "contacts", **body)
                seen += names(page)
                if page["next_cursor"] is None:
                    break
                body["cursor"] = page["next_cursor"]
            ascending = [f"S{n}" for n in (0, 1, 2, 3, 4, 5, 6, 8, 7)]
            assert seen == (ascending if sort[0] != "-" else ascending[::-1]), sort

    async def test_case_is_ignored_beyond_ascii(self, rep: Actor) -> None:
        await create_contact(rep, first_name="Émile", last_name="Weiß")
        for tree in (
            condition("first_name", "starts_with", "émi"),
            condition("first_name", "contains", "MIL"),
            condition("last_name", "contains", "WEIß"),
        ):
            assert names(await search(rep, "contacts", filter=tree)) == ["Émile"], tree
        assert names(await search(rep, "contacts", query="weiß")) == ["Émile"]
