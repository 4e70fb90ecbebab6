"""Gamma-Gamma order value (Fader, Hardie and Lee's 2005 "RFM and CLV" paper; Fader and Hardie's
2013 note "The Gamma-Gamma model of monetary value") and a discounted CLV on top of BG/NBD.

A customer's transaction values scatter around their own mean zeta, Gamma(p, nu); nu varies
across customers, Gamma(q, gamma) (`v` below is gamma, as the published parameters name it).
Fitted on customers with at least one repeat transaction, from x and their mean repeat value
m_x, by maximum likelihood (scipy's L-BFGS-B over ln p, ln q, ln v, analytic gradient):

    LL_i = ln G(px+q) - ln G(px) - ln G(q) + q ln v + (px-1) ln m_x + px ln x - (px+q) ln(v + x m_x)

The model assumes a customer's spend does not depend on how often they buy; `spend_frequency_
correlation` reports the Pearson correlation of x and m_x among repeat buyers so the card shows
when that assumption is strained.

Expected value of a customer's future transactions (zero repeat transactions: the population mean):

    E[M | p, q, v, m_x, x] = p (v + x m_x) / (p x + q - 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from midstage.logic.predictions.bgnbd import LOG_BOUND, BgNbd, FitError
from midstage.logic.predictions.summary import FloatArray, Summary

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")
    customers: int = 0  # the repeat buyers it was fitted on

    def parameters(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}

    @property
    def mean_value(self) -> float:
        """The population's expected transaction value, p v / (q - 1) (infinite when q <= 1)."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else float("inf")

    def expected_value(self, summary: Summary) -> FloatArray:
        """Expected value of each customer's future transactions."""
        x, m = summary.frequency, summary.monetary
        repeat = (x > 0) & (m > 0)
        conditional = self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)
        return np.where(repeat, conditional, self.mean_value)


def _negative_ll_and_gradient(log_params: FloatArray, x: FloatArray, m: FloatArray) -> tuple[float, FloatArray]:
    p, q, v = np.exp(log_params)
    px = p * x
    log_vxm = np.log(v + x * m)
    ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1.0) * np.log(m) + px * np.log(x)
    ll = ll - (px + q) * log_vxm
    g_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_vxm)
    g_q = digamma(px + q) - digamma(q) + np.log(v) - log_vxm
    g_v = q / v - (px + q) / (v + x * m)
    n = float(len(x))
    gradient = -np.array([p * g_p.sum(), q * g_q.sum(), v * g_v.sum()]) / n
    return -float(ll.sum()) / n, gradient


def fit(summary: Summary, *, initial: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma over the repeat buyers of `summary` (x > 0, m_x > 0)."""
    repeat = (summary.frequency > 0) & (summary.monetary > 0)
    x, m = summary.frequency[repeat], summary.monetary[repeat]
    if len(x) < 2:
        raise FitError("the spend model needs at least two customers with a repeat purchase of positive value")
    if np.all(m == m[0]):
        raise FitError("every repeat buyer spent the same: the spend model cannot be identified")
    # Scale to the data's mean value so the optimiser starts where the likelihood has a slope.
    start = np.log(np.array([initial[0], initial[1], initial[2] * float(np.mean(m))]))
    result = minimize(
        _negative_ll_and_gradient,
        start,
        args=(x, m),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * 3,
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10},
    )
    if not result.success or not np.all(np.isfinite(result.x)):
        raise FitError(f"Gamma-Gamma did not converge: {result.message}")
    p, q, v = (float(value) for value in np.exp(result.x))
    return GammaGamma(p, q, v, log_likelihood=-float(result.fun) * len(x), customers=len(x))


def spend_frequency_correlation(summary: Summary) -> float:
    repeat = (summary.frequency > 0) & (summary.monetary > 0)
    if repeat.sum() < 3:
        return float("nan")
    return float(np.corrcoef(summary.frequency[repeat], summary.monetary[repeat])[0, 1])


def clv(
    purchases: BgNbd,
    spend: GammaGamma,
    summary: Summary,
    *,
    months: int = 12,
    annual_discount_rate: float = 0.10,
    margin: float = 1.0,
) -> FloatArray:
    """Discounted value of each customer's next `months` months: the expected transactions of
    each month (from BG/NBD) times the expected transaction value (Gamma-Gamma) times `margin`,
    discounted at the end of the month at `annual_discount_rate` compounded monthly. A month is
    1/12 of 365 days, so 12 months are the same horizon as the 365-day expectation."""
    if annual_discount_rate <= -1.0:
        raise ValueError("the discount rate must be above -100 %")
    month = DAYS_PER_YEAR / 12.0 / summary.unit_days
    monthly_factor = (1.0 + annual_discount_rate) ** (1.0 / 12.0)
    value = spend.expected_value(summary) * margin
    total = np.zeros(len(summary))
    previous = np.zeros(len(summary))
    for i in range(1, months + 1):
        cumulative = purchases.expected_purchases(summary, month * i)
        total += (cumulative - previous) / monthly_factor**i
        previous = cumulative
    return total * value
