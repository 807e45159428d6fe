from datetime import datetime
from enum import StrEnum
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, JSONType, UTCDateTime, table_of
from crm_api.core.enums import sql_in


class ImportMode(StrEnum):
    create = "create"
    upsert = "upsert"


class ImportMatchKey(StrEnum):
    """What an upsert matches rows on: `external_id` (any object type), a contact's `email`
    or a company's `domain`."""

    external_id = "external_id"
    email = "email"
    domain = "domain"


class ImportStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    cancelled = "cancelled"
    failed = "failed"


class CsvDelimiter(StrEnum):
    comma = "comma"
    semicolon = "semicolon"
    tab = "tab"
    pipe = "pipe"

    @property
    def character(self) -> str:
        return _CHARACTERS[self]


_CHARACTERS = {
    CsvDelimiter.comma: ",",
    CsvDelimiter.semicolon: ";",
    CsvDelimiter.tab: "\t",
    CsvDelimiter.pipe: "|",
}
FINAL_STATUSES = (ImportStatus.completed, ImportStatus.cancelled, ImportStatus.failed)


class Import(Base):
    """An uploaded CSV file and the progress of writing its rows."""

    __tablename__ = "imports"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(20))
    match_key: Mapped[str | None] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    delimiter: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str] = mapped_column(String(255))
    headers: Mapped[list[str]] = mapped_column(JSONType)
    mapping: Mapped[dict[str, str]] = mapped_column(
        JSON(none_as_null=True), doc="Plain JSON: its columns keep the order they were sent in."
    )
    status: Mapped[str] = mapped_column(String(20))
    total_rows: Mapped[int] = mapped_column(Integer)
    total_parts: Mapped[int] = mapped_column(Integer)
    next_part: Mapped[int] = mapped_column(Integer, doc="The part the next chunk reads.")
    processed: Mapped[int] = mapped_column(Integer)
    created: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500), doc="Why the job failed.")
    attempts: Mapped[int] = mapped_column(
        Integer, doc="Unexpected failures of the next part in a row; the job fails at a limit."
    )
    leased_by: Mapped[UUID | None] = mapped_column(Uuid, doc="The worker running it.")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    api_key_id: Mapped[UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("object_type IN ('contact', 'company', 'deal')", name="object_type"),
        CheckConstraint(f"mode {sql_in(ImportMode)}", name="mode"),
        CheckConstraint(f"status {sql_in(ImportStatus)}", name="status"),
        Index("ix_imports_created", "created_at", "id"),
        Index("ix_imports_created_by", "created_by", "created_at", "id"),
        # The worker's queue: jobs still to run.
        Index(
            "ix_imports_pending",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
    )


class ImportPart(Base):
    """The file's rows, split at upload into parts of one chunk each: `rows` is a JSON array
    of `[line, [cell, …]]`. A part is deleted by the chunk that processes it."""

    __tablename__ = "import_parts"

    import_id: Mapped[UUID] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    rows: Mapped[str] = mapped_column(Text)


class ImportRowError(Base):
    """A row that failed: its line in the file, its cells (a JSON array) and why."""

    __tablename__ = "import_errors"

    import_id: Mapped[UUID] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    cells: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class ImportDryRecord(Base):
    """A record a dry run would have created or changed so far: the merged values its rows
    sent (a create body, as JSON). Its id is the live record's when it changes one. A dry run's
    later chunks replay the records their rows touch, so they see what the real run would."""

    __tablename__ = "import_dry_records"

    import_id: Mapped[UUID] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    live: Mapped[bool] = mapped_column(Boolean, doc="Whether `id` is a live record it changes.")
    sent: Mapped[str] = mapped_column(Text)


class ImportDryKey(Base):
    """Which dry-run record a match key or unique value (`name`: the column) points to."""

    __tablename__ = "import_dry_keys"

    import_id: Mapped[UUID] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(400), primary_key=True)
    record_id: Mapped[UUID] = mapped_column(Uuid)


imports = table_of(Import)
import_parts = table_of(ImportPart)
import_errors = table_of(ImportRowError)
dry_records = table_of(ImportDryRecord)
dry_keys = table_of(ImportDryKey)
