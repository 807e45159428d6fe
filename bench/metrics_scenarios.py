"""The metrics scenarios: one per `/v1/metrics/*` endpoint with crm-api's default parameters
(window: the last 90 days, today included; the base currency), plus one grouped variant.

Shared by the runner (the scenarios), the baseline (the routes it serves) and the report (one
target per scenario: crm-api's p50 at most `P50_LIMIT` times the baseline's).
"""

from dataclasses import dataclass

P50_LIMIT = 1.3
"""The issue's acceptance: each endpoint's p50 within 1.3x of the same SQL run raw."""
CONNECTIONS = 2
"""wrk connections for these scenarios: one request's latency, not a queue (a request takes
tens to hundreds of milliseconds of database time on the reference dataset)."""
TIMEOUT = 60
"""Seconds before wrk counts a response as timed out."""


@dataclass(frozen=True)
class MetricsScenario:
    key: str
    endpoint: str
    """The path under `/v1/metrics/` (crm-api) and `/metrics/` (baseline)."""
    query: str = ""
    """Query string, if any: only the grouped variant has one; all else is crm-api's default."""

    @property
    def name(self) -> str:
        return f"metrics {self.endpoint}" + (f"?{self.query}" if self.query else "")

    @property
    def path(self) -> str:
        return self.endpoint + (f"?{self.query}" if self.query else "")


METRICS = (
    MetricsScenario("metrics_pipeline", "pipeline"),
    MetricsScenario("metrics_forecast", "forecast"),
    MetricsScenario("metrics_win_rate", "win-rate"),
    MetricsScenario("metrics_win_rate_by_owner", "win-rate", "group_by=owner"),
    MetricsScenario("metrics_deal_size", "deal-size"),
    MetricsScenario("metrics_sales_cycle", "sales-cycle"),
    MetricsScenario("metrics_stage_funnel", "stage-funnel"),
    MetricsScenario("metrics_lead_response", "lead-response"),
    MetricsScenario("metrics_conversion_by_source", "conversion-by-source"),
    MetricsScenario("metrics_activity", "activity"),
    MetricsScenario("metrics_retention", "retention"),
    MetricsScenario("metrics_data_quality", "data-quality"),
)
METRICS_KEYS = tuple(scenario.key for scenario in METRICS)
