from typing import Annotated, Any

from fastapi import Query

from crm_api.core.schemas import Currency, SafeStr
from crm_api.deps import SearchText, TimeRangeFilters, record_service
from crm_api.products.schemas import ProductCreate, ProductRead, ProductUpdate
from crm_api.products.service import ProductService
from crm_api.routing import PrefixRouter, add_record_routes

router = PrefixRouter(prefix="/v1/products", tags=["products"])


async def product_filters(
    ranges: TimeRangeFilters,
    active: bool | None = None,
    currency: Currency | None = None,
    sku: Annotated[SafeStr | None, Query(max_length=100)] = None,
    q: SearchText = None,
) -> dict[str, Any]:
    return {**ranges, "active": active, "currency": currency, "sku": sku, "q": q}


add_record_routes(
    router,
    resource="products",
    singular="product",
    service=record_service(ProductService),
    create=ProductCreate,
    update=ProductUpdate,
    read=ProductRead,
    filters=product_filters,
)
