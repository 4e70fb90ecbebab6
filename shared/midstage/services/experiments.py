"""The experiments plane's service: analyse summary statistics, assemble an experiment's results,
export and re-read their raw sums, plan sample sizes, and decide an auto-winner honestly.

Composition over `logic.experiments`, with no clock (`now` is an argument). The functions do no
I/O at all, so the admin route and the campaign and journey runners call them with what they
have read:

- `POST /v1/experiments/analyze`: `analyze(parse_analyze(body)).to_body()`;
- a planner route: `plan(parse_plan(body))`;
- results of a phase: `results(experiment, statistics, now=...)`, its CSV `results_csv(...)`;
- the auto-winner step of a campaign: `decide_winner(experiment, results, now=...)`;
- `Experiments`, the same over its ports, typed as Protocols (the experiment store, the
  statistics read from the archive and counters, the exposure log, the ledger of final
  decisions): create, revise (frozen at start), start, stop, assign, results, CSV, decide.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from pydantic import ValidationError

from midstage.errors import Conflict, InvalidInput, NotFound, describe
from midstage.logic.experiments import corrections, engines, lifecycle, planning
from midstage.logic.experiments.assignment import Split, assign, in_global_control
from midstage.logic.experiments.srm import check_srm
from midstage.logic.experiments.statistics import (
    Proportion,
    Ratio,
    RegressionAdjusted,
    SampleMean,
    Statistic,
    stddev,
)
from midstage.models.experiments import (
    AnalyzeAnswer,
    AnalyzeRequest,
    AnalyzeVariant,
    ArmMetricStatistics,
    ArmResult,
    ArmSummary,
    AutoWinner,
    CandidateNumbers,
    DaysToDecisionAnswer,
    Engine,
    Experiment,
    ExperimentBody,
    ExperimentResults,
    Metric,
    MetricResults,
    Phase,
    PhaseStatistics,
    PlanAnswer,
    PlanRequest,
    SrmAnswer,
    VariantAnswer,
    WinnerAction,
    WinnerDecision,
)

__all__ = [
    "CSV_COLUMNS",
    "Assignment",
    "DecisionLedger",
    "ExperimentStore",
    "Experiments",
    "ExposureLog",
    "RecordedDecision",
    "StatisticsSource",
    "analyze",
    "analyze_requests_from_csv",
    "decide_winner",
    "parse_analyze",
    "parse_plan",
    "plan",
    "results",
    "results_csv",
    "statistic_of",
]

ENGINES: Final[tuple[Engine, ...]] = ("bayesian", "frequentist", "sequential")


# ------------------------------------------------------------------------------ analyze
def parse_analyze(body: Any) -> AnalyzeRequest:
    """The request from a JSON body, or `InvalidInput` naming every field at fault."""
    try:
        return AnalyzeRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(describe(error, "body")) from None


def _component(n: int, total: float, squares: float | None, proportion: bool) -> Proportion | SampleMean:
    if proportion:
        return Proportion(n, total)
    assert squares is not None
    return SampleMean(n, total, squares)


def statistic_of(request: AnalyzeRequest, variant: AnalyzeVariant) -> Statistic:
    """The engines' statistic for one variant of a validated request."""
    proportion = request.metric_type == "proportion"
    main = _component(variant.n, variant.sum, variant.sum_squares, proportion)
    if request.metric_type == "ratio":
        assert variant.denominator_sum is not None
        assert variant.main_denominator_sum_product is not None
        denominator = SampleMean(variant.n, variant.denominator_sum, variant.denominator_sum_squares or 0.0)
        return Ratio(variant.n, main, denominator, variant.main_denominator_sum_product)
    if request.cuped:
        assert variant.covariate_sum is not None
        assert variant.main_covariate_sum_product is not None
        pre = _component(variant.n, variant.covariate_sum, variant.covariate_sum_squares, proportion)
        return RegressionAdjusted(variant.n, main, pre, variant.main_covariate_sum_product)
    return main


def _summary(variant: AnalyzeVariant, statistic: Statistic) -> ArmSummary:
    return ArmSummary(id=variant.id, n=variant.n, mean=statistic.unadjusted_mean, stddev=stddev(statistic))


