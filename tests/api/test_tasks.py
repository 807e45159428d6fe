"""Tasks through HTTP: fields, completion, filters (overdue on a pinned clock), the due order,
who may reassign, and `next_task` on contacts and deals."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_api.core.ids import clock
from tests.api.factories import archive, create_company, create_contact, create_deal, list_ids
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def create_task(actor: Actor, **fields: Any) -> dict[str, Any]:
    fields.setdefault("title", "Follow up")
    response = await actor.client.post("/v1/tasks", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def pinned_clock() -> Iterator[datetime]:
    with clock.pinned(NOW):
        yield NOW


class TestLifecycle:
    async def test_create_defaults(self, rep: Actor) -> None:
        task = await create_task(rep, title="  Call   back ")
        assert task["title"] == "Call back"
        assert (task["status"], task["priority"]) == ("open", "normal")
        assert task["assignee_id"] == str(rep.id)
        assert task["completed_at"] is None
        assert "priority_rank" not in task

    async def test_complete_and_reopen(self, rep: Actor, pinned_clock: datetime) -> None:
        task = await create_task(rep)
        done = await rep.client.post(f"/v1/tasks/{task['id']}/complete")
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "done"
        assert datetime.fromisoformat(done.json()["completed_at"]) == NOW
        assert done.json()["completed_by"] == str(rep.id)
        assert done.headers["etag"] == '"2"'
        stale = await rep.client.post(f"/v1/tasks/{task['id']}/reopen", headers={"If-Match": '"1"'})
        assert_problem(stale, 412, "precondition-failed")
        reopened = await rep.client.post(f"/v1/tasks/{task['id']}/reopen")
        assert reopened.json()["status"] == "open"
        assert reopened.json()["completed_at"] is None
        cancelled = await rep.client.patch(f"/v1/tasks/{task['id']}", json={"status": "cancelled"})
        assert cancelled.json()["completed_at"] is None

    async def test_bad_input(self, rep: Actor) -> None:
        contact = await create_contact(rep)
        company = await create_company(rep)
        archived = await create_contact(rep)
        await archive(rep, f"/v1/contacts/{archived['id']}")
        cases = [
            ({"priority": "urgent"}, {"body.priority"}),
            ({"status": "later"}, {"body.status"}),
            ({"due_at": "2026-01-01T10:00:00"}, {"body.due_at"}),
            ({"contact_id": contact["id"], "company_id": company["id"]},
             {"body.contact_id", "body.company_id"}),
            ({"contact_id": archived["id"]}, {"body.contact_id"}),
            ({"title": ""}, {"body.title"}),
            ({"assignee_id": "0190a0a0-0000-7000-8000-000000000000"}, {"body.assignee_id"}),
        ]  # fmt: skip
        for fields, expected in cases:
            response = await rep.client.post("/v1/tasks", json={"title": "T", **fields})
            assert error_fields(assert_problem(response, 422, "validation")) == expected, fields


class TestLists:
    async def test_due_order_then_priority_and_filters(
        self, rep: Actor, other_rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)
        yesterday, tomorrow = iso(NOW - timedelta(days=1)), iso(NOW + timedelta(days=1))
        late = await create_task(rep, title="late", due_at=yesterday, priority="low")
        late_high = await create_task(rep, title="late high", due_at=yesterday, priority="high")
        soon = await create_task(rep, title="soon", due_at=tomorrow, contact_id=contact["id"])
        undated = await create_task(rep, title="someday")
        theirs = await create_task(other_rep, title="theirs", due_at=yesterday)
        done = await create_task(rep, title="done", due_at=yesterday)
        await rep.client.post(f"/v1/tasks/{done['id']}/complete")

        async def found(**params: Any) -> list[str]:
            return await list_ids(rep.client, "/v1/tasks", **params)

        everything = await found()
        # Same due time: high priority first, then normal (by id), then low.
        assert everything[:4] == [late_high["id"], theirs["id"], done["id"], late["id"]]
        assert everything[-2:] == [soon["id"], undated["id"]]
        assert await found(assignee_id="me", status="open") == [
            late_high["id"], late["id"], soon["id"], undated["id"]
        ]  # fmt: skip
        assert await found(assignee_id=str(other_rep.id)) == [theirs["id"]]
        assert set(await found(overdue="true")) == {late["id"], late_high["id"], theirs["id"]}
        assert set(await found(overdue="false")) == {soon["id"], undated["id"], done["id"]}
        assert await found(contact_id=contact["id"]) == [soon["id"]]
        assert await found(due_after=iso(NOW), due_before=iso(NOW + timedelta(days=2))) == [
            soon["id"]
        ]
        with clock.pinned(NOW + timedelta(days=2)):
            assert soon["id"] in await found(overdue="true")

    async def test_me_needs_no_id_and_bad_values_are_422(self, rep: Actor) -> None:
        response = await rep.client.get("/v1/tasks", params={"assignee_id": "you"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.assignee_id"}


class TestPermissions:
    async def test_reps_reassign_only_tasks_they_created_or_hold(
        self, rep: Actor, other_rep: Actor, manager: Actor
    ) -> None:
        given = await create_task(rep, assignee_id=str(other_rep.id))
        assert given["assignee_id"] == str(other_rep.id)
        by_assignee = await other_rep.client.patch(
            f"/v1/tasks/{given['id']}", json={"assignee_id": str(rep.id)}
        )
        assert by_assignee.status_code == 200, "the assignee may hand it back"
        managers = await create_task(manager)
        response = await rep.client.patch(
            f"/v1/tasks/{managers['id']}", json={"assignee_id": str(rep.id)}
        )
        assert_problem(response, 403, "forbidden")
        response = await rep.client.post(f"/v1/tasks/{managers['id']}/complete")
        assert_problem(response, 403, "forbidden")


class TestNextTask:
    async def test_contacts_and_deals_show_their_earliest_open_task(
        self, rep: Actor, pinned_clock: datetime
    ) -> None:
        contact = await create_contact(rep)
        deal = await create_deal(rep)
        path = f"/v1/contacts/{contact['id']}"

        async def next_title(record_path: str) -> str | None:
            task = (await rep.client.get(record_path)).json()["next_task"]
            return None if task is None else str(task["title"])

        assert await next_title(path) is None
        await create_task(rep, title="undated", contact_id=contact["id"])
        assert await next_title(path) == "undated"
        later = await create_task(rep, title="later", contact_id=contact["id"],
                                  due_at=iso(NOW + timedelta(days=3)))  # fmt: skip
        first = await create_task(rep, title="first", contact_id=contact["id"],
                                  due_at=iso(NOW + timedelta(days=1)))  # fmt: skip
        assert await next_title(path) == "first"
        listed = await rep.client.get("/v1/contacts", params={"q": contact["email"][:6]})
        assert listed.json()["data"][0]["next_task"]["id"] == first["id"]
        await rep.client.post(f"/v1/tasks/{first['id']}/complete")
        assert await next_title(path) == "later"
        await archive(rep, f"/v1/tasks/{later['id']}")
        assert await next_title(path) == "undated"
        await rep.client.post(f"/v1/tasks/{first['id']}/reopen")
        assert await next_title(path) == "first"

        moved = await rep.client.patch(
            f"/v1/tasks/{first['id']}", json={"contact_id": None, "deal_id": deal["id"]}
        )
        assert moved.status_code == 200, moved.text
        assert await next_title(path) == "undated"
        deal_next = (await rep.client.get(f"/v1/deals/{deal['id']}")).json()["next_task"]
        assert deal_next == {
            "id": first["id"],
            "title": "first",
            "due_at": first["due_at"],
            "priority": "normal",
            "assignee_id": str(rep.id),
        }
