"""Benchmark crm-api against a bare Starlette + asyncpg baseline with wrk, on one dataset.

    .venv/bin/python bench/run.py                     # 1M contacts and 1M deals, fresh database
    .venv/bin/python bench/run.py --contacts 50000 --deals 100000   # a quick run
    .venv/bin/python bench/run.py --reuse             # keep the data of a previous run
    .venv/bin/python bench/run.py --only board,list_stage_amount    # the deal scenarios only
    .venv/bin/python bench/run.py --reuse --only timeline_first,timeline_deep   # the timeline

See bench/README.md for what each scenario measures and how the ratios are computed.
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import generate
import profile_summary
from load import DEFAULT_TIMEOUT, ForeignCpu, Load, Measurement, run_wrk, wait_for_quiet
from report import Report, render
from servers import Server, http, running

from crm_api.core.listing import decode_cursor, encode_cursor
from crm_api.timeline.repository import CURSOR_KEY, RANK, TimelineKind

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent  # crm-api, uvicorn and py-spy live beside this python
ADMIN_EMAIL = "bench-admin@bench.example"
DEEP_FRACTION = 0.9  # the deep page starts after 90% of the live contacts
LIST_STAGE = "Proposal"  # the stage of the default pipeline whose open deals are listed
BOARD_DEALS = 20  # crm-api's default deals per board column
SCENARIO_KEYS = ("get_one", "list_first", "list_deep", "board", "list_stage_amount",
                 "timeline_first", "timeline_deep", "post")  # fmt: skip
TIMELINE_PAGE = 50  # items per measured timeline page
TIMELINE_WALK_PAGE = 500  # crm-api's largest page: the walk to the deep cursor takes 30 of them
MIN_IDLE = 0.85  # between runs (servers idle), less idle CPU than this means another job runs
MAX_FOREIGN_CPU = 0.05  # a run during which other processes used more CPU than this is redone


@dataclass(frozen=True)
class Config:
    server_url: str
    db_name: str
    contacts: int
    companies: int
    deals: int
    timeline_items: int
    reuse: bool
    duration: int
    warmup: int
    threads: int
    connections: int
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
    timeline: Timeline | None
    """None if no contact has a timeline (`--timeline-items 0` on a fresh database)."""


class ScenarioError(Exception):
    pass


# -- the database ----------------------------------------------------------------------------


async def stored_data(config: Config) -> set[str]:
    """Which of contacts, deals and a timeline (activities) the database holds."""
    try:
        conn = await asyncpg.connect(config.dsn(config.db_name))
    except asyncpg.InvalidCatalogNameError:
        return set()
    found = set()
    try:
        for table in ("contacts", "deals", "activity_contacts"):
            try:
                if await conn.fetchval(f"SELECT EXISTS (SELECT FROM {table})"):
                    found.add(table)
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
    A reused database without deals or without a timeline (made before they were benchmarked)
    gets them."""
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
    timeline = 0 if reuse and "activity_contacts" in stored else config.timeline_items
    if contacts or companies or deals or timeline:
        load_data(config, report, (contacts, companies, deals, timeline), owner_id)
    return owner_id, api_key


def load_data(
    config: Config, report: Report, counts: tuple[int, int, int, int], owner_id: str
) -> None:
    contacts, companies, deals, timeline = counts
    print(
        f"generating {contacts:,} contacts, {companies:,} companies, {deals:,} deals, "
        f"a timeline of {timeline:,} items",
        flush=True,
    )
    url, owner = config.crm_database_url, UUID(owner_id)
    timing = asyncio.run(
        generate.generate(url, contacts, companies, owner, deals=deals, timeline_items=timeline)
    )
    report.dataset["generate_seconds"] = round(timing["total_s"], 1)
    report.dataset["generate_deals_seconds"] = round(timing["deals_s"], 1)
    report.dataset["generate_timeline_seconds"] = round(timing["timeline_s"], 1)
    print(
        f"data generated in {timing['total_s']:.1f}s (deals: {timing['deals_s']:.1f}s, "
        f"timeline: {timing['timeline_s']:.1f}s, with VACUUM ANALYZE at the end)",
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
    )


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
    """The contact with the most activities (the generator gives one contact them all), its
    items in order, and the item the deep page follows: at 75% (item 15,000 of 20,000)."""
    contact_id = await conn.fetchval(
        "SELECT contact_id FROM activity_contacts WHERE live"
        " GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 1"
    )
    if contact_id is None:
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


