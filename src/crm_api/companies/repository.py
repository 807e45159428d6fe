"""The only place with company SQL: its read shape, list filters and sorts."""

from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.sql.elements import KeyedColumnElement

from crm_api.companies.models import Company
from crm_api.core.db import table_of
from crm_api.core.enums import LifecycleStage
from crm_api.core.fulltext import TextIndex, text_match, text_rank
from crm_api.core.listing import ListSpec, prefix_match, prefix_search, record_filters, record_sorts
from crm_api.core.money import to_minor_units
from crm_api.core.reader import Row
from crm_api.core.records import RecordKind
from crm_api.core.search import Field, SearchSpec, TextSearch, column_fields
from crm_api.custom_fields.catalog import CustomFieldRules, CustomSearchFields
from crm_api.custom_fields.models import ObjectType
from crm_api.users.repository import owner_fields

companies = table_of(Company)

COMPANY_SUMMARY_COLUMNS = (companies.c.id, companies.c.name, companies.c.domain)


def company_summary(row: Row, prefix: str) -> dict[str, Any] | None:
    """The `{id, name, domain}` embedded in other records, from `prefix`-labelled columns."""
    company_id = row[f"{prefix}id"]
    if company_id is None:
        return None
    return {"id": company_id, "name": row[f"{prefix}name"], "domain": row[f"{prefix}domain"]}


def to_read(row: Row) -> dict[str, Any]:
    record = {key: value for key, value in row.items() if key != "name_key"}
    if record["annual_revenue"] is not None:
        record["annual_revenue"] = to_minor_units(
            record["annual_revenue"], record["annual_revenue_currency"]
        )
    return record


LISTING = ListSpec(
    table=companies,
    filters={
        "owner_id": lambda: companies.c.owner_id == bindparam("owner_id"),
        "lifecycle_stage": lambda: companies.c.lifecycle_stage == bindparam("lifecycle_stage"),
        "industry": lambda: companies.c.industry == bindparam("industry"),
        "domain": lambda: companies.c.domain == bindparam("domain"),
        **record_filters(companies),
        "q": prefix_match(companies, companies.c.domain),
    },
    sorts={
        **record_sorts(companies),
    },
    default_sort="created_at",
    archived_column=companies.c.archived_at,
    binders={"q": prefix_search},
)

SUMMARY = select(*COMPANY_SUMMARY_COLUMNS).where(companies.c.id == bindparam("id"))

TEXT = TextIndex(companies, ("name", "domain"), split=("domain",))
HIDDEN = ("name_key", "custom_fields")


def company_fields(company: KeyedColumnElement[Any]) -> dict[str, Field]:
    """`company.<column>` of the company `company` (a record's company column) names."""
    return column_fields(
        companies,
        prefix="company.",
        skip=HIDDEN,
        choices={"lifecycle_stage": LifecycleStage},
        related=(company, companies.c.id),
    )


def companies_matching(query: Any) -> Select[Any]:
    """The ids of the companies whose name or domain match the full-text `query`."""
    return select(companies.c.id).where(text_match(TEXT, query))


SEARCH = SearchSpec(
    listing=LISTING,
    fields={
        **column_fields(companies, skip=HIDDEN, choices={"lifecycle_stage": LifecycleStage}),
        **owner_fields(companies.c.owner_id),
    },
    text=TextSearch(
        match=lambda query: text_match(TEXT, query), rank=lambda query: text_rank(TEXT, query)
    ),
    custom_fields=CustomSearchFields(ObjectType.company, companies.c.custom_fields),
)

COMPANY = RecordKind(
    entity_type="company",
    table=companies,
    read=select(companies).where(companies.c.id == bindparam("id")),
    to_read=to_read,
    listing=LISTING,
    unique_keys=("domain", "external_id"),
    path="/v1/companies",
    custom_fields=CustomFieldRules(ObjectType.company),
    search=SEARCH,
)
