"""The worker's part of imports: claim a job, then write its rows one chunk per transaction.

A job is claimed with a lease (`CRM_IMPORT_LEASE_SECONDS`), as webhook deliveries are: on
PostgreSQL `FOR UPDATE SKIP LOCKED` picks a job no other worker holds; SQLite has one writer.
Each chunk then runs in one transaction that first locks the job row and checks the lease is
still this worker's, and ends by writing the chunk's records (with their history, audit rows
and events), its failed rows and the job's progress (counters, the next part to read, the
lease renewed) together. A crash at any point leaves the whole chunk or none of it, and the
worker that takes the job over (after the lease) goes on from the committed part. A cancel
takes the same row lock, so it lands between chunks.

The rows are written as the user who uploaded the file, with their role at the time of each
chunk; a user deactivated or made a viewer meanwhile fails the job.
"""

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from crm_api.companies.service import CompanyService
from crm_api.config import Settings
from crm_api.contacts.service import ContactService
from crm_api.core.db import Database, lock_for_write
from crm_api.core.enums import Role
from crm_api.core.ids import utcnow
from crm_api.core.integrity import is_unique_violation
from crm_api.core.logging import request_id_var
from crm_api.core.principal import ALL_SCOPES, Principal
from crm_api.core.reader import Reader, Row
from crm_api.core.records import RecordService
from crm_api.custom_fields.models import ObjectType
from crm_api.deals.service import DealService
from crm_api.imports.chunk import ChunkImport
from crm_api.imports.csvfile import parse_part
from crm_api.imports.models import ImportStatus, imports
from crm_api.imports.repository import JOB, ImportRepository, claimable
from crm_api.imports.service import finished_values
from crm_api.users.service import UserService

log = logging.getLogger("crm_api.imports")
MAX_ATTEMPTS = 3
"""Unexpected failures of the same chunk before the job is failed (a poison row must not hold
the queue forever)."""
RACES = 3
"""Tries of a chunk whose unique values a concurrent write kept taking."""
SERVICES: Mapping[ObjectType, type[RecordService]] = {
    ObjectType.contact: ContactService,
    ObjectType.company: CompanyService,
    ObjectType.deal: DealService,
}


class _Raced(Exception):
    """A unique index refused a value the chunk's check found free: taken concurrently."""


async def run_imports(db: Database, settings: Settings, worker: UUID, budget: float) -> bool:
    """Claims the oldest job this worker may run and writes its chunks for about `budget`
    seconds; True when there may be more to do right away."""
    job_id = await claim(db, settings, worker)
    if job_id is None:
        return False
    deadline = time.monotonic() + budget
    while True:
        try:
            more = await _run_chunk(db, settings, job_id, worker)
        except Exception:
            log.exception("import %s: a chunk failed", job_id)
            await _count_failure(db, job_id, worker)
            return False  # the next try waits a round: the cause may pass
        if not more or time.monotonic() >= deadline:
            return True


async def claim(db: Database, settings: Settings, worker: UUID) -> UUID | None:
    """Takes (or keeps) the lease of the oldest job that is queued, or running with a lease
    that ran out or that this worker holds."""
    now = utcnow()
    async with db.sessionmaker() as session:
        # A look without a lock first: an idle round takes no write lock.
        look = select(JOB.id).where(claimable(now, worker)).limit(1)
        if (await session.execute(look)).first() is None:
            return None
        await session.rollback()
        await lock_for_write(session)
        pick = (
            select(JOB.id, JOB.started_at)
            .where(claimable(now, worker))
            .order_by(JOB.created_at, JOB.id)
            .limit(1)
        )
        if not db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        found = (await session.execute(pick)).first()
        if found is None:
            return None
        job_id, started_at = found
        lease = {
            "status": ImportStatus.running,
            "leased_by": worker,
            "lease_expires_at": now + timedelta(seconds=settings.import_lease_seconds),
            "started_at": started_at or now,
        }
        await session.execute(update(imports).where(JOB.id == job_id).values(**lease))
        await session.commit()
        return UUID(str(job_id))


