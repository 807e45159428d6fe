"""Batch upsert throughput: `POST /v1/contacts/batch/upsert` with 1000 contacts per call.

    .venv/bin/python bench/upsert.py [--calls 40] [--concurrency 4] [--workers 2]

Recreates the database `crm_bench_upsert`, serves crm-api on it (2 workers, access log off),
and sends pre-encoded bodies (so the client spends little CPU) from `--concurrency` clients:
first `--calls` calls of 1000 new contacts each (every one created, with its lifecycle row,
audit row and event), then the same calls again with one field changed (every one updated).
The baseline, in the same run, writes the same new contacts raw: one COPY per 1000 rows into
`contacts` from asyncpg, in a transaction, from the same number of concurrent connections.
Prints records/s for each and their ratio; the issue's target is 20,000 records/s for creates.
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


async def baseline(dsn: str, calls: int, concurrency: int, owner: str) -> float:
    """Seconds to COPY the same number of new contacts raw, 1000 per transaction."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    columns = ("id", "first_name", "last_name", "name_key", "email", "title", "lifecycle_stage",
               "lifecycle_stage_changed_at", "lead_source", "owner_id", "email_opt_in",
               "do_not_contact", "custom_fields", "external_id", "version", "created_by",
               "created_at", "updated_at")  # fmt: skip
    remaining = list(range(calls))

    def rows(call: int) -> list[tuple[object, ...]]:
        now = datetime.now(UTC)
        owner_id = UUID(owner)
        return [
            (
                uuid4(),
                f"First{i}",
                f"Raw{call}",
                f"raw{call} first{i}",
                f"raw{call}-{i}@b.example",
                "t",
                "lead",
                now,
                "erp",
                owner_id,
                False,
                False,
                "{}",
                f"RAW-{call}-{i}",
                1,
                owner_id,
                now,
                now,
            )
            for i in range(ITEMS)
        ]

    async def worker() -> None:
        while remaining:
            call = remaining.pop()
            async with pool.acquire() as connection, connection.transaction():
                await connection.copy_records_to_table(
                    "contacts", records=rows(call), columns=columns
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
    raw = asyncio.run(baseline(f"{SERVER}/{args.db_name}", args.calls, args.concurrency, owner))
    records = args.calls * ITEMS
    print(f"{args.calls} calls x {ITEMS} contacts, {args.concurrency} clients, "
          f"{args.workers} workers")  # fmt: skip
    print(f"crm-api create  : {records / created:9,.0f} records/s ({created:.1f} s)")
    print(f"crm-api update  : {records / updated:9,.0f} records/s ({updated:.1f} s)")
    print(f"raw COPY        : {records / raw:9,.0f} records/s ({raw:.1f} s)")
    print(f"create / raw    : {raw / created:.2f}x   target: create >= 20,000 records/s: "
          f"{'met' if records / created >= 20_000 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
