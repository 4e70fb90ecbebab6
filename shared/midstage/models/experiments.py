"""Experiments: the analyze request and answer, the experiment object, its metrics, and the
per-arm sufficient statistics its results are computed from.

`POST /v1/experiments/analyze` analyses summary statistics given in the body, so anyone can
check a test, including one run elsewhere. The fields are the issue's, spelled as there:

    {"metric_type": "proportion" | "mean" | "ratio",
     "engine": "bayesian" | "frequentist" | "sequential",
     "difference": "relative" | "absolute", "alpha": 0.05, "weights": [0.5, 0.5], "cuped": false,
     "variants": [{"id": "control", "n": 5000, "sum": 500, "sum_squares": 500}, {"id": "b", ...}]}

ratio metrics add `denominator_sum`, `denominator_sum_squares`, `main_denominator_sum_product`;
CUPED adds `covariate_sum`, `covariate_sum_squares`, `main_covariate_sum_product`. The answer is
`{"srm_p_value", "variants": [{"id", "expected", "ci", "p_value" | "chance_to_win", "risk"}]}`,
each treatment against the first variant. Added beside them (nothing renamed): `srm_alert`,
the control's summary, each arm's `n` and `mean`, `uplift_stddev`, an `error` code when an
answer cannot be computed, and optional `inverse`, `prior`, `sequential_tuning_parameter`
and `correction` in the request.

Bad input is refused with every problem named (pydantic's errors, with our messages): sums
that no data set can have (a proportion's conversions above n, Σx² < (Σx)²/n), fields of
another metric type, CUPED without its covariate sums, weights that do not match the arms.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from midstage.models.messaging import _ID

__all__ = [
    "DEFAULT_WINDOW_HOURS",
    "MAX_ARMS",
    "STANDARD_GUARDRAILS",
    "AnalyzeAnswer",
    "AnalyzeRequest",
    "AnalyzeVariant",
    "Arm",
    "ArmMetricStatistics",
    "ArmSummary",
    "AutoWinner",
    "Engine",
    "Experiment",
    "ExperimentBody",
    "ExperimentStatus",
    "ExperimentTarget",
    "Metric",
    "MetricType",
    "Phase",
    "PhaseStatistics",
    "PlanAnswer",
    "PlanRequest",
    "PriorSettings",
    "VariantAnswer",
]

MetricType = Literal["proportion", "mean", "ratio"]
Engine = Literal["bayesian", "frequentist", "sequential"]
Difference = Literal["relative", "absolute"]
Correction = Literal["none", "holm", "benjamini-hochberg"]
CorrectionFamily = Literal["all", "metric", "variant"]

MAX_ARMS: Final = 20
MAX_UNITS: Final = 10**12
MAX_METRICS: Final = 20
DEFAULT_WINDOW_HOURS: Final = 72  # GrowthBook's DEFAULT_METRIC_WINDOW_HOURS
DEFAULT_CUPED_LOOKBACK_DAYS: Final = 14  # GrowthBook's default CUPED lookback
DEFAULT_PROPER_PRIOR_STDDEV: Final = 0.3  # GrowthBook's app default when a proper prior is on
# Sums computed in floating point may undershoot what exact arithmetic gives by a few ulps;
# only a shortfall beyond this share is an impossible data set.
_SLACK: Final = 1e-9

_VARIANT_ID = r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$"
_EVENT_NAME = r"^\S(.{0,198}\S)?$"
_PROPERTY_PATH = r"^[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,7}$"
_RATIO_FIELDS: Final = ("denominator_sum", "denominator_sum_squares", "main_denominator_sum_product")
_CUPED_FIELDS: Final = ("covariate_sum", "covariate_sum_squares", "main_covariate_sum_product")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Units = Annotated[int, Field(ge=0, le=MAX_UNITS, description="units (people) in the arm")]


# ------------------------------------------------------------------------------ consistency
def _impossible_spread(n: float, total: float, squares: float, label: str) -> str | None:
    """Why Σx² cannot go with Σx over n units (Σx² ≥ (Σx)²/n for any data), or None."""
    if n > 0 and squares < total * total / n * (1 - _SLACK) - _SLACK:
        return f"{label}_squares ({squares:g}) is below {label}²/n ({total * total / n:g}): no data has these sums"
    if squares < 0:
        return f"{label}_squares cannot be negative"
    return None


def _impossible_product(
    n: float, x: float, x2: float, y: float, y2: float, xy: float, field: str, is_proportion: tuple[bool, bool]
) -> str | None:
    """Why a cross product breaks Cauchy-Schwarz (|cov| ≤ sd·sd) for the sums given, or None."""
    if n <= 1:
        return None
    var_x = x * (1 - x / n) if is_proportion[0] else x2 - x * x / n
    var_y = y * (1 - y / n) if is_proportion[1] else y2 - y * y / n
    cov = xy - x * y / n
    bound = math.sqrt(max(var_x, 0.0) * max(var_y, 0.0))
    if abs(cov) > bound * (1 + 1e-6) + _SLACK * (abs(xy) + abs(x * y / n)) + _SLACK:
        return f"{field} ({xy:g}) is impossible with these sums: |Σxy - ΣxΣy/n| exceeds √(SSx·SSy)"
    return None


# ------------------------------------------------------------------------------ analyze
class AnalyzeVariant(_Strict):
    """One arm's sufficient statistics for the metric."""

    id: str = Field(pattern=_VARIANT_ID)
    n: Units
    sum: float = Field(description="Σx: conversions for a proportion, total value for a mean, Σ numerator for a ratio")
    sum_squares: float | None = Field(
        default=None, description="Σx²; for a proportion it equals sum and may be left out"
    )
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    main_denominator_sum_product: float | None = None
    covariate_sum: float | None = None
    covariate_sum_squares: float | None = None
    main_covariate_sum_product: float | None = None


