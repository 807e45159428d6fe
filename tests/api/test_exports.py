"""GET /v1/exports/{contacts,companies,deals}.{csv,ndjson}: the list's whole result, streamed in
keyset chunks; the list's filters, sorts and errors; CSV columns, quoting and formula guards."""

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from crm_api.core.enums import Role
from crm_api.core.records import RecordService
from crm_api.exports import router as exports
from tests.api.factories import (
    archive,
    create_company,
    create_contact,
    create_deal,
    default_pipeline,
    define_custom_field,
    unique_domain,
    walk,
)
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor, make_actor

CONTACT_HEADER = (
    "id,first_name,last_name,email,phone,title,company_id,company.name,company.domain,"
    "lifecycle_stage,lifecycle_stage_changed_at,lead_source,owner_id,email_opt_in,"
    "do_not_contact,external_id,last_activity_at,first_outreach_at,next_task.id,"
    "next_task.title,next_task.due_at,next_task.priority,next_task.assignee_id,version,"
    "created_by,created_at,updated_at,archived_at"
)
COMPANY_HEADER = (
    "id,name,domain,industry,employee_count,annual_revenue,annual_revenue_currency,phone,"
    "address.street,address.city,address.region,address.postal_code,address.country,"
    "lifecycle_stage,owner_id,external_id,last_activity_at,version,created_by,created_at,"
    "updated_at,archived_at"
)
DEAL_HEADER = (
    "id,name,pipeline_id,stage_id,stage.name,stage.probability,status,stage_changed_at,amount,"
    "currency,weighted_amount,expected_close_date,owner_id,company_id,company.name,"
    "company.domain,next_step,lost_reason,closed_at,external_id,last_activity_at,next_task.id,"
    "next_task.title,next_task.due_at,next_task.priority,next_task.assignee_id,contact_count,"
    "contact_ids,line_item_count,version,created_by,created_at,updated_at,archived_at"
)
RESOURCES = ("contacts", "companies", "deals")
FORMATS = ("csv", "ndjson")


def csv_lines(*lines: str) -> bytes:
    """A CSV file of these lines, each ended by CRLF."""
    return "".join(line + "\r\n" for line in lines).encode()


def assert_csv(response: httpx.Response, resource: str, body: bytes) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        rf'attachment; filename="{resource}-\d{{8}}T\d{{6}}Z\.csv"',
        response.headers["content-disposition"],
    )
    assert "content-length" not in response.headers  # streamed: chunked
    assert response.content == body


def assert_ndjson(response: httpx.Response, resource: str, body: bytes) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert re.fullmatch(
        rf'attachment; filename="{resource}-\d{{8}}T\d{{6}}Z\.ndjson"',
        response.headers["content-disposition"],
    )
    assert response.content == body


async def as_get_returns(client: httpx.AsyncClient, resource: str, ids: list[str]) -> bytes:
    """The NDJSON of these records: each one's GET body, byte for byte, then a line feed."""
    lines = []
    for record_id in ids:
        response = await client.get(f"/v1/{resource}/{record_id}")
        assert response.status_code == 200, response.text
        lines.append(response.content + b"\n")
    return b"".join(lines)


def exported_ids(response: httpx.Response) -> list[str]:
    """The ids of a CSV export's rows (its first column), in order."""
    assert response.status_code == 200, response.text
    header, *rows = response.text.split("\r\n")[:-1]
    assert header.startswith("id,")
    return [row.split(",", 1)[0] for row in rows]


@pytest.fixture
async def contact_fields(admin: Actor) -> None:
    """Contact custom fields of every type, defined out of key order."""
    await define_custom_field(
        admin, "contact", "tier", "enum", options=[{"value": "gold"}, {"value": "silver"}]
    )
    await define_custom_field(admin, "contact", "score", "number")
    await define_custom_field(admin, "contact", "vip", "boolean")
    await define_custom_field(admin, "contact", "renewal", "date")
    await define_custom_field(admin, "contact", "notes", "text")
    await define_custom_field(
        admin,
        "contact",
        "channels",
        "multi_enum",
        options=[{"value": "email"}, {"value": "phone"}, {"value": "=sms"}],
    )


