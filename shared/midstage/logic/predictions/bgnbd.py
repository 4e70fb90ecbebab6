"""BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way").

While alive, a customer buys at a rate lambda ~ Gamma(r, alpha); after each purchase they drop out
with probability p ~ Beta(a, b). Fitted by maximum likelihood: scipy's L-BFGS-B over the
logarithms of (r, alpha, a, b), with the analytic gradient, on the log-likelihood in the
numerically safe form of Fader and Hardie's 2013 note ("Overcoming the BG/NBD model's #NUM!
error problem"):

    LL_i = ln G(r+x) - ln G(r) + r ln alpha + ln G(a+b) + ln G(b+x) - ln G(b) - ln G(a+b+x)
           + ln[ (alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x) ]

with the last term taken as a log-sum-exp, so no power underflows for heavy buyers.

Per customer (Fader, Hardie and Lee 2005 eq. 10; the 2008 note for P(alive)):

    E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
                          / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
    P(alive | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
    P(Y(t) > 0 | x, t_x, T) = P(alive) (1 - ((alpha+T)/(alpha+T+t))^(r+x))

The last is exact for BG/NBD: a customer alive at T stays alive until their next purchase, so
"at least one purchase in t" only needs the first inter-purchase time, NBD-distributed given
the data. The 2F1 product is evaluated through Euler's transformation,
(1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z) with c = a+b+x-1, whose
parameters stay small however many purchases a customer made (the series otherwise loses its
digits for heavy buyers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from midstage.logic.predictions.summary import FloatArray, Summary

# Parameters live in (e^-LOG_BOUND, e^LOG_BOUND): wide enough for any data seen in practice, and
# it keeps the optimiser from wandering into overflow while the likelihood is still flat.
LOG_BOUND = 12.0


class FitError(ValueError):
    """The data cannot identify the model, or the optimiser did not converge."""


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    iterations: int = 0

    def parameters(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    # --------------------------------------------------------------------------- per customer
    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """ln of a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x); -inf where x = 0 (no purchase to drop after)."""
        repeat = x > 0
        out = np.full(np.shape(x), -np.inf)
        xr = x[repeat]
        out[repeat] = (
            np.log(self.a)
            - np.log(self.b + xr - 1.0)
            + (self.r + xr) * (np.log(self.alpha + T[repeat]) - np.log(self.alpha + t_x[repeat]))
        )
        return out

    def p_alive(self, summary: Summary) -> FloatArray:
        x, t_x, T = _columns(summary)
        return np.asarray(expit(-self._log_odds_dead(x, t_x, T)), dtype=np.float64)

    def expected_purchases(self, summary: Summary, t: float) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected transactions in the next `t` units."""
        x, t_x, T = _columns(summary)
        return self._expected(x, t_x, T, t)

    def _expected(self, x: FloatArray, t_x: FloatArray, T: FloatArray, t: float) -> FloatArray:
        if t <= 0:
            return np.zeros(np.shape(x))
        a, b, r, alpha = self.a, self.b, self.r, self.alpha
        c = a + b + x - 1.0
        z = t / (alpha + T + t)
        # (1-z)^(r+x) 2F1(r+x, b+x; c; z), Euler-transformed (module docstring).
        tail = np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
        numerator = (c / (a - 1.0)) * (1.0 - tail)
        return np.asarray(numerator * expit(-self._log_odds_dead(x, t_x, T)), dtype=np.float64)

    def p_purchase(self, summary: Summary, t: float) -> FloatArray:
        """P(at least one transaction in the next `t` units | x, t_x, T)."""
        x, _, T = _columns(summary)
        survive = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + t)))
        return self.p_alive(summary) * (1.0 - survive)

    # --------------------------------------------------------------------------- population
    def expected_purchases_new(self, t: float) -> float:
        """E[X(t)]: transactions in the first `t` units of a customer just acquired (eq. 9)."""
        a, b, r, alpha = self.a, self.b, self.r, self.alpha
        z = t / (alpha + t)
        return float(
            (a + b - 1.0) / (a - 1.0) * (1.0 - np.exp(r * np.log(alpha / (alpha + t))) * hyp2f1(r, b, a + b - 1.0, z))
        )


def _columns(summary: Summary) -> tuple[FloatArray, FloatArray, FloatArray]:
    return summary.frequency, summary.recency, summary.T


