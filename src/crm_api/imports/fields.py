"""What a CSV column may map onto, and how a row's cells become a create body.

Targets are the fields of the object type's create body (`ContactCreate`, …): `email`,
`company_id`, an address part such as `address.city`, and `custom_fields.<key>` for a live custom
field. A row becomes the JSON body the single-record endpoint would take: a cell is trimmed, an
empty cell sets nothing, and custom field values are converted to their type (numbers, `true` /
`false` / `yes` / `no` / `1` / `0`, multi_enum options separated by `;`). The create schema and
the custom field rules then decide, exactly as for `POST /v1/<things>`.
"""

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from crm_api.companies.schemas import CompanyCreate, CompanyUpdate
from crm_api.contacts.schemas import ContactCreate, ContactUpdate
from crm_api.custom_fields.catalog import Definition, Definitions
from crm_api.custom_fields.models import FieldType, ObjectType
from crm_api.deals.schemas import DealCreate, DealUpdate
from crm_api.imports.models import ImportMatchKey

CUSTOM_PREFIX = "custom_fields."
CREATE_MODELS: Mapping[ObjectType, type[BaseModel]] = {
    ObjectType.contact: ContactCreate,
    ObjectType.company: CompanyCreate,
    ObjectType.deal: DealCreate,
}
UPDATE_MODELS: Mapping[ObjectType, type[BaseModel]] = {
    ObjectType.contact: ContactUpdate,
    ObjectType.company: CompanyUpdate,
    ObjectType.deal: DealUpdate,
}
MATCH_KEYS: Mapping[ObjectType, tuple[ImportMatchKey, ...]] = {
    ObjectType.contact: (ImportMatchKey.external_id, ImportMatchKey.email),
    ObjectType.company: (ImportMatchKey.external_id, ImportMatchKey.domain),
    ObjectType.deal: (ImportMatchKey.external_id,),
}
PLURALS: Mapping[ObjectType, str] = {
    ObjectType.contact: "contacts",
    ObjectType.company: "companies",
    ObjectType.deal: "deals",
}
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field such as `address: Address | None`, if it is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for argument in get_args(annotation):
            found = _nested_model(argument)
            if found is not None:
                return found
    return None


def standard_targets(object_type: ObjectType) -> tuple[str, ...]:
    """The create body's fields a column may map onto (a nested object's by its parts)."""
    targets: list[str] = []
    for name, info in CREATE_MODELS[object_type].model_fields.items():
        if name == "custom_fields":
            continue
        nested = _nested_model(info.annotation)
        if nested is None:
            targets.append(name)
        else:
            targets += [f"{name}.{part}" for part in nested.model_fields]
    return tuple(targets)


def check_mapping(
    object_type: ObjectType,
    mapping: Mapping[str, str],
    headers: list[str],
    definitions: Definitions,
) -> list[tuple[str, str]]:
    """The problems of a mapping, as (field, message): a target that is no field of the
    object type (or no live custom field), a column the file lacks, two columns onto one field."""
    standard = set(standard_targets(object_type))
    present = set(headers)
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for column, target in mapping.items():
        field = f"body.mapping.{column}"
        if column not in present:
            problems.append((field, "is not a column of the file's header row"))
        elif headers.count(column) > 1:
            problems.append((field, "names a column the header row has more than once"))
        if target.startswith(CUSTOM_PREFIX):
            definition = definitions.get(target.removeprefix(CUSTOM_PREFIX))
            if definition is None or definition.archived:
                message = f"{target} is not a live custom field of {PLURALS[object_type]}"
                problems.append((field, message))
                continue
        elif target not in standard:
            problems.append((field, f"{target} is not a field of {PLURALS[object_type]}"))
            continue
        if target in seen:
            problems.append((field, f"maps onto {target}, as column {seen[target]!r} does"))
        else:
            seen[target] = column
    return problems


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    target: str
    group: str | None
    """`custom_fields`, or a nested object such as `address`, that `name` belongs to."""
    name: str


class RowReader:
    """Turns a row's cells into a create body by the job's mapping."""

    def __init__(self, headers: list[str], mapping: Mapping[str, str]) -> None:
        self.width = len(headers)
        self.columns: list[Column] = []
        for column, target in mapping.items():
            group, _, name = target.rpartition(".")
            self.columns.append(Column(headers.index(column), target, group or None, name))

    def body(self, cells: list[str], definitions: Definitions) -> dict[str, Any]:
        """The create body of a row; ValueError if it has cells beyond the header's."""
        if len(cells) > self.width and any(cell.strip() for cell in cells[self.width :]):
            raise ValueError(f"the row has {len(cells)} cells; the header row has {self.width}")
        body: dict[str, Any] = {}
        width = len(cells)
        for column in self.columns:
            cell = cells[column.index].strip() if column.index < width else ""
            if not cell:
                continue
            if column.group is None:
                body[column.name] = cell
            elif column.group == "custom_fields":
                value = custom_value(definitions.get(column.name), cell)
                body.setdefault("custom_fields", {})[column.name] = value
            else:
                body.setdefault(column.group, {})[column.name] = cell
        return body


def custom_value(definition: Definition | None, cell: str) -> Any:
    """A cell as a custom field's value. A cell that is not of the field's type stays text, so
    the custom field rules reject it with their own message."""
    if definition is None:
        return cell
    match definition.type:
        case FieldType.number:
            if _INTEGER.fullmatch(cell):
                return int(cell)
            if _NUMBER.fullmatch(cell):
                number = float(cell)
                return number if number not in (float("inf"), float("-inf")) else cell
        case FieldType.boolean:
            lowered = cell.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        case FieldType.multi_enum:
            return [option.strip() for option in cell.split(";") if option.strip()]
    return cell


def validation_reason(error: ValidationError) -> str:
    """A schema's complaints about a row, as `field: message; …`."""
    parts = []
    for problem in error.errors():
        if problem["type"] == "not_nullable":
            fields = str(problem["ctx"]["fields"]).split(", ")
            parts += [f"{name}: may be omitted but not null" for name in fields]
            continue
        path = ".".join(str(part) for part in problem["loc"])
        parts.append(f"{path}: {problem['msg']}" if path else problem["msg"])
    return "; ".join(parts)
