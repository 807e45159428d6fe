"""Metrics through HTTP against one hand-built fixture: every field of every endpoint is
asserted against a number computed by hand (in the comments) from the README's definitions.

The clock is pinned for every write, so each `created_at`, stage change, `closed_at` and
lifecycle change is the instant written below, and to NOW = 2026-06-15 12:00Z (a Monday) for
every metrics request. The explicit window W is 2026-03-01..2026-05-31, the instants
[2026-03-01 00:00Z, 2026-06-01 00:00Z). All times are 2026, UTC; "03-02 09" is 2026-03-02 09:00.

Users (owners): A (admin), M (manager), R (rep). Everything is written by A, naming the owner.

Pipelines: Sales (default): New 10%, Qualified 25%, Proposal 50%, Negotiation 75%, Won (won),
Lost (lost). Partners (created 01-01): Discovery 15%, Trial 60%, Signed (won), Dropped (lost).

Companies: Acme (A; all 8 fields), Globex (M; industry), Initech (R; domain, employee_count,
lifecycle_stage), Umbrella (R; all fields, ARCHIVED).

Contacts (`life` lists the stage at creation, then stage@instant; `+` = fields set besides the
first name; phones ..0101 etc. are +1 415 555 01xx):

| key   | own | source   | created  | +                          | life                          |
|-------|-----|----------|----------|----------------------------|-------------------------------|
| carol | A   | referral | 01-05 09 | last email ..0101 title    | lead, customer@01-20 09       |
|       |     |          |          | company=Acme               |                               |
| dave  | M   | web      | 01-06 09 | last email title Globex    | customer, churned@04-10 09    |
| erin  | R   | -        | 01-07 09 |                            | lead, customer@02-01 09,      |
|       |     |          |          |                            | evangelist@02-15 09           |
| frank | A   | web      | 01-08 09 |                            | customer, churned@02-20 09    |
| gina  | M   | referral | 01-09 09 | last                       | lead, customer@02-25 09,      |
|       |     |          |          |                            | churned@05-05 09,             |
|       |     |          |          |                            | customer@05-20 09             |
| hank  | R   | event    | 01-10 09 | last ..0123                | customer, churned@06-02 09    |
| jack  | A   | web      | 01-12 09 |                            | lead, customer@03-01 00       |
| bea   | A   | event    | 02-05 09 | last                       | lead                          |
| xena  | R   | -        | 02-10 09 |                            | lead, customer@02-27 09       |
| vic   | R   | web      | 02-28 23 |                            | lead                          |
| kim   | A   | web      | 03-02 09 | last email title Acme      | lead, customer@04-01 09       |
| leo   | A   | web      | 03-03 10 | email                      | lead, evangelist@04-15 09     |
| mia   | M   | web      | 03-10 08 |                            | lead, customer@05-15 09       |
| ned   | M   | referral | 03-15 00 | last company=Initech       | lead, customer@05-01 09,      |
|       |     |          |          |                            | churned@05-20 09              |
| ola   | R   | referral | 04-01 12 |                            | lead                          |
| pat   | R   | event    | 04-05 00 | last pat@x.example         | lead, customer@06-03 09       |
| quinn | A   | event    | 04-20 00 | ..0199                     | lead                          |
| rosa  | M   | -        | 05-01 00 | last (415) 555-0101        | lead                          |
| sam   | R   | -        | 05-10 00 | pat+news@x.example         | lead, customer@05-25 09       |
| wes   | M   | referral | 05-20 12 |                            | lead                          |
| yara  | R   | event    | 05-25 00 |                            | lead, customer@05-28 09       |
| tia   | A   | web      | 05-31 23 | last                       | customer                      |
| zed   | A   | web      | 03-20 00 | email ..0199; ARCHIVED     | customer                      |
| uma   | M   | referral | 06-01 00 |                            | lead                          |
| abe   | R   | -        | 06-10 09 | email only, no first name  | lead                          |

Activities (`out`/`in`: direction; hours are the contact's time to first outreach):

| key | type    | about            | occurred         | by | note                             |
|-----|---------|------------------|------------------|----|----------------------------------|
| a1  | call    | out vic          | 03-01 01         | R  | ISO week 2026-W09 (Monday 02-23) |
| a2  | call    | out kim          | 03-02 11         | A  | kim 2 h                          |
| a3  | call    | in leo           | 03-03 12         | A  | inbound: not outreach            |
| a4  | email   | out leo          | 03-04 10         | A  | leo 24 h                         |
| a5  | note    | deal W2          | 03-05 10         | R  |                                  |
| a6  | call    | out mia          | 03-10 09         | M  | ARCHIVED: in no figure           |
| a7  | note    | mia              | 03-11 10         | M  | a note is no outreach: mia never |
| a8  | meeting | ned              | 03-17 12         | M  | ned 60 h                         |
| a9  | call    | out zed, Acme    | 03-20 01         | A  |                                  |
| a10 | call    | out ola          | 03-31 12         | R  | before ola was created: 0 h      |
| a11 | email   | out ola          | 04-02 12         | R  |                                  |
| a12 | email   | in pat           | 04-05 06         | R  | inbound: not outreach            |
| a13 | email   | out pat          | 04-06 06         | R  | pat 30 h                         |
| a14 | meeting | quinn (attendee) | 04-20 10         | A  | quinn 10 h                       |
| a15 | note    | Acme             | 04-22 15         | A  |                                  |
| a16 | call    | out rosa         | 05-04 00         | M  | rosa 72 h                        |
| a17 | email   | out wes          | 05-21 01:30      | M  | wes 13.5 h                       |
| a18 | call    | out yara         | 05-25 07         | R  | yara 7 h                         |
| a19 | meeting | Acme             | 05-31 23:30      | R  |                                  |
| a20 | call    | out tia          | 06-01 05:00:00.9 | A  | tia 6 h (whole s); after W       |
| a21 | call    | out uma          | 06-01 01         | M  | after W                          |
| a22 | note    | deal W1          | 02-27 10         | A  | before W                         |
| a23 | meeting | Acme             | 2027-01-01 10    | A  | future; ISO week 2026-W53        |
| a24 | meeting | Globex           | 2027-01-04 09    | M  | future; ISO week 2027-W01        |

Deals (S = Sales, P = Partners; USD unless EUR; moves are stage@instant; `close` is the
expected close date; `+` = company, contacts, next step):

| key | p | own | amount   | created  | moves                              | close | +         |
|-----|---|-----|----------|----------|------------------------------------|-------|-----------|
| W1  | S | A   | 1000.02  | 02-10 00 | Qualified@02-20, Won@03-10         | 03-15 | Acme; zed |
|     |   |     |          |          |                                    |       | carol     |
| W2  | S | M   | 2500.50  | 03-02 00 | Qualified@03-05, Proposal@03-12 12 | 03-31 | Globex;   |
|     |   |     |          |          | Negotiation@03-20, Won@04-01       |       | kim ned   |
| W3  | S | R   | 100.02   | 03-03 00 | Qualified@03-10, Proposal@03-20,   | -     | kim mia   |
|     |   |     |          | :00.8    | Qualified@03-25 (back),            |       |           |
|     |   |     |          |          | Proposal@04-01, Won@04-15 12       |       |           |
| W4  | P | A   | 100.03   | 03-05 00 | Trial@03-15, Signed@05-04          | -     |           |
| W5  | S | M   | EUR 800  | 04-01 00 | Won@05-11 00                       | -     | pat       |
| W6  | P | R   | EUR 1200 | 01-20 00 | Trial@02-01, Signed@05-30 12       | -     | wes       |
| W7  | S | A   | 5000.00  | 01-05 00 | Won@02-20                          | -     | Acme;     |
|     |   |     |          |          |                                    |       | carol tia |
| W8  | S | R   | 1500.00  | 05-15 00 | Proposal@05-24, Won@06-03 12       | -     | ola       |
| L1  | S | A   | 500.00   | 03-08 00 | Lost@03-17 12                      | 04-30 | rosa      |
| L2  | S | R   | 750.00   | 02-01 00 | Qualified@02-15, Proposal@03-01,   | -     |           |
|     |   |     |          |          | Lost@05-20                         |       |           |
| L3  | P | R   | 300.00   | 03-09 00 | Trial@03-19, Dropped@04-18         | -     |           |
| L4  | S | M   | 900.00   | 04-10 00 | Qualified@04-21 12, Lost@06-05     | -     |           |
| L5  | P | A   | 0.00     | 02-15 00 | Dropped@03-01 00                   | -     |           |
| RO  | S | A   | 640.00   | 03-12 00 | Lost@03-22 12, Qualified@03-26     | 04-10 |           |
| O1  | S | A   | 100.10   | 03-01 00 | (New)                              | 03-31 | next step |
| O2  | S | M   | 100.10   | 04-02 00 | Qualified@04-14 12                 | 04-30 | sam       |
| O3  | S | R   | 100.10   | 04-03 00 | Qualified@04-13, Proposal@05-03,   | 05-31 | Acme;     |
|     |   |     |          |          | Negotiation@06-01 12               |       | next step |
| O4  | S | A   | EUR 2000 | 05-05 00 | Proposal@05-16 12,                 | 05-15 |           |
|     |   |     |          |          | Negotiation@06-10                  |       |           |
| O5  | S | M   | 3000.00  | 01-15 00 | Negotiation@02-10                  | -     |           |
| O6  | S | R   | 0.00     | 05-28 00 | (New)                              | 06-30 |           |
| O7  | P | M   | 100.10   | 02-01 00 | (Discovery)                        | 02-28 |           |
| O8  | P | A   | 2222.22  | 03-20 00 | Trial@04-01                        | 04-15 | Initech;  |
|     |   |     |          |          |                                    |       | next step |
| O9  | P | R   | EUR 500  | 04-10 00 | (Discovery)                        | -     |           |
| O10 | S | A   | 1234.56  | 06-05 00 | (New)                              | 05-01 |           |
| MV  | P | M   | 400.00   | 03-25 00 | S Qualified@04-05, Proposal@04-25  | -     |           |
| X1  | S | A   | 99999.00 | 03-04 00 | Won@04-02; ARCHIVED                | -     | quinn     |
| X2  | S | R   | 777.00   | 03-06 00 | (New); ARCHIVED                    | 04-01 |           |

W3 is created at 03-03 00:00:00.8 and a20 happens at 06-01 05:00:00.9: durations drop the
fractions of a second, which keeps two means exactly on a half-even tie (35.375 and 24.625).
W1 skips two stages, W3 moves back, W5 goes from New to Won, RO is lost and reopened, MV moves
from Partners to Sales; L5 and O6 have no amount (0.00).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from crm_api.core.ids import clock
from tests.api.factories import archive, default_pipeline
from tests.api.helpers import PROBLEM, assert_problem, error_fields
from tests.conftest import Actor

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
W = {"from": "2026-03-01", "to": "2026-05-31"}


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# -- the fixture ---------------------------------------------------------------------------------

PARTNER_STAGES = [
    {"name": "Discovery", "probability": 15},
    {"name": "Trial", "probability": 60},
    {"name": "Signed", "probability": 100, "kind": "won"},
    {"name": "Dropped", "probability": 0, "kind": "lost"},
]

COMPANIES: dict[str, tuple[str, dict[str, Any]]] = {
    "acme": ("A", {"name": "Acme", "domain": "acme.example", "industry": "Software",
                   "employee_count": 120, "annual_revenue": "5000000.00",
                   "annual_revenue_currency": "USD", "phone": "+14155550100",
                   "address": {"city": "Springfield"}, "lifecycle_stage": "customer"}),
    "globex": ("M", {"name": "Globex", "industry": "Retail"}),
    "initech": ("R", {"name": "Initech", "domain": "initech.example", "employee_count": 15,
                      "lifecycle_stage": "lead"}),
    "umbrella": ("R", {"name": "Umbrella", "domain": "umbrella.example", "industry": "Pharma",
                       "employee_count": 5000, "annual_revenue": "1.00",
                       "annual_revenue_currency": "USD", "phone": "+14155552671",
                       "address": {"city": "Raccoon City"}, "lifecycle_stage": "customer"}),
}  # fmt: skip

# key: (owner, lead source, created at, fields, lifecycle changes after creation)
Lifecycle = list[tuple[str, datetime]]
CONTACTS: dict[str, tuple[str, str | None, datetime, dict[str, Any], Lifecycle]] = {
    "carol": ("A", "referral", at(1, 5, 9),
              {"first_name": "Carol", "last_name": "Reed", "email": "carol@acme.example",
               "phone": "+14155550101", "title": "CFO", "company_id": "acme"},
              [("customer", at(1, 20, 9))]),
    "dave": ("M", "web", at(1, 6, 9),
             {"first_name": "Dave", "last_name": "Stone", "email": "dave@globex.example",
              "title": "VP Sales", "company_id": "globex", "lifecycle_stage": "customer"},
             [("churned", at(4, 10, 9))]),
    "erin": ("R", None, at(1, 7, 9), {"first_name": "Erin"},
             [("customer", at(2, 1, 9)), ("evangelist", at(2, 15, 9))]),
    "frank": ("A", "web", at(1, 8, 9), {"first_name": "Frank", "lifecycle_stage": "customer"},
              [("churned", at(2, 20, 9))]),
    "gina": ("M", "referral", at(1, 9, 9), {"first_name": "Gina", "last_name": "Park"},
             [("customer", at(2, 25, 9)), ("churned", at(5, 5, 9)), ("customer", at(5, 20, 9))]),
    "hank": ("R", "event", at(1, 10, 9),
             {"first_name": "Hank", "last_name": "Hill", "phone": "+14155550123",
              "lifecycle_stage": "customer"},
             [("churned", at(6, 2, 9))]),
    "jack": ("A", "web", at(1, 12, 9), {"first_name": "Jack"}, [("customer", at(3, 1))]),
    "bea": ("A", "event", at(2, 5, 9), {"first_name": "Bea", "last_name": "Ross"}, []),
    "xena": ("R", None, at(2, 10, 9), {"first_name": "Xena"}, [("customer", at(2, 27, 9))]),
    "vic": ("R", "web", at(2, 28, 23), {"first_name": "Vic"}, []),
    "kim": ("A", "web", at(3, 2, 9),
            {"first_name": "Kim", "last_name": "Lee", "email": "kim@x.example", "title": "CTO",
             "company_id": "acme"},
            [("customer", at(4, 1, 9))]),
    "leo": ("A", "web", at(3, 3, 10), {"first_name": "Leo", "email": "leo@x.example"},
            [("evangelist", at(4, 15, 9))]),
    "mia": ("M", "web", at(3, 10, 8), {"first_name": "Mia"}, [("customer", at(5, 15, 9))]),
    "ned": ("M", "referral", at(3, 15),
            {"first_name": "Ned", "last_name": "Ford", "company_id": "initech"},
            [("customer", at(5, 1, 9)), ("churned", at(5, 20, 9))]),
    "ola": ("R", "referral", at(4, 1, 12), {"first_name": "Ola"}, []),
    "pat": ("R", "event", at(4, 5),
            {"first_name": "Pat", "last_name": "Kerr", "email": "pat@x.example"},
            [("customer", at(6, 3, 9))]),
    "quinn": ("A", "event", at(4, 20), {"first_name": "Quinn", "phone": "+14155550199"}, []),
    "rosa": ("M", None, at(5, 1),
             {"first_name": "Rosa", "last_name": "Diaz", "phone": "(415) 555-0101"}, []),
    "sam": ("R", None, at(5, 10), {"first_name": "Sam", "email": "pat+news@x.example"},
            [("customer", at(5, 25, 9))]),
    "wes": ("M", "referral", at(5, 20, 12), {"first_name": "Wes"}, []),
    "yara": ("R", "event", at(5, 25), {"first_name": "Yara"}, [("customer", at(5, 28, 9))]),
    "tia": ("A", "web", at(5, 31, 23),
            {"first_name": "Tia", "last_name": "Moss", "lifecycle_stage": "customer"}, []),
    "zed": ("A", "web", at(3, 20),
            {"first_name": "Zed", "email": "zed@x.example", "phone": "+1 415 555 0199",
             "lifecycle_stage": "customer"}, []),
    "uma": ("M", "referral", at(6, 1), {"first_name": "Uma"}, []),
    "abe": ("R", None, at(6, 10, 9), {"email": "abe@y.example"}, []),
}  # fmt: skip

# key: (pipeline, owner, currency, amount, created at, expected close, fields, moves)
Moves = list[tuple[str, datetime]]
DEALS: dict[str, tuple[str, str, str, str, datetime, str | None, dict[str, Any], Moves]] = {
    "W1": ("sales", "A", "USD", "1000.02", at(2, 10), "2026-03-15", {"company_id": "acme"},
           [("Qualified", at(2, 20)), ("Won", at(3, 10))]),
    "W2": ("sales", "M", "USD", "2500.50", at(3, 2), "2026-03-31", {"company_id": "globex"},
           [("Qualified", at(3, 5)), ("Proposal", at(3, 12, 12)), ("Negotiation", at(3, 20)),
            ("Won", at(4, 1))]),
    "W3": ("sales", "R", "USD", "100.02", at(3, 3) + timedelta(milliseconds=800), None, {},
           [("Qualified", at(3, 10)), ("Proposal", at(3, 20)), ("Qualified", at(3, 25)),
            ("Proposal", at(4, 1)), ("Won", at(4, 15, 12))]),
    "W4": ("partners", "A", "USD", "100.03", at(3, 5), None, {},
           [("Trial", at(3, 15)), ("Signed", at(5, 4))]),
    "W5": ("sales", "M", "EUR", "800.00", at(4, 1), None, {}, [("Won", at(5, 11))]),
    "W6": ("partners", "R", "EUR", "1200.00", at(1, 20), None, {},
           [("Trial", at(2, 1)), ("Signed", at(5, 30, 12))]),
    "W7": ("sales", "A", "USD", "5000.00", at(1, 5), None, {"company_id": "acme"},
           [("Won", at(2, 20))]),
    "W8": ("sales", "R", "USD", "1500.00", at(5, 15), None, {},
           [("Proposal", at(5, 24)), ("Won", at(6, 3, 12))]),
    "L1": ("sales", "A", "USD", "500.00", at(3, 8), "2026-04-30", {}, [("Lost", at(3, 17, 12))]),
    "L2": ("sales", "R", "USD", "750.00", at(2, 1), None, {},
           [("Qualified", at(2, 15)), ("Proposal", at(3, 1)), ("Lost", at(5, 20))]),
    "L3": ("partners", "R", "USD", "300.00", at(3, 9), None, {},
           [("Trial", at(3, 19)), ("Dropped", at(4, 18))]),
    "L4": ("sales", "M", "USD", "900.00", at(4, 10), None, {},
           [("Qualified", at(4, 21, 12)), ("Lost", at(6, 5))]),
    "L5": ("partners", "A", "USD", "0.00", at(2, 15), None, {}, [("Dropped", at(3, 1))]),
    "RO": ("sales", "A", "USD", "640.00", at(3, 12), "2026-04-10", {},
           [("Lost", at(3, 22, 12)), ("Qualified", at(3, 26))]),
    "O1": ("sales", "A", "USD", "100.10", at(3, 1), "2026-03-31", {"next_step": "Call back"}, []),
    "O2": ("sales", "M", "USD", "100.10", at(4, 2), "2026-04-30", {},
           [("Qualified", at(4, 14, 12))]),
    "O3": ("sales", "R", "USD", "100.10", at(4, 3), "2026-05-31",
           {"company_id": "acme", "next_step": "Send contract"},
           [("Qualified", at(4, 13)), ("Proposal", at(5, 3)), ("Negotiation", at(6, 1, 12))]),
    "O4": ("sales", "A", "EUR", "2000.00", at(5, 5), "2026-05-15", {},
           [("Proposal", at(5, 16, 12)), ("Negotiation", at(6, 10))]),
    "O5": ("sales", "M", "USD", "3000.00", at(1, 15), None, {}, [("Negotiation", at(2, 10))]),
    "O6": ("sales", "R", "USD", "0.00", at(5, 28), "2026-06-30", {}, []),
    "O7": ("partners", "M", "USD", "100.10", at(2, 1), "2026-02-28", {}, []),
    "O8": ("partners", "A", "USD", "2222.22", at(3, 20), "2026-04-15",
           {"company_id": "initech", "next_step": "Trial review"}, [("Trial", at(4, 1))]),
    "O9": ("partners", "R", "EUR", "500.00", at(4, 10), None, {}, []),
    "O10": ("sales", "A", "USD", "1234.56", at(6, 5), "2026-05-01", {}, []),
    "MV": ("partners", "M", "USD", "400.00", at(3, 25), None, {},
           [("Qualified", at(4, 5)), ("Proposal", at(4, 25))]),
    "X1": ("sales", "A", "USD", "99999.00", at(3, 4), None, {}, [("Won", at(4, 2))]),
    "X2": ("sales", "R", "USD", "777.00", at(3, 6), "2026-04-01", {}, []),
}  # fmt: skip

DEAL_CONTACTS = {
    "W1": ["zed", "carol"], "W2": ["kim", "ned"], "W3": ["kim", "mia"], "W5": ["pat"],
    "W6": ["wes"], "W7": ["carol", "tia"], "W8": ["ola"], "L1": ["rosa"], "O2": ["sam"],
    "X1": ["quinn"],
}  # fmt: skip

# key: (type, direction, logged by, occurred at, links)
ACTIVITIES: dict[str, tuple[str, str | None, str, datetime, dict[str, Any]]] = {
    "a1": ("call", "outbound", "R", at(3, 1, 1), {"contact_ids": ["vic"]}),
    "a2": ("call", "outbound", "A", at(3, 2, 11), {"contact_ids": ["kim"]}),
    "a3": ("call", "inbound", "A", at(3, 3, 12), {"contact_ids": ["leo"]}),
    "a4": ("email", "outbound", "A", at(3, 4, 10), {"contact_ids": ["leo"]}),
    "a5": ("note", None, "R", at(3, 5, 10), {"deal_id": "W2"}),
    "a6": ("call", "outbound", "M", at(3, 10, 9), {"contact_ids": ["mia"]}),
    "a7": ("note", None, "M", at(3, 11, 10), {"contact_ids": ["mia"]}),
    "a8": ("meeting", None, "M", at(3, 17, 12), {"contact_ids": ["ned"]}),
    "a9": ("call", "outbound", "A", at(3, 20, 1), {"contact_ids": ["zed"], "company_id": "acme"}),
    "a10": ("call", "outbound", "R", at(3, 31, 12), {"contact_ids": ["ola"]}),
    "a11": ("email", "outbound", "R", at(4, 2, 12), {"contact_ids": ["ola"]}),
    "a12": ("email", "inbound", "R", at(4, 5, 6), {"contact_ids": ["pat"]}),
    "a13": ("email", "outbound", "R", at(4, 6, 6), {"contact_ids": ["pat"]}),
    "a14": ("meeting", None, "A", at(4, 20, 10), {"attendee_contact_ids": ["quinn"]}),
    "a15": ("note", None, "A", at(4, 22, 15), {"company_id": "acme"}),
    "a16": ("call", "outbound", "M", at(5, 4), {"contact_ids": ["rosa"]}),
    "a17": ("email", "outbound", "M", at(5, 21, 1, 30), {"contact_ids": ["wes"]}),
    "a18": ("call", "outbound", "R", at(5, 25, 7), {"contact_ids": ["yara"]}),
    "a19": ("meeting", None, "R", at(5, 31, 23, 30), {"company_id": "acme"}),
    "a20": ("call", "outbound", "A", at(6, 1, 5) + timedelta(milliseconds=900),
            {"contact_ids": ["tia"]}),
    "a21": ("call", "outbound", "M", at(6, 1, 1), {"contact_ids": ["uma"]}),
    "a22": ("note", None, "A", at(2, 27, 10), {"deal_id": "W1"}),
    "a23": ("meeting", None, "A", datetime(2027, 1, 1, 10, tzinfo=UTC), {"company_id": "acme"}),
    "a24": ("meeting", None, "M", datetime(2027, 1, 4, 9, tzinfo=UTC), {"company_id": "globex"}),
}  # fmt: skip


@dataclass
class World:
    """The ids of what the fixture made, by the keys of the tables above."""

    users: dict[str, str]
    pipelines: dict[str, str]
    stages: dict[str, str]
    companies: dict[str, str]
    contacts: dict[str, str]
    deals: dict[str, str]


async def send(
    actor: Actor, when: datetime, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One write at the pinned instant `when`."""
    with clock.pinned(when):
        response = await actor.client.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def build(admin: Actor, manager: Actor, rep: Actor) -> World:
    users = {"A": str(admin.id), "M": str(manager.id), "R": str(rep.id)}
    sales = await default_pipeline(admin.client)
    partners = await send(
        admin, at(1, 1), "POST", "/v1/pipelines", {"name": "Partners", "stages": PARTNER_STAGES}
    )
    pipelines = {"sales": sales["id"], "partners": partners["id"]}
    stages = {stage["name"]: stage["id"] for stage in [*sales["stages"], *partners["stages"]]}
    stage_pipeline = {stage["id"]: sales["id"] for stage in sales["stages"]}
    stage_pipeline.update({stage["id"]: partners["id"] for stage in partners["stages"]})

    companies = {}
    for key, (owner, fields) in COMPANIES.items():
        body = {**fields, "owner_id": users[owner]}
        companies[key] = (await send(admin, at(1, 2), "POST", "/v1/companies", body))["id"]

    contacts = {}
    for key, (owner, source, created, fields, lifecycle) in CONTACTS.items():
        body = {**fields, "owner_id": users[owner], "lead_source": source}
        if "company_id" in body:
            body["company_id"] = companies[body["company_id"]]
        contact = await send(admin, created, "POST", "/v1/contacts", body)
        contacts[key] = contact["id"]
        for stage, when in lifecycle:
            path = f"/v1/contacts/{contact['id']}"
            await send(admin, when, "PATCH", path, {"lifecycle_stage": stage})

    deals = {}
    for key, (pipeline, owner, currency, amount, created, close, fields, moves) in DEALS.items():
        body = {**fields, "name": key, "pipeline_id": pipelines[pipeline],
                "owner_id": users[owner], "currency": currency, "amount": amount,
                "expected_close_date": close}  # fmt: skip
        if "company_id" in body:
            body["company_id"] = companies[body["company_id"]]
        deal = await send(admin, created, "POST", "/v1/deals", body)
        deals[key] = deal["id"]
        for stage, when in moves:
            move = {"stage_id": stages[stage], "pipeline_id": stage_pipeline[stages[stage]]}
            if stage in ("Lost", "Dropped"):
                move["lost_reason"] = "Price"
            await send(admin, when, "POST", f"/v1/deals/{deal['id']}/move", move)

    for deal_key, contact_keys in DEAL_CONTACTS.items():
        for contact_key in contact_keys:
            path = f"/v1/deals/{deals[deal_key]}/contacts"
            await send(admin, NOW, "POST", path, {"contact_id": contacts[contact_key]})

    activities = {}
    for key, (kind, direction, logged_by, occurred, links) in ACTIVITIES.items():
        body = {"type": kind, "occurred_at": occurred.isoformat(),
                "logged_by": users[logged_by], "direction": direction}  # fmt: skip
        for field in ("contact_ids", "attendee_contact_ids"):
            body[field] = [contacts[contact] for contact in links.get(field, [])]
        if "company_id" in links:
            body["company_id"] = companies[links["company_id"]]
        if "deal_id" in links:
            body["deal_id"] = deals[links["deal_id"]]
        activities[key] = (await send(admin, NOW, "POST", "/v1/activities", body))["id"]

    with clock.pinned(NOW):
        await archive(admin, f"/v1/activities/{activities['a6']}")
        await archive(admin, f"/v1/contacts/{contacts['zed']}")
        await archive(admin, f"/v1/deals/{deals['X1']}")
        await archive(admin, f"/v1/deals/{deals['X2']}")
        await archive(admin, f"/v1/companies/{companies['umbrella']}")
    return World(users, pipelines, stages, companies, contacts, deals)


