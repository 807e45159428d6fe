"""Lists of contacts and companies: limits, keyset paging per sort, totals, filters, cursors."""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.api.factories import (
    archive,
    create_company,
    create_contact,
    list_ids,
    unique_email,
    walk,
)
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

RESOURCES = ["contacts", "companies"]
SORTS = ["created_at", "-created_at", "updated_at", "-updated_at", "name", "-name"]

# 23 rows with repeated names (ties are broken by id) and mixed case (name sort ignores case).
CONTACT_NAMES: list[tuple[str | None, str | None]] = [
    ("Zoe", "Adams"),
    ("amy", "baker"),
    ("Amy", "Baker"),
    ("Bob", None),
    (None, "Young"),
    ("Carl", "adams"),
    (None, None),
    ("dora", "Evans"),
    ("Eve", "Baker"),
    ("Finn", "Clark"),
    (None, None),
    ("Gus", "zimmer"),
    ("Hal", "Evans"),
    ("ivy", None),
    ("Jon", "Clark"),
    ("Kim", "Adams"),
    (None, "young"),
    ("Lea", "Moss"),
    ("Max", "moss"),
    ("Ned", "Baker"),
    ("Ola", "Adams"),
    ("Pam", "Clark"),
    ("Quin", "Evans"),
]
COMPANY_NAMES = [
    "Acme",
    "acme",
    "Zeta",
    "beta",
    "Beta",
    "ACME",
    "delta",
    "Gamma",
    "alpha",
    "Omega",
    "omega",
    "kappa",
    "Lambda",
    "mu",
    "Nu",
    "xi",
    "Omicron",
    "pi",
    "Rho",
    "sigma",
    "Tau",
    "upsilon",
    "Phi",
]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def name_key(resource: str, row: dict[str, Any]) -> str:
    if resource == "companies":
        return str(row["name"]).casefold()
    parts = (row["last_name"], row["first_name"])
    return " ".join(part for part in parts if part).casefold()


def sort_key(resource: str, sort: str) -> Callable[[dict[str, Any]], Any]:
    field = sort.removeprefix("-")
    if field == "name":
        return lambda row: (name_key(resource, row), UUID(row["id"]))
    return lambda row: (at(row[field]), UUID(row["id"]))


async def create(resource: str, actor: Actor, index: int, **fields: Any) -> dict[str, Any]:
    if resource == "companies":
        fields.setdefault("name", COMPANY_NAMES[index % len(COMPANY_NAMES)])
        return await create_company(actor, **fields)
    first, last = CONTACT_NAMES[index % len(CONTACT_NAMES)]
    fields.setdefault("first_name", first)
    fields.setdefault("last_name", last)
    if first is None and last is None:
        fields.setdefault("email", unique_email())
    return await create_contact(actor, **fields)


async def seed(resource: str, actor: Actor, count: int = 23) -> list[dict[str, Any]]:
    """`count` records, then every third one touched in reverse order, so that updated_at
    order differs from created_at order. Returns the records as they now are."""
    rows = [await create(resource, actor, index) for index in range(count)]
    for index in reversed(range(0, count, 3)):
        response = await actor.client.patch(
            f"/v1/{resource}/{rows[index]['id']}", json={"external_id": f"touched-{index}"}
        )
        assert response.status_code == 200, response.text
        rows[index] = response.json()
    return rows


def expected_order(resource: str, sort: str, rows: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(rows, key=sort_key(resource, sort), reverse=sort.startswith("-"))
    return [row["id"] for row in ordered]


def forged_cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


class TestListLimit:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_default_limit_is_50(self, rep: Actor, resource: str) -> None:
        for index in range(51):
            await create(resource, rep, index, external_id=f"x{index}")

        first = await rep.client.get(f"/v1/{resource}")
        second = await rep.client.get(
            f"/v1/{resource}", params={"cursor": first.json()["next_cursor"]}
        )

        assert first.status_code == 200, first.text
        assert len(first.json()["data"]) == 50
        assert first.json()["next_cursor"]
        assert len(second.json()["data"]) == 1
        assert second.json()["next_cursor"] is None

    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
    async def test_limit_out_of_range_is_422(self, rep: Actor, resource: str, limit: str) -> None:
        response = await rep.client.get(f"/v1/{resource}", params={"limit": limit})

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"query.limit"}

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_limits_1_and_500_are_accepted(self, rep: Actor, resource: str) -> None:
        for index in range(2):
            await create(resource, rep, index)

        one = await rep.client.get(f"/v1/{resource}", params={"limit": 1})
        many = await rep.client.get(f"/v1/{resource}", params={"limit": 500})

        assert len(one.json()["data"]) == 1
        assert one.json()["next_cursor"]
        assert len(many.json()["data"]) == 2
        assert many.json()["next_cursor"] is None

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_empty_list(self, rep: Actor, resource: str) -> None:
        response = await rep.client.get(f"/v1/{resource}")

        assert response.status_code == 200, response.text
        assert response.json() == {"data": [], "next_cursor": None}


