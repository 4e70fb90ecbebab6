"""Results as CSV of raw sums, and the analyze requests re-read from such a CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from midstage.errors import InvalidInput, describe
from midstage.logic.csvfile import prepare, read_records
from midstage.models.experiments import (
    AnalyzeRequest,
    ArmMetricStatistics,
    Engine,
    Experiment,
    PhaseStatistics,
)
from midstage.services.experiments.results import check_statistics, ordered_arms, phase_of

# ------------------------------------------------------------------------------ CSV export
CSV_COLUMNS: Final = (
    "experiment_id",
    "phase",
    "metric_id",
    "metric_type",
    "cuped",
    "inverse",
    "arm_id",
    "control",
    "weight",
    "n",
    "sum",
    "sum_squares",
    "denominator_sum",
    "denominator_sum_squares",
    "main_denominator_sum_product",
    "covariate_sum",
    "covariate_sum_squares",
    "main_covariate_sum_product",
)
_SUM_COLUMNS: Final = CSV_COLUMNS[10:]


def _number(value: float | None) -> str:
    # repr round-trips a float exactly, so re-running the export gives the same numbers.
    return "" if value is None else repr(float(value))


def results_csv(experiment: Experiment, statistics: PhaseStatistics) -> str:
    """The raw sufficient statistics of a phase, one row per metric and arm, control first, in
    the analyze request's field names: anyone can re-run them here, in gbstats or by hand."""
    phase = phase_of(experiment, statistics.phase)
    check_statistics(experiment, phase, statistics)
    weights = {arm.id: arm.weight for arm in phase.arms}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for metric in experiment.metrics:
        by_arm: Mapping[str, ArmMetricStatistics] = {row.arm: row for row in statistics.metrics[metric.id]}
        for arm in ordered_arms(phase):
            row = by_arm[arm]
            writer.writerow(
                [
                    experiment.id,
                    phase.number,
                    metric.id,
                    metric.metric_type,
                    str(metric.cuped).lower(),
                    str(metric.inverse).lower(),
                    arm,
                    str(arm == phase.control).lower(),
                    _number(weights[arm]),
                    statistics.exposures[arm],
                    *(_number(getattr(row, column)) for column in _SUM_COLUMNS),
                ]
            )
    return out.getvalue()


def analyze_requests_from_csv(
    text: str, *, engine: Engine = "bayesian", difference: str = "relative", alpha: float = 0.05
) -> dict[str, AnalyzeRequest]:
    """An analyze request per metric from an exported CSV (the rows in their order, control first)."""
    rows_by_metric: dict[str, list[dict[str, str]]] = {}
    records = read_records(prepare(text))  # ImportRefused is an InvalidInput
    header = next(records, None)
    names = header[1] if header is not None and not header[2] else []
    missing = set(CSV_COLUMNS) - set(names)
    if missing:
        raise InvalidInput(f"the CSV lacks columns {', '.join(sorted(missing))}")
    for line, cells, problem in records:
        if problem or len(cells) < len(names):
            raise InvalidInput(f"line {line}: {problem or f'fewer cells than the {len(names)} columns'}")
        row = dict(zip(names, cells, strict=False))
        rows_by_metric.setdefault(row["metric_id"], []).append(row)
    requests: dict[str, AnalyzeRequest] = {}
    for metric_id, rows in rows_by_metric.items():
        try:
            requests[metric_id] = AnalyzeRequest.model_validate(_analyze_body(rows, engine, difference, alpha))
        except ValueError as error:  # pydantic's ValidationError is a ValueError, as is float("x")
            why = describe(error, "csv") if isinstance(error, ValidationError) else str(error)
            raise InvalidInput(f"metric {metric_id}: {why}") from None
    return requests


def _analyze_body(rows: list[dict[str, str]], engine: Engine, difference: str, alpha: float) -> dict[str, Any]:
    first = rows[0]
    return {
        "metric_type": first["metric_type"],
        "engine": engine,
        "difference": difference,
        "alpha": alpha,
        "cuped": first["cuped"] == "true",
        "inverse": first["inverse"] == "true",
        "weights": [float(row["weight"]) for row in rows],
        "variants": [
            {
                "id": row["arm_id"],
                "n": int(row["n"]),
                **{column: float(row[column]) for column in _SUM_COLUMNS if row[column] != ""},
            }
            for row in rows
        ],
    }
