"""Server memory and throughput of a full export: does streaming keep memory flat?

    .venv/bin/python bench/export_memory.py                  # 1M contacts (~2 min to load)
    .venv/bin/python bench/export_memory.py --contacts 100000 --keep
    .venv/bin/python bench/export_memory.py --reuse          # the data of a --keep run

Loads contacts with custom field values (and their companies) into a throwaway PostgreSQL
database with `generate.py`'s COPY loader, starts a real `crm-api serve` (one process, no
in-process worker) on it, and then exports every contact as CSV, every contact as NDJSON, and
the third of them with `custom_fields.tier=gold` as CSV (a custom field filter: the search
path), each through `GET /v1/exports/contacts.<format>` while a client reads the stream as fast
as it can. A sampler reads the server process's resident memory (`VmRSS` in
/proc/<pid>/status) every few milliseconds; the kernel's own peak (`VmHWM`, reset through
/proc/<pid>/clear_refs before each export) catches what falls between samples. Printed per
export: rows, bytes, time to the first byte, rows/s, MB/s, the server's CPU time (steadier than
rows/s on a shared machine: the client and PostgreSQL use the same cores), the RSS before, the
peak during, and the increase, which must stay under `--limit-mb` (50 MB, the issue's target;
exit status 1 otherwise, or if a row is missing).

The server is warmed up first (a list page and a 10,000-row export of each format), so the
baseline already holds what any export loads once (modules, compiled statements, the custom
field catalog). The database is dropped at the end unless `--keep`.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import generate
import httpx
import orjson
from load import ForeignCpu, wait_for_quiet
from servers import Server, running

ADMIN_EMAIL = "bench-export@bench.example"
FORMATS = ("csv", "ndjson")
TIERS = ("gold", "silver", "bronze")
CHANNELS = (("email",), ("phone",), ("email", "phone"), ())
WARMUP_ROWS = 10_000
MIN_IDLE = 0.9  # of the CPUs, before each export
MAX_FOREIGN_CPU = 0.05  # used by other processes during an export, before its speed is suspect


def custom_fields(i: int) -> str:
    """Contact i's custom fields: every type, most set, a text with a comma and quotes."""
    values: dict[str, object] = {
        "tier": TIERS[i % 3],
        "score": (i * 37) % 1000 / 10,
        "vip": i % 7 == 0,
        "channels": list(CHANNELS[i % 4]),
        "notes": f'Met at "Expo {i % 97}", follow up',
    }
    if i % 5:
        values["renewal"] = f"2027-{i % 12 + 1:02d}-{i % 28 + 1:02d}"
    return orjson.dumps(values).decode()


DEFINITIONS = [
    {"key": "tier", "type": "enum", "options": [{"value": tier} for tier in TIERS]},
    {"key": "score", "type": "number"},
    {"key": "vip", "type": "boolean"},
    {"key": "channels", "type": "multi_enum",
     "options": [{"value": "email"}, {"value": "phone"}]},
    {"key": "notes", "type": "text"},
    {"key": "renewal", "type": "date"},
]  # fmt: skip


@dataclass
class Config:
    server: str
    db_name: str
    contacts: int
    port: int
    reuse: bool
    keep: bool
    limit_mb: float
    interval: float
    quiet_wait: float

    def dsn(self, database: str) -> str:
        return f"{generate.plain_dsn(self.server)}/{database}"

    @property
    def url(self) -> str:
        return f"{self.server}/{self.db_name}"

    def is_ours(self, server_pid: int) -> Callable[[int, str], bool]:
        """The benchmark's processes: the server, this script, PostgreSQL serving our database
        and PostgreSQL's shared background processes."""

        def ours(group: int, cmdline: str) -> bool:
            if group in (server_pid, os.getpgrp()):
                return True
            backend = cmdline.startswith("postgres:") and "(" in cmdline
            return f" {self.db_name} " in cmdline if backend else True

        return ours


