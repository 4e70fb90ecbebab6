"""Predictions: fit time and scoring rate of the customer-value and propensity models.

Customer value: customers simulated from CDNOW's BG/NBD and Gamma-Gamma parameters
(Fader, Hardie and Lee 2005), summarised as (x, t_x, T, mean repeat value) over 52 weeks, at
10k, 100k and 1M customers. Timed: the BG/NBD fit, the Gamma-Gamma fit, and the scoring of
everyone (`refit.score_customer_value`: expected purchases at 30/90/365 days, P(alive), churn
risk, P(purchase in 30 days), expected order value, 12-month CLV), as profiles/s.

Propensity: the generated population of the tests (tests/unit/predictions/population.py: about
100 events per person over 240 days), at 10k and 100k people: the whole `fit_propensity` (three
feature passes, the logistic fit, calibration, the holdout evaluation, scoring) and the scoring
alone from the fitted model (`propensity.score`), as profiles/s. 1M people is 100M events, more
memory than this shared machine should give one benchmark; it is not run.

CPU time (`time.process_time`), one BLAS thread (the fits are many small matrix-vector
products; more threads only fight over a busy machine's cores), median of 3 repeats with the
spread; the 1M customer-value case once.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from midstage.logic.predictions import bgnbd, gamma_gamma, propensity
from midstage.logic.predictions.refit import CustomerValueSettings, score_customer_value
from midstage.logic.predictions.summary import Summary, from_statistics
from tests.unit.predictions.population import AS_OF, GOAL, WINDOW, generate

CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "v": 15.44}


def simulate(customers: int, seed: int, weeks: float = 52.0) -> Summary:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(CDNOW["r"], 1.0 / CDNOW["alpha"], customers)
    drop = rng.beta(CDNOW["a"], CDNOW["b"], customers)
    T = weeks - rng.uniform(0, weeks / 2, customers)
    x, t_x, clock = np.zeros(customers), np.zeros(customers), np.zeros(customers)
    active = np.ones(customers, dtype=bool)
    while active.any():
        clock[active] += rng.exponential(1.0 / rate[active])
        active &= clock <= T
        x[active] += 1
        t_x[active] = clock[active]
        active &= rng.random(customers) >= drop
    nu = rng.gamma(CDNOW["q"], 1.0 / CDNOW["v"], customers)
    # The mean of x Gamma(p, nu) values is Gamma(p x, x nu).
    spend = np.where(x > 0, rng.gamma(CDNOW["p"] * np.maximum(x, 1), 1.0 / (np.maximum(x, 1) * nu)), 0.0)
    return from_statistics(x, t_x, T, spend)


def timed(work: Callable[[], Any], repeats: int) -> tuple[float, float, float, Any]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.process_time()
        result = work()
        seconds.append(time.process_time() - started)
    return statistics.median(seconds), min(seconds), max(seconds), result


def customer_value(customers: int, repeats: int) -> None:
    summary = simulate(customers, seed=1)
    fit_s, fit_lo, fit_hi, purchases = timed(lambda: bgnbd.fit(summary), repeats)
    gg_s, gg_lo, gg_hi, spend = timed(lambda: gamma_gamma.fit(summary), repeats)
    settings = CustomerValueSettings()
    score_s, score_lo, score_hi, _ = timed(
        lambda: score_customer_value(purchases, spend, summary, settings, "bench"), repeats
    )
    print(
        f"   customer value {customers:>9,}: BG/NBD fit {fit_s:7.2f} s ({fit_lo:.2f}-{fit_hi:.2f})"
        f"  Gamma-Gamma fit {gg_s:6.2f} s ({gg_lo:.2f}-{gg_hi:.2f})"
        f"  scoring {customers / score_s:>10,.0f} profiles/s ({score_s:.2f} s, {score_lo:.2f}-{score_hi:.2f})"
        f"  r={purchases.r:.3f} a={purchases.a:.3f} p={spend.p:.2f}"
    )


def propensity_case(people: int, repeats: int) -> None:
    population = generate(people, seed=1)
    settings = propensity.PropensitySettings(goal_event=GOAL, window_days=WINDOW)

    def fit() -> propensity.PropensityFit:
        return propensity.fit_propensity(population.log, settings, as_of=AS_OF, version=1, fitted_at="bench")

    fit_s, fit_lo, fit_hi, result = timed(fit, repeats)
    score_s, score_lo, score_hi, _ = timed(lambda: propensity.score(result.card, population.log, as_of=AS_OF), repeats)
    spread = f"{score_lo:.2f}-{score_hi:.2f}"
    print(
        f"   propensity     {people:>9,}: {len(population.log.at):>11,} events  whole fit {fit_s:7.2f} s"
        f" ({fit_lo:.2f}-{fit_hi:.2f})  scoring {people / score_s:>10,.0f} profiles/s ({score_s:.2f} s, {spread})"
        f"  holdout AUC {result.quality.auc:.3f}"
    )


def main() -> None:
    print(f"   {datetime.now(UTC).date()}  CPU seconds, one BLAS thread")
    with threadpool_limits(limits=1, user_api="blas"):
        for customers, repeats in ((10_000, 3), (100_000, 3), (1_000_000, 1)):
            customer_value(customers, repeats)
        for people, repeats in ((10_000, 3), (100_000, 1)):
            propensity_case(people, repeats)


if __name__ == "__main__":
    main()
