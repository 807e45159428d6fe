"""Import jobs: upload (the file checked, counted and stored), read, list, cancel, error report.

Who may do what: anyone who may write records (admins, managers, reps) imports; the worker then
writes each row as that user, so a rep's rows must be records the rep may create or change
(owned by the rep) like any other write of theirs. Managers and admins see and cancel every
job; the others see and cancel the jobs they uploaded (a viewer has none).
"""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.config import Settings
from crm_api.core.db import Database
from crm_api.core.errors import Conflict, Invalid, NotFound
from crm_api.core.ids import utcnow, uuid7
from crm_api.core.listing import ListParams
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader, Row
from crm_api.custom_fields.catalog import CATALOG
from crm_api.imports.csvfile import FileProblem, csv_lines, read_upload
from crm_api.imports.fields import MATCH_KEYS, PLURALS, check_mapping
from crm_api.imports.models import ImportMode, ImportStatus
from crm_api.imports.repository import ERRORS_PAGE, ImportRepository
from crm_api.imports.schemas import ImportRead, ImportUpload

PUBLIC = tuple(ImportRead.model_fields)
ERRORS_PER_PAGE = 1000
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


def public(row: Row) -> dict[str, Any]:
    return {name: row[name] for name in PUBLIC}


def _file_name(name: str | None) -> str:
    """The upload's file name without a path or control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    return _UNSAFE_NAME.sub("", base).strip()[:255] or "upload.csv"


class ImportService:
    def __init__(
        self, session: AsyncSession, reader: Reader, principal: Principal, settings: Settings
    ) -> None:
        self.reader = reader
        self.principal = principal
        self.settings = settings
        self.jobs = ImportRepository(session, reader)

    async def create(self, upload: ImportUpload) -> dict[str, Any]:
        """Checks the upload (file, mapping, mode) and queues the job with the file's rows."""
        self.principal.require_write()
        mode_problems = self._mode_problems(upload)
        problems = list(mode_problems)
        settings = self.settings
        try:
            parsed = await asyncio.to_thread(
                read_upload,
                upload.file.file,
                upload.delimiter,
                settings.import_chunk_rows,
                settings.import_max_rows,
            )
        except FileProblem as problem:
            problems.append(("body.file", str(problem)))
            raise Invalid(f"The file {problem}.", problems) from None
        mapping = upload.columns()
        definitions = await CATALOG.definitions(self.reader, upload.object_type, fresh=True)
        problems += check_mapping(upload.object_type, mapping, parsed.headers, definitions)
        key = upload.match_key
        if upload.mode is ImportMode.upsert and not mode_problems and key not in mapping.values():
            problems.append(("body.mapping", f"maps no column onto {key}, which rows match on"))
        if problems:
            raise Invalid("The import cannot start; see `errors`.", problems)
        now = utcnow()
        empty = parsed.total_rows == 0
        job = {
            "id": uuid7(),
            "object_type": upload.object_type,
            "mode": upload.mode,
            "match_key": key,
            "dry_run": upload.dry_run,
            "delimiter": parsed.delimiter,
            "file_name": _file_name(upload.file.filename),
            "headers": parsed.headers,
            "mapping": mapping,
            # A file without data rows has nothing to wait for.
            "status": ImportStatus.completed if empty else ImportStatus.queued,
            "total_rows": parsed.total_rows,
            "total_parts": len(parsed.parts),
            "next_part": 0,
            "processed": 0,
            "created": 0,
            "updated": 0,
            "skipped": 0,
            "failed": 0,
            "error": None,
            "attempts": 0,
            "leased_by": None,
            "lease_expires_at": None,
            "created_by": self.principal.user_id,
            "api_key_id": self.principal.api_key_id,
            "created_at": now,
            "started_at": now if empty else None,
            "finished_at": now if empty else None,
        }
        await self.jobs.insert(job, parsed.parts)
        return public(job)

    def _mode_problems(self, upload: ImportUpload) -> list[tuple[str, str]]:
        key = upload.match_key
        if upload.mode is ImportMode.create:
            return [("body.match_key", "applies only with mode upsert")] if key else []
        if key is None:
            return [("body.match_key", "is required with mode upsert")]
        allowed = MATCH_KEYS[upload.object_type]
        if key not in allowed:
            names = ", ".join(allowed)
            plural = PLURALS[upload.object_type]
            return [("body.match_key", f"must be one of: {names} (for {plural})")]
        return []

    async def get(self, import_id: UUID) -> dict[str, Any]:
        return public(await self._visible(await self.jobs.get(import_id), import_id))

    async def list_imports(
        self, params: ListParams, filters: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """Newest first; only the caller's own jobs unless they manage all."""
        if not self.principal.manages_all:
            filters = {**filters, "created_by": self.principal.user_id}
        result = await self.jobs.list_jobs(params, filters)
        return [public(row) for row in result.rows], result.next_cursor, result.total

    async def cancel(self, import_id: UUID) -> dict[str, Any]:
        """Stops a queued or running job; a running one stops at its next chunk boundary (the
        chunks already written stay). Cancelling a cancelled job changes nothing; a completed
        or failed one is 409."""
        self.principal.require_write()
        job = await self._visible(await self.jobs.lock(import_id), import_id)
        status = job["status"]
        if status == ImportStatus.cancelled:
            return public(job)
        if status not in (ImportStatus.queued, ImportStatus.running):
            raise Conflict(f"The import has {status} already; only a queued or running one stops.")
        values = finished_values(ImportStatus.cancelled, utcnow())
        await self.jobs.update(import_id, values)
        await self.jobs.release(import_id)
        return public({**job, **values})

    async def error_report(self, import_id: UUID) -> AsyncIterator[str]:
        """The job's failed rows as CSV: `row` (the line the row starts on), the row's cells
        under the file's headers, and `reason`. Checks access now; streams from its own reads."""
        job = await self._visible(await self.jobs.get(import_id), import_id)
        return _error_lines(self.reader.db, job)

    async def _visible(self, job: Row | None, import_id: UUID) -> Row:
        if job is None or not (
            self.principal.manages_all or job["created_by"] == self.principal.user_id
        ):
            raise NotFound(f"No import has id {import_id}.")
        return job


async def _error_lines(db: Database, job: Row) -> AsyncIterator[str]:
    headers: list[str] = job["headers"]
    width = len(headers)
    yield csv_lines([["row", *headers, "reason"]])
    reader = Reader(db)  # the request's session is gone by the time this streams
    after = 0
    while True:
        params = {"id": job["id"], "after": after, "limit": ERRORS_PER_PAGE}
        page = await reader.all(ERRORS_PAGE, params)
        if not page:
            return
        rows = []
        for error in page:
            cells: list[str] = orjson.loads(error["cells"])
            cells = (cells + [""] * width)[:width]
            rows.append([error["line"], *cells, error["reason"]])
        yield csv_lines(rows)
        after = page[-1]["line"]


def finished_values(status: ImportStatus, now: datetime, error: str | None = None) -> Row:
    """The columns of a job that stops for good."""
    return {
        "status": status,
        "finished_at": now,
        "leased_by": None,
        "lease_expires_at": None,
        "error": error,
    }
