"""Pipeline rules: managers and admins shape pipelines; every pipeline keeps at least one won
and one lost stage; any stage change is a change of the pipeline (its version and audit)."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.batch import InsertBatch
from crm_api.core.changes import record_change
from crm_api.core.concurrency import Versions, check_version
from crm_api.core.enums import Role, StageKind
from crm_api.core.errors import Conflict, Invalid, NotFound
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader, Row
from crm_api.pipelines.repository import PipelineRepository, pipelines, stages

_STAGE_FIELDS = ("id", "name", "position", "probability", "kind")


def _stage_read(row: Row) -> dict[str, Any]:
    return {field: row[field] for field in _STAGE_FIELDS}


def _represent(pipeline: Row, stage_rows: Iterable[Row]) -> dict[str, Any]:
    ordered = sorted(stage_rows, key=lambda stage: (stage["position"], stage["id"]))
    return {**pipeline, "stages": [_stage_read(stage) for stage in ordered]}


def _check_outcomes(kinds: Iterable[str], field: str) -> None:
    present = set(kinds)
    if not {StageKind.won, StageKind.lost} <= present:
        raise Invalid(
            "A pipeline needs at least one won and one lost stage.",
            [(field, "must leave at least one `won` and one `lost` stage")],
        )


class StageOccupancy(Protocol):
    """The deals in a stage: the deals slice answers, this slice does not read its tables."""

    async def deals_in_stage(self, stage_id: UUID) -> int:
        """Deals in the stage, archived ones included (they keep their stage)."""
        ...

    async def move_stage_deals(self, from_stage: Row, to_stage: Row, at: datetime) -> None:
        """Moves every deal of `from_stage` to `to_stage`, with history, audit and events."""
        ...


class PipelineService:
    def __init__(
        self,
        session: AsyncSession,
        reader: Reader,
        principal: Principal,
        occupancy: StageOccupancy | None = None,
    ) -> None:
        self.session = session
        self.reader = reader
        self.principal = principal
        self.occupancy = occupancy
        self.repository = PipelineRepository(session, reader)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, pipeline_id: UUID) -> dict[str, Any]:
        pipeline = await self.repository.get(pipeline_id)
        if pipeline is None:
            raise NotFound(f"No pipeline has id {pipeline_id}.")
        return _represent(pipeline, await self.repository.stages(pipeline_id))

    async def list_pipelines(self) -> list[dict[str, Any]]:
        by_pipeline: dict[UUID, list[Row]] = {}
        for stage in await self.repository.all_stages():
            by_pipeline.setdefault(stage["pipeline_id"], []).append(stage)
        return [
            _represent(pipeline, by_pipeline.get(pipeline["id"], []))
            for pipeline in await self.repository.all()
        ]

    async def stage_to_enter(self, stage_id: UUID) -> Row | None:
        """A stage a deal is about to enter, share-locked so it cannot be deleted or change kind
        before the deal's write commits."""
        return await self.repository.lock_stage(stage_id, shared=True)

    async def entry_stage(self, pipeline_id: UUID | None, field: str) -> Row:
        """Where a new deal starts: the first stage of `pipeline_id`, or of the default pipeline
        (422 if there is no such pipeline); share-locked as `stage_to_enter`."""
        if pipeline_id is None:
            pipeline_id = await self.repository.default_id()
        stage_rows = await self.repository.stages(pipeline_id) if pipeline_id else []
        entry = stage_rows and await self.stage_to_enter(stage_rows[0]["id"])
        if not entry:
            raise Invalid(f"No pipeline has id {pipeline_id}.", [(field, "must be a pipeline id")])
        return entry

    # -- writes --------------------------------------------------------------------------------

    async def create(self, name: str, stage_inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._require_manager()
        _check_outcomes((stage["kind"] for stage in stage_inputs), "body.stages")
        now = utcnow()
        pipeline = {
            "id": uuid7(),
            "name": name,
            "is_default": False,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        stage_rows = [
            {**stage, "id": uuid7(), "pipeline_id": pipeline["id"], "position": position,
             "created_at": now, "updated_at": now}
            for position, stage in enumerate(stage_inputs)
        ]  # fmt: skip
        batch = InsertBatch()
        batch.add(pipelines, pipeline)
        for stage in stage_rows:
            batch.add(stages, stage)
        record = _represent(pipeline, stage_rows)
        self._record(batch, "created", record, {"name": [None, name]}, now)
        await batch.flush(self.reader)
        return record

    async def rename(
        self, pipeline_id: UUID, name: str | None, expected: Versions | None
    ) -> dict[str, Any]:
        pipeline, stage_rows = await self._locked(pipeline_id, expected)
        if name is None or name == pipeline["name"]:
            return _represent(pipeline, stage_rows)
        return await self._changed(
            pipeline, stage_rows, {"name": name}, {"name": [pipeline["name"], name]}
        )

    async def add_stage(
        self, pipeline_id: UUID, stage: dict[str, Any], expected: Versions | None
    ) -> dict[str, Any]:
        pipeline, stage_rows = await self._locked(pipeline_id, expected)
        position = stage.pop("position")
        position = len(stage_rows) if position is None else min(position, len(stage_rows))
        now = utcnow()
        new = {**stage, "id": uuid7(), "pipeline_id": pipeline_id, "position": position,
               "created_at": now, "updated_at": now}  # fmt: skip
        ordered = list(stage_rows)
        ordered.insert(position, new)
        await self._renumber(ordered[position + 1 :], position + 1, now)
        batch = InsertBatch()
        batch.add(stages, new)
        await batch.flush(self.reader)
        changes = {"stages": [_names(stage_rows), _names(ordered)]}
        return await self._changed(pipeline, ordered, {}, changes)

    async def update_stage(
        self, pipeline_id: UUID, stage_id: UUID, values: dict[str, Any], expected: Versions | None
    ) -> dict[str, Any]:
        pipeline, stage_rows = await self._locked(pipeline_id, expected)
        current = _find(stage_rows, stage_id, pipeline_id)
        changed = {key: value for key, value in values.items() if current[key] != value}
        if not changed:
            return _represent(pipeline, stage_rows)
        updated = [{**row, **changed} if row["id"] == stage_id else row for row in stage_rows]
        _check_outcomes((row["kind"] for row in updated), "body.kind")
        if "kind" in changed:
            await self._require_empty(current, "change its kind")
        await self.repository.update_stage(stage_id, {**changed, "updated_at": utcnow()})
        changes = {
            f"stages.{stage_id}.{key}": [current[key], value] for key, value in changed.items()
        }
        return await self._changed(pipeline, updated, {}, changes)

    async def reorder(
        self, pipeline_id: UUID, stage_ids: list[UUID], expected: Versions | None
    ) -> dict[str, Any]:
        pipeline, stage_rows = await self._locked(pipeline_id, expected)
        by_id = {row["id"]: row for row in stage_rows}
        if len(stage_ids) != len(by_id) or set(stage_ids) != set(by_id):
            raise Invalid(
                "List every stage of the pipeline exactly once.",
                [("body.stage_ids", "must be a permutation of the pipeline's stage ids")],
            )
        ordered = [by_id[stage_id] for stage_id in stage_ids]
        await self._renumber(ordered, 0, utcnow())
        return await self._changed(
            pipeline, ordered, {}, {"stages": [_names(stage_rows), _names(ordered)]}
        )

    async def delete_stage(
        self,
        pipeline_id: UUID,
        stage_id: UUID,
        move_deals_to: UUID | None,
        expected: Versions | None,
    ) -> dict[str, Any]:
        pipeline, stage_rows = await self._locked(pipeline_id, expected)
        stage = _find(stage_rows, stage_id, pipeline_id)
        remaining = [row for row in stage_rows if row["id"] != stage_id]
        _check_outcomes((row["kind"] for row in remaining), "path.stage_id")
        if move_deals_to is None:
            await self._require_empty(stage, "delete it")
        else:
            target = _target_stage(remaining, stage, move_deals_to)
            await self.repository.lock_stage(stage_id, shared=False)  # no deal may enter now
            await self._occupancy().move_stage_deals(stage, target, utcnow())
        await self.repository.delete_stage(stage_id)
        await self._renumber(remaining, 0, utcnow())
        return await self._changed(
            pipeline, remaining, {}, {"stages": [_names(stage_rows), _names(remaining)]}
        )

    # -- shared steps --------------------------------------------------------------------------

    def _require_manager(self) -> None:
        self.principal.require_write()
        self.principal.require_role(Role.admin, Role.manager)

    async def _locked(self, pipeline_id: UUID, expected: Versions | None) -> tuple[Row, list[Row]]:
        self._require_manager()
        pipeline = await self.repository.lock(pipeline_id)
        if pipeline is None:
            raise NotFound(f"No pipeline has id {pipeline_id}.")
        check_version(expected, pipeline["version"])
        return pipeline, await self.repository.stages(pipeline_id)

    def _occupancy(self) -> StageOccupancy:
        if self.occupancy is None:
            raise RuntimeError("PipelineService needs a StageOccupancy to change stages")
        return self.occupancy

    async def _require_empty(self, stage: Row, action: str) -> None:
        await self.repository.lock_stage(stage["id"], shared=False)  # no deal may enter now
        count = await self._occupancy().deals_in_stage(stage["id"])
        if count:
            raise Conflict(
                f"Stage {stage['name']!r} holds {count} deal(s); move them before you {action}"
                " (DELETE takes `move_deals_to`, a stage of the same pipeline and kind).",
                deal_count=count,
            )

    async def _renumber(self, rows: list[Row], start: int, at: datetime) -> None:
        """Gives `rows` the positions start, start+1, …, writing only those that move."""
        for offset, row in enumerate(rows):
            if row["position"] != start + offset:
                row["position"] = start + offset
                await self.repository.update_stage(
                    row["id"], {"position": row["position"], "updated_at": at}
                )

    async def _changed(
        self,
        pipeline: Row,
        stage_rows: list[Row],
        values: dict[str, Any],
        changes: dict[str, list[Any]],
    ) -> dict[str, Any]:
        now = utcnow()
        values = {**values, "version": pipeline["version"] + 1, "updated_at": now}
        await self.repository.update_pipeline(pipeline["id"], values)
        record = _represent({**pipeline, **values}, stage_rows)
        batch = InsertBatch()
        self._record(batch, "updated", record, changes, now)
        await batch.flush(self.reader)
        return record

    def _record(
        self, batch: InsertBatch, action: str, record: dict[str, Any],
        changes: dict[str, list[Any]], at: datetime,
    ) -> None:  # fmt: skip
        record_change(
            batch, principal=self.principal, action=action, entity_type="pipeline",
            entity_id=record["id"], changes=changes, data=record, at=at,
        )  # fmt: skip


def _names(rows: list[Row]) -> list[str]:
    return [row["name"] for row in rows]


def _target_stage(remaining: list[Row], stage: Row, target_id: UUID) -> Row:
    """The stage that takes a deleted stage's deals: same pipeline, same kind, so no deal
    closes or reopens as a side effect."""
    for row in remaining:
        if row["id"] == target_id:
            if row["kind"] != stage["kind"]:
                raise Invalid(
                    "Deals can only move to a stage of the same kind.",
                    [("query.move_deals_to", f"must be a {stage['kind']} stage")],
                )
            return row
    raise Invalid(
        "The target stage is not another stage of this pipeline.",
        [("query.move_deals_to", "must be the id of another stage of the same pipeline")],
    )


def _find(stage_rows: list[Row], stage_id: UUID, pipeline_id: UUID) -> Row:
    for row in stage_rows:
        if row["id"] == stage_id:
            return row
    raise NotFound(f"Pipeline {pipeline_id} has no stage {stage_id}.")
