"""The only place with custom field definition SQL: the record kind and the catalog's read."""

from typing import Any

from sqlalchemy import bindparam, select

from crm_api.core.db import table_of
from crm_api.core.listing import ListSpec, record_filters, record_sorts
from crm_api.core.reader import Row
from crm_api.core.records import RecordKind
from crm_api.custom_fields.models import CustomFieldDefinition

definitions = table_of(CustomFieldDefinition)


def to_read(row: Row) -> dict[str, Any]:
    record = {key: value for key, value in row.items() if key != "name_key"}
    record["options"] = [
        {"value": option["value"], "label": option.get("label") or option["value"]}
        for option in row["options"]
    ]
    return record


LISTING = ListSpec(
    table=definitions,
    filters={
        **record_filters(definitions),
        "object_type": lambda: definitions.c.object_type == bindparam("object_type"),
        "type": lambda: definitions.c.type == bindparam("type"),
    },
    sorts=record_sorts(definitions),
    default_sort="created_at",
    archived_column=definitions.c.archived_at,
)

CUSTOM_FIELD = RecordKind(
    entity_type="custom_field",
    table=definitions,
    read=select(definitions).where(definitions.c.id == bindparam("id")),
    to_read=to_read,
    listing=LISTING,
    unique_keys=(),
    path="/v1/custom-fields",
    owned=False,
)

ALL_DEFINITIONS = select(
    definitions.c.object_type,
    definitions.c.key,
    definitions.c.type,
    definitions.c.options,
    definitions.c.required,
    definitions.c.archived_at,
)

BY_KEY = select(definitions.c.id).where(
    definitions.c.object_type == bindparam("object_type"), definitions.c.key == bindparam("key")
)
