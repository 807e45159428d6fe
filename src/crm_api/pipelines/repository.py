"""The only place with pipeline and stage SQL. Flushes, never commits."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import lock_for_write, table_of
from crm_api.core.reader import Reader, Row
from crm_api.pipelines.models import Pipeline, Stage

pipelines = table_of(Pipeline)
stages = table_of(Stage)

_pipeline = select(pipelines).where(pipelines.c.id == bindparam("id"))
_all_pipelines = select(pipelines).order_by(pipelines.c.created_at, pipelines.c.id)
_stages_of = (
    select(stages)
    .where(stages.c.pipeline_id == bindparam("pipeline_id"))
    .order_by(stages.c.position, stages.c.id)
)
_all_stages = select(stages).order_by(stages.c.pipeline_id, stages.c.position, stages.c.id)
_locked_pipeline = _pipeline.with_for_update()
_stage = select(stages).where(stages.c.id == bindparam("id"))
_locked_stage = _stage.with_for_update()
_shared_stage = _stage.with_for_update(read=True)
DEFAULT_PIPELINE = select(pipelines.c.id).where(pipelines.c.is_default.is_(True))


class PipelineRepository:
    def __init__(self, session: AsyncSession, reader: Reader) -> None:
        self.session = session
        self.reader = reader

    async def get(self, pipeline_id: UUID) -> Row | None:
        return await self.reader.one(_pipeline, {"id": pipeline_id})

    async def all(self) -> list[Row]:
        return await self.reader.all(_all_pipelines, {})

    async def stages(self, pipeline_id: UUID) -> list[Row]:
        return await self.reader.all(_stages_of, {"pipeline_id": pipeline_id})

    async def all_stages(self) -> list[Row]:
        return await self.reader.all(_all_stages, {})

    async def stage(self, stage_id: UUID) -> Row | None:
        return await self.reader.one(_stage, {"id": stage_id})

    async def lock_stage(self, stage_id: UUID, *, shared: bool) -> Row | None:
        """The stage, locked until commit: `shared` by deals entering it, exclusively by a
        change of the stage itself, so neither sees the other half done."""
        await lock_for_write(self.session)
        stmt = _shared_stage if shared else _locked_stage
        row = (await self.session.execute(stmt, {"id": stage_id})).mappings().first()
        return dict(row) if row else None

    async def default_id(self) -> UUID | None:
        id_: UUID | None = await self.reader.scalar(DEFAULT_PIPELINE, {})
        return id_

    async def lock(self, pipeline_id: UUID) -> Row | None:
        await lock_for_write(self.session)
        result = await self.session.execute(_locked_pipeline, {"id": pipeline_id})
        row = result.mappings().first()
        return dict(row) if row else None

    async def update_pipeline(self, pipeline_id: UUID, values: Mapping[str, Any]) -> None:
        stmt = update(pipelines).where(pipelines.c.id == pipeline_id).values(**values)
        await self.session.execute(stmt)

    async def update_stage(self, stage_id: UUID, values: Mapping[str, Any]) -> None:
        await self.session.execute(update(stages).where(stages.c.id == stage_id).values(**values))

    async def delete_stage(self, stage_id: UUID) -> None:
        await self.session.execute(delete(stages).where(stages.c.id == stage_id))