def crm_cli(config: Config, *args: str) -> str:
    """`crm-api <args>` on the bench database (this interpreter, so PYTHONPATH holds)."""
    env = {**os.environ, "CRM_DATABASE_URL": config.url}
    command = [sys.executable, "-m", "crm_api.cli", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"crm-api {args[0]} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


async def admin_sql(config: Config, *statements: str) -> None:
    conn = await asyncpg.connect(config.dsn("postgres"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def live_contacts(config: Config) -> int:
    try:
        conn = await asyncpg.connect(config.dsn(config.db_name))
    except asyncpg.InvalidCatalogNameError:
        return 0
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM contacts WHERE archived_at IS NULL")
        return count
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


def prepare(config: Config) -> str:
    """A migrated database with the contacts; returns an admin's API key."""
    existing = asyncio.run(live_contacts(config)) if config.reuse else 0
    if not existing:
        print(f"creating database {config.db_name}", flush=True)
        name = config.db_name
        asyncio.run(
            admin_sql(config, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                      f'CREATE DATABASE "{name}"')
        )  # fmt: skip
    crm_cli(config, "migrate")
    if not existing:
        crm_cli(config, "create-user", "--email", ADMIN_EMAIL, "--name", "Export", "--role",
                "admin")  # fmt: skip
    key = crm_cli(config, "create-api-key", "--email", ADMIN_EMAIL, "--name", "export-bench")
    if existing:
        print(f"reusing {existing:,} contacts in {config.db_name}", flush=True)
        return key
    print(f"loading {config.contacts:,} contacts with custom fields", flush=True)
    timing = asyncio.run(
        generate.generate(config.url, config.contacts, max(1, config.contacts // 20),
                          contact_custom_fields=custom_fields)
    )  # fmt: skip
    print(f"  loaded in {timing['load_s']:.1f}s, {timing['total_s']:.1f}s with VACUUM", flush=True)
    return key


def define_fields(client: httpx.Client) -> None:
    """The contact custom fields the loaded values belong to (through the API, once)."""
    existing = client.get("/v1/custom-fields", params={"limit": 500}).json()["data"]
    have = {d["key"] for d in existing if d["object_type"] == "contact"}
    for definition in DEFINITIONS:
        if definition["key"] in have:
            continue
        body = {"object_type": "contact", "label": str(definition["key"]).title(), **definition}
        response = client.post("/v1/custom-fields", json=body)
        response.raise_for_status()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


class Sampler(threading.Thread):
    """Samples a process's VmRSS until stopped; keeps the largest."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            self.samples += 1
            time.sleep(self.interval)


@dataclass(frozen=True)
class Scenario:
    name: str
    fmt: str
    params: dict[str, str]
    count_sql: str
    """How many rows the export must hold, counted in SQL."""


LIVE = "SELECT count(*) FROM contacts WHERE archived_at IS NULL"
SCENARIOS = [
    Scenario("csv", "csv", {}, LIVE),
    Scenario("ndjson", "ndjson", {}, LIVE),
    # A custom field filter goes through search (one statement built per chunk).
    Scenario("csv, custom_fields.tier=gold", "csv", {"custom_fields.tier": "gold"},
             LIVE + " AND custom_fields @> '{\"tier\": \"gold\"}'"),
]  # fmt: skip


@dataclass
class Result:
    scenario: Scenario
    expected: int
    rows: int
    bytes: int
    first_byte_s: float
    seconds: float
    cpu_s: float
    rss_before_kb: int
    peak_sampled_kb: int
    peak_hwm_kb: int
    samples: int
    foreign_cpu: float

    @property
    def increase_mb(self) -> float:
        return (max(self.peak_sampled_kb, self.peak_hwm_kb) - self.rss_before_kb) / 1024


def export(client: httpx.Client, fmt: str, params: dict[str, str]) -> tuple[int, int, float]:
    """Reads one export to its end; returns (rows, bytes, seconds to the first byte)."""
    started = time.perf_counter()
    first = 0.0
    size = lines = 0
    with client.stream("GET", f"/v1/exports/contacts.{fmt}", params=params) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{fmt} export: {response.status_code} {response.read()[:500]!r}")
        for chunk in response.iter_raw(1 << 20):
            if not size:
                first = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
    # The loaded values hold no line breaks, so a CSV has one line per row plus its header.
    return lines - (1 if fmt == "csv" else 0), size, first


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(client: httpx.Client, pid: int, scenario: Scenario, expected: int,
            config: Config) -> Result:  # fmt: skip
    wait_for_quiet(MIN_IDLE, config.quiet_wait)
    rss_before = status_kb(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    sampler = Sampler(pid, config.interval)
    sampler.start()
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    try:
        with ForeignCpu(config.is_ours(pid)) as foreign:
            rows, size, first = export(client, scenario.fmt, scenario.params)
    finally:
        seconds = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
    return Result(scenario, expected, rows, size, first, seconds, cpu_seconds(pid) - cpu,
                  rss_before, sampler.peak_kb, status_kb(pid, "VmHWM"), sampler.samples,
                  foreign.share)  # fmt: skip


def report(results: list[Result], limit_mb: float) -> bool:
    ok = True
    for r in results:
        peak = max(r.peak_sampled_kb, r.peak_hwm_kb)
        print(f"\n{r.scenario.name}: {r.rows:,} rows, {r.bytes / 1e6:,.1f} MB")
        print(
            f"  time       {r.seconds:.1f} s (first byte after {r.first_byte_s * 1000:.0f} ms)"
            f"  {r.rows / r.seconds:,.0f} rows/s  {r.bytes / 1e6 / r.seconds:.1f} MB/s"
        )
        print(
            f"  server CPU {r.cpu_s:.1f} s  ({r.rows / max(r.cpu_s, 1e-9):,.0f} rows per CPU "
            "second)"
        )
        print(
            f"  RSS        {r.rss_before_kb / 1024:.1f} MB before, {peak / 1024:.1f} MB peak:"
            f" +{r.increase_mb:.1f} MB (sampled peak {r.peak_sampled_kb / 1024:.1f} MB in "
            f"{r.samples:,} samples, VmHWM {r.peak_hwm_kb / 1024:.1f} MB)"
        )
        print(f"  others     {r.foreign_cpu:.0%} of the CPUs used by other processes"
              + (": the speed is suspect, not the memory" if r.foreign_cpu > MAX_FOREIGN_CPU
                 else ""))  # fmt: skip
        if r.rows != r.expected:
            print(f"  MISSED: {r.rows:,} rows exported, {r.expected:,} expected")
            ok = False
        if r.increase_mb >= limit_mb:
            print(f"  MISSED: peak RSS rose {r.increase_mb:.1f} MB (limit {limit_mb:.0f} MB)")
            ok = False
    print(
        f"\ntarget: every row, and a peak RSS increase < {limit_mb:.0f} MB per export: "
        + ("met" if ok else "MISSED")
    )
    return ok


async def count(config: Config, sql: str) -> int:
    conn = await asyncpg.connect(config.dsn(config.db_name))
    try:
        found: int = await conn.fetchval(sql)
        return found
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--server", default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL, without a database")  # fmt: skip
    add("--db-name", default="crm_bench_export")
    add("--contacts", type=int, default=1_000_000)
    add("--port", type=int, default=8131)
    add("--reuse", action="store_true", help="keep a database that already has contacts")
    add("--keep", action="store_true", help="do not drop the database at the end")
    add("--limit-mb", type=float, default=50.0)
    add("--interval", type=float, default=0.005, help="seconds between RSS samples")
    add("--quiet-wait", type=float, default=120,
        help="seconds to wait at most for idle CPUs before each export")  # fmt: skip
    args = parser.parse_args()
    config = Config(args.server, args.db_name, args.contacts, args.port, args.reuse, args.keep,
                    args.limit_mb, args.interval, args.quiet_wait)  # fmt: skip
    ok = False
    try:
        key = prepare(config)
        env = {"CRM_DATABASE_URL": config.url, "CRM_ACCESS_LOG": "false",
               "CRM_IN_PROCESS_WORKER": "false", "CRM_LOG_LEVEL": "warning"}  # fmt: skip
        command = [sys.executable, "-m", "crm_api.cli", "serve", "--port", str(config.port)]
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"export-memory-{config.port}.log"
        server = Server("crm-api", command, env, config.port, log)
        with running([server]):
            server.wait_ready("/readyz")
            assert server.process is not None
            pid = server.process.pid  # one process: uvicorn serves in it
            headers = {"Authorization": f"Bearer {key}"}
            timeout = httpx.Timeout(60, read=300)
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=timeout) as client:
                define_fields(client)
                client.get("/v1/contacts", params={"limit": 50}).raise_for_status()
                first = client.get("/v1/contacts", params={"limit": 1, "sort": "created_at"})
                start = first.json()["data"][0]["created_at"]
                for fmt in FORMATS:  # warm-up: a short export of each format
                    params = {"created_after": start, "sort": "created_at"}
                    with client.stream("GET", f"/v1/exports/contacts.{fmt}",
                                       params=params) as response:  # fmt: skip
                        for read, _ in enumerate(response.iter_lines()):
                            if read >= WARMUP_ROWS:
                                break
                print(f"server pid {pid}, RSS after warm-up "
                      f"{status_kb(pid, 'VmRSS') / 1024:.1f} MB", flush=True)  # fmt: skip
                results = []
                for scenario in SCENARIOS:
                    rows = asyncio.run(count(config, scenario.count_sql))
                    print(f"exporting {rows:,} contacts: {scenario.name}", flush=True)
                    results.append(measure(client, pid, scenario, rows, config))
        ok = report(results, config.limit_mb)
    finally:
        if not config.keep:
            drop = f'DROP DATABASE IF EXISTS "{config.db_name}" WITH (FORCE)'
            asyncio.run(admin_sql(config, drop))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
