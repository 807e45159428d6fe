"""The bare baseline: Starlette, a raw asyncpg pool and orjson; no auth, no validation, no audit.

It serves the crm-api hot paths against the same tables with the same SQL, so crm/baseline is the
price of everything crm-api adds (auth, validation, SQLAlchemy, audit and events, middleware):

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/crm_bench BENCH_OWNER_ID=<user id> \
        .venv/bin/uvicorn baseline:app --app-dir bench --workers 2 --no-access-log --port 8200
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_api.core.ids import uuid7

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
COMPANY = "company__"
MAX_LIMIT = 500


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


async def init_connection(connection: asyncpg.Connection) -> None:
    # The same JSON codec as crm-api's raw pool, so JSONB costs the same on both sides.
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dsn = os.environ["BENCH_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    size = int(os.environ.get("BENCH_DB_POOL_SIZE", "10"))  # crm-api's default raw pool size
    async with asyncpg.create_pool(dsn, min_size=1, max_size=size, init=init_connection) as pool:
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


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/contacts/{id}", get_contact),
        Route("/contacts", list_contacts),
        Route("/contacts", create_contact, methods=["POST"]),
    ],
    lifespan=lifespan,
)
