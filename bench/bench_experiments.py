"""What the experiments engine costs: an analyze call per engine and metric type, a phase's
results, and assignment per person; gbstats 0.8.0 on the same sums beside it when installed.

The engine works from sufficient statistics, so its cost does not depend on how many people an
experiment holds: a phase's results are shown for 10³ and 10⁹ people per arm. CPU time
(`time.process_time`), medians of REPEATS with the spread (min-max); one core.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from midstage.logic.experiments.assignment import Split, assign, assigner, in_global_control
from midstage.models.experiments import Experiment, PhaseStatistics
from midstage.services.experiments import analyze, parse_analyze, results

REPEATS = 5
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

PROPORTION = [{"id": "control", "n": 5000, "sum": 500}, {"id": "b", "n": 5000, "sum": 560}]
MEAN = [
    {"id": "control", "n": 1000, "sum": 12345.0, "sum_squares": 400000.0},
    {"id": "b", "n": 1010, "sum": 13000.0, "sum_squares": 430000.0},
]
CUPED = [
    {**MEAN[0], "covariate_sum": 11000.0, "covariate_sum_squares": 350000.0, "main_covariate_sum_product": 360000.0},
    {**MEAN[1], "covariate_sum": 11200.0, "covariate_sum_squares": 355000.0, "main_covariate_sum_product": 380000.0},
]
RATIO = [
    {**MEAN[0], "denominator_sum": 2000.0, "denominator_sum_squares": 5000.0, "main_denominator_sum_product": 30000.0},
    {**MEAN[1], "denominator_sum": 2100.0, "denominator_sum_squares": 5200.0, "main_denominator_sum_product": 32000.0},
]
CASES: dict[str, dict[str, Any]] = {
    "proportion": {"metric_type": "proportion", "variants": PROPORTION},
    "mean": {"metric_type": "mean", "variants": MEAN},
    "mean + CUPED": {"metric_type": "mean", "cuped": True, "variants": CUPED},
    "ratio": {"metric_type": "ratio", "variants": RATIO},
}


def per_call(work: Callable[[], object], calls: int) -> tuple[float, float, float]:
    """Median, min and max µs per call over REPEATS, CPU time."""
    samples = []
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(calls):
            work()
        samples.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(samples), min(samples), max(samples)


def show(label: str, figures: tuple[float, float, float], unit: str = "µs") -> None:
    median, low, high = figures
    print(f"   {label:<44} {median:>10.1f} {unit}  ({low:.1f}-{high:.1f})")


def gbstats_call(body: dict[str, Any]) -> Callable[[], object] | None:
    try:
        from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
        from gbstats.frequentist.tests import (
            FrequentistConfig,
            SequentialConfig,
            SequentialTwoSidedTTest,
            TwoSidedTTest,
        )
        from gbstats.models.statistics import ProportionStatistic
    except ImportError:
        return None
    control, treatment = (ProportionStatistic(n=v["n"], sum=v["sum"]) for v in body["variants"])
    engine = body["engine"]
    if engine == "bayesian":
        return lambda: EffectBayesianABTest(control, treatment, EffectBayesianConfig()).compute_result()
    if engine == "frequentist":
        return lambda: TwoSidedTTest(control, treatment, FrequentistConfig()).compute_result()
    return lambda: SequentialTwoSidedTTest(control, treatment, SequentialConfig()).compute_result()


ARMS = [{"id": "control", "weight": 45}, {"id": "b", "weight": 45}, {"id": "holdout", "weight": 10, "holdout": True}]
METRICS = [
    {"id": "purchase", "kind": "conversion", "event": "Order Completed"},
    {"id": "revenue", "kind": "mean", "event": "Order Completed", "value": "revenue"},
    {"id": "unsubscribe", "kind": "conversion", "event": "Unsubscribed", "guardrail": True, "inverse": True},
]


def experiment_and_sums(people: int) -> tuple[Experiment, PhaseStatistics]:
    arms = [arm["id"] for arm in ARMS]
    target = {"kind": "campaign", "id": "c"}
    experiment = Experiment.model_validate(
        {
            "id": "bench",
            "name": "bench",
            "target": target,
            "arms": ARMS,
            "goal": "purchase",
            "metrics": METRICS,
            "status": "running",
            "phases": [
                {
                    "number": 1,
                    "started_at": NOW - timedelta(days=2),
                    "arms": ARMS,
                    "control": "control",
                    "target": target,
                }
            ],
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    sizes = {"control": people, "b": people, "holdout": people // 4}
    sums = PhaseStatistics.model_validate(
        {
            "experiment_id": "bench",
            "phase": 1,
            "exposures": sizes,
            "metrics": {
                "purchase": [{"arm": a, "sum": sizes[a] // 10} for a in arms],
                "revenue": [{"arm": a, "sum": 6.0 * sizes[a], "sum_squares": 540.0 * sizes[a]} for a in arms],
                "unsubscribe": [{"arm": a, "sum": sizes[a] // 200} for a in arms],
            },
        }
    )
    return experiment, sums


def main() -> None:
    print("   analyze, one treatment against control (µs per call, CPU):")
    for name, case in CASES.items():
        for engine in ("bayesian", "frequentist", "sequential"):
            body = {**case, "engine": engine}
            show(f"{name}, {engine}", per_call(lambda body=body: analyze(parse_analyze(body)), 300))
    print("   gbstats 0.8.0 on the proportion sums, its test object alone (no parsing):")
    for engine in ("bayesian", "frequentist", "sequential"):
        call = gbstats_call({**CASES["proportion"], "engine": engine})
        if call is None:
            print("   gbstats is not installed; skipped")
            break
        show(f"gbstats {engine}", per_call(call, 300))
    print("   a phase's results: 3 arms, 3 metrics, every engine (ms per call, CPU):")
    for people in (1_000, 1_000_000_000):
        experiment, sums = experiment_and_sums(people)
        figures = per_call(lambda e=experiment, s=sums: results(e, s, now=NOW), 20)
        show(f"{people:,} people per arm", tuple(f / 1000 for f in figures), "ms")  # type: ignore[arg-type]
    print("   assignment of 100,000 people (µs per person, CPU):")
    split = Split.of([("control", 45), ("b", 45), ("holdout", 10)])
    ids = [f"p{i:07d}" for i in range(100_000)]
    audience = assigner(split, "bench", 1)
    for label, work in (
        ("assigner (one phase, whole audience)", lambda: list(map(audience, ids))),
        ("assign (one call per person)", lambda: [assign(split, "bench", 1, u) for u in ids]),
        ("in_global_control", lambda: [in_global_control(u, 0.05) for u in ids]),
    ):
        show(label, tuple(f / len(ids) for f in per_call(work, 1)))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
