"""Assertions shared by the API tests."""

import asyncio
from typing import Any

import httpx
import pytest

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of `status` and type `…/problems/<slug>`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith(f"/problems/{slug}"), body["type"]
    assert body["title"]
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"] == body.get(
        "request_id", response.headers["x-request-id"]
    )
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body["errors"]}


@pytest.fixture(autouse=True)
def ids_follow_creation_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids are time-ordered to the millisecond: a pause before each POST makes the order
    records were created in their id order, which these tests spell out. Autouse in the
    modules that import it."""
    post = httpx.AsyncClient.post

    async def paused(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        await asyncio.sleep(0.002)
        return await post(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "post", paused)