CONTACT_CUSTOM_HEADER = (
    ",custom_fields.channels,custom_fields.notes,custom_fields.renewal,custom_fields.score,"
    "custom_fields.tier,custom_fields.vip"
)


class TestContactExport:
    async def test_csv_has_the_standard_columns_then_custom_fields_in_key_order(
        self, admin: Actor, rep: Actor, contact_fields: None
    ) -> None:
        company = await create_company(rep, name="Acme, Inc.", domain="acme-export.example")
        ada = await create_contact(
            rep,
            first_name="Ada",
            last_name="Lovelace",
            email="ada@analytical.example",
            phone="+1 212 555 0100",
            title="CTO",
            company_id=company["id"],
            lifecycle_stage="customer",
            lead_source="referral",
            email_opt_in=True,
            external_id="erp-1",
            custom_fields={
                "tier": "gold",
                "score": 7.5,
                "vip": True,
                "renewal": "2027-01-31",
                "channels": ["email", "phone"],
                "notes": 'said "hi", then left\nfor lunch',
            },
        )
        bare = await create_contact(rep, email="bare@example.com", custom_fields={"score": 3})
        response = await rep.client.get("/v1/exports/contacts.csv")
        a, b = ada, bare
        assert_csv(
            response,
            "contacts",
            csv_lines(
                CONTACT_HEADER + CONTACT_CUSTOM_HEADER,
                f"{a['id']},Ada,Lovelace,ada@analytical.example,+12125550100,CTO,{company['id']},"
                f'"Acme, Inc.",acme-export.example,customer,{a["lifecycle_stage_changed_at"]},'
                f"referral,{rep.id},true,false,erp-1,,,,,,,,1,{rep.id},{a['created_at']},"
                f"{a['updated_at']},,email;phone,"
                '"said ""hi"", then left\nfor lunch",2027-01-31,7.5,gold,true',
                f"{b['id']},,,bare@example.com,,,,,,lead,{b['lifecycle_stage_changed_at']},,"
                f"{rep.id},false,false,,,,,,,,,1,{rep.id},{b['created_at']},{b['updated_at']},"
                ",,,,3,,",
            ),
        )

    async def test_archived_custom_fields_keep_their_column(self, admin: Actor, rep: Actor) -> None:
        await define_custom_field(admin, "contact", "legacy_code", "text")
        await define_custom_field(admin, "contact", "active_code", "text")
        contact = await create_contact(
            rep, first_name="Old", custom_fields={"legacy_code": "L-1", "active_code": "A-1"}
        )
        legacy = (await admin.client.get("/v1/custom-fields")).json()["data"]
        (legacy_id,) = [d["id"] for d in legacy if d["key"] == "legacy_code"]
        await archive(admin, f"/v1/custom-fields/{legacy_id}")
        response = await rep.client.get("/v1/exports/contacts.csv")
        header, row = response.text.split("\r\n")[:2]
        assert header == CONTACT_HEADER + ",custom_fields.active_code,custom_fields.legacy_code"
        assert row.startswith(f"{contact['id']},Old,")
        assert row.endswith(",A-1,L-1")

    async def test_ndjson_lines_are_the_records_as_get_returns_them(
        self, rep: Actor, contact_fields: None
    ) -> None:
        company = await create_company(rep)
        ids = [
            (
                await create_contact(
                    rep,
                    first_name="Ada",
                    company_id=company["id"],
                    custom_fields={"channels": ["phone"], "vip": False},
                )
            )["id"],
            (await create_contact(rep, last_name="Bare"))["id"],
        ]
        task = await rep.client.post(
            "/v1/tasks", json={"title": "Call back", "contact_id": ids[1], "priority": "high"}
        )
        assert task.status_code == 201, task.text
        response = await rep.client.get("/v1/exports/contacts.ndjson")
        assert_ndjson(response, "contacts", await as_get_returns(rep.client, "contacts", ids))
        lines = response.content.splitlines()
        assert len(lines) == 2
        assert b'"next_task":{"id"' in lines[1]

    async def test_standard_and_custom_filters_are_the_lists(
        self, rep: Actor, other_rep: Actor, contact_fields: None
    ) -> None:
        made = {}
        for name, owner, stage, custom in [
            ("Ada", rep, "customer", {"tier": "gold", "channels": ["email", "phone"]}),
            ("Grace", rep, "lead", {"tier": "gold", "channels": ["phone"]}),
            ("Alan", other_rep, "customer", {"tier": "gold"}),
            ("Edsger", rep, "customer", {"tier": "silver", "channels": ["phone"]}),
            ("Barbara", rep, "customer", {}),
        ]:
            made[name] = await create_contact(
                owner, first_name=name, lifecycle_stage=stage, custom_fields=custom
            )
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({"lifecycle_stage": "customer"}, ["Ada", "Alan", "Edsger", "Barbara"]),
            (
                {"lifecycle_stage": "customer", "owner_id": str(rep.id)},
                ["Ada", "Edsger", "Barbara"],
            ),
            ({"custom_fields.tier": "gold"}, ["Ada", "Grace", "Alan"]),
            ({"custom_fields.tier": "gold", "lifecycle_stage": "customer"}, ["Ada", "Alan"]),
            ({"custom_fields.channels": "phone"}, ["Ada", "Grace", "Edsger"]),
            (
                {"custom_fields.channels": "phone", "sort": "-created_at"},
                ["Edsger", "Grace", "Ada"],
            ),
            ({"q": "ed"}, ["Edsger"]),
            ({"sort": "-created_at"}, ["Barbara", "Edsger", "Alan", "Grace", "Ada"]),
        ]
        for params, expected in cases:
            ids = [made[name]["id"] for name in expected]
            csv = await rep.client.get("/v1/exports/contacts.csv", params=params)
            assert exported_ids(csv) == ids, params
            ndjson = await rep.client.get("/v1/exports/contacts.ndjson", params=params)
            assert_ndjson(ndjson, "contacts", await as_get_returns(rep.client, "contacts", ids))
            listed = await walk(rep.client, "/v1/contacts", limit=500, **params)
            assert [record["id"] for page in listed for record in page] == ids, params

    async def test_archived_true_exports_the_archived_ones_only(self, rep: Actor) -> None:
        live = await create_contact(rep, first_name="Live")
        gone = await create_contact(rep, first_name="Gone")
        await archive(rep, f"/v1/contacts/{gone['id']}")
        response = await rep.client.get("/v1/exports/contacts.csv", params={"archived": "true"})
        assert exported_ids(response) == [gone["id"]]
        gone_now = (await rep.client.get(f"/v1/contacts/{gone['id']}")).json()
        assert response.text.split("\r\n")[1].endswith(f",{gone_now['archived_at']}")
        response = await rep.client.get("/v1/exports/contacts.ndjson", params={"archived": "true"})
        assert_ndjson(
            response, "contacts", await as_get_returns(rep.client, "contacts", [gone["id"]])
        )
        response = await rep.client.get("/v1/exports/contacts.csv")
        assert exported_ids(response) == [live["id"]]

    async def test_nothing_matching_is_a_header_only_csv_and_an_empty_ndjson(
        self, rep: Actor, contact_fields: None
    ) -> None:
        await create_contact(rep, lifecycle_stage="lead")
        params = {"lifecycle_stage": "churned"}
        response = await rep.client.get("/v1/exports/contacts.csv", params=params)
        assert_csv(response, "contacts", csv_lines(CONTACT_HEADER + CONTACT_CUSTOM_HEADER))
        response = await rep.client.get("/v1/exports/contacts.ndjson", params=params)
        assert_ndjson(response, "contacts", b"")

    async def test_viewers_export_as_they_list(self, rep: Actor, viewer: Actor) -> None:
        contact = await create_contact(rep)
        response = await viewer.client.get("/v1/exports/contacts.csv")
        assert exported_ids(response) == [contact["id"]]


