"""The reference ERP connector (`examples/erp_sync/connector.py`) against a live server: 200
deals are won concurrently while the connector is killed with SIGKILL at random moments and
restarted; in the end every won deal has exactly one order, with the right lines and total,
and carries its order number as `external_id`."""

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.factories import STAGES
from tests.databases import fresh_database
from tests.processes import free_port, run, serve

CONNECTOR = Path(__file__).resolve().parents[1] / "examples" / "erp_sync" / "connector.py"
DEALS = 200
KILLS = 5


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A migrated database, an admin's key, and `crm-api serve` on it (worker in process)."""
    with fresh_database(tmp_path_factory.mktemp("erp")) as url:
        run(url, "migrate")
        run(url, "create-user", "--email", "erp@example.com", "--name", "ERP", "--role", "admin")
        key = run(url, "create-api-key", "--email", "erp@example.com", "--name", "erp").strip()
        port = free_port()
        server = serve(url, port, CRM_WORKER_INTERVAL_SECONDS="0.2")
        try:
            yield f"http://127.0.0.1:{port}", key
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


class RetryWhenBusy(httpx.AsyncHTTPTransport):
    """Does what a 503 `busy` problem asks of a client: waits `Retry-After` seconds and sends
    the request again (it wrote nothing). SQLite's one writer can be held past the lock timeout
    on a loaded machine, with 8 clients, the connector and the in-process worker all writing."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(10):
            response = await super().handle_async_request(request)
            if response.status_code != 503:
                break
            await response.aclose()
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        return response


async def open_deals(client: httpx.AsyncClient) -> tuple[list[dict[str, Any]], str]:
    """DEALS open deals with two or three line items each, and the won stage's id."""
    response = await client.post("/v1/pipelines", json={"name": "ERP", "stages": STAGES})
    assert response.status_code == 201, response.text
    pipeline = response.json()
    won = next(s["id"] for s in pipeline["stages"] if s["kind"] == "won")
    company = (await client.post("/v1/companies", json={"name": "Buyer Ltd"})).json()
    gate = asyncio.Semaphore(8)

    async def one(number: int) -> dict[str, Any]:
        async with gate:
            created = await client.post(
                "/v1/deals",
                json={"name": f"Deal {number}", "pipeline_id": pipeline["id"],
                      "company_id": company["id"], "currency": "EUR"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            deal = created.json()
            for line in range(2 + number % 2):
                item = {"name": f"Item {line}", "quantity": str(line + 1),
                        "unit_price": f"{number % 50 + 1}.{line}5"}  # fmt: skip
                response = await client.post(f"/v1/deals/{deal['id']}/line-items", json=item)
                assert response.status_code == 201, response.text
            return dict((await client.get(f"/v1/deals/{deal['id']}")).json())

    return list(await asyncio.gather(*(one(n) for n in range(DEALS)))), won


async def win_all(client: httpx.AsyncClient, deals: list[dict[str, Any]], won: str) -> None:
    gate = asyncio.Semaphore(8)

    async def win(deal: dict[str, Any]) -> None:
        async with gate:
            response = await client.post(f"/v1/deals/{deal['id']}/move", json={"stage_id": won})
            assert response.status_code == 200, response.text
            await asyncio.sleep(random.uniform(0, 0.02))

    await asyncio.gather(*(win(deal) for deal in deals))


def start_connector(api: str, key: str, erp: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(CONNECTOR), "--api", api, "--key", key, "--erp", str(erp),
               "--interval", "0.1"]  # fmt: skip
    with (erp.parent / "connector.log").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=log)


def test_every_won_deal_gets_exactly_one_order_despite_crashes(
    live_api: tuple[str, str], tmp_path: Path
) -> None:
    api, key = live_api
    erp = tmp_path / "erp.sqlite3"

    async def scenario() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=api, headers=headers, timeout=60, transport=RetryWhenBusy()
        ) as client:
            deals, won = await open_deals(client)
            connector = start_connector(api, key, erp)
            winning = asyncio.create_task(win_all(client, deals, won))
            kills = 0
            try:
                deadline = time.monotonic() + 240
                while kills < KILLS or not winning.done() or not await all_numbered(client):
                    log = (erp.parent / "connector.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, f"the connector did not catch up:\n{log}"
                    await asyncio.sleep(random.uniform(0.2, 1.2))
                    if kills < KILLS or not winning.done():
                        connector.send_signal(signal.SIGKILL)
                        connector.wait()
                        kills += 1
                        connector = start_connector(api, key, erp)
                await winning
            finally:
                connector.kill()
                connector.wait()
            assert kills >= KILLS
            return [(await client.get(f"/v1/deals/{deal['id']}")).json() for deal in deals]

    async def all_numbered(client: httpx.AsyncClient) -> bool:
        won = await client.get("/v1/deals", params={"status": "won", "limit": 500})
        rows = won.json()["data"]
        return len(rows) == DEALS and all(row["external_id"] for row in rows)

    final = asyncio.run(scenario())
    db = sqlite3.connect(erp)
    orders = {deal_id: (number, currency, total) for number, deal_id, currency, total in
              db.execute("SELECT number, deal_id, currency, total FROM orders")}  # fmt: skip
    assert len(orders) == DEALS == db.execute("SELECT count(*) FROM orders").fetchone()[0]
    for deal in final:
        number, currency, total = orders[deal["id"]]
        assert deal["external_id"] == number
        assert (currency, Decimal(total)) == (deal["currency"], Decimal(deal["amount"]))
        lines = db.execute(
            "SELECT name, quantity, unit_price, total FROM order_lines WHERE order_number = ? "
            "ORDER BY position",
            (number,),
        ).fetchall()
        expected = [(i["name"], i["quantity"], i["unit_price"], i["amount"])
                    for i in deal["line_items"]]  # fmt: skip
        assert lines == expected
        assert sum(Decimal(line[3]) for line in lines) == Decimal(total)
    assert os.path.getsize(erp) > 0
