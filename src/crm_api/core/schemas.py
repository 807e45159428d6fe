"""Schema bases and field types every slice's schemas build on."""

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic import StringConstraints as Str
from pydantic_core import PydanticCustomError

from crm_api.core.money import validate_currency
from crm_api.core.normalize import (
    collapse_whitespace,
    normalize_domain,
    normalize_email,
    normalize_phone,
)

T = TypeVar("T")


def reject_nul(value: Any) -> Any:
    """NUL cannot be stored by PostgreSQL text and is never meaningful in CRM data."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key)
            reject_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            reject_nul(item)
    return value


class InputModel(BaseModel):
    """A request body: unknown fields are errors and no string may hold NUL."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return reject_nul(value)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
    total: int | None = Field(default=None, description="Only with `include_total=true`.")


def sent_fields(body: BaseModel) -> dict[str, Any]:
    """A PATCH body's top-level fields that were sent; nested objects are dumped whole, in the
    same shape a create stores (exclude_unset would also strip their unset keys)."""
    return body.model_dump(include=body.model_fields_set)


def page_of(read: type[BaseModel]) -> type[Page[Any]]:
    """`Page[XRead]` under the name `XPage`, so generated clients get a readable class."""
    name = read.__name__.removesuffix("Read") + "Page"
    return create_model(name, __base__=Page[read])  # type: ignore[valid-type]


SafeStr = Annotated[str, AfterValidator(reject_nul)]
"""A query-string value that must not carry NUL."""

Name = Annotated[str, AfterValidator(collapse_whitespace), Str(min_length=1, max_length=200)]
ShortText = Annotated[str, Str(strip_whitespace=True, max_length=200)]
ExternalId = Annotated[str, Str(strip_whitespace=True, min_length=1, max_length=200)]


def _phone(value: str) -> str:
    from crm_api.config import get_settings

    return normalize_phone(value, get_settings().default_phone_region)


def _decimal_string(value: Any) -> Any:
    # Money travels as strings so no client ever rounds it through a float.
    if not isinstance(value, str):
        raise ValueError('must be a decimal string, e.g. "1250.00"')
    return value


Email = Annotated[str, Str(max_length=320), AfterValidator(normalize_email)]
Phone = Annotated[str, Str(max_length=40), AfterValidator(_phone)]
Domain = Annotated[str, Str(max_length=2000), AfterValidator(normalize_domain)]
Currency = Annotated[str, Str(min_length=3, max_length=3), AfterValidator(validate_currency)]
MoneyAmount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(ge=0, max_digits=18, decimal_places=4, json_schema_extra={"type": "string"}),
]
CustomFields = Annotated[
    dict[
        Annotated[str, Str(pattern=r"^[a-z][a-z0-9_]{0,62}$")],
        str | int | float | bool | list[str] | None,
    ],
    Field(max_length=200, description="Values keyed by custom field `key`."),
]


class NotNullable(InputModel):
    """A PATCH body: a field may be omitted, but the ones named in `not_null` may not be null."""

    not_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _reject_nulls(self) -> Self:
        nulls = sorted(
            name for name in self.model_fields_set & self.not_null if getattr(self, name) is None
        )
        if nulls:
            raise PydanticCustomError(
                "not_nullable", "{fields} may be omitted but not null", {"fields": ", ".join(nulls)}
            )
        return self
