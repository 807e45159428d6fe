"""The bare baseline: Starlette, a raw asyncpg pool and orjson; no auth, no validation, no audit.

It serves the crm-api hot paths against the same tables with the same SQL, so crm/baseline is the
price of everything crm-api adds (auth, validation, SQLAlchemy, audit and events, middleware).
For reads the SQL is not even written here: crm-api's own statements (a contact, a contact list
page, the board, a deal list page, a contact's timeline) are compiled at startup by crm-api's own
compile step, and rows become JSON through crm-api's own row functions; what is left is the
request flow, the same queries in the same order on one pooled connection. The metrics go one
step further: crm-api's own `MetricsService` runs on a reader that executes each statement it is
given, compiled the same way, on the request's connection (`ConnectionReader`). The one write, a
contact POST, is a single INSERT of a whole `contacts` row:

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/crm_bench BENCH_OWNER_ID=<user id> \
        .venv/bin/uvicorn baseline:app --app-dir bench --workers 2 --no-access-log --port 8200
"""

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
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
import crm_api.timeline.service as crm_timeline
from crm_api.contacts import repository as contact_sql
from crm_api.core.db import SERVER_SETTINGS, Database
from crm_api.core.enums import StageKind
from crm_api.core.ids import uuid7
from crm_api.core.listing import ListSpec, encode_cursor
from crm_api.core.money import to_minor_units
from crm_api.deals.repository import (
    CONTACTS_OF,
    LINE_ITEMS_OF,
    OPEN_STAGE_TOTALS,
    contact_link_read,
    to_card,
    weighted,
)
from crm_api.deals.repository import LISTING as DEAL_LISTING
from crm_api.deals.service import line_item_read
from crm_api.metrics.params import Window, get_currency, get_window, present
from crm_api.metrics.service import MetricsService
from crm_api.pipelines import repository as pipeline_sql
from crm_api.timeline.repository import (
    EXISTS,
    KIND_OF_RANK,
    SOURCE_OF,
    RecordType,
    TimelineKind,
    activity_contacts_statement,
    actors_statement,
    details_statement,
    kinds_of,
    page_statement,
)

Compiled: TypeAlias = crm_reader._Compiled  # SQL text, parameter names in order, defaults
CONTACT_LISTING = contact_sql.LISTING
CONTACT_SORT = CONTACT_LISTING.default_sort  # the list scenarios' order: created_at, then id
# crm-api's contact POST stores every column of the table; so does the baseline's one INSERT.
CONTACT_COLUMNS = tuple(contact_sql.contacts.columns.keys())
INSERT = (
    f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) VALUES"
    f" ({', '.join(f'${number}' for number in range(1, len(CONTACT_COLUMNS) + 1))})"
)
MAX_LIMIT = 500
BOARD_LIMIT = 20  # crm-api's default deals per board column
BOARD_SORT = "-amount"  # and its default board order
STAGE_FIELDS = ("id", "name", "position", "probability", "kind")  # a stage as crm-api shows it
DEAL_FILTERS = {"stage_id": UUID, "status": str}  # the deal list filters served here
# A timeline request without `kinds` shows every kind a contact has, in crm-api's rank order.
TIMELINE_KINDS = kinds_of(RecordType.contact, set(TimelineKind))
TIMELINE_SORT = "timeline"  # crm-api's cursor tag for timelines (`TimelineService`)
TIMELINE_ITEMS = crm_timeline._ITEMS  # crm-api's item builders, by kind


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # asyncpg returns its own UUID subclass, which orjson only takes via `default`.
        return orjson.dumps(content, default=str)


