from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query
from starlette.responses import Response

from crm_api.companies.service import CompanyService
from crm_api.contacts.schemas import ContactCreate, ContactRead, ContactUpdate
from crm_api.contacts.service import ContactService
from crm_api.core.enums import LifecycleStage
from crm_api.core.openapi import READ
from crm_api.core.schemas import SafeStr, page_of
from crm_api.deps import ListParamsDep, SearchText, TimeRangeFilters, record_service
from crm_api.routing import PrefixRouter, Upsert, add_record_routes, page_response

router = PrefixRouter(prefix="/v1/contacts", tags=["contacts"])
company_contacts_router = PrefixRouter(prefix="/v1/companies", tags=["companies"])

contact_service = record_service(ContactService)
ContactServiceDep = Annotated[ContactService, Depends(contact_service)]
CompanyServiceDep = Annotated[CompanyService, Depends(record_service(CompanyService))]


async def contact_filters(
    ranges: TimeRangeFilters,
    lifecycle_stage: LifecycleStage | None = None,
    owner_id: UUID | None = None,
    company_id: UUID | None = None,
    lead_source: Annotated[SafeStr | None, Query(max_length=200)] = None,
    q: SearchText = None,
) -> dict[str, Any]:
    return {
        **ranges,
        "lifecycle_stage": lifecycle_stage,
        "owner_id": owner_id,
        "company_id": company_id,
        "lead_source": lead_source,
        "q": q,
    }


add_record_routes(
    router,
    resource="contacts",
    singular="contact",
    service=contact_service,
    create=ContactCreate,
    update=ContactUpdate,
    read=ContactRead,
    filters=contact_filters,
    upsert=Upsert(natural_key="email"),
    searchable=True,
)


@company_contacts_router.get(
    "/{company_id}/contacts",
    operation_id="companies_list_contacts",
    response_model=page_of(ContactRead),
    responses=READ,
    summary="List a company's live contacts",
)
async def list_company_contacts(
    company_id: UUID,
    companies: CompanyServiceDep,
    contacts: ContactServiceDep,
    params: ListParamsDep,
) -> Response:
    await companies.get(company_id)
    page = await contacts.list_records(params, {"company_id": company_id})
    return page_response(*page)
