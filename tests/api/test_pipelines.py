"""Pipelines and stages through HTTP. Tests read the migration's default pipeline but change
only pipelines they create."""

from typing import Any
from uuid import uuid4

from tests.api.factories import STAGES, archive, create_deal, create_pipeline
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor


def shape(pipeline: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    return [(s["name"], s["position"], s["probability"], s["kind"]) for s in pipeline["stages"]]


class TestDefaultPipeline:
    async def test_sales_exists_after_migration_with_its_stages_in_order(
        self, viewer: Actor
    ) -> None:
        response = await viewer.client.get("/v1/pipelines")
        assert response.status_code == 200
        assert response.json()["next_cursor"] is None
        defaults = [p for p in response.json()["data"] if p["is_default"]]
        assert len(defaults) == 1
        assert defaults[0]["name"] == "Sales"
        assert shape(defaults[0]) == [
            ("New", 0, 10, "open"),
            ("Qualified", 1, 25, "open"),
            ("Proposal", 2, 50, "open"),
            ("Negotiation", 3, 75, "open"),
            ("Won", 4, 100, "won"),
            ("Lost", 5, 0, "lost"),
        ]


class TestCreatePipeline:
    async def test_manager_creates_with_ordered_stages(self, manager: Actor) -> None:
        response = await manager.client.post(
            "/v1/pipelines", json={"name": "Renewals", "stages": STAGES}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["location"] == f"/v1/pipelines/{body['id']}"
        assert response.headers["etag"] == '"1"'
        assert body["is_default"] is False
        assert shape(body) == [
            ("Lead", 0, 10, "open"),
            ("Demo", 1, 40, "open"),
            ("Won", 2, 100, "won"),
            ("Lost", 3, 0, "lost"),
        ]
        fetched = await manager.client.get(f"/v1/pipelines/{body['id']}")
        assert fetched.json() == body

    async def test_reps_and_viewers_may_not(self, rep: Actor, viewer: Actor) -> None:
        for actor in (rep, viewer):
            response = await actor.client.post(
                "/v1/pipelines", json={"name": "X", "stages": STAGES}
            )
            assert_problem(response, 403, "forbidden")

    async def test_needs_a_won_and_a_lost_stage(self, manager: Actor) -> None:
        stages = [stage for stage in STAGES if stage.get("kind") != "lost"]
        response = await manager.client.post("/v1/pipelines", json={"name": "X", "stages": stages})
        assert "body.stages" in error_fields(assert_problem(response, 422, "validation"))

    async def test_probability_is_0_to_100(self, manager: Actor) -> None:
        stages = [{**STAGES[0], "probability": 101}, *STAGES[1:]]
        response = await manager.client.post("/v1/pipelines", json={"name": "X", "stages": stages})
        assert "body.stages.0.probability" in error_fields(
            assert_problem(response, 422, "validation")
        )


class TestChangeStages:
    async def test_add_a_stage_in_the_middle(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        response = await manager.client.post(
            f"/v1/pipelines/{pipeline['id']}/stages",
            json={"name": "Trial", "probability": 60, "position": 2},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"2"'
        assert [s["name"] for s in response.json()["stages"]] == [
            "Lead",
            "Demo",
            "Trial",
            "Won",
            "Lost",
        ]
        assert [s["position"] for s in response.json()["stages"]] == [0, 1, 2, 3, 4]

    async def test_reorder_in_one_call(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        ids = [stage["id"] for stage in pipeline["stages"]]
        new_order = [ids[1], ids[0], ids[2], ids[3]]
        response = await manager.client.post(
            f"/v1/pipelines/{pipeline['id']}/stages/reorder", json={"stage_ids": new_order}
        )
        assert response.status_code == 200, response.text
        assert [s["id"] for s in response.json()["stages"]] == new_order
        assert [s["position"] for s in response.json()["stages"]] == [0, 1, 2, 3]

    async def test_reorder_must_name_every_stage_once(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        ids = [stage["id"] for stage in pipeline["stages"]]
        for stage_ids in (ids[:-1], [*ids[:-1], ids[0]], [*ids[:-1], str(uuid4())]):
            response = await manager.client.post(
                f"/v1/pipelines/{pipeline['id']}/stages/reorder", json={"stage_ids": stage_ids}
            )
            assert "body.stage_ids" in error_fields(assert_problem(response, 422, "validation"))

    async def test_update_a_stage(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        demo = pipeline["stages"][1]
        response = await manager.client.patch(
            f"/v1/pipelines/{pipeline['id']}/stages/{demo['id']}",
            json={"name": "Demo done", "probability": 45},
        )
        assert response.status_code == 200, response.text
        assert response.json()["stages"][1] == {**demo, "name": "Demo done", "probability": 45}

    async def test_the_last_won_or_lost_stage_must_stay(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        won, lost = pipeline["stages"][2], pipeline["stages"][3]
        path = f"/v1/pipelines/{pipeline['id']}/stages"
        response = await manager.client.patch(f"{path}/{won['id']}", json={"kind": "open"})
        assert "body.kind" in error_fields(assert_problem(response, 422, "validation"))
        response = await manager.client.delete(f"{path}/{lost['id']}")
        assert "path.stage_id" in error_fields(assert_problem(response, 422, "validation"))

    async def test_delete_a_stage_renumbers_the_rest(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        lead = pipeline["stages"][0]
        response = await manager.client.delete(
            f"/v1/pipelines/{pipeline['id']}/stages/{lead['id']}"
        )
        assert response.status_code == 200, response.text
        assert [(s["name"], s["position"]) for s in response.json()["stages"]] == [
            ("Demo", 0),
            ("Won", 1),
            ("Lost", 2),
        ]

    async def test_a_stage_of_another_pipeline_is_404(self, manager: Actor) -> None:
        first, second = await create_pipeline(manager), await create_pipeline(manager)
        response = await manager.client.patch(
            f"/v1/pipelines/{first['id']}/stages/{second['stages'][0]['id']}", json={"name": "X"}
        )
        assert_problem(response, 404, "not-found")

    async def test_stale_if_match_is_412_and_changes_nothing(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        await manager.client.patch(f"/v1/pipelines/{pipeline['id']}", json={"name": "Renamed"})
        response = await manager.client.post(
            f"/v1/pipelines/{pipeline['id']}/stages",
            json={"name": "Late", "probability": 5},
            headers={"If-Match": '"1"'},
        )
        assert assert_problem(response, 412, "precondition-failed")["current_version"] == 2
        fetched = (await manager.client.get(f"/v1/pipelines/{pipeline['id']}")).json()
        assert [s["name"] for s in fetched["stages"]] == ["Lead", "Demo", "Won", "Lost"]

    async def test_changes_are_audited(self, manager: Actor) -> None:
        pipeline = await create_pipeline(manager)
        await manager.client.patch(f"/v1/pipelines/{pipeline['id']}", json={"name": "Renamed"})
        response = await manager.client.get(
            "/v1/audit-log", params={"entity_type": "pipeline", "entity_id": pipeline["id"]}
        )
        entries = response.json()["data"]
        assert [e["action"] for e in entries] == ["updated", "created"]
        assert entries[0]["changes"] == {"name": [pipeline["name"], "Renamed"]}


class TestStagesHoldingDeals:
    async def test_deleting_a_stage_with_deals_is_409_with_the_count(
        self, manager: Actor, rep: Actor
    ) -> None:
        pipeline = await create_pipeline(manager)
        lead = pipeline["stages"][0]
        for _ in range(2):
            await create_deal(rep, stage_id=lead["id"])
        archived = await create_deal(rep, stage_id=lead["id"])
        await archive(rep, f"/v1/deals/{archived['id']}")
        response = await manager.client.delete(
            f"/v1/pipelines/{pipeline['id']}/stages/{lead['id']}"
        )
        body = assert_problem(response, 409, "conflict")
        assert body["deal_count"] == 3, "archived deals keep their stage too"
        after = await manager.client.get(f"/v1/pipelines/{pipeline['id']}")
        assert after.json()["stages"] == pipeline["stages"]
        assert after.json()["version"] == 1

    async def test_naming_a_target_moves_the_deals_with_history(
        self, manager: Actor, rep: Actor
    ) -> None:
        stages = [*STAGES[:2], {"name": "Trial", "probability": 60}, *STAGES[2:]]
        pipeline = await create_pipeline(manager, stages)
        lead, trial = pipeline["stages"][0], pipeline["stages"][2]
        deal = await create_deal(rep, stage_id=lead["id"])
        response = await manager.client.delete(
            f"/v1/pipelines/{pipeline['id']}/stages/{lead['id']}",
            params={"move_deals_to": trial["id"]},
        )
        assert response.status_code == 200, response.text
        assert [s["name"] for s in response.json()["stages"]] == ["Demo", "Trial", "Won", "Lost"]
        moved = (await rep.client.get(f"/v1/deals/{deal['id']}")).json()
        assert moved["stage"]["name"] == "Trial"
        assert moved["weighted_amount"] == "0.00"
        assert moved["version"] == 2
        history = (await rep.client.get(f"/v1/deals/{deal['id']}/stage-history")).json()["data"]
        assert [(e["from_stage_name"], e["to_stage_name"]) for e in history] == [
            (None, None),  # the deleted stage has no name any more
            (None, "Trial"),
        ]
        assert history[1]["from_stage_id"] == lead["id"]
        assert history[1]["changed_by"] == str(manager.id)

    async def test_target_must_be_another_stage_of_the_same_pipeline_and_kind(
        self, manager: Actor, rep: Actor
    ) -> None:
        pipeline = await create_pipeline(manager)
        other = await create_pipeline(manager)
        lead, demo, won = pipeline["stages"][:3]
        await create_deal(rep, stage_id=lead["id"])
        path = f"/v1/pipelines/{pipeline['id']}/stages/{lead['id']}"
        for target in (won["id"], other["stages"][1]["id"], lead["id"]):
            response = await manager.client.delete(path, params={"move_deals_to": target})
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"query.move_deals_to"}
        assert (await manager.client.delete(path, params={"move_deals_to": demo["id"]})).is_success

    async def test_a_stage_holding_deals_keeps_its_kind(self, manager: Actor, rep: Actor) -> None:
        stages = [*STAGES, {"name": "Won big", "probability": 100, "kind": "won"}]
        pipeline = await create_pipeline(manager, stages)
        won = pipeline["stages"][2]
        await create_deal(rep, stage_id=won["id"])
        response = await manager.client.patch(
            f"/v1/pipelines/{pipeline['id']}/stages/{won['id']}", json={"kind": "open"}
        )
        assert assert_problem(response, 409, "conflict")["deal_count"] == 1
        renamed = await manager.client.patch(
            f"/v1/pipelines/{pipeline['id']}/stages/{won['id']}",
            json={"name": "Closed won", "probability": 100},
        )
        assert renamed.status_code == 200