class PriorSettings(_Strict):
    """A proper normal prior on the relative effect (the Bayesian engine's default is a flat one)."""

    mean: float = 0.0
    stddev: float = Field(default=DEFAULT_PROPER_PRIOR_STDDEV, gt=0)


class AnalyzeRequest(_Strict):
    metric_type: MetricType
    engine: Engine = "bayesian"
    difference: Difference = "relative"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    weights: list[Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="the planned share of each arm, in the order of `variants`; equal when left out"
    )
    cuped: bool = False
    variants: list[AnalyzeVariant] = Field(min_length=2, max_length=MAX_ARMS)
    inverse: bool = Field(
        default=False, description="lower is better (unsubscribes, bounces): flips chance to win and risk"
    )
    sequential_tuning_parameter: float = Field(default=5000.0, gt=0)
    prior: PriorSettings | None = Field(default=None, description="bayesian only; absent means the flat prior")
    correction: Correction = Field(
        default="none", description="frequentist and sequential p-values, over the treatments"
    )

    @model_validator(mode="after")
    def _coherent(self) -> AnalyzeRequest:
        problems: list[str] = []
        ids = [v.id for v in self.variants]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            problems.append(f"variant ids must be unique; repeated: {', '.join(duplicates)}")
        if self.weights is not None and len(self.weights) != len(self.variants):
            problems.append(f"weights has {len(self.weights)} entries for {len(self.variants)} variants")
        if self.cuped and self.metric_type == "ratio":
            problems.append(
                "cuped is not available for ratio metrics (gbstats 0.8.0 has no regression-adjusted ratio either)"
            )
        if self.prior is not None and self.engine != "bayesian":
            problems.append("prior applies to the bayesian engine only")
        if self.correction != "none" and self.engine == "bayesian":
            problems.append("correction adjusts p-values; the bayesian engine gives chances to win, not p-values")
        for index, variant in enumerate(self.variants):
            problems.extend(f"variants[{index}] ({variant.id}): {p}" for p in variant_problems(self, variant))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def planned_weights(self) -> list[float]:
        return list(self.weights) if self.weights is not None else [1.0] * len(self.variants)


def variant_problems(request: AnalyzeRequest, variant: AnalyzeVariant) -> list[str]:
    """What is missing, misplaced or impossible in one variant's sums for this request."""
    problems: list[str] = []
    kind = request.metric_type
    given = {name for name in AnalyzeVariant.model_fields if getattr(variant, name) is not None}
    if kind != "ratio" and given & set(_RATIO_FIELDS):
        problems.append(f"{', '.join(sorted(given & set(_RATIO_FIELDS)))} belong to ratio metrics")
    if not request.cuped and given & set(_CUPED_FIELDS):
        problems.append(f"{', '.join(sorted(given & set(_CUPED_FIELDS)))} need cuped: true")
    needed: list[str] = []
    if kind in ("mean", "ratio"):
        needed.append("sum_squares")
    if kind == "ratio":
        needed.extend(_RATIO_FIELDS)
    if request.cuped and kind != "ratio":
        needed.extend(["covariate_sum", "main_covariate_sum_product"])
        if kind == "mean":
            needed.append("covariate_sum_squares")
    missing = [name for name in needed if getattr(variant, name) is None]
    if missing:
        problems.append(f"a {kind} metric{' with cuped' if request.cuped else ''} needs {', '.join(missing)}")
        return problems
    n = variant.n
    if kind == "proportion":
        if not 0 <= variant.sum <= n:
            problems.append(f"a proportion's sum (conversions, {variant.sum:g}) lies between 0 and n ({n})")
        if variant.sum_squares is not None and variant.sum_squares != variant.sum:
            problems.append("a proportion's sum_squares equals its sum (each unit counts 0 or 1); leave it out")
    else:
        assert variant.sum_squares is not None
        problems.extend(p for p in [_impossible_spread(n, variant.sum, variant.sum_squares, "sum")] if p)
    if kind == "ratio":
        d, d2, md = variant.denominator_sum, variant.denominator_sum_squares, variant.main_denominator_sum_product
        assert d is not None
        assert d2 is not None
        assert md is not None
        assert variant.sum_squares is not None
        problems.extend(
            p
            for p in [
                _impossible_spread(n, d, d2, "denominator_sum")
                or _impossible_product(
                    n, variant.sum, variant.sum_squares, d, d2, md, "main_denominator_sum_product", (False, False)
                )
            ]
            if p
        )
    if request.cuped and kind != "ratio":
        c, c2, mc = variant.covariate_sum, variant.covariate_sum_squares, variant.main_covariate_sum_product
        assert c is not None
        assert mc is not None
        if kind == "proportion":
            # The covariate is the same metric before exposure: a proportion too.
            if not 0 <= c <= n:
                problems.append(f"a proportion's covariate_sum ({c:g}) lies between 0 and n ({n})")
            elif c2 is not None and c2 != c:
                problems.append("a proportion's covariate_sum_squares equals its covariate_sum; leave it out")
            else:
                problems.extend(
                    p
                    for p in [
                        _impossible_product(
                            n, variant.sum, variant.sum, c, c, mc, "main_covariate_sum_product", (True, True)
                        )
                    ]
                    if p
                )
        else:
            assert c2 is not None
            assert variant.sum_squares is not None
            problems.extend(
                p
                for p in [
                    _impossible_spread(n, c, c2, "covariate_sum")
                    or _impossible_product(
                        n, variant.sum, variant.sum_squares, c, c2, mc, "main_covariate_sum_product", (False, False)
                    )
                ]
                if p
            )
    return problems


