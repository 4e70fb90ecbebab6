"""Sample ratio mismatch: do the arms hold the shares of units their weights promise?

A split that misses its weights means something decides who is counted in an arm besides the
hash (a bug, bots filtered in one arm only, a message that fails in one variant), and then no
engine's answer can be trusted, so results show this check first.

The test is a chi-square goodness of fit with k - 1 degrees of freedom (gbstats's `check_srm`).
The alert follows GrowthBook's rule, the issue's: p < 0.001 once every arm has at least 8
units. Mozilla's guard is available but off by default: `min_deviation` also asks that one
arm's count be off its expected count by that relative share, because with millions of units a
harmless 0.2 % skew reaches any p threshold (mozilla/experimenter#16011).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from midstage.logic.experiments.distributions import chi2_sf

__all__ = [
    "SRM_MIN_DEVIATION",
    "SRM_MIN_UNITS",
    "SRM_THRESHOLD",
    "SrmCheck",
    "check_srm",
    "srm_p_value",
]

SRM_THRESHOLD: Final = 0.001
SRM_MIN_UNITS: Final = 8
SRM_MIN_DEVIATION: Final = 0.0  # off: the alert is the rule unless a caller asks for the guard


@dataclass(frozen=True, slots=True)
class SrmCheck:
    p_value: float
    alert: bool
    expected: tuple[float, ...]  # units each arm should hold, given the total and the weights
    max_deviation: float  # the largest |observed - expected| / expected over the arms
    reason: str  # why it alerts or does not, in a sentence


def srm_p_value(units: Sequence[float], weights: Sequence[float]) -> float:
    """The chi-square p-value of the observed units against the weights (1 with no units).

    As gbstats: an arm with weight ≤ 0 adds nothing to the statistic, and the degrees of freedom
    are the number of arms minus one.
    """
    if len(units) != len(weights):
        raise ValueError("one weight per arm is needed")
    total = sum(units)
    if not total:
        return 1.0
    total_weight = sum(weights)
    statistic = 0.0
    for observed, weight in zip(units, weights, strict=True):
        if weight <= 0:
            continue
        expected = weight / total_weight * total
        statistic += (observed - expected) ** 2 / expected
    return chi2_sf(statistic, len(units) - 1)


def check_srm(
    units: Sequence[float],
    weights: Sequence[float],
    *,
    threshold: float = SRM_THRESHOLD,
    min_units: int = SRM_MIN_UNITS,
    min_deviation: float = SRM_MIN_DEVIATION,
) -> SrmCheck:
    p_value = srm_p_value(units, weights)
    total, total_weight = sum(units), sum(weights)
    expected = tuple(w / total_weight * total for w in weights)
    deviations = [abs(o - e) / e for o, e in zip(units, expected, strict=True) if e > 0]
    max_deviation = max(deviations, default=0.0)
    if min(units, default=0) < min_units:
        return SrmCheck(p_value, False, expected, max_deviation, f"an arm has fewer than {min_units} units")
    if p_value >= threshold:
        return SrmCheck(p_value, False, expected, max_deviation, f"p = {p_value:.3g} is not below {threshold}")
    if min_deviation > 0 and max_deviation < min_deviation:
        return SrmCheck(
            p_value,
            False,
            expected,
            max_deviation,
            f"p = {p_value:.3g}, but no arm is {min_deviation:.0%} off its expected count",
        )
    return SrmCheck(
        p_value,
        True,
        expected,
        max_deviation,
        f"p = {p_value:.3g} < {threshold} and an arm is {max_deviation:.1%} off its expected count:"
        " the split does not follow the weights, so no result can be trusted",
    )
