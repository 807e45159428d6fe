"""Webhooks through HTTP and the worker: subscriptions and secrets, Standard Webhooks
signatures, at-least-once delivery with retries and back-off, Retry-After, 410, disabling a
failing subscription, the delivery log and replay, the SSRF guard, and several workers side
by side. Endpoints are played by an httpx MockTransport."""

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from crm_api.config import Settings
from crm_api.core.db import Database
from crm_api.core.events import event_row, events
from crm_api.core.ids import utcnow, uuid7
from crm_api.feed.sequencer import place_committed
from crm_api.webhooks.delivery import (
    RETRY_DELAYS,
    claim_due,
    deliver_due,
    fan_out,
    record,
    send,
)
from crm_api.webhooks.models import deliveries, subscriptions
from crm_api.webhooks.signing import signature, verify
from crm_api.webhooks.targets import Target, internal
from crm_api.worker.runner import Worker
from tests.api.factories import create_company, create_deal, create_pipeline
from tests.api.helpers import assert_problem, error_fields
from tests.conftest import Actor

HOOK = "http://hooks.test/receive"


class Endpoint:
    """A webhook receiver: answers with `responses` in turn (the last one repeats) and keeps
    every request it got."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses) or [httpx.Response(204)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


async def subscribe(actor: Actor, **fields: Any) -> dict[str, Any]:
    response = await actor.client.post("/v1/webhooks", json={"url": HOOK, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_worker(db: Database, settings: Settings, endpoint: Endpoint) -> None:
    async with endpoint.client() as client:
        await Worker(db, settings, client).tick()


async def win_a_deal(actor: Actor) -> dict[str, Any]:
    pipeline = await create_pipeline(actor)
    won = next(s["id"] for s in pipeline["stages"] if s["kind"] == "won")
    company = await create_company(actor)
    deal = await create_deal(actor, pipeline_id=pipeline["id"], company_id=company["id"])
    response = await actor.client.patch(f"/v1/deals/{deal['id']}", json={"stage_id": won})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def log_of(actor: Actor, subscription_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await actor.client.get(f"/v1/webhooks/{subscription_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def make_due(db: Database) -> None:
    """Moves every pending delivery's next attempt to now (as if its back-off had passed)."""
    async with db.sessionmaker() as session:
        pending = deliveries.c.status == "pending"
        await session.execute(update(deliveries).where(pending).values(next_attempt_at=utcnow()))
        await session.commit()


class TestSubscriptions:
    async def test_create_shows_the_secret_once(self, manager: Actor) -> None:
        created = await manager.client.post(
            "/v1/webhooks", json={"url": HOOK, "event_types": ["deal.won", "deal.won"]}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["secret"].startswith("whsec_")
        assert body["event_types"] == ["deal.won"]
        assert body["active"] is True
        assert created.headers["location"] == f"/v1/webhooks/{body['id']}"
        assert created.headers["etag"] == '"1"'
        read = (await manager.client.get(f"/v1/webhooks/{body['id']}")).json()
        assert "secret" not in read
        assert read == {k: v for k, v in body.items() if k != "secret"}
        listed = (await manager.client.get("/v1/webhooks")).json()["data"]
        assert [s["id"] for s in listed] == [body["id"]]

    async def test_update_delete_and_access(self, manager: Actor, rep: Actor) -> None:
        hook = await subscribe(manager)
        path = f"/v1/webhooks/{hook['id']}"
        stale = await manager.client.patch(
            path, json={"active": False}, headers={"If-Match": '"9"'}
        )
        assert_problem(stale, 412, "precondition-failed")
        changed = await manager.client.patch(
            path, json={"active": False, "event_types": ["contact.created"]}
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["active"], changed.json()["version"]) == (False, 2)
        assert_problem(await manager.client.patch(path, json={"url": None}), 422, "validation")
        assert_problem(await rep.client.get("/v1/webhooks"), 403, "forbidden")
        assert_problem(await rep.client.post("/v1/webhooks", json={"url": HOOK}), 403, "forbidden")
        assert (await manager.client.delete(path)).status_code == 204
        assert_problem(await manager.client.get(path), 404, "not-found")

    @pytest.mark.parametrize(
        "fields",
        [
            {"url": "ftp://hooks.test/x"},
            {"url": "http://user:pw@hooks.test/x"},
            {"url": "not a url"},
            {"url": HOOK, "event_types": ["Deal Won"]},
            {"url": HOOK, "secret": "mine"},
        ],
    )
    async def test_bad_subscriptions_are_422(self, manager: Actor, fields: dict[str, Any]) -> None:
        response = await manager.client.post("/v1/webhooks", json=fields)
        assert_problem(response, 422, "validation")

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
        ],
    )
    async def test_internal_targets_are_refused(
        self, manager: Actor, private_targets_refused: None, url: str
    ) -> None:
        body = assert_problem(
            await manager.client.post("/v1/webhooks", json={"url": url}), 422, "validation"
        )
        assert error_fields(body) == {"body.url"}