class TestKeysetPaging:
    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize("sort", SORTS)
    async def test_walk_visits_every_row_once_in_order(
        self, rep: Actor, resource: str, sort: str
    ) -> None:
        rows = await seed(resource, rep)

        pages = await walk(rep.client, f"/v1/{resource}", limit=7, sort=sort)

        assert [len(page) for page in pages] == [7, 7, 7, 2]
        walked = [row["id"] for page in pages for row in page]
        assert walked == expected_order(resource, sort, rows)
        by_id = {row["id"]: row for row in rows}
        assert [row for page in pages for row in page] == [by_id[row_id] for row_id in walked]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_default_sort_is_created_at_ascending(self, rep: Actor, resource: str) -> None:
        rows = [await create(resource, rep, index) for index in range(5)]

        assert await list_ids(rep.client, f"/v1/{resource}") == [row["id"] for row in rows]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_exact_multiple_of_the_limit_has_no_empty_last_page(
        self, rep: Actor, resource: str
    ) -> None:
        for index in range(6):
            await create(resource, rep, index)

        pages = await walk(rep.client, f"/v1/{resource}", limit=3)

        assert [len(page) for page in pages] == [3, 3]

    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize("sort", ["created_at", "-created_at", "name", "-name"])
    async def test_inserts_between_pages_do_not_skip_or_repeat_rows(
        self, rep: Actor, resource: str, sort: str
    ) -> None:
        rows = await seed(resource, rep, count=12)
        originals = {row["id"] for row in rows}
        seen: list[str] = []
        cursor: str | None = None
        inserted = 0
        while True:
            params: dict[str, Any] = {"limit": 4, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            response = await rep.client.get(f"/v1/{resource}", params=params)
            assert response.status_code == 200, response.text
            seen += [row["id"] for row in response.json()["data"]]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
            # new rows that sort first, last and in the middle of every order
            for index in (0, 11, 5):
                await create(resource, rep, index)
                inserted += 1

        assert inserted > 0
        assert len(seen) == len(set(seen))
        assert [row_id for row_id in seen if row_id in originals] == expected_order(
            resource, sort, rows
        )

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_cursor_is_stable_when_its_row_is_archived(
        self, rep: Actor, resource: str
    ) -> None:
        rows = [await create(resource, rep, index) for index in range(6)]
        first = await rep.client.get(f"/v1/{resource}", params={"limit": 3})
        await archive(rep, f"/v1/{resource}/{rows[2]['id']}")

        second = await rep.client.get(
            f"/v1/{resource}", params={"limit": 3, "cursor": first.json()["next_cursor"]}
        )

        assert [row["id"] for row in second.json()["data"]] == [row["id"] for row in rows[3:]]


class TestIncludeTotal:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_total_counts_every_match_on_every_page(self, rep: Actor, resource: str) -> None:
        for index in range(5):
            await create(resource, rep, index)

        first = await rep.client.get(f"/v1/{resource}", params={"limit": 2, "include_total": True})
        second = await rep.client.get(
            f"/v1/{resource}",
            params={"limit": 2, "include_total": "true", "cursor": first.json()["next_cursor"]},
        )

        assert first.json()["total"] == 5
        assert second.json()["total"] == 5
        assert len(second.json()["data"]) == 2

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_total_respects_filters_and_zero_is_shown(
        self, rep: Actor, other_rep: Actor, resource: str
    ) -> None:
        for index in range(3):
            await create(resource, rep, index)
        await create(resource, other_rep, 3)

        mine = await rep.client.get(
            f"/v1/{resource}", params={"owner_id": str(rep.id), "include_total": True}
        )
        nobody = await rep.client.get(
            f"/v1/{resource}", params={"owner_id": str(uuid4()), "include_total": True}
        )

        assert mine.json()["total"] == 3
        assert nobody.json() == {"data": [], "next_cursor": None, "total": 0}

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_total_is_absent_unless_asked(self, rep: Actor, resource: str) -> None:
        await create(resource, rep, 0)

        default = await rep.client.get(f"/v1/{resource}")
        declined = await rep.client.get(f"/v1/{resource}", params={"include_total": "false"})

        assert set(default.json()) == {"data", "next_cursor"}
        assert set(declined.json()) == {"data", "next_cursor"}


class TestSortAndCursorValidation:
    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize("sort", ["email", "--name", "id", "name;drop", "Name"])
    async def test_unknown_sort_is_422(self, rep: Actor, resource: str, sort: str) -> None:
        response = await rep.client.get(f"/v1/{resource}", params={"sort": sort})

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"query.sort"}

    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize(
        "cursor",
        [
            "garbage",
            "!!!",
            forged_cursor([1, 2]),
            forged_cursor({"s": "created_at"}),
            forged_cursor({"s": "created_at", "v": ["yesterday", str(uuid4())]}),
            forged_cursor({"s": "created_at", "v": ["2026-01-01T00:00:00+00:00", "nope"]}),
            forged_cursor({"s": "created_at", "v": ["2026-01-01T00:00:00+00:00"]}),
            forged_cursor({"s": "created_at", "v": [5, str(uuid4())]}),
        ],
    )
    async def test_garbage_cursor_is_422(self, rep: Actor, resource: str, cursor: str) -> None:
        await create(resource, rep, 0)

        response = await rep.client.get(f"/v1/{resource}", params={"cursor": cursor})

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"query.cursor"}

    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize(
        ("issued_for", "used_for"),
        [("name", "created_at"), ("created_at", "-created_at"), ("-name", "updated_at")],
    )
    async def test_cursor_from_another_sort_is_422(
        self, rep: Actor, resource: str, issued_for: str, used_for: str
    ) -> None:
        for index in range(3):
            await create(resource, rep, index)
        first = await rep.client.get(f"/v1/{resource}", params={"limit": 1, "sort": issued_for})

        response = await rep.client.get(
            f"/v1/{resource}", params={"sort": used_for, "cursor": first.json()["next_cursor"]}
        )

        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"query.cursor"}


