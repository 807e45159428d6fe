from typing import Annotated, Any
from uuid import UUID

from fastapi import Query

from crm_api.companies.schemas import CompanyCreate, CompanyRead, CompanyUpdate
from crm_api.companies.service import CompanyService
from crm_api.core.enums import LifecycleStage
from crm_api.core.schemas import Domain, SafeStr
from crm_api.deps import SearchText, TimeRangeFilters, record_service
from crm_api.routing import PrefixRouter, Upsert, add_record_routes

router = PrefixRouter(prefix="/v1/companies", tags=["companies"])


async def company_filters(
    ranges: TimeRangeFilters,
    owner_id: UUID | None = None,
    lifecycle_stage: LifecycleStage | None = None,
    industry: Annotated[SafeStr | None, Query(max_length=200)] = None,
    domain: Annotated[Domain | None, Query(description="Exact domain, normalized first.")] = None,
    q: SearchText = None,
) -> dict[str, Any]:
    return {
        **ranges,
        "owner_id": owner_id,
        "lifecycle_stage": lifecycle_stage,
        "industry": industry,
        "domain": domain,
        "q": q,
    }


add_record_routes(
    router,
    resource="companies",
    singular="company",
    service=record_service(CompanyService),
    create=CompanyCreate,
    update=CompanyUpdate,
    read=CompanyRead,
    filters=company_filters,
    upsert=Upsert(natural_key="domain"),
    searchable=True,
)