class VariantAnswer(BaseModel):
    """One treatment against the control (the first variant)."""

    id: str
    n: int
    mean: float = Field(description="the arm's mean (unadjusted by CUPED): a rate, a value per unit, or Σx/Σd")
    expected: float = Field(description="the estimated difference: relative (0.12 = +12 %) or absolute")
    ci: tuple[float, float] = Field(description="credible (bayesian) or confidence interval of the difference")
    uplift_stddev: float
    p_value: float | None = None
    p_value_adjusted: float | None = None
    chance_to_win: float | None = None
    risk: tuple[float, float] | None = Field(
        default=None, description="expected loss of choosing control, of choosing this variant (bayesian)"
    )
    error: str | None = Field(default=None, description="why the numbers are the uninformative default")
    error_message: str | None = None


class ArmSummary(BaseModel):
    id: str
    n: int
    mean: float
    stddev: float


class AnalyzeAnswer(BaseModel):
    srm_p_value: float
    srm_alert: bool
    engine: Engine
    difference: Difference
    control: ArmSummary
    variants: list[VariantAnswer]

    def to_body(self) -> dict[str, Any]:
        """The JSON answer: fields an engine does not give are left out, not sent as null."""
        return self.model_dump(mode="json", exclude_none=True)


# ------------------------------------------------------------------------------ planner
class PlanRequest(_Strict):
    """What an experiment must detect, for the power / minimum-detectable-effect planner."""

    metric_type: Literal["proportion", "mean"]
    baseline: float = Field(description="the control's rate (proportion) or mean")
    stddev: float | None = Field(default=None, gt=0, description="per-unit standard deviation (mean metrics)")
    effect: float | None = Field(default=None, description="the effect to detect; omit to get the MDE for n_per_arm")
    n_per_arm: int | None = Field(default=None, gt=1, le=MAX_UNITS)
    difference: Difference = "relative"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    power: float = Field(default=0.8, gt=0, lt=1)
    engine: Engine = "frequentist"
    chance_to_win: float = Field(default=0.95, gt=0.5, lt=1)
    sequential_tuning_parameter: float = Field(default=5000.0, gt=0)
    units_per_day: float | None = Field(default=None, gt=0, description="both arms together; gives the days needed")

    @model_validator(mode="after")
    def _coherent(self) -> PlanRequest:
        if (self.effect is None) == (self.n_per_arm is None):
            raise ValueError("give either effect (to get the sample size) or n_per_arm (to get the MDE)")
        if self.metric_type == "mean" and self.stddev is None:
            raise ValueError("a mean metric needs stddev")
        if self.metric_type == "proportion" and self.stddev is not None:
            raise ValueError("a proportion's variance follows from its rate: leave stddev out")
        return self


class PlanAnswer(BaseModel):
    n_per_arm: int
    total: int
    effect: float | None
    power: float
    days: float | None = None


# ------------------------------------------------------------------------------ experiment object
class ExperimentTarget(_Strict):
    """What the experiment splits: a campaign's variants, a journey's random split, a
    template's variants (subject lines, content) or a rule's action."""

    kind: Literal["campaign", "journey", "template", "rule"]
    id: str = Field(pattern=_ID)


class Arm(_Strict):
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


class Metric(_Strict):
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
    event: str = Field(pattern=_EVENT_NAME, description="a tracked event name")
    value: str | None = Field(default=None, pattern=_PROPERTY_PATH, description="property summed (mean, ratio)")
    denominator_event: str | None = Field(default=None, pattern=_EVENT_NAME)
    denominator_value: str | None = Field(default=None, pattern=_PROPERTY_PATH)
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


class AutoWinner(_Strict):
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


class ExperimentBody(_Strict):
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


class Phase(_Strict):
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


# ------------------------------------------------------------------------------ statistics in
class ArmMetricStatistics(_Strict):
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


class PhaseStatistics(_Strict):
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
