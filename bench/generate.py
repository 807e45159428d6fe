"""Bulk-load benchmark data: contacts and companies with their history, then deals, written
with COPY.

    python bench/generate.py --database-url postgresql+asyncpg://postgres@127.0.0.1/crm_bench \
        --contacts 1000000 --companies 50000 --activities 2000000 --deals 1000000

The database must already be migrated (`crm-api migrate`). Rows bypass the API (1M creates through
it would take hours) but are what the app itself would store: time-ordered UUIDv7 ids whose
timestamp is the row's created_at, normalized lower-case unique emails and domains, the derived
`name_key`, an allowed lifecycle stage, real company ids, owners among ten bench reps (created
here). Companies are never updated (version 1, `updated_at == created_at`).

Each contact comes with its history, as if it had been worked through the API since it was
entered: its lifecycle changes (the creation's, then, for many, steps up the funnel to the stage
it is in, each an edit of the contact) and, of `--activities N` in all, the activities logged
about it (a first outreach for 80% of the contacts, minutes to days after they were entered, and
others since), with their `activity_contacts` rows; the contact ends with the columns those leave
(`lifecycle_stage_changed_at`, version, `updated_at`, `last_activity_at`, `first_outreach_at`).
No audit rows or events are written for them: the benchmark does not read them.
`--contacts 0 --activities N` gives their history to the contacts of a database loaded before
the history existed, and updates those contacts in place.

Deals go to the default pipeline "Sales" and two pipelines created here, each in a stage of its
pipeline with the matching status; some carry contacts (of their company) and line items (their
amount is then the items' sum), and each has its stage history; closed ones closed after a sales
cycle of weeks to months. A deal's version and updated_at count those changes, as crm-api's
would. `--contacts 0 --deals N` adds deals to a database that already has contacts and companies.

`--timeline-items N` then gives one existing contact a timeline of N items, as if its activities
had been logged, its tasks worked and the contact edited through the API over the two years:
activities with their `activity_contacts` rows, tasks, lifecycle changes and the `audit_log` rows
of its edits; the contact ends with the columns those edits and crm-api's derived fields
(`last_activity_at`, `first_outreach_at`, `next_task_id`) leave. That contact is the oldest one
at a company (`RESERVED_CONTACT`), which no other part touches: `--contacts 0 --timeline-items N`
adds the timeline to a database whose contact has none.

Foreign keys, checks and indexes all stay in place, so PostgreSQL verifies every reference; its
per-row foreign key checks and index inserts are most of the cost (about 25-30k contacts/s and
6-9k deals/s, with their side rows, on 2 cores).
"""

import argparse
import asyncio
import math
import random
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from operator import itemgetter
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from crm_api.activities.models import ActivityType, CallOutcome, Direction
from crm_api.core.enums import LifecycleStage, StageKind
from crm_api.core.ids import uuid7
from crm_api.core.money import MINOR_UNITS, to_minor_units
from crm_api.core.normalize import sort_key_text
from crm_api.deals.models import DealContactRole
from crm_api.deals.service import NAME_KEY_LENGTH, deal_amount
from crm_api.tasks.models import PRIORITY_RANK, Priority, TaskStatus

SPAN = timedelta(days=730)  # created_at is spread over the past two years
CHUNK = 100_000  # rows per COPY, to show progress
BENCH_OWNER_EMAIL = "bench-owner@bench.example"
# The sales reps who own companies, contacts and deals and log the activities: uneven books,
# as on a real team. Created once, with the columns the app writes.
REP_EMAIL = "bench-rep-{:02d}@bench.example"
REP_WEIGHTS = tuple(accumulate((16, 14, 12, 11, 10, 9, 8, 8, 7, 5)))
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
    "last_activity_at", "first_outreach_at",
)  # fmt: skip
CustomFields = Callable[[int], str]
"""Contact i's `custom_fields` as JSON text."""
# The contact the timeline goes to (`--timeline-items`): the oldest live contact at a company.
# The contact history (lifecycle changes, activities) leaves it alone, so that a timeline can be
# given to it before or after, and its items are all the timeline's.
RESERVED_CONTACT = (
    "SELECT id FROM contacts WHERE archived_at IS NULL AND company_id IS NOT NULL"
    " ORDER BY created_at, id LIMIT 1"
)


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


@dataclass(frozen=True)
class Users:
    """Who does what: `creator` (the given user) imported the companies and contacts; the reps
    own them and the deals, and log the activities."""

    creator: UUID
    reps: tuple[UUID, ...]

    def rep(self, rng: random.Random) -> UUID:
        return rng.choices(self.reps, cum_weights=REP_WEIGHTS)[0]


def company_rows(
    count: int, users: Users, end: datetime, rng: random.Random
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
             users.rep(rng), "{}", 1, users.creator, created, created)
        )  # fmt: skip
        refs.append((company_id, domain))
    return rows, refs


def contact_rows(
    start: int,
    stop: int,
    clock: Clock,
    n: int,
    companies: list[tuple[UUID, str]],
    users: Users,
    history: "ContactHistory",
    custom_fields: CustomFields | None = None,
) -> Iterator[tuple[object, ...]]:
    """Contacts start..stop-1 of n, generated lazily so COPY streams while Python produces;
    each with the columns its history (`history`, which keeps the rows) leaves, except the
    first at a company: the timeline's contact (`RESERVED_CONTACT`); `custom_fields(i)` gives
    contact i's custom field values as JSON text (default: none)."""
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
        contact_id, owner = uuid7_at(micros, rng), users.rep(rng)
        reserve = company_id is not None
        stage_at, edits, updated, last_activity, first_outreach = history.make(
            i, contact_id, micros, stage, owner, reserve
        )
        yield (
            contact_id, first, last, f"{last} {first}".casefold(),
            f"{first}.{last}.{i}@{domain}".lower(), phone, rng.choice(TITLES), company_id,
            stage, stage_at, rng.choice(SOURCES), owner, False,
            False, custom_fields(i) if custom_fields else "{}", 1 + edits, users.creator, created,
            updated, last_activity, first_outreach,
        )  # fmt: skip


async def ensure_reps(conn: asyncpg.Connection, at: datetime) -> tuple[UUID, ...]:
    """The bench reps, created (once) with the columns the app writes."""
    emails = [REP_EMAIL.format(number) for number in range(1, len(REP_WEIGHTS) + 1)]
    for number, email in enumerate(emails, start=1):
        await conn.execute(
            "INSERT INTO users (id, email, name, role, team, active, version, created_at,"
            " updated_at) VALUES ($1, $2, $3, 'rep', 'Bench', true, 1, $4, $4)"
            " ON CONFLICT (email) DO NOTHING",
            uuid7_at(micros_of(at), random.Random(number)),
            email,
            f"Bench Rep {number:02d}",
            at,
        )
    rows = await conn.fetch("SELECT id, email FROM users WHERE email = ANY($1)", emails)
    ids = {row["email"]: row["id"] for row in rows}
    return tuple(ids[email] for email in emails)


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


async def load_companies_and_contacts(
    conn: asyncpg.Connection,
    companies: int,
    contacts: int,
    activities: int,
    users: Users,
    end: datetime,
    rng: random.Random,
    custom_fields: CustomFields | None = None,
) -> None:
    started = time.perf_counter()
    rows, refs = company_rows(companies, users, end, rng)
    await conn.copy_records_to_table("companies", records=rows, columns=COMPANY_COLUMNS)
    print(f"  companies {companies:,} in {time.perf_counter() - started:.1f}s", flush=True)
    history = ContactHistory(contacts, activities, users, end, rng)
    clock = Clock(contacts, end, rng)
    await load_contacts(conn, contacts, refs, users, clock, history, custom_fields)
    await history.rows.copy(conn)