class TestListFiltersCommon:
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_owner_id(self, rep: Actor, other_rep: Actor, resource: str) -> None:
        mine = [await create(resource, rep, index) for index in range(2)]
        await create(resource, other_rep, 2)

        ids = await list_ids(rep.client, f"/v1/{resource}", owner_id=str(rep.id))

        assert ids == [row["id"] for row in mine]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_lifecycle_stage(self, rep: Actor, resource: str) -> None:
        customer = await create(resource, rep, 0, lifecycle_stage="customer")
        await create(resource, rep, 1, lifecycle_stage="lead")
        await create(resource, rep, 2, lifecycle_stage="churned")

        assert await list_ids(rep.client, f"/v1/{resource}", lifecycle_stage="customer") == [
            customer["id"]
        ]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_invalid_filter_values_are_422(self, rep: Actor, resource: str) -> None:
        stage = await rep.client.get(f"/v1/{resource}", params={"lifecycle_stage": "whale"})
        owner = await rep.client.get(f"/v1/{resource}", params={"owner_id": "me"})

        assert error_fields(assert_problem(stage, 422, "validation")) == {"query.lifecycle_stage"}
        assert error_fields(assert_problem(owner, 422, "validation")) == {"query.owner_id"}

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_created_range_is_inclusive_after_and_exclusive_before(
        self, rep: Actor, resource: str
    ) -> None:
        rows = [await create(resource, rep, index) for index in range(4)]
        pivot = rows[2]["created_at"]

        after = await list_ids(rep.client, f"/v1/{resource}", created_after=pivot)
        before = await list_ids(rep.client, f"/v1/{resource}", created_before=pivot)
        between = await list_ids(
            rep.client,
            f"/v1/{resource}",
            created_after=rows[1]["created_at"],
            created_before=rows[3]["created_at"],
        )

        ids = [row["id"] for row in rows]
        assert after == ids[2:]
        assert before == ids[:2]
        assert between == ids[1:3]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_created_range_honors_the_offset(self, rep: Actor, resource: str) -> None:
        rows = [await create(resource, rep, index) for index in range(3)]
        pivot = at(rows[1]["created_at"])
        plus_two = pivot.astimezone(timezone(timedelta(hours=2))).isoformat()
        zulu = pivot.astimezone(UTC).isoformat().replace("+00:00", "Z")

        with_offset = await list_ids(rep.client, f"/v1/{resource}", created_after=plus_two)
        with_z = await list_ids(rep.client, f"/v1/{resource}", created_before=zulu)

        assert with_offset == [row["id"] for row in rows[1:]]
        assert with_z == [rows[0]["id"]]

    @pytest.mark.parametrize("resource", RESOURCES)
    @pytest.mark.parametrize(
        "name", ["created_after", "created_before", "updated_after", "updated_before"]
    )
    async def test_naive_or_malformed_datetime_is_422(
        self, rep: Actor, resource: str, name: str
    ) -> None:
        for value in ("2026-01-01T00:00:00", "2026-01-01", "yesterday"):
            response = await rep.client.get(f"/v1/{resource}", params={name: value})

            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {f"query.{name}"}, value

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_updated_range(self, rep: Actor, resource: str) -> None:
        rows = [await create(resource, rep, index) for index in range(3)]
        touched = await rep.client.patch(
            f"/v1/{resource}/{rows[0]['id']}", json={"external_id": "touched"}
        )
        pivot = touched.json()["updated_at"]

        after = await list_ids(rep.client, f"/v1/{resource}", updated_after=pivot)
        before = await list_ids(rep.client, f"/v1/{resource}", updated_before=pivot)

        assert after == [rows[0]["id"]]
        assert before == [rows[1]["id"], rows[2]["id"]]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_filters_combine_with_and(
        self, rep: Actor, other_rep: Actor, resource: str
    ) -> None:
        match = await create(resource, rep, 0, lifecycle_stage="customer")
        await create(resource, rep, 1, lifecycle_stage="lead")
        await create(resource, other_rep, 2, lifecycle_stage="customer")

        ids = await list_ids(
            rep.client, f"/v1/{resource}", owner_id=str(rep.id), lifecycle_stage="customer"
        )

        assert ids == [match["id"]]

    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_filters_and_paging_together(self, rep: Actor, resource: str) -> None:
        wanted = []
        for index in range(9):
            row = await create(
                resource, rep, index, lifecycle_stage="customer" if index % 2 else "lead"
            )
            if index % 2:
                wanted.append(row)

        pages = await walk(
            rep.client, f"/v1/{resource}", limit=3, sort="-name", lifecycle_stage="customer"
        )

        assert [len(page) for page in pages] == [3, 1]
        assert [row["id"] for page in pages for row in page] == expected_order(
            resource, "-name", wanted
        )