@pytest.fixture
def private_targets_refused(app: Any) -> Iterator[None]:
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"webhook_allow_private_targets": False})
    yield
    app.state.settings = settings


class TestDelivery:
    async def test_a_won_deal_is_delivered_signed(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["deal.won"])
        deal = await win_a_deal(admin)
        endpoint = Endpoint(httpx.Response(200))
        await run_worker(db, settings, endpoint)

        (request,) = endpoint.requests
        assert str(request.url) == HOOK
        assert request.headers["content-type"] == "application/json"
        message_id = request.headers["webhook-id"]
        timestamp = int(request.headers["webhook-timestamp"])
        assert abs(timestamp - utcnow().timestamp()) < 60
        header = request.headers["webhook-signature"]
        assert header == signature(hook["secret"], message_id, timestamp, request.content)
        assert verify(hook["secret"], message_id, timestamp, request.content, header)
        event = httpx.Response(200, content=request.content).json()
        assert event["type"] == "deal.won"
        assert event["data"]["id"] == deal["id"]
        assert event["data"]["company"]["id"] == deal["company"]["id"]

        (delivery,) = await log_of(admin, hook["id"])
        assert delivery["id"] == message_id
        assert delivery["status"] == "delivered"
        assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(200, None)]
        assert delivery["payload"] == event
        # Nothing more to send.
        await run_worker(db, settings, endpoint)
        assert len(endpoint.requests) == 1

    async def test_failures_back_off_and_retry_with_the_same_id(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin)
        endpoint = Endpoint(
            httpx.Response(500),
            httpx.ReadTimeout("slow"),
            httpx.Response(302, headers={"location": "http://elsewhere.test/"}),
            httpx.Response(204),
        )
        before = utcnow()
        await run_worker(db, settings, endpoint)
        (first,) = await log_of(admin, hook["id"])
        assert first["status"] == "pending"
        wait = datetime.fromisoformat(first["next_attempt_at"]) - before
        assert timedelta(seconds=24) <= wait <= timedelta(seconds=37), wait
        # Not due yet: the next round sends nothing.
        await run_worker(db, settings, endpoint)
        assert len(endpoint.requests) == 1
        for _ in range(3):
            await make_due(db)
            await run_worker(db, settings, endpoint)
        (done,) = await log_of(admin, hook["id"])
        assert done["status"] == "delivered"
        assert [(a["status_code"], a["error"]) for a in done["attempts"]] == [
            (500, "HTTP 500"),
            (None, "no response within 10 s"),
            (302, "HTTP 302"),  # a redirect is not followed, and not a success
            (204, None),
        ]
        assert {r.headers["webhook-id"] for r in endpoint.requests} == {done["id"]}
        assert [str(r.url) for r in endpoint.requests] == [HOOK] * 4

    def test_retries_span_more_than_a_day(self) -> None:
        assert sum(RETRY_DELAYS) * 0.8 >= 24 * 3600

    async def test_retry_after_is_honoured(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin)
        endpoint = Endpoint(httpx.Response(429, headers={"retry-after": "120"}))
        before = utcnow()
        await run_worker(db, settings, endpoint)
        (delivery,) = await log_of(admin, hook["id"])
        wait = datetime.fromisoformat(delivery["next_attempt_at"]) - before
        assert timedelta(seconds=119) <= wait <= timedelta(seconds=125), wait
        assert delivery["attempts"][0]["status_code"] == 429

    async def test_gone_disables_the_subscription_and_says_so(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        cursor = (await admin.client.get("/v1/events/cursor")).json()["cursor"]
        await create_company(admin)
        await run_worker(db, settings, Endpoint(httpx.Response(410)))
        read = (await admin.client.get(f"/v1/webhooks/{hook['id']}")).json()
        assert read["active"] is False
        assert read["disabled_reason"] == "The endpoint answered 410 Gone."
        (delivery,) = await log_of(admin, hook["id"])
        assert delivery["status"] == "failed"
        feed = (await admin.client.get("/v1/events", params={"after": cursor})).json()["data"]
        disabled = [e for e in feed if e["type"] == "webhook_subscription.disabled"]
        assert [e["entity_id"] for e in disabled] == [hook["id"]]
        assert "secret" not in disabled[0]["data"]
        # Turned on again, it is a fresh start.
        again = await admin.client.patch(f"/v1/webhooks/{hook['id']}", json={"active": True})
        assert again.json()["disabled_reason"] is None

    async def test_a_subscription_failing_for_days_is_disabled(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin)
        endpoint = Endpoint(httpx.Response(500))
        await run_worker(db, settings, endpoint)
        assert (await admin.client.get(f"/v1/webhooks/{hook['id']}")).json()["active"] is True
        async with db.sessionmaker() as session:
            long_ago = utcnow() - timedelta(days=settings.webhook_disable_after_days)
            await session.execute(update(subscriptions).values(failing_since=long_ago))
            await session.commit()
        await make_due(db)
        await run_worker(db, settings, endpoint)
        read = (await admin.client.get(f"/v1/webhooks/{hook['id']}")).json()
        assert read["active"] is False
        assert read["disabled_reason"] == "Every delivery failed for 5 days."

    async def test_a_delivery_is_given_up_after_the_last_retry(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin)
        endpoint = Endpoint(httpx.Response(503))
        await run_worker(db, settings, endpoint)
        async with db.sessionmaker() as session:
            await session.execute(update(deliveries).values(attempts=len(RETRY_DELAYS)))
            await session.commit()
        await make_due(db)
        await run_worker(db, settings, endpoint)
        (delivery,) = await log_of(admin, hook["id"], status="failed")
        assert delivery["next_attempt_at"] is None

    async def test_replay_sends_a_delivery_again(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin)
        endpoint = Endpoint(httpx.Response(200))
        await run_worker(db, settings, endpoint)
        (delivery,) = await log_of(admin, hook["id"])
        path = f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/replay"
        replayed = await admin.client.post(path)
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["status"] == "pending"
        await run_worker(db, settings, endpoint)
        assert [r.headers["webhook-id"] for r in endpoint.requests] == [delivery["id"]] * 2
        (again,) = await log_of(admin, hook["id"])
        assert again["status"] == "delivered"
        assert len(again["attempts"]) == 2
        missing = f"/v1/webhooks/{hook['id']}/deliveries/{hook['id']}/replay"
        assert_problem(await admin.client.post(missing), 404, "not-found")

    async def test_rotation_signs_with_both_secrets_during_the_overlap(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        rotated = await admin.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret", json={})
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != hook["secret"]
        assert rotated.json()["previous_secret_expires_at"] is not None
        await create_company(admin)
        endpoint = Endpoint(httpx.Response(200))
        await run_worker(db, settings, endpoint)
        (request,) = endpoint.requests
        header = request.headers["webhook-signature"]
        assert len(header.split(" ")) == 2
        args = (request.headers["webhook-id"], int(request.headers["webhook-timestamp"]))
        assert verify(new_secret, *args, request.content, header)
        assert verify(hook["secret"], *args, request.content, header)
        # Without an overlap, only the new secret signs.
        final = await admin.client.post(
            f"/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_hours": 0}
        )
        await create_company(admin)
        await run_worker(db, settings, endpoint)
        last = endpoint.requests[-1]
        args = (last.headers["webhook-id"], int(last.headers["webhook-timestamp"]))
        assert verify(
            final.json()["secret"], *args, last.content, last.headers["webhook-signature"]
        )
        assert not verify(new_secret, *args, last.content, last.headers["webhook-signature"])

    async def test_only_events_after_the_subscription_and_of_its_types(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        await create_company(admin, name="Before")
        await run_worker(db, settings, Endpoint())
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin, name="After")
        await admin.client.post("/v1/contacts", json={"first_name": "Not a company"})
        endpoint = Endpoint(httpx.Response(200))
        await run_worker(db, settings, endpoint)
        names = [
            httpx.Response(200, content=r.content).json()["data"]["name"] for r in endpoint.requests
        ]
        assert names == ["After"]
        assert len(await log_of(admin, hook["id"])) == 1

    async def test_the_target_is_checked_again_before_sending(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(
            admin, url="http://127.0.0.1:9/hook", event_types=["company.created"]
        )
        await create_company(admin)
        strict = settings.model_copy(update={"webhook_allow_private_targets": False})
        endpoint = Endpoint(httpx.Response(200))
        await run_worker(db, strict, endpoint)
        assert endpoint.requests == []
        (delivery,) = await log_of(admin, hook["id"])
        assert delivery["attempts"][0]["error"].startswith("target refused")


async def test_workers_side_by_side_send_each_delivery_once(
    admin: Actor, db: Database, settings: Settings
) -> None:
    await subscribe(admin, event_types=["company.created"])
    for number in range(30):
        await create_company(admin, name=f"C{number}")
    await run_worker(db, settings, Endpoint(httpx.Response(500)))  # fans out; all fail once
    await make_due(db)
    endpoints = [Endpoint(httpx.Response(200)) for _ in range(3)]

    async def drain(endpoint: Endpoint) -> None:
        async with endpoint.client() as client:
            while await deliver_due(db, client, settings):
                pass

    await asyncio.gather(*(drain(e) for e in endpoints))
    sent = [r.headers["webhook-id"] for e in endpoints for r in e.requests]
    assert len(sent) == len(set(sent)) == 30
    async with db.sessionmaker() as session:
        count = select(func.count()).where(deliveries.c.status == "delivered")
        assert await session.scalar(count) == 30


class TestRobustness:
    async def test_a_send_that_blows_up_does_not_hold_back_the_others(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        good = await subscribe(admin, event_types=["company.created"])
        bad = await subscribe(admin, url="http://broken.test/hook", event_types=["company.created"])

        def endpoint(request: httpx.Request) -> httpx.Response:
            if request.url.host == "broken.test":
                raise RuntimeError("something no endpoint should do")
            return httpx.Response(200)

        await create_company(admin)
        async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
            await Worker(db, settings, client).tick()
        (delivered,) = await log_of(admin, good["id"])
        assert delivered["status"] == "delivered"
        (failed,) = await log_of(admin, bad["id"])
        assert failed["status"] == "pending"
        assert failed["attempts"][0]["error"].startswith("RuntimeError: something no endpoint")

    async def test_a_demoted_creator_s_subscription_stops_sending(
        self, admin: Actor, manager: Actor, db: Database, settings: Settings
    ) -> None:
        await subscribe(manager, event_types=["company.created"])
        demoted = await admin.client.patch(f"/v1/users/{manager.id}", json={"role": "rep"})
        assert demoted.status_code == 200, demoted.text
        await create_company(admin)
        endpoint = Endpoint(httpx.Response(200))
        await run_worker(db, settings, endpoint)
        assert endpoint.requests == []

    async def test_an_outcome_is_not_recorded_once_the_lease_is_lost(
        self, admin: Actor, db: Database, settings: Settings
    ) -> None:
        hook = await subscribe(admin, event_types=["company.created"])
        await create_company(admin)
        await place_committed(db)
        await fan_out(db)
        (claimed,) = await claim_due(db)
        await make_due(db)  # as if the lease ran out and another worker took it
        outcome = await send(Endpoint(httpx.Response(200)).client(), claimed, settings)
        await record(db, claimed, outcome, settings)
        (delivery,) = await log_of(admin, hook["id"])
        assert (delivery["status"], delivery["attempts"]) == ("pending", [])

    @pytest.mark.parametrize(
        "url", ["http://hooks.test:99999/x", f"http://{'a' * 64}.example/x", "http://[::1/x"]
    )
    async def test_unusable_urls_are_422_not_500(self, admin: Actor, url: str) -> None:
        response = await admin.client.post("/v1/webhooks", json={"url": url})
        assert error_fields(assert_problem(response, 422, "validation")) == {"body.url"}


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
        ("127.0.0.1", True),
        ("::ffff:127.0.0.1", True),
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of 169.254.169.254
        ("::7f00:1", True),  # IPv4-compatible 127.0.0.1
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("fd00::1", True),
        ("224.0.0.1", True),
    ],
)
def test_internal_addresses(address: str, inside: bool) -> None:
    assert internal(address) is inside


def test_a_checked_address_is_where_the_send_goes() -> None:
    target = Target("https://hooks.example.com:8443/in?x=1", "hooks.example.com", "93.184.216.34")
    url, headers, extensions = target.request()
    assert url == "https://93.184.216.34:8443/in?x=1"
    assert headers == {"host": "hooks.example.com:8443"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    v6 = Target("http://hooks.example.com/in", "hooks.example.com", "2606:2800:220:1::1")
    assert v6.request() == ("http://[2606:2800:220:1::1]/in", {"host": "hooks.example.com"}, {})


async def test_a_subscription_gets_what_the_feed_places_after_it_is_made(
    admin: Actor, db: Database, settings: Settings
) -> None:
    """Its start is a feed position, not a time: an event that committed a moment before it
    but is placed after it (placement runs after commit) still reaches it, and nothing placed
    before it does."""
    await create_company(admin, name="Placed before")
    await place_committed(db)
    async with db.sessionmaker() as session:
        late = event_row("company", "created", uuid7(), {"name": "Placed after"},
                         utcnow() - timedelta(seconds=5))  # fmt: skip
        await session.execute(insert(events), late)
        await session.commit()
    hook = await subscribe(admin, event_types=["company.created"])
    endpoint = Endpoint(httpx.Response(200))
    await run_worker(db, settings, endpoint)
    names = [httpx.Response(200, content=r.content).json()["data"]["name"]
             for r in endpoint.requests]  # fmt: skip
    assert names == ["Placed after"]
    assert len(await log_of(admin, hook["id"])) == 1