def scenarios(fixtures: Fixtures) -> list[Scenario]:
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
    status, content = http("POST" if body else "GET", server.base_url + path, headers, body)
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


BODY_CHECKS: dict[str, Callable[[Any, Fixtures], str | None]] = {
    "get_one": check_get_one,
    "list_deep": check_deep_page,
    "board": check_board,
    "list_stage_amount": check_stage_page,
    "timeline_first": check_timeline_first,
    "timeline_deep": check_timeline_deep,
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
            crm_body = preflight(scenario, self.crm, self.fixtures, scenario.crm_path)
            base_body = preflight(scenario, self.baseline, self.fixtures, scenario.baseline_path)
            difference = scenario.same_body and first_difference(crm_body, base_body)
            if difference:
                raise ScenarioError(f"crm-api and the baseline answer differently: {difference}")
        except ScenarioError as error:
            print(f"  !!! {scenario.name}: {error}", flush=True)
            self.report.fail(scenario.key, scenario.name, str(error))
            return
        runs: dict[str, list[Measurement]] = {"crm": [], "baseline": []}
        for number in range(self.config.rounds):
            # Alternating the servers round by round spreads a shared host's slow spells.
            for server, path in (
                (self.crm, scenario.crm_path),
                (self.baseline, scenario.baseline_path),
            ):
                runs[server.name].append(self.measure(scenario, server, path, number == 0))
        self.report.add(scenario.key, scenario.name, runs["crm"], runs["baseline"])
        for server, results in runs.items():
            for result in results:
                if result.foreign_cpu > MAX_FOREIGN_CPU:
                    self.report.problems.append(
                        f"{server} / {scenario.name}: other processes used "
                        f"{result.foreign_cpu:.0%} of the CPUs during the run"
                    )

    def measure(self, scenario: Scenario, server: Server, path: str, warm: bool) -> Measurement:
        """Warm-up, then the measured run; again if other processes took CPU meanwhile."""
        config, url = self.config, server.base_url + path
        wait_for_quiet(MIN_IDLE, config.quiet_wait)
        if warm and config.warmup:
            run_wrk(self.load, scenario.script, url, config.warmup, scenario.wrk_timeout)
        for attempt in range(config.retries + 1):
            with ForeignCpu(self.is_ours) as foreign:
                result = run_wrk(
                    self.load, scenario.script, url, config.duration, scenario.wrk_timeout
                )
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
            f"  {server.name:8} {scenario.name:28} {result.rps:8,.0f} req/s"
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
            run_wrk(self.load, scenario.script, url, config.duration, scenario.wrk_timeout)
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
        chosen = [s for s in scenarios(fixtures) if not config.only or s.key in config.only]
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
        f"{report.dataset.get('timeline_items', 0):,} items on one contact's timeline"
        f"\nwrk -t{config.threads} "
        f"-c{config.connections}, {config.duration}s measured after {config.warmup}s warm-up; "
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
        "--reuse",
        action="store_true",
        help="keep the database's data if it has contacts (adding deals or a timeline if it "
        "has none)",
    )
    add("--duration", type=int, default=10, help="seconds measured per scenario and server")
    add("--warmup", type=int, default=3, help="seconds of unmeasured load before each run")
    add("--threads", type=int, default=1, help="wrk threads")
    add("--connections", type=int, default=32, help="wrk connections")
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
        type=lambda text: frozenset(text.split(",")),
        default=frozenset(),
        help=f"comma-separated scenarios to run: {','.join(SCENARIO_KEYS)} (default: all)",
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
