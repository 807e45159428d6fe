"""A client generated from the committed OpenAPI document (openapi-python-client) works: it is
generated into a temporary directory, imported, and drives a deal from creation to won through
the real app, parsing every body, errors included, into its own models; and it runs the
integration scenario against a live server, webhooks and feed included."""

import base64
import hashlib
import hmac
import importlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from types import ModuleType
from typing import Any, ClassVar

import httpx
import orjson
import pytest

from crm_api.core.enums import Role
from crm_api.core.principal import ALL_SCOPES
from tests.conftest import make_actor
from tests.databases import fresh_database
from tests.processes import free_port, run, serve

SPEC = Path(__file__).parent.parent / "openapi" / "openapi.json"
PACKAGE = "crm_generated_client"
CONFIG = Path(__file__).resolve().parents[1] / "clients" / "python" / "openapi-python-client.yaml"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    target = tmp_path_factory.mktemp("client")
    bin_dir = Path(sys.executable).parent  # the generator formats its output with ruff
    done = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(SPEC),
         "--meta", "none", "--output-path", str(target / PACKAGE), "--config", str(CONFIG)],
        check=True, capture_output=True, text=True, env={"PATH": str(bin_dir)}, timeout=120,
    )  # fmt: skip
    # Every operation and response is generated: the generator warns of each one it leaves out.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_deal_from_creation_to_won(generated: ModuleType, app: Any, db: Any) -> None:
    actor = await make_actor(app, db, Role.manager, list(ALL_SCOPES))
    client = generated.AuthenticatedClient(base_url="http://test", token=actor.key)
    client.set_async_httpx_client(
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {actor.key}"},
        )
    )
    models = module("models")
    pipelines = await module("api.pipelines.pipelines_list").asyncio(client=client)
    (sales,) = [p for p in pipelines.data if p.is_default]
    stage = {s.name: s.id for s in sales.stages}

    company = await module("api.companies.companies_create").asyncio(
        client=client, body=models.CompanyCreate(name="Initech", domain="initech.example")
    )
    deal = await module("api.deals.deals_create").asyncio(
        client=client,
        body=models.DealCreate(name="Initech rollout", currency="EUR", company_id=company.id),
    )
    assert isinstance(deal, models.DealRead)
    assert deal.stage.name == "New"
    assert deal.company.name == "Initech"

    item = await module("api.deals.deals_add_line_item").asyncio(
        deal.id,
        client=client,
        body=models.LineItemCreate(name="Seats", quantity=3, unit_price="19.99"),
    )
    assert isinstance(item, models.LineItemRead)
    assert item.amount == "59.97"

    move = module("api.deals.deals_move_stage")
    refused = await move.asyncio_detailed(
        deal.id, client=client, body=models.DealMove(stage_id=stage["Lost"])
    )
    assert refused.status_code == 422
    assert isinstance(refused.parsed, models.Problem)
    assert [error.field for error in refused.parsed.errors] == ["body.lost_reason"]

    stale = await move.asyncio_detailed(
        deal.id, client=client, body=models.DealMove(stage_id=stage["Won"]), if_match='"1"'
    )
    assert stale.status_code == 412
    assert stale.parsed.current_version == 2

    won = await move.asyncio(
        deal.id, client=client, body=models.DealMove(stage_id=stage["Won"]), if_match='"2"'
    )
    assert isinstance(won, models.DealRead)
    assert won.status == models.StageKind.WON
    assert won.amount == "59.97"
    assert [line.name for line in won.line_items] == ["Seats"]

    history = await module("api.deals.deals_stage_history").asyncio(deal.id, client=client)
    assert [(h.from_stage_name, h.to_stage_name) for h in history.data] == [
        (None, "New"),
        ("New", "Won"),
    ]
    page = await module("api.deals.deals_list").asyncio(client=client, status=models.StageKind.WON)
    assert [d.id for d in page.data] == [deal.id]

    # Search takes a typed filter tree (named models for each node kind) and full text.
    found = await module("api.deals.deals_search").asyncio(
        client=client,
        body=models.SearchRequest(
            filter_=models.FilterAnd(
                and_=[
                    models.FilterCondition(
                        field="company.domain", op=models.Op.EQ, value="initech.example"
                    ),
                    models.FilterCondition(field="status", op=models.Op.IN, value=["won", "lost"]),
                ]
            ),
            query="rollout",
        ),
    )
    assert [d.id for d in found.data] == [deal.id]
    exported = await module("api.exports.exports_deals_ndjson").asyncio_detailed(client=client)
    assert exported.status_code == 200
    assert [orjson.loads(line)["id"] for line in exported.content.splitlines()] == [str(deal.id)]

    # The metrics are typed too: the won deal is in today's win rate and EUR deal size.
    rate = await module("api.metrics.metrics_win_rate").asyncio(
        client=client, group_by=models.DealGroup.PIPELINE
    )
    assert isinstance(rate, models.WinRateMetrics)
    assert (rate.won, rate.lost, rate.win_rate) == (1, 0, 100.0)
    assert [(group.key, group.won) for group in rate.groups] == [(str(sales.id), 1)]
    size = await module("api.metrics.metrics_deal_size").asyncio(client=client, currency="EUR")
    assert isinstance(size, models.DealSizeMetrics)
    assert (size.deals, size.median, size.excluded_deals) == (1, "59.97", 0)
    assert size.to - size.from_ == timedelta(days=89)
    refused_range = await module("api.metrics.metrics_win_rate").asyncio_detailed(
        client=client, from_=date(2020, 1, 1), to=date(2026, 1, 1)
    )
    assert refused_range.status_code == 422
    assert isinstance(refused_range.parsed, models.Problem)


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint: keeps each request's headers and body, answers 204."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def standard_webhooks_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, written from the Standard Webhooks spec (not crm-api's code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        part.split(",", 1) == ["v1", expected] for part in headers["webhook-signature"].split()
    )


