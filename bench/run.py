"""Benchmark crm-api against a bare Starlette + asyncpg baseline with wrk, on one dataset.

    .venv/bin/python bench/run.py                     # 1M contacts, fresh database
    .venv/bin/python bench/run.py --contacts 50000    # a quick run
    .venv/bin/python bench/run.py --reuse             # keep the data of a previous run

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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import generate
import profile_summary
from load import ForeignCpu, Load, Measurement, run_wrk, wait_for_quiet
from report import Report, render
from servers import Server, http, running

from crm_api.core.listing import encode_cursor

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent  # crm-api, uvicorn and py-spy live beside this python
ADMIN_EMAIL = "bench-admin@bench.example"
DEEP_FRACTION = 0.9  # the deep page starts after 90% of the live contacts
MIN_IDLE = 0.85  # between runs (servers idle), less idle CPU than this means another job runs
MAX_FOREIGN_CPU = 0.05  # a run during which other processes used more CPU than this is redone


@dataclass(frozen=True)
class Config:
    server_url: str
    db_name: str
    contacts: int
    companies: int
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


class ScenarioError(Exception):
    pass


# -- the database ----------------------------------------------------------------------------


async def database_has_contacts(config: Config) -> bool:
    try:
        conn = await asyncpg.connect(config.dsn(config.db_name))
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        return bool(await conn.fetchval("SELECT EXISTS (SELECT FROM contacts)"))
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()


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
    """A migrated database with data (fresh, or reused); returns (admin user id, API key)."""
    reuse = config.reuse and asyncio.run(database_has_contacts(config))
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
        return owner_id, api_key
    print(f"generating {config.contacts:,} contacts, {config.companies:,} companies", flush=True)
    timing = asyncio.run(
        generate.generate(
            config.crm_database_url, config.contacts, config.companies, owner_id=UUID(owner_id)
        )
    )
    report.dataset["generate_seconds"] = round(timing["total_s"], 1)
    print(f"data generated in {timing['total_s']:.1f}s", flush=True)
    return owner_id, api_key


async def find_fixtures(config: Config, api_key: str) -> Fixtures:
    """Sampled ids, and the row at 90% of the created_at order with the cursor just before it."""
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
    )


# -- scenarios -------------------------------------------------------------------------------


def scenarios(fixtures: Fixtures) -> list[Scenario]:
    deep_crm = urllib.parse.urlencode({"limit": 50, "cursor": fixtures.deep_cursor})
    after_created_at, after_id = fixtures.deep_after
    deep_base = urllib.parse.urlencode(
        {"limit": 50, "after_created_at": after_created_at, "after_id": after_id}
    )
    deep = f"list 50, after row {fixtures.deep_offset:,}"
    return [
        Scenario("get_one", "GET one contact", "get_one.lua", "/v1/contacts/", "/contacts/"),
        Scenario("list_first", "list 50, first page", "static.lua",
                 "/v1/contacts?limit=50", "/contacts?limit=50"),
        Scenario("list_deep", deep, "static.lua", f"/v1/contacts?{deep_crm}",
                 f"/contacts?{deep_base}"),
        Scenario("post", "POST create contact", "post_contact.lua", "/v1/contacts", "/contacts",
                 expected_status=201),
    ]  # fmt: skip


def preflight(scenario: Scenario, server: Server, fixtures: Fixtures, path: str) -> None:
    """One request like the load will send: a benchmark of error responses is worthless."""
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
    if scenario.key == "get_one" and document["id"] != fixtures.sample_id:
        raise ScenarioError(f"{server.name} returned contact {document['id']}")
    if scenario.key == "list_deep":
        first, size = document["data"][0]["id"], len(document["data"])
        if first != fixtures.deep_first_id or size != 50:
            raise ScenarioError(
                f"{server.name}: the page starts at {first} with {size} items, expected "
                f"row {fixtures.deep_offset + 1:,} ({fixtures.deep_first_id}) and 50"
            )


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
            preflight(scenario, self.crm, self.fixtures, scenario.crm_path)
            preflight(scenario, self.baseline, self.fixtures, scenario.baseline_path)
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
            run_wrk(self.load, scenario.script, url, config.warmup)
        for attempt in range(config.retries + 1):
            with ForeignCpu(self.is_ours) as foreign:
                result = run_wrk(self.load, scenario.script, url, config.duration)
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

    def profile_get_one(self) -> str:
        """An extra GET-one load on crm with py-spy on every worker; the top frames as text."""
        py_spy, config = VENV_BIN / "py-spy", self.config
        if not py_spy.exists():
            return f"py-spy not installed: {VENV_BIN / 'pip'} install py-spy"
        scenario = scenarios(self.fixtures)[0]
        recorders, outputs = [], []
        for pid in self.crm.worker_pids():
            output = config.out_dir / f"py-spy-get-one-{pid}.txt"
            # --gil: sample the thread running Python, not idle thread-pool threads.
            record = f"record --pid {pid} --duration {config.duration} --rate 250 --gil"
            command = [str(py_spy), *record.split(), "--format", "raw", "--nolineno"]
            command += ["-o", str(output)]
            recorders.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            outputs.append(output)
        try:
            url = self.crm.base_url + scenario.crm_path
            run_wrk(self.load, scenario.script, url, config.duration)
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
    report.dataset.update(live_contacts=fixtures.live_contacts, deep_offset=fixtures.deep_offset)
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
        # POST last: the rows it adds must not shift the pages the list scenarios read.
        for scenario in scenarios(fixtures):
            if not config.only or scenario.key in config.only:
                bench.run_scenario(scenario)
        report.check_targets()
        missed = not all(target["met"] for target in report.targets)
        if config.profile == "always" or (config.profile == "auto" and missed):
            print("profiling the crm workers during GET one (py-spy)...", flush=True)
            report.profile_get_one = bench.profile_get_one()
    report_path = config.out_dir.with_suffix(".json")
    report.write(report_path)
    print()
    print(render(report, load_line(config, report)))
    if report.profile_get_one:
        print("\npy-spy of the crm workers during GET one contact:\n" + report.profile_get_one)
    print(f"\nresults: {report_path}\nserver logs and wrk scripts: {config.out_dir}")
    return 1 if report.problems else 0


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
        f"{report.dataset['live_contacts']:,} live contacts\nwrk -t{config.threads} "
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
    add("--reuse", action="store_true", help="keep the database's data if it has contacts")
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
        help="py-spy the crm workers during an extra GET-one run; auto: if a target is missed",
    )
    add(
        "--only",
        type=lambda text: frozenset(text.split(",")),
        default=frozenset(),
        help="comma-separated scenarios to run: get_one,list_first,list_deep,post (default: all)",
    )
    args = parser.parse_args()
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
