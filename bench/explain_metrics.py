"""EXPLAIN (ANALYZE, BUFFERS) every statement a metrics scenario runs, as crm-api runs it.

    .venv/bin/python bench/explain_metrics.py metrics_lead_response [metrics_retention ...]
    .venv/bin/python bench/explain_metrics.py --generic metrics          # every one, generic plans

Runs crm-api's `MetricsService` for the scenario's request (crm-api's defaults: the last 90 days,
the base currency) on the baseline's `ConnectionReader`, so each statement is crm-api's compiled
SQL with crm-api's parameters, in crm-api's order; before running each one for real (the service
needs its rows to go on), it prints the SQL, the parameters and the plan. `--generic` shows the
plan PostgreSQL caches for a prepared statement after its fifth run (`plan_cache_mode =
force_generic_plan`) instead of the one planned for these parameter values.
"""

import argparse
import asyncio
import time
import urllib.parse
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
from baseline import FILTER_TYPES, ConnectionReader, CrmSql, init_connection, metric
from metrics_scenarios import METRICS
from sqlalchemy import Select

from crm_api.core.db import SERVER_SETTINGS
from crm_api.metrics.params import get_currency, get_window, present
from crm_api.metrics.service import MetricsService


def literal(value: Any) -> str:
    """A parameter as SQL text, for `EXECUTE` (which takes no bound parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class ExplainingReader(ConnectionReader):
    generic = False

    async def all(self, stmt: Select[Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled = self.sql.compile(stmt)
        args = compiled.args(params)
        print(f"\n-- {compiled.sql}\n-- parameters: {args!r}")
        if self.generic:
            # The plan a prepared statement gets once PostgreSQL caches a generic one.
            await self.connection.execute(f"PREPARE bench_explain AS {compiled.sql}")
            values = f"({', '.join(map(literal, args))})" if args else ""
            explain = f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_explain{values}"
            plan = await self.connection.fetch(explain)
            await self.connection.execute("DEALLOCATE bench_explain")
        else:
            explain = f"EXPLAIN (ANALYZE, BUFFERS) {compiled.sql}"
            plan = await self.connection.fetch(explain, *args)
        print("\n".join(row[0] for row in plan), flush=True)
        return await super().all(stmt, params)


async def explain(dsn: str, keys: list[str], generic: bool) -> None:
    sql = CrmSql(dsn)
    # crm-api's connection settings (JIT off), as the baseline has them.
    connection = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    try:
        await init_connection(connection)
        if generic:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
        for scenario in (scenario for scenario in METRICS if scenario.key in keys):
            query = dict(urllib.parse.parse_qsl(scenario.query))
            window = await get_window(
                date.fromisoformat(query["from"]) if "from" in query else None,
                date.fromisoformat(query["to"]) if "to" in query else None,
            )
            currency = await get_currency(query.get("currency"))

            def given(*names: str, query: dict[str, str] = query) -> dict[str, Any]:
                return present(**{name: FILTER_TYPES[name](query[name]) if name in query
                                  else None for name in names})  # fmt: skip

            print(f"\n==== {scenario.name} ({scenario.key})", flush=True)
            reader = ExplainingReader(connection, sql)
            reader.generic = generic
            service = MetricsService(reader)  # type: ignore[arg-type]
            started = time.perf_counter()
            await metric(scenario.endpoint, service, window, given, currency, query)
            print(f"==== {scenario.name}: {time.perf_counter() - started:.2f}s in all")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="crm_bench")
    parser.add_argument("--generic", action="store_true", help="show the generic plans")
    parser.add_argument("keys", nargs="+", help="metrics_* scenario keys, or `metrics` for all")
    args = parser.parse_args()
    every = [scenario.key for scenario in METRICS]
    keys = every if "metrics" in args.keys else args.keys
    if unknown := set(keys) - set(every):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    asyncio.run(explain(f"{args.server_url}/{args.db_name}", keys, args.generic))


if __name__ == "__main__":
    main()
