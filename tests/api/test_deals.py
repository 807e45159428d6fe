"""Deals through HTTP: create, read, update, stage moves and history, permissions, and the
bad input the issue lists. Line items, contacts, lists and the board have their own files."""

from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from tests.api.factories import (
    archive,
    create_company,
    create_deal,
    create_pipeline,
    default_pipeline,
    define_custom_field,
)
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class TestCreate:
    async def test_defaults_to_the_first_stage_of_the_default_pipeline(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        response = await rep.client.post("/v1/deals", json={"name": "  Big   deal "})
        assert response.status_code == 201, response.text
        deal = response.json()
        assert response.headers["location"] == f"/v1/deals/{deal['id']}"
        assert response.headers["etag"] == '"1"'
        assert deal["name"] == "Big deal"
        assert deal["pipeline_id"] == sales["id"]
        assert deal["stage_id"] == sales["by_name"]["New"]
        assert deal["stage"] == {
            "id": sales["by_name"]["New"],
            "name": "New",
            "kind": "open",
            "probability": 10,
        }
        assert deal["status"] == "open"
        assert deal["amount"] == "0.00"
        assert deal["currency"] == "USD"
        assert deal["weighted_amount"] == "0.00"
        assert deal["owner_id"] == str(rep.id)
        assert deal["closed_at"] is None
        assert deal["contacts"] == []
        assert deal["line_items"] == []
        assert deal["version"] == 1

    async def test_full_body_is_stored_and_read_back(self, admin: Actor, rep: Actor) -> None:
        await define_custom_field(admin, "deal", "segment", "text")
        sales = await default_pipeline(rep.client)
        company = await create_company(rep, name="Acme", domain="acme-deals.example")
        deal = await create_deal(
            rep,
            name="Acme renewal",
            pipeline_id=sales["id"],
            stage_id=sales["by_name"]["Proposal"],
            amount="1250.50",
            currency="eur",
            expected_close_date="2026-12-31",
            company_id=company["id"],
            next_step="Send the contract",
            custom_fields={"segment": "smb"},
            external_id="erp-1",
        )
        read = await rep.client.get(f"/v1/deals/{deal['id']}")
        assert read.status_code == 200
        assert read.headers["etag"] == '"1"'
        body = read.json()
        assert body == deal
        assert body["currency"] == "EUR"
        assert body["amount"] == "1250.50"
        assert body["weighted_amount"] == "625.25"  # 50 %
        assert body["expected_close_date"] == "2026-12-31"
        assert body["company"] == {"id": company["id"], "name": "Acme", "domain": company["domain"]}

    async def test_weighted_amount_rounds_half_even(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        # 0.05 x 10 % = 0.005 -> 0.00 (half to even); 0.15 x 10 % = 0.015 -> 0.02
        low = await create_deal(rep, amount="0.05", stage_id=sales["by_name"]["New"])
        high = await create_deal(rep, amount="0.15", stage_id=sales["by_name"]["New"])
        assert low["weighted_amount"] == "0.00"
        assert high["weighted_amount"] == "0.02"

    async def test_stage_infers_its_pipeline(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        demo = pipeline["stages"][1]
        deal = await create_deal(manager, stage_id=demo["id"])
        assert deal["pipeline_id"] == pipeline["id"]
        assert deal["stage"]["name"] == "Demo"

    async def test_created_in_a_won_stage_is_closed(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(rep, stage_id=sales["by_name"]["Won"], amount="10")
        assert deal["status"] == "won"
        assert deal["closed_at"] is not None


class TestBadInput:
    async def test_stage_from_another_pipeline_is_422(self, manager: Actor) -> None:
        sales = await default_pipeline(manager.client)
        other = await create_pipeline(manager)
        response = await manager.client.post(
            "/v1/deals",
            json={"name": "X", "pipeline_id": sales["id"], "stage_id": other["stages"][0]["id"]},
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.stage_id"}

    async def test_unknown_stage_and_pipeline_are_422(self, rep: Actor) -> None:
        unknown = "0190a0a0-0000-7000-8000-000000000000"
        for field in ("stage_id", "pipeline_id"):
            response = await rep.client.post("/v1/deals", json={"name": "X", field: unknown})
            assert error_fields(assert_problem(response, 422, "validation")) == {f"body.{field}"}

    async def test_unknown_currency_is_422(self, rep: Actor) -> None:
        response = await rep.client.post("/v1/deals", json={"name": "X", "currency": "ABC"})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.currency"}

    async def test_more_decimals_than_the_currency_allows_is_422(self, rep: Actor) -> None:
        for amount, currency in (("10.001", "USD"), ("5.5", "JPY"), ("1.0001", "KWD")):
            response = await rep.client.post(
                "/v1/deals", json={"name": "X", "amount": amount, "currency": currency}
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.amount"}, (amount, currency)
        ok = await rep.client.post(
            "/v1/deals", json={"name": "X", "amount": "1.125", "currency": "KWD"}
        )
        assert ok.status_code == 201
        assert ok.json()["amount"] == "1.125"

    async def test_amount_as_a_number_negative_or_garbage_is_422(self, rep: Actor) -> None:
        for amount in (12.5, "-1", "1e3", "abc", "NaN"):
            response = await rep.client.post("/v1/deals", json={"name": "X", "amount": amount})
            assert error_fields(assert_problem(response, 422, "validation")) == {"body.amount"}

    async def test_archived_company_on_a_new_deal_is_422(self, rep: Actor) -> None:
        company = await create_company(rep)
        await archive(rep, f"/v1/companies/{company['id']}")
        response = await rep.client.post(
            "/v1/deals", json={"name": "X", "company_id": company["id"]}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.company_id"}

    async def test_lost_without_a_reason_is_422_and_nothing_is_written(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(rep)
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": sales["by_name"]["Lost"]}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.lost_reason"}
        after = (await rep.client.get(f"/v1/deals/{deal['id']}")).json()
        assert after == deal
        history = (await rep.client.get(f"/v1/deals/{deal['id']}/stage-history")).json()
        assert len(history["data"]) == 1

    async def test_lost_reason_on_an_open_deal_is_422(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        response = await rep.client.patch(
            f"/v1/deals/{deal['id']}", json={"lost_reason": "too pricey"}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.lost_reason"}

    async def test_expected_close_date_must_be_a_date(self, rep: Actor) -> None:
        for value in ("2026-13-01", "2026-01-01T00:00:00Z", 1700000000):
            response = await rep.client.post(
                "/v1/deals", json={"name": "X", "expected_close_date": value}
            )
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"body.expected_close_date"}

    async def test_unknown_fields_and_derived_fields_are_rejected(self, rep: Actor) -> None:
        for field, value in (("status", "won"), ("closed_at", "2026-01-01T00:00:00Z"),
                             ("weighted_amount", "1"), ("colour", "red")):  # fmt: skip
            response = await rep.client.post("/v1/deals", json={"name": "X", field: value})
            assert_problem(response, 422, "validation")


class TestMoves:
    async def test_move_to_another_pipeline_needs_its_stage(self, manager: Actor) -> None:
        other = await create_pipeline(manager)
        deal = await create_deal(manager)
        response = await manager.client.patch(
            f"/v1/deals/{deal['id']}", json={"pipeline_id": other["id"]}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.stage_id"}
        response = await manager.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": other["stages"][1]["id"]}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.stage_id"}
        moved = await manager.client.post(
            f"/v1/deals/{deal['id']}/move",
            json={"pipeline_id": other["id"], "stage_id": other["stages"][1]["id"]},
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["pipeline_id"] == other["id"]
        assert moved.json()["stage"]["name"] == "Demo"

    async def test_won_sets_closed_at_and_reopening_clears_it(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(rep)
        won = await rep.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": sales["by_name"]["Won"]}
        )
        assert won.status_code == 200
        assert won.json()["status"] == "won"
        assert won.json()["closed_at"] == won.json()["stage_changed_at"]
        assert won.headers["etag"] == '"2"'
        reopened = await rep.client.patch(
            f"/v1/deals/{deal['id']}", json={"stage_id": sales["by_name"]["Negotiation"]}
        )
        assert reopened.json()["status"] == "open"
        assert reopened.json()["closed_at"] is None

    async def test_patch_stage_behaves_like_move(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(rep)
        response = await rep.client.patch(
            f"/v1/deals/{deal['id']}", json={"stage_id": sales["by_name"]["Lost"]}
        )
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.lost_reason"}
        response = await rep.client.patch(
            f"/v1/deals/{deal['id']}",
            json={"stage_id": sales["by_name"]["Lost"], "lost_reason": "Budget"},
        )
        assert response.status_code == 200
        assert response.json()["status"] == "lost"
        assert response.json()["lost_reason"] == "Budget"

    async def test_stale_if_match_on_a_move_is_412(self, rep: Actor) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(rep)
        await rep.client.patch(f"/v1/deals/{deal['id']}", json={"next_step": "call"})
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/move",
            json={"stage_id": sales["by_name"]["Qualified"]},
            headers={"If-Match": '"1"'},
        )
        body = assert_problem(response, 412, "precondition-failed")
        assert body["current_version"] == 2
        current = await rep.client.post(
            f"/v1/deals/{deal['id']}/move",
            json={"stage_id": sales["by_name"]["Qualified"]},
            headers={"If-Match": '"2"'},
        )
        assert current.status_code == 200

    async def test_rep_cannot_move_a_deal_they_do_not_own(
        self, rep: Actor, other_rep: Actor, manager: Actor
    ) -> None:
        sales = await default_pipeline(rep.client)
        deal = await create_deal(other_rep)
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": sales["by_name"]["Qualified"]}
        )
        assert_problem(response, 403, "forbidden")
        by_manager = await manager.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": sales["by_name"]["Qualified"]}
        )
        assert by_manager.status_code == 200

    async def test_full_history_new_qualified_lost_reopened_won(
        self, rep: Actor, manager: Actor
    ) -> None:
        sales = await default_pipeline(rep.client)
        stage = sales["by_name"]
        deal = await create_deal(rep, amount="100.00")
        moves = [
            (rep, {"stage_id": stage["Qualified"]}),
            (rep, {"stage_id": stage["Lost"], "lost_reason": "No budget"}),
            (manager, {"stage_id": stage["Proposal"]}),
            (rep, {"stage_id": stage["Won"]}),
        ]
        for actor, body in moves:
            response = await actor.client.post(f"/v1/deals/{deal['id']}/move", json=body)
            assert response.status_code == 200, response.text
            if body["stage_id"] == stage["Proposal"]:
                reopened = response.json()
                assert reopened["lost_reason"] is None
                assert reopened["closed_at"] is None
        final = response.json()
        assert final["status"] == "won"
        assert final["version"] == 5

        response = await rep.client.get(f"/v1/deals/{deal['id']}/stage-history")
        assert response.status_code == 200
        history = response.json()
        path = [
            (e["from_stage_name"], e["to_stage_name"], e["to_stage_kind"], e["changed_by"])
            for e in history["data"]
        ]
        assert path == [
            (None, "New", "open", str(rep.id)),
            ("New", "Qualified", "open", str(rep.id)),
            ("Qualified", "Lost", "lost", str(rep.id)),
            ("Lost", "Proposal", "open", str(manager.id)),
            ("Proposal", "Won", "won", str(rep.id)),
        ]
        entries = history["data"]
        for entry, following in pairwise(entries):
            assert entry["left_at"] == following["changed_at"]
            spent = utc(following["changed_at"]) - utc(entry["changed_at"])
            assert entry["seconds_in_stage"] == int(spent.total_seconds())
        assert entries[-1]["left_at"] is None
        assert entries[-1]["changed_at"] == final["closed_at"]
        assert [t["stage_name"] for t in history["time_in_stage"]] == [
            "New", "Qualified", "Lost", "Proposal", "Won"
        ]  # fmt: skip
        assert all(t["visits"] == 1 for t in history["time_in_stage"])

    async def test_moving_to_the_same_stage_changes_nothing(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": deal["stage_id"]}
        )
        assert response.status_code == 200
        assert response.json()["version"] == 1


class TestUpdateAndArchive:
    async def test_patch_changes_only_the_fields_sent_and_is_audited(
        self, rep: Actor, manager: Actor
    ) -> None:
        deal = await create_deal(rep, amount="10.00", next_step="call")
        response = await rep.client.patch(
            f"/v1/deals/{deal['id']}", json={"amount": "12.50", "expected_close_date": None}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["amount"] == "12.50"
        assert body["next_step"] == "call"
        audit = await manager.client.get("/v1/audit-log", params={"entity_id": deal["id"]})
        actions = [(row["action"], sorted(row["changes"])) for row in audit.json()["data"]]
        assert ("updated", ["amount"]) in actions

    async def test_not_nullable_fields(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        for field in ("stage_id", "amount", "currency", "name"):
            response = await rep.client.patch(f"/v1/deals/{deal['id']}", json={field: None})
            assert_problem(response, 422, "validation")

    async def test_archive_and_restore(self, rep: Actor) -> None:
        deal = await create_deal(rep)
        await archive(rep, f"/v1/deals/{deal['id']}")
        listed = await rep.client.get("/v1/deals")
        assert deal["id"] not in [d["id"] for d in listed.json()["data"]]
        response = await rep.client.post(
            f"/v1/deals/{deal['id']}/move", json={"stage_id": deal["stage_id"]}
        )
        assert_problem(response, 409, "conflict")
        restored = await rep.client.post(f"/v1/deals/{deal['id']}/restore")
        assert restored.status_code == 200
        assert restored.json()["archived_at"] is None

    async def test_viewer_reads_but_cannot_write(self, rep: Actor, viewer: Actor) -> None:
        deal = await create_deal(rep)
        assert (await viewer.client.get(f"/v1/deals/{deal['id']}")).status_code == 200
        response = await viewer.client.post("/v1/deals", json={"name": "X"})
        assert_problem(response, 403, "forbidden")

    async def test_external_id_is_unique_among_live_deals(self, rep: Actor) -> None:
        first = await create_deal(rep, external_id="erp-42")
        response = await rep.client.post("/v1/deals", json={"name": "X", "external_id": "erp-42"})
        body = assert_problem(response, 409, "conflict")
        assert body["existing_id"] == first["id"]

    async def test_unknown_deal_is_404(self, rep: Actor) -> None:
        unknown = "0190a0a0-0000-7000-8000-000000000000"
        for path in ("", "/stage-history", "/contacts", "/line-items"):
            response = await rep.client.get(f"/v1/deals/{unknown}{path}")
            assert_problem(response, 404, "not-found")


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}
