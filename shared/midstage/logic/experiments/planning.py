"""Before launch, how many units an experiment needs; while it runs, how many days are left.

The planner asks the question each engine will answer, on the scale it answers it: a
difference Δ (relative by default) whose standard error comes from the same variance formula
the engines use (delta method for relative differences, unpooled variances). With nC and nT
units, var Δ = S / n for a constant S, and the power to detect a true Δ is

    power ≈ Φ(|Δ| / se - c),

c being the engine's critical value in standard errors:

- frequentist: z(1 - α/2), the two-sided fixed-horizon test (the far tail is neglected, as in
  the textbook two-proportion formula, which this reproduces for an absolute difference);
- bayesian: z(chance-to-win threshold), one-sided (a flat prior makes the chance to win
  Φ(Δ̂/se));
- sequential: the confidence sequence's multiplier at N = nC + nT, which grows slowly with N,
  so the sample size is solved by bisection rather than in closed form.

For proportions the variance of each arm follows from its rate, p(1 - p), the treatment's
rate being the baseline moved by the effect; for means a common standard deviation is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Final, Literal

from midstage.logic.experiments.distributions import normal_cdf, normal_ppf
from midstage.logic.experiments.engines import DEFAULT_ALPHA, DEFAULT_TUNING, Difference, sequential_multiplier

__all__ = [
    "DEFAULT_POWER",
    "DaysToDecision",
    "Design",
    "PlanEngine",
    "days_to_decision",
    "minimum_detectable_effect",
    "power_at",
    "sample_size_per_arm",
]

PlanEngine = Literal["frequentist", "sequential", "bayesian"]
DEFAULT_POWER: Final = 0.8
DEFAULT_CHANCE_TO_WIN: Final = 0.95
_MAX_UNITS: Final = 10**13  # beyond any audience: no plan asks for more


@dataclass(frozen=True, slots=True)
class Design:
    """What an experiment is planned to detect.

    `baseline` is the control's mean (a rate for a proportion); `stddev` the per-unit standard
    deviation for a mean metric, None for a proportion. `effect` is the smallest difference
    worth detecting, relative (0.1 = +10 %) or absolute as `difference` says.
    """

    baseline: float
    effect: float
    stddev: float | None = None
    difference: Difference = "relative"
    alpha: float = DEFAULT_ALPHA
    power: float = DEFAULT_POWER
    engine: PlanEngine = "frequentist"
    chance_to_win: float = DEFAULT_CHANCE_TO_WIN
    tuning: float = DEFAULT_TUNING

    def __post_init__(self) -> None:
        if self.baseline == 0 and self.difference == "relative":
            raise ValueError("a relative effect needs a non-zero baseline")
        if self.stddev is None and not 0 < self.baseline < 1:
            raise ValueError("a proportion's baseline rate is strictly between 0 and 1")
        if self.stddev is not None and self.stddev <= 0:
            raise ValueError("the standard deviation must be positive")
        if not 0 < self.alpha < 1 or not 0 < self.power < 1 or not 0.5 < self.chance_to_win < 1:
            raise ValueError("alpha and power lie in (0, 1), the chance-to-win threshold in (0.5, 1)")
        if self.effect == 0:
            raise ValueError("the effect to detect must not be 0")
        if self.stddev is None and not 0 < self.treatment_mean < 1:
            raise ValueError("the effect moves the rate outside (0, 1)")

    @property
    def treatment_mean(self) -> float:
        if self.difference == "relative":
            return self.baseline * (1.0 + self.effect)
        return self.baseline + self.effect

    def unit_variance(self, control_share: float = 1.0, treatment_share: float = 1.0) -> float:
        """S in var Δ = S / n, with nC = control_share·n and nT = treatment_share·n."""
        mc, mt = self.baseline, self.treatment_mean
        if self.stddev is None:
            vc, vt = mc * (1.0 - mc), mt * (1.0 - mt)
        else:
            vc = vt = self.stddev**2
        if self.difference == "relative":
            return vt / (mc**2 * treatment_share) + vc * mt**2 / (mc**4 * control_share)
        return vt / treatment_share + vc / control_share

    def critical_value(self, total_units: float) -> float:
        if self.engine == "bayesian":
            return normal_ppf(self.chance_to_win)
        if self.engine == "sequential":
            return sequential_multiplier(total_units, self.alpha, self.tuning)
        return normal_ppf(1.0 - self.alpha / 2.0)


def _power(design: Design, scale: float, control_share: float = 1.0, treatment_share: float = 1.0) -> float:
    se = math.sqrt(design.unit_variance(control_share, treatment_share) / scale)
    total = scale * (control_share + treatment_share)
    return normal_cdf(abs(design.effect) / se - design.critical_value(total))


def power_at(design: Design, n_per_arm: float) -> float:
    """The chance the engine declares the planned effect with `n_per_arm` units in each arm."""
    return _power(design, n_per_arm)


def _scale_needed(design: Design, control_share: float, treatment_share: float) -> float:
    """The smallest scale s (nC = control_share·s, nT = treatment_share·s) reaching the power."""
    needed_z = normal_ppf(design.power)
    unit_variance = design.unit_variance(control_share, treatment_share)
    if design.engine != "sequential":
        return (design.critical_value(0.0) + needed_z) ** 2 * unit_variance / design.effect**2

    def enough(scale: float) -> bool:
        return _power(design, scale, control_share, treatment_share) >= design.power

    high = 1.0
    while not enough(high):
        high *= 2.0
        if high > _MAX_UNITS:
            return math.inf
    low = high / 2.0
    while high - low > 0.5:
        middle = (low + high) / 2.0
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


def sample_size_per_arm(design: Design) -> int:
    """Units needed in each of two equal arms (control and one treatment)."""
    scale = _scale_needed(design, 1.0, 1.0)
    return _MAX_UNITS if math.isinf(scale) else math.ceil(scale - 1e-9)


def minimum_detectable_effect(design: Design, n_per_arm: float) -> float | None:
    """The smallest effect (with the sign and scale of `design.effect`) detected with the
    design's power when each arm has `n_per_arm` units; None when even the largest effect the
    metric allows is not (a rate cannot leave (0, 1))."""
    sign = 1.0 if design.effect > 0 else -1.0
    top = _largest_effect(design, sign)

    def detected(size: float) -> bool:
        return power_at(replace(design, effect=sign * size), n_per_arm) >= design.power

    if not detected(top):
        return None
    low, high = 0.0, top
    for _ in range(200):
        middle = (low + high) / 2.0
        if detected(middle):
            high = middle
        else:
            low = middle
        if high - low <= 1e-12 * high:
            break
    return sign * high


def _largest_effect(design: Design, sign: float) -> float:
    """How far the effect can go in its direction: a rate stays inside (0, 1)."""
    if design.stddev is not None:
        return 1e12
    room = 1.0 - design.baseline if sign > 0 else design.baseline
    shrink = 1.0 - 1e-9  # the rate itself may not reach 0 or 1
    return room * shrink / (design.baseline if design.difference == "relative" else 1.0)


@dataclass(frozen=True, slots=True)
class DaysToDecision:
    """How long a running experiment still needs to reach its planned power at today's pace."""

    days: float | None  # None: no traffic yet, so no pace to extrapolate
    needed_control: float  # units the control arm needs in all
    needed_treatment: float
    control_units: float
    treatment_units: float

    @property
    def reached(self) -> bool:
        return self.days == 0.0


def days_to_decision(
    design: Design, *, control_units: float, treatment_units: float, days_elapsed: float
) -> DaysToDecision:
    """Days until the comparison reaches the design's power, at the pace of units so far.

    The two arms keep their observed pace (so unequal weights are respected). It plans on the
    effect worth detecting, never on the effect observed so far: a plan on the observed effect
    is post-hoc power, which just restates the p-value.
    """
    if control_units <= 0 or treatment_units <= 0 or days_elapsed <= 0:
        return DaysToDecision(None, math.nan, math.nan, control_units, treatment_units)
    control_rate, treatment_rate = control_units / days_elapsed, treatment_units / days_elapsed
    days_needed = _scale_needed(design, control_rate, treatment_rate)
    remaining = max(0.0, days_needed - days_elapsed)
    return DaysToDecision(
        remaining if math.isfinite(remaining) else None,
        days_needed * control_rate,
        days_needed * treatment_rate,
        control_units,
        treatment_units,
    )
