"""The bare baseline: Starlette, a raw asyncpg pool and orjson; no auth, no validation, no audit.

It serves the crm-api hot paths against the same tables with the same SQL, so crm/baseline is the
price of everything crm-api adds (auth, validation, SQLAlchemy, audit and events, middleware).
For deals, the SQL is not even written here: crm-api's own statements are compiled at startup by
crm-api's own compile step, and rows become JSON through crm-api's own row functions; what is
left is the request flow, the same queries in the same order on one pooled connection:

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/crm_bench BENCH_OWNER_ID=<user id> \
        .venv/bin/uvicorn baseline:app --app-dir bench --workers 2 --no-access-log --port 8200
"""

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import Select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import crm_api.core.reader as crm_reader
from crm_api.core.db import Database
from crm_api.core.enums import StageKind
from crm_api.core.ids import uuid7
from crm_api.core.listing import encode_cursor
from crm_api.core.money import to_minor_units
from crm_api.deals.repository import (
    CONTACTS_OF,
    LINE_ITEMS_OF,
    LISTING,
    OPEN_STAGE_TOTALS,
    contact_link_read,
    to_card,
    weighted,
)
from crm_api.deals.service import line_item_read
from crm_api.pipelines import repository as pipeline_sql

# Column for column the SELECT that crm-api compiles for a contact read and for a list page.
SELECT = (
    "SELECT contacts.id, contacts.first_name, contacts.last_name, contacts.name_key,"
    " contacts.email, contacts.phone, contacts.title, contacts.company_id,"
    " contacts.lifecycle_stage, contacts.lifecycle_stage_changed_at, contacts.lead_source,"
    " contacts.owner_id, contacts.email_opt_in, contacts.do_not_contact, contacts.custom_fields,"
    " contacts.external_id, contacts.version, contacts.created_by, contacts.created_at,"
    " contacts.updated_at, contacts.archived_at, companies.id AS company__id,"
    " companies.name AS company__name, companies.domain AS company__domain"
    " FROM contacts LEFT OUTER JOIN companies ON companies.id = contacts.company_id"
)
GET_ONE = SELECT + " WHERE contacts.id = $1::UUID"
ORDER = " ORDER BY contacts.created_at ASC, contacts.id ASC LIMIT $"
FIRST_PAGE = SELECT + " WHERE contacts.archived_at IS NULL" + ORDER + "1"
NEXT_PAGE = (
    SELECT
    + " WHERE contacts.archived_at IS NULL AND (contacts.created_at, contacts.id) > ($1, $2)"
    + ORDER
    + "3"
)
INSERT = (
    "INSERT INTO contacts (id, first_name, last_name, name_key, email, phone, title, company_id,"
    " lifecycle_stage, lifecycle_stage_changed_at, lead_source, owner_id, email_opt_in,"
    " do_not_contact, custom_fields, external_id, version, created_by, created_at, updated_at,"
    " archived_at) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,"
    " $21)"
)
Compiled: TypeAlias = crm_reader._Compiled  # SQL text, parameter names in order, defaults
COMPANY = "company__"
MAX_LIMIT = 500
BOARD_LIMIT = 20  # crm-api's default deals per board column
BOARD_SORT = "-amount"  # and its default board order
STAGE_FIELDS = ("id", "name", "position", "probability", "kind")  # a stage as crm-api shows it
DEAL_FILTERS = {"stage_id": UUID, "status": str}  # the deal list filters served here


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # asyncpg returns its own UUID subclass, which orjson only takes via `default`.
        return orjson.dumps(content, default=str)


def to_read(record: asyncpg.Record) -> dict[str, Any]:
    """The crm-api shape: no name_key, the company summary nested."""
    row = dict(record)
    company_id = row.pop(COMPANY + "id")
    name, domain = row.pop(COMPANY + "name"), row.pop(COMPANY + "domain")
    del row["name_key"]
    row["company"] = {"id": company_id, "name": name, "domain": domain} if company_id else None
    return row


