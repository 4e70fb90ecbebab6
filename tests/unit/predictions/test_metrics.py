"""AUC, log loss, Brier, deciles and lift, against scikit-learn where it computes the same thing and
against hand-counted examples where it does not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from midstage.logic.predictions import metrics


def random_case(seed: int, n: int = 2_000, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    if ties:
        score = np.round(score * 8) / 8  # nine distinct values: many ties across the classes
    outcome = rng.random(n) < score * 0.7 + 0.1
    return outcome, score


@pytest.mark.parametrize(("seed", "ties"), [(1, False), (2, True), (3, True)])
def test_auc_matches_scikit_learn_with_and_without_ties(seed: int, ties: bool) -> None:
    # Given outcomes that depend on a score, the score with or without many tied values
    outcome, score = random_case(seed, ties=ties)
    # When the AUC is computed
    # Then it is scikit-learn's (ties between a positive and a negative count half)
    assert metrics.auc(outcome, score) == pytest.approx(roc_auc_score(outcome, score), abs=1e-12)


def test_auc_counted_by_hand_on_a_small_case() -> None:
    # Given two positives (scores 0.9, 0.5) and two negatives (0.5, 0.1)
    outcome = np.array([True, True, False, False])
    score = np.array([0.9, 0.5, 0.5, 0.1])
    # When the AUC is computed
    # Then of the 4 positive-negative pairs, 3 are ordered right and 1 is tied: (3 + 0.5) / 4
    assert metrics.auc(outcome, score) == pytest.approx(0.875)
    # And a perfect, a reversed and a one-class ranking give 1, 0 and nan
    assert metrics.auc(outcome, np.array([4.0, 3.0, 2.0, 1.0])) == 1.0
    assert metrics.auc(outcome, np.array([1.0, 2.0, 3.0, 4.0])) == 0.0
    assert np.isnan(metrics.auc(np.array([True, True]), np.array([0.1, 0.2])))


def test_log_loss_and_brier_match_scikit_learn() -> None:
    # Given probabilities, including exact 0s and 1s
    outcome, score = random_case(4)
    probability = score.copy()
    probability[:5] = 0.0
    probability[5:10] = 1.0
    # When log loss and the Brier score are computed
    # Then they are scikit-learn's (which clips the same way, to machine epsilon rather than 1e-15)
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    assert metrics.log_loss(outcome, probability) == pytest.approx(log_loss(outcome, clipped), rel=1e-12)
    assert metrics.brier(outcome, probability) == pytest.approx(brier_score_loss(outcome, probability), rel=1e-12)
    assert np.isfinite(metrics.log_loss(outcome, probability))


def test_deciles_sort_highest_first_and_split_evenly() -> None:
    # Given 25 people with probabilities 0.00 .. 0.96 and the outcome true for the top 5
    probability = np.arange(25) / 25.0
    outcome = probability >= 0.8
    # When they are cut into 10 groups
    rows = metrics.deciles(outcome, probability)
    # Then the groups are 3,3,3,3,3,2,2,2,2,2 people (numpy's array_split), highest scores first
    assert [r.people for r in rows] == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    assert [r.decile for r in rows] == list(range(1, 11))
    assert rows[0].mean_predicted == pytest.approx((0.96 + 0.92 + 0.88) / 3)
    assert rows[0].observed_rate == 1.0
    assert rows[1].observed_rate == pytest.approx(2 / 3)  # 0.84, 0.80 true; 0.76 false
    assert all(r.observed_rate == 0.0 for r in rows[2:])
    # And fewer people than groups leave no empty group
    assert len(metrics.deciles(np.array([True, False]), np.array([0.7, 0.2]))) == 2


def test_lift_at_the_top_decile_is_the_top_rate_over_the_base_rate() -> None:
    # Given 100 people, 10 % converting overall, 6 of them among the 10 highest scores
    probability = np.linspace(1.0, 0.0, 100)
    outcome = np.zeros(100, dtype=bool)
    outcome[[0, 1, 2, 3, 4, 5, 40, 60, 80, 99]] = True
    # When the lift at the top decile is computed
    # Then it is 0.6 / 0.1
    assert metrics.lift_top_decile(outcome, probability) == pytest.approx(6.0)
    # And a random order has a lift near 1 on a large sample, and no positives give nan
    rng = np.random.default_rng(5)
    many = rng.random(200_000) < 0.2
    assert metrics.lift_top_decile(many, rng.random(200_000)) == pytest.approx(1.0, abs=0.05)
    assert np.isnan(metrics.lift_top_decile(np.zeros(10, dtype=bool), probability[:10]))
