"""Duplicate detection at scale: page through every duplicate group of ~200k contacts.

    .venv/bin/python bench/duplicates.py [--contacts 200000] [--companies 10000] [--limit 500]

Recreates the database `crm_bench_duplicates` (`--db-name`) on the local PostgreSQL server,
migrates it, and loads with COPY (as `generate.py` does) `--companies` companies with made-up
names and domains, plus 2% planted duplicates of them (a subsidiary on a subdomain, a typo in
the name, the name with ", Inc."), and `--contacts` contacts: 90% at a company, made-up names,
unique emails, 60% with a phone of their own. Among them, 2% are planted duplicates of another
contact, in equal parts: the same email with a `+tag`, the same phone (a typo in the name), a
similar name at the same company (one letter changed), and a similar name at the same company
that also shares a phone with a third contact (a chain of three). Then VACUUM ANALYZE, as
autovacuum leaves a settled table.

Then, in-process through HTTP (httpx on the ASGI app, no server), an admin pages through
`GET /v1/contacts/duplicates` (for each `--limit`, default 500 and 50), one rep's contacts, and
`GET /v1/companies/duplicates`, each to the end. Prints the load time; per walk the groups,
pages, total time and the median and slowest page; and how many planted duplicates came back in
one group with their original (made-up data also has a few duplicates of its own).
"""

import argparse
import asyncio
import random
import statistics
import string
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from crm_api.app import create_app
from crm_api.config import Settings
from crm_api.core.enums import Role
from crm_api.core.ids import uuid7
from crm_api.core.migrations import upgrade
from crm_api.core.principal import ALL_SCOPES
from crm_api.core.reader import Reader
from crm_api.users.service import UserService

SERVER = "postgresql://postgres@127.0.0.1:5432"
CHUNK = 50_000

CONSONANTS = "bcdfghjklmnprstvwz"
VOWELS = "aeiou"
COMPANY_KINDS = ["Labs", "Systems", "Logistics", "Foods", "Health", "Energy", "Analytics", ""]
TITLES = ["CEO", "CTO", "VP Sales", "Engineer", "Buyer", "Head of Ops", "Analyst", None]
AREAS = [212, 312, 415, 503, 617, 646, 702, 718, 808, 917]

COMPANY_COLUMNS = ("id", "name", "name_key", "domain", "owner_id", "custom_fields", "version",
                   "created_by", "created_at", "updated_at")  # fmt: skip
CONTACT_COLUMNS = (
    "id", "first_name", "last_name", "name_key", "email", "phone", "title", "company_id",
    "lifecycle_stage", "lifecycle_stage_changed_at", "owner_id", "email_opt_in",
    "do_not_contact", "custom_fields", "version", "created_by", "created_at", "updated_at",
)  # fmt: skip


def word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables))


def typo(rng: random.Random, text: str) -> str:
    """One letter replaced (never the first: blocks are by initial, as the API documents)."""
    position = rng.randrange(1, len(text))
    letters = [c for c in string.ascii_lowercase if c != text[position].lower()]
    return text[:position] + rng.choice(letters) + text[position + 1 :]


def phone(rng: random.Random) -> str:
    return f"+1{rng.choice(AREAS)}{rng.randrange(2_000_000, 9_999_999)}"


