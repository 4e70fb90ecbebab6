# ruff: noqa: S608 -- this module builds SQL by design; every value enters through sql.text() or as a number
"""A phase's sufficient statistics read from the archive, with the reports' SQL rules
(`logic.analytics.sql`: DuckDB's dialect, translatable to Trino; times as epoch milliseconds).

The statement reads the phase's `experiment_exposure` records (the ones `Experiments.assign`
logs, and the campaign worker's) and the tracked events around them, and answers one row per
arm: the units exposed and, for every metric, Σx, Σx², the denominator's sums and cross product
(ratio metrics) and the pre-exposure covariate's (CUPED), over people. So results cost one query
and O(arms) arithmetic whatever the number of people.

- A unit is a profile id with an exposure in the phase (at or after its start, before its end);
  its exposure time is its first one. A unit exposed in two arms is counted apart
  (`MULTIPLE`) and left out of every arm (the merge rule of `assignment.person_arms`).
- A metric counts the unit's `event` events from its exposure to `window_hours` later
  (inclusive, like campaign attribution): conversion is 1 when there is one; mean sums `value`
  (a property path; no value counts the events); ratio divides that by the same of
  `denominator_event`. A property that is absent, not a number, not finite or beyond ±10¹²
  adds 0.
- CUPED's covariate is the same measure over `cuped_lookback_days` before the exposure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from midstage.logic.analytics.reports import Query
from midstage.logic.analytics.sql import DAY_MS, prop, text, texts, ts
from midstage.logic.experiments.assignment import MULTIPLE
from midstage.models.experiments import ArmMetricStatistics, Experiment, Metric, Phase, PhaseStatistics

HOUR_MS: Final = 3_600_000
MAX_VALUE: Final = 10**12  # the largest |value| a metric counts (campaign revenue's bound too)
KINDS: Final = ("event", "experiment_exposure")


def _epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _measure(event: str, value: str | None, start: str, end: str, *, binary: bool) -> str:
    """Per unit: whether (binary) or how much `event` happened with ets in [start, end)."""
    inside = f"e.event = {text(event)} AND e.ets >= {start} AND e.ets < {end}"
    if binary:
        return f"MAX(CASE WHEN {inside} THEN 1 ELSE 0 END)"
    if value is None:
        return f"SUM(CASE WHEN {inside} THEN 1 ELSE 0 END)"
    # A value beyond MAX_VALUE, NaN or infinite counts 0 (a NaN compares false): one typo in
    # an event (1e300) would otherwise make every sum of squares infinite.
    amount = f"TRY_CAST({prop(value, 'e.properties')} AS DOUBLE)"
    return f"SUM(CASE WHEN {inside} AND ABS({amount}) <= {MAX_VALUE} THEN {amount} ELSE 0 END)"


def _columns(index: int, metric: Metric) -> list[str]:
    after = f"x.ts + {metric.window_hours * HOUR_MS} + 1"  # the window's last millisecond counts
    before = f"x.ts - {metric.cuped_lookback_days * DAY_MS}"
    binary = metric.kind == "conversion"
    columns = [f"{_measure(metric.event, metric.value, 'x.ts', after, binary=binary)} AS m{index}"]
    if metric.kind == "ratio" and metric.denominator_event:
        measure = _measure(metric.denominator_event, metric.denominator_value, "x.ts", after, binary=False)
        columns.append(f"{measure} AS d{index}")
    if metric.cuped:
        columns.append(f"{_measure(metric.event, metric.value, before, 'x.ts', binary=binary)} AS c{index}")
    return columns


def _sums(index: int, metric: Metric) -> list[str]:
    m, d, c = f"m{index}", f"d{index}", f"c{index}"
    sums = [f"SUM({m}) AS {m}_sum", f"SUM({m} * {m}) AS {m}_sq"]
    if metric.kind == "ratio":
        sums += [f"SUM({d}) AS {d}_sum", f"SUM({d} * {d}) AS {d}_sq", f"SUM({m} * {d}) AS {m}_{d}"]
    if metric.cuped:
        sums += [f"SUM({c}) AS {c}_sum", f"SUM({c} * {c}) AS {c}_sq", f"SUM({m} * {c}) AS {m}_{c}"]
    return sums


def phase_sums_query(experiment: Experiment, phase: Phase, now: datetime) -> Query:
    """The statement answering one row per arm (and one for units in several arms): `arm`,
    `units` and each metric's sums, as `phase_statistics` reads them."""
    started = phase.started_at
    ended = phase.ended_at or now
    if ended < started:
        ended = started
    events = sorted(
        {m.event for m in experiment.metrics} | {m.denominator_event or m.event for m in experiment.metrics}
    )
    window = max(m.window_hours for m in experiment.metrics)
    lookback = max((m.cuped_lookback_days for m in experiment.metrics if m.cuped), default=0)
    first_day = (started - timedelta(days=lookback)).date()
    last_day = (ended + timedelta(hours=window)).date()
    exposed_days = f"dt BETWEEN {text(started.date().isoformat())} AND {text(ended.date().isoformat())}"
    event_days = f"dt BETWEEN {text(first_day.isoformat())} AND {text(last_day.isoformat())}"
    per_unit = [column for i, metric in enumerate(experiment.metrics) for column in _columns(i, metric)]
    per_arm = [column for i, metric in enumerate(experiment.metrics) for column in _sums(i, metric)]
    sql = (
        f"WITH exposed AS (SELECT profile_id AS person, MIN({ts()}) AS ts, MIN(variant) AS first_arm, "
        f"COUNT(DISTINCT variant) AS arms FROM archive WHERE kind = 'experiment_exposure' AND {exposed_days} "
        f"AND experiment_id = {text(experiment.id)} AND {ts()} >= {_epoch_ms(started)} "
        f"AND {ts()} < {_epoch_ms(ended) + 1} GROUP BY profile_id),\n"
        f"x AS (SELECT person, ts, CASE WHEN arms > 1 THEN {text(MULTIPLE)} ELSE first_arm END AS arm FROM exposed),\n"
        f"e AS (SELECT profile_id AS person, event, properties, {ts()} AS ets FROM archive WHERE kind = 'event' "
        f"AND {event_days} AND event_type = 'track' AND event IN ({texts(events)})),\n"
        f"u AS (SELECT x.person, x.arm, {', '.join(per_unit)} FROM x LEFT JOIN e ON e.person = x.person "
        f"AND e.ets >= x.ts - {lookback * DAY_MS} AND e.ets <= x.ts + {window * HOUR_MS} GROUP BY x.person, x.arm)\n"
        f"SELECT arm, COUNT(*) AS units, {', '.join(per_arm)} FROM u GROUP BY arm ORDER BY arm"
    )
    return Query("experiment", sql, KINDS, first_day, last_day)


