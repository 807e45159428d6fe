"""The application factory: routers, problem handlers, middleware and lifespan."""

import asyncio
import gc
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from crm_api import __version__
from crm_api.activities.router import router as activities_router
from crm_api.audit.router import router as audit_router
from crm_api.companies.router import router as companies_router
from crm_api.config import Settings, get_settings
from crm_api.contacts.router import company_contacts_router
from crm_api.contacts.router import router as contacts_router
from crm_api.core.db import Database
from crm_api.core.docs import add_docs
from crm_api.core.errors import Busy, Conflict, DomainError, problem_response
from crm_api.core.filters import NODE_TAGS
from crm_api.core.integrity import is_foreign_key_violation, is_transient
from crm_api.core.logging import configure_logging, request_id_var
from crm_api.core.middleware import (
    AuthenticatedUploadsMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
)
from crm_api.core.migrations import head_revisions
from crm_api.core.openapi import build_openapi
from crm_api.custom_fields.router import router as custom_fields_router
from crm_api.deals.router import board_router
from crm_api.deals.router import router as deals_router
from crm_api.dedupe.router import companies_router as company_duplicates_router
from crm_api.dedupe.router import contacts_router as contact_duplicates_router
from crm_api.exports.router import router as exports_router
from crm_api.feed.router import router as events_router
from crm_api.health import router as health_router
from crm_api.idempotency.guard import Replay
from crm_api.imports.router import PREFIX as IMPORTS_PATH
from crm_api.imports.router import router as imports_router
from crm_api.metrics.router import router as metrics_router
from crm_api.pipelines.router import router as pipelines_router
from crm_api.products.router import router as products_router
from crm_api.tasks.router import router as tasks_router
from crm_api.timeline.router import router as timeline_router
from crm_api.users.auth import Authenticator
from crm_api.users.router import keys_router
from crm_api.users.router import router as users_router
from crm_api.webhooks.router import router as webhooks_router
from crm_api.worker.runner import run_worker

GC_THRESHOLD = 50_000

DESCRIPTION = """\
A headless CRM: contacts, companies, deals and activities over versioned JSON.

* Authenticate with `Authorization: Bearer <api key>`.
* Errors are RFC 9457 `application/problem+json`; 422s list every invalid field in `errors`.
* Lists are keyset-paginated: follow `next_cursor`. Reads carry `ETag`; send it back as
  `If-Match` on PATCH/DELETE to avoid overwriting someone else's change (412 if stale).
* DELETE archives; `POST …/{id}/restore` undoes it.
"""

