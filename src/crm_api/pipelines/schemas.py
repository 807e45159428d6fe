from datetime import datetime
from uuid import UUID

from pydantic import Field

from crm_api.core.enums import StageKind
from crm_api.core.schemas import InputModel, Name, NotNullable, ReadModel

Probability = Field(ge=0, le=100, description="Chance to win, 0-100, weighting open deals.")


class StageInput(InputModel):
    name: Name
    probability: int = Probability
    kind: StageKind = StageKind.open


class StageCreate(StageInput):
    position: int | None = Field(
        default=None, ge=0, description="0-based place among the stages; default: last."
    )


class StageUpdate(NotNullable):
    not_null = frozenset({"name", "probability", "kind"})

    name: Name | None = None
    probability: int | None = Field(default=None, ge=0, le=100)
    kind: StageKind | None = None


class StageOrder(InputModel):
    stage_ids: list[UUID] = Field(
        min_length=1, max_length=100, description="Every stage of the pipeline, in the new order."
    )


class PipelineCreate(InputModel):
    name: Name
    stages: list[StageInput] = Field(
        min_length=2, max_length=100, description="In order; at least one won and one lost."
    )


class PipelineUpdate(NotNullable):
    not_null = frozenset({"name"})

    name: Name | None = None


class StageRead(ReadModel):
    id: UUID
    name: str
    position: int
    probability: int
    kind: StageKind


class PipelineRead(ReadModel):
    id: UUID
    name: str
    is_default: bool
    version: int
    created_at: datetime
    updated_at: datetime
    stages: list[StageRead]