async def load_contacts(
    conn: asyncpg.Connection,
    n: int,
    companies: list[tuple[UUID, str]],
    users: Users,
    clock: Clock,
    history: "ContactHistory",
    custom_fields: CustomFields | None = None,
) -> None:
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        rows = contact_rows(start, stop, clock, n, companies, users, history, custom_fields)
        await conn.copy_records_to_table("contacts", records=rows, columns=CONTACT_COLUMNS)
        rate = stop / (time.perf_counter() - started)
        print(f"  contacts {stop:>10,} / {n:,}  ({rate:,.0f} rows/s)", flush=True)


# -- deals -----------------------------------------------------------------------------------

SALES = "Sales"  # the default pipeline, created by the migrations
# The generator's own pipelines, each with a won and a lost stage as crm-api requires:
# (name, probability, kind) in position order.
EXTRA_PIPELINES = {
    "Enterprise": (
        ("Discovery", 10, "open"), ("Demo", 20, "open"), ("Security review", 40, "open"),
        ("Procurement", 60, "open"), ("Contract", 80, "open"), ("Won", 100, "won"),
        ("Lost", 0, "lost"),
    ),
    "Renewals": (
        ("Upcoming", 50, "open"), ("In review", 70, "open"), ("Committed", 90, "open"),
        ("Renewed", 100, "won"), ("Churned", 0, "lost"),
    ),
}  # fmt: skip
PIPELINE_WEIGHTS = {SALES: 5, "Enterprise": 3, "Renewals": 2}
# (currency, units per USD): amounts keep the currency's minor unit (JPY has none).
CURRENCIES = (("USD", Decimal(1)), ("EUR", Decimal("0.92")), ("JPY", Decimal(150)))
CURRENCY_WEIGHTS = tuple(accumulate((80, 15, 5)))
WON_SHARE = 0.55  # of the closed deals
# Days from a deal's creation to its close (won or lost): log-normal around two months, so that
# deals close every day, and each recent window holds a steady share of the closes.
CYCLE_MEDIAN_DAYS, CYCLE_SIGMA, CYCLE_MAX_DAYS = 60, 1.0, 540
CONTACT_SHARE = 0.17  # of the deals at a company with contacts: about 15% of all deals
LINE_ITEM_SHARE = 0.10
MAX_GAP_US = timedelta(days=30) // timedelta(microseconds=1)  # between two changes of a deal
DEAL_KINDS = ["Platform", "Expansion", "Pilot", "Renewal", "Support plan", "Onboarding", "Upgrade"]
NEXT_STEPS = ["Send proposal", "Demo follow-up", "Call the champion", "Legal review", None]
LOST_REASONS = ["Price", "Went with a competitor", "No budget", "No decision", "Timing"]
ROLES = [role.value for role in DealContactRole]
ITEM_NAMES = ["Platform licence", "Seats", "Onboarding", "Premium support", "Training day"]
QUANTITIES = [Decimal(q) for q in ("1", "1", "1", "2", "3", "5", "10", "12", "2.5", "0.5")]
DISCOUNTS = [Decimal(d) for d in ("0", "0", "0", "5", "10", "12.5", "20")]

PIPELINE_COLUMNS = ("id", "name", "is_default", "version", "created_at", "updated_at")
STAGE_COLUMNS = (
    "id", "pipeline_id", "name", "position", "probability", "kind", "created_at", "updated_at",
)  # fmt: skip
DEAL_COLUMNS = (
    "id", "name", "name_key", "pipeline_id", "stage_id", "status", "stage_changed_at", "amount",
    "currency", "expected_close_date", "owner_id", "company_id", "next_step", "lost_reason",
    "closed_at", "custom_fields", "version", "created_by", "created_at", "updated_at",
)  # fmt: skip
HISTORY_COLUMNS = (
    "id", "deal_id", "pipeline_id", "from_stage_id", "to_stage_id", "changed_at", "changed_by",
)  # fmt: skip
DEAL_CONTACT_COLUMNS = ("deal_id", "contact_id", "role", "added_at", "added_by")
LINE_ITEM_COLUMNS = (
    "id", "deal_id", "product_id", "name", "description", "quantity", "unit_price", "currency",
    "discount_percent", "position", "version", "created_by", "created_at", "updated_at",
)  # fmt: skip


