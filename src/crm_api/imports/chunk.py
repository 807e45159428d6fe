"""One chunk of an import's rows, written as the single-record endpoints would write them.

Each row becomes the create body of its object type (see `imports.fields`) and goes through the
batch upsert's steps (`crm_api.core.upsert`): matched on the job's key (upsert mode), checked by
the service as a creation or as an update of the match, checked for unique values another
record holds, then written with its history, audit row and events. A row that fails any check
is failed with its reason; the others are written. A key that repeats within the chunk starts
a new wave: the rows before it are written first, so the later row updates the record the
earlier one created, as it would in a later chunk.

A dry run does all of it inside a savepoint that it rolls back: every check is the real one,
and no record is written. So that its later chunks see what the earlier ones would have
written, it keeps each record it would create or change (the merged values its rows sent) and
the keys and unique values pointing to it (`import_dry_records`, `import_dry_keys`, committed
with the chunk); a chunk first replays, inside its savepoint, the records its rows' keys and
unique values point to, and those whose unique values it looks up.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError

from crm_api.core.errors import DomainError
from crm_api.core.ids import utcnow
from crm_api.core.reader import Row
from crm_api.core.records import RecordService
from crm_api.core.schemas import UpsertOutcome
from crm_api.core.upsert import (
    Staged,
    existing_records,
    stage_item,
    unique_clashes,
    write_staged,
)
from crm_api.custom_fields.catalog import CATALOG
from crm_api.custom_fields.models import ObjectType
from crm_api.imports.csvfile import FileRow
from crm_api.imports.fields import CREATE_MODELS, UPDATE_MODELS, RowReader, validation_reason
from crm_api.imports.repository import ImportRepository

Key = tuple[str, Any]


@dataclass(slots=True)
class _Row:
    line: int
    cells: list[str]
    item: BaseModel
    key: Key | None


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failures: list[tuple[int, list[str], str]] = field(default_factory=list)
    """(line, cells, reason) per failed row."""

    @property
    def processed(self) -> int:
        return self.created + self.updated + self.skipped + len(self.failures)


def domain_reason(error: DomainError) -> str:
    """A service's refusal of a row, as errors.csv says it."""
    fields = error.extra.get("errors")
    if fields:
        return "; ".join(f"{f['field'].removeprefix('body.')}: {f['message']}" for f in fields)
    existing = error.extra.get("existing_id")
    return f"{error.detail} (existing_id {existing})" if existing else error.detail