class Dataset:
    def __init__(self, contacts: int, companies: int, owners: list[UUID], seed: int) -> None:
        self.rng = random.Random(seed)
        self.owners = owners
        self.now = datetime.now(UTC)
        self.companies: list[tuple[Any, ...]] = []
        self.contacts: list[tuple[Any, ...]] = []
        self.planted: list[tuple[UUID, UUID]] = []  # (original, duplicate)
        self._phones: set[str] = set()
        names = set()
        while len(self.companies) < companies:
            name = f"{word(self.rng, 3).title()} {self.rng.choice(COMPANY_KINDS)}".strip()
            if name in names:
                continue
            names.add(name)
            self.companies.append(self._company(name, name.lower().replace(" ", "") + ".com"))
        self.planted_companies: list[tuple[UUID, UUID]] = []
        for n, original in enumerate(self.rng.sample(self.companies, companies // 50)):
            name, domain = original[1], original[3]
            if n % 3 == 0:  # a subsidiary's subdomain
                twin = self._company(f"{name} Europe", f"eu.{domain}")
            elif n % 3 == 1:  # a typo, past the first three letters (the blocks)
                first, _, rest = name.partition(" ")
                position = self.rng.randrange(3, len(first))
                typed = f"{first[:position]}x{first[position + 1 :]} {rest}".strip()
                twin = self._company(typed, f"{typed.lower().replace(' ', '')}.net")
            else:  # a legal form
                twin = self._company(f"{name}, Inc.", f"{domain.removesuffix('.com')}-inc.com")
            self.companies.append(twin)
            self.planted_companies.append((original[0], twin[0]))
        firsts = [word(self.rng, 2).title() for _ in range(400)]
        lasts = [word(self.rng, 3).title() for _ in range(3000)]
        planted = contacts // 50
        for i in range(contacts - planted):
            company = self.rng.choice(self.companies) if self.rng.random() < 0.9 else None
            number = self._phone() if self.rng.random() < 0.6 else None
            first, last = self.rng.choice(firsts), self.rng.choice(lasts)
            domain = company[3] if company else "mail.example.com"
            email = f"{first}.{last}.{i}@{domain}".lower()
            self.contacts.append(self._row(first, last, email, number, company and company[0]))
        originals = self.rng.sample(range(len(self.contacts)), planted)
        for n, index in enumerate(originals):
            self._plant(n % 4, index, planted)

    def _company(self, name: str, domain: str) -> tuple[Any, ...]:
        return (uuid7(), name, name.casefold(), domain, self.rng.choice(self.owners), "{}", 1,
                self.owners[0], self.now, self.now)  # fmt: skip

    def _phone(self) -> str:
        while True:
            number = phone(self.rng)
            if number not in self._phones:
                self._phones.add(number)
                return number

    def _row(self, first: str, last: str, email: str, number: str | None,
             company_id: UUID | None) -> tuple[Any, ...]:  # fmt: skip
        owner = self.rng.choice(self.owners)
        return (uuid7(), first, last, f"{last} {first}".casefold(), email, number,
                self.rng.choice(TITLES), company_id, "lead", self.now, owner, False, False, "{}",
                1, self.owners[0], self.now, self.now)  # fmt: skip

    def _plant(self, kind: int, index: int, planted: int) -> None:
        original = self.contacts[index]
        _, first, last, _, email, number, _, company_id = original[:8]
        local, _, domain = email.partition("@")
        fresh = f"dup.{len(self.contacts)}@{domain}"
        if kind == 0:  # the same address with a +tag
            row = self._row(first, last, f"{local}+crm@{domain}", None, company_id)
        elif kind == 1:  # the same phone, a typo in the last name, elsewhere
            number = number or self._give_phone(index)
            row = self._row(first, typo(self.rng, last), fresh, number, None)
        elif kind == 2:  # a similar name at the same company
            company_id = company_id or self._give_company(index)
            row = self._row(typo(self.rng, first), last, fresh, None, company_id)
        else:  # similar name at the company, and a third contact with the duplicate's phone
            company_id = company_id or self._give_company(index)
            shared = self._phone()
            row = self._row(first, typo(self.rng, last), fresh, shared, company_id)
            third = self._row(first, last, f"third.{len(self.contacts)}@{domain}", shared, None)
            self.contacts.append(third)
            self.planted.append((original[0], third[0]))
        self.contacts.append(row)
        self.planted.append((original[0], row[0]))

    def _give_phone(self, index: int) -> str:
        number = self._phone()
        self.contacts[index] = (*self.contacts[index][:5], number, *self.contacts[index][6:])
        return number

    def _give_company(self, index: int) -> UUID:
        company_id: UUID = self.rng.choice(self.companies)[0]
        row = self.contacts[index]
        self.contacts[index] = (*row[:7], company_id, *row[8:])
        return company_id


async def load(dsn: str, contacts: int, companies: int, seed: int) -> tuple[Dataset, str]:
    conn = await asyncpg.connect(dsn)
    try:
        now = datetime.now(UTC)
        owners = []
        for number in range(10):
            owner = uuid7()
            await conn.execute(
                "INSERT INTO users (id, email, name, role, team, active, version, created_at,"
                " updated_at) VALUES ($1, $2, $3, 'rep', 'Bench', true, 1, $4, $4)",
                owner, f"dup-rep-{number}@bench.example", f"Rep {number}", now,
            )  # fmt: skip
            owners.append(owner)
        started = time.perf_counter()
        data = Dataset(contacts, companies, owners, seed)
        made = time.perf_counter() - started
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "companies", records=data.companies, columns=COMPANY_COLUMNS
        )
        for start in range(0, len(data.contacts), CHUNK):
            rows = data.contacts[start : start + CHUNK]
            await conn.copy_records_to_table("contacts", records=rows, columns=CONTACT_COLUMNS)
        # As autovacuum leaves a settled table: statistics, and the visibility map that lets
        # the phone index be read alone.
        await conn.execute("VACUUM ANALYZE contacts")
        await conn.execute("VACUUM ANALYZE companies")
        copied = time.perf_counter() - started
        print(f"generated in {made:.1f}s, copied {len(data.contacts):,} contacts and "
              f"{len(data.companies):,} companies in {copied:.1f}s")  # fmt: skip
        return data, str(owners[0])
    finally:
        await conn.close()


async def page_through(
    client: httpx.AsyncClient, path: str, limit: int, **filters: str
) -> list[Any]:
    groups: list[Any] = []
    times: list[float] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **filters}
        if cursor:
            params["cursor"] = cursor
        started = time.perf_counter()
        response = await client.get(path, params=params)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
        body = response.json()
        groups.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    total = sum(times)
    query = "&".join(f"{key}={value}" for key, value in {"limit": limit, **filters}.items())
    print(f"{path}?{query}: {len(groups):,} groups, {len(times)} pages in {total:.2f}s "
          f"(per page: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms)")  # fmt: skip
    return groups


