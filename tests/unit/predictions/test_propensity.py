"""Propensity: features as of a cut-off, the logistic fit and its calibration against scikit-learn,
and the whole fit on a generated population whose conversions follow a known rule
(tests/unit/predictions/population.py), so that its AUC and calibration can be set beside the truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from midstage.logic.predictions import metrics, propensity
from midstage.logic.predictions.bgnbd import FitError
from midstage.logic.predictions.cards import ModelCard
from midstage.logic.predictions.propensity import (
    ActivityLog,
    FeatureSpec,
    PropensityFit,
    PropensitySettings,
    days_since_epoch,
    features,
    fit_propensity,
    outcome,
)
from tests.unit.predictions.population import AS_OF, GOAL, WINDOW, Population, generate

FITTED_AT = "2026-08-29T03:00:00+00:00"
# The stated bounds on the generated population (20,000 people, seed 1; docs/predictions.md). The
# truth's own AUC there is about 0.76: a model that learnt the rule comes within 0.01 of it.
AUC_FLOOR = 0.74
AUC_BELOW_TRUTH = 0.01
# Per decile, |mean predicted - mean true probability|; sampling alone moves a decile of 2,000
# people by about 0.01, and the calibration set (a quarter of the training people) adds its own.
PLATT_DECILE_ERROR = 0.04
ISOTONIC_DECILE_ERROR = 0.06
LIFT_FLOOR = 2.3


def settings(**changes: object) -> PropensitySettings:
    return PropensitySettings.model_validate({"goal_event": GOAL, "window_days": WINDOW, **changes})


def fit(log: ActivityLog, **changes: object) -> PropensityFit:
    erased = changes.pop("erased", frozenset())
    assert isinstance(erased, (set, frozenset))
    return fit_propensity(log, settings(**changes), as_of=AS_OF, version=1, fitted_at=FITTED_AT, erased=erased)


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(20_000, seed=1)


@pytest.fixture(scope="module")
def small() -> Population:
    return generate(5_000, seed=3)


@pytest.fixture(scope="module")
def small_fit(small: Population) -> PropensityFit:
    return fit(small.log)


@pytest.fixture(scope="module")
def platt_fit(population: Population) -> PropensityFit:
    return fit(population.log)


def holdout_view(population: Population, result: PropensityFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outcome, model probability, true probability) of everyone seen at the holdout cut-off."""
    cut = days_since_epoch(AS_OF) - WINDOW
    found = features(population.log, result.model.spec, cut)
    y = outcome(population.log, GOAL, cut, cut + WINDOW)[found.rows]
    return y, result.model.probability(found.matrix), population.truth["holdout"][found.rows]


def decile_error_against_truth(probability: np.ndarray, truth: np.ndarray) -> float:
    order = np.argsort(-probability, kind="mergesort")
    return max(abs(probability[g].mean() - truth[g].mean()) for g in np.array_split(order, 10))


# ------------------------------------------------------------------------------ the logistic fit
def regression_case(seed: int, n: int = 3_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 3] = x[:, 2] * 0.8 + rng.normal(scale=0.3, size=n)  # two correlated columns
    z = -1.0 + x @ np.array([1.5, -0.7, 0.4, 0.3])
    return x, rng.random(n) < 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("l2", [0.0, 1.0, 50.0])
def test_logistic_fit_matches_scikit_learn_with_the_same_penalty(l2: float) -> None:
    # Given a logistic data set with correlated columns
    x, y = regression_case(7)
    # When fitted with an L2 penalty l2/2 |w|^2 on the coefficients (not the intercept)
    coef, intercept = propensity.fit_logistic(x, y, l2=l2)
    # Then the optimum is scikit-learn's, whose C is 1 / l2 (no penalty at all for l2 = 0)
    reference = (
        LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000)
        if l2 == 0
        else LogisticRegression(C=1 / l2, tol=1e-12, max_iter=10_000)
    ).fit(x, y)
    np.testing.assert_allclose(coef, reference.coef_[0], atol=1e-5)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-5)
    # And a stronger penalty shrinks the coefficients
    if l2 == 50.0:
        free, _ = propensity.fit_logistic(x, y, l2=0.0)
        assert np.linalg.norm(coef) < np.linalg.norm(free)


