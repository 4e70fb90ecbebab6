"""The distribution functions the engines need, in pure Python.

The analyze path runs inside the admin Lambda, whose package carries neither numpy nor scipy, so
the few functions the engines use are written here from their textbook definitions:

- the normal CDF and survival function through `math.erfc` (accurate in both tails), the density
  directly, and the quantile by `statistics.NormalDist.inv_cdf` (Wichura's AS 241);
- Student's t through the regularised incomplete beta function, I_x(a, b), evaluated by its
  continued fraction (modified Lentz); the quantile by a bracketed Newton iteration on it;
- the chi-square survival function through the regularised upper incomplete gamma function
  (series below a + 1, continued fraction above).

Every function is checked against scipy in tests/unit/test_experiments_distributions.py.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Final

__all__ = [
    "chi2_sf",
    "normal_cdf",
    "normal_pdf",
    "normal_ppf",
    "normal_sf",
    "regularized_beta",
    "regularized_gamma_q",
    "student_t_cdf",
    "student_t_ppf",
    "student_t_sf",
]

_SQRT2: Final = math.sqrt(2.0)
_LOG_SQRT_2PI: Final = 0.5 * math.log(2.0 * math.pi)
_STANDARD: Final = NormalDist()
_EPS: Final = 1e-16
_TINY: Final = 1e-300
_MAX_ITERATIONS: Final = 100_000
_LOG_SMALLEST: Final = -745.0  # log of the smallest positive double, 5e-324
# Above this argument the Stirling series of log-gamma's remainder, cut after x^-9, is exact to
# double precision (its next term is 691/(360360 x^11) < 3e-16 there).
_STIRLING_FROM: Final = 15.0
# Degrees of freedom from which Student's t is computed by its expansion around the normal.
_NEARLY_NORMAL: Final = 1e7


# ------------------------------------------------------------------------------ normal
def normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x - _LOG_SQRT_2PI)


def normal_cdf(x: float) -> float:
    """Φ(x). Through erfc rather than erf, so the lower tail keeps its relative precision."""
    return 0.5 * math.erfc(-x / _SQRT2)


def normal_sf(x: float) -> float:
    """1 - Φ(x), without the cancellation of computing it as a difference."""
    return 0.5 * math.erfc(x / _SQRT2)


def normal_ppf(p: float) -> float:
    """Φ⁻¹(p) for 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1 is needed, not {p}")
    return _STANDARD.inv_cdf(p)