# ------------------------------------------------------------------------------ likelihood
@dataclass(frozen=True)
class _Grouped:
    """Customers with the same (x, t_x, T) share a likelihood term: fit on the distinct rows."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    weight: FloatArray
    x_levels: FloatArray  # distinct x, for the gamma-function terms that depend on x alone
    x_index: npt.NDArray[np.intp]


def _group(summary: Summary) -> _Grouped:
    rows = np.column_stack([summary.frequency, summary.recency, summary.T])
    distinct, counts = np.unique(rows, axis=0, return_counts=True)
    x_levels, x_index = np.unique(distinct[:, 0], return_inverse=True)
    return _Grouped(distinct[:, 0], distinct[:, 1], distinct[:, 2], counts.astype(np.float64), x_levels, x_index)


def _negative_ll_and_gradient(log_params: FloatArray, data: _Grouped) -> tuple[float, FloatArray]:
    r, alpha, a, b = np.exp(log_params)
    x, t_x, T, w = data.x, data.t_x, data.T, data.weight
    xl, xi = data.x_levels, data.x_index
    # Terms in x alone, on the few distinct x values.
    a1_x = gammaln(r + xl) - gammaln(r)
    a2_x = gammaln(a + b) + gammaln(b + xl) - gammaln(b) - gammaln(a + b + xl)
    d_r_x = digamma(r + xl) - digamma(r)
    d_a_x = digamma(a + b) - digamma(a + b + xl)
    d_b_x = digamma(a + b) + digamma(b + xl) - digamma(b) - digamma(a + b + xl)

    log_at = np.log(alpha + T)
    log_atx = np.log(alpha + t_x)
    a3 = -(r + x) * log_at
    repeat = x > 0
    a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1.0, 1.0)) - (r + x) * log_atx, -np.inf)
    tail = np.logaddexp(a3, a4)
    ll = a1_x[xi] + r * np.log(alpha) + a2_x[xi] + tail
    share4 = np.where(repeat, expit(a4 - a3), 0.0)  # weight of the drop-out branch in the sum
    share3 = 1.0 - share4

    g_r = d_r_x[xi] + np.log(alpha) - share3 * log_at - share4 * log_atx
    g_alpha = r / alpha - (r + x) * (share3 / (alpha + T) + share4 / (alpha + t_x))
    g_a = d_a_x[xi] + share4 / a
    g_b = d_b_x[xi] - share4 / np.where(repeat, b + x - 1.0, 1.0)

    total = float(w.sum())
    value = -float(np.dot(w, ll)) / total
    # Chain rule to the log-parameters: d/d(ln p) = p d/dp.
    gradient = -np.array(
        [
            r * np.dot(w, g_r),
            alpha * np.dot(w, g_alpha),
            a * np.dot(w, g_a),
            b * np.dot(w, g_b),
        ]
    )
    return value, gradient / total


def log_likelihood(model: BgNbd, summary: Summary) -> float:
    data = _group(summary)
    value, _ = _negative_ll_and_gradient(np.log([model.r, model.alpha, model.a, model.b]), data)
    return -value * float(data.weight.sum())


def fit(summary: Summary, *, initial: tuple[float, float, float, float] | None = None) -> BgNbd:
    """Maximum-likelihood BG/NBD over `summary`. Raises FitError when there is nothing to fit
    (no repeat purchase at all leaves the drop-out process unidentified) or no convergence."""
    if len(summary) == 0:
        raise FitError("no customers to fit")
    if not np.any(summary.frequency > 0):
        raise FitError("no customer has a repeat purchase: the model cannot be identified")
    if np.any(summary.recency > summary.T) or np.any(summary.frequency < 0) or np.any(summary.T <= 0):
        raise FitError("every customer needs 0 <= t_x <= T, T > 0 and x >= 0")
    data = _group(summary)
    # A start scaled to the data: alpha near the mean observation length keeps r near 1.
    start = initial or (1.0, float(np.mean(summary.T)), 1.0, 1.0)
    result = minimize(
        _negative_ll_and_gradient,
        np.log(np.asarray(start, dtype=np.float64)),
        args=(data,),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
        options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-9},
    )
    if not result.success or not np.all(np.isfinite(result.x)):
        raise FitError(f"BG/NBD did not converge: {result.message}")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbd(r, alpha, a, b, log_likelihood=-float(result.fun) * float(data.weight.sum()), iterations=result.nit)
