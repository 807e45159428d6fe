"""`/v1/contacts/duplicates`, `/v1/companies/duplicates` and the two merges. Included before
the contacts and companies routers, so `duplicates` is not read as a record id."""

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query
from starlette.responses import Response

from crm_api.core.concurrency import etag
from crm_api.core.listing import DEFAULT_LIMIT, MAX_LIMIT
from crm_api.core.openapi import WRITE, problems
from crm_api.core.responses import JSONBody
from crm_api.core.schemas import SafeStr
from crm_api.dedupe.merge import CompanyMerger, ContactMerger, Merger
from crm_api.dedupe.schemas import (
    MAX_DUPLICATES,
    CompanyDuplicatePage,
    CompanyMerge,
    CompanyMergeResult,
    ContactDuplicatePage,
    ContactMerge,
    ContactMergeResult,
)
from crm_api.dedupe.service import DuplicateService
from crm_api.deps import ContextDep, IfMatch, ReaderDep, ReadPrincipal
from crm_api.routing import PrefixRouter

contacts_router = PrefixRouter(prefix="/v1/contacts", tags=["contacts"])
companies_router = PrefixRouter(prefix="/v1/companies", tags=["companies"])


async def get_duplicates(reader: ReaderDep, principal: ReadPrincipal) -> DuplicateService:
    return DuplicateService(reader, principal)


