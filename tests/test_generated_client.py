"""A client generated from the committed OpenAPI document (openapi-python-client) works: it is
generated into a temporary directory, imported, and drives a deal from creation to won through
the real app, parsing every body, errors included, into its own models."""

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from crm_api.core.enums import Role
from crm_api.core.principal import ALL_SCOPES
from tests.conftest import make_actor

SPEC = Path(__file__).parent.parent / "openapi" / "openapi.json"
PACKAGE = "crm_generated_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    target = tmp_path_factory.mktemp("client")
    bin_dir = Path(sys.executable).parent  # the generator formats its output with ruff
    subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(SPEC),
         "--meta", "none", "--output-path", str(target / PACKAGE)],
        check=True, capture_output=True, env={"PATH": str(bin_dir)}, timeout=120,
    )  # fmt: skip
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
