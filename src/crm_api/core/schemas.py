"""Schema bases and field types every slice's schemas build on."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
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


def reject_unstorable(value: Any) -> Any:
    """NUL and lone UTF-16 surrogates (which JSON's \\u escapes can carry) cannot be stored as
    text by the databases, and are never meaningful in CRM data."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_unstorable(key)
            reject_unstorable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            reject_unstorable(item)
    return value


def _within_int64(value: Any) -> Any:
    # Checked before validation: a larger int would otherwise quietly become a float.
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("integers must fit in 64 bits")
    return value


# asyncpg writes the calendar's first and last instants and days as PostgreSQL's -infinity and
# infinity, which read back as something else (no offset, no arithmetic): they are refused.
_CALENDAR_ENDS = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


def to_utc(value: datetime) -> datetime:
    """An aware datetime as UTC; one whose UTC form falls outside years 1-9999, or on their
    very first or last microsecond, is invalid."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None
    if moment in _CALENDAR_ENDS:
        raise ValueError(
            "must be after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59.999999Z"
        )
    return moment


class InputModel(BaseModel):
    """A request body: unknown fields are errors and no string may hold NUL."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return reject_unstorable(value)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _secret_not_required(schema: dict[str, Any]) -> None:
    schema["required"] = [name for name in schema.get("required", []) if name != "secret"]


class WithSecret(ReadModel):
    """A response that shows a `secret` once (see `core.responses.SHOWN_ONCE`): an idempotent
    replay of it, which stores no secret, leaves the property out, so it is not required."""

    model_config = ConfigDict(json_schema_extra=_secret_not_required)


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


SafeStr = Annotated[str, AfterValidator(reject_unstorable)]
"""A query-string value that must be storable text."""
UTCInstant = Annotated[AwareDatetime, AfterValidator(to_utc)]
"""A timestamp with a timezone, normalized to UTC."""


def _iso_day(value: Any) -> Any:
    # Lax parsing would also take a timestamp or a number of seconds as a date.
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    if not isinstance(value, str | date) or isinstance(value, datetime):
        raise ValueError("must be a date string, YYYY-MM-DD")
    return value


def _within_calendar(day: date) -> date:
    if day in (date.min, date.max):  # see _CALENDAR_ENDS
        raise ValueError("must be after 0001-01-01 and before 9999-12-31")
    return day


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
Day = Annotated[date, BeforeValidator(_iso_day), AfterValidator(_within_calendar)]
"""A calendar date in a body: `YYYY-MM-DD` only (no timestamps, no numbers)."""

Name = Annotated[str, AfterValidator(collapse_whitespace), Str(min_length=1, max_length=200)]
ShortText = Annotated[str, Str(strip_whitespace=True, max_length=200)]
Label = Annotated[str, Str(strip_whitespace=True, max_length=100)]
"""A short classifier such as an industry, lead source or team."""
ExternalId = Annotated[str, Str(strip_whitespace=True, min_length=1, max_length=200)]
Sku = Annotated[str, Str(strip_whitespace=True, min_length=1, max_length=100)]
Note = Annotated[str, Str(strip_whitespace=True, max_length=500)]
"""A sentence or two, such as a deal's next step or the reason it was lost."""
LongText = Annotated[str, Str(strip_whitespace=True, max_length=2000)]


def _phone(value: str) -> str:
    from crm_api.config import get_settings

    return normalize_phone(value, get_settings().default_phone_region)


_PLAIN_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def _decimal_string(value: Any) -> Any:
    # Money travels as strings so no client ever rounds it through a float; plain digits only
    # (no exponent, NaN or Infinity).
    if not isinstance(value, str) or not _PLAIN_DECIMAL.fullmatch(value.strip()):
        raise ValueError('must be a decimal string, e.g. "1250.00"')
    return value.strip()


def _decimal_or_integer(value: Any) -> Any:
    # Quantities may be JSON integers, but a fraction must be a string: never a float.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('must be a decimal string such as "1.5", or an integer')
    return _decimal_string(str(value))


Email = Annotated[str, Str(max_length=320), AfterValidator(normalize_email)]
Phone = Annotated[str, Str(max_length=40), AfterValidator(_phone)]
Domain = Annotated[str, Str(max_length=2000), AfterValidator(normalize_domain)]
Currency = Annotated[str, Str(min_length=3, max_length=3), AfterValidator(validate_currency)]
DECIMAL_STRING_SCHEMA = {"type": "string", "format": "decimal", "pattern": r"^\d+(\.\d+)?$"}
DecimalString = Annotated[Decimal, WithJsonSchema(DECIMAL_STRING_SCHEMA)]
"""Money on the way out: a decimal string, never a JSON number."""
MoneyAmount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(ge=0, max_digits=18, decimal_places=4),
    WithJsonSchema(DECIMAL_STRING_SCHEMA),
]
DECIMAL_INPUT_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "decimal", "pattern": r"^\d+(\.\d+)?$"},
        {"type": "integer"},
    ]
}
Quantity = Annotated[
    Decimal,
    BeforeValidator(_decimal_or_integer),
    Field(gt=0, max_digits=18, decimal_places=4),
    WithJsonSchema(DECIMAL_INPUT_SCHEMA),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(_decimal_or_integer),
    Field(ge=0, le=100, decimal_places=4),
    WithJsonSchema(DECIMAL_INPUT_SCHEMA),
]
CustomFields = Annotated[
    dict[
        Annotated[str, Str(pattern=r"^[a-z][a-z0-9_]{0,62}$")],
        Annotated[str | int | float | bool | list[str] | None, BeforeValidator(_within_int64)],
    ],
    Field(max_length=200, description="Values keyed by custom field `key`."),
]


def _not_nullable_in_schema(schema: dict[str, Any], model: type[Any]) -> None:
    # Document what `_reject_nulls` enforces: drop the null branch of each `not_null` field.
    for name in getattr(model, "not_null", ()):
        field = schema.get("properties", {}).get(name, {})
        branches = [b for b in field.pop("anyOf", []) if b.get("type") != "null"]
        if len(branches) == 1:
            field.update(branches[0])
        elif branches:
            field["anyOf"] = branches


class NotNullable(InputModel):
    """A PATCH body: a field may be omitted, but the ones named in `not_null` may not be null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_nullable_in_schema)
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


class UpsertOutcome(StrEnum):
    created = "created"
    updated = "updated"
    unchanged = "unchanged"


class UpsertItemResult(BaseModel):
    index: int = Field(description="The item's position in `items`.")
    id: UUID
    result: UpsertOutcome


class BatchUpsertResult(BaseModel):
    results: list[UpsertItemResult] = Field(description="One per item, in order.")
    created: int
    updated: int
    unchanged: int
