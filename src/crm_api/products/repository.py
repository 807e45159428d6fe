"""The only place with product SQL: its read shape, list filters and sorts."""

from typing import Any

from sqlalchemy import bindparam, select

from crm_api.core.db import table_of
from crm_api.core.listing import ListSpec, prefix_match, prefix_search, record_filters, record_sorts
from crm_api.core.money import to_minor_units
from crm_api.core.reader import Row
from crm_api.core.records import RecordKind
from crm_api.products.models import Product

products = table_of(Product)


def to_read(row: Row) -> dict[str, Any]:
    record = {key: value for key, value in row.items() if key != "name_key"}
    record["unit_price"] = to_minor_units(record["unit_price"], record["currency"])
    return record


LISTING = ListSpec(
    table=products,
    filters={
        **record_filters(products),
        "active": lambda: products.c.active == bindparam("active"),
        "currency": lambda: products.c.currency == bindparam("currency"),
        "sku": lambda: products.c.sku == bindparam("sku"),
        "q": prefix_match(products),
    },
    sorts={
        **record_sorts(products),
    },
    default_sort="name",
    archived_column=products.c.archived_at,
    binders={"q": prefix_search},
)

PRODUCT = RecordKind(
    entity_type="product",
    table=products,
    read=select(products).where(products.c.id == bindparam("id")),
    to_read=to_read,
    listing=LISTING,
    unique_keys=("sku", "external_id"),
    path="/v1/products",
    owned=False,
)