def test_logistic_fit_survives_separable_columns_without_overflow() -> None:
    # Given a column that separates the outcome perfectly, with large values
    x = np.concatenate([np.linspace(-500, -1, 50), np.linspace(1, 500, 50)])[:, None]
    y = x[:, 0] > 0
    # When fitted with a penalty (which keeps the optimum finite)
    coef, intercept = propensity.fit_logistic(x, y, l2=1.0)
    # Then the result is finite and orders the two classes apart
    assert np.isfinite(coef).all() and np.isfinite(intercept)
    assert coef[0] > 0


def test_platt_scaling_is_a_one_feature_logistic_regression_on_the_logit() -> None:
    # Given raw logits that are twice as confident as the truth, and shifted
    rng = np.random.default_rng(8)
    true_logit = rng.normal(scale=1.5, size=5_000)
    y = rng.random(5_000) < 1 / (1 + np.exp(-true_logit))
    raw = 2.0 * true_logit + 0.5
    # When Platt scaling is fitted
    calibration = propensity.platt(raw, y)
    # Then slope and offset are scikit-learn's unpenalised fit, close to the truth's 0.5 and -0.25
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(raw[:, None], y)
    assert calibration.slope == pytest.approx(reference.coef_[0][0], abs=1e-4)
    assert calibration.offset == pytest.approx(reference.intercept_[0], abs=1e-4)
    assert calibration.slope == pytest.approx(0.5, abs=0.05)
    assert calibration.offset == pytest.approx(-0.25, abs=0.1)


def test_isotonic_calibration_predicts_what_scikit_learn_predicts_with_ties_and_out_of_range() -> None:
    # Given raw logits with many ties, and outcomes not monotone in them locally
    rng = np.random.default_rng(9)
    logit = np.round(rng.normal(size=4_000), 1)
    y = rng.random(4_000) < 1 / (1 + np.exp(-(logit * 0.7 - 0.3)))
    # When an isotonic calibration is fitted and applied to new logits, some beyond the data
    calibration = propensity.isotonic(logit, y)
    new = np.concatenate([np.linspace(-6, 6, 301), logit[:50]])
    # Then it gives scikit-learn's isotonic regression of the outcome on the raw probability
    raw = propensity._sigmoid(logit)
    reference = IsotonicRegression(out_of_bounds="clip").fit(raw, y.astype(float))
    np.testing.assert_allclose(calibration.apply(new), reference.predict(propensity._sigmoid(new)), atol=1e-12)
    # And it is non-decreasing and stored in fewer points than there are distinct raw values
    assert np.all(np.diff(calibration.apply(np.linspace(-6, 6, 1001))) >= 0)
    assert len(calibration.x) < len(np.unique(raw))


# ------------------------------------------------------------------------------ features
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(days: float) -> datetime:
    return DAY0 + timedelta(days=days)