TAGS = [
    {"name": "contacts", "description": "People."},
    {"name": "companies", "description": "Accounts, keyed by their normalized domain."},
    {"name": "deals", "description": "Deals: stage moves and history, contacts, line items."},
    {"name": "pipelines", "description": "Pipelines, their ordered stages, and the board."},
    {"name": "products", "description": "The catalog line items are priced from."},
    {
        "name": "exports",
        "description": "Whole lists of contacts, companies or deals as CSV or NDJSON, streamed.",
    },
    {"name": "activities", "description": "Calls, emails, meetings and notes."},
    {"name": "tasks", "description": "What should happen next, for whom, by when."},
    {
        "name": "metrics",
        "description": "Sales KPIs, computed in SQL; each endpoint's description defines it.",
    },
    {
        "name": "custom-fields",
        "description": "Fields admins add to contacts, companies and deals; checked on writes.",
    },
    {
        "name": "imports",
        "description": "CSV imports run by the worker in chunks, with a per-row error report.",
    },
    {"name": "users", "description": "Users and roles."},
    {"name": "api-keys", "description": "API keys: hashed, scoped, revocable."},
    {"name": "audit-log", "description": "Who changed what, before and after."},
    {
        "name": "events",
        "description": "The change feed: every committed change, in order, resumable.",
    },
    {
        "name": "webhooks",
        "description": "Signed (Standard Webhooks), retried deliveries of the feed's events.",
    },
    {"name": "health", "description": "Probes for orchestrators."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        lock_timeout_ms=settings.lock_timeout_ms,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.start()
        # Everything loaded so far (modules, models, schemas) lives as long as the process.
        # Freezing it keeps the collector from re-scanning it: full collections otherwise cost
        # ~100 ms each under load and set the p99 latency.
        gc.freeze()
        # A request's objects are freed by reference counting; the cyclic collector only
        # finds the rare cycle. At the default threshold (700 new containers) it ran dozens
        # of times per 1000-record batch, re-scanning the batch's live rows each time.
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        async with _in_process_worker(db, settings):
            yield
        await db.close()

    app = FastAPI(
        title="crm-api",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.authenticator = Authenticator(db, settings.auth_cache_ttl_seconds)
    app.state.migration_heads = head_revisions(settings.database_url)

    # Routes are matched in order: the busiest resources first.
    for router in (
        contact_duplicates_router,  # before `/{contact_id}`, which would take `duplicates`
        contacts_router,
        deals_router,
        company_duplicates_router,
        companies_router,
        company_contacts_router,
        pipelines_router,
        board_router,
        products_router,
        exports_router,
        activities_router,
        tasks_router,
        timeline_router,
        metrics_router,
        users_router,
        keys_router,
        audit_router,
        events_router,
        webhooks_router,
        custom_fields_router,
        imports_router,
        health_router,
    ):
        app.include_router(router)
    add_docs(app)
    _add_problem_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        uploads={IMPORTS_PATH: settings.import_max_bytes},
    )
    app.add_middleware(
        AuthenticatedUploadsMiddleware,
        paths=[IMPORTS_PATH],
        authenticate=app.state.authenticator.authenticate,
    )
    app.add_middleware(RequestContextMiddleware, log_requests=settings.access_log)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _in_process_worker(db: Database, settings: Settings) -> AsyncIterator[None]:
    """The embedded default runs the worker in the server process (see Settings)."""
    if not settings.in_process_worker:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(db, settings, stop), name="crm-api-worker")
    try:
        yield
    finally:
        stop.set()
        await task


def _add_problem_handlers(app: FastAPI) -> None:
    async def domain_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, DomainError)
        return problem_response(
            error.status,
            error.slug,
            error.detail,
            headers=error.headers,
            request_id=request_id_var.get(),
            **error.extra,
        )

    async def validation_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [{"field": _field(item), "message": item["msg"]} for item in error.errors()]
        return problem_response(
            422,
            "validation",
            "The request is invalid; see `errors`.",
            request_id=request_id_var.get(),
            errors=errors,
        )

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        slugs = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}
        slug = slugs.get(error.status_code, "http-error")
        detail = error.detail if isinstance(error.detail, str) else None
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names only the first matching route's methods; RFC 9110 wants them all.
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return problem_response(
            error.status_code, slug, detail, headers=headers, request_id=request_id_var.get()
        )

    async def database_error(request: Request, error: Exception) -> Response:
        # The request's transaction has rolled back by now: nothing of it was written.
        if is_transient(error):
            busy = Busy(
                "The database gave up on this request because of concurrent writes (a deadlock, "
                "or a lock held past the lock timeout). Nothing was written; retry it."
            )
            return await domain_error(request, busy)
        if is_foreign_key_violation(error):
            gone = Conflict(
                "A record this request refers to was removed while it ran. Nothing was written."
            )
            return await domain_error(request, gone)
        raise error  # a 500, from the request-context middleware

    async def replay(_: Request, error: Exception) -> Response:
        assert isinstance(error, Replay)
        return error.response()

    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(asyncpg.PostgresError, database_error)
    app.add_exception_handler(Replay, replay)
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def _field(error: Mapping[str, Any]) -> str:
    if error["type"] == "json_invalid":
        return "body"  # the location pydantic gives is a character offset, not a field
    # A search filter's node kinds name union branches, not fields: they stay out of paths.
    return ".".join(str(part) for part in error["loc"] if part not in NODE_TAGS)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods the OpenAPI document declares for the request's path."""
    methods: set[str] = set()
    for pattern, declared in _path_methods(app):
        if pattern.fullmatch(request.url.path):
            methods |= declared
    return sorted(methods)


def _path_methods(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    cached: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "path_methods", None)
    if cached is None:
        cached = [
            (
                re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path))),
                {m.upper() for m in item},
            )
            for path, item in app.openapi()["paths"].items()
        ]
        app.state.path_methods = cached
    return cached


def create_app_from_env() -> FastAPI:
    """The uvicorn factory (`crm_api.app:create_app_from_env`): configures logging first."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
