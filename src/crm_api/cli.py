"""`crm-api`: serve, migrate, manage users and keys, seed demo data, write the OpenAPI document."""

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from crm_api.config import get_settings
from crm_api.core.db import Database
from crm_api.core.enums import Role
from crm_api.core.listing import ListParams
from crm_api.core.migrations import upgrade
from crm_api.core.normalize import normalize_email
from crm_api.core.principal import ALL_SCOPES
from crm_api.core.reader import Reader
from crm_api.users.schemas import UserCreate
from crm_api.users.service import UserService
from crm_api.worker.runner import run_worker

DEFAULT_OPENAPI_PATH = Path("openapi/openapi.json")


async def _with_users(action: Callable[[UserService], Awaitable[Any]]) -> Any:
    """Runs `action` with an operator-level UserService in one committed transaction."""
    db = Database(get_settings().database_url)
    await db.start()
    try:
        async with db.sessionmaker() as session:
            result = await action(UserService(session, Reader(db, session), None))
            await session.commit()
            return result
    finally:
        await db.close()


def cmd_migrate(_: argparse.Namespace) -> None:
    upgrade(get_settings().database_url)


def cmd_create_user(args: argparse.Namespace) -> None:
    body = UserCreate(email=args.email, name=args.name, role=Role(args.role))
    user = asyncio.run(_with_users(lambda users: users.create(body.model_dump())))
    print(user["id"])


def cmd_create_api_key(args: argparse.Namespace) -> None:
    async def create(users: UserService) -> str:
        user = await users.users.get_by_email(normalize_email(args.email))
        if user is None:
            raise SystemExit(f"no user with email {args.email}")
        key = await users.create_api_key(
            name=args.name, scopes=list(ALL_SCOPES), user_id=user["id"]
        )
        return str(key["secret"])

    print(asyncio.run(_with_users(create)))


def cmd_serve(args: argparse.Namespace) -> None:
    from crm_api.server import serve

    serve(args.host, args.port, args.workers)


def cmd_worker(_: argparse.Namespace) -> None:
    settings = get_settings()

    async def work() -> None:
        db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            lock_timeout_ms=settings.lock_timeout_ms,
        )
        await db.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await run_worker(db, settings, stop)
        finally:
            await db.close()

    asyncio.run(work())


def cmd_quickstart(args: argparse.Namespace) -> None:
    """Migrate; on an empty database create an admin and print its key once; then serve."""
    upgrade(get_settings().database_url)

    async def bootstrap(users: UserService) -> str | None:
        listing = await users.list_users(ListParams(limit=1), {})
        if listing[0]:
            return None
        admin = await users.create(
            {"email": args.admin_email, "name": "Admin", "role": Role.admin, "team": None}
        )
        key = await users.create_api_key(
            name="quickstart", scopes=list(ALL_SCOPES), user_id=admin["id"]
        )
        return str(key["secret"])

    secret = asyncio.run(_with_users(bootstrap))
    if secret:
        print(
            f"Admin {args.admin_email} created. API key (shown once):\n\n    {secret}\n",
            file=sys.stderr,
        )
    else:
        print("Users exist already; use an API key you created before.", file=sys.stderr)
    print(f"Docs: http://{args.host}:{args.port}/docs", file=sys.stderr)
    cmd_serve(args)


def cmd_seed_demo(args: argparse.Namespace) -> None:
    from crm_api.demo import seed_demo

    counts = asyncio.run(
        seed_demo(get_settings().database_url, args.companies, args.contacts, args.deals)
    )
    print(json.dumps(counts))


def cmd_openapi(args: argparse.Namespace) -> None:
    from crm_api.app import create_app

    document = create_app().openapi()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            raise SystemExit(f"{args.output} is out of date: run `crm-api openapi`")
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def serve_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8000)
        command.add_argument("--workers", type=int, default=1)

    serve = commands.add_parser("serve", help="serve the API")
    serve_options(serve)
    serve.set_defaults(run=cmd_serve)

    quickstart = commands.add_parser(
        "quickstart", help="migrate, create an admin and key on first run, then serve"
    )
    serve_options(quickstart)
    quickstart.add_argument("--admin-email", default="admin@example.com")
    quickstart.set_defaults(run=cmd_quickstart)

    commands.add_parser("migrate", help="migrate the database to head").set_defaults(
        run=cmd_migrate
    )
    commands.add_parser(
        "worker",
        help="run the background worker (feed, webhooks, retention, imports) until SIGTERM",
    ).set_defaults(run=cmd_worker)

    create_user = commands.add_parser("create-user", help="create a user; prints its id")
    create_user.add_argument("--email", required=True)
    create_user.add_argument("--name", required=True)
    create_user.add_argument("--role", choices=[r.value for r in Role], default="rep")
    create_user.set_defaults(run=cmd_create_user)

    create_key = commands.add_parser("create-api-key", help="prints only the new secret")
    create_key.add_argument("--email", required=True, help="the user the key acts as")
    create_key.add_argument("--name", required=True, help="a label for the key")
    create_key.set_defaults(run=cmd_create_api_key)

    seed = commands.add_parser("seed-demo", help="load realistic demo data")
    seed.add_argument("--companies", type=int, default=50)
    seed.add_argument("--contacts", type=int, default=300)
    seed.add_argument("--deals", type=int, default=120)
    seed.set_defaults(run=cmd_seed_demo)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", type=Path, default=DEFAULT_OPENAPI_PATH)
    openapi.add_argument("--check", action="store_true", help="fail if the file is stale")
    openapi.set_defaults(run=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
