"""Product rules: managers and admins keep the catalog; prices fit their currency."""

from datetime import datetime
from typing import Any
from uuid import UUID

from crm_api.core.errors import Invalid
from crm_api.core.money import require_scale
from crm_api.core.normalize import sort_key_text
from crm_api.core.reader import Row
from crm_api.core.records import RecordService
from crm_api.products.models import Product
from crm_api.products.repository import PRODUCT

NAME_KEY_LENGTH = Product.name_key.type.length


class ProductService(RecordService):
    kind = PRODUCT

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        if "name" in values:
            values["name_key"] = sort_key_text(values["name"], NAME_KEY_LENGTH)
        if "unit_price" in values or "currency" in values:
            merged = {**(current or {}), **values}
            require_scale(merged["unit_price"], merged["currency"], "body.unit_price")

    async def priced(self, product_id: UUID, field: str) -> Row:
        """A live, active product to price a line item from (422 otherwise)."""
        row = await self.repository.read(product_id)
        if row is None or row["archived_at"] is not None or not row["active"]:
            raise Invalid(
                f"No live, active product has id {product_id}.",
                [(field, "must be the id of a live, active product")],
            )
        return row
