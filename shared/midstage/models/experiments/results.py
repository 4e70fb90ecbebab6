"""Per-arm statistics in, results and the winner decision out."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from midstage.models.experiments.analysis import ArmSummary, VariantAnswer
from midstage.models.experiments.common import Correction, CorrectionFamily, Engine, Strict, Units
from midstage.models.experiments.experiment import AutoWinner, MetricKind
from midstage.models.messaging import _ID


# ------------------------------------------------------------------------------ statistics in
class ArmMetricStatistics(Strict):
    """One arm's sums for one metric over its exposed units (n is the arm's exposures)."""

    arm: str = Field(pattern=_ID)
    sum: float
    sum_squares: float | None = None
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    main_denominator_sum_product: float | None = None
    covariate_sum: float | None = None
    covariate_sum_squares: float | None = None
    main_covariate_sum_product: float | None = None


class PhaseStatistics(Strict):
    """What an experiment's results are computed from: units exposed per arm (people exposed
    in two arms already left out and counted in `multiple_exposures`) and each metric's sums."""

    experiment_id: str = Field(pattern=_ID)
    phase: int = Field(ge=1)
    exposures: dict[str, Units]
    multiple_exposures: int = Field(default=0, ge=0)
    metrics: dict[str, list[ArmMetricStatistics]] = Field(default_factory=dict)


# ------------------------------------------------------------------------------ results out
class ArmResult(BaseModel):
    id: str
    name: str | None
    weight: float
    holdout: bool
    units: int


class SrmAnswer(BaseModel):
    p_value: float
    alert: bool
    reason: str
    max_deviation: float
    expected: dict[str, float]


class MetricResults(BaseModel):
    """One metric: every arm's summary and every engine's answer, each arm against control."""

    metric: str
    name: str | None
    kind: MetricKind
    guardrail: bool
    inverse: bool
    cuped: bool
    control: ArmSummary
    arms: list[ArmSummary]
    bayesian: list[VariantAnswer]
    frequentist: list[VariantAnswer]
    sequential: list[VariantAnswer]


class DaysToDecisionAnswer(BaseModel):
    """At today's pace, days until the goal reaches the planned power for every treatment."""

    days: float | None
    engine: Engine
    effect: float
    needed_units: dict[str, float]


class ExperimentResults(BaseModel):
    experiment_id: str
    phase: int
    computed_at: dt.datetime
    srm: SrmAnswer
    arms: list[ArmResult]
    multiple_exposures: int
    control: str
    goal: str
    correction: Correction
    correction_family: CorrectionFamily
    metrics: list[MetricResults]
    days_to_decision: DaysToDecisionAnswer | None

    def metric(self, metric_id: str) -> MetricResults:
        return next(m for m in self.metrics if m.metric == metric_id)


class CandidateNumbers(BaseModel):
    """A treatment's numbers as the winner rule read them."""

    arm: str
    expected: float
    ci: tuple[float, float]
    p_value: float | None = None
    chance_to_win: float | None = None
    wins_goal: bool
    worse_guardrails: list[str]
    error: str | None = None


WinnerAction = Literal["send_winner", "send_control", "wait"]


class WinnerDecision(BaseModel):
    """What to send the rest of the audience, why, and the numbers it was decided on."""

    experiment_id: str
    phase: int
    action: WinnerAction
    arm: str | None = Field(description="the arm sent to the rest: the winner or control; None while waiting")
    reason: str
    explanation: str
    final: bool = Field(description="the test window is over: the decision no longer waits")
    decided_at: dt.datetime
    rule: AutoWinner
    alpha: float
    srm_p_value: float
    candidates: list[CandidateNumbers]