class CrmSql:
    """crm-api's statements as crm-api sends them: compiled once each by its raw read path's
    own compile step (`crm_api.core.reader._compile`), so the SQL text, the order of the
    parameters and their defaults are crm-api's and cannot drift from it."""

    def __init__(self, database_url: str) -> None:
        # Only the SQLAlchemy dialect is used; the engine never connects.
        self.db = Database(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        # What `RecordRepository.read` runs for a contact: with its company and next task;
        # and what `run_list` runs for a page of live contacts in the default order, the first
        # one or the one after a cursor.
        self.contact = self.compile(contact_sql.CONTACT.read)
        self.contact_pages = {
            after: self.compile(
                CONTACT_LISTING.page_statement((), CONTACT_SORT, False, after, False)
            )
            for after in (None, "value")
        }
        # What `PipelineRepository.get` and `.stages` run (module-private statements).
        self.pipeline = self.compile(pipeline_sql._pipeline)
        self.stages = self.compile(pipeline_sql._stages_of)
        self.open_totals = self.compile(OPEN_STAGE_TOTALS)
        self.contacts_of = self.compile(CONTACTS_OF[True])
        self.line_items_of = self.compile(LINE_ITEMS_OF[True])
        # `TimelineService.page` for a contact: the existence check, a page per kind of cursor
        # (none, or the rank of the kind of the item it names), the details, who did what.
        self.contact_exists = self.compile(EXISTS[RecordType.contact])
        self.timeline_pages = {
            rank: self.compile(page_statement(RecordType.contact, TIMELINE_KINDS, rank))
            for rank in (None, *KIND_OF_RANK)
        }
        self.details = {
            source: self.compile(details_statement(source, True))
            for source in set(SOURCE_OF.values())
        }
        self.activity_contacts = self.compile(activity_contacts_statement(True))
        self.actors = self.compile(actors_statement(True))

    def compile(self, stmt: Select[Any]) -> Compiled:
        return crm_reader._compile(self.db, stmt)

    def deal_page(self, filters: tuple[str, ...], sort: str, descending: bool) -> Compiled:
        """A first page of deals, as `crm_api.core.listing.run_list` builds it for the shape."""
        return self.compile(DEAL_LISTING.page_statement(filters, sort, descending, None, False))


class ConnectionReader:
    """crm-api's `Reader` interface (`all`, `one`, `scalar`) on one pooled connection: each
    statement is compiled by crm-api's own compile step (once per statement object, as crm-api
    does) and run raw, its rows returned as dicts, as crm-api's raw read path returns them."""

    def __init__(self, connection: asyncpg.Connection, sql: CrmSql) -> None:
        self.connection = connection
        self.sql = sql

    async def all(self, stmt: Select[Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [dict(record) for record in await fetch(self.connection, self.sql.compile(stmt),
                                                       params)]  # fmt: skip

    async def one(self, stmt: Select[Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
        rows = await self.all(stmt, params)
        return rows[0] if rows else None

    async def scalar(self, stmt: Select[Any], params: Mapping[str, Any]) -> Any:
        row = await self.one(stmt, params)
        return next(iter(row.values())) if row else None


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
    # crm-api's connection settings (JIT off): the comparison is of what runs the same SQL.
    async with asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=init_connection,
        reset=reset_connection,
        server_settings=SERVER_SETTINGS,
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


def limit_of(request: Request) -> int:
    return min(MAX_LIMIT, max(1, int(request.query_params.get("limit", "50"))))


async def get_contact(request: Request) -> Response:
    try:
        contact_id = UUID(request.path_params["id"])
    except ValueError:
        return JSON({"detail": "not found"}, status_code=404)
    async with request.app.state.pool.acquire() as connection:
        records = await fetch(connection, request.app.state.sql.contact, {"id": contact_id})
    if not records:
        return JSON({"detail": "not found"}, status_code=404)
    return JSON(contact_sql.to_read(dict(records[0])))


async def list_contacts(request: Request) -> Response:
    """The first page, or with `after_created_at` and `after_id` (the values crm-api's cursor
    carries) the page after that row; `next_cursor` is crm-api's, so the bodies are equal."""
    query, limit = request.query_params, limit_of(request)
    params: dict[str, Any] = {"limit": limit + 1}
    after = None
    if "after_id" in query:
        after = "value"
        params.update(
            cursor_0=datetime.fromisoformat(query["after_created_at"]),
            cursor_1=UUID(query["after_id"]),
        )
    page_sql = request.app.state.sql.contact_pages[after]
    async with request.app.state.pool.acquire() as connection:
        records = await fetch(connection, page_sql, params)
    rows, next_cursor = page_rows(records, limit, CONTACT_LISTING, CONTACT_SORT, False)
    return JSON({"data": [contact_sql.to_read(dict(row)) for row in rows],
                 "next_cursor": next_cursor})  # fmt: skip


async def create_contact(request: Request) -> Response:
    body = orjson.loads(await request.body())
    now = datetime.now(UTC)
    owner = request.app.state.owner_id
    first, last = body.get("first_name"), body.get("last_name")
    row = dict.fromkeys(CONTACT_COLUMNS)  # every column; the new nullable ones stay NULL
    row.update(
        id=uuid7(),
        first_name=first,
        last_name=last,
        name_key=" ".join(part for part in (last, first) if part).casefold(),
        email=(body.get("email") or "").lower() or None,
        phone=body.get("phone"),
        title=body.get("title"),
        company_id=body.get("company_id"),
        lifecycle_stage=body.get("lifecycle_stage", "lead"),
        lifecycle_stage_changed_at=now,
        lead_source=body.get("lead_source"),
        owner_id=owner,
        email_opt_in=body.get("email_opt_in", False),
        do_not_contact=body.get("do_not_contact", False),
        custom_fields=body.get("custom_fields", {}),
        external_id=body.get("external_id"),
        version=1,
        created_by=owner,
        created_at=now,
        updated_at=now,
    )
    async with request.app.state.pool.acquire() as connection:
        await connection.execute(INSERT, *row.values())
    # crm-api's shape (no company or next task to embed: the load sends neither).
    return JSON(contact_sql.to_read(contact_sql.in_read_shape(row, None, None)), status_code=201)


def page_rows(
    records: Sequence[asyncpg.Record], limit: int, spec: ListSpec, sort: str, descending: bool
) -> tuple[Sequence[asyncpg.Record], str | None]:
    """A page of `limit` out of `limit + 1` rows read, and crm-api's cursor to the next page."""
    if len(records) <= limit:
        return records, None
    rows = records[:limit]
    values = [rows[-1][column.key] for column in spec.sorts[sort].columns]
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
    sort, descending = DEAL_LISTING.parse_sort(request.query_params.get("sort", BOARD_SORT))
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
                pages[stage["id"]] = page_rows(records, limit, DEAL_LISTING, sort, descending)
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
    query, limit = request.query_params, limit_of(request)
    sort, descending = DEAL_LISTING.parse_sort(query.get("sort"))
    filters = {name: parse(query[name]) for name, parse in DEAL_FILTERS.items() if name in query}
    sql = request.app.state.sql
    page_sql = sql.deal_page(tuple(sorted(filters)), sort, descending)
    async with request.app.state.pool.acquire() as connection:
        records = await fetch(connection, page_sql, {**filters, "limit": limit + 1})
        rows, next_cursor = page_rows(records, limit, DEAL_LISTING, sort, descending)
        deals = [to_card(row) for row in rows]
        await embed(connection, sql, deals)
    return JSON({"data": deals, "next_cursor": next_cursor})


async def contact_timeline(request: Request) -> Response:
    """`TimelineService.page` for a contact, every kind: the existence check, one page (with
    `after_occurred_at`, `after_rank` and `after_id`, the values crm-api's cursor carries: the
    page after that item), then the page's details; `next_cursor` is crm-api's."""
    try:
        contact_id = UUID(request.path_params["id"])
    except ValueError:
        return JSON({"detail": "not found"}, status_code=404)
    query, limit, sql = request.query_params, limit_of(request), request.app.state.sql
    params: dict[str, Any] = {"record_id": contact_id, "limit": limit + 1}
    rank = None
    if "after_id" in query:
        rank = int(query["after_rank"])
        params.update(
            cursor_0=datetime.fromisoformat(query["after_occurred_at"]),
            cursor_2=UUID(query["after_id"]),
        )
    async with request.app.state.pool.acquire() as connection:
        if not await fetch(connection, sql.contact_exists, {"id": contact_id}):
            return JSON({"detail": "not found"}, status_code=404)
        rows = await fetch(connection, sql.timeline_pages[rank], params)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            values = [last["occurred_at"], last["kind_rank"], last["item_id"]]
            next_cursor = encode_cursor(TIMELINE_SORT, values)
        items = await timeline_items(connection, sql, rows)
    return JSON({"data": items, "next_cursor": next_cursor})


async def timeline_items(
    connection: asyncpg.Connection, sql: CrmSql, rows: Sequence[asyncpg.Record]
) -> list[dict[str, Any]]:
    """`TimelineService._items`: the rows behind the page's items (one query per `SOURCE_OF`,
    in the order they first appear), the activities' contacts, the items, then the names of
    who did them."""
    wanted: dict[TimelineKind, set[UUID]] = {}
    for row in rows:
        wanted.setdefault(SOURCE_OF[KIND_OF_RANK[row["kind_rank"]]], set()).add(row["item_id"])
    details: dict[TimelineKind, dict[UUID, dict[str, Any]]] = {}
    for kind, ids in wanted.items():
        found = await fetch(connection, sql.details[kind], {"ids": list(ids)})
        details[kind] = {record["id"]: dict(record) for record in found}
    activities = details.get(TimelineKind.activity)
    if activities:
        for activity in activities.values():
            activity.update(contact_ids=[], attendee_contact_ids=[])
        for link in await fetch(connection, sql.activity_contacts, {"ids": list(activities)}):
            activity = activities[link["activity_id"]]
            if link["linked"]:
                activity["contact_ids"].append(link["contact_id"])
            if link["attendee"]:
                activity["attendee_contact_ids"].append(link["contact_id"])
    items = []
    for row in rows:
        kind = KIND_OF_RANK[row["kind_rank"]]
        item = TIMELINE_ITEMS[kind](details[SOURCE_OF[kind]][row["item_id"]])
        items.append(item | {"kind": kind.value, "occurred_at": row["occurred_at"]})
    actor_ids = {item["actor"] for item in items if item["actor"] is not None}
    names = {}
    if actor_ids:
        found = await fetch(connection, sql.actors, {"ids": list(actor_ids)})
        names = {record["id"]: record["name"] for record in found}
    for item in items:
        actor = item["actor"]
        item["actor"] = {"id": actor, "name": names[actor]} if actor in names else None
    return items


FILTER_TYPES = {"owner_id": UUID, "pipeline_id": UUID, "lead_source": str}


async def metric(
    name: str,
    service: MetricsService,
    window: Window,
    given: Callable[..., dict[str, Any]],
    currency: str,
    query: Mapping[str, str],
) -> dict[str, Any] | None:
    """What crm-api's router calls for each endpoint, with the filters each one takes."""
    group = query.get("group_by")
    match name:
        case "pipeline":
            target = Decimal(query["target"]) if "target" in query else None
            return await service.pipeline(given("owner_id", "pipeline_id"), currency, target)
        case "forecast":
            return await service.forecast(window, given("owner_id", "pipeline_id"), currency)
        case "win-rate":
            return await service.win_rate(window, given("owner_id", "pipeline_id"), group)
        case "deal-size":
            filters = given("owner_id", "pipeline_id")
            return await service.deal_size(window, filters, group, currency)
        case "sales-cycle":
            return await service.sales_cycle(window, given("owner_id", "pipeline_id"), group)
        case "stage-funnel":
            stall_days = int(query.get("stall_days", 14))
            return await service.stage_funnel(window, given("owner_id", "pipeline_id"), stall_days)
        case "lead-response":
            return await service.lead_response(window, given("owner_id", "lead_source"), group)
        case "conversion-by-source":
            filters = given("owner_id", "lead_source")
            return await service.conversion_by_source(window, filters, currency)
        case "activity":
            return await service.activity(window, given("owner_id"))
        case "retention":
            return await service.retention(window, given("owner_id", "lead_source"))
        case "data-quality":
            return await service.data_quality(given("owner_id"))
    return None


async def metrics(request: Request) -> Response:
    """`GET /v1/metrics/<name>` without the API around it: the window and the currency from
    crm-api's own defaults (`get_window`, `get_currency`), then crm-api's `MetricsService` on a
    `ConnectionReader`, so the statements, their parameters and their order are crm-api's, and
    so is the body."""
    query = request.query_params
    window = await get_window(
        date.fromisoformat(query["from"]) if "from" in query else None,
        date.fromisoformat(query["to"]) if "to" in query else None,
    )
    currency = await get_currency(query.get("currency"))

    def given(*names: str) -> dict[str, Any]:
        return present(**{name: FILTER_TYPES[name](query[name]) if name in query else None
                          for name in names})  # fmt: skip

    async with request.app.state.pool.acquire() as connection:
        service = MetricsService(ConnectionReader(connection, request.app.state.sql))
        body = await metric(request.path_params["name"], service, window, given, currency, query)
    if body is None:
        return JSON({"detail": "not found"}, status_code=404)
    return JSON(body)


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/contacts/{id}", get_contact),
        Route("/contacts/{id}/timeline", contact_timeline),
        Route("/contacts", list_contacts),
        Route("/contacts", create_contact, methods=["POST"]),
        Route("/pipelines/{id}/board", pipeline_board),
        Route("/deals", list_deals),
        Route("/metrics/{name}", metrics),
    ],
    lifespan=lifespan,
)