def analyze(request: AnalyzeRequest) -> AnalyzeAnswer:
    """Every treatment against the first variant with the request's engine, and the SRM check."""
    weights = request.planned_weights()
    srm = check_srm([v.n for v in request.variants], weights)
    statistics = [statistic_of(request, v) for v in request.variants]
    control = statistics[0]
    answers: list[VariantAnswer] = []
    for variant, treatment in zip(request.variants[1:], statistics[1:], strict=True):
        common: dict[str, Any] = {"id": variant.id, "n": variant.n, "mean": treatment.unadjusted_mean}
        if request.engine == "bayesian":
            prior = (
                engines.Prior(request.prior.mean, request.prior.stddev**2, proper=True)
                if request.prior
                else engines.Prior()
            )
            b = engines.bayesian(
                control,
                treatment,
                difference=request.difference,
                alpha=request.alpha,
                inverse=request.inverse,
                prior=prior,
            )
            answers.append(
                VariantAnswer(
                    **common,
                    expected=b.expected,
                    ci=b.ci,
                    uplift_stddev=b.uplift_stddev,
                    chance_to_win=b.chance_to_win,
                    risk=b.risk,
                    error=b.error,
                    error_message=engines.ERROR_MESSAGES.get(b.error) if b.error else None,
                )
            )
            continue
        if request.engine == "sequential":
            f = engines.sequential(
                control,
                treatment,
                difference=request.difference,
                alpha=request.alpha,
                tuning=request.sequential_tuning_parameter,
            )
        else:
            f = engines.t_test(control, treatment, difference=request.difference, alpha=request.alpha)
        answers.append(
            VariantAnswer(
                **common,
                expected=f.expected,
                ci=f.ci,
                uplift_stddev=f.uplift_stddev,
                p_value=f.p_value,
                error=f.error,
                error_message=engines.ERROR_MESSAGES.get(f.error) if f.error else None,
            )
        )
    if request.correction != "none":
        # Comparisons without a p-value of their own (an error's default of 1) are not tests and
        # stay out of the family, as in results; a p-value of exactly 0 is one.
        tested = [i for i, a in enumerate(answers) if a.error is None and a.p_value is not None]
        adjusted = corrections.adjust([answers[i].p_value or 0.0 for i in tested], request.correction)
        for i, p in zip(tested, adjusted, strict=True):
            answers[i] = answers[i].model_copy(update={"p_value_adjusted": p})
    return AnalyzeAnswer(
        srm_p_value=srm.p_value,
        srm_alert=srm.alert,
        engine=request.engine,
        difference=request.difference,
        control=_summary(request.variants[0], control),
        variants=answers,
    )


# ------------------------------------------------------------------------------ planner
def parse_plan(body: Any) -> PlanRequest:
    try:
        return PlanRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(describe(error, "body")) from None


def plan(request: PlanRequest) -> PlanAnswer:
    """Units per arm for an effect, or the minimum detectable effect for a number of units."""
    effect = request.effect if request.effect is not None else 0.1
    try:
        design = planning.Design(
            baseline=request.baseline,
            effect=effect,
            stddev=request.stddev,
            difference=request.difference,
            alpha=request.alpha,
            power=request.power,
            engine=request.engine,
            chance_to_win=request.chance_to_win,
            tuning=request.sequential_tuning_parameter,
        )
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    if request.n_per_arm is not None:
        n = request.n_per_arm
        found = planning.minimum_detectable_effect(design, n)
        power = request.power if found is not None else planning.power_at(design, n)
    else:
        n = planning.sample_size_per_arm(design)
        found = effect
        power = planning.power_at(design, n)
    days = 2 * n / request.units_per_day if request.units_per_day else None
    return PlanAnswer(n_per_arm=n, total=2 * n, effect=found, power=power, days=days)


# ------------------------------------------------------------------------------ results
def _phase_of(experiment: Experiment, number: int) -> Phase:
    if not 1 <= number <= len(experiment.phases):
        raise InvalidInput(f"experiment {experiment.id} has no phase {number}")
    return experiment.phases[number - 1]


def _ordered_arms(phase: Phase) -> list[str]:
    """Control first, then the other arms in their order: each is compared with the first."""
    ids = [arm.id for arm in phase.arms]
    return [phase.control, *(i for i in ids if i != phase.control)]


