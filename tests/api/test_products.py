"""The product catalog through HTTP: who may keep it, prices that fit their currency, unique
skus, partial updates with If-Match, list filters and pages, archive and restore."""

from datetime import UTC, datetime
from typing import Any

from tests.api.factories import archive, create_product, walk
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

UNKNOWN = "0190a0a0-0000-7000-8000-000000000000"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


async def listed(actor: Actor, **params: Any) -> list[dict[str, Any]]:
    """The one page of products a list request gives (asserting there is no second page)."""
    response = await actor.client.get("/v1/products", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    rows: list[dict[str, Any]] = body["data"]
    return rows


class TestCreate:
    async def test_manager_creates_and_reads_it_back(self, manager: Actor) -> None:
        response = await manager.client.post(
            "/v1/products",
            json={
                "sku": "  WID-1 ",
                "name": "  Blue   widget ",
                "description": "A widget, in blue.",
                "unit_price": "12.50",
                "currency": "usd",
                "external_id": "erp-wid-1",
            },
        )
        assert response.status_code == 201, response.text
        product = response.json()
        assert response.headers["location"] == f"/v1/products/{product['id']}"
        assert response.headers["etag"] == '"1"'
        assert product == {
            "id": product["id"],
            "sku": "WID-1",
            "name": "Blue widget",
            "description": "A widget, in blue.",
            "unit_price": "12.50",
            "currency": "USD",
            "active": True,
            "external_id": "erp-wid-1",
            "version": 1,
            "created_by": str(manager.id),
            "created_at": product["created_at"],
            "updated_at": product["created_at"],
            "archived_at": None,
        }
        read = await manager.client.get(f"/v1/products/{product['id']}")
        assert read.status_code == 200
        assert read.headers["etag"] == '"1"'
        assert read.json() == product

    async def test_admin_creates_too(self, admin: Actor) -> None:
        response = await admin.client.post(
            "/v1/products",
            json={"sku": "ADM-1", "name": "Setup", "unit_price": "99.99", "currency": "EUR"},
        )
        assert response.status_code == 201, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json()["created_by"] == str(admin.id)

    async def test_active_defaults_to_true_and_can_be_false(self, manager: Actor) -> None:
        assert (await create_product(manager))["active"] is True
        assert (await create_product(manager, active=False))["active"] is False

    async def test_reps_and_viewers_may_not_create(self, rep: Actor, viewer: Actor) -> None:
        for actor in (rep, viewer):
            response = await actor.client.post(
                "/v1/products",
                json={"sku": "NOPE", "name": "Nope", "unit_price": "1.00", "currency": "USD"},
            )
            assert_problem(response, 403, "forbidden")
        assert await listed(viewer) == []

    async def test_reps_and_viewers_read(self, manager: Actor, rep: Actor, viewer: Actor) -> None:
        product = await create_product(manager)
        for actor in (rep, viewer):
            read = await actor.client.get(f"/v1/products/{product['id']}")
            assert read.status_code == 200
            assert read.json() == product
            assert ids(await listed(actor)) == [product["id"]]

    async def test_anonymous_gets_401(self, anonymous: Any) -> None:
        assert_problem(await anonymous.get("/v1/products"), 401, "unauthorized")


class TestPrices:
    async def test_price_reads_back_with_the_currency_decimals(self, manager: Actor) -> None:
        for price, currency, expected in (
            ("10", "USD", "10.00"),
            ("10.5", "USD", "10.50"),
            ("0", "USD", "0.00"),
            ("1500", "JPY", "1500"),
            ("1.5", "KWD", "1.500"),
            ("1.125", "KWD", "1.125"),
        ):
            created = await create_product(manager, unit_price=price, currency=currency)
            assert created["unit_price"] == expected, (price, currency)
            read = await manager.client.get(f"/v1/products/{created['id']}")
            assert read.json()["unit_price"] == expected, (price, currency)
            assert read.json()["currency"] == currency

    async def test_more_decimals_than_the_currency_allows_is_422(self, manager: Actor) -> None:
        for price, currency in (("10.001", "USD"), ("5.5", "JPY"), ("1.0001", "KWD")):
            response = await manager.client.post(
                "/v1/products",
                json={"sku": "S-1", "name": "X", "unit_price": price, "currency": currency},
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.unit_price"}, (price, currency)
        assert await listed(manager) == []

    async def test_price_as_a_number_negative_or_garbage_is_422(self, manager: Actor) -> None:
        for price in (12.5, 12, "-1", "1e3", "abc", "NaN", None):
            response = await manager.client.post(
                "/v1/products",
                json={"sku": "S-1", "name": "X", "unit_price": price, "currency": "USD"},
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.unit_price"}, price

    async def test_unknown_currency_is_422(self, manager: Actor) -> None:
        for currency in ("ABC", "US", "DOLLAR"):
            response = await manager.client.post(
                "/v1/products",
                json={"sku": "S-1", "name": "X", "unit_price": "1.00", "currency": currency},
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.currency"}, currency

    async def test_required_fields(self, manager: Actor) -> None:
        response = await manager.client.post("/v1/products", json={})
        body = assert_problem(response, 422, "validation")
        assert error_fields(body) == {"body.sku", "body.name", "body.unit_price", "body.currency"}

    async def test_unknown_and_read_only_fields_are_rejected(self, manager: Actor) -> None:
        for field, value in (("colour", "red"), ("version", 3), ("id", UNKNOWN)):
            response = await manager.client.post(
                "/v1/products",
                json={"sku": "S-1", "name": "X", "unit_price": "1.00", "currency": "USD",
                      field: value},
            )  # fmt: skip
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {f"body.{field}"}
        assert await listed(manager) == []


class TestSkus:
    async def test_sku_is_unique_among_live_products(self, manager: Actor) -> None:
        first = await create_product(manager, sku="DUP-1")
        response = await manager.client.post(
            "/v1/products",
            json={"sku": "DUP-1", "name": "Other", "unit_price": "1.00", "currency": "USD"},
        )
        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == first["id"]
        assert ids(await listed(manager)) == [first["id"]]

    async def test_renaming_onto_a_taken_sku_is_409(self, manager: Actor) -> None:
        first = await create_product(manager, sku="A-1")
        second = await create_product(manager, sku="B-1")
        response = await manager.client.patch(f"/v1/products/{second['id']}", json={"sku": "A-1"})
        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == first["id"]
        after = (await manager.client.get(f"/v1/products/{second['id']}")).json()
        assert after == second

    async def test_an_archived_products_sku_is_free_again(self, manager: Actor) -> None:
        first = await create_product(manager, sku="REUSE-1")
        await archive(manager, f"/v1/products/{first['id']}")
        second = await create_product(manager, sku="REUSE-1")
        assert second["id"] != first["id"]
        assert second["sku"] == "REUSE-1"

    async def test_restoring_onto_a_taken_sku_is_409(self, manager: Actor) -> None:
        first = await create_product(manager, sku="REUSE-2")
        await archive(manager, f"/v1/products/{first['id']}")
        second = await create_product(manager, sku="REUSE-2")
        response = await manager.client.post(f"/v1/products/{first['id']}/restore")
        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == second["id"]
        assert (await manager.client.get(f"/v1/products/{first['id']}")).json()["archived_at"]

    async def test_external_id_is_unique_among_live_products(self, manager: Actor) -> None:
        first = await create_product(manager, external_id="erp-7")
        response = await manager.client.post(
            "/v1/products",
            json={"sku": "OTHER", "name": "X", "unit_price": "1.00", "currency": "USD",
                  "external_id": "erp-7"},
        )  # fmt: skip
        assert assert_problem(response, 409, "conflict")["existing_id"] == first["id"]


class TestUpdate:
    async def test_patch_changes_only_the_fields_sent_and_bumps_the_version(
        self, manager: Actor
    ) -> None:
        product = await create_product(
            manager, sku="P-1", name="Widget", unit_price="10.00", description="Round"
        )
        response = await manager.client.patch(
            f"/v1/products/{product['id']}", json={"unit_price": "12.5"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"2"'
        body = response.json()
        assert body == {
            **product,
            "unit_price": "12.50",
            "version": 2,
            "updated_at": body["updated_at"],
        }
        assert utc(body["updated_at"]) > utc(product["updated_at"])
        read = await manager.client.get(f"/v1/products/{product['id']}")
        assert read.headers["etag"] == '"2"'
        assert read.json() == body

    async def test_admin_updates_and_nullable_fields_clear(self, admin: Actor) -> None:
        product = await create_product(admin, description="Round", external_id="erp-9")
        response = await admin.client.patch(
            f"/v1/products/{product['id']}",
            json={"description": None, "external_id": None, "active": False},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["description"], body["external_id"], body["active"]) == (None, None, False)
        assert body["version"] == 2

    async def test_patch_with_the_same_values_keeps_the_version(self, manager: Actor) -> None:
        product = await create_product(manager, name="Same", unit_price="10.00")
        response = await manager.client.patch(
            f"/v1/products/{product['id']}", json={"name": "Same", "unit_price": "10"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json() == product

    async def test_changing_the_currency_rechecks_the_stored_price(self, manager: Actor) -> None:
        product = await create_product(manager, unit_price="10.50", currency="USD")
        response = await manager.client.patch(
            f"/v1/products/{product['id']}", json={"currency": "JPY"}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.unit_price"}
        response = await manager.client.patch(
            f"/v1/products/{product['id']}", json={"currency": "JPY", "unit_price": "1500"}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["unit_price"], response.json()["currency"]) == ("1500", "JPY")
        response = await manager.client.patch(
            f"/v1/products/{product['id']}", json={"unit_price": "1500.5"}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.unit_price"}

    async def test_not_nullable_fields(self, manager: Actor) -> None:
        product = await create_product(manager)
        for field in ("sku", "name", "unit_price", "currency", "active"):
            response = await manager.client.patch(
                f"/v1/products/{product['id']}", json={field: None}
            )
            assert_problem(response, 422, "validation")
        after = await manager.client.get(f"/v1/products/{product['id']}")
        assert after.json() == product

    async def test_unknown_field_and_bad_price_in_a_patch_are_422(self, manager: Actor) -> None:
        product = await create_product(manager)
        path = f"/v1/products/{product['id']}"
        response = await manager.client.patch(path, json={"colour": "red"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.colour"}
        response = await manager.client.patch(path, json={"unit_price": 3.5})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.unit_price"}
        response = await manager.client.patch(path, json={"currency": "XYZ"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.currency"}

    async def test_stale_if_match_is_412_and_changes_nothing(self, manager: Actor) -> None:
        product = await create_product(manager, name="Widget")
        path = f"/v1/products/{product['id']}"
        await manager.client.patch(path, json={"name": "Gadget"})
        response = await manager.client.patch(
            path, json={"name": "Late"}, headers={"If-Match": '"1"'}
        )
        assert assert_problem(response, 412, "precondition-failed")["current_version"] == 2
        assert (await manager.client.get(path)).json()["name"] == "Gadget"
        current = await manager.client.patch(
            path, json={"name": "On time"}, headers={"If-Match": '"2"'}
        )
        assert current.status_code == 200, current.text
        assert current.headers["etag"] == '"3"'
        assert current.json()["name"] == "On time"

    async def test_reps_and_viewers_may_not_update(
        self, manager: Actor, rep: Actor, viewer: Actor
    ) -> None:
        product = await create_product(manager)
        for actor in (rep, viewer):
            response = await actor.client.patch(
                f"/v1/products/{product['id']}", json={"name": "Mine"}
            )
            assert_problem(response, 403, "forbidden")
        assert (await manager.client.get(f"/v1/products/{product['id']}")).json() == product

    async def test_unknown_product_is_404(self, manager: Actor) -> None:
        response = await manager.client.get(f"/v1/products/{UNKNOWN}")
        assert_problem(response, 404, "not-found")
        response = await manager.client.patch(f"/v1/products/{UNKNOWN}", json={"name": "X"})
        assert_problem(response, 404, "not-found")
        assert_problem(await manager.client.delete(f"/v1/products/{UNKNOWN}"), 404, "not-found")
        response = await manager.client.post(f"/v1/products/{UNKNOWN}/restore")
        assert_problem(response, 404, "not-found")

    async def test_malformed_id_is_422(self, manager: Actor) -> None:
        response = await manager.client.get("/v1/products/not-a-uuid")
        assert error_fields(assert_problem(response, 422, "validation")) == {"path.product_id"}


class TestArchive:
    async def test_archive_and_restore(self, manager: Actor) -> None:
        product = await create_product(manager)
        path = f"/v1/products/{product['id']}"
        await archive(manager, path)
        assert await listed(manager) == []
        assert ids(await listed(manager, archived="true")) == [product["id"]]
        archived = await manager.client.get(path)
        assert archived.status_code == 200
        assert archived.headers["etag"] == '"2"'
        assert archived.json()["archived_at"] is not None
        assert archived.json()["version"] == 2

        response = await manager.client.patch(path, json={"name": "Too late"})
        assert_problem(response, 409, "conflict")

        restored = await manager.client.post(f"{path}/restore")
        assert restored.status_code == 200, restored.text
        assert restored.headers["etag"] == '"3"'
        assert restored.json() == {
            **product,
            "version": 3,
            "updated_at": restored.json()["updated_at"],
        }
        assert ids(await listed(manager)) == [product["id"]]
        assert await listed(manager, archived="true") == []

    async def test_archiving_twice_is_204_and_restoring_a_live_one_changes_nothing(
        self, manager: Actor
    ) -> None:
        product = await create_product(manager)
        path = f"/v1/products/{product['id']}"
        await archive(manager, path)
        await archive(manager, path)
        assert (await manager.client.get(path)).json()["version"] == 2
        await manager.client.post(f"{path}/restore")
        again = await manager.client.post(f"{path}/restore")
        assert again.status_code == 200
        assert again.json()["version"] == 3

    async def test_stale_if_match_on_archive_is_412(self, manager: Actor) -> None:
        product = await create_product(manager)
        path = f"/v1/products/{product['id']}"
        await manager.client.patch(path, json={"name": "Renamed"})
        response = await manager.client.delete(path, headers={"If-Match": '"1"'})
        assert assert_problem(response, 412, "precondition-failed")["current_version"] == 2
        assert (await manager.client.get(path)).json()["archived_at"] is None

    async def test_reps_and_viewers_may_not_archive_or_restore(
        self, manager: Actor, rep: Actor, viewer: Actor
    ) -> None:
        product = await create_product(manager)
        path = f"/v1/products/{product['id']}"
        for actor in (rep, viewer):
            assert_problem(await actor.client.delete(path), 403, "forbidden")
        assert (await manager.client.get(path)).json() == product
        await archive(manager, path)
        for actor in (rep, viewer):
            assert_problem(await actor.client.post(f"{path}/restore"), 403, "forbidden")
        assert (await manager.client.get(path)).json()["archived_at"] is not None


class TestList:
    async def test_default_sort_is_name_case_insensitive(self, manager: Actor) -> None:
        cable = await create_product(manager, name="cable")
        adapter = await create_product(manager, name="Adapter")
        box = await create_product(manager, name="BOX")
        assert ids(await listed(manager)) == [adapter["id"], box["id"], cable["id"]]
        assert ids(await listed(manager, sort="-name")) == [cable["id"], box["id"], adapter["id"]]
        assert ids(await listed(manager, sort="created_at")) == [
            cable["id"],
            adapter["id"],
            box["id"],
        ]

    async def test_unknown_sort_is_422(self, manager: Actor) -> None:
        response = await manager.client.get("/v1/products", params={"sort": "unit_price"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.sort"}

    async def test_filter_by_active(self, manager: Actor) -> None:
        on = await create_product(manager, name="On")
        off = await create_product(manager, name="Off", active=False)
        assert ids(await listed(manager, active="true")) == [on["id"]]
        assert ids(await listed(manager, active="false")) == [off["id"]]
        assert ids(await listed(manager)) == [off["id"], on["id"]]

    async def test_filter_by_currency(self, manager: Actor) -> None:
        dollars = await create_product(manager, name="A", currency="USD")
        euros = await create_product(manager, name="B", currency="EUR", unit_price="5.00")
        yen = await create_product(manager, name="C", currency="JPY", unit_price="500")
        assert ids(await listed(manager, currency="EUR")) == [euros["id"]]
        assert ids(await listed(manager, currency="jpy")) == [yen["id"]]
        assert ids(await listed(manager, currency="USD")) == [dollars["id"]]
        assert await listed(manager, currency="GBP") == []
        response = await manager.client.get("/v1/products", params={"currency": "ABC"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.currency"}

    async def test_filter_by_sku(self, manager: Actor) -> None:
        wanted = await create_product(manager, sku="KIT-100")
        await create_product(manager, sku="KIT-1000")
        await create_product(manager, sku="KIT-10")
        assert ids(await listed(manager, sku="KIT-100")) == [wanted["id"]]
        assert await listed(manager, sku="KIT") == []

    async def test_q_is_a_case_insensitive_prefix_of_the_name(self, manager: Actor) -> None:
        widget = await create_product(manager, name="Widget Pro")
        mini = await create_product(manager, name="Mini widget")
        await create_product(manager, name="Gadget")
        await create_product(manager, name="Sidewidget")
        assert ids(await listed(manager, q="WID")) == [mini["id"], widget["id"]]
        assert ids(await listed(manager, q="widget p")) == [widget["id"]]
        assert ids(await listed(manager, q="pro")) == [widget["id"]]
        assert await listed(manager, q="idget") == []

    async def test_filters_combine(self, manager: Actor) -> None:
        wanted = await create_product(manager, name="Widget", currency="EUR", unit_price="1.00")
        await create_product(manager, name="Widget B", currency="EUR", active=False)
        await create_product(manager, name="Widget C", currency="USD")
        rows = await listed(manager, q="widget", currency="EUR", active="true")
        assert ids(rows) == [wanted["id"]]
        assert rows == [wanted]

    async def test_walk_pages_with_the_cursor(self, manager: Actor, viewer: Actor) -> None:
        products = [await create_product(manager, name=f"Item {n:02d}") for n in (5, 3, 1, 4, 2)]
        by_name = sorted(products, key=lambda product: product["name"])

        pages = await walk(viewer.client, "/v1/products", limit=2)

        assert [len(page) for page in pages] == [2, 2, 1]
        assert [row for page in pages for row in page] == by_name

        pages = await walk(viewer.client, "/v1/products", limit=2, sort="-name")
        assert [row for page in pages for row in page] == by_name[::-1]

    async def test_walk_with_a_filter(self, manager: Actor) -> None:
        active = [await create_product(manager, name=f"Item {n}") for n in range(5)]
        for n in range(3):
            await create_product(manager, name=f"Item {n} off", active=False)

        pages = await walk(manager.client, "/v1/products", limit=2, active="true")

        assert [ids(page) for page in pages] == [
            [active[0]["id"], active[1]["id"]],
            [active[2]["id"], active[3]["id"]],
            [active[4]["id"]],
        ]

    async def test_total_on_request(self, manager: Actor) -> None:
        for _ in range(3):
            await create_product(manager)
        response = await manager.client.get(
            "/v1/products", params={"limit": 2, "include_total": "true"}
        )
        assert response.status_code == 200
        assert response.json()["total"] == 3
        assert len(response.json()["data"]) == 2
        assert response.json()["next_cursor"] is not None
