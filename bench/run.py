"""Benchmark crm-api against a bare Starlette + asyncpg baseline with wrk, on one dataset.

    .venv/bin/python bench/run.py                     # 1M contacts and 1M deals, fresh database
    .venv/bin/python bench/run.py --contacts 50000 --deals 100000   # a quick run
    .venv/bin/python bench/run.py --reuse             # keep the data of a previous run
    .venv/bin/python bench/run.py --only board,list_stage_amount    # the deal scenarios only
    .venv/bin/python bench/run.py --reuse --only timeline_first,timeline_deep   # the timeline
    .venv/bin/python bench/run.py --reuse --only metrics      # every /v1/metrics/* scenario

See bench/README.md for what each scenario measures and how the ratios are computed.
"""

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import generate
import profile_summary
from load import DEFAULT_TIMEOUT, ForeignCpu, Load, Measurement, run_wrk, wait_for_quiet
from metrics_scenarios import CONNECTIONS as METRICS_CONNECTIONS
from metrics_scenarios import METRICS, METRICS_KEYS
from metrics_scenarios import TIMEOUT as METRICS_TIMEOUT
from report import Report, render
from servers import Server, http, running

from crm_api.core.ids import utcnow
from crm_api.core.listing import decode_cursor, encode_cursor
from crm_api.metrics.params import DEFAULT_DAYS
from crm_api.timeline.repository import CURSOR_KEY, RANK, TimelineKind

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent  # crm-api, uvicorn and py-spy live beside this python
ADMIN_EMAIL = "bench-admin@bench.example"
DEEP_FRACTION = 0.9  # the deep page starts after 90% of the live contacts
LIST_STAGE = "Proposal"  # the stage of the default pipeline whose open deals are listed
BOARD_DEALS = 20  # crm-api's default deals per board column
SCENARIO_KEYS = ("get_one", "list_first", "list_deep", "board", "list_stage_amount",
                 "timeline_first", "timeline_deep", *METRICS_KEYS, "post")  # fmt: skip
ONLY_GROUPS = {"metrics": METRICS_KEYS}  # `--only metrics`: every metrics scenario
TIMELINE_PAGE = 50  # items per measured timeline page
TIMELINE_WALK_PAGE = 500  # crm-api's largest page: the walk to the deep cursor takes 30 of them
MIN_IDLE = 0.85  # between runs (servers idle), less idle CPU than this means another job runs
MAX_FOREIGN_CPU = 0.05  # a run during which other processes used more CPU than this is redone
MIN_SAMPLES = 10  # requests a metrics run should see at least: its duration grows to allow them
# Requests (of one at a time) a metrics warm-up lasts for: each pooled connection of each worker
# has then run every statement more than five times, and PostgreSQL has settled on its cached
# plan for it (a generic plan, often), as on a server that has been up for a while.
WARM_REQUESTS = 12
MAX_DURATION = 180  # seconds: the longest a measured run is made to last


@dataclass(frozen=True)
class Config:
    server_url: str
    db_name: str
    contacts: int
    companies: int
    deals: int
    timeline_items: int
    activities: int
    reuse: bool
    duration: int
    warmup: int
    threads: int
    connections: int
    metrics_connections: int
    workers: int
    crm_port: int
    baseline_port: int
    access_log: bool
    pool_size: int | None
    sample_ids: int
    rounds: int
    quiet_wait: int
    retries: int
    profile: str
    only: frozenset[str]
    out_dir: Path

    def dsn(self, database: str) -> str:
        return f"{self.server_url}/{database}"

    @property
    def crm_database_url(self) -> str:
        return self.dsn(self.db_name).replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    script: str
    crm_path: str
    baseline_path: str
    expected_status: int = 200
    same_body: bool = False
    """Both servers must answer with the same JSON (they read the same rows the same way)."""
    wrk_timeout: int = DEFAULT_TIMEOUT
    """Seconds before wrk counts a response as timed out (an error that flags the run)."""
    connections: int | None = None
    """wrk connections (with one thread) instead of the run's `--connections`."""


@dataclass(frozen=True)
class SalesPipeline:
    """The default pipeline: its id, its stages in order as (id, name, kind), and the stage
    whose open deals `list_stage_amount` lists."""

    id: str
    stages: tuple[tuple[str, str, str], ...]
    list_stage_id: str


@dataclass(frozen=True)
class Timeline:
    """The contact with the long timeline, and its items in the order crm-api must show them:
    (kind, id) pairs, newest first, read straight from the tables (not through crm-api)."""

    contact_id: str
    items: tuple[tuple[str, str], ...]
    deep_offset: int
    """Items before the deep page: its first item is item deep_offset + 1 (1-based)."""
    deep_last: tuple[datetime, int, UUID]
    """(occurred_at, kind rank, id) of item deep_offset: what crm-api's cursor to the deep
    page must carry."""
    deep_cursor: str = ""
    """crm-api's own `next_cursor` after walking deep_offset items (set once crm-api is up)."""
    problem: str | None = None
    """What went wrong on the walk, if anything: the timeline scenarios then fail."""


@dataclass(frozen=True)
class Fixtures:
    """What the scenarios need from the database, found once before any load is sent."""

    api_key: str
    live_contacts: int
    ids_file: Path
    sample_id: str
    deep_offset: int
    """Rows before the deep page: its first item is row deep_offset + 1 (1-based)."""
    deep_cursor: str
    deep_after: tuple[str, str]
    deep_first_id: str
    live_deals: int
    sales: SalesPipeline
    metrics_data: dict[str, int]
    """What the metrics' default window holds, and how many reps own the deals."""
    timeline: Timeline | None
    """None if no contact has a timeline (`--timeline-items 0` on a fresh database)."""


