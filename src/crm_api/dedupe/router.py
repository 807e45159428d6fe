"""`/v1/contacts/duplicates`, `/v1/companies/duplicates` and the two merges. Included before
the contacts and companies routers, so `duplicates` is not read as a record id."""

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Query
from starlette.responses import Response

from crm_api.core.listing import DEFAULT_LIMIT, MAX_LIMIT
from crm_api.core.openapi import problems
from crm_api.core.responses import JSONBody
from crm_api.core.schemas import SafeStr
from crm_api.dedupe.schemas import CompanyDuplicatePage, ContactDuplicatePage
from crm_api.dedupe.service import DuplicateService
from crm_api.deps import ReaderDep, ReadPrincipal
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
    "the data stays the same."
)

CONTACTS_DESCRIPTION = f"""\
Candidate duplicate contacts. Reasons: the same email once a `+tag` is removed from its local \
part (`email`), the same phone (`phone`), or, at the same company, names whose words sorted \
are at least 90% alike (rapidfuzz `token_sort_ratio` after folding case, accents and \
punctuation; compared when a word of each starts with the same letter) (`name_and_company`).

{_GROUPS} Groups come by the smallest company id among their records, then by their oldest \
record; groups with no company at all come last. Work per page is near-linear: exact keys are \
grouped in SQL, and names are compared company by company from the cursor's on.

{_WHO}"""

COMPANIES_DESCRIPTION = f"""\
Candidate duplicate companies. Reasons: the same registrable domain (`domain`: \
`eu.acme.com` = `acme.com`), the same phone (`phone`), or names whose words sorted are at \
least 90% alike once case, accents, punctuation, a leading "the" and legal forms (Inc, LLC, \
GmbH, …) are set aside (`company_name`; compared when a word of each starts with the same three \
letters).

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