def recall(groups: list[Any], planted: list[tuple[UUID, UUID]]) -> None:
    together = {
        (record["id"], other["id"])
        for each in groups
        for record in each["records"]
        for other in each["records"]
    }
    found = sum((str(a), str(b)) in together for a, b in planted)
    sizes = [len(each["records"]) for each in groups] or [0]
    print(f"  planted pairs found together: {found:,} of {len(planted):,}; "
          f"group sizes: max {max(sizes)}, mean {statistics.mean(sizes):.2f}")  # fmt: skip


async def measure(url: str, data: Dataset, limits: list[int], owner: str) -> None:
    app = create_app(Settings(database_url=url, access_log=False, in_process_worker=False))
    async with app.router.lifespan_context(app):
        db = app.state.db
        async with db.sessionmaker() as session:
            users = UserService(session, Reader(db, session), None)
            admin = await users.create({"email": "dup-admin@bench.example", "name": "Admin",
                                        "role": Role.admin, "team": None})  # fmt: skip
            key = await users.create_api_key(
                name="bench", scopes=list(ALL_SCOPES), user_id=admin["id"]
            )
            await session.commit()
        headers = {"Authorization": f"Bearer {key['secret']}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers, timeout=600
        ) as client:
            for limit in limits:
                groups = await page_through(client, "/v1/contacts/duplicates", limit)
            recall(groups, data.planted)
            await page_through(client, "/v1/contacts/duplicates", limits[0], owner_id=owner)
            for limit in limits:
                groups = await page_through(client, "/v1/companies/duplicates", limit)
            recall(groups, data.planted_companies)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--limit", type=int, action="append", help="page sizes (default 500, 50)")
    parser.add_argument("--db-name", default="crm_bench_duplicates")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{args.db_name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.db_name}"
    try:
        await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
        data, owner = await load(f"{SERVER}/{args.db_name}", args.contacts, args.companies,
                                 args.seed)  # fmt: skip
        await measure(url, data, args.limit or [500, 50], owner)
    finally:
        if not args.keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