def test_features_are_computed_from_events_up_to_the_cutoff_only() -> None:
    # Given two people: "a" with views, an email click and two orders; "b" seen once, long ago;
    # and events after the cut-off (day 100) that must not count
    log = ActivityLog.from_rows(
        [
            ("a", at(10), "Product Viewed", 0.0),
            ("a", at(40), "Order Completed", 30.0),
            ("a", at(95), "Product Viewed", 0.0),
            ("a", at(98), "Email Link Clicked", 0.0),
            ("a", at(99), "Order Completed", 50.0),
            ("b", at(0), "Product Viewed", 0.0),
            ("a", at(101), "Order Completed", 1000.0),
            ("c", at(102), "Product Viewed", 0.0),
        ]
    )
    spec = FeatureSpec(windows_days=(7, 30), event_kinds=("Product Viewed",))
    # When the features are computed as of day 100
    found = features(log, spec, days_since_epoch(at(100)))
    # Then only a and b are seen, and each column is what the events up to day 100 say
    assert [log.people[i] for i in found.rows] == ["a", "b"]
    row = dict(zip(spec.names(), found.matrix[0], strict=True))
    other = dict(zip(spec.names(), found.matrix[1], strict=True))
    assert row["log_days_since_last_event"] == pytest.approx(np.log1p(1))
    assert row["log_days_since_first_event"] == pytest.approx(np.log1p(90))
    assert row["log_days_since_last_order"] == pytest.approx(np.log1p(1))
    assert row["has_ordered"] == 1.0
    assert row["log_orders"] == pytest.approx(np.log1p(2))
    assert row["log_mean_order_value"] == pytest.approx(np.log1p(40.0))
    assert row["log_count[Product Viewed][7d]"] == pytest.approx(np.log1p(1))
    assert row["log_count[Product Viewed][30d]"] == pytest.approx(np.log1p(1))
    assert row["log_channel[email][7d]"] == pytest.approx(np.log1p(1))
    assert row["log_channel[push][30d]"] == 0.0
    assert row["lifecycle=active"] == 1.0
    assert other["log_days_since_last_order"] == pytest.approx(np.log1p(spec.never_days))
    assert other["has_ordered"] == 0.0
    assert other["lifecycle=churned"] == 1.0
    assert sum(v for k, v in other.items() if k.startswith("lifecycle=")) == 1.0
    np.testing.assert_allclose(found.days_since_last_event, [1.0, 100.0])


def test_outcome_counts_the_goal_in_the_half_open_window_after_the_cutoff() -> None:
    # Given goal events exactly at the cut-off, inside the window, exactly at its end, and after it
    log = ActivityLog.from_rows(
        [("at", 10.0, "Goal", 0.0), ("in", 15.0, "Goal", 0.0), ("end", 40.0, "Goal", 0.0), ("late", 40.5, "Goal", 0.0)]
    )
    # When the outcome of the window (10, 40] is read
    done = outcome(log, "Goal", 10.0, 40.0)
    # Then the event at the cut-off belongs to the past and the one after the end to the future
    assert dict(zip(log.people, done.tolist(), strict=True)) == {"at": False, "in": True, "end": True, "late": False}


# ------------------------------------------------------------------------------ the known rule
def test_propensity_ranks_almost_as_well_as_the_true_rule(population: Population, platt_fit: PropensityFit) -> None:
    # Given a population whose conversions follow a known logistic rule of its past behaviour
    # When the propensity model is fitted with a time split (as of the end of the data)
    y, p, truth = holdout_view(population, platt_fit)
    truth_auc = metrics.auc(y, truth)
    # Then on the holdout window its AUC is above the stated bound and within 0.01 of the truth's
    assert platt_fit.quality.auc == pytest.approx(metrics.auc(y, p), abs=1e-12)
    assert platt_fit.quality.auc > AUC_FLOOR
    assert platt_fit.quality.auc > truth_auc - AUC_BELOW_TRUTH
    assert platt_fit.quality.gini == pytest.approx(2 * platt_fit.quality.auc - 1)
    # And its scores follow the true probabilities closely, person by person
    assert np.corrcoef(p, truth)[0, 1] > 0.98
    # And the top decile converts well above the base rate
    assert platt_fit.quality.lift_top_decile > LIFT_FLOOR
    assert platt_fit.quality.people == len(y) and platt_fit.quality.positives == int(y.sum())


def test_platt_calibrated_probabilities_are_right_per_decile(population: Population, platt_fit: PropensityFit) -> None:
    # Given the fit with Platt scaling on the known rule
    y, p, truth = holdout_view(population, platt_fit)
    # When the holdout people are cut into deciles of predicted probability
    # Then in each decile the mean predicted probability is within the stated error of the mean
    # true probability, and of the observed rate, which adds sampling noise
    assert decile_error_against_truth(p, truth) < PLATT_DECILE_ERROR
    assert platt_fit.quality.max_decile_error < PLATT_DECILE_ERROR + 0.01
    assert len(platt_fit.quality.deciles) == 10
    assert sum(d.people for d in platt_fit.quality.deciles) == len(y)
    # And overall the mean probability is the base rate
    assert p.mean() == pytest.approx(y.mean(), abs=0.01)