def _number(row: Mapping[str, Any], name: str) -> float:
    value = row.get(name)
    return 0.0 if value is None else float(value)


def phase_statistics(experiment: Experiment, phase: Phase, rows: Sequence[Mapping[str, Any]]) -> PhaseStatistics:
    """The rows of `phase_sums_query` as the results' input: every arm of the phase present
    (0 where nobody was exposed), exposures in an arm the phase does not have left out."""
    by_arm = {str(row["arm"]): row for row in rows}
    arms = [arm.id for arm in phase.arms]
    multiple = int(_number(by_arm.get(MULTIPLE, {}), "units"))
    exposures = {arm: int(_number(by_arm.get(arm, {}), "units")) for arm in arms}
    metrics: dict[str, list[ArmMetricStatistics]] = {}
    for index, metric in enumerate(experiment.metrics):
        m, d, c = f"m{index}", f"d{index}", f"c{index}"
        rows_of_metric = []
        for arm in arms:
            row = by_arm.get(arm, {})
            sums: dict[str, Any] = {"arm": arm, "sum": _number(row, f"{m}_sum"), "sum_squares": _number(row, f"{m}_sq")}
            if metric.kind == "ratio":
                sums |= {
                    "denominator_sum": _number(row, f"{d}_sum"),
                    "denominator_sum_squares": _number(row, f"{d}_sq"),
                    "main_denominator_sum_product": _number(row, f"{m}_{d}"),
                }
            if metric.cuped:
                sums |= {
                    "covariate_sum": _number(row, f"{c}_sum"),
                    "covariate_sum_squares": _number(row, f"{c}_sq"),
                    "main_covariate_sum_product": _number(row, f"{m}_{c}"),
                }
            rows_of_metric.append(ArmMetricStatistics.model_validate(sums))
        metrics[metric.id] = rows_of_metric
    return PhaseStatistics(
        experiment_id=experiment.id,
        phase=phase.number,
        exposures=exposures,
        multiple_exposures=multiple,
        metrics=metrics,
    )
