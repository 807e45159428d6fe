"""CSV imports through HTTP: the upload contract and its 422s and 413s, the file formats a
spreadsheet writes, the conversion of cells, per-row failures and errors.csv, upsert with
repeated keys, dry runs, progress per chunk, cancelling, and who may do what. The worker runs
where a test says so (`drain`), one chunk per transaction as `crm-api worker` runs it."""

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from crm_api.app import create_app
from crm_api.config import Settings
from crm_api.contacts.models import Contact
from crm_api.core.audit import audit_log
from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.core.events import events
from crm_api.core.ids import uuid7
from crm_api.imports.chunk import ChunkImport
from crm_api.imports.models import import_parts
from crm_api.imports.worker import _run_chunk, claim, run_imports
from tests.api.factories import create_company, create_contact, define_custom_field
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor, make_actor

CONTACT_MAPPING = {"First": "first_name", "Last": "last_name", "Email": "email"}


async def upload(
    actor: Actor,
    content: str | bytes,
    mapping: dict[str, str] | str = CONTACT_MAPPING,
    *,
    object_type: str = "contact",
    file_name: str = "people.csv",
    **fields: str,
) -> httpx.Response:
    data = content.encode() if isinstance(content, str) else content
    form = {
        "object_type": object_type,
        "mapping": mapping if isinstance(mapping, str) else orjson.dumps(mapping).decode(),
        **fields,
    }
    return await actor.client.post(
        "/v1/imports", files={"file": (file_name, data, "text/csv")}, data=form
    )


async def start(actor: Actor, content: str | bytes, *args: Any, **fields: Any) -> dict[str, Any]:
    response = await upload(actor, content, *args, **fields)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def drain(db: Database, settings: Settings) -> None:
    """Runs the worker's import step until no job is left."""
    worker = uuid7()
    while await run_imports(db, settings, worker, 30.0):
        pass


async def finished(actor: Actor, db: Database, settings: Settings, job: dict[str, Any]) -> Any:
    await drain(db, settings)
    response = await actor.client.get(f"/v1/imports/{job['id']}")
    assert response.status_code == 200, response.text
    return response.json()


async def errors_csv(actor: Actor, job: dict[str, Any]) -> str:
    response = await actor.client.get(f"/v1/imports/{job['id']}/errors.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="import-{job["id"]}-errors.csv"'
    )
    return response.text


def counts(job: dict[str, Any]) -> tuple[Any, ...]:
    names = ("status", "total_rows", "processed", "created", "updated", "skipped", "failed")
    return tuple(job[name] for name in names)


async def contacts(actor: Actor) -> list[dict[str, Any]]:
    response = await actor.client.get("/v1/contacts", params={"limit": 500, "sort": "name"})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def count_of(db: Database, table: Any) -> int:
    async with db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
async def small_app(settings: Settings) -> AsyncIterator[Any]:
    """The app with small import limits: 2 rows per chunk, 6 rows and 4 KiB per file."""
    limited = settings.model_copy(
        update={"import_chunk_rows": 2, "import_max_rows": 6, "import_max_bytes": 4096}
    )
    application = create_app(limited)
    async with application.router.lifespan_context(application):
        yield application


