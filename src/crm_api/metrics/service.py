"""Runs the metrics' statements and turns their per-group rows into the response bodies:
interpolated percentiles, ratios and money, each rounded once, half-even."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any
from uuid import UUID

from crm_api.core.errors import Invalid
from crm_api.core.ids import utcnow
from crm_api.core.money import to_minor_units
from crm_api.core.reader import Reader, Row
from crm_api.metrics import repository as sql
from crm_api.metrics.params import Window
from crm_api.metrics.sql import MEDIAN, P90
from crm_api.pipelines.repository import DEFAULT_PIPELINE

ZERO = Decimal(0)
SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600


def rounded(value: Decimal | None) -> float | None:
    """Two decimals, half-even, as a JSON number."""
    if value is None:
        return None
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def ratio(part: Decimal | int, whole: Decimal | int, scale: int = 1) -> Decimal | None:
    if not whole:
        return None
    with localcontext(prec=60):
        return Decimal(part) * scale / Decimal(whole)


def percent(part: int, whole: int) -> float | None:
    return rounded(ratio(part, whole, 100))


def months_of(window: Window) -> list[str]:
    months, day = [], window.first.replace(day=1)
    while day <= window.last:
        months.append(f"{day:%Y-%m}")
        day = (day + timedelta(days=32)).replace(day=1)
    return months


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def _key(row: Row) -> str | None:
    key = row.get("key")
    return None if key is None else str(key)


def _by_key(rows: Iterable[Row]) -> list[Row]:
    """Group rows in a stable order: by key, a missing key last."""
    return sorted(rows, key=lambda row: (row["key"] is None, str(row["key"])))


class MetricsService:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def _rows(self, statement: Any, params: dict[str, Any]) -> list[Row]:
        return await self.reader.all(statement, params)

    # -- pipeline --------------------------------------------------------------------------------

    async def pipeline(
        self, filters: dict[str, Any], currency: str, target: Decimal | None
    ) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        params = {**filters, "currency": currency}
        stage_rows = await self._rows(
            sql.open_stages(tuple(name for name in shape if name == "pipeline_id")), params
        )
        found: dict[UUID, list[int | Decimal]] = defaultdict(lambda: [0, ZERO, 0])
        for row in await self._rows(sql.open_deals_by_stage(shape), params):
            figures = found[row["stage_id"]]
            if row["currency"] == currency:
                figures[0] += row["deals"]
                figures[1] += row["amount"]
            else:
                figures[2] += row["deals"]
        pipelines: dict[UUID, dict[str, Any]] = {}
        weighted_total = ZERO
        for row in stage_rows:
            deals, amount, excluded = found[row["stage_id"]]
            weighted = Decimal(amount) * row["probability"] / 100
            weighted_total += weighted
            pipeline = pipelines.setdefault(
                row["pipeline_id"],
                {"pipeline_id": row["pipeline_id"], "name": row["pipeline_name"],
                 "deals": 0, "amount": ZERO, "weighted_amount": ZERO, "excluded_deals": 0,
                 "stages": []},
            )  # fmt: skip
            pipeline["deals"] += deals
            pipeline["amount"] += amount
            pipeline["weighted_amount"] += weighted
            pipeline["excluded_deals"] += excluded
            pipeline["stages"].append(
                {"stage_id": row["stage_id"], "name": row["name"],
                 "probability": row["probability"], "deals": deals,
                 "amount": to_minor_units(Decimal(amount), currency),
                 "weighted_amount": to_minor_units(weighted, currency),
                 "excluded_deals": excluded}
            )  # fmt: skip
        for pipeline in pipelines.values():
            pipeline["amount"] = to_minor_units(pipeline["amount"], currency)
            pipeline["weighted_amount"] = to_minor_units(pipeline["weighted_amount"], currency)
        amount = sum((p["amount"] for p in pipelines.values()), ZERO)
        return {
            "currency": currency,
            "deals": sum(p["deals"] for p in pipelines.values()),
            "amount": to_minor_units(amount, currency),
            "weighted_amount": to_minor_units(weighted_total, currency),
            "excluded_deals": sum(p["excluded_deals"] for p in pipelines.values()),
            "target": target,
            "coverage": rounded(ratio(amount, target)) if target is not None else None,
            "pipelines": list(pipelines.values()),
        }

    # -- forecast --------------------------------------------------------------------------------

    async def forecast(
        self, window: Window, filters: dict[str, Any], currency: str
    ) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        params = {**filters, **window.params()}
        months: dict[str, dict[str, Any]] = {
            month: {"won_deals": 0, "won_amount": ZERO, "open_deals": 0, "commit": ZERO,
                    "best_case": ZERO}
            for month in months_of(window)
        }  # fmt: skip
        excluded = 0
        for row in await self._rows(sql.won_by_month(shape), params):
            if row["currency"] != currency:
                excluded += row["deals"]
                continue
            months[row["month"]]["won_deals"] += row["deals"]
            months[row["month"]]["won_amount"] += row["amount"]
        for row in await self._rows(sql.open_by_close_month(shape), params):
            if row["currency"] != currency:
                excluded += row["deals"]
                continue
            month = months[row["month"]]
            month["open_deals"] += row["deals"]
            month["best_case"] += row["amount"]
            month["commit"] += Decimal(row["amount"]) * row["probability"] / 100
        undated = await self.reader.scalar(sql.undated_open_deals(shape), params)
        totals = {
            name: sum((month[name] for month in months.values()), start)
            for name, start in (("won_deals", 0), ("won_amount", ZERO), ("open_deals", 0),
                                ("commit", ZERO), ("best_case", ZERO))
        }  # fmt: skip

        def money(figures: dict[str, Any]) -> dict[str, Any]:
            return {
                name: to_minor_units(value, currency) if isinstance(value, Decimal) else value
                for name, value in figures.items()
            }

        return {
            **window.echo(),
            "currency": currency,
            "excluded_deals": excluded,
            "undated_open_deals": undated,
            "totals": money(totals),
            "months": [{"month": month, **money(figures)} for month, figures in months.items()],
        }

    # -- closed deals ----------------------------------------------------------------------------

    async def win_rate(
        self, window: Window, filters: dict[str, Any], group: str | None
    ) -> dict[str, Any]:
        rows = await self._rows(
            sql.win_rate(tuple(sorted(filters)), group), {**filters, **window.params()}
        )
        won, lost = sum(row["won"] for row in rows), sum(row["lost"] for row in rows)
        groups = [
            {"key": _key(row), "won": row["won"], "lost": row["lost"],
             "win_rate": percent(row["won"], row["won"] + row["lost"])}
            for row in (_by_key(rows) if group else [])
        ]  # fmt: skip
        return {
            **window.echo(),
            "won": won,
            "lost": lost,
            "win_rate": percent(won, won + lost),
            "group_by": group,
            "groups": groups,
        }

    async def _statistics(
        self, statement: Any, shape: tuple[str, ...], group: str | None, params: dict[str, Any]
    ) -> tuple[Row | None, list[Row]]:
        """The overall row and, with a grouping, the rows per group."""
        overall = await self.reader.one(statement(shape, None), params)
        grouped = _by_key(await self._rows(statement(shape, group), params)) if group else []
        return overall, grouped

    async def deal_size(
        self, window: Window, filters: dict[str, Any], group: str | None, currency: str
    ) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        params = {**filters, **window.params(), "currency": currency}
        overall, grouped = await self._statistics(sql.deal_size, shape, group, params)
        excluded = await self.reader.scalar(sql.won_in_other_currencies(shape), params)

        def figures(row: Row | None) -> dict[str, Any]:
            n = row["n"] if row else 0
            if not row or not n:
                return {"deals": 0, "total": None, "mean": None, "median": None}
            total = Decimal(row["total"])
            return {
                "deals": n,
                "total": to_minor_units(total, currency),
                "mean": to_minor_units(ratio(total, n) or ZERO, currency),
                "median": to_minor_units(MEDIAN.value(row, n) or ZERO, currency),
            }

        return {
            **window.echo(),
            "currency": currency,
            "excluded_deals": excluded,
            **figures(overall),
            "group_by": group,
            "groups": [{"key": _key(row), **figures(row)} for row in grouped],
        }

    async def sales_cycle(
        self, window: Window, filters: dict[str, Any], group: str | None
    ) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        params = {**filters, **window.params()}
        overall, grouped = await self._statistics(sql.sales_cycle, shape, group, params)

        def figures(row: Row | None) -> dict[str, Any]:
            n = row["n"] if row else 0
            return {"deals": n, **_durations(row, n, SECONDS_PER_DAY, "days")}

        return {
            **window.echo(),
            **figures(overall),
            "group_by": group,
            "groups": [{"key": _key(row), **figures(row)} for row in grouped],
        }

    # -- stage funnel ----------------------------------------------------------------------------

    async def stage_funnel(
        self, window: Window, filters: dict[str, Any], stall_days: int
    ) -> dict[str, Any]:
        pipeline_id = filters.get("pipeline_id")
        if pipeline_id is None:
            pipeline_id = await self.reader.scalar(DEFAULT_PIPELINE, {})
        stage_rows = await self._rows(sql.FUNNEL_STAGES, {"pipeline_id": pipeline_id})
        if not stage_rows:
            raise Invalid(
                "No such pipeline.", [("query.pipeline_id", f"no pipeline has id {pipeline_id}")]
            )
        shape = tuple(sorted(name for name in filters if name != "pipeline_id"))
        params = {
            **filters,
            **window.params(),
            "pipeline_id": pipeline_id,
            "stalled_before": utcnow() - timedelta(days=stall_days),
        }
        ended_at = {
            row["position"]: row["deals"]
            for row in await self._rows(sql.funnel_furthest(shape), params)
        }
        visits = await self._rows(sql.funnel_time_in_stage(shape), params)
        times = {row["key"]: row for row in visits}
        now: dict[UUID, int] = defaultdict(int)
        stalled: dict[UUID, int] = defaultdict(int)
        deals = lost = 0
        for row in await self._rows(sql.funnel_now(shape), params):
            deals += row["deals"]
            now[row["stage_id"]] += row["deals"]
            if row["status"] == "lost":
                lost += row["deals"]
            elif row["status"] == "open":
                stalled[row["stage_id"]] += row["stalled"]
        funnel = [row for row in stage_rows if row["kind"] != "lost"]
        reached = [
            sum(n for position, n in ended_at.items() if position >= row["position"])
            for row in funnel
        ]
        stages = []
        for index, row in enumerate(funnel):
            stage_visits = times.get(row["id"])
            n = stage_visits["n"] if stage_visits else 0
            following = reached[index + 1] if index + 1 < len(funnel) else None
            durations = _durations(stage_visits, n, SECONDS_PER_DAY, "days", (MEDIAN,))
            stages.append(
                {"stage_id": row["id"], "name": row["name"], "kind": row["kind"],
                 "reached": reached[index],
                 "conversion_to_next": None if following is None
                 else percent(following, reached[index]),
                 "mean_days": durations["mean_days"], "median_days": durations["median_days"],
                 "visits": n, "deals_now": now[row["id"]], "stalled": stalled[row["id"]]}
            )  # fmt: skip
        return {
            **window.echo(),
            "pipeline_id": pipeline_id,
            "stall_days": stall_days,
            "deals": deals,
            "lost": lost,
            "stalled": sum(stalled.values()),
            "stages": stages,
        }

    # -- contacts --------------------------------------------------------------------------------

    async def lead_response(
        self, window: Window, filters: dict[str, Any], group: str | None
    ) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        params = {**filters, **window.params()}
        overall, grouped = await self._statistics(sql.lead_response, shape, group, params)

        def figures(row: Row | None) -> dict[str, Any]:
            contacts, n = (row["rows"], row["n"]) if row else (0, 0)
            return {
                "contacts": contacts,
                "contacted": n,
                "never_contacted": contacts - n,
                **_durations(row, n, SECONDS_PER_HOUR, "hours"),
            }

        return {
            **window.echo(),
            **figures(overall),
            "group_by": group,
            "groups": [{"key": _key(row), **figures(row)} for row in grouped],
        }

    async def conversion_by_source(
        self, window: Window, filters: dict[str, Any], currency: str
    ) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        params = {**filters, **window.params()}
        sources: dict[str | None, dict[str, Any]] = {}
        for row in await self._rows(sql.conversion_by_source(shape), params):
            sources[row["lead_source"]] = {
                "lead_source": row["lead_source"], "contacts": row["contacts"],
                "converted": row["converted"], "won_deals": 0, "won_amount": ZERO,
                "excluded_deals": 0,
            }  # fmt: skip
        for row in await self._rows(sql.won_by_source(shape), params):
            source = sources[row["lead_source"]]
            if row["currency"] == currency:
                source["won_deals"] += row["deals"]
                source["won_amount"] += row["amount"]
            else:
                source["excluded_deals"] += row["deals"]
        rows = sorted(sources.values(), key=lambda s: (s["lead_source"] is None, s["lead_source"]))
        for source in rows:
            source["conversion"] = percent(source["converted"], source["contacts"])
            source["won_amount"] = to_minor_units(source["won_amount"], currency)
        totals: dict[str, Any] = {
            name: sum((source[name] for source in rows), start)
            for name, start in (("contacts", 0), ("converted", 0), ("won_deals", 0),
                                ("won_amount", ZERO))
        }  # fmt: skip
        totals["conversion"] = percent(totals["converted"], totals["contacts"])
        totals["won_amount"] = to_minor_units(totals["won_amount"], currency)
        return {
            **window.echo(),
            "currency": currency,
            # A deal on contacts from two sources is excluded (or won) once per source.
            "excluded_deals": sum(source["excluded_deals"] for source in rows),
            "totals": totals,
            "sources": rows,
        }

    async def retention(self, window: Window, filters: dict[str, Any]) -> dict[str, Any]:
        row = await self.reader.one(
            sql.retention(tuple(sorted(filters))), {**filters, **window.params()}
        )
        customers, churned = (row["customers"], row["churned"]) if row else (0, 0)
        return {
            **window.echo(),
            "customers_at_start": customers,
            "churned": churned,
            "retained": customers - churned,
            "retention": percent(customers - churned, customers),
            "churn": percent(churned, customers),
        }

    async def activity(self, window: Window, filters: dict[str, Any]) -> dict[str, Any]:
        rows = await self._rows(
            sql.activity_by_week(tuple(sorted(filters))), {**filters, **window.params()}
        )
        kinds = ("call", "email", "meeting", "note", "total")
        return {
            **window.echo(),
            "totals": {kind: sum(row[kind] for row in rows) for kind in kinds},
            "weeks": [
                {"week": iso_week(row["week_start"]), "week_start": row["week_start"],
                 "user_id": row["user_id"], **{kind: row[kind] for kind in kinds}}
                for row in rows
            ],
        }  # fmt: skip

    async def data_quality(self, filters: dict[str, Any]) -> dict[str, Any]:
        shape = tuple(sorted(filters))
        objects = []
        filled_cells = cells = 0
        for name, (fields, statement) in sql.FILLED.items():
            row = await self.reader.one(statement(shape), filters)
            records = row["records"] if row else 0
            filled = {field: row[field] if row else 0 for field in fields}
            filled_cells += sum(filled.values())
            cells += records * len(fields)
            objects.append(
                {"object": name, "records": records,
                 "completeness": percent(sum(filled.values()), records * len(fields)),
                 "fields": [{"field": field, "filled": count, "percent": percent(count, records)}
                            for field, count in filled.items()]}
            )  # fmt: skip
        duplicates = await self.reader.one(sql.duplicate_contacts(shape), filters)
        return {
            "completeness": percent(filled_cells, cells),
            "objects": objects,
            "duplicates": {
                kind: duplicates[kind] if duplicates else 0
                for kind in ("email", "phone", "contacts")
            },
        }


def _durations(
    row: Row | None, n: int, unit: int, suffix: str, percentiles: tuple[Any, ...] = (MEDIAN, P90)
) -> dict[str, float | None]:
    """Mean and percentiles of a row of `sql.order_statistics` over seconds, in `unit`s."""
    names = {MEDIAN: "median", P90: "p90"}
    figures = {f"mean_{suffix}": rounded(ratio(row["total"], n * unit)) if row and n else None}
    for percentile in percentiles:
        value = percentile.value(row, n) if row else None
        figures[f"{names[percentile]}_{suffix}"] = (
            None if value is None else rounded(ratio(value, unit))
        )
    return figures
