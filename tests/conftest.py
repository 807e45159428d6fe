"""Test harness: one migrated database per run (SQLite file or a fresh PostgreSQL database),
emptied after every test, and an HTTP client per role that goes through the real ASGI app.

`CRM_TEST_DATABASE_URL` picks PostgreSQL, e.g. `postgresql+asyncpg://postgres@127.0.0.1/postgres`
(the server's maintenance database: a new database is created beside it and dropped after).
"""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import delete, select

from crm_api.app import create_app
from crm_api.config import Settings
from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.core.migrations import upgrade
from crm_api.core.principal import ALL_SCOPES
from crm_api.core.reader import Reader
from crm_api.custom_fields.catalog import CATALOG
from crm_api.models import metadata
from crm_api.pipelines.models import Pipeline, Stage
from crm_api.users.service import UserService
from tests.databases import fresh_database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # The worker runs where a test starts it, not behind every test in the app.
    return Settings(
        database_url=database_url,
        access_log=False,
        default_phone_region="US",
        in_process_worker=False,
        webhook_allow_private_targets=True,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def db(app: Any) -> Database:
    database: Database = app.state.db
    return database


@pytest.fixture(autouse=True)
async def _empty_database(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "db" not in request.fixturenames:
        return
    database: Database = request.getfixturevalue("db")
    # The default pipeline is created by a migration, so it stays (tests only read it).
    default = select(Pipeline.id).where(Pipeline.is_default.is_(True))
    keep = {
        "pipelines": Pipeline.is_default.is_(False),
        "pipeline_stages": Stage.pipeline_id.not_in(default),
    }
    # The tables go, so the custom field definitions cached from them go too.
    CATALOG.forget(database)
    async with database.sessionmaker() as session:
        for table in reversed(metadata.sorted_tables):
            statement = delete(table)
            if table.name in keep:
                statement = statement.where(keep[table.name])
            await session.execute(statement)
        await session.commit()


@dataclass
class Actor:
    """A user with an API key, and an HTTP client that sends it."""

    id: UUID
    email: str
    role: Role
    key: str
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_actor(app: Any, db: Database, role: Role, scopes: list[str] | None = None) -> Actor:
    email = f"{role.value}-{uuid4().hex[:8]}@example.com"
    async with db.sessionmaker() as session:
        users = UserService(session, Reader(db, session), None)
        user = await users.create(
            {"email": email, "name": f"Test {role.value}", "role": role, "team": None}
        )
        key = await users.create_api_key(
            name="tests", scopes=scopes or list(ALL_SCOPES), user_id=user["id"]
        )
        await session.commit()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key['secret']}"},
    )
    return Actor(id=user["id"], email=email, role=role, key=key["secret"], client=client)


@pytest.fixture
async def anonymous(app: Any, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


def _actor_fixture(name: str, role: Role) -> Any:
    """A fixture giving a fresh user of `role` with a key, for each test."""

    @pytest.fixture(name=name)
    async def actor(app: Any, db: Database) -> Actor:
        return await make_actor(app, db, role)

    return actor


admin = _actor_fixture("admin", Role.admin)
manager = _actor_fixture("manager", Role.manager)
rep = _actor_fixture("rep", Role.rep)
other_rep = _actor_fixture("other_rep", Role.rep)
viewer = _actor_fixture("viewer", Role.viewer)