class TestUpload:
    async def test_the_upload_is_a_queued_job(self, rep: Actor) -> None:
        response = await upload(rep, "First,Last,Email\nAda,Lovelace,ada@example.com\n")
        assert response.status_code == 201, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/imports/{job['id']}"
        assert response.headers["content-type"] == "application/json"
        UUID(job["id"])
        assert job.pop("created_at").endswith("+00:00")
        assert job == {
            "id": job["id"],
            "object_type": "contact",
            "mode": "create",
            "match_key": None,
            "dry_run": False,
            "status": "queued",
            "total_rows": 1,
            "processed": 0,
            "created": 0,
            "updated": 0,
            "skipped": 0,
            "failed": 0,
            "error": None,
            "file_name": "people.csv",
            "delimiter": "comma",
            "mapping": CONTACT_MAPPING,
            "created_by": str(rep.id),
            "started_at": None,
            "finished_at": None,
        }
        again = await rep.client.get(f"/v1/imports/{job['id']}")
        assert again.status_code == 200
        assert again.json() == {**job, "created_at": again.json()["created_at"]}

    async def test_a_file_without_data_rows_completes_at_once(self, rep: Actor) -> None:
        job = await start(rep, "First,Last,Email\r\n\r\n,,\r\n")
        assert counts(job) == ("completed", 0, 0, 0, 0, 0, 0)
        assert job["started_at"] == job["finished_at"] == job["created_at"]

    async def test_the_file_name_loses_its_path(self, rep: Actor) -> None:
        job = await start(
            rep, "Email\nx@example.com\n", {"Email": "email"}, file_name="C:\\Users\\ann\\leads.csv"
        )
        assert job["file_name"] == "leads.csv"

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"First,Email\n\xe9t\xe9,x@example.com\n", "is not UTF-8 text"),
            ("First,Email\n".encode("utf-16"), "is not UTF-8 text"),
            (b"", "has no header row (it is empty)"),
            (b"\r\n  \r\n\r\n", "has no header row (it is empty)"),
            (b"First,E\x00mail\nAda,x@example.com\n", "has a NUL character in its header row"),
            (b'First,Email\nAda,"ada@example.com\n',
             "is not readable CSV at line 2: unexpected end of data"),
        ],
    )  # fmt: skip
    async def test_an_unreadable_file_is_422(
        self, rep: Actor, content: bytes, message: str
    ) -> None:
        body = assert_problem(await upload(rep, content, {"Email": "email"}), 422, "validation")
        assert body["errors"] == [{"field": "body.file", "message": message}]
        assert body["detail"] == f"The file {message}."

    async def test_more_rows_than_allowed_is_422(self, small_app: Any, db: Database) -> None:
        admin = await make_actor(small_app, db, Role.admin)
        six = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(6))
        assert (await upload(admin, six, {"Email": "email"})).status_code == 201
        response = await upload(admin, six + "p6@example.com\n", {"Email": "email"})
        body = assert_problem(response, 422, "validation")
        assert body["errors"] == [{"field": "body.file", "message": "has more than 6 rows"}]

    async def test_mapping_problems_name_each_column(self, admin: Actor, rep: Actor) -> None:
        await define_custom_field(admin, "contact", "score", "number")
        gone = await define_custom_field(admin, "contact", "old", "text")
        await admin.client.delete(f"/v1/custom-fields/{gone['id']}")
        await define_custom_field(admin, "company", "tier", "text")
        mapping = {
            "First": "first_name",
            "Given": "first_name",
            "Mail": "email",
            "Score": "custom_fields.score",
            "Old": "custom_fields.old",
            "Tier": "custom_fields.tier",
            "Domain": "domain",
            "Name": "name_key",
        }
        header = "First,Given,Score,Old,Tier,Domain,Name\n"
        body = assert_problem(await upload(rep, header, mapping), 422, "validation")
        assert body["detail"] == "The import cannot start; see `errors`."
        assert [(e["field"], e["message"]) for e in body["errors"]] == [
            ("body.mapping.Given", "maps onto first_name, as column 'First' does"),
            ("body.mapping.Mail", "is not a column of the file's header row"),
            ("body.mapping.Old", "custom_fields.old is not a live custom field of contacts"),
            ("body.mapping.Tier", "custom_fields.tier is not a live custom field of contacts"),
            ("body.mapping.Domain", "domain is not a field of contacts"),
            ("body.mapping.Name", "name_key is not a field of contacts"),
        ]

    async def test_a_repeated_header_cannot_be_mapped(self, rep: Actor) -> None:
        response = await upload(rep, "Email,Email,Note\n", {"Email": "email"})
        assert assert_problem(response, 422, "validation")["errors"] == [
            {"field": "body.mapping.Email",
             "message": "names a column the header row has more than once"},
        ]  # fmt: skip
        # Unmapped repeats (such as empty headers a spreadsheet leaves) are fine.
        assert (
            await upload(rep, "Email,,\nx@example.com,,\n", {"Email": "email"})
        ).status_code == 201

    @pytest.mark.parametrize(
        ("mapping", "message"),
        [
            ("not json", "Value error, must be a JSON object"),
            ("[]", "Value error, must be a JSON object with at least one column"),
            ("{}", "Value error, must be a JSON object with at least one column"),
            ('{"Email": 5}',
             "Value error, must map each column header onto a field name (a string)"),
        ],
    )  # fmt: skip
    async def test_a_mapping_that_is_not_an_object_of_names_is_422(
        self, rep: Actor, mapping: str, message: str
    ) -> None:
        response = await upload(rep, "Email\n", mapping)
        body = assert_problem(response, 422, "validation")
        assert body["errors"] == [{"field": "body.mapping", "message": message}]

    @pytest.mark.parametrize(
        ("object_type", "fields", "mapping", "errors"),
        [
            ("contact", {"match_key": "email"}, {"Email": "email"},
             [("body.match_key", "applies only with mode upsert")]),
            ("contact", {"mode": "upsert"}, {"Email": "email"},
             [("body.match_key", "is required with mode upsert")]),
            ("deal", {"mode": "upsert", "match_key": "email"}, {"Name": "name"},
             [("body.match_key", "must be one of: external_id (for deals)")]),
            ("company", {"mode": "upsert", "match_key": "email"}, {"Name": "name"},
             [("body.match_key", "must be one of: external_id, domain (for companies)")]),
            ("contact", {"mode": "upsert", "match_key": "external_id"}, {"Email": "email"},
             [("body.mapping", "maps no column onto external_id, which rows match on")]),
            ("contact", {"mode": "merge"}, {"Email": "email"},
             [("body.mode", "Input should be 'create' or 'upsert'")]),
            ("task", {}, {"Email": "email"},
             [("body.object_type", "Input should be 'contact', 'company' or 'deal'")]),
        ],
    )  # fmt: skip
    async def test_mode_and_match_key_are_checked(
        self,
        rep: Actor,
        object_type: str,
        fields: dict[str, str],
        mapping: dict[str, str],
        errors: list[tuple[str, str]],
    ) -> None:
        response = await upload(rep, "Email,Name\n", mapping, object_type=object_type, **fields)
        body = assert_problem(response, 422, "validation")
        assert [(e["field"], e["message"]) for e in body["errors"]] == errors

    async def test_the_form_must_have_a_file_and_no_unknown_fields(self, rep: Actor) -> None:
        form = {"object_type": "contact", "mapping": '{"Email": "email"}'}
        response = await rep.client.post("/v1/imports", data=form)
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.file"}
        response = await upload(rep, "Email\n", {"Email": "email"}, color="blue")
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.color"}

    async def test_a_retried_upload_with_its_idempotency_key_is_replayed(
        self, admin: Actor, db: Database
    ) -> None:
        headers = {"Idempotency-Key": "import-1"}
        data = {"object_type": "contact", "mapping": '{"Email": "email"}'}

        async def send(content: bytes) -> httpx.Response:
            files = {"file": ("a.csv", content, "text/csv")}
            return await admin.client.post("/v1/imports", files=files, data=data, headers=headers)

        first = await send(b"Email\na@example.com\n")
        assert first.status_code == 201, first.text
        # Each multipart request gets a new random boundary: the form is what is compared.
        again = await send(b"Email\na@example.com\n")
        boundaries = {r.request.headers["content-type"] for r in (first, again)}
        assert len(boundaries) == 2
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        other = await send(b"Email\nb@example.com\n")
        assert error_fields(assert_problem(other, 422, "validation")) == {"header.Idempotency-Key"}
        listed = (await admin.client.get("/v1/imports")).json()["data"]
        assert [job["id"] for job in listed] == [first.json()["id"]]


