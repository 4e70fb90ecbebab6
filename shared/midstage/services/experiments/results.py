"""An experiment's results for a phase (every arm, every metric, corrections, days to decision)
and the auto-winner decision made from them, honestly: no winner without the rule's evidence.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import ValidationError

from midstage.errors import InvalidInput, describe
from midstage.logic.experiments import corrections, planning
from midstage.logic.experiments.srm import check_srm
from midstage.models.experiments import (
    AnalyzeRequest,
    ArmResult,
    AutoWinner,
    CandidateNumbers,
    DaysToDecisionAnswer,
    Engine,
    Experiment,
    ExperimentResults,
    Metric,
    MetricResults,
    Phase,
    PhaseStatistics,
    SrmAnswer,
    VariantAnswer,
    WinnerAction,
    WinnerDecision,
)
from midstage.services.experiments.analysis import ENGINES, analyze, arm_summary, statistic_of


# ------------------------------------------------------------------------------ results
def phase_of(experiment: Experiment, number: int) -> Phase:
    if not 1 <= number <= len(experiment.phases):
        raise InvalidInput(f"experiment {experiment.id} has no phase {number}")
    return experiment.phases[number - 1]


def ordered_arms(phase: Phase) -> list[str]:
    """Control first, then the other arms in their order: each is compared with the first."""
    ids = [arm.id for arm in phase.arms]
    return [phase.control, *(i for i in ids if i != phase.control)]


def _metric_request(
    experiment: Experiment, phase: Phase, metric: Metric, statistics: PhaseStatistics
) -> AnalyzeRequest:
    by_arm = {row.arm: row for row in statistics.metrics[metric.id]}
    weights = {arm.id: arm.weight for arm in phase.arms}
    order = ordered_arms(phase)
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


def check_statistics(experiment: Experiment, phase: Phase, statistics: PhaseStatistics) -> None:
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
    phase = phase_of(experiment, statistics.phase)
    check_statistics(experiment, phase, statistics)
    order = ordered_arms(phase)
    weights = {arm.id: arm.weight for arm in phase.arms}
    srm = check_srm([statistics.exposures[a] for a in order], [weights[a] for a in order])

    metrics: list[MetricResults] = []
    for metric in experiment.metrics:
        request = _metric_request(experiment, phase, metric, statistics)
        answers = {engine: analyze(request.model_copy(update={"engine": engine})) for engine in ENGINES}
        summaries = [arm_summary(v, statistic_of(request, v)) for v in request.variants]
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
    phase = phase_of(experiment, outcome.phase)
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