class TestContactListFilters:
    async def test_company_id(self, rep: Actor) -> None:
        company = await create_company(rep)
        linked = await create_contact(rep, first_name="In", company_id=company["id"])
        await create_contact(rep, first_name="Out")

        assert await list_ids(rep.client, "/v1/contacts", company_id=company["id"]) == [
            linked["id"]
        ]

    async def test_lead_source(self, rep: Actor) -> None:
        web = await create_contact(rep, first_name="A", lead_source="web")
        await create_contact(rep, first_name="B", lead_source="referral")
        await create_contact(rep, first_name="C")

        assert await list_ids(rep.client, "/v1/contacts", lead_source="web") == [web["id"]]

    async def test_q_is_a_case_insensitive_prefix_of_first_last_or_email(self, rep: Actor) -> None:
        jane = await create_contact(rep, first_name="Jane", last_name="Doe", email="jd@acme.com")
        janet = await create_contact(rep, first_name="Janet", last_name="Smith")
        dorothy = await create_contact(rep, first_name="Dorothy", email="dot@ex.com")
        mary = await create_contact(rep, first_name="Mary Ann", last_name="Olsen")
        ids = {
            "jane": jane["id"],
            "janet": janet["id"],
            "dorothy": dorothy["id"],
            "mary": mary["id"],
        }

        async def q(text: str) -> list[str]:
            found = await list_ids(rep.client, "/v1/contacts", q=text)
            return [name for name, id_ in ids.items() if id_ in found]

        assert await q("jan") == ["jane", "janet"]
        assert await q("JANE") == ["jane", "janet"]
        assert await q("doe") == ["jane"]
        assert await q("smi") == ["janet"]
        assert await q("do") == ["jane", "dorothy"]
        assert await q("jd@") == ["jane"]
        assert await q("DOT@EX") == ["dorothy"]
        assert await q("ann") == ["mary"]
        assert await q("oe") == []
        assert await q("acme") == []
        assert await q("net") == []

    async def test_q_percent_and_underscore_are_literal(self, rep: Actor) -> None:
        percent = await create_contact(rep, first_name="100%Pure")
        hundred = await create_contact(rep, first_name="100xPure")
        underscore = await create_contact(rep, first_name="a_b")
        plain = await create_contact(rep, first_name="axb")
        backslash = await create_contact(rep, first_name="back\\slash")

        assert await list_ids(rep.client, "/v1/contacts", q="100%") == [percent["id"]]
        assert await list_ids(rep.client, "/v1/contacts", q="%") == []
        assert await list_ids(rep.client, "/v1/contacts", q="a_") == [underscore["id"]]
        assert await list_ids(rep.client, "/v1/contacts", q="_") == []
        assert await list_ids(rep.client, "/v1/contacts", q="back\\") == [backslash["id"]]
        assert await list_ids(rep.client, "/v1/contacts", q="100") == [percent["id"], hundred["id"]]
        assert await list_ids(rep.client, "/v1/contacts", q="a") == [underscore["id"], plain["id"]]

    async def test_q_combines_with_other_filters(self, rep: Actor, other_rep: Actor) -> None:
        mine = await create_contact(rep, first_name="Jane")
        await create_contact(other_rep, first_name="Jane")

        ids = await list_ids(rep.client, "/v1/contacts", q="ja", owner_id=str(rep.id))

        assert ids == [mine["id"]]

    async def test_empty_q_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/contacts", params={"q": ""})

        assert error_fields(assert_problem(response, 422, "validation")) == {"query.q"}


