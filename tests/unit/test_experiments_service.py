"""The experiments service: the frozen-at-start rule and phases, assignment with the holdout and
the global control group, results of a phase (SRM first, every engine), the CSV of raw sums,
the auto-winner recorded once, the planner, and bad input refused with a reason.

The ports are in-memory stand-ins of our own Protocols (no adapter exists for them yet); the
numbers are checked against the analyze path, itself held to gbstats in test_experiments_gbstats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from statsmodels.stats.multitest import multipletests

from midstage.errors import Conflict, InvalidInput, NotFound
from midstage.logic.experiments import planning
from midstage.logic.experiments.lifecycle import ExperimentFrozen, ExperimentStateError, frozen_changes
from midstage.logic.experiments.statistics import Proportion
from midstage.models.experiments import Experiment, ExperimentBody, PhaseStatistics, PlanRequest, WinnerDecision
from midstage.services.experiments import (
    Experiments,
    analyze,
    analyze_requests_from_csv,
    parse_analyze,
    plan,
    results_csv,
)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Spring subject lines",
        "target": {"kind": "campaign", "id": "spring-sale"},
        "arms": [
            {"id": "control", "weight": 45, "content": {"variant": "a"}},
            {"id": "b", "weight": 45, "content": {"variant": "b"}},
            {"id": "holdout", "weight": 10, "holdout": True},
        ],
        "goal": "purchase",
        "metrics": [
            {"id": "purchase", "kind": "conversion", "event": "Order Completed"},
            {"id": "revenue", "kind": "mean", "event": "Order Completed", "value": "revenue"},
            {"id": "unsubscribe", "kind": "conversion", "event": "Unsubscribed", "guardrail": True, "inverse": True},
        ],
        "auto_winner": {"rule": "sequential", "window_hours": 72, "min_units_per_arm": 100},
    }
    return {**base, **changes}


# ------------------------------------------------------------------------------ ports
@dataclass
class Store:
    documents: dict[str, Experiment] = field(default_factory=dict)
    interloper: bool = False  # another writer saves between the next read and write

    def find_experiment(self, experiment_id: str) -> Experiment | None:
        return self.documents.get(experiment_id)

    def save_experiment(self, experiment: Experiment, *, expected_version: int | None) -> bool:
        if self.interloper and experiment.id in self.documents:
            self.interloper = False
            current = self.documents[experiment.id]
            self.documents[experiment.id] = current.model_copy(update={"version": current.version + 1})
        stored = self.documents.get(experiment.id)
        if (stored.version if stored else None) != expected_version:
            return False
        self.documents[experiment.id] = experiment
        return True


@dataclass
class Sums:
    by_phase: dict[tuple[str, int], PhaseStatistics] = field(default_factory=dict)

    def phase_statistics(self, experiment: Experiment, phase: int) -> PhaseStatistics:
        return self.by_phase[(experiment.id, phase)]


@dataclass
class Exposures:
    logged: list[tuple[str, int, str, str]] = field(default_factory=list)

    def log_exposure(self, experiment_id: str, phase: int, unit_id: str, arm: str, at: datetime) -> None:
        self.logged.append((experiment_id, phase, unit_id, arm))


@dataclass
class Ledger:
    final: dict[tuple[str, int], WinnerDecision] = field(default_factory=dict)

    def final_decision(self, experiment_id: str, phase: int) -> WinnerDecision | None:
        return self.final.get((experiment_id, phase))

    def record_final(self, decision: WinnerDecision) -> bool:
        key = (decision.experiment_id, decision.phase)
        if key in self.final:
            return False
        self.final[key] = decision
        return True


@pytest.fixture
def plane() -> Experiments:
    return Experiments(Store(), Sums(), Exposures(), Ledger(), global_control_share=0.05)


def statistics(
    experiment_id: str = "exp-1",
    *,
    exposures: tuple[int, int, int] = (4500, 4500, 1000),
    purchases: tuple[int, int, int] = (450, 540, 80),
    unsubscribes: tuple[int, int, int] = (20, 22, 0),
) -> PhaseStatistics:
    arms = ("control", "b", "holdout")
    revenue = [
        {"arm": arm, "sum": 60.0 * bought, "sum_squares": 60.0**2 * bought * 1.5}
        for arm, bought in zip(arms, purchases, strict=True)
    ]
    return PhaseStatistics.model_validate(
        {
            "experiment_id": experiment_id,
            "phase": 1,
            "exposures": dict(zip(arms, exposures, strict=True)),
            "metrics": {
                "purchase": [{"arm": a, "sum": s} for a, s in zip(arms, purchases, strict=True)],
                "revenue": revenue,
                "unsubscribe": [{"arm": a, "sum": s} for a, s in zip(arms, unsubscribes, strict=True)],
            },
        }
    )


def running(plane: Experiments, stats: PhaseStatistics | None = None) -> Experiment:
    plane.create("exp-1", body(), START)
    experiment = plane.start("exp-1", START)
    assert isinstance(plane.statistics, Sums)
    plane.statistics.by_phase[("exp-1", 1)] = stats or statistics()
    return experiment


# ------------------------------------------------------------------------------ lifecycle
def test_starting_opens_phase_one_with_the_arms_as_they_are(plane: Experiments) -> None:
    plane.create("exp-1", body(), START)
    started = plane.start("exp-1", START)
    assert started.status == "running" and started.phase == 1
    assert [arm.id for arm in started.phases[0].arms] == ["control", "b", "holdout"]
    assert plane.start("exp-1", START + timedelta(hours=1)) == started  # starting again changes nothing


def test_a_running_experiment_refuses_changes_to_arms_goal_or_guardrails_without_a_new_phase(
    plane: Experiments,
) -> None:
    running(plane)
    reweighted = body(arms=[{**arm, "weight": 30} if arm["id"] == "b" else arm for arm in body()["arms"]])
    with pytest.raises(ExperimentFrozen, match="arms") as refused:
        plane.revise("exp-1", reweighted, START + timedelta(hours=2))
    assert refused.value.status == 409 and refused.value.code == "experiment_frozen"
    moved_goal = body(
        metrics=[{**m, "event": "Checkout Started"} if m["id"] == "purchase" else m for m in body()["metrics"]]
    )
    with pytest.raises(ExperimentFrozen, match="goal"):
        plane.revise("exp-1", moved_goal, START + timedelta(hours=2))
    softer_guardrail = body(
        metrics=[{**m, "window_hours": 24} if m["id"] == "unsubscribe" else m for m in body()["metrics"]]
    )
    with pytest.raises(ExperimentFrozen, match="guardrails"):
        plane.revise("exp-1", softer_guardrail, START + timedelta(hours=2))
    assert plane.get("exp-1").version == 2 and plane.get("exp-1").phase == 1  # nothing was written


def test_reading_changes_apply_in_place_under_a_running_experiment(plane: Experiments) -> None:
    running(plane)
    extra = {"id": "clicks", "kind": "mean", "event": "Email Link Clicked"}
    revised = plane.revise(
        "exp-1", body(name="Spring subjects", metrics=[*body()["metrics"], extra]), START + timedelta(hours=1)
    )
    assert revised.name == "Spring subjects" and revised.phase == 1 and revised.version == 3
    assert [m.id for m in revised.metrics][-1] == "clicks"


def test_a_change_with_a_new_phase_closes_the_current_one_and_deals_again(plane: Experiments) -> None:
    running(plane)
    later = START + timedelta(days=2)
    reweighted = body(arms=[{**arm, "weight": 30} if arm["id"] == "b" else arm for arm in body()["arms"]])
    revised = plane.revise("exp-1", reweighted, later, new_phase=True)
    assert revised.phase == 2 and revised.phases[0].ended_at == later and revised.phases[1].started_at == later
    assert [a.weight for a in revised.phases[0].arms] == [45, 45, 10]
    assert [a.weight for a in revised.phases[1].arms] == [45, 30, 10]


def test_stopping_ends_the_phase_and_a_stopped_experiment_cannot_stop_again(plane: Experiments) -> None:
    running(plane)
    stopped = plane.stop("exp-1", START + timedelta(days=3))
    assert stopped.status == "stopped" and stopped.phases[-1].ended_at == START + timedelta(days=3)
    with pytest.raises(ExperimentStateError):
        plane.stop("exp-1", START + timedelta(days=4))
    # A stopped experiment may change freely; starting it again opens a new phase.
    reweighted = body(arms=[{**arm, "weight": 30} if arm["id"] == "b" else arm for arm in body()["arms"]])
    plane.revise("exp-1", reweighted, START + timedelta(days=4))
    assert plane.start("exp-1", START + timedelta(days=5)).phase == 2


def test_frozen_changes_names_nothing_for_an_identical_body() -> None:
    assert frozen_changes(ExperimentBody.model_validate(body()), ExperimentBody.model_validate(body())) == []


def test_create_twice_conflicts_and_unknown_ids_are_not_found(plane: Experiments) -> None:
    plane.create("exp-1", body(), START)
    with pytest.raises(Conflict):
        plane.create("exp-1", body(), START)
    with pytest.raises(NotFound):
        plane.get("nope")
    with pytest.raises(InvalidInput, match="goal"):
        plane.create("exp-2", body(goal="missing"), START)


def test_a_write_over_a_newer_version_conflicts_and_keeps_the_newer_one(plane: Experiments) -> None:
    running(plane)
    assert isinstance(plane.store, Store)
    plane.store.interloper = True
    with pytest.raises(Conflict, match="changed meanwhile"):
        plane.stop("exp-1", START + timedelta(days=1))
    assert plane.get("exp-1").status == "running" and plane.get("exp-1").version == 3


# ------------------------------------------------------------------------------ assignment
def test_assignment_logs_exposures_sends_nothing_to_the_holdout_and_skips_the_global_control(
    plane: Experiments,
) -> None:
    experiment = running(plane)
    outcomes = [plane.assign(experiment, f"p{i}", START) for i in range(4000)]
    reasons = {o.reason for o in outcomes}
    assert reasons == {"arm", "holdout", "global_control"}
    controlled = [o for o in outcomes if o.reason == "global_control"]
    assert all(o.arm is None and not o.sends for o in controlled)
    assert 0.03 < len(controlled) / len(outcomes) < 0.07
    assert all(not o.sends for o in outcomes if o.arm == "holdout")
    assert isinstance(plane.exposures, Exposures)
    assert len(plane.exposures.logged) == len(outcomes) - len(controlled)  # the global control is not exposed
    again = [plane.assign(experiment, f"p{i}", START + timedelta(days=1)).arm for i in range(4000)]
    assert again == [o.arm for o in outcomes]


def test_transactional_experiments_include_the_global_control_and_stopped_ones_assign_nobody(
    plane: Experiments,
) -> None:
    plane.create("exp-t", body(global_control=False), START)
    experiment = plane.start("exp-t", START)
    assert all(plane.assign(experiment, f"p{i}", START).arm is not None for i in range(2000))
    stopped = plane.stop("exp-t", START + timedelta(days=1))
    assert plane.assign(stopped, "p1", START).reason == "not_running"


# ------------------------------------------------------------------------------ results
def test_results_give_srm_first_and_every_engine_equal_to_analyze_on_the_same_sums(plane: Experiments) -> None:
    running(plane)
    out = plane.results("exp-1", START + timedelta(days=2))
    assert not out.srm.alert and out.srm.expected == {"control": 4500.0, "b": 4500.0, "holdout": 1000.0}
    assert [a.units for a in out.arms] == [4500, 4500, 1000]
    purchase = out.metric("purchase")
    assert [a.mean for a in purchase.arms] == [0.1, 0.12, 0.08]
    for engine in ("bayesian", "frequentist", "sequential"):
        direct = analyze(
            parse_analyze(
                {
                    "metric_type": "proportion",
                    "engine": engine,
                    "weights": [45, 45, 10],
                    "variants": [
                        {"id": "control", "n": 4500, "sum": 450},
                        {"id": "b", "n": 4500, "sum": 540},
                        {"id": "holdout", "n": 1000, "sum": 80},
                    ],
                }
            )
        )
        assert getattr(purchase, engine) == direct.variants


def test_a_tampered_split_raises_the_srm_alert_in_results(plane: Experiments) -> None:
    running(plane, statistics(exposures=(4500, 4000, 1000)))
    out = plane.results("exp-1", START + timedelta(days=2))
    assert out.srm.alert and out.srm.p_value < 0.001


def test_the_csv_of_raw_sums_reruns_to_the_same_answers(plane: Experiments) -> None:
    experiment = running(plane)
    text = plane.export_csv("exp-1")
    assert text.splitlines()[1].startswith("exp-1,1,purchase,proportion,false,false,control,true,45.0,4500,450.0")
    requests = analyze_requests_from_csv(text, engine="frequentist")
    out = plane.results("exp-1", START + timedelta(days=2))
    for metric in ("purchase", "revenue", "unsubscribe"):
        assert analyze(requests[metric]).variants == out.metric(metric).frequentist
    assert results_csv(experiment, statistics()) == text


def test_statistics_that_do_not_match_the_phase_are_refused(plane: Experiments) -> None:
    stats = statistics()
    running(plane, stats.model_copy(update={"exposures": {"control": 10, "b": 10}}))
    with pytest.raises(InvalidInput, match="exposures must name exactly"):
        plane.results("exp-1", START)


def test_days_to_decision_is_reported_while_running(plane: Experiments) -> None:
    running(plane, statistics(exposures=(450, 450, 100), purchases=(45, 47, 8), unsubscribes=(2, 2, 0)))
    out = plane.results("exp-1", START + timedelta(days=1))
    assert out.days_to_decision is not None and out.days_to_decision.days is not None
    assert out.days_to_decision.days > 1  # 900 of the ~30,000 people a 10 % lift on 10 % needs
    plane.stop("exp-1", START + timedelta(days=1))
    assert plane.results("exp-1", START + timedelta(days=2)).days_to_decision is None  # no more units come


# ------------------------------------------------------------------------------ auto-winner
def test_a_clear_winner_is_recorded_once_however_often_the_decision_fires(plane: Experiments) -> None:
    running(plane, statistics(purchases=(450, 650, 80)))
    first = plane.decide("exp-1", START + timedelta(hours=30))
    assert first.first and first.decision.action == "send_winner" and first.decision.arm == "b"
    b = next(c for c in first.decision.candidates if c.arm == "b")
    assert b.p_value is not None and b.p_value < 0.05 and b.worse_guardrails == []
    again = plane.decide("exp-1", START + timedelta(hours=31))
    assert not again.first and again.decision == first.decision


def test_no_winner_waits_before_the_window_ends_then_sends_control(plane: Experiments) -> None:
    running(plane, statistics(purchases=(450, 455, 90)))
    waiting = plane.decide("exp-1", START + timedelta(hours=10))
    assert waiting.decision.action == "wait" and not waiting.first
    over = plane.decide("exp-1", START + timedelta(hours=73))
    assert over.first and over.decision.action == "send_control" and over.decision.arm == "control"


def test_a_worse_guardrail_blocks_the_winner(plane: Experiments) -> None:
    running(plane, statistics(purchases=(450, 650, 80), unsubscribes=(20, 120, 0)))
    decided = plane.decide("exp-1", START + timedelta(hours=73))
    assert decided.decision.action == "send_control" and decided.decision.reason == "guardrail_worse"


def test_an_srm_alert_never_crowns_a_winner(plane: Experiments) -> None:
    running(plane, statistics(exposures=(4500, 3900, 1000)))
    decided = plane.decide("exp-1", START + timedelta(hours=73))
    assert decided.decision.action == "send_control" and decided.decision.reason == "srm_alert"


# ------------------------------------------------------------------------------ planner
def test_the_sample_size_for_an_absolute_difference_is_the_textbook_two_proportion_formula() -> None:
    # n = (z₁₋α/₂ + z_power)² (p₁(1-p₁) + p₂(1-p₂)) / Δ²
    answer = plan(PlanRequest(metric_type="proportion", baseline=0.10, effect=0.02, difference="absolute"))
    z = planning.normal_ppf(0.975) + planning.normal_ppf(0.8)
    assert answer.n_per_arm == math.ceil(z**2 * (0.1 * 0.9 + 0.12 * 0.88) / 0.02**2)
    assert answer.power >= 0.8


def test_the_minimum_detectable_effect_is_what_the_sample_size_detects() -> None:
    n = plan(PlanRequest(metric_type="proportion", baseline=0.05, effect=0.1)).n_per_arm
    mde = plan(PlanRequest(metric_type="proportion", baseline=0.05, n_per_arm=n)).effect
    assert mde is not None and mde == pytest.approx(0.1, rel=1e-3)


def test_the_sequential_engine_needs_more_units_than_the_fixed_horizon_test() -> None:
    fixed = plan(PlanRequest(metric_type="mean", baseline=20, stddev=40, effect=0.05)).n_per_arm
    always_valid = plan(PlanRequest(metric_type="mean", baseline=20, stddev=40, effect=0.05, engine="sequential"))
    assert always_valid.n_per_arm > fixed


@pytest.mark.parametrize(
    "body",
    [
        {"metric_type": "proportion", "baseline": 5.4e-105, "effect": 1.0},  # its variance underflows
        {"metric_type": "mean", "baseline": 1.0, "stddev": 1.0, "n_per_arm": 2, "alpha": 5.3e-136},
    ],
)
def test_figures_beyond_a_double_are_refused_as_input_not_failed(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="beyond what a double can plan"):
        plan(PlanRequest.model_validate(body))


def test_a_daily_rate_too_small_to_divide_by_gives_no_days() -> None:
    body = {"metric_type": "mean", "baseline": 1.0, "stddev": 1.0, "n_per_arm": 2, "units_per_day": 2.2e-309}
    assert plan(PlanRequest.model_validate(body)).days is None


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"metric_type": "proportion", "variants": [{"id": "a", "n": 10, "sum": 11}, {"id": "b", "n": 10, "sum": 1}]},
         "lies between 0 and n"),
        ({"metric_type": "mean", "variants": [{"id": "a", "n": 10, "sum": 10}, {"id": "b", "n": 10, "sum": 1}]},
         "needs sum_squares"),
        ({"metric_type": "mean", "variants": [{"id": "a", "n": 10, "sum": 10, "sum_squares": 1},
                                              {"id": "b", "n": 10, "sum": 1, "sum_squares": 1}]},
         "no data has these sums"),
        ({"metric_type": "proportion", "weights": [1], "variants": [{"id": "a", "n": 10, "sum": 1},
                                                                      {"id": "b", "n": 10, "sum": 1}]},
         "weights has 1 entries"),
        ({"metric_type": "ratio", "cuped": True, "variants": [{"id": "a", "n": 10, "sum": 1},
                                                              {"id": "b", "n": 10, "sum": 1}]},
         "cuped is not available for ratio"),
        ({"metric_type": "proportion", "engine": "bayesian", "correction": "holm",
          "variants": [{"id": "a", "n": 10, "sum": 1}, {"id": "a", "n": 10, "sum": 1}]},
         "repeated: a"),
    ],
)  # fmt: skip
def test_impossible_analyze_requests_are_refused_with_the_reason(request_body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        parse_analyze(request_body)
    assert refused.value.status == 400 and refused.value.code == "invalid_input"


def test_a_proportion_statistic_is_the_rate_and_its_population_variance() -> None:
    p = Proportion(200, 50)
    assert (p.mean, p.variance, p.sum_squares) == (0.25, 0.1875, 50)


def test_corrected_p_values_in_analyze_equal_statsmodels_and_leave_errors_out() -> None:
    # Given four treatments, one of them without units, when analysed with each correction, then
    # the three real tests are adjusted as statsmodels does and the empty arm gets no adjusted
    # p-value; a p-value of exactly 0 stays 0.
    variants = [
        {"id": "control", "n": 5000, "sum": 500},
        {"id": "b", "n": 5000, "sum": 560},
        {"id": "c", "n": 5000, "sum": 530},
        {"id": "d", "n": 5000, "sum": 900},
        {"id": "empty", "n": 0, "sum": 0},
    ]
    for method, sm_method in (("holm", "holm"), ("benjamini-hochberg", "fdr_bh")):
        answer = analyze(
            parse_analyze(
                {"metric_type": "proportion", "engine": "frequentist", "correction": method, "variants": variants}
            )
        )
        tested = [v for v in answer.variants if v.error is None]
        assert [v.id for v in tested] == ["b", "c", "d"]
        expected = multipletests([v.p_value for v in tested], method=sm_method)[1]
        assert [v.p_value_adjusted for v in tested] == pytest.approx(list(expected), abs=1e-12)
        assert answer.variants[-1].error is not None and answer.variants[-1].p_value_adjusted is None
    overwhelming = [{"id": "control", "n": 100_000, "sum": 10_000}, {"id": "b", "n": 100_000, "sum": 50_000}]
    body = {"metric_type": "proportion", "engine": "sequential", "correction": "holm", "variants": overwhelming}
    only = analyze(parse_analyze(body)).variants[0]
    assert only.p_value == 0.0 and only.p_value_adjusted == 0.0
