"""Events that say what a change means, written in the change's transaction besides its
`<entity>.<action>` event: deal.stage_changed, deal.won (with everything an ERP order needs),
deal.lost, task.completed; and activity.created."""

from typing import Any

import httpx

from tests.api.factories import (
    create_company,
    create_contact,
    create_deal,
    create_pipeline,
    unique_domain,
)
from tests.conftest import Actor


async def events_since(client: httpx.AsyncClient, cursor: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params={"after": cursor, "limit": 1000})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def feed_end(client: httpx.AsyncClient) -> str:
    cursor: str = (await client.get("/v1/events/cursor")).json()["cursor"]
    return cursor


async def test_a_won_deal_carries_its_lines_company_and_contacts(admin: Actor) -> None:
    pipeline = await create_pipeline(admin)
    stages = {stage["name"]: stage["id"] for stage in pipeline["stages"]}
    company = await create_company(admin, domain=unique_domain(), external_id="ACC-7")
    contact = await create_contact(admin, first_name="Ada")
    deal = await create_deal(admin, pipeline_id=pipeline["id"], company_id=company["id"])
    path = f"/v1/deals/{deal['id']}"
    await admin.client.post(f"{path}/contacts", json={"contact_id": contact["id"]})
    line = {"name": "Seats", "quantity": 3, "unit_price": "19.99"}
    assert (await admin.client.post(f"{path}/line-items", json=line)).status_code == 201
    start = await feed_end(admin.client)

    moved = await admin.client.patch(path, json={"stage_id": stages["Demo"]})
    assert moved.status_code == 200, moved.text
    won = await admin.client.patch(path, json={"stage_id": stages["Won"]})
    assert won.status_code == 200, won.text

    feed = await events_since(admin.client, start)
    assert [e["type"] for e in feed] == [
        "deal.updated", "deal.stage_changed", "deal.updated", "deal.stage_changed", "deal.won"
    ]  # fmt: skip
    assert feed[0]["changed_fields"] == ["stage_changed_at", "stage_id"]
    assert feed[1]["data"] == moved.json()
    event = feed[4]
    assert event["entity_id"] == deal["id"]
    assert event["changed_fields"] is None
    order = event["data"]
    assert {k: v for k, v in order.items() if k != "company"} == {
        k: v for k, v in won.json().items() if k != "company"
    }
    assert order["status"] == "won"
    assert order["amount"] == "59.97"
    assert [(i["name"], i["quantity"], i["unit_price"]) for i in order["line_items"]] == [
        ("Seats", "3", "19.99")
    ]
    assert [c["contact"]["first_name"] for c in order["contacts"]] == ["Ada"]
    assert order["company"]["id"] == company["id"]
    assert order["company"]["external_id"] == "ACC-7"
    assert order["company"]["domain"] == company["domain"]


async def test_lost_and_created_won_deals(admin: Actor) -> None:
    pipeline = await create_pipeline(admin)
    stages = {stage["name"]: stage["id"] for stage in pipeline["stages"]}
    start = await feed_end(admin.client)
    born_won = await create_deal(admin, pipeline_id=pipeline["id"], stage_id=stages["Won"])
    lost = await create_deal(admin, pipeline_id=pipeline["id"])
    response = await admin.client.patch(
        f"/v1/deals/{lost['id']}", json={"stage_id": stages["Lost"], "lost_reason": "price"}
    )
    assert response.status_code == 200, response.text
    # Renaming a won deal is not a second win.
    await admin.client.patch(f"/v1/deals/{born_won['id']}", json={"name": "Renamed"})

    feed = await events_since(admin.client, start)
    assert [(e["type"], e["entity_id"]) for e in feed] == [
        ("deal.created", born_won["id"]),
        ("deal.won", born_won["id"]),
        ("deal.created", lost["id"]),
        ("deal.updated", lost["id"]),
        ("deal.stage_changed", lost["id"]),
        ("deal.lost", lost["id"]),
        ("deal.updated", born_won["id"]),
    ]
    assert feed[1]["data"]["company"] is None
    assert feed[5]["data"]["lost_reason"] == "price"


async def test_task_completed_and_activity_created(rep: Actor, admin: Actor) -> None:
    contact = await create_contact(rep)
    start = await feed_end(admin.client)
    task = (await rep.client.post("/v1/tasks", json={"title": "Call back"})).json()
    done = await rep.client.post(f"/v1/tasks/{task['id']}/complete")
    assert done.status_code == 200, done.text
    await rep.client.post(f"/v1/tasks/{task['id']}/reopen")
    again = await rep.client.post(f"/v1/tasks/{task['id']}/complete")
    activity = await rep.client.post(
        "/v1/activities",
        json={
            "type": "call",
            "occurred_at": "2026-11-01T10:00:00Z",
            "contact_ids": [contact["id"]],
        },
    )
    assert activity.status_code == 201, activity.text

    feed = await events_since(admin.client, start)
    assert [e["type"] for e in feed] == [
        "task.created", "task.updated", "task.completed", "task.updated", "task.updated",
        "task.completed", "activity.created",
    ]  # fmt: skip
    assert feed[2]["data"] == done.json()
    assert feed[5]["data"] == again.json()
    assert feed[6]["data"] == activity.json()
