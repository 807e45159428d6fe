"""`crm-api seed-demo`: realistic demo data, written through the services so it is audited."""

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from crm_api.activities.service import ActivityService
from crm_api.companies.service import CompanyService
from crm_api.contacts.service import ContactService
from crm_api.core.db import Database
from crm_api.core.enums import LifecycleStage, Role
from crm_api.core.ids import utcnow
from crm_api.core.principal import ALL_SCOPES, Principal
from crm_api.core.reader import Reader
from crm_api.deals.models import DealContactRole
from crm_api.deals.service import DealService
from crm_api.pipelines.service import PipelineService
from crm_api.products.service import ProductService
from crm_api.tasks.service import TaskService
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
_PRODUCTS = [
    ("PLAT-SEAT", "Platform seat (annual)", "480.00"),
    ("ANALYTICS", "Analytics add-on (annual)", "1200.00"),
    ("ONBOARD", "Onboarding package", "2500.00"),
    ("SUPPORT-PRO", "Priority support (annual)", "900.00"),
]
_LOST_REASONS = ["Budget", "Chose a competitor", "No decision", "Timing"]
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


async def seed_demo(
    database_url: str, companies: int, contacts: int, deals: int = 0
) -> dict[str, int]:
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
            contact_ids: list[UUID] = []
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
                contact_ids.append((await contact_service.create(values))["id"])
            deal_service = DealService(session, reader, admin, users)
            await _deals(rng, deal_service, deals, owner_ids, company_ids, contact_ids)
            await _activities_and_tasks(rng, deal_service, owner_ids, contact_ids)
            await session.commit()
    finally:
        await db.close()
    return {"users": len(_TEAM), "companies": companies, "contacts": contacts, "deals": deals}


async def _deals(
    rng: random.Random,
    deal_service: DealService,
    count: int,
    owner_ids: list[UUID],
    company_ids: list[UUID],
    contact_ids: list[UUID],
) -> None:
    """Deals across the default pipeline, each walked stage by stage to where it stands (so it
    has a history), a third priced by line items and most with a contact or two."""
    products = ProductService(deal_service.session, deal_service.reader, deal_service.principal,
                              deal_service.owners)  # fmt: skip
    catalog = []
    for sku, name, price in _PRODUCTS:
        values = {"sku": sku, "name": name, "description": None, "unit_price": Decimal(price),
                  "currency": "USD", "active": True, "external_id": None}  # fmt: skip
        catalog.append(await products.create(values))
    pipelines = PipelineService(deal_service.session, deal_service.reader, deal_service.principal)
    (sales,) = [p for p in await pipelines.list_pipelines() if p["is_default"]]
    stages = sales["stages"]
    for i in range(count):
        company_id = rng.choice(company_ids) if company_ids else None
        deal = await deal_service.create(
            {"name": f"{_WORDS[i % 20]} {rng.choice(['renewal', 'expansion', 'pilot', 'rollout'])}",
             "pipeline_id": sales["id"], "stage_id": None, "currency": "USD",
             "amount": Decimal(rng.randrange(20, 600) * 100), "owner_id": rng.choice(owner_ids),
             "company_id": company_id, "expected_close_date": None, "next_step": None,
             "lost_reason": None, "custom_fields": {}, "external_id": None}
        )  # fmt: skip
        for contact_id in rng.sample(contact_ids, k=min(len(contact_ids), rng.choice([0, 1, 2]))):
            role = rng.choice(list(DealContactRole))
            await deal_service.add_contact(deal["id"], contact_id, role, None)
        if i % 3 == 0:
            for product in rng.sample(catalog, k=rng.choice([1, 2])):
                await deal_service.add_line_item(
                    deal["id"],
                    {"product_id": product["id"], "quantity": Decimal(rng.randrange(1, 20)),
                     "discount_percent": Decimal(rng.choice([0, 0, 5, 10])), "position": None},
                )  # fmt: skip
        target = rng.randrange(len(stages))
        for stage in stages[1 : target + 1]:
            if stage["kind"] == "won" and target == len(stages) - 1:
                continue  # a lost deal skips the won stage on its way
            reason = rng.choice(_LOST_REASONS) if stage["kind"] == "lost" else None
            values = {"stage_id": stage["id"], **({"lost_reason": reason} if reason else {})}
            await deal_service.update(deal["id"], values, None)


async def _user(users: UserService, email: str, name: str, role: Role) -> UUID:
    existing = await users.users.get_by_email(email)
    if existing is not None:
        return UUID(str(existing["id"]))
    created = await users.create({"email": email, "name": name, "role": role, "team": "demo"})
    return UUID(str(created["id"]))


_SUBJECTS = ["Intro", "Pricing", "Follow-up", "Demo", "Contract", "Check-in"]
_CALL_OUTCOMES = ["connected", "no_answer", "left_voicemail", "busy"]


async def _activities_and_tasks(
    rng: random.Random, deal_service: DealService, owner_ids: list[UUID], contact_ids: list[UUID]
) -> None:
    """A few weeks of calls, emails, meetings and notes with a third of the contacts, and open,
    done and overdue tasks, so timelines, `last_activity_at` and `next_task` have content."""
    args = (deal_service.session, deal_service.reader, deal_service.principal,
            deal_service.owners)  # fmt: skip
    activities, tasks = ActivityService(*args), TaskService(*args)
    now = utcnow()
    for contact_id in contact_ids[: len(contact_ids) // 3]:
        for _ in range(rng.randrange(1, 4)):
            kind = rng.choice(["call", "email", "meeting", "note"])
            timed, directed = kind in ("call", "meeting"), kind in ("call", "email")
            await activities.create(
                {"type": kind, "subject": rng.choice(_SUBJECTS), "body": None,
                 "occurred_at": now - timedelta(hours=rng.randrange(1, 24 * 45)),
                 "duration_seconds": rng.randrange(60, 1800) if timed else None,
                 "direction": rng.choice(["inbound", "outbound"]) if directed else None,
                 "outcome": rng.choice(_CALL_OUTCOMES) if kind == "call" else None,
                 "contact_ids": [contact_id], "attendee_contact_ids": [], "company_id": None,
                 "deal_id": None, "logged_by": rng.choice(owner_ids)}
            )  # fmt: skip
        if rng.random() < 0.5:
            task = await tasks.create(
                {"title": f"{rng.choice(_SUBJECTS)} with contact", "notes": None,
                 "due_at": now + timedelta(days=rng.randrange(-7, 21)),
                 "priority": rng.choice(["low", "normal", "high"]), "status": "open",
                 "assignee_id": rng.choice(owner_ids), "contact_id": contact_id,
                 "company_id": None, "deal_id": None}
            )  # fmt: skip
            if rng.random() < 0.3:
                await tasks.update(task["id"], {"status": "done"}, None)