def micros_of(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def instant(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True)
class Pipeline:
    id: UUID
    entry: UUID
    """The first stage, where crm-api puts a new deal."""
    open: tuple[UUID, ...]
    funnel: tuple[int, ...]
    """Cumulative weights of the open stages: fewer deals in each stage than in the one before."""
    won: tuple[UUID, ...]
    lost: tuple[UUID, ...]


@dataclass(frozen=True)
class DealRefs:
    """What deals reference, read from the database: pipelines, companies, their contacts."""

    pipelines: tuple[Pipeline, ...]
    pipeline_weights: tuple[int, ...]
    """Cumulative, like every weight list here: `random.choices` then skips summing them."""
    company_ids: list[UUID]
    company_micros: list[int]
    """created_at of each company (ascending), to pick one that existed when a deal was made."""
    company_contacts: dict[UUID, list[tuple[int, UUID]]]
    """A company's first contacts: (created_at in µs, id), oldest first."""


@dataclass
class DealSideRows:
    """The rows that hang off a chunk of deals, copied once the deals are in."""

    history: list[tuple[object, ...]] = field(default_factory=list)
    contacts: list[tuple[object, ...]] = field(default_factory=list)
    line_items: list[tuple[object, ...]] = field(default_factory=list)

    async def copy(self, conn: asyncpg.Connection) -> None:
        tables = (
            ("deal_stage_history", self.history, HISTORY_COLUMNS),
            ("deal_contacts", self.contacts, DEAL_CONTACT_COLUMNS),
            ("line_items", self.line_items, LINE_ITEM_COLUMNS),
        )
        for table, records, columns in tables:
            await conn.copy_records_to_table(table, records=records, columns=columns)


class Timeline:
    """The instants of a deal's changes after its creation: increasing, never past `end_us`."""

    def __init__(self, start_us: int, end_us: int, rng: random.Random) -> None:
        self.start = start_us
        self.last = start_us
        self.end_us = end_us
        self.rng = rng

    def next(self) -> int:
        gap = min(MAX_GAP_US, (self.end_us - self.last) // 2)
        self.last += 1 + self.rng.randrange(max(1, gap))
        return self.last


class DealMaker:
    """Deal i of n, as crm-api would have stored it after its life so far: created in its
    pipeline's first stage, then given contacts and line items (each a new version of the deal;
    line items set its amount), then moved once to the stage it is in now (unless that is the
    first), with a stage history row for its creation and for the move."""

    def __init__(self, n: int, clock: Clock, refs: DealRefs, users: Users, end: datetime) -> None:
        self.n = n
        self.clock = clock
        self.rng = clock.rng
        self.refs = refs
        self.users = users
        self.end_us = micros_of(end)

    def deal(self, i: int, rows: DealSideRows) -> tuple[object, ...]:
        """Deal i's row; its history, contacts and line items go to `rows`. Its owner (a rep)
        created it and made every change."""
        rng = self.rng
        owner = self.users.rep(rng)
        micros, created = self.clock.at(i)
        deal_id = uuid7_at(micros, rng)
        pipeline = rng.choices(self.refs.pipelines, cum_weights=self.refs.pipeline_weights)[0]
        kind, stage_id = self.stage(pipeline, i)
        company_id = self.company(micros)
        currency, per_usd = rng.choices(CURRENCIES, cum_weights=CURRENCY_WEIGHTS)[0]
        times = Timeline(micros, self.end_us, rng)
        linked = self.link_contacts(deal_id, company_id, owner, times, rows)
        target = self.amount(currency, per_usd)
        amount, items = self.line_items(deal_id, currency, target, owner, times, rows)
        moved_us = self.stage_history(deal_id, pipeline, (kind, stage_id), owner, times, rows)
        version = 1 + linked + items + (stage_id != pipeline.entry)
        name = f"{rng.choice(WORDS)} {rng.choice(DEAL_KINDS)} {i}"
        close = None if rng.random() < 0.2 else created.date() + timedelta(rng.randint(14, 180))
        closed_at = None if kind == StageKind.open else instant(moved_us)
        return (
            deal_id, name, sort_key_text(name, NAME_KEY_LENGTH), pipeline.id, stage_id, kind,
            instant(moved_us), amount, currency, close, owner, company_id,
            rng.choice(NEXT_STEPS) if kind == StageKind.open else None,
            rng.choice(LOST_REASONS) if kind == StageKind.lost else None,
            closed_at, "{}", version, owner, created, instant(times.last),
        )  # fmt: skip

    def stage_history(
        self,
        deal_id: UUID,
        pipeline: Pipeline,
        stage: tuple[str, UUID],
        owner: UUID,
        times: Timeline,
        rows: DealSideRows,
    ) -> int:
        """Entering the first stage at creation, then the move to `stage` (status, id) unless
        that is the first stage; returns when the deal entered it. An open deal moved a few
        weeks at most after its last change; a closed one closed after its sales cycle."""
        rng, (kind, stage_id), created_us = self.rng, stage, times.start
        rows.history.append((uuid7_at(created_us, rng), deal_id, pipeline.id, None,
                             pipeline.entry, instant(created_us), owner))  # fmt: skip
        if stage_id == pipeline.entry:
            return created_us
        moved_us = times.next() if kind == StageKind.open else self.close(times)
        rows.history.append((uuid7_at(moved_us, rng), deal_id, pipeline.id, pipeline.entry,
                             stage_id, instant(moved_us), owner))  # fmt: skip
        return moved_us

    def close(self, times: Timeline) -> int:
        """When a closed deal closed: its sales cycle after creation (log-normal), or, if that
        would be in the future, any time since its creation; never before its last change."""
        rng = self.rng
        age = self.end_us - times.start
        days = rng.lognormvariate(math.log(CYCLE_MEDIAN_DAYS), CYCLE_SIGMA)
        cycle = int(min(days, CYCLE_MAX_DAYS) * DAY_US)
        if cycle >= age:
            cycle = rng.randrange(max(1, age))
        times.last = min(self.end_us, max(times.start + cycle, times.last + 1))
        return times.last

    def stage(self, pipeline: Pipeline, i: int) -> tuple[str, UUID]:
        """(status, stage id). Recent deals are mostly open, old ones mostly closed: 20% open at
        the start of the two years, all at the end, 60% overall; open deals thin out from the
        first stage to the last, like a funnel."""
        rng = self.rng
        if rng.random() < 0.2 + 0.8 * i / self.n:
            return StageKind.open, rng.choices(pipeline.open, cum_weights=pipeline.funnel)[0]
        if rng.random() < WON_SHARE:
            return StageKind.won, rng.choice(pipeline.won)
        return StageKind.lost, rng.choice(pipeline.lost)

    def company(self, micros: int) -> UUID | None:
        """90% of deals are at a company that existed when they were created."""
        existing = bisect_right(self.refs.company_micros, micros)
        if existing and self.rng.random() < 0.9:
            return self.refs.company_ids[self.rng.randrange(existing)]
        return None

    def amount(self, currency: str, per_usd: Decimal) -> Decimal:
        """Mostly a few thousand to a few hundred thousand USD; 2% of deals have no amount."""
        if self.rng.random() < 0.02:
            return Decimal(0)
        usd = min(5_000_000.0, max(100.0, self.rng.lognormvariate(9.4, 1.1)))
        return to_minor_units(Decimal(f"{usd:.4f}") * per_usd, currency)

    def link_contacts(
        self,
        deal_id: UUID,
        company_id: UUID | None,
        owner: UUID,
        times: Timeline,
        rows: DealSideRows,
    ) -> int:
        """One or two of the company's contacts (existing by then), each with a role."""
        known = self.refs.company_contacts.get(company_id) if company_id else None
        if not known or self.rng.random() >= CONTACT_SHARE:
            return 0
        first_us = times.next()
        existing = [contact_id for created_us, contact_id in known if created_us <= first_us]
        chosen = self.rng.sample(existing, min(len(existing), self.rng.randint(1, 2)))
        for number, contact_id in enumerate(chosen):
            added_us = first_us if number == 0 else times.next()
            rows.contacts.append((deal_id, contact_id, self.rng.choice(ROLES),
                                  instant(added_us), owner))  # fmt: skip
        return len(chosen)

    def line_items(
        self,
        deal_id: UUID,
        currency: str,
        target: Decimal,
        owner: UUID,
        times: Timeline,
        rows: DealSideRows,
    ) -> tuple[Decimal, int]:
        """(the deal's amount, its number of line items). 1-3 items priced to land near
        `target`; the amount is then their sum as crm-api computes it (`deal_amount`)."""
        rng = self.rng
        if rng.random() >= LINE_ITEM_SHARE:
            return target, 0
        count = rng.randint(1, 3)
        smallest = Decimal(1).scaleb(-MINOR_UNITS[currency])
        items = []
        for position in range(count):
            quantity, discount = rng.choice(QUANTITIES), rng.choice(DISCOUNTS)
            price = target / count / quantity * 100 / (100 - discount)
            item = {
                "quantity": quantity,
                "unit_price": max(smallest, to_minor_units(price, currency)),
                "discount_percent": discount,
            }
            created = instant(times.next())
            rows.line_items.append((
                uuid7_at(micros_of(created), rng), deal_id, None, rng.choice(ITEM_NAMES), None,
                quantity, item["unit_price"], currency, discount, position, 1, owner,
                created, created,
            ))  # fmt: skip
            items.append(item)
        return deal_amount(items, currency), count


async def create_pipelines(conn: asyncpg.Connection, at: datetime, rng: random.Random) -> None:
    """The generator's pipelines that the database lacks, with the columns the migration writes."""
    present = {row["name"] for row in await conn.fetch("SELECT name FROM pipelines")}
    micros = micros_of(at)
    for name, stages in EXTRA_PIPELINES.items():
        if name in present:
            continue
        pipeline_id = uuid7_at(micros, rng)
        pipeline = (pipeline_id, name, False, 1, at, at)
        await conn.copy_records_to_table("pipelines", records=[pipeline], columns=PIPELINE_COLUMNS)
        stage_rows = [
            (uuid7_at(micros, rng), pipeline_id, stage, position, probability, kind, at, at)
            for position, (stage, probability, kind) in enumerate(stages)
        ]
        await conn.copy_records_to_table(
            "pipeline_stages", records=stage_rows, columns=STAGE_COLUMNS
        )


async def read_pipelines(conn: asyncpg.Connection) -> tuple[Pipeline, ...]:
    rows = await conn.fetch(
        "SELECT p.name, p.id AS pipeline_id, s.id, s.kind FROM pipelines p"
        " JOIN pipeline_stages s ON s.pipeline_id = p.id"
        " WHERE p.name = ANY($1) ORDER BY s.position, s.id",
        list(PIPELINE_WEIGHTS),
    )
    found = []
    for name in PIPELINE_WEIGHTS:
        stages = [row for row in rows if row["name"] == name]
        if not stages:
            raise SystemExit(f"no pipeline named {name!r}")
        found.append(pipeline_of(stages))
    return tuple(found)


def pipeline_of(stages: list[asyncpg.Record]) -> Pipeline:
    """A pipeline from its stages, in order."""

    def of_kind(kind: StageKind) -> tuple[UUID, ...]:
        return tuple(row["id"] for row in stages if row["kind"] == kind)

    open_stages = of_kind(StageKind.open)
    return Pipeline(
        id=stages[0]["pipeline_id"],
        entry=stages[0]["id"],
        open=open_stages,
        funnel=tuple(accumulate(range(len(open_stages), 0, -1))),
        won=of_kind(StageKind.won),
        lost=of_kind(StageKind.lost),
    )


async def read_deal_refs(conn: asyncpg.Connection) -> DealRefs:
    companies = await conn.fetch(
        "SELECT id, created_at FROM companies WHERE archived_at IS NULL ORDER BY created_at, id"
    )
    # A few contacts per company are plenty: a deal gets one or two of them.
    contacts = await conn.fetch(
        "SELECT company_id, (array_agg(id ORDER BY created_at, id))[1:4] AS ids,"
        " (array_agg(created_at ORDER BY created_at, id))[1:4] AS created"
        " FROM contacts WHERE company_id IS NOT NULL AND archived_at IS NULL GROUP BY company_id"
    )
    return DealRefs(
        pipelines=await read_pipelines(conn),
        pipeline_weights=tuple(accumulate(PIPELINE_WEIGHTS.values())),
        company_ids=[row["id"] for row in companies],
        company_micros=[micros_of(row["created_at"]) for row in companies],
        company_contacts={
            row["company_id"]: [
                (micros_of(created), contact_id)
                for created, contact_id in zip(row["created"], row["ids"], strict=True)
            ]
            for row in contacts
        },
    )


async def load_deals(
    conn: asyncpg.Connection, n: int, users: Users, end: datetime, rng: random.Random
) -> None:
    # The new pipelines predate every deal: deals are spread over the SPAN before `end`.
    await create_pipelines(conn, end - SPAN - timedelta(days=1), rng)
    refs = await read_deal_refs(conn)
    maker = DealMaker(n, Clock(n, end, rng), refs, users, end)
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        side_rows = DealSideRows()
        # A generator, so that PostgreSQL stores deals while Python makes the next ones.
        deals = (maker.deal(i, side_rows) for i in range(start, stop))
        await conn.copy_records_to_table("deals", records=deals, columns=DEAL_COLUMNS)
        await side_rows.copy(conn)
        rate = stop / (time.perf_counter() - started)
        print(f"  deals {stop:>10,} / {n:,}  ({rate:,.0f} deals/s)", flush=True)


# -- one contact's long timeline ---------------------------------------------------------------

TIMELINE_DEEP_FRACTION = 0.75
"""run.py's deep timeline page starts after this share of the items (item 15,001 of 20,000); a
tie of many items straddles that point, so the deep cursor lands inside it."""
MIN_TIMELINE_ITEMS = 200
ACTIVITY_TYPES = [activity_type.value for activity_type in ActivityType]  # call email meeting note
ACTIVITY_WEIGHTS = tuple(accumulate((35, 35, 10, 20)))
OUTCOMES = [outcome.value for outcome in CallOutcome]  # connected first
OUTCOME_WEIGHTS = tuple(accumulate((50, 20, 15, 10, 5)))
INBOUND, OUTBOUND = Direction.inbound.value, Direction.outbound.value
CALL, EMAIL, MEETING = ActivityType.call.value, ActivityType.email.value, ActivityType.meeting.value
TOPICS = ["pricing", "the renewal", "onboarding", "the pilot", "next quarter", "the contract",
          "a support issue", "the roadmap", "references", "the security review"]  # fmt: skip
BODIES = ["Went through the open questions.", "They want a proposal by Friday.",
          "Sent the deck and the case study.", "Asked for a discount; said we would check.",
          "Champion is moving teams; find the new owner.", "Agreed on next steps."]  # fmt: skip
TASK_TITLES = ["Follow up", "Send the proposal", "Book a demo", "Check in", "Prepare the QBR",
               "Call back", "Share pricing"]  # fmt: skip
PRIORITIES = [priority.value for priority in Priority]  # high normal low
PRIORITY_WEIGHTS = tuple(accumulate((2, 5, 3)))
CONTACT_TITLES = [title for title in TITLES if title]
MINUTE_US = 60_000_000
DAY_US = 24 * 60 * MINUTE_US

ACTIVITY_COLUMNS = (
    "id", "type", "subject", "body", "occurred_at", "duration_seconds", "direction", "outcome",
    "company_id", "deal_id", "logged_by", "version", "created_by", "created_at", "updated_at",
)  # fmt: skip
ACTIVITY_CONTACT_COLUMNS = ("activity_id", "contact_id", "linked", "attendee", "occurred_at",
                            "live")  # fmt: skip
TASK_COLUMNS = (
    "id", "title", "notes", "due_at", "priority", "priority_rank", "status", "completed_at",
    "completed_by", "assignee_id", "contact_id", "version", "created_by", "created_at",
    "updated_at",
)  # fmt: skip
LIFECYCLE_COLUMNS = ("id", "contact_id", "from_stage", "to_stage", "changed_at", "changed_by")
AUDIT_COLUMNS = ("id", "occurred_at", "actor_user_id", "action", "entity_type", "entity_id",
                 "changes")  # fmt: skip
TIMELINE_CONTACT = (
    "SELECT id, created_at, title, lifecycle_stage, lifecycle_stage_changed_at, version,"
    " EXISTS (SELECT FROM activity_contacts a WHERE a.contact_id = c.id) AS has_activities,"
    " EXISTS (SELECT FROM contact_lifecycle_changes l WHERE l.contact_id = c.id) AS has_history"
    f" FROM contacts c WHERE id = ({RESERVED_CONTACT})"
)
UPDATE_TIMELINE_CONTACT = (
    "UPDATE contacts SET title = $2, lifecycle_stage = $3, lifecycle_stage_changed_at = $4,"
    " version = $5, updated_at = $6, last_activity_at = $7, first_outreach_at = $8,"
    " next_task_id = $9 WHERE id = $1"
)


@dataclass
class Event:
    """Something that happened to the contact at `micros`, shown as `items` timeline items: an
    activity, a task created or completed (`task` is its index), a title change (its audit row)
    or a lifecycle change (its history row and its audit row, written at the same instant)."""

    micros: int
    kind: str
    task: int = -1
    items: int = 1


@dataclass
class PlannedTask:
    created_us: int
    status: str
    closed_us: int | None = None
    """When it was completed (done) or cancelled."""


@dataclass
class TimelineRows:
    activities: list[tuple[object, ...]] = field(default_factory=list)
    links: list[tuple[object, ...]] = field(default_factory=list)
    tasks: list[tuple[object, ...]] = field(default_factory=list)
    lifecycle: list[tuple[object, ...]] = field(default_factory=list)
    audit: list[tuple[object, ...]] = field(default_factory=list)
    contact: tuple[object, ...] = ()
    """UPDATE_TIMELINE_CONTACT's arguments: what the contact's updates and derived fields set."""

    async def copy(self, conn: asyncpg.Connection) -> None:
        tables = (
            ("activities", self.activities, ACTIVITY_COLUMNS),
            ("activity_contacts", self.links, ACTIVITY_CONTACT_COLUMNS),
            ("tasks", self.tasks, TASK_COLUMNS),
            ("contact_lifecycle_changes", self.lifecycle, LIFECYCLE_COLUMNS),
            ("audit_log", self.audit, AUDIT_COLUMNS),
        )
        for table, records, columns in tables:
            await conn.copy_records_to_table(table, records=records, columns=columns)
        await conn.execute(UPDATE_TIMELINE_CONTACT, *self.contact)


class TimelineMaker:
    """`n` timeline items of one contact, as crm-api would have stored them had the contact's
    activities been logged, its tasks created and worked, and the contact edited, through the
    API over the time since it was created. About 90% are activities."""

    def __init__(
        self, contact: asyncpg.Record, owner_id: UUID, end: datetime, rng: random.Random
    ) -> None:
        self.contact = contact
        self.contact_id: UUID = contact["id"]
        self.owner = owner_id
        self.rng = rng
        self.start_us = micros_of(contact["created_at"]) + MINUTE_US
        self.end_us = micros_of(end) - MINUTE_US

    def make(self, n: int) -> TimelineRows:
        events, tasks = self.plan(n)
        rows = TimelineRows()
        outreach: list[int] = []
        for event in events:
            if event.kind == "activity":
                self.activity(event.micros, rows, outreach)
        rows.tasks = [self.task_row(task) for task in tasks]
        # The contact's creation (its first lifecycle row), then its edits, oldest first.
        created, stage = self.contact["created_at"], self.contact["lifecycle_stage"]
        rows.lifecycle.append((uuid7_at(micros_of(created), self.rng), self.contact_id, None,
                               stage, created, self.owner))  # fmt: skip
        edits = [event for event in reversed(events) if event.kind in ("stage", "title")]
        stage_at, title = self.contact["lifecycle_stage_changed_at"], self.contact["title"]
        for event in edits:
            at = instant(event.micros)
            if event.kind == "stage":
                before, stage = stage, self.rng.choice([s for s in STAGES if s != stage])
                rows.lifecycle.append((uuid7_at(event.micros, self.rng), self.contact_id, before,
                                       stage, at, self.owner))  # fmt: skip
                changes = {"lifecycle_stage": [before, stage],
                           "lifecycle_stage_changed_at": [stage_at, at]}  # fmt: skip
                stage_at = at
            else:
                before, title = title, self.rng.choice([t for t in CONTACT_TITLES if t != title])
                changes = {"title": [before, title]}
            # The changes as crm-api's JSON codec writes them (orjson: ISO 8601 datetimes).
            changes_json = orjson.dumps(changes).decode()
            rows.audit.append((uuid7_at(event.micros, self.rng), at, self.owner, "updated",
                               "contact", self.contact_id, changes_json))  # fmt: skip
        rows.contact = (
            self.contact_id, title, stage, stage_at, 1 + len(edits),
            instant(edits[-1].micros) if edits else created,
            instant(max(event.micros for event in events if event.kind == "activity")),
            instant(min(outreach)) if outreach else None,
            self.next_task(rows.tasks),
        )  # fmt: skip
        return rows

    def plan(self, n: int) -> tuple[list[Event], list[PlannedTask]]:
        """The events, newest first, making exactly `n` items with the contact's creation."""
        stage_changes, title_changes, task_count = max(1, n // 200), n // 25, n * 3 // 100
        events = [Event(self.instant(), "stage", items=2) for _ in range(stage_changes)]
        events += [Event(self.instant(), "title") for _ in range(title_changes)]
        tasks = [self.task(self.instant()) for _ in range(task_count)]
        for number, task in enumerate(tasks):
            events.append(Event(task.created_us, "task", number))
            if task.closed_us is not None and task.status == TaskStatus.done:
                events.append(Event(task.closed_us, "done", number))
        left = n - 1 - sum(event.items for event in events)
        events += [Event(self.instant(), "activity") for _ in range(left)]
        events.sort(key=lambda event: event.micros, reverse=True)
        self.share_instants(events, n)
        for event in events:  # a tie may have moved a task's events: the task follows them
            if event.kind == "task":
                tasks[event.task].created_us = event.micros
            elif event.kind == "done":
                tasks[event.task].closed_us = event.micros
        for task in tasks:  # a cancellation is no timeline item, but not before the creation
            if task.closed_us is not None:
                task.closed_us = max(task.closed_us, task.created_us)
        return events, tasks

    def instant(self) -> int:
        return self.start_us + self.rng.randrange(self.end_us - self.start_us)

    def task(self, created_us: int) -> PlannedTask:
        """Recent tasks are mostly open; old ones mostly done, some cancelled, a few forgotten."""
        recent = self.end_us - created_us < 30 * DAY_US
        shares = (60, 35, 5) if recent else (8, 80, 12)
        status = self.rng.choices((TaskStatus.open, TaskStatus.done, TaskStatus.cancelled), shares)
        if status[0] == TaskStatus.open:
            return PlannedTask(created_us, status[0].value)
        gap = self.rng.randrange(max(1, min(14 * DAY_US, self.end_us - created_us)))
        return PlannedTask(created_us, status[0].value, created_us + gap)

    def share_instants(self, events: list[Event], n: int) -> None:
        """A few hundred items share timestamps (the cursor must neither skip nor repeat them):
        200 around the deep page's start, 21 across the end of the first page of 50, and ten
        ties of 5-20 items elsewhere. A tie moves a run of neighbours (newest first) to the
        instant of one of them, so no two events swap: a task is still completed no earlier
        than it was created."""
        ends = list(accumulate(event.items for event in events))

        def tie(first: int, count: int) -> None:
            low = bisect_left(ends, first)
            high = min(len(events) - 1, bisect_left(ends, first + count - 1))
            at = events[(low + high) // 2].micros
            for event in events[low : high + 1]:
                event.micros = at

        big = max(2, n // 100)
        tie(int(n * TIMELINE_DEEP_FRACTION) - big * 3 // 4, big)  # items 14,850-15,049 of 20,000
        tie(40, 21)
        for _ in range(10):
            tie(self.rng.randrange(60, n - 60), self.rng.randint(5, 20))

    def activity(self, micros: int, rows: TimelineRows, outreach: list[int]) -> None:
        """An activity about the contact, with the fields its type takes (`_check_fields`),
        logged up to 20 minutes after it happened; its `activity_contacts` row repeats its time."""
        rng = self.rng
        kind = rng.choices(ACTIVITY_TYPES, cum_weights=ACTIVITY_WEIGHTS)[0]
        topic = rng.choice(TOPICS)
        direction = outcome = duration = subject = body = None
        if kind == CALL:
            direction = OUTBOUND if rng.random() < 0.7 else INBOUND
            if direction == OUTBOUND:
                outcome = rng.choices(OUTCOMES, cum_weights=OUTCOME_WEIGHTS)[0]
            elif rng.random() < 0.8:
                outcome = CallOutcome.connected.value
            if outcome == CallOutcome.connected:
                duration = rng.randint(60, 1800)
            subject = f"Call about {topic}" if rng.random() < 0.5 else None
            body = rng.choice(BODIES) if rng.random() < 0.4 else None
        elif kind == EMAIL:
            direction = OUTBOUND if rng.random() < 0.6 else INBOUND
            subject = f"Re: {topic}"
            body = rng.choice(BODIES) if rng.random() < 0.7 else None
        elif kind == MEETING:
            duration = rng.choice((1800, 2700, 3600))
            subject = f"Meeting: {topic}"
            body = rng.choice(BODIES) if rng.random() < 0.3 else None
        else:  # a note
            subject = f"Note on {topic}" if rng.random() < 0.3 else None
            body = rng.choice(BODIES)
        if kind == MEETING or direction == OUTBOUND:
            outreach.append(micros)
        logged = instant(min(self.end_us, micros + rng.randrange(20 * MINUTE_US)))
        activity_id, occurred = uuid7_at(micros_of(logged), rng), instant(micros)
        rows.activities.append((
            activity_id, kind, subject, body, occurred, duration, direction, outcome, None, None,
            self.owner, 1, self.owner, logged, logged,
        ))  # fmt: skip
        rows.links.append((activity_id, self.contact_id, True, False, occurred, True))

    def task_row(self, task: PlannedTask) -> tuple[object, ...]:
        """Created (version 1), then completed or cancelled (version 2) unless still open; due
        1 hour to 3 weeks after creation, or undated (10%)."""
        rng, owner = self.rng, self.owner
        created = instant(task.created_us)
        due = None
        if rng.random() >= 0.1:
            due = instant(task.created_us + rng.randrange(60 * MINUTE_US, 21 * DAY_US))
        priority = rng.choices(PRIORITIES, cum_weights=PRIORITY_WEIGHTS)[0]
        closed = instant(task.closed_us) if task.closed_us is not None else None
        done = task.status == TaskStatus.done
        return (
            uuid7_at(task.created_us, rng), f"{rng.choice(TASK_TITLES)}: {rng.choice(TOPICS)}",
            rng.choice(BODIES) if rng.random() < 0.3 else None, due, priority,
            PRIORITY_RANK[Priority(priority)], task.status, closed if done else None,
            owner if done else None, owner, self.contact_id, 1 if closed is None else 2, owner,
            created, closed or created,
        )  # fmt: skip

    @staticmethod
    def next_task(tasks: list[tuple[object, ...]]) -> UUID | None:
        """`refresh_next_task`: the earliest open task by due date (undated last), then
        priority, then id (Python orders UUIDs as PostgreSQL does, by their bytes)."""
        column = {name: index for index, name in enumerate(TASK_COLUMNS)}
        open_tasks = [row for row in tasks if row[column["status"]] == TaskStatus.open]

        def order(row: tuple[Any, ...]) -> tuple[Any, ...]:
            due = row[column["due_at"]]
            return due is None, due or EPOCH, row[column["priority_rank"]], row[column["id"]]

        return min(open_tasks, key=order)[column["id"]] if open_tasks else None  # type: ignore[return-value]


async def load_timeline(
    conn: asyncpg.Connection, n: int, owner_id: UUID, end: datetime, rng: random.Random
) -> UUID:
    """`n` timeline items for one contact: the oldest live contact at a company
    (`RESERVED_CONTACT`), which must never have been edited. Returns its id."""
    if n < MIN_TIMELINE_ITEMS:
        raise SystemExit(f"--timeline-items: at least {MIN_TIMELINE_ITEMS}")
    started = time.perf_counter()
    contact = await conn.fetchrow(TIMELINE_CONTACT)
    if contact is None:
        raise SystemExit("no live contact at a company to give a timeline")
    if contact["version"] != 1 or contact["has_activities"] or contact["has_history"]:
        raise SystemExit(f"contact {contact['id']} already has a timeline; use a fresh database")
    rows = TimelineMaker(contact, owner_id, end, rng).make(n)
    await rows.copy(conn)
    print(
        f"  timeline of contact {contact['id']}: {len(rows.activities):,} activities,"
        f" {len(rows.tasks):,} tasks, {len(rows.lifecycle):,} lifecycle changes,"
        f" {len(rows.audit):,} audit rows in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return contact["id"]


# -- every other contact's history: lifecycle changes and activities -----------------------------

LADDER = ("lead", "mql", "sql", "opportunity", "customer", "evangelist")
CREATED_AT_STAGE = 0.35  # share of contacts entered at the stage they are in (imports, say)
KEPT_STEP = 0.75  # each stage between the first and the current one is recorded (else skipped)
STEP_MEDIAN_DAYS, CHURN_MEDIAN_DAYS = 12, 150  # between two stages; from customer to churned
CONTACTED_SHARE = 0.8  # contacts with an outreach (their first_outreach_at); the rest: never
OUTREACH_BEFORE = 0.03  # of those, first outreach dated before the contact was entered
OUTREACH_MEDIAN_US = 3 * 60 * MINUTE_US  # minutes to days after the contact was entered
NOTE = ActivityType.note.value
OUTREACH = ((CALL, OUTBOUND), (EMAIL, OUTBOUND), (MEETING, None))
OUTREACH_WEIGHTS = tuple(accumulate((45, 45, 10)))
NO_OUTREACH = ((CALL, INBOUND), (EMAIL, INBOUND), (NOTE, None))
HISTORY_TABLES = ("contact_lifecycle_changes", "activities", "activity_contacts", "contacts",
                  "users")  # fmt: skip
# Live contacts without any lifecycle change (contacts loaded before the history existed):
# `--contacts 0 --activities N` gives them their history. Contacts POSTed by crm-api have their
# creation's change; the timeline's contact is left alone.
HISTORYLESS = (
    " FROM contacts c WHERE c.archived_at IS NULL"
    f" AND c.id IS DISTINCT FROM ({RESERVED_CONTACT})"
    " AND NOT EXISTS (SELECT FROM contact_lifecycle_changes l WHERE l.contact_id = c.id)"
)
HISTORY_UPDATE = """
CREATE TEMPORARY TABLE bench_history (id uuid, lifecycle_stage_changed_at timestamptz,
    edits integer, updated_at timestamptz, last_activity_at timestamptz,
    first_outreach_at timestamptz) ON COMMIT DROP
"""
APPLY_HISTORY = """
UPDATE contacts c SET lifecycle_stage_changed_at = h.lifecycle_stage_changed_at,
    version = c.version + h.edits, updated_at = greatest(c.updated_at, h.updated_at),
    last_activity_at = h.last_activity_at, first_outreach_at = h.first_outreach_at
FROM bench_history h WHERE c.id = h.id
"""


def plan_activities(n: int, total: int, rng: random.Random) -> tuple[bytearray, "array[int]"]:
    """For contacts 0..n-1 (oldest first): whether each had an outreach (80%), and how many
    other activities it had, so that all of them add up to exactly `total`. Older contacts
    have had more time for activities: the others go to contacts in proportion to their age
    (plus a little, so that new ones get some)."""
    contacted = (
        bytearray(rng.random() < CONTACTED_SHARE for _ in range(n)) if total else bytearray(n)
    )
    first = sum(contacted)
    for i in range(n - 1, -1, -1):  # fewer activities than contacts: the newest go without
        if first <= total:
            break
        if contacted[i]:
            contacted[i], first = 0, first - 1
    others = array("I", bytes(4 * n))
    if n and total > first:
        weights = list(accumulate(0.1 + (n - i) / n for i in range(n)))
        for i in rng.choices(range(n), cum_weights=weights, k=total - first):
            others[i] += 1
    return contacted, others


@dataclass
class HistoryRows:
    lifecycle: list[tuple[object, ...]] = field(default_factory=list)
    activities: list[tuple[tuple[object, ...], UUID]] = field(default_factory=list)
    """Each activity's row and its contact's id."""

    async def copy(self, conn: asyncpg.Connection) -> None:
        """In the order crm-api would have written them: by time (the lifecycle changes by
        when they happened, the activities by when they were logged)."""
        started = time.perf_counter()
        self.lifecycle.sort(key=itemgetter(4, 0))
        await conn.copy_records_to_table(
            "contact_lifecycle_changes", records=self.lifecycle, columns=LIFECYCLE_COLUMNS
        )
        logged = ACTIVITY_COLUMNS.index("created_at")
        self.activities.sort(key=lambda pair: (pair[0][logged], pair[0][0]))
        rows = (row for row, _ in self.activities)
        await conn.copy_records_to_table("activities", records=rows, columns=ACTIVITY_COLUMNS)
        links = ((row[0], contact_id, True, False, row[4], True)
                 for row, contact_id in self.activities)  # fmt: skip
        await conn.copy_records_to_table(
            "activity_contacts", records=links, columns=ACTIVITY_CONTACT_COLUMNS
        )
        print(
            f"  history: {len(self.lifecycle):,} lifecycle changes, {len(self.activities):,}"
            f" activities and their contact links in {time.perf_counter() - started:.1f}s",
            flush=True,
        )


class ContactHistory:
    """What a contact went through since it was entered, as crm-api would have stored it: its
    lifecycle changes (entered at a first stage, then, for many, up the funnel to the stage it
    is in now; some customers churned later), each an edit of the contact; and the activities
    logged about it (a first outreach, minutes to days after it was entered, for 80% of them;
    others at any time since, none of them outreach before the first). `make` returns the
    contact's columns those leave; the rows gather in `rows`."""

    def __init__(
        self, n: int, activities: int, users: Users, end: datetime, rng: random.Random
    ) -> None:
        self.users = users
        self.reps = frozenset(users.reps)
        self.rng = rng
        self.end_us = micros_of(end)
        self.contacted, self.others = plan_activities(n, activities, rng)
        self.carried = (0, 0)
        self.reserved = False
        self.rows = HistoryRows()

    def make(
        self,
        i: int,
        contact_id: UUID,
        created_us: int,
        stage: str,
        owner: UUID,
        reserve: bool = False,
    ) -> tuple[datetime, int, datetime, datetime | None, datetime | None]:
        """Contact i's history; returns its lifecycle_stage_changed_at, number of edits,
        updated_at, last_activity_at and first_outreach_at. With `reserve`, the first time: no
        history (the timeline's contact), and its activities go to the next contact."""
        contacted = self.contacted[i] + self.carried[0]
        others = self.others[i] + self.carried[1]
        created = instant(created_us)
        if reserve and not self.reserved:
            self.reserved, self.carried = True, (contacted, others)
            return created, 0, created, None, None
        self.carried = (0, 0)
        if contacted > 1:
            contacted, others = 1, others + contacted - 1
        changed_us, edits = self.lifecycle(contact_id, created_us, stage, owner)
        last_us, first_us = self.activities(contact_id, created_us, owner, contacted, others)
        return (
            instant(changed_us), edits, instant(changed_us),
            None if last_us is None else instant(last_us),
            None if first_us is None else instant(first_us),
        )  # fmt: skip

    def path(self, stage: str) -> list[str]:
        """The stages a contact now in `stage` went through, from the one it was entered at."""
        rng = self.rng
        if stage == "subscriber":
            return [stage]
        if stage == "other":  # disqualified, or entered as such
            return ["lead", stage] if rng.random() < 0.3 else [stage]
        target = "customer" if stage == "churned" else stage
        top = LADDER.index(target)
        start = top if rng.random() < CREATED_AT_STAGE else 0
        steps = [LADDER[start]]
        steps += [s for s in LADDER[start + 1 : top] if s == "customer" or rng.random() < KEPT_STEP]
        if top > start:
            steps.append(target)
        if start == 0 and rng.random() < 0.15:
            steps.insert(0, "subscriber")
        if stage == "churned":
            steps += ["evangelist", stage] if rng.random() < 0.1 else [stage]
        return steps

    def lifecycle(
        self, contact_id: UUID, created_us: int, stage: str, owner: UUID
    ) -> tuple[int, int]:
        """The creation's change (no stage to the first), then one per step, by the owner;
        days to weeks apart (a churn months after), squeezed into the contact's life so far.
        Returns when the last one happened and how many edits there were."""
        rng, rows = self.rng, self.rows.lifecycle
        steps = self.path(stage)
        gaps = []
        for step in steps[1:]:
            median, sigma = (CHURN_MEDIAN_DAYS, 0.7) if step == "churned" else (STEP_MEDIAN_DAYS, 1)
            gaps.append(rng.lognormvariate(math.log(median), sigma) * DAY_US)
        room = self.end_us - MINUTE_US - created_us
        scale = 1.0
        if gaps and sum(gaps) > room:
            scale = room * rng.uniform(0.3, 0.95) / sum(gaps)
        at, before = created_us, None
        for number, step in enumerate(steps):
            if number:
                at += max(1, int(gaps[number - 1] * scale))
            rows.append((uuid7_at(at, rng), contact_id, before, step, instant(at), owner))
            before = step
        return at, len(steps) - 1

    def activities(
        self, contact_id: UUID, created_us: int, owner: UUID, contacted: int, others: int
    ) -> tuple[int | None, int | None]:
        """A first outreach if `contacted`, and `others` activities at any time since the
        contact was entered: before the first outreach (or with none), only inbound calls and
        emails, and notes. Returns (last activity, first outreach) times."""
        rng = self.rng
        latest = self.end_us - MINUTE_US
        room = max(1, latest - created_us)
        first = last = None
        if contacted:
            delay = int(rng.lognormvariate(math.log(OUTREACH_MEDIAN_US), 1.8))
            first = created_us - delay if rng.random() < OUTREACH_BEFORE else created_us + delay
            if first > latest:  # entered moments ago: sometime since
                first = created_us + rng.randrange(room)
            kind, direction = rng.choices(OUTREACH, cum_weights=OUTREACH_WEIGHTS)[0]
            self.activity(contact_id, created_us, first, kind, direction, owner)
            last = first
        for _ in range(others):
            at = created_us + rng.randrange(room)
            if first is None or at < first:
                kind, direction = rng.choice(NO_OUTREACH)
            else:
                kind = rng.choices(ACTIVITY_TYPES, cum_weights=ACTIVITY_WEIGHTS)[0]
                share = {CALL: 0.7, EMAIL: 0.6}.get(kind)
                direction = None if share is None else OUTBOUND if rng.random() < share else INBOUND
            self.activity(contact_id, created_us, at, kind, direction, owner)
            last = at if last is None else max(last, at)
        return last, first

    def activity(
        self,
        contact_id: UUID,
        created_us: int,
        micros: int,
        kind: str,
        direction: str | None,
        owner: UUID,
    ) -> None:
        """An activity with the fields its type takes (`_check_fields`), logged by the contact's
        owner (80%, else another rep) up to 20 minutes after it happened, and never before the
        contact existed (outreach dated earlier was logged once the contact was entered)."""
        rng = self.rng
        topic = rng.choice(TOPICS)
        outcome = duration = subject = body = None
        if kind == CALL:
            if direction == OUTBOUND:
                outcome = rng.choices(OUTCOMES, cum_weights=OUTCOME_WEIGHTS)[0]
            elif rng.random() < 0.8:
                outcome = CallOutcome.connected.value
            if outcome == CallOutcome.connected:
                duration = rng.randint(60, 1800)
            subject = f"Call about {topic}" if rng.random() < 0.5 else None
            body = rng.choice(BODIES) if rng.random() < 0.4 else None
        elif kind == EMAIL:
            subject = f"Re: {topic}"
            body = rng.choice(BODIES) if rng.random() < 0.7 else None
        elif kind == MEETING:
            duration = rng.choice((1800, 2700, 3600))
            subject = f"Meeting: {topic}"
            body = rng.choice(BODIES) if rng.random() < 0.3 else None
        else:
            subject = f"Note on {topic}" if rng.random() < 0.3 else None
            body = rng.choice(BODIES)
        by = owner if owner in self.reps and rng.random() < 0.8 else self.users.rep(rng)
        logged_us = max(micros, created_us) + rng.randrange(20 * MINUTE_US)
        logged = instant(min(self.end_us, logged_us))
        activity_id = uuid7_at(micros_of(logged), rng)
        self.rows.activities.append((
            (activity_id, kind, subject, body, instant(micros), duration, direction, outcome,
             None, None, by, 1, by, logged, logged),
            contact_id,
        ))  # fmt: skip


async def add_history(
    conn: asyncpg.Connection, activities: int, users: Users, end: datetime, rng: random.Random
) -> int:
    """Gives the live contacts that have no lifecycle change (`HISTORYLESS`: contacts loaded
    before the history existed) their history, and updates their columns in place. Returns how
    many contacts got one."""
    started = time.perf_counter()
    n = await conn.fetchval(f"SELECT count(*) {HISTORYLESS}")
    history = ContactHistory(n, activities, users, end, rng)
    cursor = await conn.cursor(
        f"SELECT c.id, c.created_at, c.lifecycle_stage, c.owner_id {HISTORYLESS}"
        " ORDER BY c.created_at, c.id"
    )
    updates, i = [], 0
    while records := await cursor.fetch(CHUNK):
        for record in records:
            created_us = micros_of(record["created_at"])
            columns = history.make(
                i, record["id"], created_us, record["lifecycle_stage"], record["owner_id"]
            )
            i += 1
            if columns[1] or columns[3] is not None:  # an edit or an activity
                updates.append((record["id"], *columns))
        print(f"  history of {i:>10,} / {n:,} contacts made", flush=True)
    await history.rows.copy(conn)
    step = time.perf_counter()
    await conn.execute(HISTORY_UPDATE)
    columns = ("id", "lifecycle_stage_changed_at", "edits", "updated_at", "last_activity_at",
               "first_outreach_at")  # fmt: skip
    await conn.copy_records_to_table("bench_history", records=updates, columns=columns)
    await conn.execute(APPLY_HISTORY)
    print(
        f"  {len(updates):,} contacts updated in place in {time.perf_counter() - step:.1f}s;"
        f" history added in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return n


# What each part of the load writes: vacuumed once it is in.
CONTACT_TABLES = ("companies", "contacts", "users", *HISTORY_TABLES)
DEAL_TABLES = ("pipelines", "pipeline_stages", "deals", "deal_stage_history", "deal_contacts",
               "line_items")  # fmt: skip
TIMELINE_TABLES = ("activities", "activity_contacts", "tasks", "contact_lifecycle_changes",
                   "audit_log", "contacts")  # fmt: skip


async def require_empty(conn: asyncpg.Connection, tables: list[str]) -> None:
    for table in tables:
        existing = await conn.fetchval(f"SELECT count(*) FROM {table}")
        if existing:
            raise SystemExit(f"{table} already holds {existing:,} rows; use a fresh database")


async def generate(
    database_url: str,
    contacts: int,
    companies: int,
    owner_id: UUID | None = None,
    seed: int = 42,
    deals: int = 0,
    timeline_items: int = 0,
    activities: int = 0,
    contact_custom_fields: CustomFields | None = None,
) -> dict[str, float]:
    """Loads companies and contacts with their history and `activities` activities (unless
    both are 0), then `deals` deals, then one contact's timeline of `timeline_items` items; with
    no contacts to load but `activities`, gives the existing contacts without any history theirs.
    `contact_custom_fields(i)` gives contact i's custom fields as JSON text (default: none).
    Then VACUUM ANALYZE; returns counts and timings (`<part>_s`: seconds)."""
    rng = random.Random(seed)
    end = datetime.now(UTC)
    people = bool(contacts or companies)
    history = not people and bool(activities)
    tables = [*(CONTACT_TABLES if people else ()), *(DEAL_TABLES if deals else ())]
    tables += [table for table in TIMELINE_TABLES if timeline_items and table not in tables]
    tables += [table for table in HISTORY_TABLES if history and table not in tables]
    # Contacts and deals each go into a database without them; the timeline to a contact that
    # has none, the history to contacts that have none.
    loaded = {"contacts": people, "deals": bool(deals)}
    conn = await asyncpg.connect(plain_dsn(database_url))
    try:
        await require_empty(conn, [table for table, loading in loaded.items() if loading])
        started = time.perf_counter()
        timing: dict[str, float] = {"contacts": contacts, "companies": companies, "deals": deals,
                                    "timeline_items": timeline_items,
                                    "activities": activities}  # fmt: skip
        clock = [started]

        def lap(part: str) -> None:
            now = time.perf_counter()
            timing[f"{part}_s"], clock[0] = now - clock[0], now

        # One transaction: a failed or interrupted load leaves no partial data behind that a
        # later `run.py --reuse` would mistake for a complete dataset.
        async with conn.transaction():
            creator = await ensure_owner(conn, owner_id)
            users = Users(creator, await ensure_reps(conn, end - SPAN - timedelta(days=1)))
            if people:
                await load_companies_and_contacts(
                    conn, companies, contacts, activities, users, end, rng, contact_custom_fields
                )
            lap("contacts")
            if deals:
                await load_deals(conn, deals, users, end, rng)
            lap("deals")
            if timeline_items:
                await load_timeline(conn, timeline_items, creator, end, rng)
            lap("timeline")
            if history:
                timing["history_contacts"] = await add_history(conn, activities, users, end, rng)
            lap("history")
        timing["load_s"] = time.perf_counter() - started
        if history:
            # The update left a dead version of nearly every contact behind: rewrite the table
            # (in the same order), as compact as a fresh load's.
            await conn.execute("VACUUM (FULL) contacts")
        # VACUUM, not just ANALYZE: it sets hint bits and the visibility map now, instead of
        # the first benchmark reads dirtying (and writing back) every freshly loaded page.
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
        timing["total_s"] = time.perf_counter() - started
    finally:
        await conn.close()
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a migrated database")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--companies", type=int, help="default: contacts / 20")
    parser.add_argument("--deals", type=int, default=0, help="loaded after contacts")
    parser.add_argument(
        "--timeline-items",
        type=int,
        default=0,
        help="give one existing contact this many timeline items (run.py: 20000), loaded last",
    )
    parser.add_argument(
        "--activities",
        type=int,
        default=0,
        help="activities over the contacts' histories (run.py: 2000000); with --contacts 0: "
        "give the contacts without any history theirs",
    )
    parser.add_argument(
        "--owner-id",
        type=UUID,
        help="who imported the contacts and companies and works the timeline (default: a bench "
        "user); the bench reps own the records",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    companies = args.companies if args.companies is not None else args.contacts // 20
    result = asyncio.run(
        generate(
            args.database_url, args.contacts, companies, args.owner_id, args.seed, args.deals,
            args.timeline_items, args.activities,
        )
    )  # fmt: skip
    print(
        f"loaded {args.contacts:,} contacts, {companies:,} companies, {args.deals:,} deals, "
        f"{args.timeline_items:,} timeline items and {args.activities:,} activities in "
        f"{result['load_s']:.1f}s ({describe(result)}), {result['total_s']:.1f}s with VACUUM "
        "ANALYZE"
    )


def describe(timing: dict[str, float]) -> str:
    """The time each loaded part took."""
    parts = ("contacts", "deals", "timeline", "history")
    return ", ".join(f"{part} {timing[f'{part}_s']:.1f}s" for part in parts
                     if timing[f"{part}_s"] >= 0.05)  # fmt: skip


if __name__ == "__main__":
    main()