class TestCompanyListFilters:
    async def test_domain_is_normalized_before_matching(self, rep: Actor) -> None:
        acme = await create_company(rep, domain="acme.com")
        await create_company(rep, domain="acme.org")

        ids = await list_ids(rep.client, "/v1/companies", domain="https://WWW.Acme.com/x")

        assert ids == [acme["id"]]

    async def test_industry(self, rep: Actor) -> None:
        retail = await create_company(rep, industry="Retail")
        await create_company(rep, industry="Banking")

        assert await list_ids(rep.client, "/v1/companies", industry="Retail") == [retail["id"]]

    async def test_q_matches_a_name_or_domain_prefix(self, rep: Actor) -> None:
        globex = await create_company(rep, name="Globex Corporation", domain="globex.io")
        initech = await create_company(rep, name="Initech", domain="initech.com")
        umbrella = await create_company(rep, name="Umbrella", domain="corp-umbrella.com")

        assert await list_ids(rep.client, "/v1/companies", q="GLOB") == [globex["id"]]
        assert await list_ids(rep.client, "/v1/companies", q="corp") == [
            globex["id"],
            umbrella["id"],
        ]
        assert await list_ids(rep.client, "/v1/companies", q="init") == [initech["id"]]
        assert await list_ids(rep.client, "/v1/companies", q="tech") == []

    async def test_q_underscore_is_literal(self, rep: Actor) -> None:
        under = await create_company(rep, name="x_y Labs")
        await create_company(rep, name="xzy Labs")

        assert await list_ids(rep.client, "/v1/companies", q="x_") == [under["id"]]


class TestCompanyContacts:
    async def test_lists_only_that_companys_live_contacts(self, rep: Actor) -> None:
        company = await create_company(rep)
        other = await create_company(rep)
        first = await create_contact(rep, first_name="A", company_id=company["id"])
        second = await create_contact(rep, first_name="B", company_id=company["id"])
        archived = await create_contact(rep, first_name="C", company_id=company["id"])
        await archive(rep, f"/v1/contacts/{archived['id']}")
        await create_contact(rep, first_name="D", company_id=other["id"])
        await create_contact(rep, first_name="E")

        response = await rep.client.get(
            f"/v1/companies/{company['id']}/contacts", params={"include_total": True}
        )

        assert response.status_code == 200, response.text
        assert response.json() == {"data": [first, second], "next_cursor": None, "total": 2}

    async def test_pages_and_sorts(self, rep: Actor, viewer: Actor) -> None:
        company = await create_company(rep)
        contacts = [
            await create_contact(rep, last_name=name, company_id=company["id"])
            for name in ("Cole", "abbot", "Baker")
        ]

        pages = await walk(
            viewer.client, f"/v1/companies/{company['id']}/contacts", limit=2, sort="name"
        )

        assert [[row["id"] for row in page] for page in pages] == [
            [contacts[1]["id"], contacts[2]["id"]],
            [contacts[0]["id"]],
        ]

    async def test_unknown_company_is_404(self, rep: Actor) -> None:
        response = await rep.client.get(f"/v1/companies/{uuid4()}/contacts")

        assert_problem(response, 404, "not-found")

    async def test_malformed_company_id_is_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/companies/acme/contacts")

        assert error_fields(assert_problem(response, 422, "validation")) == {"path.company_id"}
