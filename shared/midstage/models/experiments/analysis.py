"""`POST /v1/experiments/analyze` and the planner: requests and answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from midstage.models.experiments.common import (
    CUPED_FIELDS,
    DEFAULT_PROPER_PRIOR_STDDEV,
    MAX_ARMS,
    MAX_UNITS,
    RATIO_FIELDS,
    VARIANT_ID,
    Correction,
    Difference,
    Engine,
    MetricType,
    Strict,
    Units,
    impossible_product,
    impossible_spread,
)


# ------------------------------------------------------------------------------ analyze
class AnalyzeVariant(Strict):
    """One arm's sufficient statistics for the metric."""

    id: str = Field(pattern=VARIANT_ID)
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


class PriorSettings(Strict):
    """A proper normal prior on the relative effect (the Bayesian engine's default is a flat one)."""

    mean: float = 0.0
    stddev: float = Field(default=DEFAULT_PROPER_PRIOR_STDDEV, gt=0)


class AnalyzeRequest(Strict):
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
    if kind != "ratio" and given & set(RATIO_FIELDS):
        problems.append(f"{', '.join(sorted(given & set(RATIO_FIELDS)))} belong to ratio metrics")
    if not request.cuped and given & set(CUPED_FIELDS):
        problems.append(f"{', '.join(sorted(given & set(CUPED_FIELDS)))} need cuped: true")
    needed: list[str] = []
    if kind in ("mean", "ratio"):
        needed.append("sum_squares")
    if kind == "ratio":
        needed.extend(RATIO_FIELDS)
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
        problems.extend(p for p in [impossible_spread(n, variant.sum, variant.sum_squares, "sum")] if p)
    if kind == "ratio":
        d, d2, md = variant.denominator_sum, variant.denominator_sum_squares, variant.main_denominator_sum_product
        assert d is not None
        assert d2 is not None
        assert md is not None
        assert variant.sum_squares is not None
        problems.extend(
            p
            for p in [
                impossible_spread(n, d, d2, "denominator_sum")
                or impossible_product(
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
                        impossible_product(
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
                    impossible_spread(n, c, c2, "covariate_sum")
                    or impossible_product(
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
class PlanRequest(Strict):
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