Duplicates = Annotated[DuplicateService, Depends(get_duplicates)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Groups per page.")]
Cursor = Annotated[
    SafeStr | None, Query(max_length=2000, description="`next_cursor` of the previous page.")
]
OwnerId = Annotated[
    UUID | None,
    Query(description="Only groups among this owner's records (reps: only their own, always)."),
]

_WHO = (
    "Only live records. Managers, admins and viewers see groups among all records (or one "
    "owner's, with `owner_id`); reps among the records they own (another `owner_id` is 403), "
    "so every group a rep sees is one they may merge."
)
_GROUPS = (
    "A group is a set of records tied together by reasons (its connected component): "
    "`records` (oldest first), `score` (0-100, the weakest link among the reasons that join "
    "them) and `reasons`. Cursor-paged (`limit` 1-500, default 50; an opaque `next_cursor`, "
    "null on the last page), in a fixed order, so paging never skips or repeats a group while "
    "the data stays the same. A key shared by more than 20 records (a switchboard's phone, a "
    "hosting platform's domain) is not taken as a reason."
)

CONTACTS_DESCRIPTION = f"""\
Candidate duplicate contacts. Reasons: the same email once a `+tag` is removed from its local \
part (`email`), the same phone (`phone`), or, at the same company, names at least 90% alike \
(`name_and_company`: rapidfuzz's Indel similarity of the names as written or with their words \
sorted, whichever is higher, after folding case, accents and punctuation; compared when a word \
of each starts with the same letter).

{_GROUPS} Groups come by the smallest company id among their records, then by their oldest \
record; groups with no company at all come last. Work per page is near-linear: exact keys are \
grouped in SQL, and names are compared company by company from the cursor's on.

{_WHO}"""

COMPANIES_DESCRIPTION = f"""\
Candidate duplicate companies. Reasons: the same registrable domain (`domain`: \
`eu.acme.com` = `acme.com`), the same phone (`phone`), or names at least 90% alike once case, \
accents, punctuation, a leading "the" and legal forms (Inc, LLC, GmbH, …) are set aside \
(`company_name`; similarity as for contacts; compared when a word of each starts with the same \
three letters).

{_GROUPS} Groups come by their oldest record.

{_WHO}"""


@contacts_router.get(
    "/duplicates",
    operation_id="contacts_list_duplicates",
    response_model=ContactDuplicatePage,
    responses=problems(403),
    summary="Find groups of likely duplicate contacts",
    description=CONTACTS_DESCRIPTION,
)
async def list_contact_duplicates(
    duplicates: Duplicates,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    owner_id: OwnerId = None,
) -> Response:
    data, next_cursor = await duplicates.contact_page(owner_id, limit, cursor)
    return JSONBody({"data": data, "next_cursor": next_cursor})


@companies_router.get(
    "/duplicates",
    operation_id="companies_list_duplicates",
    response_model=CompanyDuplicatePage,
    responses=problems(403),
    summary="Find groups of likely duplicate companies",
    description=COMPANIES_DESCRIPTION,
)
async def list_company_duplicates(
    duplicates: Duplicates,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    owner_id: OwnerId = None,
) -> Response:
    data, next_cursor = await duplicates.company_page(owner_id, limit, cursor)
    return JSONBody({"data": data, "next_cursor": next_cursor})


# -- merges --------------------------------------------------------------------------------------


async def get_contact_merger(context: ContextDep) -> ContactMerger:
    return ContactMerger(context.session, context.reader, context.principal, context.users())


async def get_company_merger(context: ContextDep) -> CompanyMerger:
    return CompanyMerger(context.session, context.reader, context.principal, context.users())


MERGE_DESCRIPTION = f"""\
Merges 1 to {MAX_DUPLICATES} duplicates into a primary {{singular}}, in one transaction: all of \
it happens or none of it.

- The primary keeps its id and takes the values `field_choices` names (see the body); its \
version goes up by one, and `If-Match` is checked against it (412 when stale).
- Every duplicate is archived with `merged_into_id`; a GET, PATCH, DELETE or restore of its \
id then answers 404 with `merged_into_id` in the problem. Its history stays with its id \
(audit log, {{history}}; its timeline stays readable).
- {{links}} Each record so moved gets a new version, an audit row and its `*.updated` event.
- Derived fields ({{derived}}) are recomputed.
- Events: the moved records' `*.updated`, each duplicate's `{{singular}}.archived`, the \
primary's `{{singular}}.updated` (its changes include `merged_ids`) and `{{singular}}.merged`, \
whose `data` is this response. Audit rows likewise.

Checked before anything is written: 422 for a body that does not fit (the primary among the \
duplicates, a repeated id, more than {MAX_DUPLICATES} duplicates, a field a merge does not \
choose, a choice naming a record outside the merge), 404 for an unknown id, 409 for an \
archived or already merged {{singular}} (with `merged_into_id`), 403 unless the caller may \
change every one of them (reps: only their own), 412 for a stale `If-Match`.

Returns the primary as it is now and the merged ids, with the primary's `ETag`."""


def _merge_description(**parts: str) -> str:
    return MERGE_DESCRIPTION.format(**parts)


def _merge_response(result: dict[str, object]) -> Response:
    primary = result["primary"]
    assert isinstance(primary, dict)
    return JSONBody(result, headers={"ETag": etag(primary["version"])})


@contacts_router.post(
    "/merge",
    operation_id="contacts_merge",
    response_model=ContactMergeResult,
    responses=WRITE,
    summary="Merge duplicate contacts into one",
    description=_merge_description(
        singular="contact",
        history="lifecycle changes",
        links="Activities (as contacts and attendees), tasks and deal contacts of the "
        "duplicates move to the primary; a deal that had several of them keeps one link, with "
        "the most meaningful role (decision maker, champion, influencer, other; the primary's "
        "on a tie).",
        derived="`last_activity_at`, `first_outreach_at`, `next_task`",
    ),
)
async def merge_contacts(
    body: ContactMerge,
    merger: Annotated[Merger, Depends(get_contact_merger)],
    if_match: IfMatch,
) -> Response:
    merged = await merger.merge(body.primary_id, body.duplicate_ids, body.field_choices, if_match)
    return _merge_response(merged)


@companies_router.post(
    "/merge",
    operation_id="companies_merge",
    response_model=CompanyMergeResult,
    responses=WRITE,
    summary="Merge duplicate companies into one",
    description=_merge_description(
        singular="company",
        history="the contacts', deals', activities' and tasks' own histories",
        links="Contacts, deals, activities and tasks of the duplicates move to the primary.",
        derived="`last_activity_at`",
    ),
)
async def merge_companies(
    body: CompanyMerge,
    merger: Annotated[Merger, Depends(get_company_merger)],
    if_match: IfMatch,
) -> Response:
    merged = await merger.merge(body.primary_id, body.duplicate_ids, body.field_choices, if_match)
    return _merge_response(merged)
