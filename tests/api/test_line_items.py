"""Line items through HTTP: exact totals (JPY, USD, KWD), the derived deal amount, products as
price sources, and the bad input that must change nothing."""

import asyncio
from decimal import Decimal
from typing import Any

from tests.api.factories import archive, create_deal, create_product
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


async def add_item(actor: Actor, deal_id: str, **fields: Any) -> dict[str, Any]:
    response = await actor.client.post(f"/v1/deals/{deal_id}/line-items", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/deals/{deal_id}/line-items/{body['id']}"
    assert response.headers["etag"] == '"1"'
    return body


async def get_deal(actor: Actor, deal_id: str) -> dict[str, Any]:
    response = await actor.client.get(f"/v1/deals/{deal_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


class TestTotals:
    async def test_usd_total_is_the_exact_sum_rounded_half_even(self, rep: Actor) -> None:
        deal = await create_deal(rep, currency="USD", amount="999.00")
        items = [
            # 3 x 19.99 = 59.97
            await add_item(rep, deal["id"], name="Seats", quantity=3, unit_price="19.99"),
            # 1.5 x 10.00 x 0.875 = 13.125 -> shown 13.12 (half to even)
            await add_item(
                rep,
                deal["id"],
                name="Hours",
                quantity="1.5",
                unit_price="10.00",
                discount_percent="12.5",
            ),
            # 2 x 0.01 x 0.5 = 0.01
            await add_item(
                rep, deal["id"], name="SMS", quantity=2, unit_price="0.01", discount_percent=50
            ),
        ]
        assert [item["amount"] for item in items] == ["59.97", "13.12", "0.01"]
        assert items[1]["quantity"] == "1.5"
        assert items[1]["discount_percent"] == "12.5"
        assert items[0]["unit_price"] == "19.99"
        assert [item["position"] for item in items] == [0, 1, 2]
        body = await get_deal(rep, deal["id"])
        # 59.97 + 13.125 + 0.01 = 73.105 -> 73.10 (half to even)
        assert body["amount"] == "73.10"
        assert body["weighted_amount"] == "7.31"  # 10 % of 73.10
        assert [item["id"] for item in body["line_items"]] == [item["id"] for item in items]
        assert body["version"] == 4

    async def test_jpy_total_has_no_decimals(self, rep: Actor) -> None:
        deal = await create_deal(rep, currency="JPY")
        # 3 x 333 x 0.9 = 899.1 -> shown 899
        first = await add_item(rep, deal["id"], name="A", quantity=3, unit_price="333",
                               discount_percent=10)  # fmt: skip
        # 1 x 1001 x 0.5 = 500.5 -> shown 500 (half to even)
        second = await add_item(rep, deal["id"], name="B", quantity=1, unit_price="1001",
                                discount_percent=50)  # fmt: skip
        assert (first["amount"], second["amount"]) == ("899", "500")
        assert first["unit_price"] == "333"
        # 899.1 + 500.5 = 1399.6 -> 1400: the exact sum is rounded once
        assert (await get_deal(rep, deal["id"]))["amount"] == "1400"

    async def test_kwd_total_has_three_decimals(self, rep: Actor) -> None:
        deal = await create_deal(rep, currency="KWD")
        # 2 x 1.255 = 2.510
        await add_item(rep, deal["id"], name="A", quantity=2, unit_price="1.255")
        # 7 x 0.125 x 0.666667 = 0.583333625
        await add_item(rep, deal["id"], name="B", quantity=7, unit_price="0.125",
                       discount_percent="33.3333")  # fmt: skip
        # 2.510 + 0.583333625 = 3.093333625 -> 3.093
        assert (await get_deal(rep, deal["id"]))["amount"] == "3.093"
        # + 1 x 0.001 x 0.5 = 0.0005 -> 3.0938336... -> 3.094
        await add_item(rep, deal["id"], name="C", quantity=1, unit_price="0.001",
                       discount_percent=50)  # fmt: skip
        assert (await get_deal(rep, deal["id"]))["amount"] == "3.094"

    async def test_kwd_ties_round_to_even(self, rep: Actor) -> None:
        deal = await create_deal(rep, currency="KWD")
        await add_item(rep, deal["id"], name="A", quantity=1, unit_price="1.000")
        half = await add_item(rep, deal["id"], name="B", quantity=1, unit_price="0.001",
                              discount_percent=50)  # fmt: skip
        assert (await get_deal(rep, deal["id"]))["amount"] == "1.000"  # 1.0005 -> 1.000
        response = await rep.client.patch(
            f"/v1/deals/{deal['id']}/line-items/{half['id']}", json={"unit_price": "0.003"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"2"'
        assert (await get_deal(rep, deal["id"]))["amount"] == "1.002"  # 1.0015 -> 1.002

    async def test_update_and_delete_recompute_and_the_last_item_leaves_the_amount(
        self, rep: Actor
    ) -> None:
        deal = await create_deal(rep)
        first = await add_item(rep, deal["id"], name="A", quantity=2, unit_price="10.00")
        second = await add_item(rep, deal["id"], name="B", quantity=1, unit_price="5.00")
        assert (await get_deal(rep, deal["id"]))["amount"] == "25.00"
        path = f"/v1/deals/{deal['id']}/line-items/{first['id']}"
        response = await rep.client.patch(path, json={"quantity": 3}, headers={"If-Match": '"1"'})
        assert response.status_code == 200
        assert response.json()["amount"] == "30.00"
        assert (await get_deal(rep, deal["id"]))["amount"] == "35.00"
        assert (await rep.client.delete(path)).status_code == 204
        assert (await rep.client.get(path)).status_code == 404
        assert (await get_deal(rep, deal["id"]))["amount"] == "5.00"
        await rep.client.delete(f"/v1/deals/{deal['id']}/line-items/{second['id']}")
        emptied = await get_deal(rep, deal["id"])
        assert emptied["line_items"] == []
        assert emptied["amount"] == "5.00"
        response = await rep.client.patch(f"/v1/deals/{deal['id']}", json={"amount": "7.00"})
        assert response.status_code == 200
        assert response.json()["amount"] == "7.00"

    async def test_position_orders_the_items(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        a = await add_item(rep, deal["id"], name="A", quantity=1, unit_price="1.00")
        b = await add_item(rep, deal["id"], name="B", quantity=1, unit_price="1.00", position=0)
        listed = await rep.client.get(f"/v1/deals/{deal['id']}/line-items")
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["data"]] == [b["id"], a["id"]]
        assert listed.json()["next_cursor"] is None


class TestDerivedAmount:
    async def test_writing_the_amount_of_a_deal_with_items_is_409(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        await add_item(rep, deal["id"], name="A", quantity=1, unit_price="10.00")
        response = await rep.client.patch(f"/v1/deals/{deal['id']}", json={"amount": "99.00"})
        assert_problem(response, 409, "conflict")
        unchanged = await rep.client.patch(
            f"/v1/deals/{deal['id']}", json={"amount": "10.00", "next_step": "sign"}
        )
        assert unchanged.status_code == 200, "sending the current amount is not a change"
        response = await rep.client.patch(f"/v1/deals/{deal['id']}", json={"currency": "EUR"})
        assert_problem(response, 409, "conflict")
        assert (await get_deal(rep, deal["id"]))["amount"] == "10.00"

    async def test_changes_are_new_deal_versions_with_audit(
        self, rep: Actor, manager: Actor
    ) -> None:
        deal = await create_deal(rep)
        item = await add_item(rep, deal["id"], name="A", quantity=1, unit_price="10.00")
        audit = await manager.client.get("/v1/audit-log", params={"entity_id": deal["id"]})
        latest = audit.json()["data"][0]
        assert latest["action"] == "updated"
        before, after = latest["changes"]["amount"]
        assert (Decimal(before), Decimal(after)) == (0, 10)
        assert latest["changes"][f"line_items.{item['id']}"] == [None, item]
        assert latest["entity_type"] == "deal"


class TestFromProducts:
    async def test_product_supplies_name_price_and_currency(
        self, rep: Actor, manager: Actor
    ) -> None:
        product = await create_product(manager, name="Widget", unit_price="12.50")
        deal = await create_deal(rep)
        item = await add_item(rep, deal["id"], product_id=product["id"], quantity=2)
        assert (item["name"], item["unit_price"], item["currency"]) == ("Widget", "12.50", "USD")
        assert item["product_id"] == product["id"]
        assert item["amount"] == "25.00"
        own = await add_item(rep, deal["id"], product_id=product["id"], quantity=1,
                             name="Widget (promo)", unit_price="10.00")  # fmt: skip
        assert own["name"] == "Widget (promo)"
        assert (await get_deal(rep, deal["id"]))["amount"] == "35.00"

    async def test_product_in_another_currency_is_422(self, rep: Actor, manager: Actor) -> None:
        product = await create_product(manager, unit_price="12.50", currency="EUR")
        deal = await create_deal(rep, currency="USD")
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/line-items", json={"product_id": product["id"], "quantity": 1}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.currency"}

    async def test_archived_inactive_or_unknown_product_is_422(
        self, rep: Actor, manager: Actor
    ) -> None:
        archived = await create_product(manager)
        await archive(manager, f"/v1/products/{archived['id']}")
        inactive = await create_product(manager, active=False)
        deal = await create_deal(rep)
        unknown = "0190a0a0-0000-7000-8000-000000000000"
        for product_id in (archived["id"], inactive["id"], unknown):
            response = await rep.client.post(
                f"/v1/deals/{deal['id']}/line-items", json={"product_id": product_id, "quantity": 1}
            )
            assert error_fields(assert_problem(response, 422, "validation")) == {"body.product_id"}


class TestBadInput:
    async def test_each_bad_item_is_422_and_changes_nothing(self, rep: Actor) -> None:
        deal = await create_deal(rep, currency="USD")
        await add_item(rep, deal["id"], name="A", quantity=1, unit_price="10.00")
        before = await get_deal(rep, deal["id"])
        cases: list[tuple[dict[str, Any], set[str]]] = [
            ({"name": "X", "quantity": -1, "unit_price": "1.00"}, {"body.quantity"}),
            ({"name": "X", "quantity": 0, "unit_price": "1.00"}, {"body.quantity"}),
            ({"name": "X", "quantity": 1.5, "unit_price": "1.00"}, {"body.quantity"}),
            ({"name": "X", "quantity": "1.00001", "unit_price": "1"}, {"body.quantity"}),
            ({"name": "X", "quantity": 1, "unit_price": "1.00", "discount_percent": "100.01"},
             {"body.discount_percent"}),
            ({"name": "X", "quantity": 1, "unit_price": "1.00", "discount_percent": -5},
             {"body.discount_percent"}),
            ({"name": "X", "quantity": 1, "unit_price": "1.001"}, {"body.unit_price"}),
            ({"name": "X", "quantity": 1, "unit_price": "1.00", "currency": "EUR"},
             {"body.currency"}),
            ({"name": "X", "quantity": 1, "unit_price": "1.00", "currency": "XXQ"},
             {"body.currency"}),
            ({"quantity": 1}, {"body.name", "body.unit_price"}),
            ({"name": "X", "quantity": 1, "unit_price": "1.00", "total": "5"}, {"body.total"}),
        ]  # fmt: skip
        for body, fields in cases:
            response = await rep.client.post(f"/v1/deals/{deal['id']}/line-items", json=body)
            problem = assert_problem(response, 422, "validation")
            assert error_fields(problem) == fields, body
        assert await get_deal(rep, deal["id"]) == before

    async def test_full_discount_is_allowed(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        item = await add_item(rep, deal["id"], name="Free", quantity=1, unit_price="9.99",
                              discount_percent=100)  # fmt: skip
        assert item["amount"] == "0.00"

    async def test_stale_if_match_on_an_item_is_412(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        item = await add_item(rep, deal["id"], name="A", quantity=1, unit_price="1.00")
        path = f"/v1/deals/{deal['id']}/line-items/{item['id']}"
        assert (await rep.client.patch(path, json={"quantity": 2})).status_code == 200
        response = await rep.client.patch(path, json={"quantity": 3}, headers={"If-Match": '"1"'})
        assert assert_problem(response, 412, "precondition-failed")["current_version"] == 2
        response = await rep.client.delete(path, headers={"If-Match": '"1"'})
        assert_problem(response, 412, "precondition-failed")

    async def test_item_of_another_deal_is_404(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        other = await create_deal(rep)
        item = await add_item(rep, deal["id"], name="A", quantity=1, unit_price="1.00")
        path = f"/v1/deals/{other['id']}/line-items/{item['id']}"
        assert_problem(await rep.client.get(path), 404, "not-found")
        assert_problem(await rep.client.patch(path, json={"quantity": 2}), 404, "not-found")
        assert_problem(await rep.client.delete(path), 404, "not-found")

    async def test_only_the_owner_or_a_manager_changes_items(
        self, rep: Actor, other_rep: Actor, manager: Actor, viewer: Actor
    ) -> None:
        deal = await create_deal(other_rep)
        body = {"name": "A", "quantity": 1, "unit_price": "1.00"}
        path = f"/v1/deals/{deal['id']}/line-items"
        assert_problem(await rep.client.post(path, json=body), 403, "forbidden")
        assert_problem(await viewer.client.post(path, json=body), 403, "forbidden")
        assert (await viewer.client.get(path)).status_code == 200
        assert (await manager.client.post(path, json=body)).status_code == 201

    async def test_archived_deal_takes_no_items(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        await archive(rep, f"/v1/deals/{deal['id']}")
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/line-items",
            json={"name": "A", "quantity": 1, "unit_price": "1.00"},
        )
        assert_problem(response, 409, "conflict")


class TestConcurrency:
    async def test_concurrent_adds_all_count_in_the_amount(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        path = f"/v1/deals/{deal['id']}/line-items"
        bodies = [
            {"name": f"Item {i}", "quantity": 1, "unit_price": f"{i}.00"} for i in range(1, 9)
        ]
        responses = await asyncio.gather(*(rep.client.post(path, json=b) for b in bodies))
        assert [r.status_code for r in responses] == [201] * 8
        body = await get_deal(rep, deal["id"])
        assert body["amount"] == "36.00"  # 1 + 2 + ... + 8
        assert body["version"] == 9
        assert sorted(item["position"] for item in body["line_items"]) == list(range(8))


class TestLimits:
    async def test_items_that_would_overflow_the_amount_are_422(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/line-items",
            json={"name": "A", "quantity": "99999999999999", "unit_price": "99999999999999.99"},
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body"}
        assert (await get_deal(rep, deal["id"]))["line_items"] == []
