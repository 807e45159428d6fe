"""Duplicate groups, one cursor page at a time, without comparing every record with every other.

Contacts. The exact evidence (shared email keys and phones) comes from SQL that returns only
the records that share one: the contacts having any, `X`, are few. Names are compared only
within a company, so the contacts are walked company by company, in company id order, in
windows of a growing number of contacts. A group's *section* is the smallest company id among its
records; a window reports the groups whose section it holds, which it can know in full: a group
spanning several companies crosses between them only by exact evidence, so each of its
companies holds a record of `X`, and the window also loads the companies that `X` ties to its
own (their names can join more records). Groups with no company at all (exact evidence only)
come last. So a page costs the exact reads plus the windows from its cursor on, and paging
through everything reads each company about once.

Companies are far fewer: each page reads the live ones (id, name, domain, phone) once.
"""

from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from crm_api.companies.repository import companies
from crm_api.contacts.repository import contacts
from crm_api.core.enums import Role
from crm_api.core.errors import Forbidden
from crm_api.core.listing import decode_cursor, encode_cursor, sort_key
from crm_api.core.principal import Principal
from crm_api.core.reader import Reader, Row
from crm_api.dedupe.matching import (
    DuplicateReasonKind,
    Evidence,
    Group,
    company_name,
    domain_key,
    email_key,
    group,
    has_tag,
    person_name,
    shared_keys,
    similar_names,
)
from crm_api.dedupe.repository import (
    CONTACT_SUMMARIES,
    EMAIL_HOLDERS,
    LIVE_COMPANIES,
    OF_COMPANIES,
    PHONE_HOLDERS,
    SHARED_PHONES,
    TAGGED_EMAILS,
    WINDOWS,
    Window,
)

WINDOW_ROWS = 1000
"""Contacts in a page's first window; each next one doubles, up to `WINDOW_GROWTH` times this,
so a small page reads little past its cursor and a large one takes few round trips."""
WINDOW_GROWTH = 16
CONTACT_NAME_PREFIX = 1
"""Contacts of a company are compared when a word of their names starts with the same letter."""
COMPANY_NAME_PREFIX = 3
"""Companies are compared when a word of their names starts with the same three letters."""