class TestCsvCells:
    async def test_quoting_follows_rfc_4180(self, rep: Actor, admin: Actor) -> None:
        await define_custom_field(admin, "contact", "notes", "text")
        values = [
            "plain",
            "comma, inside",
            'a "quoted" word',
            "two\nlines",
            "carriage\rreturn",
            "crlf\r\nend",
            " padded ",
            "naïve café, 東京",
            "",
        ]
        made = [
            await create_contact(rep, first_name=f"N{i}", custom_fields={"notes": value})
            for i, value in enumerate(values)
        ]
        response = await rep.client.get("/v1/exports/contacts.csv")
        cells = [
            "plain",
            '"comma, inside"',
            '"a ""quoted"" word"',
            '"two\nlines"',
            '"carriage\rreturn"',
            '"crlf\r\nend"',
            " padded ",
            '"naïve café, 東京"',
            "",
        ]
        lines = [CONTACT_HEADER + ",custom_fields.notes"]
        lines += [
            f"{c['id']},N{i},,,,,,,,lead,{c['lifecycle_stage_changed_at']},,{rep.id},false,"
            f"false,,,,,,,,,1,{rep.id},{c['created_at']},{c['updated_at']},,{cell}"
            for i, (c, cell) in enumerate(zip(made, cells, strict=True))
        ]
        assert_csv(response, "contacts", csv_lines(*lines))
        assert response.content.decode("utf-8").count("東京") == 1

    async def test_cells_a_spreadsheet_would_run_get_a_leading_quote(
        self, rep: Actor, admin: Actor, contact_fields: None
    ) -> None:
        cases = [
            ("=1+1", "'=1+1"),
            (
                '=HYPERLINK("http://evil.example","x")',
                '"\'=HYPERLINK(""http://evil.example"",""x"")"',
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
            ("\tTAB", "'\tTAB"),
            ("\r=1", '"\'\r=1"'),
            ("-12.5", "-12.5"),
            ("+42", "+42"),
            ("a=b", "a=b"),
            ("-", "'-"),
        ]
        made = [
            await create_contact(rep, first_name=f"N{i}", custom_fields={"notes": value})
            for i, (value, _) in enumerate(cases)
        ]
        # Standard text fields and list cells get the same guard; phones (E.164) never need it.
        guarded = await create_contact(
            rep,
            first_name="=Eve",
            last_name="@Mallory",
            title="+Boss",
            lead_source="-source",
            phone="+1 212 555 0100",
            custom_fields={"channels": ["=sms", "email"], "score": -5},
        )
        response = await rep.client.get("/v1/exports/contacts.csv")
        rows = response.text.split("\r\n")
        for (_, cell), contact, row in zip(cases, made, rows[1:], strict=False):
            assert row.startswith(f"{contact['id']},"), row
            assert row.endswith(f",,{cell},,,,"), (row, cell)
        g = guarded
        assert rows[len(cases) + 1] == (
            f"{g['id']},'=Eve,'@Mallory,,+12125550100,'+Boss,,,,lead,"
            f"{g['lifecycle_stage_changed_at']},'-source,{rep.id},false,false,,,,,,,,,1,"
            f"{rep.id},{g['created_at']},{g['updated_at']},,'=sms;email,,,-5,,"
        )
        ndjson = (await rep.client.get("/v1/exports/contacts.ndjson")).content.splitlines()
        assert b'"first_name":"=Eve"' in ndjson[-1]  # NDJSON changes nothing


class TestCompanyExport:
    async def test_csv_flattens_the_address_and_keeps_money_exact(
        self, rep: Actor, admin: Actor
    ) -> None:
        await define_custom_field(
            admin, "company", "segment", "enum", options=[{"value": "smb"}, {"value": "enterprise"}]
        )
        await define_custom_field(admin, "company", "arr_band", "number")
        domain = unique_domain()
        acme = await create_company(
            rep,
            name="Acme",
            domain=f"https://www.{domain}/about",
            industry="software",
            employee_count=40,
            annual_revenue="1250000.5",
            annual_revenue_currency="USD",
            address={
                "street": "1 Main St, Suite 2",
                "city": "Springfield",
                "postal_code": "12345",
                "country": "US",
            },
            lifecycle_stage="customer",
            custom_fields={"segment": "enterprise"},
        )
        yen = await create_company(
            rep, name="Kaisha", annual_revenue="900000", annual_revenue_currency="JPY"
        )
        response = await rep.client.get("/v1/exports/companies.csv")
        a, y = acme, yen
        assert_csv(
            response,
            "companies",
            csv_lines(
                COMPANY_HEADER + ",custom_fields.arr_band,custom_fields.segment",
                f'{a["id"]},Acme,{domain},software,40,1250000.50,USD,,"1 Main St, Suite 2",'
                f"Springfield,,12345,US,customer,{rep.id},,,1,{rep.id},{a['created_at']},"
                f"{a['updated_at']},,,enterprise",
                f"{y['id']},Kaisha,,,,900000,JPY,,,,,,,,{rep.id},,,1,{rep.id},{y['created_at']},"
                f"{y['updated_at']},,,",
            ),
        )

    async def test_ndjson_and_filters(self, rep: Actor, other_rep: Actor) -> None:
        software = await create_company(rep, industry="software")
        await create_company(rep, industry="food")
        theirs = await create_company(other_rep, industry="software")
        params = {"industry": "software"}
        response = await rep.client.get("/v1/exports/companies.ndjson", params=params)
        ids = [software["id"], theirs["id"]]
        assert_ndjson(response, "companies", await as_get_returns(rep.client, "companies", ids))
        params["owner_id"] = str(other_rep.id)
        response = await rep.client.get("/v1/exports/companies.csv", params=params)
        assert exported_ids(response) == [theirs["id"]]


class TestDealExport:
    async def test_csv_sums_up_contacts_and_line_items(self, rep: Actor, admin: Actor) -> None:
        await define_custom_field(admin, "deal", "region", "text")
        company = await create_company(rep, name="Initech", domain="initech-export.example")
        sales = await default_pipeline(rep.client)
        deal = await create_deal(
            rep,
            name="Rollout",
            currency="EUR",
            company_id=company["id"],
            expected_close_date="2027-03-31",
            next_step="Send proposal",
            custom_fields={"region": "=EMEA"},
        )
        people = [await create_contact(rep, first_name=name) for name in ("Ann", "Bob")]
        for person in people:
            added = await rep.client.post(
                f"/v1/deals/{deal['id']}/contacts", json={"contact_id": person["id"]}
            )
            assert added.status_code == 201, added.text
        item = await rep.client.post(
            f"/v1/deals/{deal['id']}/line-items",
            json={"name": "Seats", "quantity": "1.5", "unit_price": "10.01", "currency": "EUR"},
        )
        assert item.status_code == 201, item.text
        bare = await create_deal(rep, name="Small", amount="99.5")
        d = (await rep.client.get(f"/v1/deals/{deal['id']}")).json()
        assert d["amount"] == "15.02"  # 15.015, rounded half-even
        b = bare
        new = sales["stages"][0]
        response = await rep.client.get("/v1/exports/deals.csv")
        assert_csv(
            response,
            "deals",
            csv_lines(
                DEAL_HEADER + ",custom_fields.region",
                f"{d['id']},Rollout,{sales['id']},{new['id']},{new['name']},{new['probability']},"
                f"open,{d['stage_changed_at']},15.02,EUR,{d['weighted_amount']},2027-03-31,"
                f"{rep.id},{company['id']},Initech,initech-export.example,Send proposal,,,,,,,,,,"
                f"2,{people[0]['id']};{people[1]['id']},1,4,{rep.id},{d['created_at']},"
                f"{d['updated_at']},,'=EMEA",
                f"{b['id']},Small,{sales['id']},{new['id']},{new['name']},{new['probability']},"
                f"open,{b['stage_changed_at']},99.50,USD,{b['weighted_amount']},,{rep.id},,,,,,,,"
                f",,,,,,0,,0,1,{rep.id},{b['created_at']},{b['updated_at']},,",
            ),
        )

    async def test_ndjson_has_contacts_and_line_items_as_get(self, rep: Actor) -> None:
        deal = await create_deal(rep, name="With lines")
        contact = await create_contact(rep)
        await rep.client.post(
            f"/v1/deals/{deal['id']}/contacts",
            json={"contact_id": contact["id"], "role": "champion"},
        )
        await rep.client.post(
            f"/v1/deals/{deal['id']}/line-items",
            json={"name": "Seats", "quantity": 2, "unit_price": "5"},
        )
        plain = await create_deal(rep, name="Plain")
        response = await rep.client.get("/v1/exports/deals.ndjson")
        ids = [deal["id"], plain["id"]]
        assert_ndjson(response, "deals", await as_get_returns(rep.client, "deals", ids))
        assert b'"role":"champion"' in response.content
        assert b'"line_items":[{"id"' in response.content

    async def test_deal_filters_and_sorts(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        won = sales["by_name"]["Won"]
        small = await create_deal(rep, name="Small", amount="10")
        big = await create_deal(rep, name="Big", amount="5000")
        closed = await create_deal(rep, name="Closed", amount="700", stage_id=won)
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({"status": "won"}, [closed["id"]]),
            ({"amount_min": "500"}, [big["id"], closed["id"]]),
            ({"sort": "-amount"}, [big["id"], closed["id"], small["id"]]),
            ({"status": "open", "sort": "amount"}, [small["id"], big["id"]]),
        ]
        for params, ids in cases:
            response = await rep.client.get("/v1/exports/deals.csv", params=params)
            assert exported_ids(response) == ids, params


class TestChunks:
    """The export walks the list `CHUNK_ROWS` records at a time: patched small, a few records
    cross several chunk boundaries."""

    @pytest.fixture(autouse=True)
    def small_chunks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(exports, "CHUNK_ROWS", 2)

    async def test_every_record_once_in_list_order(self, rep: Actor, contact_fields: None) -> None:
        scores: list[float | None] = [5, None, 1, 5, None, 3, 9]
        made = [
            await create_contact(
                rep, first_name=f"P{i}", custom_fields={} if score is None else {"score": score}
            )
            for i, score in enumerate(scores)
        ]
        for params in [
            {},
            {"sort": "-created_at"},
            {"sort": "custom_fields.score"},  # nulls last, across chunk boundaries
            {"sort": "-custom_fields.score"},  # nulls first
            {"sort": "name"},
        ]:
            listed = await walk(rep.client, "/v1/contacts", limit=3, **params)
            ids = [record["id"] for page in listed for record in page]
            assert sorted(ids) == sorted(c["id"] for c in made), params
            response = await rep.client.get("/v1/exports/contacts.csv", params=params)
            assert exported_ids(response) == ids, params
            response = await rep.client.get("/v1/exports/contacts.ndjson", params=params)
            assert_ndjson(response, "contacts", await as_get_returns(rep.client, "contacts", ids))
        by_score = [made[i]["id"] for i in (2, 5, 0, 3, 6, 1, 4)]
        params = {"sort": "custom_fields.score"}
        response = await rep.client.get("/v1/exports/contacts.csv", params=params)
        assert exported_ids(response) == by_score

    async def test_an_exact_multiple_of_the_chunk_and_embeds_per_chunk(self, rep: Actor) -> None:
        deals = [await create_deal(rep, name=f"D{i}") for i in range(4)]
        for deal in deals[1::2]:
            await rep.client.post(
                f"/v1/deals/{deal['id']}/line-items",
                json={"name": "Seats", "quantity": 1, "unit_price": "5"},
            )
        ids = [deal["id"] for deal in deals]
        response = await rep.client.get("/v1/exports/deals.ndjson")
        assert_ndjson(response, "deals", await as_get_returns(rep.client, "deals", ids))
        response = await rep.client.get("/v1/exports/deals.csv")
        assert exported_ids(response) == ids
        counts = [row.split(",")[28] for row in response.text.split("\r\n")[1:-1]]
        assert counts == ["0", "1", "0", "1"]

    async def test_an_error_after_the_first_chunk_breaks_the_transfer(
        self, rep: Actor, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for i in range(3):
            await create_contact(rep, first_name=f"P{i}")
        original = RecordService.list_records
        calls = 0

        async def failing(self: RecordService, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > 1:
                raise RuntimeError("the database went away")
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(RecordService, "list_records", failing)
        # The status line and the first chunk are out: the client sees a failed transfer (here,
        # in process, the app's error; over HTTP, a chunked body that never ends), never a file
        # that looks complete.
        with pytest.raises(RuntimeError, match="went away"):
            await rep.client.get("/v1/exports/contacts.csv")


async def stream(
    app: Any,
    actor: Actor,
    path: str,
    params: dict[str, str],
    between: Callable[[], Awaitable[None]],
    gone: asyncio.Event | None = None,
) -> bytes:
    """The body of a GET run on the app as uvicorn runs it (ASGI spec 2.3: the response learns
    of a client leaving from `receive`), awaiting `between()` after each chunk but the last
    has gone out: what a client reading slowly sees while others write. Setting `gone` is the
    client leaving."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": urlencode(params).encode(),
        "headers": [(b"host", b"test"), (b"authorization", f"Bearer {actor.key}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    chunks: list[bytes] = []
    left = gone or asyncio.Event()

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            chunks.append(message["body"])
            if message.get("more_body"):
                await between()

    await app(scope, receive, send)
    return b"".join(chunks)


class TestChangesDuringAnExport:
    """Not a snapshot: each chunk is read while the one before goes out (as documented)."""

    @pytest.fixture(autouse=True)
    def small_chunks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(exports, "CHUNK_ROWS", 2)

    async def test_in_the_default_order_each_record_once_as_its_chunk_read_it(
        self, app: Any, rep: Actor
    ) -> None:
        # Chunks [A B] [C D] [E F] [G]. While the first goes out the second is being read, so
        # what changes then shows from the third on.
        a, _, _, _, e, f, _ = [await create_contact(rep, first_name=name) for name in "ABCDEFG"]
        made: list[dict[str, Any]] = []

        async def meanwhile() -> None:
            if made:
                return
            made.append(await create_contact(rep, first_name="H"))  # sorts after the point
            await archive(rep, f"/v1/contacts/{e['id']}")  # not read yet: left out
            for contact in (a, f):  # a was sent already; f was not read yet
                changed = await rep.client.patch(
                    f"/v1/contacts/{contact['id']}", json={"title": "Changed"}
                )
                assert changed.status_code == 200, changed.text

        body = await stream(app, rep, "/v1/exports/contacts.ndjson", {}, meanwhile)
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert [line["first_name"] for line in lines] == ["A", "B", "C", "D", "F", "G", "H"]
        titles = [line["title"] for line in lines]
        assert titles == [None, None, None, None, "Changed", None, None]

    async def test_sorted_by_a_value_that_changes_a_record_can_appear_twice(
        self, app: Any, rep: Actor
    ) -> None:
        a, *_ = [await create_contact(rep, first_name=name) for name in "ABCDE"]
        patched: list[bool] = []

        async def meanwhile() -> None:
            if not patched:
                patched.append(True)
                await rep.client.patch(f"/v1/contacts/{a['id']}", json={"title": "Moved"})

        params = {"sort": "updated_at"}
        body = await stream(app, rep, "/v1/exports/contacts.ndjson", params, meanwhile)
        lines = [orjson.loads(line) for line in body.splitlines()]
        assert [line["first_name"] for line in lines] == ["A", "B", "C", "D", "E", "A"]
        assert [lines[0]["title"], lines[-1]["title"]] == [None, "Moved"]


class TestClientGone:
    async def test_a_client_leaving_mid_export_stops_the_reads(
        self, app: Any, rep: Actor, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
        for name in "ABCDEFG":  # chunks [A B] [C D] [E F] [G]
            await create_contact(rep, first_name=name)
        reads = running = 0
        original = RecordService.list_records

        async def counted(self: RecordService, *args: Any, **kwargs: Any) -> Any:
            nonlocal reads, running
            reads += 1
            running += 1
            try:
                if reads > 1:
                    await asyncio.sleep(30)  # a slow read ahead: only cancelling ends it soon
                return await original(self, *args, **kwargs)
            finally:
                running -= 1

        monkeypatch.setattr(RecordService, "list_records", counted)
        gone = asyncio.Event()

        async def leave() -> None:
            gone.set()
            await asyncio.sleep(0.05)  # the response notices, and stops

        body = await stream(app, rep, "/v1/exports/contacts.ndjson", {}, leave, gone)
        for _ in range(100):  # a read ahead, cancelled, may take a moment to wind down
            if not running:
                break
            await asyncio.sleep(0.01)
        assert running == 0
        assert reads <= 2  # the first chunk, and at most the one read ahead
        assert [orjson.loads(line)["first_name"] for line in body.splitlines()] == ["A", "B"]
        monkeypatch.setattr(RecordService, "list_records", original)
        response = await rep.client.get("/v1/exports/contacts.csv")  # nothing held
        assert len(exported_ids(response)) == 7


class TestErrorsBeforeStreaming:
    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize(
        ("resource", "params", "fields"),
        [
            ("contacts", {"lifecycle_stage": "royalty"}, {"query.lifecycle_stage"}),
            ("contacts", {"created_after": "yesterday"}, {"query.created_after"}),
            ("contacts", {"sort": "email"}, {"query.sort"}),
            ("contacts", {"custom_fields.colour": "red"}, {"query.custom_fields.colour"}),
            ("contacts", {"custom_fields.score": "many"}, {"query.custom_fields.score"}),
            ("contacts", {"sort": "custom_fields.nope"}, {"query.sort"}),
            ("contacts", {f"custom_fields.k{i}": "x" for i in range(21)}, {"query"}),
            ("companies", {"owner_id": "not-a-uuid"}, {"query.owner_id"}),
            ("companies", {"sort": "-domain"}, {"query.sort"}),
            ("deals", {"status": "maybe"}, {"query.status"}),
            ("deals", {"amount_min": "-1"}, {"query.amount_min"}),
            ("deals", {"expected_close_from": "2026-13-01"}, {"query.expected_close_from"}),
        ],
    )
    async def test_bad_parameters_are_422_problems(
        self,
        rep: Actor,
        admin: Actor,
        resource: str,
        params: dict[str, str],
        fields: set[str],
        fmt: str,
    ) -> None:
        await define_custom_field(admin, "contact", "score", "number")
        await create_contact(rep)
        response = await rep.client.get(f"/v1/exports/{resource}.{fmt}", params=params)
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == fields
        assert "content-disposition" not in response.headers

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("resource", RESOURCES)
    async def test_the_read_scope_is_needed(
        self, app: Any, db: Any, anonymous: httpx.AsyncClient, resource: str, fmt: str
    ) -> None:
        path = f"/v1/exports/{resource}.{fmt}"
        assert_problem(await anonymous.get(path), 401, "unauthorized")
        writer = await make_actor(app, db, Role.manager, ["write"])
        assert_problem(await writer.client.get(path), 403, "forbidden")