def test_isotonic_calibrated_probabilities_are_right_per_decile(population: Population) -> None:
    # Given the same population, calibrated by isotonic regression instead
    result = fit(population.log, calibration="isotonic")
    _, p, truth = holdout_view(population, result)
    # Then the ranking is no worse and each decile is within the (looser) stated error
    assert result.quality.auc > AUC_FLOOR
    assert decile_error_against_truth(p, truth) < ISOTONIC_DECILE_ERROR
    assert result.quality.max_decile_error < ISOTONIC_DECILE_ERROR + 0.01


def test_the_rules_features_are_the_strongest(platt_fit: PropensityFit) -> None:
    # Given the fit on the known rule (views in 7 days, clicks in 30 days, orders, recency)
    names = [name for name, _ in platt_fit.quality.top_features]
    weights = dict(platt_fit.quality.top_features)
    # Then the strongest feature is the rule's strongest, and recency lowers the score
    assert names[0] == "log_count[Product Viewed][7d]"
    assert weights["log_days_since_last_event"] < 0
    assert {"log_count[Email Link Clicked][30d]", "log_orders"} <= set(names[:6])


def test_shuffled_outcomes_teach_nothing(small: Population) -> None:
    # Given the goal events moved to random people (same count, same times)
    log = small.log
    goal = log.code(GOAL)
    rng = np.random.default_rng(12)
    person = log.person.copy()
    is_goal = log.kind == goal
    person[is_goal] = rng.integers(0, len(log.people), int(is_goal.sum()))
    shuffled = ActivityLog(log.people, person, log.kinds, log.kind, log.at, log.amount)
    # When a model is fitted on them
    result = fit(shuffled)
    # Then its holdout AUC is that of chance, and its top decile no better than the rest
    assert result.quality.auc == pytest.approx(0.5, abs=0.04)
    assert result.quality.lift_top_decile < 1.3


# ------------------------------------------------------------------------------ the time split
def test_nothing_after_the_holdout_cutoff_changes_the_model(small: Population, small_fit: PropensityFit) -> None:
    # Given the log, and the same log with every event after the holdout cut-off given to a
    # random person (the holdout conversions among them)
    log = small.log
    cut = days_since_epoch(AS_OF) - WINDOW
    later = log.at > cut
    person = log.person.copy()
    person[later] = np.random.default_rng(13).integers(0, len(log.people), int(later.sum()))
    scrambled = ActivityLog(log.people, person, log.kinds, log.kind, log.at, log.amount)
    # When both are fitted as of the same day
    full, other = small_fit, fit(scrambled)
    # Then the model (features, coefficients, calibration) is the same: the holdout window was
    # never seen by the fit or the calibration
    assert full.model.parameters() == other.model.parameters()
    # And only the judgement differs: on scrambled holdout outcomes the model looks like chance
    assert full.quality.auc > 0.7
    assert other.quality.auc == pytest.approx(0.5, abs=0.05)


def test_the_order_people_are_met_in_does_not_change_the_model(small: Population, small_fit: PropensityFit) -> None:
    # Given the same events with the people listed in reverse order (as another source would)
    log = small.log
    last = len(log.people) - 1
    reordered = ActivityLog(log.people[::-1], last - log.person, log.kinds, log.kind, log.at, log.amount)
    # When fitted with the same seed
    result = fit(reordered)
    # Then the training/calibration split, and so the model, are the same
    np.testing.assert_allclose(result.model.coef, small_fit.model.coef, atol=1e-8)
    assert result.model.calibration.slope == pytest.approx(small_fit.model.calibration.slope, abs=1e-8)
    assert result.quality.auc == pytest.approx(small_fit.quality.auc, abs=1e-12)


