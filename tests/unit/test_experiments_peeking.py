"""An A/A simulation with daily peeking: both arms have the same true rate, and the result is
looked at every day for four weeks, stopping at the first "significant" look. The sequential
engine's always-valid p-value keeps the false-positive rate within alpha; the fixed-horizon
t-test, read the same way, does not. Shown with a seeded generator (the draws are arguments of
the test, so the figures are the same on every run); no timing is involved.
"""

from __future__ import annotations

import numpy as np

from midstage.logic.experiments.engines import sequential, t_test
from midstage.logic.experiments.statistics import Proportion

ALPHA = 0.05
EXPERIMENTS = 800
DAYS = 28
PER_DAY = 150  # people per arm per day
RATE = 0.1


def false_positive_rates(seed: int) -> tuple[float, float]:
    """Share of A/A experiments declared significant at some daily look, (sequential, t-test)."""
    draws = np.random.default_rng(seed).binomial(PER_DAY, RATE, size=(EXPERIMENTS, 2, DAYS)).cumsum(axis=2)
    sequential_hits = t_test_hits = 0
    for experiment in draws:
        seq_found = t_found = False
        for day in range(DAYS):
            n = PER_DAY * (day + 1)
            control, treatment = Proportion(n, float(experiment[0, day])), Proportion(n, float(experiment[1, day]))
            seq_found = seq_found or sequential(control, treatment, alpha=ALPHA).p_value < ALPHA
            t_found = t_found or t_test(control, treatment, alpha=ALPHA).p_value < ALPHA
            if seq_found and t_found:
                break
        sequential_hits += seq_found
        t_test_hits += t_found
    return sequential_hits / EXPERIMENTS, t_test_hits / EXPERIMENTS


def test_daily_peeking_keeps_the_sequential_engine_within_alpha_but_not_the_t_test() -> None:
    # Given 800 A/A experiments looked at daily for 28 days, then the sequential engine's
    # false-positive rate stays at most alpha + 1 %, and the fixed-horizon t-test's exceeds it.
    sequential_rate, t_test_rate = false_positive_rates(seed=14)
    print(f"false positives with daily peeking: sequential {sequential_rate:.3f}, t-test {t_test_rate:.3f}")
    assert sequential_rate <= ALPHA + 0.01
    assert t_test_rate > ALPHA + 0.01