# ------------------------------------------------------------------------------ log-gamma
def _stirling_remainder(x: float) -> float:
    """lgamma(x) - [(x - ½) ln x - x + ½ ln 2π], for x ≥ _STIRLING_FROM."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 / 1188))))


def _lgamma_ratio(a: float, b: float) -> float:
    """lgamma(a) - lgamma(a + b), without the cancellation of two large log-gammas when a is large."""
    if a < _STIRLING_FROM:
        return math.lgamma(a) - math.lgamma(a + b)
    return (
        -(a - 0.5) * math.log1p(b / a) - b * math.log(a + b) + b + _stirling_remainder(a) - _stirling_remainder(a + b)
    )


def _log_beta(a: float, b: float) -> float:
    small, large = (a, b) if a <= b else (b, a)
    return math.lgamma(small) + _lgamma_ratio(large, small)


# ------------------------------------------------------------------------------ incomplete beta
def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a+1)/(a+b+2)."""
    total, above, below = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - total * x / above
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((below + m2) * (a + m2)),
            -(a + m) * (total + m) * x / ((a + m2) * (above + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            step = d * c
            fraction *= step
        if abs(step - 1.0) < _EPS:
            return fraction
    raise ArithmeticError(f"the incomplete beta fraction did not converge for a={a}, b={b}, x={x}")


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return _regularized_beta(a, b, x, 1.0 - x, math.log(x), math.log1p(-x))


def _regularized_beta(a: float, b: float, x: float, xc: float, log_x: float, log_xc: float) -> float:
    """I_x(a, b) given x, 1 - x and both logarithms, each computed by the caller from its own
    formula: with a large exponent (a = df/2), a·ln x must not inherit the rounding of x."""
    log_front = a * log_x + b * log_xc - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, xc) / b


# ------------------------------------------------------------------------------ Student's t
def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for T with `df` degrees of freedom (df > 0, not necessarily whole)."""
    if df <= 0 or math.isnan(df):
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if t == 0.0:
        return 0.5
    if df >= _NEARLY_NORMAL:
        # The continued fraction below loses about df·1e-17 of relative precision (its terms
        # cancel when x is this close to 1); this far out, Fisher's first-order expansion
        # P(T > t) = 1 - Φ(t) + φ(t)(t³ + t)/(4 df) + O(df⁻²) is exact to double precision.
        return normal_sf(t) + (0.0 if math.isinf(df) else normal_pdf(t) * (t**3 + t) / (4.0 * df))
    t2 = t * t
    # P(|T| > |t|) = I_x(df/2, 1/2) with x = df/(df+t²); both x and 1 - x from their own formula.
    if math.isinf(t2):
        # |t| beyond 1e154 (a difference over a standard error that underflows): t² overflows,
        # so x = df/t² is taken through logarithms; the tail is then 0 to double precision.
        log_x = math.log(df) - 2.0 * math.log(abs(t))
        x = math.exp(log_x)
        two_tails = _regularized_beta(df / 2.0, 0.5, x, 1.0, log_x, -x)
        return 0.5 * two_tails if t > 0 else 1.0 - 0.5 * two_tails
    x = df / (df + t2)
    xc = t2 / (df + t2)
    if xc == 0.0:  # t so close to 0 that t² underflows: the median, to double precision
        return 0.5
    two_tails = _regularized_beta(df / 2.0, 0.5, x, xc, -math.log1p(t2 / df), math.log(xc))
    return 0.5 * two_tails if t > 0 else 1.0 - 0.5 * two_tails


def student_t_cdf(t: float, df: float) -> float:
    return student_t_sf(-t, df)


def _student_t_pdf(t: float, df: float) -> float:
    log_density = -0.5 * math.log(df) - _log_beta(df / 2.0, 0.5) - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    return math.exp(log_density)


def student_t_ppf(p: float, df: float) -> float:
    """The t quantile: the t with P(T ≤ t) = p. Newton's method on the tail, kept inside a bracket."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1 is needed, not {p}")
    if p == 0.5:
        return 0.0
    # Solved on the smaller tail as given: 1 - p would lose the digits of a small lower tail.
    if p < 0.5:
        return -_upper_quantile(p, df)
    return _upper_quantile(1.0 - p, df)


def _upper_quantile(tail: float, df: float) -> float:
    """The t > 0 with P(T > t) = tail, for 0 < tail < 0.5."""
    if math.isinf(df):
        return -normal_ppf(tail)
    low, high = 0.0, math.inf
    # Start from the Cornish-Fisher expansion of the t quantile around the normal one
    # (Abramowitz & Stegun 26.7.5): close for moderate df, so Newton needs a step or two; far
    # off only for df of 1 or 2, where the bracket below keeps Newton honest.
    z = -normal_ppf(tail)
    guess = z + (z**3 + z) / (4.0 * df)
    if df >= 3.0:
        guess += (
            (5 * z**5 + 16 * z**3 + 3 * z) / (96.0 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384.0 * df**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160.0 * df**4)
        )
    for _ in range(200):
        excess = student_t_sf(guess, df) - tail
        if excess > 0:
            low = guess
        else:
            high = guess
        if excess == 0.0:
            return guess
        step = excess / _student_t_pdf(guess, df)
        # The tail carries a relative rounding noise of about df·1e-17 (the continued fraction's
        # cancellation), so a smaller step is noise: t is then exact to that much of itself.
        if abs(step) <= max(1e-14, df * 1e-17) * abs(guess) or high - low <= 1e-14 * guess:
            return guess + step
        following = guess + step
        if not low < following < high:
            following = (low + high) / 2.0 if math.isfinite(high) else max(2.0 * guess, low + 1.0)
        guess = following
    return guess


# ------------------------------------------------------------------------------ chi-square
def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the regularised upper incomplete gamma function."""
    if x <= 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        # The series of P(a, x), then Q = 1 - P.
        term = total = 1.0 / a
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                return max(0.0, 1.0 - total * math.exp(log_front))
        raise ArithmeticError(f"the incomplete gamma series did not converge for a={a}, x={x}")
    if log_front < _LOG_SMALLEST:
        # Q < e^log_front there: below the smallest double (and the fraction would not settle).
        return 0.0
    # Q's continued fraction (modified Lentz).
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for i in range(1, _MAX_ITERATIONS):
        numerator = -i * (i - a)
        b += 2.0
        d = numerator * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + numerator / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        fraction *= step
        if abs(step - 1.0) < _EPS:
            return math.exp(log_front) * fraction
    raise ArithmeticError(f"the incomplete gamma fraction did not converge for a={a}, x={x}")


def chi2_sf(x: float, df: float) -> float:
    """P(X > x) for a chi-square X with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    return regularized_gamma_q(df / 2.0, x / 2.0)