_CONTACT_CURSOR = ("contact-duplicates", sort_key(contacts.c.company_id, contacts.c.id))
_COMPANY_CURSOR = ("company-duplicates", sort_key(companies.c.id))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a contact group sorts: its section (smallest company id; None after every company),
    then its anchor (oldest record)."""

    section: UUID | None
    anchor: UUID

    def after(self, other: "Position | None") -> bool:
        if other is None:
            return True
        if self.section == other.section:
            return self.anchor > other.anchor
        if self.section is None or other.section is None:
            return other.section is not None
        return self.section > other.section


@dataclass(frozen=True, slots=True)
class _Exact:
    """The contacts with exact evidence (`X`) and their companies; per company, the evidence of
    the groups (of exact evidence alone) that reach it, and the companies those groups tie it
    to."""

    evidence: list[Evidence]
    company_of: dict[UUID, UUID | None]
    of_company: dict[UUID, list[Evidence]]
    ties: dict[UUID, set[UUID]]


class DuplicateService:
    def __init__(self, reader: Reader, principal: Principal) -> None:
        self.reader = reader
        self.principal = principal
        self.postgres = not reader.db.is_sqlite

    def owner_scope(self, owner_id: UUID | None) -> UUID | None:
        """Reps see groups among their own records only; the other roles see all of them, or
        one owner's with `owner_id`."""
        if self.principal.role is Role.rep:
            if owner_id not in (None, self.principal.user_id):
                raise Forbidden("Reps see duplicates among their own records only.")
            return self.principal.user_id
        return owner_id

    # -- contacts ------------------------------------------------------------------------------

    async def contact_page(
        self, owner_id: UUID | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        owner = self.owner_scope(owner_id)
        params = {"owner_id": owner} if owner else {}
        start = self._contact_position(cursor)
        exact = await self._contact_exact(params)
        found: list[tuple[Position, Group]] = []
        if start is None or start.section is not None:
            async with aclosing(self._company_windows(exact, params, start)) as windows:
                async for placed in windows:
                    found.extend(placed)
                    if len(found) > limit:
                        break
        if len(found) <= limit:
            for candidate in group(exact.evidence):
                if all(exact.company_of[member] is None for member in candidate.record_ids):
                    position = Position(None, candidate.anchor)
                    if position.after(start):
                        found.append((position, candidate))
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1][0]
            next_cursor = encode_cursor(_CONTACT_CURSOR[0], [last.section, last.anchor])
        ids = [member for _, found_group in page for member in found_group.record_ids]
        summaries = await self._rows_by_id(CONTACT_SUMMARIES[self.postgres], ids)
        return [_group_read(found_group, summaries) for _, found_group in page], next_cursor

    def _contact_position(self, cursor: str | None) -> Position | None:
        if cursor is None:
            return None
        section, anchor = decode_cursor(cursor, *_CONTACT_CURSOR)
        return Position(section, anchor)

    async def _contact_exact(self, params: Mapping[str, Any]) -> _Exact:
        owned = "owner_id" in params
        shared = [row["phone"] for row in await self.reader.all(SHARED_PHONES[owned], params)]
        phones = []
        if shared:
            statement = PHONE_HOLDERS[self.postgres, owned]
            phones = await self.reader.all(statement, {**params, "phones": shared})
        tagged = [
            row
            for row in await self.reader.all(TAGGED_EMAILS[owned], params)
            if has_tag(row["email"])
        ]
        keys = sorted({email_key(row["email"]) for row in tagged})
        holders = []
        if keys:
            statement = EMAIL_HOLDERS[self.postgres, owned]
            holders = await self.reader.all(statement, {**params, "emails": keys})
        evidence = [
            *shared_keys(DuplicateReasonKind.email,
                         ((row["id"], email_key(row["email"])) for row in tagged + holders)),
            *shared_keys(DuplicateReasonKind.phone, ((row["id"], row["phone"]) for row in phones)),
        ]  # fmt: skip
        company_of = {row["id"]: row["company_id"] for row in (*phones, *tagged, *holders)}
        of_company: dict[UUID, list[Evidence]] = defaultdict(list)
        ties: dict[UUID, set[UUID]] = defaultdict(set)
        for found in group(evidence):
            tied = {company_of[member] for member in found.record_ids} - {None}
            for company_id in tied:
                of_company[company_id].extend(found.reasons)
                ties[company_id] |= tied
        return _Exact(evidence, company_of, of_company, ties)

    async def _company_windows(
        self, exact: _Exact, params: Mapping[str, Any], start: Position | None
    ) -> AsyncGenerator[list[tuple[Position, Group]]]:
        """For each window of companies from `start`'s section on: the groups whose section it
        holds, in order, after `start`."""
        owned = "owner_id" in params
        mode, company_id = (Window.at, start.section) if start else (Window.start, None)
        size = WINDOW_ROWS
        while True:
            bind = {**params, "company_id": company_id, "limit": size + 1}
            rows = await self.reader.all(WINDOWS[owned, mode], bind)
            if not rows:
                return
            more = len(rows) > size
            if more:
                # The last company may continue past the window: it starts the next one.
                last = rows[-1]["company_id"]
                rows = [row for row in rows if row["company_id"] != last]
                if not rows:  # one company larger than a window: read it whole
                    rows = await self._of_companies([last], params)
            window = {row["company_id"] for row in rows}
            yield await self._groups_of_window(exact, params, rows, window, start)
            if not more:
                return
            mode, company_id = Window.after, max(window)
            size = min(size * 2, WINDOW_ROWS * WINDOW_GROWTH)

    async def _groups_of_window(
        self,
        exact: _Exact,
        params: Mapping[str, Any],
        rows: list[Row],
        window: set[UUID],
        start: Position | None,
    ) -> list[tuple[Position, Group]]:
        by_company: dict[UUID, list[Row]] = defaultdict(list)
        for row in rows:
            by_company[row["company_id"]].append(row)
        # The companies exact evidence ties to the loaded ones, until none is missing.
        missing = set().union(*(exact.ties.get(c, set()) for c in by_company)) - set(by_company)
        while missing:
            for row in await self._of_companies(sorted(missing), params):
                by_company[row["company_id"]].append(row)
            loaded = set(by_company) | missing
            tied = set().union(*(exact.ties.get(c, set()) for c in missing))
            missing = tied - loaded
        company_of = dict(exact.company_of)
        # The exact evidence of the groups reaching the loaded companies (each once): groups
        # reaching none of them cannot belong to this window.
        evidence = list({item: None for c in by_company for item in exact.of_company.get(c, ())})
        for company_id, members in by_company.items():
            named = []
            for row in members:
                company_of[row["id"]] = company_id
                named.append((row["id"], person_name(row["first_name"], row["last_name"])))
            kind = DuplicateReasonKind.name_and_company
            evidence.extend(similar_names(kind, named, CONTACT_NAME_PREFIX))
        placed = []
        for candidate in group(evidence):
            linked = {company_of[member] for member in candidate.record_ids} - {None}
            section = min(linked) if linked else None  # type: ignore[type-var]
            position = Position(section, candidate.anchor)
            if section in window and position.after(start):
                placed.append((position, candidate))
        placed.sort(key=lambda item: (item[0].section, item[0].anchor))
        return placed

    async def _of_companies(self, company_ids: list[UUID], params: Mapping[str, Any]) -> list[Row]:
        statement = OF_COMPANIES[self.postgres, "owner_id" in params]
        return await self.reader.all(statement, {**params, "company_ids": company_ids})

    # -- companies -----------------------------------------------------------------------------

    async def company_page(
        self, owner_id: UUID | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        owner = self.owner_scope(owner_id)
        params = {"owner_id": owner} if owner else {}
        after = decode_cursor(cursor, *_COMPANY_CURSOR)[0] if cursor else None
        rows = await self.reader.all(LIVE_COMPANIES[owner is not None], params)
        evidence = [
            *shared_keys(DuplicateReasonKind.domain,
                         ((row["id"], domain_key(row["domain"])) for row in rows)),
            *shared_keys(DuplicateReasonKind.phone, ((row["id"], row["phone"]) for row in rows)),
            *similar_names(DuplicateReasonKind.company_name,
                           ((row["id"], company_name(row["name"])) for row in rows),
                           COMPANY_NAME_PREFIX),
        ]  # fmt: skip
        found = [g for g in group(evidence) if after is None or g.anchor > after]
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = encode_cursor(_COMPANY_CURSOR[0], [page[-1].anchor])
        summaries = {row["id"]: row for row in rows}
        return [_group_read(found_group, summaries) for found_group in page], next_cursor

    # -- shared steps --------------------------------------------------------------------------

    async def _rows_by_id(self, statement: Any, ids: Iterable[UUID]) -> dict[UUID, Row]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        return {row["id"]: row for row in await self.reader.all(statement, {"ids": wanted})}


def _group_read(found: Group, summaries: Mapping[UUID, Row]) -> dict[str, Any]:
    return {
        "records": [summaries[record_id] for record_id in found.record_ids],
        "score": found.score,
        "reasons": [
            {
                "kind": reason.kind,
                "detail": reason.detail,
                "record_ids": list(reason.record_ids),
                "score": reason.score,
            }
            for reason in found.reasons
        ],
    }
