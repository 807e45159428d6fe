"""The pipeline board through HTTP: every stage in order with its open deals' count, per-currency
totals (weighted by the stage's probability) and first deals, and the cursor for the rest.

Expected money is worked out by hand, as literals: amount x probability / 100, rounded half-even
to the currency's minor unit (USD and EUR 2 decimals, JPY none)."""

from typing import Any

import httpx

from tests.api.factories import (
    archive,
    create_company,
    create_contact,
    create_deal,
    create_pipeline,
    default_pipeline,
)
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

UNKNOWN = "0190a0a0-0000-7000-8000-000000000000"
EMBEDDED = ("contacts", "line_items")


def card(deal: dict[str, Any]) -> dict[str, Any]:
    """A deal as the board shows it: without its contacts and line items."""
    return {key: value for key, value in deal.items() if key not in EMBEDDED}


def by_id_descending(*deals: dict[str, Any]) -> list[dict[str, Any]]:
    """Deals of equal amount, in the board's tie order (id descending)."""
    return sorted(deals, key=lambda deal: deal["id"], reverse=True)


async def get_board(client: httpx.AsyncClient, pipeline_id: str, **params: Any) -> Any:
    response = await client.get(f"/v1/pipelines/{pipeline_id}/board", params=params)
    assert response.status_code == 200, response.text
    return response.json()