class ChunkImport:
    def __init__(self, service: RecordService, job: Row, jobs: ImportRepository) -> None:
        self.service = service
        self.jobs = jobs
        self.job_id: UUID = job["id"]
        self.object_type = ObjectType(job["object_type"])
        self.create_model = CREATE_MODELS[self.object_type]
        self.update_model = UPDATE_MODELS[self.object_type]
        self.match_key: str | None = job["match_key"]
        self.dry_run: bool = job["dry_run"]
        self.rows = RowReader(job["headers"], job["mapping"])

    async def run(self, rows: list[FileRow]) -> ChunkResult:
        """Writes (or, in a dry run, checks) the rows in the session's transaction."""
        result = ChunkResult()
        checked = await self._checked(rows, result)
        if not self.dry_run:
            for wave in _waves(checked):
                await self._write(wave, result)
        else:
            savepoint = await self.service.session.begin_nested()
            try:
                replayed = await self._replay(checked)
                written = []
                for wave in _waves(checked):
                    written += await self._write(wave, result)
                records, keys = self._remembered(written, replayed)
            finally:
                await savepoint.rollback()
            await self.jobs.save_dry(self.job_id, records, keys)
        result.failures.sort(key=lambda failure: failure[0])
        return result

    async def _replay(self, checked: list[_Row]) -> dict[UUID, Row]:
        """Writes (in the dry run's savepoint) the records earlier chunks would have written
        that these rows may meet: by key or unique value, and the live records holding their
        unique values (which an earlier chunk may have moved off them). By the id each has
        now: the dry record."""
        service = self.service
        keys: set[tuple[str, str]] = set()
        holding: list[tuple[str, Any]] = []
        for row in checked:
            if row.key is not None:
                keys.add((row.key[0], str(row.key[1])))
            for column in service.kind.unique_keys:
                value = getattr(row.item, column, None)
                if value is not None:
                    keys.add((column, str(value)))
                    holding.append((column, value))
        targets = await self.jobs.dry_targets(self.job_id, keys)
        holders = await existing_records(service, holding)
        targets |= {holder["id"] for holder in holders.values()}
        records = await self.jobs.dry_records(self.job_id, targets) if targets else []
        now = utcnow()
        replayed: dict[UUID, Row] = {}
        changes = []
        for record in sorted(records, key=lambda found: found["id"]):
            current = await service.repository.lock(record["id"]) if record["live"] else None
            if record["live"] and (current is None or current["archived_at"] is not None):
                continue  # gone since: the rows meet it as it is
            sent = orjson.loads(record["sent"])
            try:
                item = self.create_model.model_validate(sent)
                change = await stage_item(service, item, current, self.update_model, now)
            except (ValidationError, DomainError):
                continue  # no longer valid (its references changed): as it is, then
            replayed[change.id] = {**record, "sent": sent}
            if change.row is not None:
                changes.append(change)
        await write_staged(service, changes)
        return replayed

    def _remembered(
        self, written: list[tuple[_Row, Staged]], replayed: dict[UUID, Row]
    ) -> tuple[list[Row], list[tuple[str, str, UUID]]]:
        """The dry records the chunk's writes leave, and the keys pointing to them."""
        records: dict[UUID, Row] = {}
        finals: dict[UUID, Row] = {}
        for row, change in written:
            earlier = replayed.get(change.id)
            dry_id = earlier["id"] if earlier else change.id
            record = records.get(dry_id)
            if record is None:
                live = earlier["live"] if earlier else change.outcome is UpsertOutcome.updated
                base = earlier["sent"] if earlier else {}
                record = records[dry_id] = {"id": dry_id, "live": live, "sent": base}
            sent = row.item.model_dump(mode="json", include=row.item.model_fields_set)
            record["sent"] = _merged(record["sent"], sent)
            if change.row is not None:
                finals[dry_id] = change.row
        keys: list[tuple[str, str, UUID]] = []
        columns = {*self.service.kind.unique_keys, *([self.match_key] if self.match_key else [])}
        for dry_id, final in finals.items():
            keys += [
                (c, str(final[c]), dry_id) for c in sorted(columns) if final.get(c) is not None
            ]
        stored = [{**record, "sent": orjson.dumps(record["sent"]).decode()}
                  for record in records.values()]  # fmt: skip
        return stored, keys

    async def _checked(self, rows: list[FileRow], result: ChunkResult) -> list[_Row]:
        """The rows whose cells make a valid create body (and, for an upsert, have a key)."""
        # Read fresh once per chunk: the job may name a field defined a moment ago, which
        # this worker process has not cached yet (a cell of an unknown field stays text).
        definitions = await CATALOG.definitions(self.service.reader, self.object_type, fresh=True)
        checked: list[_Row] = []
        for line, cells in rows:
            try:
                item = self.create_model.model_validate(self.rows.body(cells, definitions))
            except ValidationError as error:
                result.failures.append((line, cells, validation_reason(error)))
                continue
            except ValueError as error:
                result.failures.append((line, cells, str(error)))
                continue
            key = None
            if self.match_key is not None:
                value = getattr(item, self.match_key)
                if value is None:
                    reason = f"{self.match_key}: is empty, and the upsert matches rows on it"
                    result.failures.append((line, cells, reason))
                    continue
                key = (self.match_key, value)
            checked.append(_Row(line, cells, item, key))
        return checked

    async def _write(self, wave: list[_Row], result: ChunkResult) -> list[tuple[_Row, Staged]]:
        """Rows whose keys differ: matched, checked, then written together; returns those
        written."""
        service = self.service
        existing = await existing_records(service, (row.key for row in wave))
        now = utcnow()
        changes: list[tuple[_Row, Staged]] = []
        for row in wave:
            current = existing.get(row.key) if row.key else None
            try:
                change = await stage_item(service, row.item, current, self.update_model, now)
            except DomainError as error:
                result.failures.append((row.line, row.cells, domain_reason(error)))
                continue
            if change.outcome is UpsertOutcome.unchanged:
                result.skipped += 1
            else:
                changes.append((row, change))
        clashes = await unique_clashes(service, [change for _, change in changes])
        writing = []
        for position, (row, change) in enumerate(changes):
            clash = clashes.get(position)
            if clash is not None:
                result.failures.append((row.line, row.cells, domain_reason(clash)))
                continue
            writing.append((row, change))
            if change.outcome is UpsertOutcome.created:
                result.created += 1
            else:
                result.updated += 1
        await write_staged(service, [change for _, change in writing])
        return writing


def _merged(earlier: Row, sent: Row) -> Row:
    """The values of two rows sent one after the other (custom fields merge, as in a PATCH)."""
    merged = {**earlier, **sent}
    if "custom_fields" in earlier and "custom_fields" in sent:
        merged["custom_fields"] = {**earlier["custom_fields"], **sent["custom_fields"]}
    return merged


def _waves(rows: list[_Row]) -> Iterator[list[_Row]]:
    """The rows in order, cut before each row whose key an earlier row of the wave has."""
    wave: list[_Row] = []
    keys: set[Key] = set()
    for row in rows:
        if row.key is not None and row.key in keys:
            yield wave
            wave, keys = [], set()
        wave.append(row)
        if row.key is not None:
            keys.add(row.key)
    if wave:
        yield wave
