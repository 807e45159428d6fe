"""Routing: each router rejects paths outside its prefix early (`PrefixRouter`), which must not
change what matches: unknown paths and wrong methods still get problems, routes that share a
prefix across routers still resolve, and an app mounted under a root path still routes."""

from typing import Any

import httpx

from tests.api.helpers import assert_problem
from tests.conftest import Actor


async def test_unknown_path_and_wrong_method_are_problems(admin: Actor) -> None:
    assert_problem(await admin.client.get("/v1/metricsx/win-rate"), 404, "not-found")
    assert_problem(await admin.client.get("/v1/nothing-here"), 404, "not-found")
    response = await admin.client.delete("/v1/metrics/win-rate")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET"


async def test_routers_sharing_a_prefix_both_resolve(admin: Actor) -> None:
    # /v1/companies is served by the companies router and by the company-contacts router.
    created = await admin.client.post("/v1/companies", json={"name": "Acme"})
    assert created.status_code == 201, created.text
    company_id = created.json()["id"]
    contacts = await admin.client.get(f"/v1/companies/{company_id}/contacts")
    assert contacts.status_code == 200, contacts.text
    assert contacts.json()["data"] == []
    # /v1/pipelines: the pipelines router, and the board on the deals router.
    pipelines = (await admin.client.get("/v1/pipelines")).json()["data"]
    board = await admin.client.get(f"/v1/pipelines/{pipelines[0]['id']}/board")
    assert board.status_code == 200, board.text


async def test_routes_under_a_root_path(app: Any, admin: Actor) -> None:
    transport = httpx.ASGITransport(app=app, root_path="/crm")
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=admin.headers
    ) as client:
        response = await client.get("/crm/v1/metrics/win-rate?from=2026-01-01&to=2026-01-31")
    assert response.status_code == 200, response.text
    assert response.json()["won"] == 0
