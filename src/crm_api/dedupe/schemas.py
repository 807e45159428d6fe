from uuid import UUID

from pydantic import BaseModel, Field

from crm_api.companies.schemas import CompanyRead
from crm_api.contacts.schemas import ContactRead
from crm_api.core.schemas import InputModel, ReadModel
from crm_api.dedupe.matching import NAME_THRESHOLD, DuplicateReasonKind

MAX_DUPLICATES = 20

SCORE = (
    "0-100. A reason's score is 100 for an email, phone or domain shared by 2 to 20 records "
    "(and equal names), "
    "else the names' similarity (rapidfuzz's Indel similarity, `ratio`, of the folded names as "
    "written or with their words sorted, whichever is higher; 1 decimal; at least "
    f"{NAME_THRESHOLD:g}). A group's score is its weakest link: the lowest score among the "
    "reasons that join its records."
)


class DuplicateReason(BaseModel):
    kind: DuplicateReasonKind = Field(
        description="`email`: the same address once a `+tag` is removed from its local part; "
        "`phone`: the same E.164 phone; `domain`: the same registrable domain "
        "(`eu.acme.com` = `acme.com`); `name_and_company`: similar names at the same company; "
        "`company_name`: similar company names (case, accents, punctuation, a leading "
        "'the' and legal forms such as Inc or GmbH aside)."
    )
    detail: str = Field(
        description="The shared key (`ann@example.com`, `+14155550100`, `acme.com`), or the "
        "compared names as folded (`jon smith ~ john smith`; one name when they are equal)."
    )
    record_ids: list[UUID] = Field(description="The records of the group this reason ties.")
    score: float = Field(ge=0, le=100, description=SCORE)


class ContactDuplicate(ReadModel):
    id: UUID
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    company_id: UUID | None
    owner_id: UUID


class CompanyDuplicate(ReadModel):
    id: UUID
    name: str
    domain: str | None
    phone: str | None
    owner_id: UUID


_RECORDS = "Oldest first (ids are time-ordered): a natural `primary_id` for a merge."
_REASONS = (
    "Every shared key among the group's records, then the name similarities that join records "
    "no stronger reason already joined (so at most one per record they add); strongest first."
)


class ContactDuplicateGroup(BaseModel):
    records: list[ContactDuplicate] = Field(description=_RECORDS)
    score: float = Field(ge=0, le=100, description=SCORE)
    reasons: list[DuplicateReason] = Field(description=_REASONS)


class CompanyDuplicateGroup(BaseModel):
    records: list[CompanyDuplicate] = Field(description=_RECORDS)
    score: float = Field(ge=0, le=100, description=SCORE)
    reasons: list[DuplicateReason] = Field(description=_REASONS)


_NEXT = "Pass as `cursor` for the next page; null on the last page."


class ContactDuplicatePage(BaseModel):
    data: list[ContactDuplicateGroup]
    next_cursor: str | None = Field(description=_NEXT)


class CompanyDuplicatePage(BaseModel):
    data: list[CompanyDuplicateGroup]
    next_cursor: str | None = Field(description=_NEXT)


# -- merges --------------------------------------------------------------------------------------

_PRIMARY = "The record that stays: it gets the others' links and keeps its id."
_DUPLICATES = (
    f"1 to {MAX_DUPLICATES} records merged into the primary: each is archived with "
    "`merged_into_id`, and requests to its id then answer 404 naming the primary."
)
_CHOICES = (
    "Maps a field to the id of the record (the primary or a duplicate) whose value the primary "
    'keeps, e.g. `{{"email": "<duplicate id>", "custom_fields.tier": "<id>"}}`. A '
    "field not named keeps the primary's value, or, where the primary has none (null, or a "
    "custom field it lacks), takes the first duplicate's (in `duplicate_ids` order) that has "
    "one.{extra} Fields: {fields}, and `custom_fields.<key>`."
)

CONTACT_FIELDS = (
    "first_name", "last_name", "email", "phone", "title", "company_id", "lifecycle_stage",
    "lead_source", "owner_id", "email_opt_in", "do_not_contact", "external_id",
)  # fmt: skip
COMPANY_FIELDS = (
    "name", "domain", "industry", "employee_count", "annual_revenue", "phone", "address",
    "lifecycle_stage", "owner_id", "external_id",
)  # fmt: skip


def _fields(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{name}`" for name in names)


class ContactMerge(InputModel):
    primary_id: UUID = Field(description=_PRIMARY)
    duplicate_ids: list[UUID] = Field(
        min_length=1, max_length=MAX_DUPLICATES, description=_DUPLICATES
    )
    field_choices: dict[str, UUID] = Field(
        default_factory=dict,
        max_length=200,
        description=_CHOICES.format(
            extra=" `do_not_contact` is true if any record's is (unless chosen): a merge never "
            "makes a person contactable who asked not to be.",
            fields=_fields(CONTACT_FIELDS),
        ),
    )


class CompanyMerge(InputModel):
    primary_id: UUID = Field(description=_PRIMARY)
    duplicate_ids: list[UUID] = Field(
        min_length=1, max_length=MAX_DUPLICATES, description=_DUPLICATES
    )
    field_choices: dict[str, UUID] = Field(
        default_factory=dict,
        max_length=200,
        description=_CHOICES.format(
            extra=" `annual_revenue` comes with its `annual_revenue_currency`.",
            fields=_fields(COMPANY_FIELDS),
        ),
    )


class ContactMergeResult(BaseModel):
    primary: ContactRead
    merged_ids: list[UUID] = Field(description="The duplicates, now archived into `primary`.")


class CompanyMergeResult(BaseModel):
    primary: CompanyRead
    merged_ids: list[UUID] = Field(description="The duplicates, now archived into `primary`.")
