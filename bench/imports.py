"""CSV import throughput: a 100k-row contacts file through a real server and `crm-api worker`.

    .venv/bin/python bench/imports.py [--rows 100000] [--workers 1] [--chunk-rows 500]

Recreates the database `crm_bench_imports`, serves crm-api on it (in-process worker off) and
starts `--workers` `crm-api worker` processes. Then, timed: uploads a generated CSV of
`--rows` contacts (first and last name, email, phone, title, lead source, external_id, and a
custom number field) with `mode=create` and waits until the job has completed (every contact
created with its lifecycle row, audit row and event); then uploads the same rows with another
title as `mode=upsert` on `external_id` (every contact updated). Prints the upload time (the
file checked, parsed and stored) and rows/s for each pass, end to end and for the worker.
"""

import argparse
import asyncio
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
from servers import Server, running

VENV_BIN = Path(sys.executable).parent
SERVER = "postgresql://postgres@127.0.0.1:5432"
MAPPING = (
    '{"First name": "first_name", "Last name": "last_name", "E-mail": "email", '
    '"Phone": "phone", "Title": "title", "Source": "lead_source", "Ref": "external_id", '
    '"Score": "custom_fields.score"}'
)


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "CRM_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "crm_api.cli", *args], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def csv_file(rows: int, title: str) -> bytes:
    out = io.StringIO()
    out.write("First name,Last name,E-mail,Phone,Title,Source,Ref,Score\r\n")
    for n in range(rows):
        out.write(f"First{n},Last{n % 997},person{n}@imports.example,+1 415 555 {n % 10000:04d},"
                  f'"{title}, Inc.",csv,ERP-{n},{n % 100}\r\n')  # fmt: skip
    return out.getvalue().encode()


def run_pass(base_url: str, key: str, content: bytes, **form: str) -> tuple[float, float, dict]:
    """(upload seconds, total seconds, the finished job) of one import."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
        started = time.perf_counter()
        response = client.post(
            "/v1/imports",
            files={"file": ("bench.csv", content, "text/csv")},
            data={"object_type": "contact", "mapping": MAPPING, **form},
        )
        if response.status_code != 201:
            raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
        uploaded = time.perf_counter() - started
        path = f"/v1/imports/{response.json()['id']}"
        while (job := client.get(path).json())["status"] in ("queued", "running"):
            time.sleep(0.2)
        total = time.perf_counter() - started
    if job["status"] != "completed" or job["failed"]:
        raise RuntimeError(f"the import did not complete cleanly: {job}")
    return uploaded, total, job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="crm-api worker processes")
    parser.add_argument("--chunk-rows", type=int, default=500)
    parser.add_argument("--port", type=int, default=8131)
    parser.add_argument("--db-name", default="crm_bench_imports")
    args = parser.parse_args()

    async def recreate() -> None:
        connection = await asyncpg.connect(f"{SERVER}/postgres")
        await connection.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{args.db_name}"')
        await connection.close()

    asyncio.run(recreate())
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.db_name}"
    cli(url, "migrate")
    email = "bench@imports.example"
    cli(url, "create-user", "--email", email, "--name", "B", "--role", "admin")
    key = cli(url, "create-api-key", "--email", email, "--name", "bench")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    env = {
        "CRM_DATABASE_URL": url,
        "CRM_ACCESS_LOG": "false",
        "CRM_IN_PROCESS_WORKER": "false",
        "CRM_IMPORT_CHUNK_ROWS": str(args.chunk_rows),
        "CRM_WORKER_INTERVAL_SECONDS": "0.2",
    }
    command = [sys.executable, "-m", "crm_api.cli"]
    server = Server("crm", [*command, "serve", "--port", str(args.port)], env, args.port,
                    out / "imports-crm.log")  # fmt: skip
    workers = [
        Server(f"worker{n}", [*command, "worker"], env, args.port, out / f"imports-worker{n}.log")
        for n in range(args.workers)
    ]
    creates, updates = csv_file(args.rows, "Buyer"), csv_file(args.rows, "Head of Buying")
    with running([server, *workers]):
        server.wait_ready("/healthz")
        # Defined through the API, as an admin would: every row's score is checked against it.
        headers = {"Authorization": f"Bearer {key}"}
        field = {"object_type": "contact", "key": "score", "label": "Score", "type": "number"}
        httpx.post(f"{server.base_url}/v1/custom-fields", json=field, headers=headers)
        created = run_pass(server.base_url, key, creates)
        updated = run_pass(server.base_url, key, updates, mode="upsert", match_key="external_id")
    assert created[2]["created"] == updated[2]["updated"] == args.rows
    size = len(creates) / 1_000_000
    print(f"{args.rows:,} contacts ({size:.1f} MB), {args.workers} worker(s), "
          f"{args.chunk_rows} rows per chunk")  # fmt: skip
    for name, (uploaded, total, _) in (("create", created), ("upsert", updated)):
        work = total - uploaded
        worker = f"worker {args.rows / work:7,.0f} rows/s ({work:.1f} s)"
        overall = f"end to end {args.rows / total:7,.0f} rows/s ({total:.1f} s)"
        print(f"{name}: upload {uploaded:5.1f} s; {worker}; {overall}")


if __name__ == "__main__":
    main()