class TestUploadSize:
    async def test_an_import_may_be_larger_than_the_json_body_limit(self, admin: Actor) -> None:
        rows = "".join(f"Person{i},Row,p{i}@example.com\n" for i in range(40_000))
        content = "First,Last,Email\n" + rows
        assert len(content) > 1_048_576 + 100_000
        job = await start(admin, content)
        assert job["total_rows"] == 40_000

    async def test_a_declared_length_over_the_limit_is_413(
        self, small_app: Any, db: Database
    ) -> None:
        admin = await make_actor(small_app, db, Role.admin)
        response = await upload(admin, "Email\n" + "x" * 5000, {"Email": "email"})
        assert int(response.request.headers["content-length"]) > 4096
        body = assert_problem(response, 413, "payload-too-large")
        assert body["detail"] == "Request bodies are limited to 4096 bytes."

    async def test_a_streamed_upload_is_stopped_at_the_limit(
        self, small_app: Any, db: Database
    ) -> None:
        admin = await make_actor(small_app, db, Role.admin)
        boundary = "b0undary"
        form = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="object_type"\r\n\r\ncontact\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="mapping"\r\n\r\n'
            '{"Email": "email"}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            "Content-Type: text/csv\r\n\r\nEmail\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def chunks(size: int) -> AsyncIterator[bytes]:
            yield form
            for _ in range(size // 1000):
                yield b"x" * 999 + b"\n"
            yield tail

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        response = await admin.client.post("/v1/imports", content=chunks(6000), headers=headers)
        assert "content-length" not in response.request.headers
        body = assert_problem(response, 413, "payload-too-large")
        assert body["detail"] == "Uploads here are limited to 4096 bytes."
        response = await admin.client.post("/v1/imports", content=chunks(2000), headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["total_rows"] == 2

    async def test_other_bodies_keep_the_json_limit(self, admin: Actor) -> None:
        payload = orjson.dumps({"first_name": "x" * 1_100_000})
        response = await admin.client.post(
            "/v1/contacts", content=payload, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 413, "payload-too-large")


class TestFileFormats:
    async def test_bom_semicolons_crlf_quoted_newlines_and_blank_lines(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        content = (
            "\ufeffFirst;Last;Email\r\n"
            "Ada;Lovelace;ADA@example.com\r\n"
            "\r\n"
            ";;\r\n"
            'Bo;"Smith; Jones";bo@example.com\r\n'
            'Cy;"Multi\r\nline";not-an-email\r\n'
            "Di;Prince;di@example.com"
        )
        job = await start(admin, content)
        assert (job["delimiter"], job["total_rows"]) == ("semicolon", 4)
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 4, 4, 3, 0, 0, 1)
        people = [(c["first_name"], c["last_name"], c["email"]) for c in await contacts(admin)]
        assert people == [
            ("Ada", "Lovelace", "ada@example.com"),
            ("Di", "Prince", "di@example.com"),
            ("Bo", "Smith; Jones", "bo@example.com"),
        ]
        assert await errors_csv(admin, job) == (
            "row,First,Last,Email,reason\r\n"
            '6,Cy,"Multi\r\nline",not-an-email,'
            '"email: Value error, not a valid email address: An email address must have an '
            '@-sign."\r\n'
        )

    async def test_errors_csv_defuses_formulas_from_the_file(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        content = 'First,Last,Email\n=HYPERLINK("http://x"),-12,not-an-email\n'
        job = await finished(admin, db, settings, await start(admin, content))
        assert await errors_csv(admin, job) == (
            "row,First,Last,Email,reason\r\n"
            '2,"\'=HYPERLINK(""http://x"")",-12,not-an-email,'
            '"email: Value error, not a valid email address: An email address must have an '
            '@-sign."\r\n'
        )

    async def test_a_delimiter_may_be_given(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        content = "First\tEmail\nAda, Countess\tada@example.com\n"
        job = await start(
            admin, content, {"First": "first_name", "Email": "email"}, delimiter="tab"
        )
        assert job["delimiter"] == "tab"
        await finished(admin, db, settings, job)
        assert [c["first_name"] for c in await contacts(admin)] == ["Ada, Countess"]
        # Detected: the header has more tabs than commas.
        job = await start(admin, "First\tEmail\tNote, see\n", {"First": "first_name"})
        assert job["delimiter"] == "tab"

    async def test_short_rows_are_padded_and_long_ones_fail(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        content = "First,Last,Email\nAda\nBo,B,bo@example.com,,\nCy,C,cy@example.com,extra\n"
        job = await finished(admin, db, settings, await start(admin, content))
        assert counts(job) == ("completed", 3, 3, 2, 0, 0, 1)
        assert await errors_csv(admin, job) == (
            "row,First,Last,Email,reason\r\n"
            "4,Cy,C,cy@example.com,the row has 4 cells; the header row has 3\r\n"
        )


class TestConversion:
    async def test_custom_fields_are_converted_to_their_types(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        await define_custom_field(admin, "contact", "score", "number")
        await define_custom_field(admin, "contact", "vip", "boolean")
        await define_custom_field(admin, "contact", "since", "date")
        options = [{"value": "gold"}, {"value": "silver"}]
        await define_custom_field(admin, "contact", "tier", "enum", options=options)
        topics = [{"value": "ai"}, {"value": "ml"}, {"value": "db"}]
        await define_custom_field(admin, "contact", "topics", "multi_enum", options=topics)
        mapping = {
            "Email": "email",
            "Score": "custom_fields.score",
            "VIP": "custom_fields.vip",
            "Since": "custom_fields.since",
            "Tier": "custom_fields.tier",
            "Topics": "custom_fields.topics",
            "Opt in": "email_opt_in",
        }
        content = (
            "Email,Score,VIP,Since,Tier,Topics,Opt in\n"
            'a@example.com,42,yes,2024-02-29,gold,"ai; db",true\n'
            "b@example.com,-1.5,No,,,,0\n"
            "c@example.com,,1,,,ml,\n"
            "d@example.com,lots,maybe,29/02/2024,bronze,ai;web,perhaps\n"
        )
        job = await finished(admin, db, settings, await start(admin, content, mapping))
        assert counts(job) == ("completed", 4, 4, 3, 0, 0, 1)
        found = {c["email"]: (c["custom_fields"], c["email_opt_in"]) for c in await contacts(admin)}
        assert found == {
            "a@example.com": (
                {"score": 42, "vip": True, "since": "2024-02-29", "tier": "gold",
                 "topics": ["ai", "db"]},
                True,
            ),
            "b@example.com": ({"score": -1.5, "vip": False}, False),
            "c@example.com": ({"vip": True, "topics": ["ml"]}, False),
        }  # fmt: skip
        assert await errors_csv(admin, job) == (
            "row,Email,Score,VIP,Since,Tier,Topics,Opt in,reason\r\n"
            "5,d@example.com,lots,maybe,29/02/2024,bronze,ai;web,perhaps,"
            '"email_opt_in: Input should be a valid boolean, unable to interpret input"\r\n'
        )
        # Fixed the standard field, the custom ones fail with the custom field rules' words.
        fixed = content.splitlines()[0] + "\nd@example.com,lots,maybe,29/02/2024,bronze,ai;web,\n"
        job = await finished(admin, db, settings, await start(admin, fixed, mapping))
        assert await errors_csv(admin, job) == (
            "row,Email,Score,VIP,Since,Tier,Topics,Opt in,reason\r\n"
            "2,d@example.com,lots,maybe,29/02/2024,bronze,ai;web,,"
            '"custom_fields.score: must be a number; custom_fields.vip: must be true or false; '
            "custom_fields.since: must be a date, YYYY-MM-DD; custom_fields.tier: must be one "
            'of: gold, silver; custom_fields.topics: must be a list of: ai, ml, db"\r\n'
        )

    async def test_companies_and_deals_take_numbers_money_dates_and_references(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        mapping = {
            "Name": "name",
            "Site": "domain",
            "Staff": "employee_count",
            "Revenue": "annual_revenue",
            "Currency": "annual_revenue_currency",
            "City": "address.city",
            "Country": "address.country",
        }
        content = (
            "Name,Site,Staff,Revenue,Currency,City,Country\n"
            "Acme,https://www.Acme.example/about,1200,2500000.50,EUR,Berlin,DE\n"
            "Bad,bad.example,many,12.345,JPY,,\n"
        )
        job = await start(admin, content, mapping, object_type="company")
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 2, 2, 1, 0, 0, 1)
        (acme,) = (await admin.client.get("/v1/companies")).json()["data"]
        assert (acme["domain"], acme["employee_count"], acme["annual_revenue"],
                acme["annual_revenue_currency"], acme["address"]) == (
            "acme.example", 1200, "2500000.50", "EUR",
            {"street": None, "city": "Berlin", "region": None, "postal_code": None,
             "country": "DE"},
        )  # fmt: skip
        assert (await errors_csv(admin, job)).splitlines()[1] == (
            '3,Bad,bad.example,many,12.345,JPY,,,"employee_count: Input should be a valid '
            'integer, unable to parse string as an integer"'
        )
        deals = (
            "Deal,Amount,Close,Company\n"
            f"Big,1000.00,2027-03-31,{acme['id']}\n"
            "Typo,12,31.03.2027,\n"
            f"Ghost,5,,{uuid7()}\n"
        )
        mapping = {
            "Deal": "name",
            "Amount": "amount",
            "Close": "expected_close_date",
            "Company": "company_id",
        }
        job = await start(admin, deals, mapping, object_type="deal")
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 3, 3, 1, 0, 0, 2)
        (big,) = (await admin.client.get("/v1/deals")).json()["data"]
        assert (big["amount"], big["expected_close_date"], big["company_id"]) == (
            "1000.00",
            "2027-03-31",
            acme["id"],
        )
        report = (await errors_csv(admin, job)).splitlines()
        assert report[1] == (
            '3,Typo,12,31.03.2027,,"expected_close_date: Value error, must be a date, YYYY-MM-DD"'
        )
        assert report[2].endswith(",company_id: must be the id of a live company")


class TestCreateMode:
    async def test_failed_rows_do_not_stop_the_job(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        taken = await create_contact(admin, email="taken@example.com", first_name="Old")
        content = (
            "First,Last,Email\n"
            "Ann,One,ann@example.com\n"
            "Ann,Again,ANN@example.com\n"
            "Tom,Taken,taken@example.com\n"
            ",,\n"
            ",Nobody,\n"
            "Zed,Last,zed@example.com\n"
        )
        job = await finished(admin, db, settings, await start(admin, content))
        # The blank row 5 is not a row; row 6 is a contact with a last name only.
        assert counts(job) == ("completed", 5, 5, 3, 0, 0, 2)
        people = {c["last_name"]: c for c in await contacts(admin)}
        assert sorted((c["last_name"] or "", c["email"] or "") for c in people.values()) == [
            ("", "taken@example.com"),
            ("Last", "zed@example.com"),
            ("Nobody", ""),
            ("One", "ann@example.com"),
        ]
        ann = people["One"]["id"]
        assert await errors_csv(admin, job) == (
            "row,First,Last,Email,reason\r\n"
            f"3,Ann,Again,ANN@example.com,Another live contact already has this email. "
            f"(existing_id {ann})\r\n"
            f"4,Tom,Taken,taken@example.com,Another live contact already has this email. "
            f"(existing_id {taken['id']})\r\n"
        )

    async def test_rows_get_history_audit_rows_and_events(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        cursor = (await admin.client.get("/v1/events/cursor")).json()["cursor"]
        content = "First,Email\nAda,ada@example.com\nBo,bo@example.com\n"
        job = await start(admin, content, {"First": "first_name", "Email": "email"})
        await finished(admin, db, settings, job)
        people = {c["email"]: c["id"] for c in await contacts(admin)}
        feed = (await admin.client.get("/v1/events", params={"after": cursor})).json()["data"]
        assert [(e["type"], e["entity_id"]) for e in feed] == [
            ("contact.created", people["ada@example.com"]),
            ("contact.created", people["bo@example.com"]),
        ]
        assert feed[0]["data"]["first_name"] == "Ada"
        audit = await admin.client.get(
            "/v1/audit-log", params={"entity_id": people["bo@example.com"]}
        )
        (entry,) = audit.json()["data"]
        assert (entry["action"], entry["actor_user_id"], entry["request_id"]) == (
            "created",
            str(admin.id),
            f"import:{job['id']}",
        )
        assert entry["changes"]["email"] == [None, "bo@example.com"]
        history = await admin.client.get(f"/v1/contacts/{people['ada@example.com']}/timeline")
        assert history.status_code == 200


class TestUpsert:
    async def test_repeated_keys_apply_in_file_order(
        self, admin: Actor, db: Database, settings: Settings, small_app: Any
    ) -> None:
        existing = await create_contact(
            admin, email="old@example.com", first_name="Old", title="CTO"
        )
        mapping = {"Email": "email", "First": "first_name", "Title": "title"}
        content = (
            "Email,First,Title\n"
            "new@example.com,New,\n"  # created
            "NEW@example.com,Newer,Boss\n"  # same key in the same chunk: updates it
            "old@example.com,Old,\n"  # matches, changes nothing: skipped
            "new@example.com,Newest,\n"  # a later chunk: updates it again
            "old@example.com,,CEO\n"  # updates the title only
            ",Keyless,\n"  # no key: fails
        )
        # Small chunks (two rows): repeats within a chunk and across chunks.
        uploader = await make_actor(small_app, db, Role.admin)
        job = await start(uploader, content, mapping, mode="upsert", match_key="email")
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 6, 6, 1, 3, 1, 1)
        people = {c["email"]: c for c in await contacts(admin)}
        assert sorted(people) == ["new@example.com", "old@example.com"]
        new = people["new@example.com"]
        assert (new["first_name"], new["title"], new["version"]) == ("Newest", "Boss", 3)
        old = people["old@example.com"]
        assert (old["id"], old["first_name"], old["title"], old["version"]) == (
            existing["id"],
            "Old",
            "CEO",
            2,
        )
        assert await errors_csv(admin, job) == (
            "row,Email,First,Title,reason\r\n"
            '7,,Keyless,,"email: is empty, and the upsert matches rows on it"\r\n'
        )
        audit = await admin.client.get("/v1/audit-log", params={"entity_id": new["id"]})
        assert [e["action"] for e in audit.json()["data"]] == ["updated", "updated", "created"]

    async def test_external_ids_and_domains_match(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        company = await create_company(admin, name="Acme", domain="acme.example")
        content = "Name,Site\nAcme Inc,https://ACME.example/\nBeta,beta.example\n"
        job = await start(
            admin,
            content,
            {"Name": "name", "Site": "domain"},
            object_type="company",
            mode="upsert",
            match_key="domain",
        )
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 2, 2, 1, 1, 0, 0)
        renamed = (await admin.client.get(f"/v1/companies/{company['id']}")).json()
        assert renamed["name"] == "Acme Inc"

        content = "Ref,First\nERP-1,Ann\nERP-2,Bo\nERP-1,Anne\n"
        mapping = {"Ref": "external_id", "First": "first_name"}
        job = await start(admin, content, mapping, mode="upsert", match_key="external_id")
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 3, 3, 2, 1, 0, 0)
        ann = (await admin.client.get("/v1/contacts/by-external-id/ERP-1")).json()
        assert (ann["first_name"], ann["version"]) == ("Anne", 2)

    async def test_a_match_must_be_a_valid_update(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        await define_custom_field(admin, "contact", "region", "text", required=True)
        await create_contact(admin, email="a@example.com", custom_fields={"region": "EU"})
        content = "Email,Region,Stage\na@example.com,,customer\nb@example.com,,lead\n"
        mapping = {"Email": "email", "Region": "custom_fields.region", "Stage": "lifecycle_stage"}
        job = await start(admin, content, mapping, mode="upsert", match_key="email")
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("completed", 2, 2, 0, 1, 0, 1)
        assert (await errors_csv(admin, job)).splitlines()[1] == (
            "3,b@example.com,,lead,custom_fields.region: is required"
        )


class TestDryRun:
    async def test_a_dry_run_reports_what_would_happen_and_writes_nothing(
        self, admin: Actor, db: Database, settings: Settings, small_app: Any
    ) -> None:
        await create_contact(admin, email="old@example.com", first_name="Old")
        content = (
            "Email,First\n"
            "old@example.com,Old\n"
            "old@example.com,Changed\n"
            "new@example.com,New\n"
            "bad,Bad\n"
            "new@example.com,Newer\n"
        )
        mapping = {"Email": "email", "First": "first_name"}
        uploader = await make_actor(small_app, db, Role.admin)
        before = (
            await count_of(db, Contact),
            await count_of(db, events),
            await count_of(db, audit_log),
        )
        dry = await start(
            uploader, content, mapping, mode="upsert", match_key="email", dry_run="true"
        )
        assert dry["dry_run"] is True
        dry = await finished(admin, db, settings, dry)
        after = (
            await count_of(db, Contact),
            await count_of(db, events),
            await count_of(db, audit_log),
        )
        assert after == before
        assert (await contacts(admin))[0]["first_name"] == "Old"
        real = await start(uploader, content, mapping, mode="upsert", match_key="email")
        real = await finished(admin, db, settings, real)
        assert counts(real) == ("completed", 5, 5, 1, 2, 1, 1)
        assert counts(dry) == counts(real)
        expected = (
            "row,Email,First,reason\r\n"
            '5,bad,Bad,"email: Value error, not a valid email address: An email address must '
            'have an @-sign."\r\n'
        )
        assert await errors_csv(admin, dry) == await errors_csv(admin, real) == expected

    @pytest.mark.parametrize(
        ("fields", "content", "outcome"),
        [
            # Create: the same email in two chunks; the second row fails in both runs.
            ({}, "Ref,Email\nA,a@example.com\nB,b@example.com\nC,c@example.com\n"
                 "D,A@example.com\n", ("completed", 4, 4, 3, 0, 0, 1)),
            # Upsert on external_id: R1 (live) gives up old@ in chunk 1; a new record takes
            # it in chunk 2; R1 comes back unchanged in chunk 3.
            ({"mode": "upsert", "match_key": "external_id"},
             "Ref,Email\nR1,moved@example.com\nN1,n1@example.com\nN2,old@example.com\n"
             "N1,n1@example.com\nR1,moved@example.com\nN2,other@example.com\n",
             ("completed", 6, 6, 2, 2, 2, 0)),
        ],
    )  # fmt: skip
    async def test_a_dry_run_sees_what_its_earlier_chunks_would_have_written(
        self,
        admin: Actor,
        db: Database,
        settings: Settings,
        small_app: Any,
        fields: dict[str, str],
        content: str,
        outcome: tuple[Any, ...],
    ) -> None:
        await create_contact(admin, email="old@example.com", external_id="R1")
        mapping = {"Ref": "external_id", "Email": "email"}
        uploader = await make_actor(small_app, db, Role.admin)
        dry = await start(uploader, content, mapping, dry_run="true", **fields)
        dry = await finished(admin, db, settings, dry)
        real = await start(uploader, content, mapping, **fields)
        real = await finished(admin, db, settings, real)
        assert counts(dry) == counts(real) == outcome
        # The same rows, for the same reasons (a dry run names the id the record it clashes
        # with would have had).
        dry_report, real_report = await errors_csv(admin, dry), await errors_csv(admin, real)
        assert re.sub(r"existing_id [-0-9a-f]+", "", dry_report) == re.sub(
            r"existing_id [-0-9a-f]+", "", real_report
        )


class TestProgressAndCancel:
    async def test_progress_moves_one_chunk_at_a_time(
        self, small_app: Any, db: Database, settings: Settings
    ) -> None:
        admin = await make_actor(small_app, db, Role.admin)
        content = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(5))
        job = await start(admin, content, {"Email": "email"})
        worker = uuid7()
        assert await claim(db, settings, worker) == UUID(job["id"])
        seen = []
        for _ in range(3):
            assert await run_imports(db, settings, worker, 0.0)
            current = (await admin.client.get(f"/v1/imports/{job['id']}")).json()
            seen.append((current["status"], current["processed"], current["created"]))
        print(await errors_csv(admin, job))
        assert seen == [("running", 2, 2), ("running", 4, 4), ("completed", 5, 5)]
        assert await count_of(db, import_parts) == 0

    async def test_a_job_whose_lease_ran_out_is_taken_over(
        self, small_app: Any, db: Database, settings: Settings
    ) -> None:
        admin = await make_actor(small_app, db, Role.admin)
        content = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(5))
        job = await start(admin, content, {"Email": "email"})
        short = settings.model_copy(update={"import_lease_seconds": 0.05})
        first, second = uuid7(), uuid7()
        assert await run_imports(db, short, first, 0.0)  # one chunk, then the worker "dies"
        assert await claim(db, short, second) is None  # the lease holds
        await asyncio.sleep(0.1)
        assert await claim(db, short, second) == UUID(job["id"])
        assert await run_imports(db, short, second, 0.0)
        # The first worker comes back: the job is no longer its own, it writes nothing.
        assert not await _run_chunk(db, short, UUID(job["id"]), first)
        while await run_imports(db, settings, second, 30.0):
            pass
        current = (await admin.client.get(f"/v1/imports/{job['id']}")).json()
        assert counts(current) == ("completed", 5, 5, 5, 0, 0, 0)
        assert len(await contacts(admin)) == 5

    async def test_a_chunk_that_keeps_failing_fails_the_job(
        self, admin: Actor, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        job = await start(admin, "Email\na@example.com\n", {"Email": "email"})

        async def broken(*_: Any) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(ChunkImport, "run", broken)
        worker = uuid7()
        for _ in range(3):
            assert not await run_imports(db, settings, worker, 30.0)
        assert not await run_imports(db, settings, worker, 30.0)  # nothing left to claim
        current = (await admin.client.get(f"/v1/imports/{job['id']}")).json()
        assert counts(current) == ("failed", 1, 0, 0, 0, 0, 0)
        assert current["error"] == (
            "An unexpected error stopped the import after 0 rows; quote the import's id when "
            "reporting it."
        )
        assert await count_of(db, import_parts) == 0

    async def test_cancel_stops_at_a_chunk_boundary(
        self, small_app: Any, db: Database, settings: Settings
    ) -> None:
        admin = await make_actor(small_app, db, Role.admin)
        content = "Email\n" + "".join(f"p{i}@example.com\n" for i in range(5))
        job = await start(admin, content, {"Email": "email"})
        worker = uuid7()
        assert await run_imports(db, settings, worker, 0.0)  # one chunk
        response = await admin.client.post(f"/v1/imports/{job['id']}/cancel")
        assert response.status_code == 200, response.text
        cancelled = response.json()
        assert counts(cancelled) == ("cancelled", 5, 2, 2, 0, 0, 0)
        assert cancelled["finished_at"] is not None
        await drain(db, settings)
        assert (await admin.client.get(f"/v1/imports/{job['id']}")).json() == cancelled
        assert len(await contacts(admin)) == 2
        assert await count_of(db, import_parts) == 0
        again = await admin.client.post(f"/v1/imports/{job['id']}/cancel")
        assert again.json() == cancelled

    async def test_a_queued_job_is_cancelled_before_it_starts(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        job = await start(admin, "Email\na@example.com\n", {"Email": "email"})
        cancelled = (await admin.client.post(f"/v1/imports/{job['id']}/cancel")).json()
        assert counts(cancelled) == ("cancelled", 1, 0, 0, 0, 0, 0)
        await drain(db, settings)
        assert await contacts(admin) == []

    async def test_a_finished_job_cannot_be_cancelled(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        job = await start(admin, "Email\na@example.com\n", {"Email": "email"})
        job = await finished(admin, db, settings, job)
        body = assert_problem(
            await admin.client.post(f"/v1/imports/{job['id']}/cancel"), 409, "conflict"
        )
        assert (
            body["detail"]
            == "The import has completed already; only a queued or running one stops."
        )


class TestAccess:
    async def test_viewers_cannot_import(self, viewer: Actor) -> None:
        response = await upload(viewer, "Email\na@example.com\n", {"Email": "email"})
        assert_problem(response, 403, "forbidden")

    @pytest.mark.parametrize("authorization", [None, b"Bearer crm_unknown", b"Basic eDp5"])
    async def test_an_upload_without_a_valid_key_is_401_before_its_body_is_read(
        self, app: Any, db: Database, authorization: bytes | None
    ) -> None:
        async def receive() -> dict[str, Any]:
            raise AssertionError("the body was read")

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [
            (b"content-type", b"multipart/form-data; boundary=x"),
            (b"content-length", b"40000000"),
            *([(b"authorization", authorization)] if authorization else []),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/imports",
            "raw_path": b"/v1/imports",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("203.0.113.9", 50000),
            "server": ("test", 80),
        }

        await app(scope, receive, send)

        response = httpx.Response(
            sent[0]["status"], headers=sent[0]["headers"], content=sent[1]["body"]
        )
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_reps_import_records_they_own(
        self, rep: Actor, admin: Actor, db: Database, settings: Settings
    ) -> None:
        theirs = await create_contact(admin, email="admins@example.com")
        content = (
            "Email,Owner,Title\n"
            "mine@example.com,,Rep's\n"
            f"given@example.com,{admin.id},X\n"
            "admins@example.com,,Changed\n"
        )
        mapping = {"Email": "email", "Owner": "owner_id", "Title": "title"}
        job = await start(rep, content, mapping, mode="upsert", match_key="email")
        job = await finished(rep, db, settings, job)
        assert counts(job) == ("completed", 3, 3, 1, 0, 0, 2)
        assert await errors_csv(rep, job) == (
            "row,Email,Owner,Title,reason\r\n"
            f"3,given@example.com,{admin.id},X,Reps may assign records only to themselves.\r\n"
            "4,admins@example.com,,Changed,Reps may change only records they own.\r\n"
        )
        mine = (await rep.client.get("/v1/contacts", params={"q": "mine"})).json()["data"]
        assert mine[0]["owner_id"] == str(rep.id)
        assert (await admin.client.get(f"/v1/contacts/{theirs['id']}")).json()["title"] is None

    async def test_jobs_are_seen_by_their_uploader_and_managers(
        self, rep: Actor, other_rep: Actor, manager: Actor, viewer: Actor
    ) -> None:
        first = await start(rep, "Email\na@example.com\n", {"Email": "email"})
        second = await start(
            other_rep, "Email\nb@example.com\n", {"Email": "email"}, object_type="contact"
        )
        third = await start(rep, "Name\nAcme\n", {"Name": "name"}, object_type="company")

        async def listed(actor: Actor, **params: str) -> list[str]:
            response = await actor.client.get("/v1/imports", params=params)
            assert response.status_code == 200, response.text
            return [job["id"] for job in response.json()["data"]]

        assert await listed(manager) == [third["id"], second["id"], first["id"]]
        assert await listed(rep) == [third["id"], first["id"]]
        assert await listed(rep, object_type="company") == [third["id"]]
        assert await listed(rep, status="completed") == []
        assert await listed(viewer) == []
        page = await manager.client.get("/v1/imports", params={"limit": 2})
        assert [j["id"] for j in page.json()["data"]] == [third["id"], second["id"]]
        rest = await manager.client.get(
            "/v1/imports", params={"limit": 2, "cursor": page.json()["next_cursor"]}
        )
        assert [j["id"] for j in rest.json()["data"]] == [first["id"]]
        assert (await manager.client.get(f"/v1/imports/{first['id']}")).status_code == 200
        for path in ("", "/errors.csv"):
            response = await other_rep.client.get(f"/v1/imports/{first['id']}{path}")
            assert_problem(response, 404, "not-found")
        assert_problem(
            await other_rep.client.post(f"/v1/imports/{first['id']}/cancel"), 404, "not-found"
        )
        assert_problem(
            await viewer.client.post(f"/v1/imports/{first['id']}/cancel"), 403, "forbidden"
        )
        cancelled = await manager.client.post(f"/v1/imports/{second['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"

    async def test_a_deactivated_uploader_fails_the_job(
        self, admin: Actor, rep: Actor, db: Database, settings: Settings
    ) -> None:
        job = await start(rep, "Email\na@example.com\n", {"Email": "email"})
        response = await admin.client.post(f"/v1/users/{rep.id}/deactivate")
        assert response.status_code == 200, response.text
        job = await finished(admin, db, settings, job)
        assert counts(job) == ("failed", 1, 0, 0, 0, 0, 0)
        assert job["error"] == "The user who uploaded the file was deactivated."
        assert await contacts(admin) == []

    async def test_the_error_report_of_a_job_without_failures_is_its_header(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        job = await start(admin, "E-mail,Note\na@example.com,x\n", {"E-mail": "email"})
        await finished(admin, db, settings, job)
        assert await errors_csv(admin, job) == "row,E-mail,Note,reason\r\n"