async def _run_chunk(db: Database, settings: Settings, job_id: UUID, worker: UUID) -> bool:
    for _ in range(RACES):
        try:
            return await _chunk(db, settings, job_id, worker)
        except _Raced:
            log.info("import %s: a unique value was taken concurrently; running it again", job_id)
    raise RuntimeError("a chunk's unique values kept being taken by concurrent writes")


async def _chunk(db: Database, settings: Settings, job_id: UUID, worker: UUID) -> bool:
    """Writes the job's next chunk; True if it holds the job still and has chunks left."""
    async with db.sessionmaker() as session:
        reader = Reader(db, session)
        jobs = ImportRepository(session, reader)
        job = await jobs.lock(job_id)
        if job is None or job["status"] != ImportStatus.running or job["leased_by"] != worker:
            return False  # cancelled, or taken over by another worker
        now = utcnow()
        number = job["next_part"]
        principal, refusal = await _acting_user(UserService(session, reader, None), job)
        part = await jobs.part(job_id, number) if number < job["total_parts"] else None
        if principal is None or part is None:
            if principal is not None and number < job["total_parts"]:
                refusal = "The file's rows are missing from the database."
            status = ImportStatus.failed if refusal else ImportStatus.completed
            await jobs.update(job_id, finished_values(status, now, refusal))
            await jobs.release(job_id)
            await session.commit()
            return False
        service = SERVICES[ObjectType(job["object_type"])](
            session, reader, principal, UserService(session, reader, principal)
        )
        token = request_id_var.set(f"import:{job_id}")  # on every audit row the rows write
        try:
            result = await ChunkImport(service, job, jobs).run(parse_part(part))
        except (IntegrityError, asyncpg.UniqueViolationError) as error:
            if is_unique_violation(error):
                raise _Raced from error
            raise
        finally:
            request_id_var.reset(token)
        failed = [
            {
                "import_id": job_id,
                "line": line,
                "cells": orjson.dumps(cells).decode(),
                "reason": why,
            }
            for line, cells, why in result.failures
        ]
        await jobs.add_errors(failed)
        await jobs.drop_part(job_id, number)
        done = number + 1 >= job["total_parts"]
        values: Row = {
            "next_part": number + 1,
            "processed": job["processed"] + result.processed,
            "created": job["created"] + result.created,
            "updated": job["updated"] + result.updated,
            "skipped": job["skipped"] + result.skipped,
            "failed": job["failed"] + len(result.failures),
            "attempts": 0,
            # From now, not from the chunk's start: a slow chunk still leaves a whole lease.
            "lease_expires_at": utcnow() + timedelta(seconds=settings.import_lease_seconds),
        }
        if done:
            values.update(finished_values(ImportStatus.completed, now))
            await jobs.release(job_id)
        await jobs.update(job_id, values)
        await session.commit()
        return not done


async def _acting_user(users: UserService, job: Row) -> tuple[Principal | None, str | None]:
    """Who the rows are written as: the uploader, while they may still write."""
    user = await users.users.get(job["created_by"])
    if user is None or not user["active"]:
        return None, "The user who uploaded the file was deactivated."
    role = Role(user["role"])
    if role is Role.viewer:
        return None, "The user who uploaded the file is a viewer now: viewers cannot write."
    principal = Principal(
        user_id=user["id"],
        role=role,
        api_key_id=job["api_key_id"],
        scopes=frozenset(ALL_SCOPES),
    )
    return principal, None


async def _count_failure(db: Database, job_id: UUID, worker: UUID) -> None:
    """Counts an unexpected failure of the job's next chunk; fails the job at MAX_ATTEMPTS."""
    async with db.sessionmaker() as session:
        jobs = ImportRepository(session, Reader(db, session))
        job = await jobs.lock(job_id)
        if job is None or job["status"] != ImportStatus.running or job["leased_by"] != worker:
            return
        attempts = job["attempts"] + 1
        if attempts < MAX_ATTEMPTS:
            await jobs.update(job_id, {"attempts": attempts})
        else:
            error = (
                f"An unexpected error stopped the import after {job['processed']} rows; "
                "quote the import's id when reporting it."
            )
            await jobs.update(job_id, finished_values(ImportStatus.failed, utcnow(), error))
            await jobs.release(job_id)
        await session.commit()
