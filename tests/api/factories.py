"""Small factories and walkers the contact/company API tests share; each goes through HTTP."""

from typing import Any
from uuid import uuid4

import httpx

from tests.conftest import Actor


def unique_email(prefix: str = "person") -> str:
    return f"{prefix}-{uuid4().hex[:10]}@example.com"


def unique_domain(prefix: str = "acme") -> str:
    return f"{prefix}-{uuid4().hex[:10]}.com"


async def create_contact(actor: Actor, **fields: Any) -> dict[str, Any]:
    """A contact created by `actor`; with no identifying field given, a unique email is used."""
    if not {"first_name", "last_name", "email"} & fields.keys():
        fields["email"] = unique_email()
    response = await actor.client.post("/v1/contacts", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_company(actor: Actor, **fields: Any) -> dict[str, Any]:
    """A company created by `actor`; `name` defaults to a unique one."""
    fields.setdefault("name", f"Company {uuid4().hex[:8]}")
    response = await actor.client.post("/v1/companies", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def define_custom_field(
    admin: Actor, object_type: str, key: str, field_type: str, **fields: Any
) -> dict[str, Any]:
    """A custom field definition, made by an admin (only admins define fields)."""
    body = {"object_type": object_type, "key": key, "label": key.title(), "type": field_type}
    response = await admin.client.post("/v1/custom-fields", json={**body, **fields})
    assert response.status_code == 201, response.text
    definition: dict[str, Any] = response.json()
    return definition


STAGES = [
    {"name": "Lead", "probability": 10},
    {"name": "Demo", "probability": 40},
    {"name": "Won", "probability": 100, "kind": "won"},
    {"name": "Lost", "probability": 0, "kind": "lost"},
]


async def create_pipeline(actor: Actor, stages: list[dict[str, Any]] | None = None) -> Any:
    response = await actor.client.post(
        "/v1/pipelines", json={"name": f"P {uuid4().hex[:6]}", "stages": stages or STAGES}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def default_pipeline(client: httpx.AsyncClient) -> dict[str, Any]:
    """The migration's "Sales" pipeline, with `by_name` mapping stage names to stage ids."""
    response = await client.get("/v1/pipelines")
    assert response.status_code == 200, response.text
    (sales,) = [p for p in response.json()["data"] if p["is_default"]]
    sales["by_name"] = {stage["name"]: stage["id"] for stage in sales["stages"]}
    return dict(sales)


async def create_deal(actor: Actor, **fields: Any) -> dict[str, Any]:
    """A deal created by `actor`; `name` defaults to a unique one."""
    fields.setdefault("name", f"Deal {uuid4().hex[:8]}")
    response = await actor.client.post("/v1/deals", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_product(actor: Actor, **fields: Any) -> dict[str, Any]:
    """A product created by `actor` (a manager or admin); a unique sku, priced 10.00 USD."""
    fields.setdefault("sku", f"SKU-{uuid4().hex[:8]}")
    fields.setdefault("name", f"Product {fields['sku']}")
    fields.setdefault("unit_price", "10.00")
    fields.setdefault("currency", "USD")
    response = await actor.client.post("/v1/products", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def archive(actor: Actor, path: str) -> None:
    response = await actor.client.delete(path)
    assert response.status_code == 204, response.text


async def list_ids(client: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    """The ids on one page of up to 500 rows (asserting it is the only page)."""
    response = await client.get(path, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [row["id"] for row in body["data"]]


async def walk(
    client: httpx.AsyncClient, path: str, *, limit: int, max_pages: int = 100, **params: Any
) -> list[list[dict[str, Any]]]:
    """Every page of a list, following `next_cursor` until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(max_pages):
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError(f"{path} did not end within {max_pages} pages")