class ScenarioError(Exception):
    pass


# -- the database ----------------------------------------------------------------------------


# Each part of the dataset, and how to tell the database has it.
STORED = {
    "contacts": "SELECT EXISTS (SELECT FROM contacts)",
    "deals": "SELECT EXISTS (SELECT FROM deals)",
    # The timeline goes to one contact (`generate.RESERVED_CONTACT`), which no other part touches.
    "timeline": "SELECT EXISTS (SELECT FROM activity_contacts WHERE contact_id ="
    f" ({generate.RESERVED_CONTACT}))",
    # Every other live contact has a history (lifecycle changes and activities).
    "history": f"SELECT NOT EXISTS (SELECT {generate.HISTORYLESS})",
}


async def stored_data(config: Config) -> set[str]:
    """Which of contacts, deals, a timeline and the contacts' history the database holds."""
    try:
        conn = await asyncpg.connect(config.dsn(config.db_name))
    except asyncpg.InvalidCatalogNameError:
        return set()
    found = set()
    try:
        for part, query in STORED.items():
            try:
                if await conn.fetchval(query):
                    found.add(part)
            except asyncpg.UndefinedTableError:
                pass  # migrated before the table existed: `migrate` adds it
    finally:
        await conn.close()
    return found


async def recreate_database(config: Config) -> None:
    conn = await asyncpg.connect(config.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{config.db_name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{config.db_name}"')
    finally:
        await conn.close()


def crm_cli(config: Config, *args: str) -> str:
    """Runs `crm-api <args>` against the bench database; returns its last line of output."""
    env = {**os.environ, "CRM_DATABASE_URL": config.crm_database_url}
    command = [str(VENV_BIN / "crm-api"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"crm-api {args[0]} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


async def find_user(config: Config, email: str) -> str | None:
    conn = await asyncpg.connect(config.dsn(config.db_name))
    try:
        found = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
    finally:
        await conn.close()
    return str(found) if found else None


def admin_user(config: Config) -> str:
    """The bench admin's id; created through the app's own CLI the first time."""
    found = asyncio.run(find_user(config, ADMIN_EMAIL))
    if found:
        return found
    args = ["create-user", "--email", ADMIN_EMAIL, "--name", "Bench Admin", "--role", "admin"]
    return crm_cli(config, *args)


def prepare_database(config: Config, report: Report) -> tuple[str, str]:
    """A migrated database with data (fresh, or reused); returns (admin user id, API key).
    A reused database without deals, a timeline or the contacts' history (made before they were
    benchmarked) gets them."""
    stored = asyncio.run(stored_data(config))
    reuse = config.reuse and "contacts" in stored
    if not reuse:
        print(f"creating database {config.db_name}", flush=True)
        asyncio.run(recreate_database(config))
    # On a reused database at head this is a no-op; one that is behind gets migrated.
    crm_cli(config, "migrate")
    owner_id = admin_user(config)
    api_key = crm_cli(config, "create-api-key", "--email", ADMIN_EMAIL, "--name", "bench")
    report.dataset["generated"] = not reuse
    if reuse:
        print(f"reusing the data in {config.db_name}", flush=True)
    contacts, companies = (0, 0) if reuse else (config.contacts, config.companies)
    deals = 0 if reuse and "deals" in stored else config.deals
    timeline = 0 if reuse and "timeline" in stored else config.timeline_items
    # Fresh contacts come with their history; contacts loaded before it existed get theirs.
    activities = 0 if reuse and "history" in stored else config.activities
    if contacts or companies or deals or timeline or activities:
        load_data(config, report, (contacts, companies, deals, timeline, activities), owner_id)
    return owner_id, api_key


def load_data(
    config: Config, report: Report, counts: tuple[int, int, int, int, int], owner_id: str
) -> None:
    contacts, companies, deals, timeline, activities = counts
    history = "with their history" if contacts else "the existing contacts' history"
    print(
        f"generating {contacts:,} contacts, {companies:,} companies, {deals:,} deals, "
        f"a timeline of {timeline:,} items, {activities:,} activities ({history})",
        flush=True,
    )
    url, owner = config.crm_database_url, UUID(owner_id)
    timing = asyncio.run(
        generate.generate(
            url, contacts, companies, owner, deals=deals, timeline_items=timeline,
            activities=activities,
        )
    )  # fmt: skip
    report.dataset["generate_seconds"] = round(timing["total_s"], 1)
    for part in ("contacts", "deals", "timeline", "history"):
        report.dataset[f"generate_{part}_seconds"] = round(timing[f"{part}_s"], 1)
    print(
        f"data generated in {timing['total_s']:.1f}s ({generate.describe(timing)}, then VACUUM "
        "ANALYZE)",
        flush=True,
    )


async def find_sales_pipeline(conn: asyncpg.Connection) -> SalesPipeline:
    pipeline_id = await conn.fetchval("SELECT id FROM pipelines WHERE is_default")
    stages = await conn.fetch(
        "SELECT id, name, kind FROM pipeline_stages WHERE pipeline_id = $1 ORDER BY position, id",
        pipeline_id,
    )
    listed = [row["id"] for row in stages if row["name"] == LIST_STAGE and row["kind"] == "open"]
    if not listed:
        raise SystemExit(f"the default pipeline has no open stage named {LIST_STAGE!r}")
    return SalesPipeline(
        id=str(pipeline_id),
        stages=tuple((str(row["id"]), row["name"], row["kind"]) for row in stages),
        list_stage_id=str(listed[0]),
    )


async def find_fixtures(config: Config, api_key: str) -> Fixtures:
    """Sampled ids, the row at 90% of the created_at order with the cursor just before it, and
    the default pipeline's stages."""
    conn = await asyncpg.connect(config.dsn(config.db_name))
    try:
        live = await conn.fetchval("SELECT count(*) FROM contacts WHERE archived_at IS NULL")
        ids = await conn.fetch(
            "SELECT id FROM contacts WHERE archived_at IS NULL ORDER BY random() LIMIT $1",
            config.sample_ids,
        )
        # For 1M contacts: the cursor is the 900,000th row, the page starts at row 900,001.
        offset = max(0, int(live * DEEP_FRACTION) - 1)
        cursor_row, first_row = await conn.fetch(
            "SELECT created_at, id FROM contacts WHERE archived_at IS NULL"
            " ORDER BY created_at, id OFFSET $1 LIMIT 2",
            offset,
        )
        live_deals = await conn.fetchval("SELECT count(*) FROM deals WHERE archived_at IS NULL")
        sales = await find_sales_pipeline(conn)
        timeline = await find_timeline(conn)
        metrics_data = dict(await conn.fetchrow(METRICS_DATA, DEFAULT_DAYS - 1))
    finally:
        await conn.close()
    ids_file = config.out_dir / "ids.lua"
    ids_file.write_text("return {\n" + "".join(f'"{row["id"]}",\n' for row in ids) + "}\n")
    created_at, contact_id = cursor_row["created_at"], cursor_row["id"]
    return Fixtures(
        api_key=api_key,
        live_contacts=live,
        ids_file=ids_file,
        sample_id=str(ids[0]["id"]),
        deep_offset=offset + 1,
        # Built exactly as crm-api builds `next_cursor` from the last row of a page.
        deep_cursor=encode_cursor("created_at", [created_at, contact_id]),
        deep_after=(created_at.isoformat(), str(contact_id)),
        deep_first_id=str(first_row["id"]),
        live_deals=live_deals,
        sales=sales,
        timeline=timeline,
        metrics_data=metrics_data,
    )


# What the metrics read, in their default window (the last 90 days, today included).
METRICS_DATA = """
WITH w AS (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                  - make_interval(days => $1) AS start)
SELECT
    (SELECT count(*) FROM deals, w WHERE archived_at IS NULL AND closed_at >= w.start)
        AS deals_closed_in_window,
    (SELECT count(*) FROM deals, w WHERE archived_at IS NULL AND created_at >= w.start)
        AS deals_created_in_window,
    (SELECT count(DISTINCT owner_id) FROM deals) AS deal_owners,
    (SELECT count(*) FROM contacts, w WHERE archived_at IS NULL AND created_at >= w.start)
        AS contacts_created_in_window,
    (SELECT count(*) FROM activities) AS activities,
    (SELECT count(*) FROM activities, w WHERE archived_at IS NULL AND occurred_at >= w.start)
        AS activities_in_window,
    (SELECT count(*) FROM contact_lifecycle_changes) AS lifecycle_changes
"""


# Every item of a contact's timeline, in the order the issue specifies (newest first; at one
# instant the higher kind rank first, then the higher id), written from the tables' meaning
# rather than from crm-api's statement, so the walk below checks crm-api against it.
TIMELINE_ITEMS = f"""
SELECT occurred_at, kind_rank, item_id FROM (
    SELECT occurred_at, {RANK[TimelineKind.activity]} AS kind_rank, activity_id AS item_id
        FROM activity_contacts WHERE contact_id = $1 AND live
    UNION ALL SELECT created_at, {RANK[TimelineKind.task_created]}, id
        FROM tasks WHERE contact_id = $1 AND archived_at IS NULL
    UNION ALL SELECT completed_at, {RANK[TimelineKind.task_completed]}, id
        FROM tasks WHERE contact_id = $1 AND archived_at IS NULL AND completed_at IS NOT NULL
    UNION ALL SELECT changed_at, {RANK[TimelineKind.lifecycle_changed]}, id
        FROM contact_lifecycle_changes WHERE contact_id = $1
    UNION ALL SELECT occurred_at, {RANK[TimelineKind.field_changed]}, id
        FROM audit_log WHERE entity_type = 'contact' AND entity_id = $1 AND action = 'updated'
) AS items ORDER BY occurred_at DESC, kind_rank DESC, item_id DESC
"""
KIND_OF = {rank: kind.value for kind, rank in RANK.items()}


async def find_timeline(conn: asyncpg.Connection) -> Timeline | None:
    """The contact the generator gave the timeline to (`generate.RESERVED_CONTACT`), its items
    in order, and the item the deep page follows: at 75% (item 15,000 of 20,000)."""
    contact_id = await conn.fetchval(generate.RESERVED_CONTACT)
    if contact_id is None or not await conn.fetchval(STORED["timeline"]):
        return None
    rows = await conn.fetch(TIMELINE_ITEMS, contact_id)
    offset = int(len(rows) * generate.TIMELINE_DEEP_FRACTION)
    last = rows[offset - 1]
    return Timeline(
        contact_id=str(contact_id),
        items=tuple((KIND_OF[row["kind_rank"]], str(row["item_id"])) for row in rows),
        deep_offset=offset,
        deep_last=(last["occurred_at"], last["kind_rank"], last["item_id"]),
    )


def walk_timeline(server: Server, api_key: str, timeline: Timeline) -> Timeline:
    """Pages through crm-api's timeline (500 items a page) with its own `next_cursor`s until
    `deep_offset` items were shown; the last cursor is the deep page's. Every item shown must be
    the expected one: none skipped, none repeated, ties included."""
    headers = {"Authorization": f"Bearer {api_key}"}
    path = f"{server.base_url}/v1/contacts/{timeline.contact_id}/timeline"
    shown: list[tuple[str, str]] = []
    cursor = None
    while len(shown) < timeline.deep_offset:
        left = timeline.deep_offset - len(shown)
        query: dict[str, Any] = {"limit": min(TIMELINE_WALK_PAGE, left)}
        if cursor:
            query["cursor"] = cursor
        status, content = http("GET", f"{path}?{urllib.parse.urlencode(query)}", headers)
        if status != 200:
            problem = f"walking the timeline: HTTP {status} after {len(shown):,} items"
            return replace(timeline, problem=problem)
        page = json.loads(content)
        shown += [(item["kind"], item["id"]) for item in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    expected = list(timeline.items[: timeline.deep_offset])
    if shown != expected:
        pairs = zip(shown, expected, strict=False)
        at = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(shown), len(expected)))
        problem = (
            f"walking crm-api's timeline {TIMELINE_WALK_PAGE} at a time: item {at + 1:,} is "
            f"{shown[at] if at < len(shown) else None}, expected "
            f"{expected[at] if at < len(expected) else None} ({len(shown):,} items shown)"
        )
        return replace(timeline, problem=problem)
    carried = decode_cursor(cursor, "timeline", CURSOR_KEY) if cursor else None
    if carried != list(timeline.deep_last):
        problem = f"crm-api's cursor after item {timeline.deep_offset:,} carries {carried}"
        return replace(timeline, problem=problem)
    return replace(timeline, deep_cursor=cursor or "")


# -- scenarios -------------------------------------------------------------------------------


def scenarios(fixtures: Fixtures, metrics_connections: int) -> list[Scenario]:
    """Every scenario the dataset allows, in the order they run (POST last)."""
    deep_crm = urllib.parse.urlencode({"limit": 50, "cursor": fixtures.deep_cursor})
    after_created_at, after_id = fixtures.deep_after
    deep_base = urllib.parse.urlencode(
        {"limit": 50, "after_created_at": after_created_at, "after_id": after_id}
    )
    deep = f"list 50, after row {fixtures.deep_offset:,}"
    board = f"/pipelines/{fixtures.sales.id}/board"
    stage_list = urllib.parse.urlencode(
        {"stage_id": fixtures.sales.list_stage_id, "status": "open", "sort": "-amount", "limit": 50}
    )
    return [
        # The contact reads run crm-api's own statements on both sides: equal bodies.
        Scenario("get_one", "GET one contact", "get_one.lua", "/v1/contacts/", "/contacts/",
                 same_body=True),
        Scenario("list_first", "list 50, first page", "static.lua",
                 "/v1/contacts?limit=50", "/contacts?limit=50", same_body=True),
        Scenario("list_deep", deep, "static.lua", f"/v1/contacts?{deep_crm}",
                 f"/contacts?{deep_base}", same_body=True),
        # At 1M deals a board costs ~150 ms of database time: 32 connections queue for
        # seconds, which is the measurement, not a failure.
        Scenario("board", "board, Sales pipeline", "static.lua", f"/v1{board}", board,
                 same_body=True, wrk_timeout=30),
        Scenario("list_stage_amount", f"list 50 {LIST_STAGE} by -amount", "static.lua",
                 f"/v1/deals?{stage_list}", f"/deals?{stage_list}", same_body=True),
        *timeline_scenarios(fixtures.timeline),
        *metrics_scenarios(metrics_connections),
        Scenario("post", "POST create contact", "post_contact.lua", "/v1/contacts", "/contacts",
                 expected_status=201),
    ]  # fmt: skip


def timeline_scenarios(timeline: Timeline | None) -> list[Scenario]:
    """The first page of the long timeline, and the page after item 15,000 (of 20,000)."""
    if timeline is None:
        return []
    path = f"/contacts/{timeline.contact_id}/timeline"
    at, rank, item_id = timeline.deep_last
    deep_crm = urllib.parse.urlencode({"limit": TIMELINE_PAGE, "cursor": timeline.deep_cursor})
    deep_base = urllib.parse.urlencode({"limit": TIMELINE_PAGE, "after_occurred_at": at.isoformat(),
                                        "after_rank": rank, "after_id": item_id})  # fmt: skip
    size = f"{len(timeline.items):,} items"
    return [
        Scenario("timeline_first", f"timeline 50, first page of {size}", "static.lua",
                 f"/v1{path}?limit={TIMELINE_PAGE}", f"{path}?limit={TIMELINE_PAGE}",
                 same_body=True),
        Scenario("timeline_deep", f"timeline 50, after item {timeline.deep_offset:,}",
                 "static.lua", f"/v1{path}?{deep_crm}", f"{path}?{deep_base}", same_body=True),
    ]  # fmt: skip


def metrics_scenarios(connections: int) -> list[Scenario]:
    """Each `/v1/metrics/*` endpoint with crm-api's defaults, and its baseline: crm-api's own
    `MetricsService` on the same SQL run raw. A request is tens to hundreds of milliseconds of
    database time: two connections, so that p50 is one request's latency, not a queue."""
    return [
        Scenario(metric.key, metric.name, "static.lua", f"/v1/metrics/{metric.path}",
                 f"/metrics/{metric.path}", same_body=True, wrk_timeout=METRICS_TIMEOUT,
                 connections=connections)
        for metric in METRICS
    ]  # fmt: skip


def preflight(scenario: Scenario, server: Server, fixtures: Fixtures, path: str) -> Any:
    """One request like the load will send, checked: a benchmark of error responses (or of
    the wrong data) is worthless. Returns the response's JSON."""
    headers = {"Authorization": f"Bearer {fixtures.api_key}", "Content-Type": "application/json"}
    body = None
    if scenario.key == "get_one":
        path += fixtures.sample_id
    if scenario.key == "post":
        email = f"preflight-{secrets.token_hex(6)}@bench-post.example"
        body = json.dumps({"first_name": "Bench", "last_name": "Post", "email": email}).encode()
    url, timeout = server.base_url + path, scenario.wrk_timeout
    try:
        status, content = http("POST" if body else "GET", url, headers, body, timeout)
    except OSError as error:  # no answer within the scenario's timeout, or none at all
        raise ScenarioError(f"{server.name}: {error!r} after {timeout}s at most") from error
    if status != scenario.expected_status:
        raise ScenarioError(
            f"{server.name}: HTTP {status}: {content[:300].decode(errors='replace')}"
        )
    document = json.loads(content)
    check = BODY_CHECKS.get(scenario.key)
    problem = check(document, fixtures) if check else None
    if problem:
        raise ScenarioError(f"{server.name}: {problem}")
    return document


def check_get_one(contact: Any, fixtures: Fixtures) -> str | None:
    if contact["id"] != fixtures.sample_id:
        return f"returned contact {contact['id']}, not {fixtures.sample_id}"
    return None


def check_deep_page(page: Any, fixtures: Fixtures) -> str | None:
    first, size = page["data"][0]["id"], len(page["data"])
    if first != fixtures.deep_first_id or size != 50:
        return (
            f"the page starts at {first} with {size} items, expected "
            f"row {fixtures.deep_offset + 1:,} ({fixtures.deep_first_id}) and 50"
        )
    return None


def check_timeline_page(page: Any, fixtures: Fixtures, offset: int) -> str | None:
    """Items offset + 1 to offset + 50 of the timeline, in order, and a cursor to more."""
    timeline = fixtures.timeline
    if timeline is None:
        return "no contact has a timeline"
    if timeline.problem:
        return timeline.problem
    shown = [(item["kind"], item["id"]) for item in page["data"]]
    expected = list(timeline.items[offset : offset + TIMELINE_PAGE])
    if shown != expected:
        first = shown[0] if shown else None
        return (
            f"{len(shown)} items starting with {first}, expected items {offset + 1:,}-"
            f"{offset + len(expected):,} starting with {expected[0] if expected else None}"
        )
    if page["next_cursor"] is None and offset + TIMELINE_PAGE < len(timeline.items):
        return "no next_cursor"
    return None


def check_timeline_first(page: Any, fixtures: Fixtures) -> str | None:
    return check_timeline_page(page, fixtures, 0)


def check_timeline_deep(page: Any, fixtures: Fixtures) -> str | None:
    """The page after item 15,000: items 15,001-15,050."""
    timeline = fixtures.timeline
    return check_timeline_page(page, fixtures, timeline.deep_offset if timeline else 0)


def check_deals(deals: list[Any], stage_id: str, sizes: range) -> str | None:
    """Deals of one stage, all open, by amount descending, as many as one of `sizes`."""
    if len(deals) not in sizes:
        return f"{len(deals)} deals, expected {sizes.start}-{sizes.stop - 1}"
    if any(deal["stage_id"] != stage_id or deal["status"] != "open" for deal in deals):
        return f"a deal not open in stage {stage_id}"
    amounts = [Decimal(deal["amount"]) for deal in deals]
    if amounts != sorted(amounts, reverse=True):
        return f"amounts not in descending order: {amounts}"
    return None


def check_board(board: Any, fixtures: Fixtures) -> str | None:
    """The default pipeline's stages in order; open ones with their top deals, closed ones
    with none."""
    columns = board["stages"]
    found = [(column["stage"]["id"], column["stage"]["name"]) for column in columns]
    expected = [(stage_id, name) for stage_id, name, _ in fixtures.sales.stages]
    if found != expected:
        return f"stages {found}, expected {expected}"
    for column, (stage_id, name, kind) in zip(columns, fixtures.sales.stages, strict=True):
        deals = column["deals"]
        if kind != "open":
            problem = f"{len(deals)} deals shown in a closed stage" if deals else None
        else:
            problem = check_deals(deals, stage_id, range(1, BOARD_DEALS + 1))
        if problem:
            return f"stage {name}: {problem}"
    return None


def check_stage_page(page: Any, fixtures: Fixtures) -> str | None:
    return check_deals(page["data"], fixtures.sales.list_stage_id, range(50, 51))


def check_window(body: Any) -> str | None:
    """crm-api's default window: the last 90 days, today (UTC) included."""
    last = utcnow().date()
    expected = {"from": str(last - timedelta(days=DEFAULT_DAYS - 1)), "to": str(last)}
    found = {key: body.get(key) for key in expected}
    return None if found == expected else f"window {found}, expected {expected}"


def has_data(*figures: str) -> Callable[[Any, Fixtures], str | None]:
    """A metrics body in the default window (unless a snapshot) whose `figures` (dotted paths)
    are not all zero: a benchmark of empty metrics (a dataset without the data they read)
    would measure nothing."""

    def check(body: Any, fixtures: Fixtures) -> str | None:
        if "to" in body and (problem := check_window(body)):
            return problem
        for figure in figures:
            value = body
            for name in figure.split("."):
                value = value[int(name)] if isinstance(value, list) else value[name]
            if not value:
                return f"{figure} is {value!r}: no data for this metric in the dataset"
        return None

    return check


METRICS_CHECKS = {
    "metrics_pipeline": has_data("deals", "pipelines"),
    "metrics_forecast": has_data("totals.won_deals", "totals.open_deals", "months"),
    "metrics_win_rate": has_data("won", "lost"),
    "metrics_win_rate_by_owner": has_data("won", "lost", "groups"),
    "metrics_deal_size": has_data("deals", "median"),
    "metrics_sales_cycle": has_data("deals", "median_days"),
    "metrics_stage_funnel": has_data("deals", "stages.0.reached", "stages.0.visits"),
    "metrics_lead_response": has_data("contacts", "contacted", "never_contacted", "median_hours"),
    "metrics_conversion_by_source": has_data("totals.contacts", "totals.converted", "sources"),
    "metrics_activity": has_data("totals.total", "weeks"),
    "metrics_retention": has_data("customers_at_start"),
    "metrics_data_quality": has_data("objects.0.records", "objects.2.records", "completeness"),
}  # fmt: skip
BODY_CHECKS: dict[str, Callable[[Any, Fixtures], str | None]] = {
    "get_one": check_get_one,
    "list_deep": check_deep_page,
    "board": check_board,
    "list_stage_amount": check_stage_page,
    "timeline_first": check_timeline_first,
    "timeline_deep": check_timeline_deep,
    **METRICS_CHECKS,
}


def first_difference(crm: Any, baseline: Any, where: str = "") -> str | None:
    """Where two JSON documents first differ (None if they are equal)."""
    if isinstance(crm, dict) and isinstance(baseline, dict):
        for key in sorted(crm.keys() | baseline.keys()):
            if key not in crm or key not in baseline:
                return f"{where}.{key} is on one side only"
            found = first_difference(crm[key], baseline[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(crm, list) and isinstance(baseline, list) and len(crm) == len(baseline):
        for index, (left, right) in enumerate(zip(crm, baseline, strict=True)):
            found = first_difference(left, right, f"{where}[{index}]")
            if found:
                return found
        return None
    if crm == baseline:
        return None
    return f"{where or 'body'}: crm {crm!r:.120}, baseline {baseline!r:.120}"


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Bench:
    """Both servers up, the data found: runs scenarios and fills the report."""

    config: Config
    load: Load
    fixtures: Fixtures
    crm: Server
    baseline: Server
    report: Report

    def is_ours(self, group: int, cmdline: str) -> bool:
        """The benchmark's processes: servers, wrk, this runner, PostgreSQL serving our
        database and PostgreSQL's shared background processes (WAL writer, checkpointer)."""
        servers = {server.process.pid for server in (self.crm, self.baseline) if server.process}
        if group in servers or group == os.getpgrp() or cmdline.startswith("wrk "):
            return True
        backend = cmdline.startswith("postgres:") and ("(" in cmdline or "[local]" in cmdline)
        return f" {self.config.db_name} " in cmdline if backend else True

    def run_scenario(self, scenario: Scenario) -> None:
        try:
            # Requests still running from the scenario before (wrk does not wait for them)
            # would slow down the first one.
            wait_for_quiet(MIN_IDLE, self.config.quiet_wait)
            started = time.perf_counter()
            crm_body = preflight(scenario, self.crm, self.fixtures, scenario.crm_path)
            middle = time.perf_counter()
            base_body = preflight(scenario, self.baseline, self.fixtures, scenario.baseline_path)
            latency = max(middle - started, time.perf_counter() - middle)
            difference = scenario.same_body and first_difference(crm_body, base_body)
            if difference:
                raise ScenarioError(f"crm-api and the baseline answer differently: {difference}")
        except ScenarioError as error:
            print(f"  !!! {scenario.name}: {error}", flush=True)
            self.report.fail(scenario.key, scenario.name, str(error))
            return
        timing = self.timing(scenario, latency)
        runs: dict[str, list[Measurement]] = {"crm": [], "baseline": []}
        for number in range(self.config.rounds):
            # Alternating the servers round by round spreads a shared host's slow spells.
            for server, path in (
                (self.crm, scenario.crm_path),
                (self.baseline, scenario.baseline_path),
            ):
                warmup = timing[0] if number == 0 else 0
                runs[server.name].append(self.measure(scenario, server, path, warmup, timing[1]))
        self.report.add(scenario.key, scenario.name, runs["crm"], runs["baseline"])
        self.report.results[scenario.key]["seconds"] = {"warmup": timing[0], "measured": timing[1]}
        for server, results in runs.items():
            for result in results:
                if result.foreign_cpu > MAX_FOREIGN_CPU:
                    self.report.problems.append(
                        f"{server} / {scenario.name}: other processes used "
                        f"{result.foreign_cpu:.0%} of the CPUs during the run"
                    )

    def timing(self, scenario: Scenario, latency: float) -> tuple[int, int]:
        """Seconds of warm-up and of measurement per run: `--warmup` and `--duration`, longer
        for a scenario with its own connections (the metrics) whose one request (`latency`,
        the slower server's in the check before the load) is so slow that the run would not
        see `MIN_SAMPLES` requests, nor the warm-up `WARM_REQUESTS`."""
        config = self.config
        if scenario.connections is None:
            return config.warmup, config.duration
        measured = max(config.duration, min(MAX_DURATION, math.ceil(latency * MIN_SAMPLES)))
        warmup = math.ceil(latency * WARM_REQUESTS)
        warmup = max(config.warmup, min(MAX_DURATION, warmup)) if config.warmup else 0
        if (warmup, measured) != (config.warmup, config.duration):
            print(
                f"  ({scenario.name}: {latency:.1f}s per request: {warmup}s of warm-up, "
                f"{measured}s measured)",
                flush=True,
            )
        return warmup, measured

    def measure(
        self, scenario: Scenario, server: Server, path: str, warmup: int, duration: int
    ) -> Measurement:
        """Warm-up, then the measured run; again if other processes took CPU meanwhile."""
        config, url = self.config, server.base_url + path
        wait_for_quiet(MIN_IDLE, config.quiet_wait)
        wrk = (scenario.script, url)
        options = {"timeout": scenario.wrk_timeout, "connections": scenario.connections}
        if warmup:
            run_wrk(self.load, *wrk, warmup, **options)
        for attempt in range(config.retries + 1):
            with ForeignCpu(self.is_ours) as foreign:
                result = run_wrk(self.load, *wrk, duration, **options)
            result.foreign_cpu = round(foreign.share, 3)
            if result.foreign_cpu <= MAX_FOREIGN_CPU or attempt == config.retries:
                break
            print(
                f"  ({server.name}: other processes took {foreign.share:.0%} of the CPUs;"
                " measuring again when they are idle)",
                flush=True,
            )
            wait_for_quiet(MIN_IDLE, config.quiet_wait)
        print(
            f"  {server.name:8} {scenario.name:32} {result.rps:8,.1f} req/s"
            f"  p50 {result.p50_us / 1000:7.2f} ms  p99 {result.p99_us / 1000:7.2f} ms"
            f"  (other processes: {result.foreign_cpu:.0%} CPU)",
            flush=True,
        )
        return result

    def profile(self, scenario: Scenario) -> str:
        """An extra load of `scenario` on crm with py-spy on every worker; the top frames."""
        py_spy, config = VENV_BIN / "py-spy", self.config
        if not py_spy.exists():
            return f"py-spy not installed: {VENV_BIN / 'pip'} install py-spy"
        recorders, outputs = [], []
        for pid in self.crm.worker_pids():
            output = config.out_dir / f"py-spy-{scenario.key.replace('_', '-')}-{pid}.txt"
            # --gil: sample the thread running Python, not idle thread-pool threads.
            record = f"record --pid {pid} --duration {config.duration} --rate 250 --gil"
            command = [str(py_spy), *record.split(), "--format", "raw", "--nolineno"]
            command += ["-o", str(output)]
            recorders.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            outputs.append(output)
        try:
            url = self.crm.base_url + scenario.crm_path
            run_wrk(
                self.load, scenario.script, url, config.duration, scenario.wrk_timeout,
                scenario.connections,
            )  # fmt: skip
        finally:
            for recorder in recorders:
                recorder.wait(timeout=config.duration + 60)
        stacks = profile_summary.read_collapsed(path for path in outputs if path.exists())
        return profile_summary.render(stacks, top=25)


# -- main ------------------------------------------------------------------------------------


def crm_server(config: Config) -> Server:
    env = {
        "CRM_DATABASE_URL": config.crm_database_url,
        "CRM_ACCESS_LOG": str(config.access_log).lower(),
    }
    if config.pool_size:
        env["CRM_DB_POOL_SIZE"] = str(config.pool_size)
    args = f"serve --host 127.0.0.1 --port {config.crm_port} --workers {config.workers}"
    command = [str(VENV_BIN / "crm-api"), *args.split()]
    return Server("crm", command, env, config.crm_port, config.out_dir / "crm.log")


def baseline_server(config: Config, owner_id: str) -> Server:
    env = {"BENCH_DATABASE_URL": config.dsn(config.db_name), "BENCH_OWNER_ID": owner_id}
    if config.pool_size:
        env["BENCH_DB_POOL_SIZE"] = str(config.pool_size)
    args = (
        f"baseline:app --app-dir {BENCH_DIR} --host 127.0.0.1 --port {config.baseline_port}"
        f" --workers {config.workers} --no-access-log --log-level warning"
    )
    command = [str(VENV_BIN / "uvicorn"), *args.split()]
    return Server("baseline", command, env, config.baseline_port, config.out_dir / "baseline.log")


def run(config: Config) -> int:
    config_json = {**asdict(config), "out_dir": str(config.out_dir)}
    report = Report(started_at=datetime.now(UTC).isoformat(), config=config_json)
    report.dataset["source"] = source_state()
    owner_id, api_key = prepare_database(config, report)
    fixtures = asyncio.run(find_fixtures(config, api_key))
    report.dataset.update(
        live_contacts=fixtures.live_contacts,
        deep_offset=fixtures.deep_offset,
        live_deals=fixtures.live_deals,
        **fixtures.metrics_data,
    )
    if fixtures.metrics_data["deal_owners"] < 2 and any(
        key in METRICS_KEYS for key in config.only or METRICS_KEYS
    ):
        print(
            "note: the deals predate the metrics dataset (one owner, closes within weeks of "
            "creation): the deal metrics see few closes and one owner. A fresh load "
            "(run.py without --reuse) makes them as the generator now does.",
            flush=True,
        )
    if fixtures.timeline:
        report.dataset.update(
            timeline_contact_id=fixtures.timeline.contact_id,
            timeline_items=len(fixtures.timeline.items),
            timeline_deep_offset=fixtures.timeline.deep_offset,
        )
    load = Load(
        threads=config.threads,
        connections=config.connections,
        # Both servers get the same headers, so both parse requests of the same size.
        headers=(f"Authorization: Bearer {api_key}", "Content-Type: application/json"),
        env={"BENCH_IDS_FILE": str(fixtures.ids_file)},
        script_dir=config.out_dir,
    )
    crm, baseline = crm_server(config), baseline_server(config, owner_id)
    bench = Bench(config, load, fixtures, crm, baseline, report)
    with running([crm, baseline]):
        crm.wait_ready("/readyz")
        baseline.wait_ready("/healthz")
        print(f"servers up; crm workers {crm.worker_pids()}", flush=True)
        timeline_keys = {"timeline_first", "timeline_deep"}
        if fixtures.timeline and (not config.only or config.only & timeline_keys):
            # crm-api's own cursor to the deep page, and a check of every item before it.
            timeline = walk_timeline(crm, api_key, fixtures.timeline)
            fixtures = bench.fixtures = replace(fixtures, timeline=timeline)
            outcome = timeline.problem or "every item as expected"
            print(f"timeline walked to item {timeline.deep_offset:,}: {outcome}", flush=True)
        # POST last: the rows it adds must not shift the pages the list scenarios read.
        every = scenarios(fixtures, config.metrics_connections)
        chosen = [s for s in every if not config.only or s.key in config.only]
        for scenario in chosen:
            bench.run_scenario(scenario)
        report.check_targets()
        for scenario in to_profile(config, report, chosen):
            print(f"profiling the crm workers during {scenario.name} (py-spy)...", flush=True)
            report.profiles[scenario.name] = bench.profile(scenario)
    report_path = config.out_dir.with_suffix(".json")
    report.write(report_path)
    print()
    print(render(report, load_line(config, report)))
    for name, profile in report.profiles.items():
        print(f"\npy-spy of the crm workers during {name}:\n{profile}")
    print(f"\nresults: {report_path}\nserver logs and wrk scripts: {config.out_dir}")
    return 1 if report.problems else 0


def to_profile(config: Config, report: Report, chosen: list[Scenario]) -> list[Scenario]:
    """`--profile always`: every measured scenario; `auto`: those whose targets were missed."""
    measured = [scenario for scenario in chosen if "error" not in report.results[scenario.key]]
    if config.profile == "always":
        return measured
    if config.profile == "auto":
        missed = report.missed_scenarios()
        return [scenario for scenario in measured if scenario.key in missed]
    return []


def source_state() -> dict[str, object]:
    """The commit measured, and app files changed since it: results are only comparable
    between runs of the same code."""

    def git(*args: str) -> str:
        command = ["git", "-C", str(BENCH_DIR.parent), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout

    changed = git("status", "--porcelain", "--", "src", "migrations").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": changed}


def load_line(config: Config, report: Report) -> str:
    access_log = "on" if config.access_log else "OFF (CRM_ACCESS_LOG=false)"
    source = report.dataset["source"]
    dirty = f" + {len(source['uncommitted'])} uncommitted files" if source["uncommitted"] else ""
    return (
        f"crm-api {source['commit']}{dirty}; "
        f"{report.dataset['live_contacts']:,} live contacts, "
        f"{report.dataset['live_deals']:,} live deals, "
        f"{report.dataset.get('timeline_items', 0):,} items on one contact's timeline, "
        f"{report.dataset.get('activities', 0):,} activities"
        f"\nwrk -t{config.threads} -c{config.connections} (metrics: -t1 "
        f"-c{config.metrics_connections}, timeout {METRICS_TIMEOUT}s), "
        f"{config.duration}s measured after {config.warmup}s warm-up; "
        f"{config.workers} workers per server; {config.rounds} round(s), median shown; "
        f"crm access log {access_log}"
    )


def parse_args() -> Config:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--server-url",
        default="postgresql://postgres@127.0.0.1:5432",
        help="the PostgreSQL server, without a database name",
    )
    add("--db-name", default="crm_bench", help="dropped and recreated unless --reuse")
    add("--contacts", type=int, default=1_000_000)
    add("--companies", type=int, help="default: contacts / 20")
    add("--deals", type=int, default=1_000_000, help="over 3 pipelines, loaded after contacts")
    add(
        "--timeline-items",
        type=int,
        default=20_000,
        help="items on one contact's timeline (activities, tasks, lifecycle and field changes)",
    )
    add(
        "--activities",
        type=int,
        default=2_000_000,
        help="activities in the contacts' histories (which also hold their lifecycle changes)",
    )
    add(
        "--reuse",
        action="store_true",
        help="keep the database's data if it has contacts (adding deals, a timeline or the "
        "contacts' history if it has none)",
    )
    add("--duration", type=int, default=10, help="seconds measured per scenario and server")
    add("--warmup", type=int, default=3, help="seconds of unmeasured load before each run")
    add("--threads", type=int, default=1, help="wrk threads")
    add("--connections", type=int, default=32, help="wrk connections")
    add(
        "--metrics-connections",
        type=int,
        default=METRICS_CONNECTIONS,
        help="wrk connections (one thread) for the metrics scenarios",
    )
    add("--workers", type=int, default=2, help="processes per server")
    add("--crm-port", type=int, default=8101)
    add("--baseline-port", type=int, default=8102)
    add("--access-log", action="store_true", help="turn crm-api's access log on")
    add("--pool-size", type=int, help="DB pool per worker, both servers (default: the app's)")
    add("--sample-ids", type=int, default=10_000, help="ids GET one picks from")
    add(
        "--rounds",
        type=int,
        default=1,
        help="measured runs per scenario and server, alternating servers; the median counts",
    )
    add(
        "--quiet-wait",
        type=int,
        default=120,
        help="seconds to wait, before each run, for other processes to leave the CPUs idle",
    )
    add(
        "--retries",
        type=int,
        default=3,
        help="times a run is redone when other processes took CPU during it",
    )
    add(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="py-spy the crm workers during an extra run of each scenario: auto: those with a "
        "missed target; always: all",
    )
    add(
        "--only",
        type=lambda text: frozenset(
            key for name in text.split(",") for key in ONLY_GROUPS.get(name, (name,))
        ),
        default=frozenset(),
        help=f"comma-separated scenarios to run: {','.join(SCENARIO_KEYS)}, or `metrics` for "
        "all metrics_* (default: all)",
    )
    args = parser.parse_args()
    if unknown := args.only - set(SCENARIO_KEYS):
        parser.error(f"--only: unknown scenarios {','.join(sorted(unknown))}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.db_name):
        parser.error("--db-name: lower-case letters, digits and _ only")
    out_dir = BENCH_DIR / "out" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    companies = args.companies if args.companies is not None else max(1, args.contacts // 20)
    options = {k: v for k, v in vars(args).items() if k != "companies"}
    return Config(**options, companies=companies, out_dir=out_dir)


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(run(parse_args()))


if __name__ == "__main__":
    main()
