"""Company rules: derived sort key and revenue/currency consistency."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from crm_api.companies.models import Company
from crm_api.companies.repository import COMPANY, SUMMARY
from crm_api.core.errors import Invalid
from crm_api.core.money import require_scale
from crm_api.core.normalize import sort_key_text
from crm_api.core.reader import Row
from crm_api.core.records import RecordService

NAME_KEY_LENGTH = Company.name_key.type.length


class CompanyService(RecordService):
    kind = COMPANY

    async def summary(self, company_id: UUID) -> Row | None:
        """`{id, name, domain}` of a company, archived or not, for embedding in other records."""
        return await self.reader.one(SUMMARY, {"id": company_id})

    async def prepare(self, values: dict[str, Any], current: Row | None, at: datetime) -> None:
        if "name" in values:
            values["name_key"] = sort_key_text(values["name"], NAME_KEY_LENGTH)
        merged = {**(current or {}), **values}
        revenue: Decimal | None = merged.get("annual_revenue")
        currency: str | None = merged.get("annual_revenue_currency")
        if (revenue is None) != (currency is None):
            raise Invalid(
                "annual_revenue and annual_revenue_currency go together.",
                [("body.annual_revenue_currency", "set both or neither")],
            )
        if revenue is not None and currency is not None:
            require_scale(revenue, currency, "body.annual_revenue")