class CrmSql:
    """crm-api's statements as crm-api sends them: compiled once each by its raw read path's
    own compile step (`crm_api.core.reader._compile`), so the SQL text, the order of the
    parameters and their defaults are crm-api's and cannot drift from it."""

    def __init__(self, database_url: str) -> None:
        # Only the SQLAlchemy dialect is used; the engine never connects.
        self.db = Database(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        # What `PipelineRepository.get` and `.stages` run (module-private statements).
        self.pipeline = self.compile(pipeline_sql._pipeline)
        self.stages = self.compile(pipeline_sql._stages_of)
        self.open_totals = self.compile(OPEN_STAGE_TOTALS)
        self.contacts_of = self.compile(CONTACTS_OF[True])
        self.line_items_of = self.compile(LINE_ITEMS_OF[True])

    def compile(self, stmt: Select[Any]) -> Compiled:
        return crm_reader._compile(self.db, stmt)

    def deal_page(self, filters: tuple[str, ...], sort: str, descending: bool) -> Compiled:
        """A first page of deals, as `crm_api.core.listing.run_list` builds it for the shape."""
        return self.compile(LISTING.page_statement(filters, sort, descending, None, False))


async def fetch(
    connection: asyncpg.Connection, sql: Compiled, params: Mapping[str, Any]
) -> list[asyncpg.Record]:
    records: list[asyncpg.Record] = await connection.fetch(sql.sql, *sql.args(params))
    return records


async def init_connection(connection: asyncpg.Connection) -> None:
    # The same JSON codec as crm-api's raw pool, so JSONB costs the same on both sides.
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def reset_connection(connection: asyncpg.Connection) -> None:
    # Like crm-api's raw pool: no reset round trip (UNLISTEN, RESET ALL, ...) on every release,
    # which would be one statement per request more than crm-api runs; only an interrupted
    # transaction needs undoing.
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dsn = os.environ["BENCH_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    size = int(os.environ.get("BENCH_DB_POOL_SIZE", "10"))  # crm-api's default raw pool size
    app.state.sql = CrmSql(dsn)
    async with asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=init_connection, reset=reset_connection
    ) as pool:
        app.state.pool = pool
        app.state.owner_id = await owner_id(pool)
        yield


async def owner_id(pool: asyncpg.Pool) -> UUID:
    if "BENCH_OWNER_ID" in os.environ:
        return UUID(os.environ["BENCH_OWNER_ID"])
    found = await pool.fetchval("SELECT id FROM users WHERE active ORDER BY created_at LIMIT 1")
    if found is None:
        raise RuntimeError("no active user to own created contacts")
    return found


async def healthz(request: Request) -> Response:
    await request.app.state.pool.fetchval("SELECT 1")
    return JSON({"status": "ok"})


async def get_contact(request: Request) -> Response:
    try:
        contact_id = UUID(request.path_params["id"])
    except ValueError:
        return JSON({"detail": "not found"}, status_code=404)
    async with request.app.state.pool.acquire() as connection:
        record = await connection.fetchrow(GET_ONE, contact_id)
    if record is None:
        return JSON({"detail": "not found"}, status_code=404)
    return JSON(to_read(record))


async def list_contacts(request: Request) -> Response:
    query = request.query_params
    limit = min(MAX_LIMIT, max(1, int(query.get("limit", "50"))))
    async with request.app.state.pool.acquire() as connection:
        if "after_id" in query:
            after = datetime.fromisoformat(query["after_created_at"]), UUID(query["after_id"])
            records = await connection.fetch(NEXT_PAGE, *after, limit + 1)
        else:
            records = await connection.fetch(FIRST_PAGE, limit + 1)
    rows = [to_read(record) for record in records[:limit]]
    after_next = None
    if len(records) > limit:
        after_next = {"after_created_at": rows[-1]["created_at"], "after_id": rows[-1]["id"]}
    return JSON({"data": rows, "next": after_next})


async def create_contact(request: Request) -> Response:
    body = orjson.loads(await request.body())
    now = datetime.now(UTC)
    owner = request.app.state.owner_id
    first, last = body.get("first_name"), body.get("last_name")
    row = {
        "id": uuid7(),
        "first_name": first,
        "last_name": last,
        "name_key": " ".join(part for part in (last, first) if part).casefold(),
        "email": (body.get("email") or "").lower() or None,
        "phone": body.get("phone"),
        "title": body.get("title"),
        "company_id": body.get("company_id"),
        "lifecycle_stage": body.get("lifecycle_stage", "lead"),
        "lifecycle_stage_changed_at": now,
        "lead_source": body.get("lead_source"),
        "owner_id": owner,
        "email_opt_in": body.get("email_opt_in", False),
        "do_not_contact": body.get("do_not_contact", False),
        "custom_fields": body.get("custom_fields", {}),
        "external_id": body.get("external_id"),
        "version": 1,
        "created_by": owner,
        "created_at": now,
        "updated_at": now,
        "archived_at": None,
    }
    async with request.app.state.pool.acquire() as connection:
        await connection.execute(INSERT, *row.values())
    del row["name_key"]
    return JSON(row, status_code=201)


def page_rows(
    records: Sequence[asyncpg.Record], limit: int, sort: str, descending: bool
) -> tuple[Sequence[asyncpg.Record], str | None]:
    """A page of `limit` out of `limit + 1` rows read, and crm-api's cursor to the next page."""
    if len(records) <= limit:
        return records, None
    rows = records[:limit]
    values = [rows[-1][column.key] for column in LISTING.sorts[sort].columns]
    return rows, encode_cursor(f"-{sort}" if descending else sort, values)


def board_column(
    stage: asyncpg.Record,
    totals: list[asyncpg.Record],
    rows: Sequence[asyncpg.Record],
    next_cursor: str | None,
) -> dict[str, Any]:
    """One stage of the board, shaped like a column of crm-api's `DealService.board`."""
    probability = stage["probability"]
    return {
        "stage": {key: stage[key] for key in STAGE_FIELDS},
        "count": sum(row["count"] for row in totals),
        "totals": [
            {
                "currency": row["currency"],
                "count": row["count"],
                "amount": (amount := to_minor_units(row["amount"], row["currency"])),
                "weighted_amount": weighted(amount, probability, row["currency"]),
            }
            for row in totals
        ],
        "deals": [to_card(row) for row in rows],
        "next_cursor": next_cursor,
    }


async def pipeline_board(request: Request) -> Response:
    """crm-api's board flow: the pipeline, its stages, the open stages' totals, then a page of
    each open stage in stage order."""
    try:
        pipeline_id = UUID(request.path_params["id"])
    except ValueError:
        return JSON({"detail": "not found"}, status_code=404)
    limit = int(request.query_params.get("limit", BOARD_LIMIT))
    sort, descending = LISTING.parse_sort(request.query_params.get("sort", BOARD_SORT))
    sql = request.app.state.sql
    page_sql = sql.deal_page(("stage_id",), sort, descending)
    async with request.app.state.pool.acquire() as connection:
        found = await fetch(connection, sql.pipeline, {"id": pipeline_id})
        if not found:
            return JSON({"detail": "not found"}, status_code=404)
        stages = await fetch(connection, sql.stages, {"pipeline_id": pipeline_id})
        totals: dict[UUID, list[asyncpg.Record]] = {}
        for row in await fetch(connection, sql.open_totals, {"pipeline_id": pipeline_id}):
            totals.setdefault(row["stage_id"], []).append(row)
        pages = {}
        for stage in stages:
            if stage["kind"] == StageKind.open:
                params = {"stage_id": stage["id"], "limit": limit + 1}
                records = await fetch(connection, page_sql, params)
                pages[stage["id"]] = page_rows(records, limit, sort, descending)
    columns = [
        board_column(stage, totals.get(stage["id"], []), *pages.get(stage["id"], ((), None)))
        for stage in stages
    ]
    return JSON({"pipeline_id": pipeline_id, "name": found[0]["name"], "stages": columns})


async def embed(connection: asyncpg.Connection, sql: CrmSql, deals: list[dict[str, Any]]) -> None:
    """crm-api's `DealService._embed`: the page's contacts, then its line items."""
    by_id = {deal["id"]: deal for deal in deals}
    for deal in deals:
        deal.update(contacts=[], line_items=[])
    if not deals:
        return
    params = {"deal_ids": list(by_id)}
    for row in await fetch(connection, sql.contacts_of, params):
        by_id[row["deal_id"]]["contacts"].append(contact_link_read(row))
    for row in await fetch(connection, sql.line_items_of, params):
        by_id[row["deal_id"]]["line_items"].append(line_item_read(row))


async def list_deals(request: Request) -> Response:
    query = request.query_params
    limit = min(MAX_LIMIT, max(1, int(query.get("limit", "50"))))
    sort, descending = LISTING.parse_sort(query.get("sort"))
    filters = {name: parse(query[name]) for name, parse in DEAL_FILTERS.items() if name in query}
    sql = request.app.state.sql
    page_sql = sql.deal_page(tuple(sorted(filters)), sort, descending)
    async with request.app.state.pool.acquire() as connection:
        records = await fetch(connection, page_sql, {**filters, "limit": limit + 1})
        rows, next_cursor = page_rows(records, limit, sort, descending)
        deals = [to_card(row) for row in rows]
        await embed(connection, sql, deals)
    return JSON({"data": deals, "next_cursor": next_cursor})


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/contacts/{id}", get_contact),
        Route("/contacts", list_contacts),
        Route("/contacts", create_contact, methods=["POST"]),
        Route("/pipelines/{id}/board", pipeline_board),
        Route("/deals", list_deals),
    ],
    lifespan=lifespan,
)
