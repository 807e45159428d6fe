"""Batch upsert throughput: `POST /v1/contacts/batch/upsert` with 1000 contacts per call.

    .venv/bin/python bench/upsert.py [--calls 40] [--concurrency 4] [--workers 2]

Recreates the database `crm_bench_upsert`, serves crm-api on it (2 workers, access log off),
and sends pre-encoded bodies (so the client spends little CPU) from `--concurrency` clients:
first `--calls` calls of 1000 new contacts each (every one created, with its lifecycle row,
audit row and event), then the same calls again with one field changed (every one updated).
Two baselines, in the same run, write as many new contacts raw from asyncpg, one transaction
per 1000 from the same number of connections: one COPY into `contacts`; then the floor of what
the contract writes per created record, a COPY into each of the four tables (the contact, its
lifecycle change, its audit row and its event, with JSON bodies the size of crm-api's), built
in the timed loop as crm-api builds them. Prints records/s for each and the ratios; the issue's
target is 20,000 records/s for creates.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx
import orjson
from servers import Server, running

VENV_BIN = Path(sys.executable).parent
SERVER = "postgresql://postgres@127.0.0.1:5432"
ITEMS = 1000


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "CRM_DATABASE_URL": url}
    done = subprocess.run([str(VENV_BIN / "crm-api"), *args], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def contact(call: int, item: int, title: str) -> dict[str, str]:
    return {
        "first_name": f"First{item}",
        "last_name": f"Last{call}",
        "email": f"c{call}-{item}@upsert.example",
        "external_id": f"ERP-{call}-{item}",
        "lead_source": "erp",
        "title": title,
    }


def bodies(calls: int, title: str) -> list[bytes]:
    return [
        orjson.dumps({"items": [contact(call, i, title) for i in range(ITEMS)]})
        for call in range(calls)
    ]


async def send_all(base_url: str, key: str, payloads: list[bytes], concurrency: int) -> float:
    """Seconds to send every payload from `concurrency` clients; fails on any non-200."""
    queue = list(reversed(payloads))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as http:
            while queue:
                response = await http.post("/v1/contacts/batch/upsert", content=queue.pop())
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:500]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started


CONTACT_COLUMNS = ("id", "first_name", "last_name", "name_key", "email", "title",
                   "lifecycle_stage", "lifecycle_stage_changed_at", "lead_source", "owner_id",
                   "email_opt_in", "do_not_contact", "custom_fields", "external_id", "version",
                   "created_by", "created_at", "updated_at")  # fmt: skip
SIDE_COLUMNS = {
    "contact_lifecycle_changes": ("id", "contact_id", "from_stage", "to_stage", "changed_at",
                                  "changed_by"),
    "audit_log": ("id", "occurred_at", "actor_user_id", "action", "entity_type", "entity_id",
                  "changes", "request_id"),
    "events": ("id", "type", "entity_type", "entity_id", "occurred_at", "data"),
}  # fmt: skip


def raw_rows(call: int, owner: UUID, side_rows: bool) -> dict[str, list[tuple[object, ...]]]:
    """One call's rows, per table: the contacts, and with `side_rows` the three rows the
    contract adds to each (its lifecycle change, audit row and event, with JSON bodies the
    size of crm-api's)."""
    now = datetime.now(UTC)
    tables: dict[str, list[tuple[object, ...]]] = {"contacts": []}
    for table in SIDE_COLUMNS if side_rows else ():
        tables[table] = []
    request_id = str(uuid4())
    for i in range(ITEMS):
        contact_id = uuid4()
        values = (contact_id, f"First{i}", f"Raw{call}", f"raw{call} first{i}",
                  f"raw{call}-{i}@b.example", "t", "lead", now, "erp", owner, False, False, "{}",
                  f"RAW-{call}-{i}", 1, owner, now, now)  # fmt: skip
        tables["contacts"].append(values)
        if not side_rows:
            continue
        fields = dict(zip(CONTACT_COLUMNS, values, strict=True))
        changes = orjson.dumps({k: [None, v] for k, v in fields.items() if v is not None})
        data = orjson.dumps({**fields, "phone": None, "company_id": None, "company": None,
                             "archived_at": None, "next_task": None, "merged_into_id": None,
                             "last_activity_at": None, "first_outreach_at": None})  # fmt: skip
        tables["contact_lifecycle_changes"].append((uuid4(), contact_id, None, "lead", now, owner))
        tables["audit_log"].append((uuid4(), now, owner, "created", "contact", contact_id,
                                    changes.decode(), request_id))  # fmt: skip
        tables["events"].append((uuid4(), "contact.created", "contact", contact_id, now,
                                 data.decode()))  # fmt: skip
    return tables


async def baseline(dsn: str, calls: int, concurrency: int, owner: str, side_rows: bool) -> float:
    """Seconds to COPY the same number of new contacts raw, 1000 per transaction (with
    `side_rows`, each with the three rows the contract adds: see `raw_rows`)."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    remaining = list(range(calls))
    columns = {"contacts": CONTACT_COLUMNS, **SIDE_COLUMNS}

    async def worker() -> None:
        while remaining:
            call = remaining.pop() + (calls if side_rows else 0)  # new keys for each baseline
            async with pool.acquire() as connection, connection.transaction():
                for table, records in raw_rows(call, UUID(owner), side_rows).items():
                    await connection.copy_records_to_table(
                        table, records=records, columns=columns[table]
                    )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8121)
    parser.add_argument("--db-name", default="crm_bench_upsert")
    args = parser.parse_args()

    async def recreate() -> None:
        connection = await asyncpg.connect(f"{SERVER}/postgres")
        await connection.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{args.db_name}"')
        await connection.close()

    asyncio.run(recreate())
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.db_name}"
    cli(url, "migrate")
    owner = cli(url, "create-user", "--email", "bench@upsert.example", "--name", "B", "--role",
                "admin")  # fmt: skip
    key = cli(url, "create-api-key", "--email", "bench@upsert.example", "--name", "bench")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    server = Server(
        "crm",
        [str(VENV_BIN / "crm-api"), "serve", "--port", str(args.port), "--workers",
         str(args.workers)],
        {"CRM_DATABASE_URL": url, "CRM_ACCESS_LOG": "false"},
        args.port,
        out / "upsert-crm.log",
    )  # fmt: skip
    creates, updates = bodies(args.calls, "Buyer"), bodies(args.calls, "Head of Buying")
    warm = [orjson.dumps({"items": [contact(10_000 + n, i, "w") for i in range(ITEMS)]})
            for n in range(2)]  # fmt: skip
    with running([server]):
        server.wait_ready("/healthz")
        base_url = server.base_url
        asyncio.run(send_all(base_url, key, warm, 2))
        created = asyncio.run(send_all(base_url, key, creates, args.concurrency))
        updated = asyncio.run(send_all(base_url, key, updates, args.concurrency))
    dsn = f"{SERVER}/{args.db_name}"
    raw = asyncio.run(baseline(dsn, args.calls, args.concurrency, owner, side_rows=False))
    floor = asyncio.run(baseline(dsn, args.calls, args.concurrency, owner, side_rows=True))
    records = args.calls * ITEMS
    print(f"{args.calls} calls x {ITEMS} contacts, {args.concurrency} clients, "
          f"{args.workers} workers")  # fmt: skip
    print(f"crm-api create  : {records / created:9,.0f} records/s ({created:.1f} s)")
    print(f"crm-api update  : {records / updated:9,.0f} records/s ({updated:.1f} s)")
    print(f"raw COPY        : {records / raw:9,.0f} records/s ({raw:.1f} s)")
    print(f"raw COPY 4 rows : {records / floor:9,.0f} records/s ({floor:.1f} s)")
    print(f"create / raw    : {raw / created:.2f}x   create / raw 4 rows: {floor / created:.2f}x")
    print(f"target: create >= 20,000 records/s: "
          f"{'met' if records / created >= 20_000 else 'MISSED'}; raw COPY of the 4 rows: "
          f"{'met' if records / floor >= 20_000 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
