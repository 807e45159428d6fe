"""Duplicate groups through HTTP: exact keys (email without +tag, phone, registrable domain),
fuzzy names (scores computed by hand below), groups as connected components scored by their
weakest link, the page order and cursors (across windows of companies), and who sees what.

Name scores are rapidfuzz's Indel similarity 1 - distance / (len(a) + len(b)) of the folded
names, where the distance counts inserted and deleted characters (a changed letter is one of
each), taken as written or with the words sorted, whichever is higher.
"""

from typing import Any

import httpx
import pytest

from crm_api.dedupe import service as duplicate_service
from tests.api.factories import archive, create_company, create_contact
from tests.api.helpers import (  # ids_follow_creation_order: an autouse fixture
    assert_problem,
    error_fields,
    ids_follow_creation_order,  # noqa: F401
)
from tests.conftest import Actor

CONTACTS = "/v1/contacts/duplicates"
COMPANIES = "/v1/companies/duplicates"
PHONE = "+14155552671"
OTHER_PHONE = "+14155552672"


async def duplicates(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def all_groups(client: httpx.AsyncClient, path: str, limit: int) -> list[dict[str, Any]]:
    """Every group, following `next_cursor`; each page but the last is full."""
    groups: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = await duplicates(client, path, **params)
        groups.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return groups
        assert len(body["data"]) == limit
    raise AssertionError("paging did not end")


def contact_summary(contact: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "first_name", "last_name", "email", "phone", "company_id", "owner_id")
    return {key: contact[key] for key in keys}


def company_summary(company: dict[str, Any]) -> dict[str, Any]:
    return {key: company[key] for key in ("id", "name", "domain", "phone", "owner_id")}


def reason(kind: str, detail: str, records: list[dict[str, Any]], score: float) -> Any:
    return {
        "kind": kind,
        "detail": detail,
        "record_ids": [r["id"] for r in records],
        "score": score,
    }


def ids(groups: list[dict[str, Any]]) -> list[list[str]]:
    return [[record["id"] for record in found["records"]] for found in groups]


class TestExactContactKeys:
    async def test_email_without_tag_and_phone(self, rep: Actor) -> None:
        ann = await create_contact(rep, first_name="Ann", email="ann@example.com")
        tagged = await create_contact(rep, first_name="Annie", email="ANN+News@example.com")
        # Shares a phone with the tagged address: one group of three, two reasons.
        phoned = await create_contact(rep, last_name="Lee", phone=PHONE)
        await rep.client.patch(f"/v1/contacts/{tagged['id']}", json={"phone": PHONE})
        tagged = (await rep.client.get(f"/v1/contacts/{tagged['id']}")).json()
        pair = [await create_contact(rep, first_name="Bo", phone=OTHER_PHONE) for _ in range(2)]
        await create_contact(rep, email="bob@example.com")  # no partner
        await create_contact(rep, email="ann@example.org")  # another domain

        body = await duplicates(rep.client, CONTACTS)

        assert body == {
            "data": [
                {
                    "records": [contact_summary(c) for c in (ann, tagged, phoned)],
                    "score": 100.0,
                    "reasons": [
                        reason("email", "ann@example.com", [ann, tagged], 100.0),
                        reason("phone", PHONE, [tagged, phoned], 100.0),
                    ],
                },
                {
                    "records": [contact_summary(c) for c in pair],
                    "score": 100.0,
                    "reasons": [reason("phone", OTHER_PHONE, pair, 100.0)],
                },
            ],
            "next_cursor": None,
        }

    async def test_a_key_shared_by_more_than_20_is_no_evidence(self, rep: Actor) -> None:
        # A switchboard: 21 contacts on one phone. Twenty would be one group (a merge takes a
        # primary and up to 20 duplicates); 21 are something shared, not a duplicate.
        for _ in range(21):
            await create_contact(rep, phone=PHONE)
        pair = [await create_contact(rep, phone=OTHER_PHONE) for _ in range(2)]
        assert ids((await duplicates(rep.client, CONTACTS))["data"]) == [[c["id"] for c in pair]]

    async def test_archived_contacts_are_not_candidates(self, rep: Actor) -> None:
        first = await create_contact(rep, phone=PHONE)
        second = await create_contact(rep, phone=PHONE)
        await archive(rep, f"/v1/contacts/{second['id']}")
        assert (await duplicates(rep.client, CONTACTS))["data"] == []
        await rep.client.post(f"/v1/contacts/{second['id']}/restore")
        assert ids((await duplicates(rep.client, CONTACTS))["data"]) == [
            [first["id"], second["id"]]
        ]


class TestFuzzyContactNames:
    async def test_similar_names_at_one_company_chain_into_one_group(self, rep: Actor) -> None:
        acme = await create_company(rep, name="Acme")
        jon = await create_contact(rep, first_name="Jon", last_name="Smith", company_id=acme["id"])
        john = await create_contact(
            rep, first_name="John", last_name="Smith", company_id=acme["id"]
        )
        smyth = await create_contact(
            rep, first_name="John", last_name="Smyth", company_id=acme["id"]
        )
        # "ann smith" / "dan smith": "an smith" in common, distance 2 → 1 - 2/18 = 88.9: below
        # 90, no group.
        for first_name in ("Ann", "Dan"):
            await create_contact(rep, first_name=first_name, last_name="Smith",
                                 company_id=acme["id"])  # fmt: skip
        # The same name at another company is no evidence.
        other = await create_company(rep, name="Other")
        await create_contact(rep, first_name="Jon", last_name="Smith", company_id=other["id"])

        body = await duplicates(rep.client, CONTACTS)

        # jon smith ~ john smith: insert "h", distance 1 of 9 + 10 → 1 - 1/19 = 94.7.
        # john smith ~ john smyth: i → y is a deletion and an insertion, 1 - 2/20 = 90.0 (the
        # threshold is inclusive). jon smith ~ john smyth: 1 - 3/19 = 84.2, not a reason; the
        # group still holds all three, and its score is the weakest link, 90.0.
        assert body["data"] == [
            {
                "records": [contact_summary(c) for c in (jon, john, smyth)],
                "score": 90.0,
                "reasons": [
                    reason("name_and_company", "jon smith ~ john smith", [jon, john], 94.7),
                    reason("name_and_company", "john smith ~ john smyth", [john, smyth], 90.0),
                ],
            }
        ]

    async def test_case_accents_punctuation_and_word_order_do_not_matter(self, rep: Actor) -> None:
        acme = await create_company(rep, name="Acme")
        jose = await create_contact(
            rep, first_name="José", last_name="García-López", company_id=acme["id"]
        )
        plain = await create_contact(
            rep, first_name="JOSE", last_name="garcia lopez", company_id=acme["id"]
        )
        swapped = await create_contact(
            rep, first_name="Garcia Lopez", last_name="Jose", company_id=acme["id"]
        )

        body = await duplicates(rep.client, CONTACTS)

        # Folded, the first two are equal ("jose garcia lopez"); the third has the same words
        # in another order: with the words sorted, 100.
        assert body["data"] == [
            {
                "records": [contact_summary(c) for c in (jose, plain, swapped)],
                "score": 100.0,
                "reasons": [
                    reason("name_and_company", "jose garcia lopez", [jose, plain], 100.0),
                    reason(
                        "name_and_company",
                        "jose garcia lopez ~ garcia lopez jose",
                        [jose, swapped],
                        100.0,
                    ),
                ],
            }
        ]

    async def test_a_typo_that_reorders_the_sorted_words_still_matches(self, rep: Actor) -> None:
        acme = await create_company(rep, name="Acme")
        bella = await create_contact(
            rep, first_name="Bella", last_name="Barton", company_id=acme["id"]
        )
        typo = await create_contact(
            rep, first_name="Bella", last_name="Bzrton", company_id=acme["id"]
        )

        body = await duplicates(rep.client, CONTACTS)

        # As written, one changed letter of 12 + 12: 1 - 2/24 = 91.7. Sorted, "barton bella"
        # and "bella bzrton" are far apart; the better of the two counts.
        detail = "bella barton ~ bella bzrton"
        assert body["data"] == [
            {
                "records": [contact_summary(bella), contact_summary(typo)],
                "score": 91.7,
                "reasons": [reason("name_and_company", detail, [bella, typo], 91.7)],
            }
        ]

    async def test_exact_evidence_joins_companies_and_their_names(self, rep: Actor) -> None:
        first_company = await create_company(rep, name="First")
        second_company = await create_company(rep, name="Second")
        ann = await create_contact(
            rep, first_name="Ann", last_name="Lee", email="ann@example.com",
            company_id=second_company["id"],
        )  # fmt: skip
        tagged = await create_contact(
            rep, first_name="Ann", last_name="Lee", email="ann+work@example.com",
            company_id=first_company["id"],
        )  # fmt: skip
        # Only similar to `ann`, at her company: joins through her.
        anne = await create_contact(
            rep, first_name="Anne", last_name="Lee", company_id=second_company["id"]
        )

        body = await duplicates(rep.client, CONTACTS)

        # "ann lee" / "anne lee": 1 - 1/15 = 93.3. The group spans two companies and sorts by
        # the first one's id.
        assert body["data"] == [
            {
                "records": [contact_summary(c) for c in (ann, tagged, anne)],
                "score": 93.3,
                "reasons": [
                    reason("email", "ann@example.com", [ann, tagged], 100.0),
                    reason("name_and_company", "ann lee ~ anne lee", [ann, anne], 93.3),
                ],
            }
        ]


class TestPaging:
    async def _groups(self, rep: Actor) -> list[list[str]]:
        """Eight groups in a known order: by the smallest company id, then the oldest record;
        the company-less ones last."""
        expected: list[list[str]] = []
        companies = [await create_company(rep, name=f"C{i}") for i in range(3)]
        for company in companies:
            for first_name, last_name in (("Alice", "Walker"), ("Omar", "Haddad")):
                pair = [
                    await create_contact(rep, first_name=first_name, last_name=last_name,
                                         company_id=company["id"])
                    for _ in range(2)
                ]  # fmt: skip
                expected.append([c["id"] for c in pair])
        for phone in (PHONE, OTHER_PHONE):
            pair = [await create_contact(rep, phone=phone) for _ in range(2)]
            expected.append([c["id"] for c in pair])
        return expected

    @pytest.mark.parametrize("window_rows", [3, 5, 5000])
    async def test_walks_every_group_once_in_order(
        self, rep: Actor, monkeypatch: pytest.MonkeyPatch, window_rows: int
    ) -> None:
        # Each company has 4 contacts: with windows of 3 each is larger than a window, with 5
        # each window ends inside the next company.
        monkeypatch.setattr(duplicate_service, "WINDOW_ROWS", window_rows)
        expected = await self._groups(rep)
        for limit in (1, 3, 8):
            assert ids(await all_groups(rep.client, CONTACTS, limit)) == expected
        body = await duplicates(rep.client, CONTACTS, limit=8)
        assert body["next_cursor"] is None

    async def test_bad_cursor_and_limits_are_422(self, rep: Actor) -> None:
        for params in ({"cursor": "nope"}, {"limit": 0}, {"limit": 501}):
            for path in (CONTACTS, COMPANIES):
                response = await rep.client.get(path, params=params)
                body = assert_problem(response, 422, "validation")
                assert error_fields(body) <= {"query.cursor", "query.limit"}
        # A contact cursor is not a company cursor.
        await create_contact(rep, phone=PHONE)
        await create_contact(rep, phone=PHONE)
        await create_contact(rep, phone=OTHER_PHONE)
        await create_contact(rep, phone=OTHER_PHONE)
        cursor = (await duplicates(rep.client, CONTACTS, limit=1))["next_cursor"]
        response = await rep.client.get(COMPANIES, params={"cursor": cursor})
        assert error_fields(assert_problem(response, 422, "validation")) == {"query.cursor"}


class TestWhoSeesWhat:
    async def test_reps_see_groups_among_their_own_records(
        self, rep: Actor, other_rep: Actor, manager: Actor, viewer: Actor
    ) -> None:
        mine = [await create_contact(rep, phone=PHONE) for _ in range(2)]
        theirs = await create_contact(other_rep, phone=PHONE)
        their_pair = [await create_contact(other_rep, phone=OTHER_PHONE) for _ in range(2)]

        assert ids((await duplicates(rep.client, CONTACTS))["data"]) == [[c["id"] for c in mine]]
        assert ids((await duplicates(rep.client, CONTACTS, owner_id=str(rep.id)))["data"]) == [
            [c["id"] for c in mine]
        ]
        everyone = [[*(c["id"] for c in mine), theirs["id"]], [c["id"] for c in their_pair]]
        assert ids((await duplicates(manager.client, CONTACTS))["data"]) == everyone
        assert ids((await duplicates(viewer.client, CONTACTS))["data"]) == everyone
        by_owner = await duplicates(manager.client, CONTACTS, owner_id=str(other_rep.id))
        assert ids(by_owner["data"]) == [[c["id"] for c in their_pair]]

        for path in (CONTACTS, COMPANIES):
            response = await rep.client.get(path, params={"owner_id": str(other_rep.id)})
            assert_problem(response, 403, "forbidden")

    async def test_anonymous_is_401(self, anonymous: httpx.AsyncClient) -> None:
        for path in (CONTACTS, COMPANIES):
            assert_problem(await anonymous.get(path), 401, "unauthorized")


class TestCompanies:
    async def test_domain_phone_and_names(self, rep: Actor, manager: Actor) -> None:
        acme = await create_company(rep, name="Acme, Inc.", domain="acme.com")
        acme_eu = await create_company(rep, name="Acme Europe", domain="https://eu.acme.com/x")
        the_acme = await create_company(rep, name="The ACME Corporation")
        globex = await create_company(rep, name="Globex Corporation", phone=PHONE)
        globexx = await create_company(rep, name="Globexx")
        phoned = await create_company(rep, name="Initech", phone=PHONE)
        await create_company(rep, name="Umbrella", domain="umbrella.co.uk")
        await create_company(rep, name="Umbrella Health", domain="umbrella.com")
        gone = await create_company(rep, name="Acme Inc")
        await archive(rep, f"/v1/companies/{gone['id']}")
        await create_company(manager, name="Acme")  # someone else's: the rep does not see it

        body = await duplicates(rep.client, COMPANIES)

        # "acme" (Acme, Inc.) and "acme" (The ACME Corporation) are equal once folded;
        # "acme europe" is 1 - 7/15 = 53.3 like "acme": only the domain joins it.
        # "globex" / "globexx": 1 - 1/13 = 92.3. "umbrella" / "umbrella health" share a word but
        # score 1 - 7/23 = 69.6, and umbrella.co.uk is not umbrella.com.
        assert body == {
            "data": [
                {
                    "records": [company_summary(c) for c in (acme, acme_eu, the_acme)],
                    "score": 100.0,
                    "reasons": [
                        reason("company_name", "acme", [acme, the_acme], 100.0),
                        reason("domain", "acme.com", [acme, acme_eu], 100.0),
                    ],
                },
                {
                    "records": [company_summary(c) for c in (globex, globexx, phoned)],
                    "score": 92.3,
                    "reasons": [
                        reason("phone", PHONE, [globex, phoned], 100.0),
                        reason("company_name", "globex ~ globexx", [globex, globexx], 92.3),
                    ],
                },
            ],
            "next_cursor": None,
        }
        everyone = await duplicates(manager.client, COMPANIES)
        assert [len(found["records"]) for found in everyone["data"]] == [4, 3]

    async def test_paging(self, rep: Actor) -> None:
        expected = []
        for i in range(5):
            pair = [await create_company(rep, name=f"Northwind {i}{i}{i}") for _ in range(2)]
            expected.append([c["id"] for c in pair])
        for limit in (1, 2, 5):
            assert ids(await all_groups(rep.client, COMPANIES, limit)) == expected
