"""The three engines: Bayesian, frequentist (Welch's t-test) and sequential, with gbstats 0.8.0's
defaults (improper flat prior, relative difference, alpha 0.05, tuning parameter 5000).

Each compares one treatment arm with the control arm on one metric and answers the difference
on the chosen scale:

- relative: Δ = (μT - μC) / μC, var Δ = σT²/(μC² nT) + σC² μT²/(μC⁴ nC) (the delta method);
- absolute: Δ = μT - μC, var Δ = σT²/nT + σC²/nC.

For CUPED the numerator of Δ uses the adjusted means and the scale μC stays the unadjusted
control mean, as in gbstats.

- Bayesian: a normal likelihood for Δ with a normal prior, by default improper (flat), so the
  posterior is N(Δ̂, var Δ). Chance to win P(Δ > 0) (P(Δ < 0) for an inverse metric, where lower
  is better), a credible interval from the posterior quantiles, and risk: the expected loss of
  choosing control, E[max(Δ, 0)], and of choosing the treatment, E[max(-Δ, 0)] (swapped for an
  inverse metric). Each is P(side)·(truncated-normal mean of that side).
- Frequentist: Welch's t-test on Δ̂ / sqrt(var Δ) with Welch-Satterthwaite degrees of freedom;
  two-sided p-value and a (1 - α) confidence interval from the t quantile.
- Sequential: an always-valid confidence sequence (Waudby-Smith et al. 2023, eq. 9, 155, 161):
  with N = nC + nT and ρ = sqrt((-2 ln α + ln(-2 ln α + 1)) / N*), N* the tuning parameter, the
  half-width is sqrt(N var Δ) · sqrt(2(Nρ² + 1)/(N²ρ²) · ln(sqrt(Nρ² + 1)/α)) and the p-value
  min(1, 1/e) with e = exp(ρ² N Δ̂²/var Δ / (2(Nρ² + 1))) / sqrt(Nρ² + 1). Valid however often
  it is looked at.

Where an answer cannot be computed the engines return gbstats's uninformative answer (expected 0,
interval [0, 0], chance to win 0.5 or p-value 1) with an error code saying why, never a number
that looks like a finding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Final, Literal, TypeVar

from midstage.logic.experiments.distributions import (
    normal_cdf,
    normal_pdf,
    normal_ppf,
    normal_sf,
    student_t_ppf,
    student_t_sf,
)
from midstage.logic.experiments.statistics import Statistic, with_pooled_theta

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_TUNING",
    "ERROR_MESSAGES",
    "BayesianResult",
    "Difference",
    "FrequentistResult",
    "Prior",
    "bayesian",
    "sequential",
    "t_test",
]

Difference = Literal["relative", "absolute"]
DEFAULT_ALPHA: Final = 0.05
DEFAULT_TUNING: Final = 5000.0

# Why an answer could not be computed (gbstats's messages, in our words).
CONTROL_MEAN_ZERO: Final = "control_mean_zero"
NO_UNITS: Final = "no_units"
ZERO_VARIANCE: Final = "zero_variance"
NOT_COMPUTABLE: Final = "not_computable"
ERROR_MESSAGES: Final = {
    CONTROL_MEAN_ZERO: (
        "the control arm's mean is 0, so a relative difference (and gbstats's t-test, and a prior on the"
        " relative effect) is undefined"
    ),
    NO_UNITS: "an arm has no units",
    ZERO_VARIANCE: "an arm's variance is 0 or negative: every unit has the same value, or the sums are inconsistent",
    NOT_COMPUTABLE: "the sums are beyond floating point here (a mean of 1e-250 squared is 0): no number is given",
}


@dataclass(frozen=True, slots=True)
class Prior:
    """A normal prior on the relative effect (gbstats's prior_type "relative"); rescaled by the
    control mean for an absolute difference. Improper (flat) unless `proper`."""

    mean: float = 0.0
    variance: float = 1.0
    proper: bool = False


@dataclass(frozen=True, slots=True)
class BayesianResult:
    expected: float
    ci: tuple[float, float]
    uplift_stddev: float
    chance_to_win: float
    risk: tuple[float, float]  # (choosing control, choosing the treatment)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FrequentistResult:
    expected: float
    ci: tuple[float, float]
    uplift_stddev: float
    p_value: float
    error: str | None = None


_R = TypeVar("_R", BayesianResult, FrequentistResult)


# ------------------------------------------------------------------------------ shared parts
def _difference(control: Statistic, treatment: Statistic, relative: bool) -> float:
    if relative:
        return (treatment.mean - control.mean) / control.unadjusted_mean
    return treatment.mean - control.mean


def _variance(control: Statistic, treatment: Statistic, relative: bool) -> float:
    if relative:
        scale = control.unadjusted_mean
        return treatment.variance / (scale**2 * treatment.n) + control.variance * treatment.unadjusted_mean**2 / (
            scale**4 * control.n
        )
    return treatment.variance / treatment.n + control.variance / control.n


def _zero_variance(control: Statistic, treatment: Statistic) -> bool:
    return control.variance <= 0 or treatment.variance <= 0


# ------------------------------------------------------------------------------ Bayesian
def _guarded(compute: Callable[[], _R], default: Callable[[str], _R]) -> _R:
    """The engine's answer, or its uninformative default where floating point gives up: means so
    close to 0 that their squares underflow, or sums so large their squares overflow."""
    try:
        result = compute()
    except (ZeroDivisionError, OverflowError, ValueError):
        return default(NOT_COMPUTABLE)
    numbers = [x for field in astuple(result) for x in (field if isinstance(field, tuple) else [field])]
    if not all(math.isfinite(x) for x in numbers if isinstance(x, float)):
        return default(NOT_COMPUTABLE)
    return result


def bayesian(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    alpha: float = DEFAULT_ALPHA,
    inverse: bool = False,
    prior: Prior = Prior(),
) -> BayesianResult:
    return _guarded(
        lambda: _bayesian(control, treatment, difference, alpha, inverse, prior),
        _bayesian_default,
    )


def _bayesian(
    control: Statistic, treatment: Statistic, difference: Difference, alpha: float, inverse: bool, prior: Prior
) -> BayesianResult:
    relative = difference == "relative"
    control, treatment = with_pooled_theta(control, treatment)
    if relative and (control.mean == 0 or control.unadjusted_mean == 0):
        return _bayesian_default(CONTROL_MEAN_ZERO)
    if control.n == 0 or treatment.n == 0:
        return _bayesian_default(NO_UNITS)
    if _zero_variance(control, treatment):
        return _bayesian_default(ZERO_VARIANCE)

    data_variance = _variance(control, treatment, relative)
    data_mean = _difference(control, treatment, relative)
    if prior.proper:
        if not relative and control.unadjusted_mean == 0:
            # The prior is on the relative effect; with a control mean of 0 it has no absolute scale.
            return _bayesian_default(CONTROL_MEAN_ZERO)
        scale = 1.0 if relative else control.unadjusted_mean
        prior_mean = prior.mean * abs(scale)
        prior_variance = prior.variance * scale**2
        precision = 1.0 / data_variance + 1.0 / prior_variance
        mean = (data_mean / data_variance + prior_mean / prior_variance) / precision
        sd = math.sqrt(1.0 / precision)
    else:
        mean, sd = data_mean, math.sqrt(data_variance)

    z = normal_ppf(1.0 - alpha / 2.0)
    better = normal_sf(-mean / sd)  # P(Δ > 0)
    gain, loss = _partial_expectations(mean, sd)
    # Risk of choosing control = what the treatment would have gained; of choosing the
    # treatment = what it would lose. For a metric where lower is better the sides swap.
    risk = (gain, loss) if not inverse else (loss, gain)
    return BayesianResult(
        expected=mean,
        ci=(mean - z * sd, mean + z * sd),
        uplift_stddev=sd,
        chance_to_win=1.0 - better if inverse else better,
        risk=risk,
    )


def _partial_expectations(mean: float, sd: float) -> tuple[float, float]:
    """(E[max(Δ, 0)], E[max(-Δ, 0)]) for Δ ~ N(mean, sd²).

    Each is P(side) times the truncated-normal mean of that side, written in closed form,
    P(Δ > 0)·E[Δ | Δ > 0] = mean·Φ(mean/sd) + sd·φ(mean/sd), which stays exact where the side's
    probability underflows.
    """
    z = mean / sd
    density = sd * normal_pdf(z)
    positive = mean * normal_cdf(z) + density
    negative = density - mean * normal_cdf(-z)
    return max(positive, 0.0), max(negative, 0.0)


def _bayesian_default(error: str) -> BayesianResult:
    return BayesianResult(0.0, (0.0, 0.0), 0.0, 0.5, (0.0, 0.0), error)


# ------------------------------------------------------------------------------ frequentist
def _frequentist_checks(control: Statistic, treatment: Statistic) -> str | None:
    # gbstats's t-tests refuse a zero control mean even for an absolute difference.
    if control.mean == 0 or control.unadjusted_mean == 0:
        return CONTROL_MEAN_ZERO
    if _zero_variance(control, treatment):
        return ZERO_VARIANCE
    return None


def _frequentist_default(error: str) -> FrequentistResult:
    return FrequentistResult(0.0, (0.0, 0.0), 0.0, 1.0, error)


def _welch_df(control: Statistic, treatment: Statistic) -> float:
    """Welch-Satterthwaite: (vC + vT)² / (vT²/(nT - 1) + vC²/(nC - 1)), v = σ²/n. Both v are first
    divided by the larger, which leaves the ratio unchanged and keeps squares of variances near
    1e-160 (or 1e160) from underflowing (overflowing)."""
    vc, vt = control.variance / control.n, treatment.variance / treatment.n
    largest = max(vc, vt)
    vc, vt = vc / largest, vt / largest
    return (vc + vt) ** 2 / (vt**2 / (treatment.n - 1) + vc**2 / (control.n - 1))


def t_test(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    alpha: float = DEFAULT_ALPHA,
) -> FrequentistResult:
    """Welch's two-sided t-test of Δ = 0."""
    return _guarded(lambda: _t_test(control, treatment, difference, alpha), _frequentist_default)


def _t_test(control: Statistic, treatment: Statistic, difference: Difference, alpha: float) -> FrequentistResult:
    relative = difference == "relative"
    control, treatment = with_pooled_theta(control, treatment)
    error = _frequentist_checks(control, treatment)
    if error:
        return _frequentist_default(error)
    estimate = _difference(control, treatment, relative)
    variance = _variance(control, treatment, relative)
    se = math.sqrt(variance)
    df = _welch_df(control, treatment)
    p_value = 2.0 * student_t_sf(abs(estimate / se), df)
    width = student_t_ppf(1.0 - alpha / 2.0, df) * se
    return FrequentistResult(estimate, (estimate - width, estimate + width), se, p_value)


# ------------------------------------------------------------------------------ sequential
def rho(alpha: float, tuning: float) -> float:
    """ρ of the confidence sequence, tuned to be tightest near N* = `tuning` units (eq. 161)."""
    log_alpha = -2.0 * math.log(alpha)
    return math.sqrt((log_alpha + math.log(log_alpha + 1.0)) / tuning)


def sequential_multiplier(total_units: float, alpha: float, tuning: float) -> float:
    """The confidence sequence's half-width in standard errors at N = `total_units` (eq. 9):
    sqrt(2(Nρ² + 1)/(Nρ²) · ln(sqrt(Nρ² + 1)/α)). The fixed-horizon test's is z(1 - α/2)."""
    r2n = total_units * rho(alpha, tuning) ** 2
    return math.sqrt(2.0 * (r2n + 1.0) / r2n * math.log(math.sqrt(r2n + 1.0) / alpha))


def sequential(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    alpha: float = DEFAULT_ALPHA,
    tuning: float = DEFAULT_TUNING,
) -> FrequentistResult:
    """The always-valid two-sided test: the interval and p-value hold at every look."""
    return _guarded(lambda: _sequential(control, treatment, difference, alpha, tuning), _frequentist_default)


def _sequential(
    control: Statistic, treatment: Statistic, difference: Difference, alpha: float, tuning: float
) -> FrequentistResult:
    relative = difference == "relative"
    control, treatment = with_pooled_theta(control, treatment)
    error = _frequentist_checks(control, treatment)
    if error:
        return _frequentist_default(error)
    estimate = _difference(control, treatment, relative)
    variance = _variance(control, treatment, relative)
    total = control.n + treatment.n
    width = math.sqrt(variance) * sequential_multiplier(total, alpha, tuning)
    r2 = rho(alpha, tuning) ** 2
    grown = total * r2 + 1.0
    # log of the e-value, so a huge one does not overflow: p = min(1, 1/e).
    log_e = r2 * (estimate**2 * total / variance) / (2.0 * grown) - 0.5 * math.log(grown)
    p_value = 1.0 if log_e <= 0 else math.exp(-log_e)
    return FrequentistResult(estimate, (estimate - width, estimate + width), math.sqrt(variance), p_value)