def _metric_request(
    experiment: Experiment, phase: Phase, metric: Metric, statistics: PhaseStatistics
) -> AnalyzeRequest:
    by_arm = {row.arm: row for row in statistics.metrics[metric.id]}
    weights = {arm.id: arm.weight for arm in phase.arms}
    order = _ordered_arms(phase)
    variants = []
    for arm in order:
        row = by_arm[arm].model_dump(exclude={"arm"}, exclude_none=True)
        variants.append({"id": arm, "n": statistics.exposures[arm], **row})
    body = {
        "metric_type": metric.metric_type,
        "difference": experiment.difference,
        "alpha": experiment.alpha,
        "weights": [weights[arm] for arm in order],
        "cuped": metric.cuped,
        "inverse": metric.inverse,
        "sequential_tuning_parameter": experiment.sequential_tuning_parameter,
        "variants": variants,
    }
    try:
        return AnalyzeRequest.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(f"metric {metric.id}: {describe(error, 'statistics')}") from None


def _check_statistics(experiment: Experiment, phase: Phase, statistics: PhaseStatistics) -> None:
    if statistics.experiment_id != experiment.id:
        raise InvalidInput(f"the statistics are of experiment {statistics.experiment_id}, not {experiment.id}")
    arms = {arm.id for arm in phase.arms}
    if set(statistics.exposures) != arms:
        raise InvalidInput(f"exposures must name exactly the phase's arms: {', '.join(sorted(arms))}")
    for metric in experiment.metrics:
        rows = statistics.metrics.get(metric.id)
        if rows is None:
            raise InvalidInput(f"no statistics for metric {metric.id}")
        named = [row.arm for row in rows]
        if sorted(named) != sorted(arms):
            raise InvalidInput(f"metric {metric.id}: one row per arm is needed ({', '.join(sorted(arms))})")
    unknown = set(statistics.metrics) - {metric.id for metric in experiment.metrics}
    if unknown:
        raise InvalidInput(f"statistics for metrics the experiment does not have: {', '.join(sorted(unknown))}")


def results(experiment: Experiment, statistics: PhaseStatistics, *, now: datetime) -> ExperimentResults:
    """One phase's results: the SRM check first, then each metric with every engine's answer
    (corrections applied to the goal and secondary metrics over the chosen family; guardrails
    stay uncorrected, since a correction would make a harm harder to see), and the days still
    needed on the goal."""
    phase = _phase_of(experiment, statistics.phase)
    _check_statistics(experiment, phase, statistics)
    order = _ordered_arms(phase)
    weights = {arm.id: arm.weight for arm in phase.arms}
    srm = check_srm([statistics.exposures[a] for a in order], [weights[a] for a in order])

    metrics: list[MetricResults] = []
    for metric in experiment.metrics:
        request = _metric_request(experiment, phase, metric, statistics)
        answers = {engine: analyze(request.model_copy(update={"engine": engine})) for engine in ENGINES}
        summaries = [_summary(v, statistic_of(request, v)) for v in request.variants]
        metrics.append(
            MetricResults(
                metric=metric.id,
                name=metric.name,
                kind=metric.kind,
                guardrail=metric.guardrail,
                inverse=metric.inverse,
                cuped=metric.cuped,
                control=summaries[0],
                arms=summaries,
                bayesian=answers["bayesian"].variants,
                frequentist=answers["frequentist"].variants,
                sequential=answers["sequential"].variants,
            )
        )
    if experiment.correction != "none":
        metrics = _corrected(metrics, experiment)

    return ExperimentResults(
        experiment_id=experiment.id,
        phase=phase.number,
        computed_at=now,
        srm=SrmAnswer(
            p_value=srm.p_value,
            alert=srm.alert,
            reason=srm.reason,
            max_deviation=srm.max_deviation,
            expected=dict(zip(order, srm.expected, strict=True)),
        ),
        arms=[
            ArmResult(id=a.id, name=a.name, weight=a.weight, holdout=a.holdout, units=statistics.exposures[a.id])
            for a in phase.arms
        ],
        multiple_exposures=statistics.multiple_exposures,
        control=phase.control,
        goal=experiment.goal,
        correction=experiment.correction,
        correction_family=experiment.correction_family,
        metrics=metrics,
        days_to_decision=_days_to_decision(experiment, phase, metrics, now),
    )