class Seeded:
    """A pipeline (Lead 10 %, Demo 40 %, Won 100 %, Lost 0 %) with deals in every stage:

    Lead: a 1000.00 USD, b 250.25 USD, c 99.95 EUR
    Demo: d 500.00 USD, e 500.00 USD, f 1234.56 EUR, g 1001 JPY
    Won:  h 300.00 USD        Lost: i 80.00 EUR
    """

    def __init__(self, pipeline: dict[str, Any], company: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.company = company
        self.lead, self.demo, self.won, self.lost = pipeline["stages"]
        self.deals: dict[str, dict[str, Any]] = {}

    @classmethod
    async def create(cls, manager: Actor) -> "Seeded":
        pipeline = await create_pipeline(manager)
        company = await create_company(manager, name="Acme")
        seeded = cls(pipeline, company)
        lead, demo = seeded.lead["id"], seeded.demo["id"]
        for key, stage_id, amount, currency in (
            ("a", lead, "1000.00", "USD"),
            ("b", lead, "250.25", "USD"),
            ("c", lead, "99.95", "EUR"),
            ("d", demo, "500.00", "USD"),
            ("e", demo, "500.00", "USD"),
            ("f", demo, "1234.56", "EUR"),
            ("g", demo, "1001", "JPY"),
        ):
            seeded.deals[key] = await create_deal(
                manager,
                name=f"Deal {key}",
                stage_id=stage_id,
                amount=amount,
                currency=currency,
                company_id=company["id"] if key in "af" else None,
            )
        seeded.deals["h"] = await create_deal(
            manager, name="Deal h", stage_id=seeded.won["id"], amount="300.00", currency="USD"
        )
        seeded.deals["i"] = await create_deal(
            manager,
            name="Deal i",
            stage_id=seeded.lost["id"],
            amount="80.00",
            currency="EUR",
            lost_reason="Budget",
        )
        return seeded

    def cards(self, keys: str) -> list[dict[str, Any]]:
        return [card(self.deals[key]) for key in keys]

    def de(self) -> list[dict[str, Any]]:
        """The two 500.00 USD deals of Demo, in tie order."""
        return by_id_descending(card(self.deals["d"]), card(self.deals["e"]))


LEAD_TOTALS = [
    # 99.95 x 10 % = 9.995 -> 10.00 (half-even: 9.99|5 goes to the even 10.00)
    {"currency": "EUR", "count": 1, "amount": "99.95", "weighted_amount": "10.00"},
    # 1000.00 + 250.25 = 1250.25; x 10 % = 125.025 -> 125.02 (half-even keeps the even 2)
    {"currency": "USD", "count": 2, "amount": "1250.25", "weighted_amount": "125.02"},
]
DEMO_TOTALS = [
    # 1234.56 x 40 % = 493.824 -> 493.82
    {"currency": "EUR", "count": 1, "amount": "1234.56", "weighted_amount": "493.82"},
    # 1001 x 40 % = 400.4 -> 400 (no minor unit)
    {"currency": "JPY", "count": 1, "amount": "1001", "weighted_amount": "400"},
    # 500.00 + 500.00 = 1000.00; x 40 % = 400.00
    {"currency": "USD", "count": 2, "amount": "1000.00", "weighted_amount": "400.00"},
]
WON_TOTALS = [{"currency": "USD", "count": 1, "amount": "300.00", "weighted_amount": "300.00"}]
LOST_TOTALS = [{"currency": "EUR", "count": 1, "amount": "80.00", "weighted_amount": "0.00"}]


class TestColumns:
    async def test_every_stage_in_order_with_counts_totals_and_deals(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)

        response = await manager.client.get(f"/v1/pipelines/{seeded.pipeline['id']}/board")

        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "pipeline_id": seeded.pipeline["id"],
            "name": seeded.pipeline["name"],
            "stages": [
                {
                    "stage": {
                        "id": seeded.lead["id"],
                        "name": "Lead",
                        "position": 0,
                        "probability": 10,
                        "kind": "open",
                    },
                    "count": 3,
                    "totals": LEAD_TOTALS,
                    "deals": seeded.cards("abc"),
                    "next_cursor": None,
                },
                {
                    "stage": {
                        "id": seeded.demo["id"],
                        "name": "Demo",
                        "position": 1,
                        "probability": 40,
                        "kind": "open",
                    },
                    "count": 4,
                    "totals": DEMO_TOTALS,
                    "deals": [*seeded.cards("fg"), *seeded.de()],
                    "next_cursor": None,
                },
                {
                    "stage": {
                        "id": seeded.won["id"],
                        "name": "Won",
                        "position": 2,
                        "probability": 100,
                        "kind": "won",
                    },
                    "count": 0,
                    "totals": [],
                    "deals": [],
                    "next_cursor": None,
                },
                {
                    "stage": {
                        "id": seeded.lost["id"],
                        "name": "Lost",
                        "position": 3,
                        "probability": 0,
                        "kind": "lost",
                    },
                    "count": 0,
                    "totals": [],
                    "deals": [],
                    "next_cursor": None,
                },
            ],
        }

    async def test_cards_carry_weighted_amount_stage_and_company(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)

        board = await get_board(manager.client, seeded.pipeline["id"])

        lead, demo = board["stages"][0]["deals"], board["stages"][1]["deals"]
        weighted = {deal["name"]: deal["weighted_amount"] for deal in [*lead, *demo]}
        assert weighted == {
            "Deal a": "100.00",  # 1000.00 x 10 %
            "Deal b": "25.02",  # 250.25 x 10 % = 25.025 -> 25.02
            "Deal c": "10.00",  # 99.95 x 10 % = 9.995 -> 10.00
            "Deal d": "200.00",  # 500.00 x 40 %
            "Deal e": "200.00",
            "Deal f": "493.82",  # 1234.56 x 40 % = 493.824
            "Deal g": "400",  # 1001 JPY x 40 % = 400.4
        }
        first = lead[0]
        assert first["name"] == "Deal a"
        assert first["amount"] == "1000.00"
        assert first["stage"] == {
            "id": seeded.lead["id"],
            "name": "Lead",
            "kind": "open",
            "probability": 10,
        }
        assert first["company"] == {
            "id": seeded.company["id"],
            "name": "Acme",
            "domain": seeded.company["domain"],
        }
        assert lead[1]["company"] is None
        for deal in [*lead, *demo]:
            assert {"weighted_amount", "stage", "company"} <= deal.keys()
            assert not set(EMBEDDED) & deal.keys()

    async def test_a_deal_with_contacts_is_still_a_card(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        deal = await create_deal(manager, stage_id=pipeline["stages"][0]["id"], amount="10.00")
        contact = await create_contact(manager)
        added = await manager.client.post(
            f"/v1/deals/{deal['id']}/contacts", json={"contact_id": contact["id"]}
        )
        assert added.status_code == 201, added.text
        full = (await manager.client.get(f"/v1/deals/{deal['id']}")).json()
        assert [link["contact_id"] for link in full["contacts"]] == [contact["id"]]

        board = await get_board(manager.client, pipeline["id"])

        assert board["stages"][0]["deals"] == [card(full)]

    async def test_totals_weight_the_summed_amount(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        lead = pipeline["stages"][0]["id"]
        low = await create_deal(manager, stage_id=lead, amount="0.05")
        high = await create_deal(manager, stage_id=lead, amount="0.05")
        # Each weighs 0.05 x 10 % = 0.005 -> 0.00; together 0.10 x 10 % = 0.01.
        assert low["weighted_amount"] == high["weighted_amount"] == "0.00"

        board = await get_board(manager.client, pipeline["id"])

        assert board["stages"][0]["totals"] == [
            {"currency": "USD", "count": 2, "amount": "0.10", "weighted_amount": "0.01"}
        ]

    async def test_an_empty_pipeline_has_empty_columns(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)

        board = await get_board(manager.client, pipeline["id"])

        assert board["name"] == pipeline["name"]
        assert [column["stage"] for column in board["stages"]] == pipeline["stages"]
        for column in board["stages"]:
            assert column == {
                "stage": column["stage"],
                "count": 0,
                "totals": [],
                "deals": [],
                "next_cursor": None,
            }

    async def test_stages_follow_their_positions_after_a_reorder(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        lead, demo, won, lost = (stage["id"] for stage in pipeline["stages"])
        response = await manager.client.post(
            f"/v1/pipelines/{pipeline['id']}/stages/reorder",
            json={"stage_ids": [demo, lead, lost, won]},
        )
        assert response.status_code == 200, response.text

        board = await get_board(manager.client, pipeline["id"])

        assert [(c["stage"]["name"], c["stage"]["position"]) for c in board["stages"]] == [
            ("Demo", 0),
            ("Lead", 1),
            ("Lost", 2),
            ("Won", 3),
        ]


class TestClosedStages:
    async def test_include_closed_shows_won_and_lost(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)

        board = await get_board(manager.client, seeded.pipeline["id"], include_closed="true")

        won, lost = board["stages"][2], board["stages"][3]
        assert won == {
            "stage": seeded.won,
            "count": 1,
            "totals": WON_TOTALS,
            "deals": seeded.cards("h"),
            "next_cursor": None,
        }
        assert lost == {
            "stage": seeded.lost,
            "count": 1,
            "totals": LOST_TOTALS,
            "deals": seeded.cards("i"),
            "next_cursor": None,
        }
        assert won["deals"][0]["weighted_amount"] == "300.00"
        assert lost["deals"][0]["weighted_amount"] == "0.00"
        # The open columns are the same as without include_closed.
        lead, demo = board["stages"][0], board["stages"][1]
        assert (lead["count"], lead["totals"], lead["deals"]) == (
            3,
            LEAD_TOTALS,
            seeded.cards("abc"),
        )
        assert (demo["count"], demo["totals"]) == (4, DEMO_TOTALS)

    async def test_include_closed_false_is_the_default(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        default = await get_board(manager.client, seeded.pipeline["id"])
        explicit = await get_board(manager.client, seeded.pipeline["id"], include_closed="false")
        assert explicit == default

    async def test_a_deal_moved_to_won_leaves_the_open_columns(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        moved = await manager.client.post(
            f"/v1/deals/{seeded.deals['a']['id']}/move", json={"stage_id": seeded.won["id"]}
        )
        assert moved.status_code == 200, moved.text

        board = await get_board(manager.client, seeded.pipeline["id"])
        lead, won = board["stages"][0], board["stages"][2]
        assert lead["count"] == 2
        assert lead["totals"] == [
            LEAD_TOTALS[0],
            {"currency": "USD", "count": 1, "amount": "250.25", "weighted_amount": "25.02"},
        ]
        assert [deal["name"] for deal in lead["deals"]] == ["Deal b", "Deal c"]
        assert (won["count"], won["totals"], won["deals"]) == (0, [], [])

        closed = await get_board(manager.client, seeded.pipeline["id"], include_closed="true")
        won = closed["stages"][2]
        assert won["count"] == 2
        assert won["totals"] == [
            {"currency": "USD", "count": 2, "amount": "1300.00", "weighted_amount": "1300.00"}
        ]
        assert [deal["name"] for deal in won["deals"]] == ["Deal a", "Deal h"]
        assert won["deals"][0] == card(moved.json())


class TestWhatCounts:
    async def test_archived_deals_are_neither_counted_nor_shown(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        gone = await create_deal(
            manager, stage_id=seeded.lead["id"], amount="5000.00", currency="USD"
        )
        gone_won = await create_deal(
            manager, stage_id=seeded.won["id"], amount="7.00", currency="USD"
        )
        await archive(manager, f"/v1/deals/{gone['id']}")
        await archive(manager, f"/v1/deals/{gone_won['id']}")
        await archive(manager, f"/v1/deals/{seeded.deals['g']['id']}")

        board = await get_board(manager.client, seeded.pipeline["id"], include_closed="true")

        lead, demo, won = board["stages"][0], board["stages"][1], board["stages"][2]
        assert (lead["count"], lead["totals"], lead["deals"]) == (
            3,
            LEAD_TOTALS,
            seeded.cards("abc"),
        )
        assert demo["count"] == 3
        assert demo["totals"] == [DEMO_TOTALS[0], DEMO_TOTALS[2]]  # no JPY left
        assert demo["deals"] == [*seeded.cards("f"), *seeded.de()]
        assert (won["count"], won["totals"], won["deals"]) == (1, WON_TOTALS, seeded.cards("h"))

    async def test_a_restored_deal_counts_again(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        deal = await create_deal(manager, stage_id=pipeline["stages"][0]["id"], amount="20.00")
        await archive(manager, f"/v1/deals/{deal['id']}")
        assert (await get_board(manager.client, pipeline["id"]))["stages"][0]["count"] == 0
        restored = await manager.client.post(f"/v1/deals/{deal['id']}/restore")
        assert restored.status_code == 200, restored.text

        board = await get_board(manager.client, pipeline["id"])

        assert board["stages"][0]["count"] == 1
        assert board["stages"][0]["totals"] == [
            {"currency": "USD", "count": 1, "amount": "20.00", "weighted_amount": "2.00"}
        ]
        assert board["stages"][0]["deals"] == [card(restored.json())]

    async def test_deals_of_other_pipelines_are_not_counted(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        other = await create_pipeline(manager)
        sales = await default_pipeline(manager.client)
        elsewhere = [
            await create_deal(manager, stage_id=other["stages"][0]["id"], amount="9.00"),
            await create_deal(manager, stage_id=other["stages"][2]["id"], amount="8.00"),
            await create_deal(manager, amount="7.00"),  # the default pipeline's first stage
        ]

        board = await get_board(manager.client, seeded.pipeline["id"], include_closed="true")

        assert [column["count"] for column in board["stages"]] == [3, 4, 1, 1]
        shown = {deal["id"] for column in board["stages"] for deal in column["deals"]}
        assert shown == {deal["id"] for deal in seeded.deals.values()}
        assert not shown & {deal["id"] for deal in elsewhere}

        other_board = await get_board(manager.client, other["id"], include_closed="true")
        assert [column["count"] for column in other_board["stages"]] == [1, 0, 1, 0]
        assert other_board["stages"][0]["totals"] == [
            {"currency": "USD", "count": 1, "amount": "9.00", "weighted_amount": "0.90"}
        ]
        sales_board = await get_board(manager.client, sales["id"])
        assert [column["stage"]["name"] for column in sales_board["stages"]] == [
            "New", "Qualified", "Proposal", "Negotiation", "Won", "Lost"
        ]  # fmt: skip
        assert [column["count"] for column in sales_board["stages"]] == [1, 0, 0, 0, 0, 0]
        assert sales_board["stages"][0]["totals"] == [
            # 7.00 x 10 % = 0.70
            {"currency": "USD", "count": 1, "amount": "7.00", "weighted_amount": "0.70"}
        ]
        assert sales_board["stages"][0]["deals"] == [card(elsewhere[2])]


class TestPagingAndSorting:
    async def test_limit_gives_a_cursor_that_the_deals_list_continues(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)

        board = await get_board(manager.client, seeded.pipeline["id"], limit=2)

        lead, demo = board["stages"][0], board["stages"][1]
        # The count and totals still cover every deal of the stage.
        assert (lead["count"], lead["totals"]) == (3, LEAD_TOTALS)
        assert (demo["count"], demo["totals"]) == (4, DEMO_TOTALS)
        assert lead["deals"] == seeded.cards("ab")
        assert lead["next_cursor"] is not None
        assert demo["deals"] == seeded.cards("fg")
        assert demo["next_cursor"] is not None
        assert board["stages"][2]["next_cursor"] is None

        rest = await manager.client.get(
            "/v1/deals",
            params={
                "stage_id": seeded.lead["id"],
                "sort": "-amount",
                "cursor": lead["next_cursor"],
            },
        )
        assert rest.status_code == 200, rest.text
        assert rest.json() == {"data": [seeded.deals["c"]], "next_cursor": None}

        rest = await manager.client.get(
            "/v1/deals",
            params={
                "stage_id": seeded.demo["id"],
                "sort": "-amount",
                "cursor": demo["next_cursor"],
            },
        )
        assert rest.status_code == 200, rest.text
        assert [card(deal) for deal in rest.json()["data"]] == seeded.de()
        assert rest.json()["next_cursor"] is None

    async def test_a_full_column_has_no_cursor(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        board = await get_board(manager.client, seeded.pipeline["id"], limit=3)
        assert board["stages"][0]["deals"] == seeded.cards("abc")
        assert board["stages"][0]["next_cursor"] is None
        assert board["stages"][1]["deals"] == [*seeded.cards("fg"), seeded.de()[0]]
        assert board["stages"][1]["next_cursor"] is not None

    async def test_sort_by_amount_ascending(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)

        board = await get_board(manager.client, seeded.pipeline["id"], sort="amount")

        assert board["stages"][0]["deals"] == seeded.cards("cba")
        assert board["stages"][1]["deals"] == [*seeded.de()[::-1], *seeded.cards("gf")]
        assert (board["stages"][0]["totals"], board["stages"][1]["totals"]) == (
            LEAD_TOTALS,
            DEMO_TOTALS,
        )

    async def test_ascending_cursor_continues_in_the_deals_list(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        board = await get_board(manager.client, seeded.pipeline["id"], sort="amount", limit=1)
        lead = board["stages"][0]
        assert lead["deals"] == seeded.cards("c")
        rest = await manager.client.get(
            "/v1/deals",
            params={"stage_id": seeded.lead["id"], "sort": "amount", "cursor": lead["next_cursor"]},
        )
        assert rest.status_code == 200, rest.text
        assert [card(deal) for deal in rest.json()["data"]] == seeded.cards("ba")

    async def test_other_deal_sorts(self, manager: Actor) -> None:
        seeded = await Seeded.create(manager)
        by_name = await get_board(manager.client, seeded.pipeline["id"], sort="-name")
        assert by_name["stages"][0]["deals"] == seeded.cards("cba")
        by_created = await get_board(manager.client, seeded.pipeline["id"], sort="created_at")
        assert by_created["stages"][1]["deals"] == seeded.cards("defg")

    async def test_unknown_sort_is_422(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        for sort in ("probability", "-weighted_amount", "--amount"):
            response = await manager.client.get(
                f"/v1/pipelines/{pipeline['id']}/board", params={"sort": sort}
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"query.sort"}, sort

    async def test_limit_is_1_to_100(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        path = f"/v1/pipelines/{pipeline['id']}/board"
        for limit in (0, 101, -1):
            response = await manager.client.get(path, params={"limit": limit})
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"query.limit"}, limit
        for limit in (1, 100):
            assert (await manager.client.get(path, params={"limit": limit})).status_code == 200


class TestAccess:
    async def test_unknown_pipeline_is_404(self, manager: Actor) -> None:
        response = await manager.client.get(f"/v1/pipelines/{UNKNOWN}/board")
        assert_problem(response, 404, "not-found")

    async def test_malformed_pipeline_id_is_422(self, manager: Actor) -> None:
        response = await manager.client.get("/v1/pipelines/not-a-uuid/board")
        assert error_fields(assert_problem(response, 422, "validation")) == {"path.pipeline_id"}

    async def test_viewer_and_rep_read_the_same_board(
        self, manager: Actor, viewer: Actor, rep: Actor
    ) -> None:
        seeded = await Seeded.create(manager)
        expected = await get_board(manager.client, seeded.pipeline["id"])
        assert await get_board(viewer.client, seeded.pipeline["id"]) == expected
        assert await get_board(rep.client, seeded.pipeline["id"]) == expected

    async def test_anonymous_gets_401(self, manager: Actor, anonymous: httpx.AsyncClient) -> None:
        pipeline = await create_pipeline(manager)
        response = await anonymous.get(f"/v1/pipelines/{pipeline['id']}/board")
        assert_problem(response, 401, "unauthorized")


class TestLargeTotals:
    async def test_totals_beyond_64_bit_integers_stay_exact(
        self, manager: Actor, rep: Actor
    ) -> None:
        pipeline = await create_pipeline(manager)
        lead = pipeline["stages"][0]
        for _ in range(12):  # 12 x 99,999,999,999,999.99 > 2**63 units of 0.0001
            await create_deal(rep, stage_id=lead["id"], amount="99999999999999.99")
        board = await get_board(rep.client, pipeline["id"])
        column = board["stages"][0]
        assert column["count"] == 12
        assert column["totals"] == [
            {
                "currency": "USD",
                "count": 12,
                "amount": "1199999999999999.88",
                "weighted_amount": "119999999999999.99",  # 10 %, .988 rounded half-even
            }
        ]