# -- helpers -------------------------------------------------------------------------------------


async def metric(client: httpx.AsyncClient, name: str, **params: str) -> dict[str, Any]:
    """GET /v1/metrics/<name> at NOW."""
    with clock.pinned(NOW):
        response = await client.get(f"/v1/metrics/{name}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_key(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups in the documented order: by key, a null key last."""
    return sorted(groups, key=lambda group: (group["key"] is None, group["key"] or ""))


def by_week(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Activity rows in the documented order: by week, then user id."""
    return sorted(rows, key=lambda row: (row["week"], row["user_id"]))


def stage(
    w: World, name: str, probability: int, deals: int, amount: str, weighted: str, excluded: int
) -> dict[str, Any]:
    return {"stage_id": w.stages[name], "name": name, "probability": probability,
            "deals": deals, "amount": amount, "weighted_amount": weighted,
            "excluded_deals": excluded}  # fmt: skip


def month(
    name: str, won: int, won_amount: str, open_: int, commit: str, best_case: str
) -> dict[str, Any]:
    return {"month": name, "won_deals": won, "won_amount": won_amount, "open_deals": open_,
            "commit": commit, "best_case": best_case}  # fmt: skip


def funnel_stage(
    w: World, name: str, kind: str, reached: int, conversion: float | None,
    mean: float | None, median: float | None, visits: int, now: int, stalled: int,
) -> dict[str, Any]:  # fmt: skip
    return {"stage_id": w.stages[name], "name": name, "kind": kind, "reached": reached,
            "conversion_to_next": conversion, "mean_days": mean, "median_days": median,
            "visits": visits, "deals_now": now, "stalled": stalled}  # fmt: skip


def week(
    w: World, iso: str, monday: str, user: str, call: int = 0, email: int = 0,
    meeting: int = 0, note: int = 0, *, total: int,
) -> dict[str, Any]:  # fmt: skip
    return {"week": iso, "week_start": monday, "user_id": w.users[user], "call": call,
            "email": email, "meeting": meeting, "note": note, "total": total}  # fmt: skip


def fields(**filled: tuple[int, float | None]) -> list[dict[str, Any]]:
    return [{"field": name, "filled": n, "percent": pct} for name, (n, pct) in filled.items()]


# -- the metrics on the fixture ------------------------------------------------------------------


async def test_pipeline_and_forecast(
    admin: Actor, manager: Actor, rep: Actor, viewer: Actor
) -> None:
    w = await build(admin, manager, rep)
    client = viewer.client

    # Open deals now, USD. Sales: New O1 100.10, O6 0.00, O10 1234.56 (X2 archived);
    # Qualified RO 640.00, O2 100.10; Proposal MV 400.00 (moved in from Partners);
    # Negotiation O3 100.10, O5 3000.00, O4 EUR excluded. Partners: Discovery O7 100.10,
    # O9 EUR excluded; Trial O8 2222.22. Weighted sums are rounded once, at the end.
    assert await metric(client, "pipeline", target="5000.00") == {
        "currency": "USD",
        "deals": 10,  # 8 + 2
        "amount": "7897.18",  # 5574.86 + 2322.32
        "weighted_amount": "4191.91",  # 2843.566 + 1348.347 = 4191.913 (rounded stages: .92)
        "excluded_deals": 2,  # O4, O9
        "target": "5000.00",
        "coverage": 1.58,  # 7897.18 / 5000 = 1.579436
        "pipelines": [
            {
                "pipeline_id": w.pipelines["sales"],
                "name": "Sales",
                "deals": 8,
                "amount": "5574.86",  # 1334.66 + 740.10 + 400.00 + 3100.10
                "weighted_amount": "2843.57",  # 133.466 + 185.025 + 200 + 2325.075 = 2843.566
                "excluded_deals": 1,
                "stages": [
                    # 100.10 + 0.00 + 1234.56 = 1334.66; x 10% = 133.466
                    stage(w, "New", 10, 3, "1334.66", "133.47", 0),
                    # 640.00 + 100.10 = 740.10; x 25% = 185.025 -> half-even 185.02
                    stage(w, "Qualified", 25, 2, "740.10", "185.02", 0),
                    stage(w, "Proposal", 50, 1, "400.00", "200.00", 0),  # 400 x 50%
                    # 100.10 + 3000.00 = 3100.10; x 75% = 2325.075 -> 2325.08
                    stage(w, "Negotiation", 75, 2, "3100.10", "2325.08", 1),
                ],
            },
            {
                "pipeline_id": w.pipelines["partners"],
                "name": "Partners",
                "deals": 2,
                "amount": "2322.32",  # 100.10 + 2222.22
                "weighted_amount": "1348.35",  # 15.015 + 1333.332 = 1348.347
                "excluded_deals": 1,
                "stages": [
                    stage(w, "Discovery", 15, 1, "100.10", "15.02", 1),  # 15.015 -> 15.02
                    stage(w, "Trial", 60, 1, "2222.22", "1333.33", 0),  # 1333.332
                ],
            },
        ],
    }

    # Owner A's open deals: O1 100.10 and O10 1234.56 (New), RO 640.00 (Qualified),
    # O4 EUR (Negotiation, excluded), O8 2222.22 (Trial).
    assert await metric(client, "pipeline", owner_id=w.users["A"]) == {
        "currency": "USD",
        "deals": 4,
        "amount": "4196.88",  # 1974.66 + 2222.22
        "weighted_amount": "1626.80",  # 133.466 + 160 + 1333.332 = 1626.798
        "excluded_deals": 1,
        "target": None,
        "coverage": None,
        "pipelines": [
            {
                "pipeline_id": w.pipelines["sales"],
                "name": "Sales",
                "deals": 3,
                "amount": "1974.66",  # 1334.66 + 640.00
                "weighted_amount": "293.47",  # 133.466 + 160.00 = 293.466
                "excluded_deals": 1,
                "stages": [
                    stage(w, "New", 10, 2, "1334.66", "133.47", 0),  # 133.466
                    stage(w, "Qualified", 25, 1, "640.00", "160.00", 0),
                    stage(w, "Proposal", 50, 0, "0.00", "0.00", 0),
                    stage(w, "Negotiation", 75, 0, "0.00", "0.00", 1),
                ],
            },
            {
                "pipeline_id": w.pipelines["partners"],
                "name": "Partners",
                "deals": 1,
                "amount": "2222.22",
                "weighted_amount": "1333.33",
                "excluded_deals": 0,
                "stages": [
                    stage(w, "Discovery", 15, 0, "0.00", "0.00", 0),
                    stage(w, "Trial", 60, 1, "2222.22", "1333.33", 0),
                ],
            },
        ],
    }

    # Won in W, USD, by month of closed_at: 03 W1 1000.02; 04 W2 2500.50 + W3 100.02;
    # 05 W4 100.03 (W5, W6 EUR: excluded; W7 closed 02-20, W8 06-03, X1 archived).
    # Open with expected close in W: 03 O1 100.10 @10%; 04 RO 640.00 @25%, O2 100.10 @25%,
    # O8 2222.22 @60%; 05 O10 1234.56 @10%, O3 100.10 @75% (05-31 included); O4 EUR excluded;
    # O6 06-30 and O7 02-28 outside; X2 archived.
    assert await metric(client, "forecast", **W) == {
        **W,
        "currency": "USD",
        "excluded_deals": 3,  # W5, W6 won; O4 open
        "undated_open_deals": 3,  # O5, O9 (EUR counts), MV; X2 archived
        "totals": {
            "won_deals": 4,
            "won_amount": "3700.57",  # 1000.02 + 2600.52 + 100.03
            "open_deals": 6,
            "commit": "1726.90",  # 10.01 + 1518.357 + 198.531 = 1726.898
            "best_case": "4397.08",  # 100.10 + 2962.32 + 1334.66
        },
        "months": [
            month("2026-03", 1, "1000.02", 1, "10.01", "100.10"),  # 100.10 x 10%
            # commit 640 x .25 + 100.10 x .25 + 2222.22 x .6 = 160 + 25.025 + 1333.332
            # = 1518.357; best 640.00 + 100.10 + 2222.22 = 2962.32
            month("2026-04", 2, "2600.52", 3, "1518.36", "2962.32"),
            # commit 1234.56 x .1 + 100.10 x .75 = 123.456 + 75.075 = 198.531
            month("2026-05", 1, "100.03", 2, "198.53", "1334.66"),
        ],
    }

    # Sales only, window [03-15, 05-11): won W2 (04-01), W3 (04-15); W5 closed 05-11 00:00 is
    # the end, outside. Open: O1 03-31 (03), RO 04-10 and O2 04-30 (04), O10 05-01 (05); O3
    # (05-31) and O4 (05-15) are after `to`. Undated in Sales: O5, MV.
    part = {"from": "2026-03-15", "to": "2026-05-10"}
    assert await metric(client, "forecast", **part, pipeline_id=w.pipelines["sales"]) == {
        "from": "2026-03-15",
        "to": "2026-05-10",
        "currency": "USD",
        "excluded_deals": 0,
        "undated_open_deals": 2,
        "totals": {
            "won_deals": 2,
            "won_amount": "2600.52",
            "open_deals": 4,
            "commit": "318.49",  # 10.01 + 185.025 + 123.456 = 318.491
            "best_case": "2074.76",  # 100.10 + 740.10 + 1234.56
        },
        "months": [
            month("2026-03", 0, "0.00", 1, "10.01", "100.10"),
            month("2026-04", 2, "2600.52", 2, "185.02", "740.10"),  # 160 + 25.025 = 185.025
            month("2026-05", 0, "0.00", 1, "123.46", "1234.56"),  # 123.456
        ],
    }


async def test_closed_deal_metrics(admin: Actor, manager: Actor, rep: Actor, viewer: Actor) -> None:
    w = await build(admin, manager, rep)
    client = viewer.client
    user, pipe = w.users, w.pipelines

    # Closed in W: won W1 (03-10, A, Sales), W2 (04-01, M, Sales), W3 (04-15, R, Sales),
    # W4 (05-04, A, Partners), W5 (05-11, M, Sales), W6 (05-30, R, Partners); lost L5
    # (03-01 00:00, A, Partners), L1 (03-17, A, Sales), L3 (04-18, R, Partners), L2 (05-20,
    # R, Sales). Not: W7 (02-20), W8 (06-03), L4 (06-05), RO (reopened), X1 (archived).
    overall = {"won": 6, "lost": 4, "win_rate": 60.0}  # 6 / (6 + 4)
    assert await metric(client, "win-rate", **W) == {
        **W, **overall, "group_by": None, "groups": []
    }  # fmt: skip
    assert await metric(client, "win-rate", **W, group_by="owner") == {
        **W, **overall, "group_by": "owner",
        "groups": by_key([
            {"key": user["A"], "won": 2, "lost": 2, "win_rate": 50.0},  # W1, W4 / L1, L5
            {"key": user["M"], "won": 2, "lost": 0, "win_rate": 100.0},  # W2, W5
            {"key": user["R"], "won": 2, "lost": 2, "win_rate": 50.0},  # W3, W6 / L2, L3
        ]),
    }  # fmt: skip
    assert await metric(client, "win-rate", **W, group_by="pipeline") == {
        **W, **overall, "group_by": "pipeline",
        "groups": by_key([
            # W1, W2, W3, W5 / L1, L2: 4 / 6 = 66.666...
            {"key": pipe["sales"], "won": 4, "lost": 2, "win_rate": 66.67},
            {"key": pipe["partners"], "won": 2, "lost": 2, "win_rate": 50.0},  # W4, W6 / L3, L5
        ]),
    }  # fmt: skip
    assert await metric(client, "win-rate", **W, group_by="month") == {
        **W, **overall, "group_by": "month",
        "groups": [
            {"key": "2026-03", "won": 1, "lost": 2, "win_rate": 33.33},  # W1 / L5, L1: 1/3
            {"key": "2026-04", "won": 2, "lost": 1, "win_rate": 66.67},  # W2, W3 / L3: 2/3
            {"key": "2026-05", "won": 3, "lost": 1, "win_rate": 75.0},  # W4, W5, W6 / L2
        ],
    }  # fmt: skip
    assert await metric(client, "win-rate", **W, pipeline_id=pipe["partners"]) == {
        **W, "won": 2, "lost": 2, "win_rate": 50.0, "group_by": None, "groups": []
    }  # fmt: skip
    # The default window at NOW: 2026-03-18 (to - 89 days) .. 2026-06-15. Won: W2, W3, W4,
    # W5, W6, W8 (06-03); lost: L3, L2, L4 (06-05); L1 (03-17 12:00) and W1 are before it.
    assert await metric(client, "win-rate") == {
        "from": "2026-03-18", "to": "2026-06-15", "won": 6, "lost": 3,
        "win_rate": 66.67,  # 6 / 9 = 66.666...
        "group_by": None, "groups": [],
    }  # fmt: skip

    # Won in W in USD: W1 1000.02, W2 2500.50, W3 100.02, W4 100.03; W5, W6 are EUR.
    size = {
        "currency": "USD",
        "excluded_deals": 2,  # W5, W6
        "deals": 4,
        "total": "3700.57",
        "mean": "925.14",  # 3700.57 / 4 = 925.1425
        # sorted 100.02, 100.03, 1000.02, 2500.50; h = .5 x 3 = 1.5:
        # 100.03 + (1000.02 - 100.03) x .5 = 550.025 -> half-even 550.02
        "median": "550.02",
    }
    assert await metric(client, "deal-size", **W) == {
        **W, **size, "group_by": None, "groups": []
    }  # fmt: skip
    assert await metric(client, "deal-size", **W, group_by="owner") == {
        **W, **size, "group_by": "owner",
        "groups": by_key([
            # W1 1000.02, W4 100.03: total 1100.05, mean = median = 550.025 -> 550.02
            {"key": user["A"], "deals": 2, "total": "1100.05", "mean": "550.02",
             "median": "550.02"},
            {"key": user["M"], "deals": 1, "total": "2500.50", "mean": "2500.50",
             "median": "2500.50"},  # W2 (W5 is EUR)
            {"key": user["R"], "deals": 1, "total": "100.02", "mean": "100.02",
             "median": "100.02"},  # W3 (W6 is EUR)
        ]),
    }  # fmt: skip
    assert await metric(client, "deal-size", **W, group_by="pipeline") == {
        **W, **size, "group_by": "pipeline",
        "groups": by_key([
            # W1 1000.02, W2 2500.50, W3 100.02: 3600.54 / 3 = 1200.18; median 1000.02
            {"key": pipe["sales"], "deals": 3, "total": "3600.54", "mean": "1200.18",
             "median": "1000.02"},
            {"key": pipe["partners"], "deals": 1, "total": "100.03", "mean": "100.03",
             "median": "100.03"},  # W4
        ]),
    }  # fmt: skip
    assert await metric(client, "deal-size", **W, group_by="month") == {
        **W, **size, "group_by": "month",
        "groups": [
            {"key": "2026-03", "deals": 1, "total": "1000.02", "mean": "1000.02",
             "median": "1000.02"},  # W1
            # W2 2500.50 + W3 100.02 = 2600.52; mean = median = 1300.26
            {"key": "2026-04", "deals": 2, "total": "2600.52", "mean": "1300.26",
             "median": "1300.26"},
            {"key": "2026-05", "deals": 1, "total": "100.03", "mean": "100.03",
             "median": "100.03"},  # W4
        ],
    }  # fmt: skip
    # In EUR: W5 800.00, W6 1200.00; the four USD deals are excluded.
    assert await metric(client, "deal-size", **W, currency="EUR") == {
        **W, "currency": "EUR", "excluded_deals": 4, "deals": 2, "total": "2000.00",
        "mean": "1000.00", "median": "1000.00",  # 2000 / 2; (800 + 1200) / 2
        "group_by": None, "groups": [],
    }  # fmt: skip

    # Days from created_at to closed_at of the deals won in W (any currency):
    # W1 02-10 -> 03-10 = 28; W2 03-02 -> 04-01 = 30; W3 03-03 00:00:00(.8 dropped) ->
    # 04-15 12:00 = 43.5; W4 03-05 -> 05-04 = 60; W5 04-01 -> 05-11 = 40;
    # W6 01-20 -> 05-30 12:00 = 130.5.
    cycle = {
        "deals": 6,
        "mean_days": 55.33,  # 332 / 6 = 55.333...
        # sorted 28, 30, 40, 43.5, 60, 130.5; h = .5 x 5 = 2.5: 40 + 3.5 x .5 = 41.75
        "median_days": 41.75,
        "p90_days": 95.25,  # h = .9 x 5 = 4.5: 60 + 70.5 x .5 = 95.25
    }
    assert await metric(client, "sales-cycle", **W) == {
        **W, **cycle, "group_by": None, "groups": []
    }  # fmt: skip
    assert await metric(client, "sales-cycle", **W, group_by="owner") == {
        **W, **cycle, "group_by": "owner",
        "groups": by_key([
            # 28, 60: mean = median 44; p90 h = .9: 28 + 32 x .9 = 56.8
            {"key": user["A"], "deals": 2, "mean_days": 44.0, "median_days": 44.0,
             "p90_days": 56.8},
            # 30, 40: p90 30 + 10 x .9 = 39
            {"key": user["M"], "deals": 2, "mean_days": 35.0, "median_days": 35.0,
             "p90_days": 39.0},
            # 43.5, 130.5: mean 87; p90 43.5 + 87 x .9 = 121.8
            {"key": user["R"], "deals": 2, "mean_days": 87.0, "median_days": 87.0,
             "p90_days": 121.8},
        ]),
    }  # fmt: skip
    assert await metric(client, "sales-cycle", **W, group_by="pipeline") == {
        **W, **cycle, "group_by": "pipeline",
        "groups": by_key([
            # 28, 30, 40, 43.5 (W3's .8 s dropped): mean 141.5 / 4 = 35.375 -> half-even
            # 35.38 (with the .8 s kept it would be below the tie: 35.37); median h = 1.5:
            # 30 + 10 x .5 = 35; p90 h = 2.7: 40 + 3.5 x .7 = 42.45
            {"key": pipe["sales"], "deals": 4, "mean_days": 35.38, "median_days": 35.0,
             "p90_days": 42.45},
            # 60, 130.5: mean 95.25; p90 60 + 70.5 x .9 = 123.45
            {"key": pipe["partners"], "deals": 2, "mean_days": 95.25, "median_days": 95.25,
             "p90_days": 123.45},
        ]),
    }  # fmt: skip
    assert await metric(client, "sales-cycle", **W, group_by="month") == {
        **W, **cycle, "group_by": "month",
        "groups": [
            {"key": "2026-03", "deals": 1, "mean_days": 28.0, "median_days": 28.0,
             "p90_days": 28.0},  # W1
            # W2 30, W3 43.5: mean 36.75; p90 30 + 13.5 x .9 = 42.15
            {"key": "2026-04", "deals": 2, "mean_days": 36.75, "median_days": 36.75,
             "p90_days": 42.15},
            # W5 40, W4 60, W6 130.5: mean 230.5 / 3 = 76.833...; median 60;
            # p90 h = 1.8: 60 + 70.5 x .8 = 116.4
            {"key": "2026-05", "deals": 3, "mean_days": 76.83, "median_days": 60.0,
             "p90_days": 116.4},
        ],
    }  # fmt: skip


async def test_stage_funnel(admin: Actor, manager: Actor, rep: Actor, viewer: Actor) -> None:
    w = await build(admin, manager, rep)
    client = viewer.client

    # Cohort: created in W, now in Sales, live: W2, W3, W5, W8, L1, L4, RO, O1, O2, O3, O4, O6,
    # MV (13; not W1, L2, W7, O5 created before, O10 after, X1/X2 archived).
    # Furthest non-lost stage entered: New L1, O1, O6; Qualified RO, L4, O2; Proposal MV;
    # Negotiation O3, O4; Won W2, W3, W5 (New -> Won), W8 (New -> Proposal -> Won).
    # reached: New 13, Qualified 10, Proposal 7, Negotiation 6, Won 4.
    # Finished visits, in days:
    #   New: W2 3, W3 7, W8 9, L1 9.5, O3 10, RO 10.5, L4 11.5, O4 11.5, O2 12.5, W5 40 (n 10,
    #     sum 124.5): mean 12.45; median h = 4.5: 10 + .5 x .5 = 10.25
    #   Qualified: W3 7, W2 7.5, W3 10, O3 20, MV 20, L4 44.5 (n 6, sum 109): mean 18.17;
    #     median h = 2.5: 10 + 10 x .5 = 15
    #   Proposal: W3 5, W2 7.5, W8 10.5, W3 14.5, O4 24.5, O3 29.5 (n 6, sum 91.5): mean
    #     15.25; median 10.5 + 4 x .5 = 12.5
    #   Negotiation: W2 12. Won: none finished.
    # Now: New O1, O6; Qualified RO, O2; Proposal MV; Negotiation O3, O4; Won W2, W3, W5, W8;
    # lost L1, L4. Stalled (stage entered before NOW - 14 d = 06-01 12:00): O1 (03-01), O6
    # (05-28), RO (03-26), O2 (04-14), MV (04-25); not O3 (06-01 12:00 exactly), O4 (06-10).
    funnel: dict[str, Any] = {
        **W,
        "pipeline_id": w.pipelines["sales"],
        "stall_days": 14,
        "deals": 13,
        "lost": 2,
        "stalled": 5,
        "stages": [
            funnel_stage(w, "New", "open", 13, 76.92, 12.45, 10.25, 10, 2, 2),  # 10 / 13
            funnel_stage(w, "Qualified", "open", 10, 70.0, 18.17, 15.0, 6, 2, 2),  # 7 / 10
            funnel_stage(w, "Proposal", "open", 7, 85.71, 15.25, 12.5, 6, 1, 1),  # 6 / 7
            funnel_stage(w, "Negotiation", "open", 6, 66.67, 12.0, 12.0, 1, 2, 0),  # 4 / 6
            funnel_stage(w, "Won", "won", 4, None, None, None, 0, 4, 0),
        ],
    }
    assert await metric(client, "stage-funnel", **W) == funnel

    # stall_days 30 (before 05-16 12:00): O1, RO, O2, MV; no longer O6 (05-28).
    stages = funnel["stages"]
    assert await metric(client, "stage-funnel", **W, stall_days="30") == {
        **funnel,
        "stall_days": 30,
        "stalled": 4,
        "stages": [{**stages[0], "stalled": 1}, *stages[1:]],
    }

    # Owner M's cohort: W2, W5, L4, O2, MV. Furthest: Won W2, W5; Proposal MV; Qualified L4,
    # O2. Visits: New W2 3, L4 11.5, O2 12.5, W5 40 (mean 67 / 4 = 16.75; median h = 1.5:
    # 11.5 + 1 x .5 = 12); Qualified W2 7.5, MV 20, L4 44.5 (mean 72 / 3 = 24, median 20);
    # Proposal W2 7.5; Negotiation W2 12. Stalled: O2, MV.
    assert await metric(client, "stage-funnel", **W, owner_id=w.users["M"]) == {
        **W,
        "pipeline_id": w.pipelines["sales"],
        "stall_days": 14,
        "deals": 5,
        "lost": 1,  # L4
        "stalled": 2,
        "stages": [
            funnel_stage(w, "New", "open", 5, 100.0, 16.75, 12.0, 4, 0, 0),  # 5 / 5
            funnel_stage(w, "Qualified", "open", 5, 60.0, 24.0, 20.0, 3, 1, 1),  # 3 / 5
            funnel_stage(w, "Proposal", "open", 3, 66.67, 7.5, 7.5, 1, 1, 1),  # 2 / 3
            funnel_stage(w, "Negotiation", "open", 2, 100.0, 12.0, 12.0, 1, 0, 0),  # 2 / 2
            funnel_stage(w, "Won", "won", 2, None, None, None, 0, 2, 0),
        ],
    }

    # Partners cohort: W4, L3, O8, O9 (W6, L5, O7 created before W; MV is now in Sales).
    # Furthest: Signed W4; Trial L3 (then Dropped), O8; Discovery O9.
    # Visits: Discovery W4 10, L3 10, O8 12 (mean 32 / 3 = 10.67, median 10);
    # Trial W4 50 (03-15 -> 05-04), L3 30 (mean = median 40).
    assert await metric(client, "stage-funnel", **W, pipeline_id=w.pipelines["partners"]) == {
        **W,
        "pipeline_id": w.pipelines["partners"],
        "stall_days": 14,
        "deals": 4,
        "lost": 1,  # L3
        "stalled": 2,  # O9 (04-10), O8 (04-01)
        "stages": [
            funnel_stage(w, "Discovery", "open", 4, 75.0, 10.67, 10.0, 3, 1, 1),  # 3 / 4
            funnel_stage(w, "Trial", "open", 3, 33.33, 40.0, 40.0, 2, 1, 1),  # 1 / 3
            funnel_stage(w, "Signed", "won", 1, None, None, None, 0, 1, 0),
        ],
    }


async def test_contact_metrics(admin: Actor, manager: Actor, rep: Actor, viewer: Actor) -> None:
    w = await build(admin, manager, rep)
    client = viewer.client
    user = w.users

    # Created in W (zed archived): kim, leo, mia, ned, ola, pat, quinn, rosa, sam, wes, yara,
    # tia (12). Hours to first outreach: ola 0 (before creation), kim 2, tia 6, yara 7,
    # quinn 10, wes 13.5, leo 24, pat 30, ned 60, rosa 72; never: mia, sam.
    response = {
        "contacts": 12,
        "contacted": 10,
        "never_contacted": 2,
        "mean_hours": 22.45,  # 224.5 / 10
        "median_hours": 11.75,  # h = .5 x 9 = 4.5: 10 + (13.5 - 10) x .5
        "p90_hours": 61.2,  # h = .9 x 9 = 8.1: 60 + 12 x .1
    }
    assert await metric(client, "lead-response", **W) == {
        **W, **response, "group_by": None, "groups": []
    }  # fmt: skip
    assert await metric(client, "lead-response", **W, group_by="owner") == {
        **W, **response, "group_by": "owner",
        "groups": by_key([
            # kim 2, tia 6, quinn 10, leo 24: mean 42 / 4 = 10.5; median h = 1.5: 6 + 4 x .5
            # = 8; p90 h = 2.7: 10 + 14 x .7 = 19.8
            {"key": user["A"], "contacts": 4, "contacted": 4, "never_contacted": 0,
             "mean_hours": 10.5, "median_hours": 8.0, "p90_hours": 19.8},
            # wes 13.5, ned 60, rosa 72 (mia never): mean 145.5 / 3 = 48.5; p90 h = 1.8:
            # 60 + 12 x .8 = 69.6
            {"key": user["M"], "contacts": 4, "contacted": 3, "never_contacted": 1,
             "mean_hours": 48.5, "median_hours": 60.0, "p90_hours": 69.6},
            # ola 0, yara 7, pat 30 (sam never): mean 37 / 3 = 12.333; p90 7 + 23 x .8 = 25.4
            {"key": user["R"], "contacts": 4, "contacted": 3, "never_contacted": 1,
             "mean_hours": 12.33, "median_hours": 7.0, "p90_hours": 25.4},
        ]),
    }  # fmt: skip
    assert await metric(client, "lead-response", **W, group_by="lead_source") == {
        **W, **response, "group_by": "lead_source",
        "groups": [
            # yara 7, quinn 10, pat 30: mean 47 / 3 = 15.667; p90 10 + 20 x .8 = 26
            {"key": "event", "contacts": 3, "contacted": 3, "never_contacted": 0,
             "mean_hours": 15.67, "median_hours": 10.0, "p90_hours": 26.0},
            # ola 0, wes 13.5, ned 60: mean 73.5 / 3 = 24.5; p90 13.5 + 46.5 x .8 = 50.7
            {"key": "referral", "contacts": 3, "contacted": 3, "never_contacted": 0,
             "mean_hours": 24.5, "median_hours": 13.5, "p90_hours": 50.7},
            # kim 2, tia 6, leo 24 (mia never): mean 32 / 3 = 10.667; p90 6 + 18 x .8 = 20.4
            {"key": "web", "contacts": 4, "contacted": 3, "never_contacted": 1,
             "mean_hours": 10.67, "median_hours": 6.0, "p90_hours": 20.4},
            # rosa 72 (sam never)
            {"key": None, "contacts": 2, "contacted": 1, "never_contacted": 1,
             "mean_hours": 72.0, "median_hours": 72.0, "p90_hours": 72.0},
        ],
    }  # fmt: skip
    assert await metric(client, "lead-response", **W, group_by="month") == {
        **W, **response, "group_by": "month",
        "groups": [
            # kim 2, leo 24, ned 60 (mia never): mean 86 / 3 = 28.667; p90 24 + 36 x .8 = 52.8
            {"key": "2026-03", "contacts": 4, "contacted": 3, "never_contacted": 1,
             "mean_hours": 28.67, "median_hours": 24.0, "p90_hours": 52.8},
            # ola 0, quinn 10, pat 30: mean 40 / 3 = 13.333; p90 10 + 20 x .8 = 26
            {"key": "2026-04", "contacts": 3, "contacted": 3, "never_contacted": 0,
             "mean_hours": 13.33, "median_hours": 10.0, "p90_hours": 26.0},
            # tia 6 (05-31 23:00 -> 06-01 05:00:00.9, the .9 s dropped), yara 7, wes 13.5,
            # rosa 72 (sam never): mean 98.5 / 4 = 24.625 -> half-even 24.62 (with the .9 s
            # kept it would be above the tie: 24.63); median h = 1.5: 7 + 6.5 x .5 = 10.25;
            # p90 h = 2.7: 13.5 + 58.5 x .7 = 54.45
            {"key": "2026-05", "contacts": 5, "contacted": 4, "never_contacted": 1,
             "mean_hours": 24.62, "median_hours": 10.25, "p90_hours": 54.45},
        ],
    }  # fmt: skip
    # web: kim 2, tia 6, leo 24; mia never.
    assert await metric(client, "lead-response", **W, lead_source="web") == {
        **W, "contacts": 4, "contacted": 3, "never_contacted": 1, "mean_hours": 10.67,
        "median_hours": 6.0, "p90_hours": 20.4, "group_by": None, "groups": [],
    }  # fmt: skip

    # Converted = ever entered customer: kim, mia, tia (created a customer), ned (then
    # churned), pat (06-03, after W), yara, sam; not leo (evangelist only), ola, wes, quinn,
    # rosa. Won deals with a cohort contact: W2 (kim web, ned referral) 2500.50, W3 (kim, mia:
    # once for web) 100.02, W7 (tia; won 02-20) 5000.00, W8 (ola) 1500.00; EUR W5 (pat), W6
    # (wes) excluded; W1 only via zed (archived) and carol (created before W); X1 archived.
    assert await metric(client, "conversion-by-source", **W) == {
        **W,
        "currency": "USD",
        "excluded_deals": 2,  # W5 (event), W6 (referral)
        "totals": {
            "contacts": 12,
            "converted": 7,  # web 3 + referral 1 + event 2 + none 1
            "conversion": 58.33,  # 7 / 12 = 58.333...
            "won_deals": 5,  # W2 counts for web and referral
            "won_amount": "11601.02",  # 4000.50 + 7600.52
        },
        "sources": [
            # pat, quinn, yara; converted pat, yara: 2 / 3
            {"lead_source": "event", "contacts": 3, "converted": 2, "conversion": 66.67,
             "won_deals": 0, "won_amount": "0.00", "excluded_deals": 1},
            # ned, ola, wes; converted ned: 1 / 3; W2 2500.50 + W8 1500.00
            {"lead_source": "referral", "contacts": 3, "converted": 1, "conversion": 33.33,
             "won_deals": 2, "won_amount": "4000.50", "excluded_deals": 1},
            # kim, leo, mia, tia; converted kim, mia, tia: 3 / 4; 2500.50 + 100.02 + 5000.00
            {"lead_source": "web", "contacts": 4, "converted": 3, "conversion": 75.0,
             "won_deals": 3, "won_amount": "7600.52", "excluded_deals": 0},
            # rosa, sam; converted sam: 1 / 2
            {"lead_source": None, "contacts": 2, "converted": 1, "conversion": 50.0,
             "won_deals": 0, "won_amount": "0.00", "excluded_deals": 0},
        ],
    }  # fmt: skip
    # Owner R's cohort: ola (referral), pat, yara (event), sam (none).
    assert await metric(client, "conversion-by-source", **W, owner_id=user["R"]) == {
        **W,
        "currency": "USD",
        "excluded_deals": 1,  # W5 via pat
        "totals": {"contacts": 4, "converted": 3, "conversion": 75.0, "won_deals": 1,
                   "won_amount": "1500.00"},
        "sources": [
            {"lead_source": "event", "contacts": 2, "converted": 2, "conversion": 100.0,
             "won_deals": 0, "won_amount": "0.00", "excluded_deals": 1},
            {"lead_source": "referral", "contacts": 1, "converted": 0, "conversion": 0.0,
             "won_deals": 1, "won_amount": "1500.00", "excluded_deals": 0},  # W8
            {"lead_source": None, "contacts": 1, "converted": 1, "conversion": 100.0,
             "won_deals": 0, "won_amount": "0.00", "excluded_deals": 0},
        ],
    }  # fmt: skip

    # Last lifecycle change before 03-01 00:00 into customer/evangelist: carol, dave, erin
    # (evangelist), gina, hank, xena = 6; not frank (churned 02-20), jack (customer at 03-01
    # 00:00, not before), bea, vic (leads). Churned in W: dave (04-10), gina (05-05); hank
    # churns 06-02, after W.
    assert await metric(client, "retention", **W) == {
        **W, "customers_at_start": 6, "churned": 2, "retained": 4,
        "retention": 66.67, "churn": 33.33,  # 4 / 6, 2 / 6
    }  # fmt: skip
    # referral: carol, gina; gina churned.
    assert await metric(client, "retention", **W, lead_source="referral") == {
        **W, "customers_at_start": 2, "churned": 1, "retained": 1,
        "retention": 50.0, "churn": 50.0,
    }  # fmt: skip


async def test_activity_and_data_quality(
    admin: Actor, manager: Actor, rep: Actor, viewer: Actor
) -> None:
    w = await build(admin, manager, rep)
    client = viewer.client

    # a1..a19 minus a6 (archived); a20, a21 (06-01) and a22 (02-27) are outside W.
    assert await metric(client, "activity", **W) == {
        **W,
        "totals": {
            "call": 7,  # a1, a2, a3, a9, a10, a16, a18
            "email": 5,  # a4, a11, a12, a13, a17
            "meeting": 3,  # a8, a14, a19
            "note": 3,  # a5, a7, a15
            "total": 18,
        },
        "weeks": by_week(
            [
                week(w, "2026-W09", "2026-02-23", "R", call=1, total=1),  # a1 (Sunday 03-01)
                week(w, "2026-W10", "2026-03-02", "A", call=2, email=1, total=3),  # a2, a3, a4
                week(w, "2026-W10", "2026-03-02", "R", note=1, total=1),  # a5
                week(w, "2026-W11", "2026-03-09", "M", note=1, total=1),  # a7
                week(w, "2026-W12", "2026-03-16", "A", call=1, total=1),  # a9
                week(w, "2026-W12", "2026-03-16", "M", meeting=1, total=1),  # a8
                week(w, "2026-W14", "2026-03-30", "R", call=1, email=2, total=3),  # a10-a12
                week(w, "2026-W15", "2026-04-06", "R", email=1, total=1),  # a13
                week(w, "2026-W17", "2026-04-20", "A", meeting=1, note=1, total=2),  # a14, a15
                week(w, "2026-W19", "2026-05-04", "M", call=1, total=1),  # a16
                week(w, "2026-W21", "2026-05-18", "M", email=1, total=1),  # a17
                week(w, "2026-W22", "2026-05-25", "R", call=1, meeting=1, total=2),  # a18, a19
            ]
        ),
    }
    # Logged by M: a7, a8, a16, a17.
    assert await metric(client, "activity", **W, owner_id=w.users["M"]) == {
        **W,
        "totals": {"call": 1, "email": 1, "meeting": 1, "note": 1, "total": 4},
        "weeks": [
            week(w, "2026-W11", "2026-03-09", "M", note=1, total=1),
            week(w, "2026-W12", "2026-03-16", "M", meeting=1, total=1),
            week(w, "2026-W19", "2026-05-04", "M", call=1, total=1),
            week(w, "2026-W21", "2026-05-18", "M", email=1, total=1),
        ],
    }

    # Around the new year (meetings may be in the future): 2027-01-01 (a Friday) is in ISO
    # week 2026-W53, which starts on Monday 2026-12-28, before the window; 2027-01-04 starts
    # 2027-W01.
    new_year = {"from": "2026-12-30", "to": "2027-01-04"}
    assert await metric(client, "activity", **new_year) == {
        **new_year,
        "totals": {"call": 0, "email": 0, "meeting": 2, "note": 0, "total": 2},
        "weeks": [
            week(w, "2026-W53", "2026-12-28", "A", meeting=1, total=1),  # a23
            week(w, "2027-W01", "2027-01-04", "M", meeting=1, total=1),  # a24
        ],
    }

    # 24 live contacts (zed archived); 3 live companies (Umbrella archived); 25 live deals
    # (X1, X2 archived). Per-contact filled counts: carol 9, dave 8, erin 3, frank 4, gina 5,
    # hank 6, jack 4, bea 5, xena 3, vic 4, kim 8, leo 5, mia 4, ned 6, ola 4, pat 6, quinn 5,
    # rosa 5, sam 4, wes 4, yara 4, tia 5, uma 4, abe 3 = 118.
    # Deals: amount > 0 all but L5, O6 (0.00); expected close W1, W2, L1, RO, O1, O2, O3, O4,
    # O6, O7, O8, O10; company W1, W2, W7, O3, O8; contacts W1, W2, W3, W5, W6, W7, W8, L1,
    # O2; next step O1, O3, O8.
    assert await metric(client, "data-quality") == {
        "completeness": 53.59,  # (118 + 14 + 77) / (216 + 24 + 150) = 209 / 390
        "objects": [
            {
                "object": "contacts",
                "records": 24,
                "completeness": 54.63,  # 118 / (9 x 24 = 216)
                "fields": fields(
                    first_name=(23, 95.83),  # all but abe
                    last_name=(10, 41.67),  # carol dave gina hank bea kim ned pat rosa tia
                    email=(7, 29.17),  # carol dave kim leo pat sam abe
                    phone=(4, 16.67),  # carol hank quinn rosa
                    title=(3, 12.5),  # carol dave kim
                    company=(4, 16.67),  # carol dave kim ned
                    lifecycle_stage=(24, 100.0),
                    lead_source=(19, 79.17),  # all but erin xena rosa sam abe
                    owner=(24, 100.0),
                ),
            },
            {
                "object": "companies",
                "records": 3,
                "completeness": 58.33,  # (2+2+2+1+1+1+2+3 = 14) / 24
                "fields": fields(
                    domain=(2, 66.67),  # Acme, Initech
                    industry=(2, 66.67),  # Acme, Globex
                    employee_count=(2, 66.67),  # Acme, Initech
                    annual_revenue=(1, 33.33),
                    phone=(1, 33.33),
                    address=(1, 33.33),
                    lifecycle_stage=(2, 66.67),  # Acme, Initech
                    owner=(3, 100.0),
                ),
            },
            {
                "object": "deals",
                "records": 25,
                "completeness": 51.33,  # (23+12+5+9+3+25 = 77) / (6 x 25 = 150)
                "fields": fields(
                    amount=(23, 92.0),
                    expected_close_date=(12, 48.0),
                    company=(5, 20.0),
                    contacts=(9, 36.0),
                    next_step=(3, 12.0),
                    owner=(25, 100.0),
                ),
            },
        ],
        # email: pat@x.example = pat+news@x.example (sam); phone +14155550101: carol, rosa;
        # quinn shares +14155550199 only with zed, who is archived.
        "duplicates": {"email": 2, "phone": 2, "contacts": 4},
    }

    # Owner R. Contacts erin, hank, xena, vic, ola, pat, sam, yara, abe (9): first name 8
    # (not abe), last 2 (hank, pat), email 3 (pat, sam, abe), phone 1 (hank), lifecycle 9,
    # source 5 (hank, vic, ola, pat, yara), owner 9 = 37. Company Initech: 4 of 8.
    # Deals W3, W6, W8, L2, L3, O3, O6, O9 (8): amount 7 (not O6), expected close 2 (O3, O6),
    # company 1 (O3), contacts 3 (W3, W6, W8), next step 1 (O3), owner 8 = 22.
    assert await metric(client, "data-quality", owner_id=w.users["R"]) == {
        "completeness": 45.99,  # (37 + 4 + 22) / (81 + 8 + 48) = 63 / 137 = 45.985...
        "objects": [
            {
                "object": "contacts",
                "records": 9,
                "completeness": 45.68,  # 37 / 81
                "fields": fields(
                    first_name=(8, 88.89),
                    last_name=(2, 22.22),
                    email=(3, 33.33),
                    phone=(1, 11.11),
                    title=(0, 0.0),
                    company=(0, 0.0),
                    lifecycle_stage=(9, 100.0),
                    lead_source=(5, 55.56),
                    owner=(9, 100.0),
                ),
            },
            {
                "object": "companies",
                "records": 1,
                "completeness": 50.0,  # 4 / 8
                "fields": fields(
                    domain=(1, 100.0),
                    industry=(0, 0.0),
                    employee_count=(1, 100.0),
                    annual_revenue=(0, 0.0),
                    phone=(0, 0.0),
                    address=(0, 0.0),
                    lifecycle_stage=(1, 100.0),
                    owner=(1, 100.0),
                ),
            },
            {
                "object": "deals",
                "records": 8,
                "completeness": 45.83,  # 22 / 48
                "fields": fields(
                    amount=(7, 87.5),
                    expected_close_date=(2, 25.0),
                    company=(1, 12.5),
                    contacts=(3, 37.5),
                    next_step=(1, 12.5),
                    owner=(8, 100.0),
                ),
            },
        ],
        "duplicates": {"email": 2, "phone": 0, "contacts": 2},  # pat, sam
    }


# -- bad input -----------------------------------------------------------------------------------


async def get_problem(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    """The request is a 422 problem naming `field`."""
    response = await client.get(path, params=params)
    assert response.headers["content-type"] == PROBLEM
    assert error_fields(assert_problem(response, 422, "validation")) == {field}, response.text


WINDOWED = (
    "forecast", "win-rate", "deal-size", "sales-cycle", "stage-funnel", "lead-response",
    "conversion-by-source", "activity", "retention",
)  # fmt: skip


class TestBadInput:
    async def test_bad_windows(self, viewer: Actor) -> None:
        client = viewer.client
        for params in (
            {"from": "2026-02-30"},  # no such day
            {"from": "2026-05-02", "to": "2026-05-01"},  # after `to`
            {"from": "2021-11-21", "to": "2026-11-22"},  # five years and a day
            {"from": "1700000000"},  # seconds are not a day
            {"from": "2026-03-01T00:00:00Z"},  # nor is an instant
        ):
            await get_problem(client, "/v1/metrics/win-rate", params, "query.from")
        await get_problem(client, "/v1/metrics/win-rate", {"to": "2026-13-01"}, "query.to")
        # Days at the calendar's ends: the window's arithmetic would leave it (they were 500s).
        for name in WINDOWED:
            path = f"/v1/metrics/{name}"
            await get_problem(client, path, {"to": "0001-03-01"}, "query.to")
            await get_problem(
                client, path, {"from": "0999-12-31", "to": "1000-01-01"}, "query.from"
            )
            last_day = {"from": "9999-12-31", "to": "9999-12-31"}
            response = await client.get(path, params=last_day)
            body = assert_problem(response, 422, "validation")
            assert error_fields(body) == {"query.from", "query.to"}, (name, response.text)
            edges = {"from": "1000-01-01", "to": "1000-01-01"}
            assert (await client.get(path, params=edges)).status_code == 200, name
            edges = {"from": "8999-12-31", "to": "8999-12-31"}
            assert (await client.get(path, params=edges)).status_code == 200, name

        # Exactly five calendar years is allowed (the README's example).
        five_years = {"from": "2021-11-22", "to": "2026-11-22"}
        response = await client.get("/v1/metrics/retention", params=five_years)
        assert response.status_code == 200, response.text
        assert response.json() == {
            **five_years, "customers_at_start": 0, "churned": 0, "retained": 0,
            "retention": None, "churn": None,
        }  # fmt: skip

    async def test_bad_parameters(self, viewer: Actor) -> None:
        client = viewer.client
        for name in ("win-rate", "deal-size", "sales-cycle", "lead-response"):
            path = f"/v1/metrics/{name}"
            await get_problem(client, path, {"group_by": "stage"}, "query.group_by")
        path = "/v1/metrics/deal-size"
        await get_problem(client, path, {"currency": "XXX"}, "query.currency")
        path = "/v1/metrics/stage-funnel"
        unknown = {"pipeline_id": "00000000-0000-7000-8000-000000000000"}
        await get_problem(client, path, unknown, "query.pipeline_id")
        await get_problem(client, path, {"stall_days": "0"}, "query.stall_days")
        await get_problem(client, path, {"stall_days": "3651"}, "query.stall_days")
        await get_problem(client, "/v1/metrics/pipeline", {"target": "0"}, "query.target")


async def test_nothing_to_compute_from(viewer: Actor) -> None:
    """An empty database: counts are 0, sums are 0.00 where the schema has no null, and every
    figure with nothing to compute from (no values, a zero denominator) is null."""
    client = viewer.client
    sales = await default_pipeline(client)
    january = {"from": "2026-01-01", "to": "2026-01-31"}
    assert await metric(client, "win-rate", **january) == {
        **january, "won": 0, "lost": 0, "win_rate": None, "group_by": None, "groups": []
    }  # fmt: skip
    assert await metric(client, "win-rate", **january, group_by="owner") == {
        **january, "won": 0, "lost": 0, "win_rate": None, "group_by": "owner", "groups": []
    }  # fmt: skip
    assert await metric(client, "deal-size", **january) == {
        **january, "currency": "USD", "excluded_deals": 0, "deals": 0, "total": None,
        "mean": None, "median": None, "group_by": None, "groups": [],
    }  # fmt: skip
    assert await metric(client, "sales-cycle", **january) == {
        **january, "deals": 0, "mean_days": None, "median_days": None, "p90_days": None,
        "group_by": None, "groups": [],
    }  # fmt: skip
    zeros = {"won_deals": 0, "won_amount": "0.00", "open_deals": 0, "commit": "0.00",
             "best_case": "0.00"}  # fmt: skip
    assert await metric(client, "forecast", **january) == {
        **january, "currency": "USD", "excluded_deals": 0, "undated_open_deals": 0,
        "totals": zeros, "months": [{"month": "2026-01", **zeros}],
    }  # fmt: skip
    assert await metric(client, "pipeline", target="100") == {
        "currency": "USD", "deals": 0, "amount": "0.00", "weighted_amount": "0.00",
        "excluded_deals": 0, "target": "100", "coverage": 0.0,  # 0 / 100
        "pipelines": [
            {"pipeline_id": sales["id"], "name": "Sales", "deals": 0, "amount": "0.00",
             "weighted_amount": "0.00", "excluded_deals": 0,
             "stages": [
                 {"stage_id": s["id"], "name": s["name"], "probability": s["probability"],
                  "deals": 0, "amount": "0.00", "weighted_amount": "0.00", "excluded_deals": 0}
                 for s in sales["stages"] if s["kind"] == "open"
             ]},
        ],
    }  # fmt: skip
    assert await metric(client, "stage-funnel", **january) == {
        **january, "pipeline_id": sales["id"], "stall_days": 14, "deals": 0, "lost": 0,
        "stalled": 0,
        "stages": [
            {"stage_id": s["id"], "name": s["name"], "kind": s["kind"], "reached": 0,
             "conversion_to_next": None, "mean_days": None, "median_days": None, "visits": 0,
             "deals_now": 0, "stalled": 0}
            for s in sales["stages"] if s["kind"] != "lost"
        ],
    }  # fmt: skip
    assert await metric(client, "lead-response", **january, group_by="month") == {
        **january, "contacts": 0, "contacted": 0, "never_contacted": 0, "mean_hours": None,
        "median_hours": None, "p90_hours": None, "group_by": "month", "groups": [],
    }  # fmt: skip
    assert await metric(client, "conversion-by-source", **january) == {
        **january, "currency": "USD", "excluded_deals": 0,
        "totals": {"contacts": 0, "converted": 0, "conversion": None, "won_deals": 0,
                   "won_amount": "0.00"},
        "sources": [],
    }  # fmt: skip
    assert await metric(client, "activity", **january) == {
        **january, "totals": {"call": 0, "email": 0, "meeting": 0, "note": 0, "total": 0},
        "weeks": [],
    }  # fmt: skip
    assert await metric(client, "retention", **january) == {
        **january, "customers_at_start": 0, "churned": 0, "retained": 0, "retention": None,
        "churn": None,
    }  # fmt: skip
    names = {
        "contacts": ["first_name", "last_name", "email", "phone", "title", "company",
                     "lifecycle_stage", "lead_source", "owner"],
        "companies": ["domain", "industry", "employee_count", "annual_revenue", "phone",
                      "address", "lifecycle_stage", "owner"],
        "deals": ["amount", "expected_close_date", "company", "contacts", "next_step", "owner"],
    }  # fmt: skip
    assert await metric(client, "data-quality") == {
        "completeness": None,
        "objects": [
            {"object": name, "records": 0, "completeness": None,
             "fields": [{"field": field, "filled": 0, "percent": None} for field in fields]}
            for name, fields in names.items()
        ],
        "duplicates": {"email": 0, "phone": 0, "contacts": 0},
    }  # fmt: skip
