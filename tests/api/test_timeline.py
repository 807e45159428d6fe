"""Timelines through HTTP: what each record's stream merges, newest first, the `kinds` filter,
and paging through items that share one timestamp."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_api.core.ids import clock
from tests.api.factories import create_company, create_contact, create_deal, default_pipeline
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KIND_ORDER = [  # at one instant, listed in this order
    "activity", "task_completed", "task_created", "stage_changed", "lifecycle_changed",
    "field_changed",
]  # fmt: skip


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def pinned_clock() -> Iterator[datetime]:
    with clock.pinned(NOW):
        yield NOW


async def walk_timeline(actor: Actor, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = await actor.client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        items.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the timeline did not end")


async def post(actor: Actor, path: str, **body: Any) -> dict[str, Any]:
    response = await actor.client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


class TestContactTimeline:
    async def test_merges_every_kind_newest_first(self, rep: Actor) -> None:
        with clock.pinned(NOW - timedelta(hours=5)):
            contact = await create_contact(rep, first_name="Ada")
        path = f"/v1/contacts/{contact['id']}"
        with clock.pinned(NOW - timedelta(hours=4)):
            call = await post(rep, "/v1/activities", type="call", subject="Intro",
                              outcome="connected", contact_ids=[contact["id"]])  # fmt: skip
        with clock.pinned(NOW - timedelta(hours=3)):
            task = await post(rep, "/v1/tasks", title="Send deck", contact_id=contact["id"])
        with clock.pinned(NOW - timedelta(hours=2)):
            await rep.client.patch(path, json={"lifecycle_stage": "mql", "title": "CTO"})
        with clock.pinned(NOW - timedelta(hours=1)):
            await post(rep, f"/v1/tasks/{task['id']}/complete")

        response = await rep.client.get(f"{path}/timeline")
        assert response.status_code == 200, response.text
        items = response.json()["data"]
        assert [(item["kind"], item["occurred_at"][:19]) for item in items] == [
            ("task_completed", "2026-06-01T11:00:00"),
            ("lifecycle_changed", "2026-06-01T10:00:00"),
            ("field_changed", "2026-06-01T10:00:00"),
            ("task_created", "2026-06-01T09:00:00"),
            ("activity", "2026-06-01T08:00:00"),
            ("lifecycle_changed", "2026-06-01T07:00:00"),
        ]
        by_kind: dict[str, dict[str, Any]] = {}
        for item in items:
            by_kind.setdefault(item["kind"], item)  # the newest of each kind
        activity = by_kind["activity"]
        assert activity["id"] == call["id"]
        assert activity["summary"] == "Call (connected): Intro"
        assert activity["actor"] == {"id": str(rep.id), "name": "Test rep"}
        assert activity["data"]["contact_ids"] == [contact["id"]]
        assert by_kind["task_completed"]["summary"] == "Task completed: Send deck"
        assert by_kind["task_completed"]["data"]["task_id"] == task["id"]
        assert by_kind["lifecycle_changed"]["data"] == {"from_stage": "lead", "to_stage": "mql"}
        assert by_kind["lifecycle_changed"]["summary"] == "Lifecycle: lead → mql"
        changes = by_kind["field_changed"]["data"]["changes"]
        assert set(changes) == {"lifecycle_stage", "lifecycle_stage_changed_at", "title"}
        assert changes["title"] == [None, "CTO"]
        assert items[-1]["data"] == {"from_stage": None, "to_stage": "lead"}

    async def test_kinds_filter(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        await post(rep, "/v1/activities", type="note", contact_ids=[contact["id"]])
        await post(rep, "/v1/tasks", title="T", contact_id=contact["id"])
        path = f"/v1/contacts/{contact['id']}/timeline"
        kinds = await rep.client.get(path, params={"kinds": "activity,task_created"})
        assert [item["kind"] for item in kinds.json()["data"]] == ["task_created", "activity"]
        repeated = await rep.client.get(
            path, params=[("kinds", "activity"), ("kinds", "task_created")]
        )
        assert repeated.json()["data"] == kinds.json()["data"]
        none = await rep.client.get(path, params={"kinds": "stage_changed"})
        assert none.json() == {"data": [], "next_cursor": None}
        bad = await rep.client.get(path, params={"kinds": "activity,gossip"})
        assert error_fields(assert_problem(bad, 422, "validation")) == {"query.kinds"}

    async def test_archived_activities_leave_the_stream(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        note = await post(rep, "/v1/activities", type="note", contact_ids=[contact["id"]])
        await rep.client.delete(f"/v1/activities/{note['id']}")
        path = f"/v1/contacts/{contact['id']}/timeline"
        kinds = [i["kind"] for i in (await rep.client.get(path)).json()["data"]]
        assert "activity" not in kinds

    async def test_unknown_record_and_bad_cursor(self, rep: Actor) -> None:
        unknown = "0190a0a0-0000-7000-8000-000000000000"
        for resource in ("contacts", "companies", "deals"):
            response = await rep.client.get(f"/v1/{resource}/{unknown}/timeline")
            assert_problem(response, 404, "not-found")
        contact = await create_contact(rep)
        response = await rep.client.get(
            f"/v1/contacts/{contact['id']}/timeline", params={"cursor": "bm9wZQ"}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.cursor"}


class TestPagingWithTies:
    async def test_items_sharing_one_timestamp_are_each_seen_once(
        self, rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)  # lifecycle_changed at NOW
        ids = [contact["id"]]
        for i in range(90):
            await post(rep, "/v1/activities", type="note", subject=f"n{i}", contact_ids=ids)
        tasks = [await post(rep, "/v1/tasks", title=f"t{i}", contact_id=contact["id"])
                 for i in range(20)]  # fmt: skip
        for task in tasks[:10]:
            await post(rep, f"/v1/tasks/{task['id']}/complete")
        for i in range(5):
            await rep.client.patch(f"/v1/contacts/{contact['id']}", json={"title": f"v{i}"})
        expected_total = 1 + 90 + 20 + 10 + 5
        assert expected_total >= 120

        items = await walk_timeline(rep, f"/v1/contacts/{contact['id']}/timeline", limit=7)
        keys = [(item["kind"], item["id"]) for item in items]
        assert len(keys) == expected_total
        assert len(set(keys)) == expected_total, "no item twice"
        assert {item["occurred_at"] for item in items} == {items[0]["occurred_at"]}
        ranks = [KIND_ORDER.index(kind) for kind, _ in keys]
        assert ranks == sorted(ranks)
        for kind in KIND_ORDER:
            same_kind = [item_id for k, item_id in keys if k == kind]
            assert same_kind == sorted(same_kind, reverse=True), kind

        walked_again = await walk_timeline(
            rep, f"/v1/contacts/{contact['id']}/timeline", limit=50, kinds="activity,task_created"
        )
        assert [(i["kind"], i["id"]) for i in walked_again] == [
            key for key in keys if key[0] in ("activity", "task_created")
        ]


class TestCompanyAndDeal:
    async def test_company_includes_its_contacts_and_deals_activities(self, rep: Actor) -> None:
        company = await create_company(rep)
        contact = await create_contact(rep, company_id=company["id"])
        deal = await create_deal(rep, company_id=company["id"])
        other = await create_contact(rep)
        own = await post(rep, "/v1/activities", type="note", company_id=company["id"])
        of_contact = await post(rep, "/v1/activities", type="note", contact_ids=[contact["id"]])
        of_deal = await post(rep, "/v1/activities", type="note", deal_id=deal["id"])
        both = await post(rep, "/v1/activities", type="note", contact_ids=[contact["id"]],
                          deal_id=deal["id"])  # fmt: skip
        await post(rep, "/v1/activities", type="note", contact_ids=[other["id"]])
        response = await rep.client.get(
            f"/v1/companies/{company['id']}/timeline", params={"kinds": "activity"}
        )
        assert [item["id"] for item in response.json()["data"]] == [
            both["id"], of_deal["id"], of_contact["id"], own["id"]
        ]  # fmt: skip

    async def test_deal_stage_changes(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(rep)
        await post(rep, f"/v1/deals/{deal['id']}/move", stage_id=sales["by_name"]["Qualified"])
        await post(rep, "/v1/activities", type="note", deal_id=deal["id"])
        response = await rep.client.get(f"/v1/deals/{deal['id']}/timeline")
        items = response.json()["data"]
        assert [item["kind"] for item in items] == [
            "activity", "stage_changed", "field_changed", "stage_changed"
        ]  # fmt: skip
        assert items[1]["summary"] == "Stage: New → Qualified"
        assert items[1]["data"]["to_stage_name"] == "Qualified"
        assert items[3]["summary"] == "Stage: New"
