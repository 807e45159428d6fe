"""Bulk-load benchmark data: N contacts and M companies, written with COPY.

    python bench/generate.py --database-url postgresql+asyncpg://postgres@127.0.0.1/crm_bench \
        --contacts 1000000 --companies 50000

The database must already be migrated (`crm-api migrate`). Rows bypass the API (1M creates through
it would take hours) but are what the app itself would store: time-ordered UUIDv7 ids whose
timestamp is the row's created_at, normalized lower-case unique emails and domains, the derived
`name_key`, an allowed lifecycle stage, an existing owner, real company ids, version 1 and
`updated_at == created_at` (never updated). No audit rows or events are written: the benchmark
does not read them.

Foreign keys, checks and indexes all stay in place, so PostgreSQL verifies every reference; its
per-row foreign key checks are most of the cost (about 25-30k contacts/s on 2 cores).
"""

import argparse
import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from crm_api.core.enums import LifecycleStage
from crm_api.core.ids import uuid7

SPAN = timedelta(days=730)  # created_at is spread over the past two years
CHUNK = 100_000  # rows per COPY, to show progress
BENCH_OWNER_EMAIL = "bench-owner@bench.example"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FIRST = ["Ava", "Ben", "Chloe", "Diego", "Elif", "Farah", "Gus", "Hana", "Ivan", "Jade"]
FIRST += ["Kofi", "Lina", "Marco", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Teo", "Uma"]
LAST = ["Adler", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad"]
LAST += ["Ibarra", "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Ortiz", "Patel"]
WORDS = ["Acme", "Blue", "Cedar", "Delta", "Echo", "Flux", "Granite", "Harbor", "Iris", "Kite"]
KINDS = ["Labs", "Systems", "Logistics", "Foods", "Health", "Energy", "Analytics", "Media"]
INDUSTRIES = ["software", "logistics", "food", "healthcare", "energy", "finance", "media"]
TITLES = ["CEO", "CTO", "VP Sales", "Engineer", "Buyer", "Head of Ops", "Analyst", None]
SOURCES = ["website", "referral", "event", "outbound", "partner", "paid_search", None]
STAGES = [stage.value for stage in LifecycleStage]
STAGE_WEIGHTS = [1, 4, 2, 2, 1, 3, 1, 1, 1]  # mostly leads and customers, like a real funnel

COMPANY_COLUMNS = (
    "id", "name", "name_key", "domain", "industry", "employee_count", "lifecycle_stage",
    "owner_id", "custom_fields", "version", "created_by", "created_at", "updated_at",
)  # fmt: skip
CONTACT_COLUMNS = (
    "id", "first_name", "last_name", "name_key", "email", "phone", "title", "company_id",
    "lifecycle_stage", "lifecycle_stage_changed_at", "lead_source", "owner_id", "email_opt_in",
    "do_not_contact", "custom_fields", "version", "created_by", "created_at", "updated_at",
)  # fmt: skip


def plain_dsn(url: str) -> str:
    """asyncpg wants `postgresql://`; accept the app's SQLAlchemy URL too."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Clock:
    """Strictly increasing created_at values, evenly spread over SPAN and ending now.

    Row i of n gets a random instant inside the i-th of n equal slots, so order by created_at is
    order by i, and (with slots of a millisecond or more) also order by the UUIDv7 id.
    """

    def __init__(self, n: int, end: datetime, rng: random.Random) -> None:
        self.end_us = (end - EPOCH) // timedelta(microseconds=1)
        self.start_us = self.end_us - SPAN // timedelta(microseconds=1)
        self.slot_us = max(1, (self.end_us - self.start_us) // max(n, 1))
        self.rng = rng

    def at(self, i: int) -> tuple[int, datetime]:
        micros = self.start_us + i * self.slot_us + self.rng.randrange(self.slot_us)
        return micros, EPOCH + timedelta(microseconds=micros)


def uuid7_at(micros: int, rng: random.Random) -> UUID:
    """A UUIDv7 (RFC 9562) for a given instant, like `crm_api.core.ids.uuid7` for "now"."""
    millis = micros // 1000
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    return UUID(
        int=(millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    )


def company_rows(
    count: int, owner_id: UUID, end: datetime, rng: random.Random
) -> tuple[list[tuple[object, ...]], list[tuple[UUID, str]]]:
    """The company rows, and (id, domain) of each in created order for contacts to reference."""
    clock = Clock(count, end, rng)
    rows: list[tuple[object, ...]] = []
    refs: list[tuple[UUID, str]] = []
    for j in range(count):
        micros, created = clock.at(j)
        company_id = uuid7_at(micros, rng)
        name = f"{WORDS[j % len(WORDS)]} {KINDS[(j // len(WORDS)) % len(KINDS)]} {j}"
        domain = name.lower().replace(" ", "") + ".example.com"
        stage = rng.choice((None, "lead", "customer", "opportunity"))
        employees = rng.choice((8, 25, 60, 140, 400, 1200))
        rows.append(
            (company_id, name, name.casefold(), domain, rng.choice(INDUSTRIES), employees, stage,
             owner_id, "{}", 1, owner_id, created, created)
        )  # fmt: skip
        refs.append((company_id, domain))
    return rows, refs


def contact_rows(
    start: int,
    stop: int,
    clock: Clock,
    n: int,
    companies: list[tuple[UUID, str]],
    owner_id: UUID,
) -> Iterator[tuple[object, ...]]:
    """Contacts start..stop-1 of n, generated lazily so COPY streams while Python produces."""
    rng = clock.rng
    for i in range(start, stop):
        micros, created = clock.at(i)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # Companies are spread over the same two years; a contact only joins one that existed
        # when it was created, so early companies end up with more contacts, as in real CRMs.
        company_id, domain = None, "mail.example.com"
        existing = len(companies) * i // n
        if existing and rng.random() < 0.9:
            company_id, domain = companies[rng.randrange(existing)]
        phone = f"+1212555{rng.randrange(10_000):04d}" if rng.random() < 0.6 else None
        stage = rng.choices(STAGES, STAGE_WEIGHTS)[0]
        yield (
            uuid7_at(micros, rng), first, last, f"{last} {first}".casefold(),
            f"{first}.{last}.{i}@{domain}".lower(), phone, rng.choice(TITLES), company_id,
            stage, created, rng.choice(SOURCES), owner_id, False,
            False, "{}", 1, owner_id, created, created,
        )  # fmt: skip


async def ensure_owner(conn: asyncpg.Connection, owner_id: UUID | None) -> UUID:
    """The given user, or a bench owner created (once) with the columns the app writes."""
    if owner_id is not None:
        found = await conn.fetchval("SELECT id FROM users WHERE id = $1 AND active", owner_id)
        if found is None:
            raise SystemExit(f"no active user {owner_id}")
        return owner_id
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO users (id, email, name, role, team, active, version, created_at, updated_at)"
        " VALUES ($1, $2, 'Bench Owner', 'rep', NULL, true, 1, $3, $3)"
        " ON CONFLICT (email) DO NOTHING",
        uuid7(),
        BENCH_OWNER_EMAIL,
        now,
    )
    return await conn.fetchval("SELECT id FROM users WHERE email = $1", BENCH_OWNER_EMAIL)


async def load_contacts(
    conn: asyncpg.Connection,
    n: int,
    companies: list[tuple[UUID, str]],
    owner_id: UUID,
    clock: Clock,
) -> None:
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        rows = contact_rows(start, stop, clock, n, companies, owner_id)
        await conn.copy_records_to_table("contacts", records=rows, columns=CONTACT_COLUMNS)
        rate = stop / (time.perf_counter() - started)
        print(f"  contacts {stop:>10,} / {n:,}  ({rate:,.0f} rows/s)", flush=True)


async def generate(
    database_url: str,
    contacts: int,
    companies: int,
    owner_id: UUID | None = None,
    seed: int = 42,
) -> dict[str, float]:
    """Loads the rows, then VACUUM ANALYZE; returns counts and timings."""
    rng = random.Random(seed)
    end = datetime.now(UTC)
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        existing = await conn.fetchval("SELECT count(*) FROM contacts")
        if existing:
            raise SystemExit(f"contacts already holds {existing:,} rows; use a fresh database")
        started = time.perf_counter()
        # One transaction: a failed or interrupted load leaves no partial data behind that a
        # later `run.py --reuse` would mistake for a complete dataset.
        async with conn.transaction():
            owner = await ensure_owner(conn, owner_id)
            rows, refs = company_rows(companies, owner, end, rng)
            await conn.copy_records_to_table("companies", records=rows, columns=COMPANY_COLUMNS)
            print(f"  companies {companies:,} in {time.perf_counter() - started:.1f}s", flush=True)
            await load_contacts(conn, contacts, refs, owner, Clock(contacts, end, rng))
        loaded = time.perf_counter() - started
        # VACUUM, not just ANALYZE: it sets hint bits and the visibility map now, instead of
        # the first benchmark reads dirtying (and writing back) every freshly loaded page.
        await conn.execute("VACUUM (ANALYZE) companies, contacts, users")
        total = time.perf_counter() - started
    finally:
        await conn.close()
    return {"contacts": contacts, "companies": companies, "load_s": loaded, "total_s": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a migrated, empty database")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--companies", type=int, default=50_000)
    parser.add_argument("--owner-id", type=UUID, help="owner of every row (default: bench user)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    result = asyncio.run(
        generate(args.database_url, args.contacts, args.companies, args.owner_id, args.seed)
    )
    print(
        f"loaded {args.contacts:,} contacts and {args.companies:,} companies in "
        f"{result['load_s']:.1f}s, {result['total_s']:.1f}s with VACUUM ANALYZE"
    )


if __name__ == "__main__":
    main()
