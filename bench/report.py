"""The results: the printed table, the targets from the issue, and the JSON file."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load import Measurement
from metrics_scenarios import METRICS, P50_LIMIT


@dataclass(frozen=True)
class Target:
    what: str
    value: str
    """The key of the measured value."""
    limit: float
    at_most: bool
    """True if the value must stay at or below the limit, False if at or above."""
    scenarios: tuple[str, ...]
    """The scenarios it needs (unchecked unless all ran); a miss profiles the first one."""


TARGETS = (
    Target("GET one >= 0.5x baseline", "get_one.ratio", 0.5, False, ("get_one",)),
    Target("GET one crm p99 < 100 ms", "get_one.crm_p99_ms", 100.0, True, ("get_one",)),
    Target("list 50 >= 0.4x baseline", "list_first.ratio", 0.4, False, ("list_first",)),
    Target("deep page p50 <= 1.5x first page p50", "deep_over_first_p50", 1.5, True,
           ("list_deep", "list_first")),
    Target("POST create >= 0.35x baseline", "post.ratio", 0.35, False, ("post",)),
    Target("board >= 0.5x baseline", "board.ratio", 0.5, False, ("board",)),
    Target("list 50 of a stage by -amount >= 0.5x baseline", "list_stage_amount.ratio", 0.5,
           False, ("list_stage_amount",)),
    Target("timeline deep p50 <= 1.5x timeline first p50", "timeline_deep_over_first_p50", 1.5,
           True, ("timeline_deep", "timeline_first")),
    Target("timeline first >= 0.5x baseline", "timeline_first.ratio", 0.5, False,
           ("timeline_first",)),
    # The acceptance for the metrics: one request's latency against the same SQL raw.
    *(Target(f"{scenario.name} p50 <= {P50_LIMIT}x baseline p50", f"{scenario.key}.p50_ratio",
             P50_LIMIT, True, (scenario.key,)) for scenario in METRICS),
)  # fmt: skip
# crm-api's p50 on a deep page over its p50 on the first page: (value key, deep, first).
P50_RATIOS = (
    ("deep_over_first_p50", "list_deep", "list_first"),
    ("timeline_deep_over_first_p50", "timeline_deep", "timeline_first"),
)


@dataclass
class Report:
    started_at: str
    config: dict[str, Any]
    dataset: dict[str, Any] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Anything that makes a number untrustworthy: error responses, a busy machine, a failure."""
    targets: list[dict[str, Any]] = field(default_factory=list)
    """Each with `met`: True, False, or None when its scenarios were not run (`--only`)."""
    profiles: dict[str, str] = field(default_factory=dict)
    """py-spy summaries of crm-api's workers, by scenario name."""

    def add(
        self, key: str, name: str, crm_runs: list[Measurement], baseline_runs: list[Measurement]
    ) -> None:
        """One scenario's result: of each server's runs, the one with the median req/s."""
        crm, baseline = median_run(crm_runs), median_run(baseline_runs)
        measured = crm.requests and baseline.requests
        self.results[key] = {
            "scenario": name,
            "crm": {**asdict(crm), "rps": round(crm.rps, 1)},
            "baseline": {**asdict(baseline), "rps": round(baseline.rps, 1)},
            "ratio": round(crm.rps / baseline.rps, 3) if measured else None,
            "p50_ratio": round(crm.p50_us / baseline.p50_us, 3) if measured else None,
            "rounds_rps": {
                "crm": [round(run.rps, 1) for run in crm_runs],
                "baseline": [round(run.rps, 1) for run in baseline_runs],
            },
            "rounds_p50_ms": {
                "crm": [round(run.p50_us / 1000, 2) for run in crm_runs],
                "baseline": [round(run.p50_us / 1000, 2) for run in baseline_runs],
            },
        }
        for server, runs in (("crm", crm_runs), ("baseline", baseline_runs)):
            for result in runs:
                if not result.requests:
                    self.problems.append(
                        f"{server} / {name}: no request completed in the run: its figures "
                        "mean nothing (a longer --duration lets some finish)"
                    )
                if result.non_2xx_3xx or result.socket_errors:
                    self.problems.append(
                        f"{server} / {name}: {result.non_2xx_3xx} non-2xx/3xx responses and "
                        f"{result.socket_errors} socket errors in {result.requests} requests"
                    )

    def fail(self, key: str, name: str, error: str) -> None:
        self.results[key] = {"scenario": name, "error": error}
        self.problems.append(f"{name}: not measured: {error}")

    def check_targets(self) -> None:
        values = self._target_values()
        for target in TARGETS:
            value, limit = values.get(target.value), target.limit
            met = value is not None and (value <= limit if target.at_most else value >= limit)
            if not all(key in self.results for key in target.scenarios):
                met = None
            self.targets.append(
                {"target": target.what, "actual": value, "limit": limit, "met": met,
                 "scenario": target.scenarios[0]}
            )  # fmt: skip

    def missed_scenarios(self) -> set[str]:
        """The scenarios behind missed targets."""
        return {target["scenario"] for target in self.targets if target["met"] is False}

    def _target_values(self) -> dict[str, float]:
        values = {}
        for key, result in self.results.items():
            if "error" not in result:
                for value in ("ratio", "p50_ratio"):
                    if result[value] is not None:
                        values[f"{key}.{value}"] = result[value]
                values[f"{key}.crm_p99_ms"] = result["crm"]["p99_us"] / 1000
        for name, deep_key, first_key in P50_RATIOS:
            first, deep = self.results.get(first_key, {}), self.results.get(deep_key, {})
            if "crm" in first and "crm" in deep:
                values[name] = round(deep["crm"]["p50_us"] / first["crm"]["p50_us"], 3)
                self.dataset[name] = values[name]
        return values

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")


