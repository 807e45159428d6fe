"""Deal lists: every filter, every sort in both directions, and cursors that walk the whole
order, including the block of deals without an expected close date."""

from typing import Any

import pytest

from tests.api.factories import create_company, create_deal, default_pipeline, list_ids, walk
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


@pytest.fixture
async def deals(rep: Actor, other_rep: Actor) -> dict[str, dict[str, Any]]:
    sales = await default_pipeline(rep.client)
    stage = sales["by_name"]
    company = await create_company(rep, name="Globex")
    specs = {
        "a": {"amount": "100.00", "expected_close_date": "2026-03-01", "name": "Alpha deal"},
        "b": {"amount": "50.00", "expected_close_date": None, "stage_id": stage["Proposal"]},
        "c": {"amount": "300.00", "expected_close_date": "2026-01-15",
              "company_id": company["id"], "name": "Gamma expansion"},
        "d": {"amount": "50.00", "expected_close_date": None, "stage_id": stage["Won"]},
        "e": {"amount": "7.50", "expected_close_date": "2026-03-01", "currency": "EUR",
              "stage_id": stage["Lost"], "lost_reason": "Price"},
    }  # fmt: skip
    made = {key: await create_deal(rep, **spec) for key, spec in specs.items()}
    made["f"] = await create_deal(other_rep, amount="1.00", expected_close_date="2027-01-01")
    return made


def names(deals: dict[str, dict[str, Any]], ids: list[str]) -> list[str]:
    by_id = {deal["id"]: key for key, deal in deals.items()}
    return [by_id[deal_id] for deal_id in ids]


async def walked(actor: Actor, **params: Any) -> list[str]:
    pages = await walk(actor.client, "/v1/deals", limit=1, **params)
    return [deal["id"] for page in pages for deal in page]


class TestFilters:
    async def test_each_filter(self, rep: Actor, other_rep: Actor, deals: Any) -> None:
        sales = await default_pipeline(rep.client)

        async def found(**params: Any) -> list[str]:
            return sorted(names(deals, await list_ids(rep.client, "/v1/deals", **params)))

        assert await found() == ["a", "b", "c", "d", "e", "f"]
        assert await found(pipeline_id=sales["id"]) == ["a", "b", "c", "d", "e", "f"]
        assert await found(stage_id=sales["by_name"]["Proposal"]) == ["b"]
        assert await found(status="open") == ["a", "b", "c", "f"]
        assert await found(status="won") == ["d"]
        assert await found(status="lost") == ["e"]
        assert await found(owner_id=str(other_rep.id)) == ["f"]
        assert await found(company_id=deals["c"]["company_id"]) == ["c"]
        assert await found(expected_close_from="2026-03-01") == ["a", "e", "f"]
        assert await found(expected_close_to="2026-03-01") == ["a", "c", "e"]
        assert await found(expected_close_from="2026-02-01", expected_close_to="2026-12-31") == [
            "a", "e"
        ]  # fmt: skip
        assert await found(amount_min="50") == ["a", "b", "c", "d"]
        assert await found(amount_max="50.00") == ["b", "d", "e", "f"]
        assert await found(amount_min="7.5", amount_max="7.5") == ["e"]
        assert await found(q="gam") == ["c"]
        assert await found(q="EXPANSION") == ["c"]
        assert await found(status="open", amount_min="100") == ["a", "c"]

    async def test_bad_filter_values_are_422(self, rep: Actor) -> None:
        for params, field in (
            ({"status": "closed"}, "query.status"),
            ({"amount_min": "abc"}, "query.amount_min"),
            ({"amount_max": "-1"}, "query.amount_max"),
            ({"expected_close_from": "tomorrow"}, "query.expected_close_from"),
            ({"stage_id": "nope"}, "query.stage_id"),
            ({"sort": "probability"}, "query.sort"),
        ):
            response = await rep.client.get("/v1/deals", params=params)
            assert error_fields(assert_problem(response, 422, "validation")) == {field}


class TestSorts:
    async def test_amount_both_ways_with_ties_by_id(self, rep: Actor, deals: Any) -> None:
        ascending = names(deals, await walked(rep, sort="amount"))
        assert ascending[:2] == ["f", "e"]
        assert sorted(ascending[2:4]) == ["b", "d"]
        assert ascending[4:] == ["a", "c"]
        assert names(deals, await walked(rep, sort="-amount")) == list(reversed(ascending))
        assert deals["b"]["id"] < deals["d"]["id"]  # ids are time-ordered
        assert ascending[2:4] == ["b", "d"]

    async def test_expected_close_date_puts_undated_deals_last(
        self, rep: Actor, deals: Any
    ) -> None:
        ascending = names(deals, await walked(rep, sort="expected_close_date"))
        assert ascending == ["c", "a", "e", "f", "b", "d"]
        descending = names(deals, await walked(rep, sort="-expected_close_date"))
        assert descending == list(reversed(ascending))

    async def test_larger_pages_agree_with_single_steps(self, rep: Actor, deals: Any) -> None:
        for sort in ("expected_close_date", "-expected_close_date", "amount", "name"):
            pages = await walk(rep.client, "/v1/deals", limit=4, sort=sort)
            assert [len(page) for page in pages] == [4, 2]
            assert [d["id"] for page in pages for d in page] == await walked(rep, sort=sort)

    async def test_created_and_updated(self, rep: Actor, deals: Any) -> None:
        created = names(deals, await walked(rep, sort="created_at"))
        assert created == ["a", "b", "c", "d", "e", "f"]
        await rep.client.patch(f"/v1/deals/{deals['a']['id']}", json={"next_step": "call"})
        updated = names(deals, await walked(rep, sort="-updated_at"))
        assert updated[0] == "a"

    async def test_cursor_of_another_sort_is_422(self, rep: Actor, deals: Any) -> None:
        first = await rep.client.get("/v1/deals", params={"limit": 1, "sort": "amount"})
        cursor = first.json()["next_cursor"]
        response = await rep.client.get(
            "/v1/deals", params={"limit": 1, "sort": "expected_close_date", "cursor": cursor}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.cursor"}

    async def test_list_items_embed_contacts_and_line_items(self, rep: Actor, deals: Any) -> None:
        deal_id = deals["a"]["id"]
        await rep.client.post(
            f"/v1/deals/{deal_id}/line-items",
            json={"name": "Seat", "quantity": 2, "unit_price": "60.00"},
        )
        response = await rep.client.get("/v1/deals", params={"q": "alpha", "include_total": True})
        assert response.json()["total"] == 1
        (item,) = response.json()["data"]
        assert item["amount"] == "120.00"
        assert [line["name"] for line in item["line_items"]] == ["Seat"]
        assert item["contacts"] == []