def test_the_integration_scenario_against_a_live_server(
    generated: ModuleType, tmp_path: Path
) -> None:
    """Company, contact and deal with line items, won; `deal.won` read from the feed and
    received as a webhook whose signature checks out; a replayed Idempotency-Key."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=receiver.serve_forever, daemon=True).start()
    with fresh_database(tmp_path) as url:
        run(url, "migrate")
        run(url, "create-user", "--email", "int@example.com", "--name", "Int", "--role", "admin")
        key = run(url, "create-api-key", "--email", "int@example.com", "--name", "t").strip()
        port = free_port()
        server = serve(
            url, port, CRM_WEBHOOK_ALLOW_PRIVATE_TARGETS="true", CRM_WORKER_INTERVAL_SECONDS="0.1"
        )
        try:
            client = generated.AuthenticatedClient(base_url=f"http://127.0.0.1:{port}", token=key)
            scenario(client, f"http://127.0.0.1:{receiver.server_port}/hooks")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            receiver.shutdown()


def scenario(client: Any, hook_url: str) -> None:
    models = module("models")
    hook = module("api.webhooks.webhooks_create").sync(
        client=client, body=models.WebhookCreate(url=hook_url, event_types=["deal.won"])
    )
    assert hook.secret.startswith("whsec_")
    cursor = module("api.events.events_cursor").sync(client=client).cursor

    create_company = module("api.companies.companies_create")
    body = models.CompanyCreate(name="Globex", domain="globex.example")
    company = create_company.sync(client=client, body=body, idempotency_key="globex-1")
    again = create_company.sync_detailed(client=client, body=body, idempotency_key="globex-1")
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.parsed.id == company.id

    contact = module("api.contacts.contacts_create").sync(
        client=client, body=models.ContactCreate(first_name="Hank", email="hank@globex.example")
    )
    deal = module("api.deals.deals_create").sync(
        client=client, body=models.DealCreate(name="Globex order", company_id=company.id)
    )
    add_line = module("api.deals.deals_add_line_item")
    for name, quantity, price in (("Seats", 10, "12.50"), ("Support", 1, "99.00")):
        line = models.LineItemCreate(name=name, quantity=quantity, unit_price=price)
        add_line.sync(deal.id, client=client, body=line)
    module("api.deals.deals_add_contact").sync(
        deal.id, client=client, body=models.DealContactInput(contact_id=contact.id)
    )
    pipelines = module("api.pipelines.pipelines_list").sync(client=client).data
    sales = next(p for p in pipelines if p.is_default)
    won_stage = next(s.id for s in sales.stages if s.kind == models.StageKind.WON)
    won = module("api.deals.deals_move_stage").sync(
        deal.id, client=client, body=models.DealMove(stage_id=won_stage)
    )
    assert won.amount == "224.00"

    feed = module("api.events.events_list").sync(client=client, after=cursor, types="deal.won")
    (event,) = feed.data
    assert (event.type_, event.entity_id) == ("deal.won", deal.id)
    order = event.data.additional_properties
    assert [line["name"] for line in order["line_items"]] == ["Seats", "Support"]
    assert order["company"]["domain"] == "globex.example"
    assert [c["contact"]["email"] for c in order["contacts"]] == ["hank@globex.example"]

    deadline = time.monotonic() + 30
    while not Receiver.received:
        assert time.monotonic() < deadline, "no webhook arrived"
        time.sleep(0.1)
    headers, payload = Receiver.received[0]
    assert standard_webhooks_valid(hook.secret, headers, payload)
    assert not standard_webhooks_valid("whsec_" + base64.b64encode(b"x" * 24).decode(), headers,
                                       payload)  # fmt: skip
    assert orjson.loads(payload)["id"] == str(event.id)
