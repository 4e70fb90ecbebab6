"""The experiment object: its target, arms, metrics, auto-winner rule, phases."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from midstage.models.experiments.common import (
    DEFAULT_CUPED_LOOKBACK_DAYS,
    DEFAULT_WINDOW_HOURS,
    EVENT_NAME,
    MAX_ARMS,
    MAX_METRICS,
    PROPERTY_PATH,
    Correction,
    CorrectionFamily,
    Difference,
    MetricType,
    Strict,
)
from midstage.models.messaging import _ID


# ------------------------------------------------------------------------------ experiment object
class ExperimentTarget(Strict):
    """What the experiment splits: a campaign's variants, a journey's random split, a
    template's variants (subject lines, content) or a rule's action."""

    kind: Literal["campaign", "journey", "template", "rule"]
    id: str = Field(pattern=_ID)


class Arm(Strict):
    id: str = Field(pattern=_ID)
    name: str | None = Field(default=None, max_length=200)
    weight: float = Field(gt=0, le=1000, description="relative share of units; any scale")
    holdout: bool = Field(default=False, description="receives nothing, still measured")
    content: dict[str, Any] | None = Field(
        default=None, description="what the arm sends, in the target's terms (a variant id, a template and vars...)"
    )

    @model_validator(mode="after")
    def _holdout_sends_nothing(self) -> Arm:
        if self.holdout and self.content:
            raise ValueError("a holdout arm receives nothing, so it has no content")
        if self.content is not None and len(json.dumps(self.content, default=str)) > 16_000:
            raise ValueError("an arm's content is larger than 16,000 characters of JSON")
        return self


MetricKind = Literal["conversion", "mean", "ratio"]
_METRIC_TYPES: Final[dict[MetricKind, MetricType]] = {"conversion": "proportion", "mean": "mean", "ratio": "ratio"}


class Metric(Strict):
    """An outcome counted per exposed person within `window_hours` after their exposure.

    conversion: did `event` happen (a proportion); mean: the sum of `value` over `event`
    (revenue per person, 0 for people without one); ratio: Σ value of `event` over
    Σ `denominator_value` (or the count) of `denominator_event` (revenue per order).
    A guardrail is a metric that must not get worse for a winner to be sent; `inverse` says
    lower is better (unsubscribes, complaints, bounces).
    """

    id: str = Field(pattern=_ID)
    name: str | None = Field(default=None, max_length=200)
    kind: MetricKind
    event: str = Field(pattern=EVENT_NAME, description="a tracked event name")
    value: str | None = Field(default=None, pattern=PROPERTY_PATH, description="property summed (mean, ratio)")
    denominator_event: str | None = Field(default=None, pattern=EVENT_NAME)
    denominator_value: str | None = Field(default=None, pattern=PROPERTY_PATH)
    window_hours: int = Field(default=DEFAULT_WINDOW_HOURS, ge=1, le=24 * 90)
    guardrail: bool = False
    inverse: bool = False
    cuped: bool = False
    cuped_lookback_days: int = Field(default=DEFAULT_CUPED_LOOKBACK_DAYS, ge=1, le=365)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Metric:
        if self.kind == "conversion" and (self.value or self.denominator_event or self.denominator_value):
            raise ValueError("a conversion metric counts people with the event: no value or denominator")
        if self.kind == "mean" and (self.denominator_event or self.denominator_value):
            raise ValueError("a mean metric has no denominator; use kind ratio")
        if self.kind == "ratio" and not self.denominator_event:
            raise ValueError("a ratio metric needs denominator_event")
        if self.kind == "ratio" and self.cuped:
            raise ValueError("cuped is not available for ratio metrics")
        return self

    @property
    def metric_type(self) -> MetricType:
        return _METRIC_TYPES[self.kind]


# Guardrails every marketing experiment can use, on the events the feedback plane records.
STANDARD_GUARDRAILS: Final = (
    Metric(
        id="unsubscribe", name="Unsubscribe rate", kind="conversion", event="Unsubscribed", guardrail=True, inverse=True
    ),
    Metric(
        id="complaint",
        name="Complaint rate",
        kind="conversion",
        event="Email Marked as Spam",
        guardrail=True,
        inverse=True,
    ),
    Metric(id="bounce", name="Bounce rate", kind="conversion", event="Email Bounced", guardrail=True, inverse=True),
)


class AutoWinner(Strict):
    """Send variants to a test share first; send the winner to the rest only when the rule holds.

    rule "sequential": a treatment wins when its sequential p-value on the goal is below alpha in
    the better direction, at any look (the sequential test stays valid under peeking);
    rule "chance_to_win": a treatment wins when its chance to win on the goal reaches
    `chance_to_win`, judged once, when the test window ends (a Bayesian probability checked at
    every look would crown noise). Either way no guardrail may be significantly worse, and the
    SRM check must pass. Otherwise control is sent when the window ends, or the decision waits.
    """

    rule: Literal["sequential", "chance_to_win"] = "sequential"
    chance_to_win: float = Field(default=0.95, gt=0.5, lt=1)
    test_percent: float = Field(default=20, gt=0, le=90, description="share of the audience in the test")
    window_hours: int = Field(default=72, ge=1, le=24 * 30, description="the test's length; then a decision is final")
    min_units_per_arm: int = Field(default=100, ge=8, description="no winner before every arm has this many units")


ExperimentStatus = Literal["draft", "running", "stopped"]


class ExperimentBody(Strict):
    """An experiment as the API takes it."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    target: ExperimentTarget
    arms: list[Arm] = Field(min_length=2, max_length=MAX_ARMS)
    control: str | None = Field(default=None, description="the arm others are compared with; default the first")
    global_control: bool = Field(
        default=True, description="leave out the global control group (false only for transactional messages)"
    )
    goal: str = Field(pattern=_ID, description="the id of the metric the decision is taken on")
    metrics: list[Metric] = Field(min_length=1, max_length=MAX_METRICS)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    difference: Difference = "relative"
    sequential_tuning_parameter: float = Field(default=5000.0, gt=0)
    correction: Correction = "none"
    correction_family: CorrectionFamily = "all"
    minimum_detectable_effect: float = Field(default=0.1, gt=0, description="on the goal, relative; plans the length")
    power: float = Field(default=0.8, gt=0, lt=1)
    auto_winner: AutoWinner | None = None

    @model_validator(mode="after")
    def _coherent(self) -> ExperimentBody:
        arm_ids = [arm.id for arm in self.arms]
        if len(set(arm_ids)) != len(arm_ids):
            raise ValueError("arm ids must be unique")
        if sum(arm.holdout for arm in self.arms) > 1:
            raise ValueError("an experiment has at most one holdout arm")
        if sum(not arm.holdout for arm in self.arms) < 1:
            raise ValueError("an experiment needs an arm that is not a holdout")
        if self.control is not None and self.control not in arm_ids:
            raise ValueError(f"control {self.control!r} is not one of the arms")
        metric_ids = [metric.id for metric in self.metrics]
        if len(set(metric_ids)) != len(metric_ids):
            raise ValueError("metric ids must be unique")
        goal = next((metric for metric in self.metrics if metric.id == self.goal), None)
        if goal is None:
            raise ValueError(f"goal {self.goal!r} is not one of the metrics")
        if goal.guardrail:
            raise ValueError("the goal metric cannot also be a guardrail")
        return self

    @property
    def control_arm(self) -> str:
        return self.control or self.arms[0].id

    @property
    def goal_metric(self) -> Metric:
        return next(metric for metric in self.metrics if metric.id == self.goal)

    def weights(self) -> list[tuple[str, float]]:
        return [(arm.id, arm.weight) for arm in self.arms]


class ExperimentCreate(ExperimentBody):
    """POST /v1/experiments: the experiment and the id it is known by (never reused)."""

    id: str = Field(pattern=_ID)


class Phase(Strict):
    """A stretch of a running experiment with one set of arms, weights and content; analysed on
    its own, because units of an earlier phase saw other treatments."""

    number: int = Field(ge=1)
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    arms: list[Arm]
    control: str
    target: ExperimentTarget


class Experiment(ExperimentBody):
    """An experiment as stored. While it runs, its arms (weights, content), control, target, goal,
    guardrails and winner rule are frozen: changing them is refused unless a new phase is asked
    for (`logic.experiments.lifecycle.FROZEN`)."""

    id: str = Field(pattern=_ID)
    status: ExperimentStatus = "draft"
    version: int = Field(default=1, ge=1)
    phases: list[Phase] = Field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime

    @field_validator("created_at", "updated_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("a time zone is needed")
        return value

    @property
    def phase(self) -> int:
        """The current (or last) phase's number; 0 before the first start."""
        return self.phases[-1].number if self.phases else 0