def _corrected(metrics: list[MetricResults], experiment: Experiment) -> list[MetricResults]:
    """Adjusted p-values for the frequentist and sequential answers of non-guardrail metrics;
    comparisons without a p-value of their own (an error) are not tests and stay out."""
    updated = {m.metric: m.model_copy(deep=True) for m in metrics}
    for engine in ("frequentist", "sequential"):
        members: list[tuple[str, int]] = []
        tests: list[corrections.Comparison] = []
        for m in metrics:
            if m.guardrail:
                continue
            for index, answer in enumerate(getattr(m, engine)):
                if answer.error is None and answer.p_value is not None:
                    members.append((m.metric, index))
                    tests.append(corrections.Comparison(m.metric, answer.id, answer.p_value))
        adjusted = corrections.correct(tests, experiment.correction, experiment.correction_family)
        for (metric_id, index), value in zip(members, adjusted, strict=True):
            getattr(updated[metric_id], engine)[index].p_value_adjusted = value
    return [updated[m.metric] for m in metrics]


def _planning_engine(rule: AutoWinner | None) -> planning.PlanEngine:
    if rule is None:
        return "frequentist"
    return "sequential" if rule.rule == "sequential" else "bayesian"


def _days_to_decision(
    experiment: Experiment, phase: Phase, metrics: list[MetricResults], now: datetime
) -> DaysToDecisionAnswer | None:
    """Days until every treatment's comparison on the goal reaches the planned power, at the
    pace seen so far; None where the goal's control gives nothing to plan on (no units, a rate
    of 0 or 1, a mean of 0 or no spread) and for a phase that has ended (no more units come)."""
    if phase.ended_at is not None:
        return None
    goal = next(m for m in metrics if m.metric == experiment.goal)
    metric = experiment.goal_metric
    engine = _planning_engine(experiment.auto_winner)
    elapsed = (now - phase.started_at) / timedelta(days=1)
    control = goal.control
    try:
        design = planning.Design(
            baseline=control.mean,
            effect=experiment.minimum_detectable_effect,
            stddev=None if metric.metric_type == "proportion" else control.stddev,
            alpha=experiment.alpha,
            power=experiment.power,
            engine=engine,
            chance_to_win=experiment.auto_winner.chance_to_win if experiment.auto_winner else 0.95,
            tuning=experiment.sequential_tuning_parameter,
        )
    except ValueError:
        return None
    holdouts = {arm.id for arm in phase.arms if arm.holdout}
    needed: dict[str, float] = {}
    days: list[float | None] = []
    for arm in goal.arms[1:]:
        if arm.id in holdouts:
            continue
        estimate = planning.days_to_decision(
            design, control_units=control.n, treatment_units=arm.n, days_elapsed=elapsed
        )
        days.append(estimate.days)
        needed[arm.id] = estimate.needed_treatment
        needed[control.id] = max(needed.get(control.id, 0.0), estimate.needed_control)
    if not days:
        return None
    slowest = None if any(d is None for d in days) else max(d for d in days if d is not None)
    clean = {k: v for k, v in needed.items() if math.isfinite(v)}
    return DaysToDecisionAnswer(
        days=slowest, engine=engine, effect=experiment.minimum_detectable_effect, needed_units=clean
    )


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
    phase = _phase_of(experiment, statistics.phase)
    _check_statistics(experiment, phase, statistics)
    weights = {arm.id: arm.weight for arm in phase.arms}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for metric in experiment.metrics:
        by_arm: Mapping[str, ArmMetricStatistics] = {row.arm: row for row in statistics.metrics[metric.id]}
        for arm in _ordered_arms(phase):
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
    reader = csv.DictReader(io.StringIO(text))
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise InvalidInput(f"the CSV lacks columns {', '.join(sorted(missing))}")
    for row in reader:
        rows_by_metric.setdefault(row["metric_id"], []).append(row)
    requests: dict[str, AnalyzeRequest] = {}
    for metric_id, rows in rows_by_metric.items():
        first = rows[0]
        body: dict[str, Any] = {
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
        try:
            requests[metric_id] = AnalyzeRequest.model_validate(body)
        except ValidationError as error:
            raise InvalidInput(f"metric {metric_id}: {describe(error, 'csv')}") from None
    return requests


# ------------------------------------------------------------------------------ auto-winner
def _better(expected: float, inverse: bool) -> bool:
    return expected < 0 if inverse else expected > 0


def decide_winner(experiment: Experiment, outcome: ExperimentResults, *, now: datetime) -> WinnerDecision:
    """The auto-winner's decision on a phase's results, with the numbers it was taken on.

    A treatment wins the goal when (rule "sequential") its sequential p-value is below alpha
    with the difference in the better direction, at any look, or (rule "chance_to_win") its
    chance to win reaches the threshold, judged once the test window is over. A winner must
    also have no guardrail significantly worse by the same engine (sequential p < alpha in the
    worse direction, or a chance to win at most 1 - threshold), and the split must pass the SRM
    check with every arm past the minimum units. Several winners: the largest goal difference.
    Otherwise: send control when the window is over (or, under the sequential rule, as soon as
    every treatment is significantly worse), else wait. The holdout never wins: it sends nothing.
    """
    rule = experiment.auto_winner or AutoWinner()
    phase = _phase_of(experiment, outcome.phase)
    final = now >= phase.started_at + timedelta(hours=rule.window_hours)
    holdouts = {arm.id for arm in phase.arms if arm.holdout}
    engine: Engine = "sequential" if rule.rule == "sequential" else "bayesian"
    goal = outcome.metric(experiment.goal)
    guardrails = [m for m in outcome.metrics if m.guardrail]

    def wins(answer: VariantAnswer, inverse: bool) -> bool:
        if answer.error is not None:
            return False
        if engine == "sequential":
            assert answer.p_value is not None
            return answer.p_value < experiment.alpha and _better(answer.expected, inverse)
        assert answer.chance_to_win is not None
        return answer.chance_to_win >= rule.chance_to_win

    def loses(answer: VariantAnswer, inverse: bool) -> bool:
        if answer.error is not None:
            return False
        if engine == "sequential":
            assert answer.p_value is not None
            return answer.p_value < experiment.alpha and not _better(answer.expected, inverse) and answer.expected != 0
        assert answer.chance_to_win is not None
        return answer.chance_to_win <= 1.0 - rule.chance_to_win

    candidates: list[CandidateNumbers] = []
    for answer in getattr(goal, engine):
        if answer.id in holdouts:
            continue
        worse = [m.metric for m in guardrails for g in getattr(m, engine) if g.id == answer.id and loses(g, m.inverse)]
        candidates.append(
            CandidateNumbers(
                arm=answer.id,
                expected=answer.expected,
                ci=answer.ci,
                p_value=answer.p_value,
                chance_to_win=answer.chance_to_win,
                wins_goal=wins(answer, goal.inverse),
                worse_guardrails=worse,
                error=answer.error,
            )
        )

    def decision(action: WinnerAction, arm: str | None, reason: str, explanation: str) -> WinnerDecision:
        return WinnerDecision(
            experiment_id=experiment.id,
            phase=phase.number,
            action=action,
            arm=arm,
            reason=reason,
            explanation=explanation,
            final=final,
            decided_at=now,
            rule=rule,
            alpha=experiment.alpha,
            srm_p_value=outcome.srm.p_value,
            candidates=candidates,
        )

    def fallback(reason: str, explanation: str) -> WinnerDecision:
        if final:
            return decision("send_control", phase.control, reason, explanation + "; the test window is over: control")
        return decision("wait", None, reason, explanation + "; waiting")

    if outcome.srm.alert:
        return fallback("srm_alert", f"sample ratio mismatch ({outcome.srm.reason})")
    sending_arms = [arm for arm in outcome.arms if arm.id not in holdouts]
    short = [arm.id for arm in sending_arms if arm.units < rule.min_units_per_arm]
    if short:
        return fallback("too_few_units", f"{', '.join(short)} below {rule.min_units_per_arm} units")
    if engine == "bayesian" and not final:
        return decision(
            "wait",
            None,
            "judged_at_window_end",
            "a chance to win is judged once, when the test window ends; checking it at every look would crown noise",
        )
    winners = [c for c in candidates if c.wins_goal and not c.worse_guardrails]
    if winners:
        best = max(
            winners,
            key=lambda c: (
                -c.expected if goal.inverse else c.expected,
                c.chance_to_win if c.chance_to_win is not None else -(c.p_value if c.p_value is not None else 1.0),
            ),
        )
        numbers = (
            f"p = {best.p_value:.4g} < {experiment.alpha}"
            if engine == "sequential"
            else f"chance to win {best.chance_to_win:.4f} ≥ {rule.chance_to_win}"
        )
        return decision(
            "send_winner",
            best.arm,
            "winner",
            f"{best.arm} beats {phase.control} on {experiment.goal} ({numbers}, difference {best.expected:+.4g}) "
            "and no guardrail is worse",
        )
    blocked = [c for c in candidates if c.wins_goal and c.worse_guardrails]
    if blocked:
        named = "; ".join(f"{c.arm}: {', '.join(c.worse_guardrails)}" for c in blocked)
        return fallback("guardrail_worse", f"a winner on the goal is worse on a guardrail ({named})")
    treatments = [c for c in candidates if c.arm != phase.control]
    if (
        engine == "sequential"
        and treatments
        and all(loses(next(a for a in goal.sequential if a.id == c.arm), goal.inverse) for c in treatments)
    ):
        return decision(
            "send_control",
            phase.control,
            "control_better",
            f"every treatment is significantly worse than {phase.control} on {experiment.goal}",
        )
    return fallback("no_winner", f"no treatment beats {phase.control} on {experiment.goal} by the rule")


# ------------------------------------------------------------------------------ over ports
class ExperimentStore(Protocol):
    def find_experiment(self, experiment_id: str) -> Experiment | None: ...

    def save_experiment(self, experiment: Experiment, *, expected_version: int | None) -> bool:
        """Write `experiment` if the stored one has `expected_version` (None: only if none is
        stored); False when another writer got there first."""
        ...


class StatisticsSource(Protocol):
    def phase_statistics(self, experiment: Experiment, phase: int) -> PhaseStatistics:
        """Exposures per arm and each metric's sums over the phase's exposed people."""
        ...


class ExposureLog(Protocol):
    def log_exposure(self, experiment_id: str, phase: int, unit_id: str, arm: str, at: datetime) -> None: ...


class DecisionLedger(Protocol):
    def final_decision(self, experiment_id: str, phase: int) -> WinnerDecision | None: ...

    def record_final(self, decision: WinnerDecision) -> bool:
        """Record the phase's final decision unless one is already recorded; True when this
        call recorded it."""
        ...


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a person stands in a running experiment's current phase."""

    experiment_id: str
    phase: int
    arm: str | None  # None: in the global control group, or the experiment is not running
    sends: bool  # False for the holdout arm, the global control group and a stopped experiment
    reason: str  # "arm", "holdout", "global_control" or "not_running"


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    decision: WinnerDecision
    first: bool  # this call recorded the final decision: only then is the remainder sent


class Experiments:
    """The experiments plane over its ports: create and revise (frozen at start), start and stop,
    assign and log exposures, results of a phase, the CSV of its sums, and the auto-winner's
    decision recorded once per phase. `global_control_share` is the share of everyone held out
    of all marketing; `global_control_salt` deals that group (changing it deals a new one)."""

    def __init__(
        self,
        store: ExperimentStore,
        statistics: StatisticsSource,
        exposures: ExposureLog,
        decisions: DecisionLedger,
        *,
        global_control_share: float = 0.0,
        global_control_salt: str = "",
    ) -> None:
        if not 0.0 <= global_control_share < 1.0:
            raise ValueError("the global control group's share lies in [0, 1)")
        self.store = store
        self.statistics = statistics
        self.exposures = exposures
        self.decisions = decisions
        self.global_control_share = global_control_share
        self.global_control_salt = global_control_salt

    def create(self, experiment_id: str, body: Any, now: datetime) -> Experiment:
        try:
            parsed = ExperimentBody.model_validate(body)
            experiment = Experiment.model_validate(
                {**parsed.model_dump(), "id": experiment_id, "created_at": now, "updated_at": now}
            )
        except ValidationError as error:
            raise InvalidInput(describe(error, "body")) from None
        if not self.store.save_experiment(experiment, expected_version=None):
            raise Conflict(f"experiment {experiment_id} already exists")
        return experiment

    def get(self, experiment_id: str) -> Experiment:
        experiment = self.store.find_experiment(experiment_id)
        if experiment is None:
            raise NotFound(f"no experiment {experiment_id}")
        return experiment

    def _save(self, before: Experiment, after: Experiment) -> Experiment:
        if after is before:
            return after
        if not self.store.save_experiment(after, expected_version=before.version):
            raise Conflict(f"experiment {before.id} changed meanwhile; read it again and retry")
        return after

    def revise(self, experiment_id: str, body: Any, now: datetime, *, new_phase: bool = False) -> Experiment:
        current = self.get(experiment_id)
        try:
            proposed = ExperimentBody.model_validate(body)
        except ValidationError as error:
            raise InvalidInput(describe(error, "body")) from None
        return self._save(current, lifecycle.revise(current, proposed, now, new_phase=new_phase))

    def start(self, experiment_id: str, now: datetime) -> Experiment:
        current = self.get(experiment_id)
        return self._save(current, lifecycle.start(current, now))

    def stop(self, experiment_id: str, now: datetime) -> Experiment:
        current = self.get(experiment_id)
        return self._save(current, lifecycle.stop(current, now))

    def assign(self, experiment: Experiment, unit_id: str, now: datetime) -> Assignment:
        """The person's arm in the current phase (the surviving profile id after a merge), logged
        as an exposure when they are in an arm; the global control group gets no arm and nothing."""
        if experiment.status != "running":
            return Assignment(experiment.id, experiment.phase, None, False, "not_running")
        if experiment.global_control and in_global_control(
            unit_id, self.global_control_share, self.global_control_salt
        ):
            return Assignment(experiment.id, experiment.phase, None, False, "global_control")
        phase = experiment.phases[-1]
        arm = assign(Split.of([(a.id, a.weight) for a in phase.arms]), experiment.id, phase.number, unit_id)
        self.exposures.log_exposure(experiment.id, phase.number, unit_id, arm, now)
        holdout = next(a.holdout for a in phase.arms if a.id == arm)
        return Assignment(experiment.id, phase.number, arm, not holdout, "holdout" if holdout else "arm")

    def results(self, experiment_id: str, now: datetime, phase: int | None = None) -> ExperimentResults:
        experiment = self.get(experiment_id)
        number = self._phase_number(experiment, phase)
        return results(experiment, self.statistics.phase_statistics(experiment, number), now=now)

    def export_csv(self, experiment_id: str, phase: int | None = None) -> str:
        experiment = self.get(experiment_id)
        number = self._phase_number(experiment, phase)
        return results_csv(experiment, self.statistics.phase_statistics(experiment, number))

    def decide(self, experiment_id: str, now: datetime) -> RecordedDecision:
        """The auto-winner's decision on the current phase. A final decision (winner or control,
        the window over or a sequential verdict) is recorded once: a double-fired or redelivered
        call gets the recorded decision back with `first` False, so the remainder is sent once."""
        experiment = self.get(experiment_id)
        if experiment.auto_winner is None:
            raise InvalidInput(f"experiment {experiment_id} has no auto_winner rule")
        number = self._phase_number(experiment, None)
        recorded = self.decisions.final_decision(experiment_id, number)
        if recorded is not None:
            return RecordedDecision(recorded, False)
        decision = decide_winner(experiment, self.results(experiment_id, now, number), now=now)
        if decision.action == "wait":
            return RecordedDecision(decision, False)
        if self.decisions.record_final(decision):
            return RecordedDecision(decision, True)
        # Another call recorded one between our read and our write: that one stands.
        standing = self.decisions.final_decision(experiment_id, number)
        return RecordedDecision(standing or decision, False)

    @staticmethod
    def _phase_number(experiment: Experiment, phase: int | None) -> int:
        if not experiment.phases:
            raise InvalidInput(f"experiment {experiment.id} has not started")
        return experiment.phase if phase is None else phase
