"""`crm-api seed-demo`: realistic demo data, written through the services so it is audited."""

import random
from typing import Any
from uuid import UUID

from crm_api.companies.service import CompanyService
from crm_api.contacts.service import ContactService
from crm_api.core.db import Database
from crm_api.core.enums import LifecycleStage, Role
from crm_api.core.principal import ALL_SCOPES, Principal
from crm_api.core.reader import Reader
from crm_api.users.service import UserService

_TEAM = [
    ("dana.manager@demo.example", "Dana Whitfield", Role.manager),
    ("sam.rep@demo.example", "Sam Okafor", Role.rep),
    ("lee.rep@demo.example", "Lee Nakamura", Role.rep),
    ("ana.rep@demo.example", "Ana Costa", Role.rep),
]
_FIRST = [
    "Ava",
    "Ben",
    "Chloe",
    "Diego",
    "Elif",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lina",
    "Marco",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Teo",
    "Uma",
]
_LAST = [
    "Adler",
    "Brooks",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ibarra",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Ortiz",
    "Patel",
    "Rossi",
    "Silva",
    "Tanaka",
    "Varga",
]
_WORDS = [
    "Acme",
    "Blue",
    "Cedar",
    "Delta",
    "Echo",
    "Flux",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kite",
    "Lumen",
    "Maple",
    "North",
    "Orbit",
    "Pine",
    "Quartz",
    "River",
    "Summit",
    "Tidal",
]
_KINDS = [
    "Labs",
    "Systems",
    "Logistics",
    "Foods",
    "Health",
    "Energy",
    "Analytics",
    "Robotics",
    "Media",
    "Capital",
]
_INDUSTRIES = [
    "software",
    "logistics",
    "food",
    "healthcare",
    "energy",
    "finance",
    "media",
    "manufacturing",
]
_SOURCES = ["website", "referral", "event", "outbound", "partner", "paid_search"]
_STAGES = [
    LifecycleStage.subscriber,
    LifecycleStage.lead,
    LifecycleStage.lead,
    LifecycleStage.mql,
    LifecycleStage.sql,
    LifecycleStage.opportunity,
    LifecycleStage.customer,
    LifecycleStage.customer,
    LifecycleStage.evangelist,
    LifecycleStage.churned,
]


async def seed_demo(database_url: str, companies: int, contacts: int) -> dict[str, int]:
    rng = random.Random(42)  # noqa: S311 - the same demo every time, not secrets
    db = Database(database_url)
    await db.start()
    try:
        async with db.sessionmaker() as session:
            reader = Reader(db, session)
            users = UserService(session, reader, None)
            owner_ids = [await _user(users, email, name, role) for email, name, role in _TEAM]
            admin = Principal(owner_ids[0], Role.admin, None, frozenset(ALL_SCOPES))
            company_service = CompanyService(session, reader, admin, users)
            contact_service = ContactService(session, reader, admin, users)
            company_ids: list[UUID] = []
            for i in range(companies):
                name = f"{_WORDS[i % 20]} {_KINDS[(i // 20 + i) % 10]}"
                company = await company_service.create(
                    {
                        "name": name,
                        "domain": f"{name.lower().replace(' ', '')}{i}.example.com",
                        "industry": rng.choice(_INDUSTRIES),
                        "employee_count": rng.choice([8, 25, 60, 140, 400, 1200]),
                        "owner_id": rng.choice(owner_ids),
                        "custom_fields": {},
                    }
                )
                company_ids.append(company["id"])
            for i in range(contacts):
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                values: dict[str, Any] = {
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first}.{last}.{i}@demo.example".lower(),
                    "company_id": rng.choice(company_ids) if company_ids else None,
                    "lifecycle_stage": rng.choice(_STAGES),
                    "lead_source": rng.choice(_SOURCES),
                    "owner_id": rng.choice(owner_ids),
                    "email_opt_in": rng.random() < 0.6,
                    "do_not_contact": False,
                    "custom_fields": {},
                }
                await contact_service.create(values)
            await session.commit()
    finally:
        await db.close()
    return {"users": len(_TEAM), "companies": companies, "contacts": contacts}


async def _user(users: UserService, email: str, name: str, role: Role) -> UUID:
    existing = await users.users.get_by_email(email)
    if existing is not None:
        return UUID(str(existing["id"]))
    created = await users.create({"email": email, "name": name, "role": role, "team": "demo"})
    return UUID(str(created["id"]))