def test_rescoring_from_the_stored_card_gives_the_fits_scores(small: Population) -> None:
    # Given a fit whose card is stored as JSON and read back
    result = fit(small.log, calibration="isotonic")
    card = ModelCard.from_json(json.loads(json.dumps(result.card.to_json())))
    # When everyone is scored from the card alone
    scores = propensity.score(card, small.log, as_of=AS_OF)
    # Then the scores are the fit's own, under the card's id
    trait = settings().trait
    assert scores.ids == result.scores.ids
    np.testing.assert_allclose(scores.columns[trait], result.scores.columns[trait], atol=1e-12)
    assert scores.model == card.id == "propensity.v1"
    assert card.kind == "propensity" and card.quality is not None and card.quality.kind == "propensity"
    # And its data window names the last day before each cut-off (both cuts are at midnight)
    assert card.data.calibration_end == (AS_OF - timedelta(days=WINDOW + 1)).date().isoformat()
    assert card.data.holdout_end == (AS_OF - timedelta(days=1)).date().isoformat()


def test_the_card_digest_catches_an_edited_coefficient(small_fit: PropensityFit) -> None:
    # Given a stored card whose first coefficient was changed by hand
    document = small_fit.card.to_json()
    document["parameters"]["coefficients"][0] += 1.0
    # When it is read back
    # Then it is refused
    with pytest.raises(ValueError, match="digest does not match"):
        ModelCard.from_json(document)


# ------------------------------------------------------------------------------ settings and privacy
def test_churn_is_the_complement_of_doing_the_goal(small: Population, small_fit: PropensityFit) -> None:
    # Given the same goal fitted as "does" and as "does not" within 30 days
    does = small_fit
    does_not = fit(small.log, outcome="does_not")
    # Then the churn probabilities are one minus the others (the fit is symmetric in the label)
    slug = "subscription_started_30d"
    assert does.scores.columns.keys() == {f"propensity_{slug}"}
    assert does_not.scores.columns.keys() == {f"churn_{slug}"}
    np.testing.assert_allclose(
        does_not.scores.columns[f"churn_{slug}"], 1 - does.scores.columns[f"propensity_{slug}"], atol=1e-4
    )
    assert does_not.quality.auc == pytest.approx(does.quality.auc, abs=1e-4)


def test_erased_people_are_neither_trained_on_nor_scored(small: Population, small_fit: PropensityFit) -> None:
    # Given 500 people erased before the fit
    erased = set(small.log.people[:500])
    full = small_fit
    result = fit(small.log, erased=erased)
    # Then none of them has a score, the card counts them, and the training set shrank by them
    assert not erased & set(result.scores.ids)
    assert result.card.data.excluded_people == 500
    assert result.card.data.people == full.card.data.people - 500
    assert result.quality.people == full.quality.people - 500
    assert result.model.parameters() != full.model.parameters()


def test_only_recently_active_people_are_eligible_when_asked(small: Population) -> None:
    # Given eligibility limited to people active in the 14 days before each cut-off
    result = fit(small.log, eligible_active_days=14)
    found = features(small.log, result.model.spec, days_since_epoch(AS_OF))
    active = {small.log.people[i] for i in found.rows[found.days_since_last_event <= 14]}
    # Then exactly those are scored
    assert set(result.scores.ids) == active
    assert 0 < len(active) < len(small.log.people)


def test_a_goal_that_is_missing_or_too_rare_is_a_clear_fit_error(small: Population) -> None:
    # Given a goal that never happens, and one that happened to only a handful of people
    log = small.log
    with pytest.raises(FitError, match="no 'Never Happens' event"):
        fit(log, goal_event="Never Happens")
    goal = log.code(GOAL)
    keep = (log.kind != goal) | (log.person < 30)
    rare = ActivityLog(log.people, log.person[keep], log.kinds, log.kind[keep], log.at[keep], log.amount[keep])
    # When the rare one is fitted
    # Then it fails, saying how many outcomes each set had and how many are needed
    with pytest.raises(FitError, match="at least 20 of each are needed"):
        fit(rare)


def test_settings_name_the_trait_and_refuse_bad_values() -> None:
    assert settings().trait == "propensity_subscription_started_30d"
    assert settings(name="will_subscribe").trait == "will_subscribe"
    assert (
        settings(outcome="does_not", goal_event="Order Completed", window_days=60).trait == "churn_order_completed_60d"
    )
    with pytest.raises(ValueError, match="window_days"):
        settings(window_days=3)
    with pytest.raises(ValueError, match="calibration"):
        settings(calibration="magic")