def median_run(runs: list[Measurement]) -> Measurement:
    """A real run (its percentiles belong together), not a mix of several runs' numbers."""
    return sorted(runs, key=lambda run: run.rps)[(len(runs) - 1) // 2]


def _ms(micros: float) -> str:
    return f"{micros / 1000:.2f} ms"


def _rps(rps: float) -> str:
    return f"{rps:,.1f}" if rps < 100 else f"{rps:,.0f}"


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def table(report: Report) -> str:
    header = ("scenario", "crm req/s", "crm p50", "crm p99", "baseline req/s", "baseline p50",
              "baseline p99", "ratio crm/baseline", "p50 crm/baseline")  # fmt: skip
    lines = [header]
    for result in report.results.values():
        if "error" in result:
            lines.append((result["scenario"], *["FAILED"] * (len(header) - 1)))
            continue
        crm, base = result["crm"], result["baseline"]
        lines.append((
            result["scenario"],
            _rps(crm["rps"]), _ms(crm["p50_us"]), _ms(crm["p99_us"]),
            _rps(base["rps"]), _ms(base["p50_us"]), _ms(base["p99_us"]),
            _times(result["ratio"]), _times(result["p50_ratio"]),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rows = ["| " + " | ".join(map(str.ljust, line, widths)) + " |" for line in lines]
    rows.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(rows)


def render(report: Report, load_line: str) -> str:
    lines = [load_line, "", table(report), ""]
    p50_ratios = (("deep_over_first_p50", "deep page p50 / first page p50"),
                  ("timeline_deep_over_first_p50", "timeline deep p50 / first p50"))  # fmt: skip
    for name, what in p50_ratios:
        if report.dataset.get(name) is not None:
            lines.append(f"crm {what}: {report.dataset[name]:.2f}")
    lines.append("")
    for target in report.targets:
        if target["met"] is None:
            lines.append(f"  [not run] {target['target']}")
            continue
        mark = "met   " if target["met"] else "MISSED"
        lines.append(f"  [{mark}] {target['target']}: actual {target['actual']}")
    if report.problems:
        lines += ["", "!" * 88, "!!! PROBLEMS: the numbers above may not mean what they say"]
        lines += [f"!!! {problem}" for problem in report.problems]
        lines.append("!" * 88)
    return "\n".join(lines)
