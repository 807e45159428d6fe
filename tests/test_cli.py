"""The `crm-api` command line, run as a user would: separate processes, a real server."""

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.databases import fresh_database
from tests.processes import free_port, run, serve


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("cli")) as url:
        run(url, "migrate")
        yield url


class TestUserAndKeyCommands:
    def test_create_user_then_key_prints_only_the_secret(self, migrated: str) -> None:
        user_id = run(
            migrated,
            "create-user",
            "--email",
            "Ops@Example.com",
            "--name",
            "Ops",
            "--role",
            "admin",
        ).strip()
        assert len(user_id) == 36
        output = run(migrated, "create-api-key", "--email", "ops@example.com", "--name", "cli")
        assert output.count("\n") == 1
        assert output.startswith("crm_")


class TestServe:
    def test_two_workers_serve_the_api_and_stop_cleanly(self, migrated: str) -> None:
        run(migrated, "create-user", "--email", "srv@example.com", "--name", "Srv", "--role", "rep")
        key = run(migrated, "create-api-key", "--email", "srv@example.com", "--name", "t").strip()
        port = free_port()
        server = serve(migrated, port, "--workers", "2")
        try:
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}"}
            for _ in range(6):  # new connections, spread over both workers
                me = httpx.get(f"{base}/v1/users/me", headers=headers)
                assert me.status_code == 200
                assert me.json()["email"] == "srv@example.com"
                assert me.headers["x-request-id"]
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0


class TestSeedDemo:
    def test_loads_companies_and_contacts(self, migrated: str) -> None:
        assert '"companies": 50' in run(migrated, "seed-demo")


class TestOpenapiCommand:
    def test_check_passes_on_the_committed_document(self, tmp_path: Path) -> None:
        committed = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
        run(
            "sqlite+aiosqlite:///" + str(tmp_path / "x.db"),
            "openapi",
            "--check",
            "--output",
            str(committed),
        )
