"""Sufficient statistics of one arm for one metric, as gbstats 0.8.0 models them.

An arm's answer on a metric needs only a few sums over its units (people): n, Σx, Σx² and, for
a ratio metric, the denominator's Σd, Σd² and Σxd, for CUPED the pre-exposure covariate's Σy,
Σy² and Σxy. Every engine works from these, so an experiment's results cost O(arms) whatever
its size, and anyone holding the exported sums can recompute every number.

The variances follow gbstats exactly, quirks included, because equality with it is the test:
a proportion's variance is p(1 - p) (the population form), a mean's is the sample variance
with n - 1, a ratio's is the delta-method variance of Σx/Σd, and CUPED's is
var(x) + θ² var(y) - 2θ cov(x, y) with θ pooled over the two arms being compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = [
    "Proportion",
    "Ratio",
    "RegressionAdjusted",
    "SampleMean",
    "Statistic",
    "pooled_theta",
    "with_pooled_theta",
]


@dataclass(frozen=True, slots=True)
class Proportion:
    """A conversion metric: `sum` units of `n` converted (each x is 0 or 1, so Σx² = Σx)."""

    n: float
    sum: float

    @property
    def sum_squares(self) -> float:
        return self.sum

    @property
    def mean(self) -> float:
        return 0.0 if self.n == 0 else self.sum / self.n

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        return self.mean * (1.0 - self.mean)


@dataclass(frozen=True, slots=True)
class SampleMean:
    """A value per unit (revenue, orders, opens), zero for units without any."""

    n: float
    sum: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return 0.0 if self.n == 0 else self.sum / self.n

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1)


Component = Proportion | SampleMean


@dataclass(frozen=True, slots=True)
class Ratio:
    """Σx / Σd over the arm's units (revenue per order, clicks per open), by the delta method."""

    n: float
    numerator: Component
    denominator: Component
    sum_of_products: float  # Σ x·d over units

    @property
    def mean(self) -> float:
        return 0.0 if self.denominator.sum == 0 else self.numerator.sum / self.denominator.sum

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def covariance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_of_products - self.numerator.sum * self.denominator.sum / self.n) / (self.n - 1)

    @property
    def variance(self) -> float:
        d_mean = self.denominator.mean
        if d_mean == 0 or self.n <= 1:
            return 0.0
        m_mean = self.numerator.mean
        return (
            self.numerator.variance / d_mean**2
            - 2.0 * self.covariance * m_mean / d_mean**3
            + m_mean**2 * self.denominator.variance / d_mean**4
        )


@dataclass(frozen=True, slots=True)
class RegressionAdjusted:
    """CUPED: the metric x adjusted by a pre-exposure covariate y, mean(x) - θ·mean(y).

    `theta` is set by `with_pooled_theta` for each pair of arms compared; the unadjusted mean
    (mean x) stays the scale of a relative difference, as in gbstats.
    """

    n: float
    post: Component
    pre: Component
    sum_of_products: float  # Σ x·y over units
    theta: float = 0.0

    @property
    def mean(self) -> float:
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean

    @property
    def covariance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_of_products - self.post.sum * self.pre.sum / self.n) / (self.n - 1)

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return self.post.variance + self.theta**2 * self.pre.variance - 2.0 * self.theta * self.covariance


Statistic = Proportion | SampleMean | Ratio | RegressionAdjusted


def stddev(statistic: Statistic) -> float:
    variance = statistic.variance
    return 0.0 if variance <= 0 else math.sqrt(variance)


def _joint(a: Component, b: Component, n: float) -> Component:
    if isinstance(a, Proportion) and isinstance(b, Proportion):
        return Proportion(n, a.sum + b.sum)
    if isinstance(a, SampleMean) and isinstance(b, SampleMean):
        return SampleMean(n, a.sum + b.sum, a.sum_squares + b.sum_squares)
    raise TypeError("both arms of a metric must carry the same kind of statistic")


def pooled_theta(a: RegressionAdjusted, b: RegressionAdjusted) -> float:
    """θ = cov(x, y) / var(y) over both arms pooled (0 when either pooled variance is 0)."""
    n = a.n + b.n
    post = _joint(a.post, b.post, n)
    pre = _joint(a.pre, b.pre, n)
    if pre.variance == 0 or post.variance == 0:
        return 0.0
    joint = RegressionAdjusted(n, post, pre, a.sum_of_products + b.sum_of_products)
    return joint.covariance / pre.variance


def with_pooled_theta(a: Statistic, b: Statistic) -> tuple[Statistic, Statistic]:
    """The pair as compared: CUPED statistics get their pooled θ; with θ = 0 (a covariate
    without variance) they fall back to the unadjusted metric, as gbstats does."""
    if isinstance(a, RegressionAdjusted) and isinstance(b, RegressionAdjusted):
        theta = pooled_theta(a, b)
        if theta == 0:
            return a.post, b.post
        return replace(a, theta=theta), replace(b, theta=theta)
    return a, b
