"""A real `crm-api worker` imports a file of several thousand contacts and is SIGKILLed at
random moments, at least three times, then restarted; each new worker takes the job over once
the dead one's lease runs out and goes on from the last committed chunk. In the end the job is
completed with every count exact, and every row is a contact exactly once, with one audit row
and one event each: no chunk was lost or written twice."""

import asyncio
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from crm_api.core.audit import audit_log
from crm_api.core.db import Database
from crm_api.core.events import events
from tests.databases import fresh_database
from tests.processes import CLI, free_port, run, serve

ROWS = 5000
CHUNK_ROWS = 100
KILLS = 3


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A migrated database, an admin's key, and `crm-api serve` on it without a worker."""
    with fresh_database(tmp_path_factory.mktemp("import-crash")) as url:
        run(url, "migrate")
        email = "importer@example.com"
        run(url, "create-user", "--email", email, "--name", "Importer", "--role", "admin")
        key = run(url, "create-api-key", "--email", email, "--name", "import").strip()
        port = free_port()
        server = serve(
            url, port, CRM_IN_PROCESS_WORKER="false", CRM_IMPORT_CHUNK_ROWS=str(CHUNK_ROWS)
        )
        try:
            yield url, f"http://127.0.0.1:{port}", key
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CRM_DATABASE_URL": url,
        "CRM_WORKER_INTERVAL_SECONDS": "0.1",
        "CRM_IMPORT_LEASE_SECONDS": "1",
    }
    with log.open("ab") as output:
        return subprocess.Popen([*CLI, "worker"], env=env, stdout=output, stderr=output)


async def written(url: str) -> tuple[int, int]:
    """Contact creations in the audit log and in the outbox."""
    db = Database(url)
    await db.start()
    try:
        async with db.sessionmaker() as session:
            audited = select(func.count()).where(
                audit_log.c.entity_type == "contact", audit_log.c.action == "created"
            )
            emitted = select(func.count()).where(events.c.type == "contact.created")
            return int(await session.scalar(audited) or 0), int(await session.scalar(emitted) or 0)
    finally:
        await db.close()


def test_a_killed_worker_loses_and_doubles_no_row(
    live_api: tuple[str, str, str], tmp_path: Path
) -> None:
    url, api, key = live_api
    log = tmp_path / "worker.log"
    names = [f"P{number:05d}" for number in range(ROWS)]
    content = "First,Last,Note\n" + "".join(f'{name},Crash,"row\n{name}"\n' for name in names)
    client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    response = client.post(
        "/v1/imports",
        files={"file": ("crash.csv", content.encode(), "text/csv")},
        data={"object_type": "contact", "mapping": '{"First": "first_name", "Last": "last_name"}'},
    )
    assert response.status_code == 201, response.text
    job_path = f"/v1/imports/{response.json()['id']}"

    def progress() -> dict[str, Any]:
        job: dict[str, Any] = client.get(job_path).json()
        return job

    worker = start_worker(url, log)
    kills = 0
    deadline = time.monotonic() + 50
    try:
        while kills < KILLS:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            # Wait until this worker has written something, then kill it at a random moment.
            before = progress()["processed"]
            while progress()["processed"] == before:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.02)
            time.sleep(random.uniform(0, 0.3))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            assert progress()["status"] == "running", "the import finished before the kill"
            kills += 1
            worker = start_worker(url, log)
        while (job := progress())["status"] == "running":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    assert kills >= KILLS
    assert {key: job[key] for key in ("status", "total_rows", "processed", "created", "updated",
                                      "skipped", "failed")} == {
        "status": "completed", "total_rows": ROWS, "processed": ROWS, "created": ROWS,
        "updated": 0, "skipped": 0, "failed": 0,
    }  # fmt: skip
    found: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, "sort": "name"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/contacts", params=params).json()
        found += [contact["first_name"] for contact in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert found == names  # each row once, none missing
    assert asyncio.run(written(url)) == (ROWS, ROWS)
    assert client.get(f"{job_path}/errors.csv").text == "row,First,Last,Note,reason\r\n"
