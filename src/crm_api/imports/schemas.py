from datetime import datetime
from uuid import UUID

import orjson
from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm_api.core.schemas import ReadModel
from crm_api.custom_fields.models import ObjectType
from crm_api.imports.models import CsvDelimiter, ImportMatchKey, ImportMode, ImportStatus

MAX_COLUMNS = 500
MAPPING_DESCRIPTION = (
    'A JSON object `{"<CSV column header>": "<field>"}`. Fields are those of the object '
    "type's create body (`email`, `company_id`, `owner_id`, an address part such as "
    "`address.city`) and `custom_fields.<key>` for a live custom field; each at most once. "
    "Columns left out are not imported (errors.csv still shows them)."
)


class ImportUpload(BaseModel):
    """`POST /v1/imports`, sent as multipart/form-data."""

    model_config = ConfigDict(extra="forbid")

    file: UploadFile = Field(description="The CSV file: UTF-8 (a BOM is fine), header row first.")
    object_type: ObjectType
    mapping: str = Field(description=MAPPING_DESCRIPTION, examples=['{"E-mail": "email"}'])
    mode: ImportMode = Field(
        default=ImportMode.create,
        description="`create`: every valid row is a new record. `upsert`: a row whose "
        "`match_key` value a live record has updates it (only the cells that are not empty), "
        "other rows are created.",
    )
    match_key: ImportMatchKey | None = Field(
        default=None,
        description="Upsert only (required there): `external_id`, or `email` for contacts, "
        "`domain` for companies.",
    )
    dry_run: bool = Field(
        default=False,
        description="Check every row and report what would happen (counts, errors.csv) "
        "without writing any record.",
    )
    delimiter: CsvDelimiter | None = Field(
        default=None,
        description="Default: whichever of `,` `;` tab `|` splits the header row into the most "
        "cells (`,` on a tie).",
    )

    @field_validator("mapping")
    @classmethod
    def _json_object(cls, value: str) -> str:
        try:
            mapping = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("must be a JSON object") from None
        if not isinstance(mapping, dict) or not mapping:
            raise ValueError("must be a JSON object with at least one column")
        if len(mapping) > MAX_COLUMNS:
            raise ValueError(f"may map at most {MAX_COLUMNS} columns")
        if not all(isinstance(target, str) for target in mapping.values()):
            raise ValueError("must map each column header onto a field name (a string)")
        return value

    def columns(self) -> dict[str, str]:
        """The mapping, parsed."""
        parsed: dict[str, str] = orjson.loads(self.mapping)
        return parsed


class ImportRead(ReadModel):
    id: UUID
    object_type: ObjectType
    mode: ImportMode
    match_key: ImportMatchKey | None
    dry_run: bool
    status: ImportStatus = Field(
        description="`queued` → `running` → `completed`; or `cancelled` (by a call), or "
        "`failed` (see `error`)."
    )
    total_rows: int = Field(description="Data rows in the file (blank rows are not rows).")
    processed: int = Field(description="Rows done so far: created + updated + skipped + failed.")
    created: int
    updated: int = Field(description="Upsert: rows that changed a record, including one an "
                         "earlier row of the file created.")  # fmt: skip
    skipped: int = Field(description="Upsert: rows that matched a record and changed nothing.")
    failed: int = Field(description="Rows not written; each is in errors.csv with its reason.")
    error: str | None = Field(description="Why the job failed, when it did.")
    file_name: str
    delimiter: CsvDelimiter
    mapping: dict[str, str]
    created_by: UUID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
