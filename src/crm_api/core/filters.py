"""The request body of `POST /v1/<things>/search`: a filter tree, a full-text query, a sort and
a cursor. The tree's shape is checked here; its fields, operators and values against the
resource by `crm_api.core.search`."""

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from crm_api.core.listing import DEFAULT_LIMIT, MAX_LIMIT
from crm_api.core.schemas import InputModel, SafeStr
from crm_api.core.search import MAX_CONDITIONS, Op

FIELD_DESCRIPTION = (
    "A column (`email`, `amount`), a custom field (`custom_fields.tier`) or a field of the "
    "record this one points to (`company.domain`, `owner.email`)."
)


class FilterCondition(InputModel):
    field: Annotated[SafeStr, Field(min_length=1, max_length=120, description=FIELD_DESCRIPTION)]
    op: Op
    value: Any = Field(
        default=None,
        description="Of the field's type: a list for `in`, true or false for `is_null`.",
    )


class FilterAnd(InputModel):
    and_: list["FilterNode"] = Field(
        alias="and", min_length=1, max_length=MAX_CONDITIONS, description="All must match."
    )


class FilterOr(InputModel):
    or_: list["FilterNode"] = Field(
        alias="or", min_length=1, max_length=MAX_CONDITIONS, description="Any must match."
    )


def _node_kind(node: Any) -> str:
    if isinstance(node, dict):
        for key, tag in (("and", "FilterAnd"), ("or", "FilterOr")):
            if key in node:
                return tag
    elif isinstance(node, FilterAnd | FilterOr):
        return type(node).__name__
    return "FilterCondition"


FilterNode = Annotated[
    Annotated[FilterCondition, Tag("FilterCondition")]
    | Annotated[FilterAnd, Tag("FilterAnd")]
    | Annotated[FilterOr, Tag("FilterOr")],
    Discriminator(_node_kind),
]
"""A condition, or an `and` / `or` of nodes; its kind is read from its keys."""
NODE_TAGS = frozenset({"FilterCondition", "FilterAnd", "FilterOr"})


class SearchRequest(InputModel):
    filter: FilterNode | None = Field(
        default=None,
        description="At most 4 levels deep and 50 conditions. A comparison never matches a "
        "missing value; `neq` matches a different or missing one; `contains` and "
        "`starts_with` ignore case.",
    )
    query: Annotated[SafeStr, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="Full-text words, each matched as a prefix; results then sort by "
        "relevance unless `sort` says otherwise.",
    )
    sort: Annotated[SafeStr, Field(max_length=120)] | None = Field(
        default=None,
        description="A sortable field or custom field (prefix `-` to descend), or `relevance`.",
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: Annotated[SafeStr, Field(max_length=2000)] | None = Field(
        default=None, description="`next_cursor` of the previous page, with the same body."
    )
    include_total: bool = Field(default=False, description="Also count all matches.")
    archived: bool = Field(default=False, description="Search archived records instead.")

    def tree(self) -> dict[str, Any] | None:
        """The filter as plain data (`and`/`or` keys), as the compiler reads it."""
        if self.filter is None:
            return None
        dumped: dict[str, Any] = self.filter.model_dump(by_alias=True, exclude_none=False)
        return dumped


FilterAnd.model_rebuild()
FilterOr.model_rebuild()
