"""BG/NBD and Gamma-Gamma against Fader, Hardie and Lee's CDNOW results, and on data simulated
from known parameters."""

from __future__ import annotations

import itertools
import json
from datetime import date

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.special import hyp2f1

from midstage.logic.predictions import bgnbd, gamma_gamma, holdout
from midstage.logic.predictions.bgnbd import BgNbd, FitError
from midstage.logic.predictions.cards import ModelCard
from midstage.logic.predictions.refit import (
    CustomerValueSettings,
    fit_customer_value,
    refit_customer_value,
    rescore_customer_value,
)
from midstage.logic.predictions.summary import Summary, Transactions, day_number, from_statistics, summarise
from midstage.logic.predictions.traits import percentiles, predicted_traits
from tests.unit.predictions.conftest import CALIBRATION_END, DATA_END, cdnow_rows

# Fader, Hardie and Lee (2005), table 1; and the "RFM and CLV" paper's Gamma-Gamma estimates.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
# The same fit to four decimals (docs/predictions.md), and its log-likelihood.
ANCHOR_BGNBD = {"r": 0.2426, "alpha": 4.4135, "a": 0.7929, "b": 2.4258}
ANCHOR_LL = -9582.4256


def within_one_percent(actual: dict[str, float], expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=0.01), name


def the_customer(summary: Summary, customer_id: str) -> Summary:
    return summary.take(np.array([i == customer_id for i in summary.ids]))


# ------------------------------------------------------------------------------ CDNOW
def test_bgnbd_on_the_published_cdnow_summary_finds_the_papers_parameters(cdnow_published_summary: Summary) -> None:
    # Given the calibration-period summary the authors published (2,357 customers, weeks)
    # When BG/NBD is fitted by maximum likelihood
    model = bgnbd.fit(cdnow_published_summary)
    # Then the parameters are the paper's, within 1 %, and the four-decimal anchors to 1e-3
    within_one_percent(model.parameters(), PUBLISHED_BGNBD)
    for name, value in ANCHOR_BGNBD.items():
        assert model.parameters()[name] == pytest.approx(value, abs=1e-3), name
    assert model.log_likelihood == pytest.approx(ANCHOR_LL, abs=0.01)
    assert bgnbd.log_likelihood(model, cdnow_published_summary) == pytest.approx(model.log_likelihood, abs=1e-9)


def test_bgnbd_on_the_cdnow_orders_themselves_finds_the_same_parameters(cdnow_orders: Transactions) -> None:
    # Given the raw CDNOW orders, summarised with the calibration period ending 1997-09-30, in weeks
    summary = summarise(cdnow_orders, day_number(CALIBRATION_END), unit_days=7.0)
    # When BG/NBD is fitted
    model = bgnbd.fit(summary)
    # Then 2,357 customers are fitted and the parameters match the paper (the summary is unrounded)
    assert len(summary) == 2357
    within_one_percent(model.parameters(), PUBLISHED_BGNBD)
    for name, value in ANCHOR_BGNBD.items():
        assert model.parameters()[name] == pytest.approx(value, abs=1e-3), name


def test_the_summary_of_the_cdnow_orders_is_the_published_one(
    cdnow_orders: Transactions, cdnow_published_summary: Summary
) -> None:
    # Given the raw orders, several of them on the same day for some customers
    summary = summarise(cdnow_orders, day_number(CALIBRATION_END), unit_days=7.0)
    ours = {int(i): k for k, i in enumerate(summary.ids)}
    theirs = {int(i): k for k, i in enumerate(cdnow_published_summary.ids)}
    assert set(ours) == set(theirs)
    order = [ours[c] for c in sorted(ours)]
    published = [theirs[c] for c in sorted(theirs)]
    # Then x is the published count of repeat days, t_x and T agree to the published rounding,
    # and the mean repeat value is zbar
    np.testing.assert_array_equal(summary.frequency[order], cdnow_published_summary.frequency[published])
    np.testing.assert_allclose(summary.recency[order], cdnow_published_summary.recency[published], atol=0.0051)
    np.testing.assert_allclose(summary.T[order], cdnow_published_summary.T[published], atol=0.0051)
    np.testing.assert_allclose(summary.monetary[order], cdnow_published_summary.monetary[published], atol=0.0051)


def test_customer_one_expects_the_papers_purchases_and_probabilities(cdnow_published_summary: Summary) -> None:
    # Given the CDNOW fit and customer 1 (x = 2, t_x = 30.43, T = 38.86 weeks)
    model = bgnbd.fit(cdnow_published_summary)
    one = the_customer(cdnow_published_summary, "1")
    # Then E[Y(39)] = 1.226 (paper), P(alive) = 0.7266, P(a purchase in 30 days) = 0.1387
    assert model.expected_purchases(one, 39.0)[0] == pytest.approx(1.2259, abs=1e-4)
    assert model.p_alive(one)[0] == pytest.approx(0.7266, abs=1e-4)
    assert model.p_purchase(one, 30 / 7)[0] == pytest.approx(0.1387, abs=1e-4)


def test_gamma_gamma_on_cdnow_finds_the_published_spend_parameters(
    cdnow_published_summary: Summary, cdnow_orders: Transactions
) -> None:
    # Given the 946 CDNOW customers with a repeat purchase, from the published summary and from the orders
    from_orders = summarise(cdnow_orders, day_number(CALIBRATION_END), unit_days=7.0)
    for summary in (cdnow_published_summary, from_orders):
        # When Gamma-Gamma is fitted
        spend = gamma_gamma.fit(summary)
        # Then p, q, v are the published ones within 1 %
        assert spend.customers == 946
        within_one_percent(spend.parameters(), PUBLISHED_GAMMA_GAMMA)


def test_the_holdout_comparison_counts_the_orders_after_the_calibration_period(cdnow_orders: Transactions) -> None:
    # Given the CDNOW orders to 1998-06-30 and the calibration period to 1997-09-30
    summary = summarise(cdnow_orders, day_number(CALIBRATION_END), unit_days=7.0, holdout_end=day_number(DATA_END))
    model = bgnbd.fit(summary)
    comparison = holdout.compare(model, summary)
    # Then the holdout is 39 weeks, every customer is in one bucket, and the actual total is the
    # number of distinct (customer, day) pairs after the calibration end, counted here directly
    holdout_days = {(c, d) for c, d, _ in cdnow_rows() if d > CALIBRATION_END}
    assert comparison.length == pytest.approx(39.0)
    assert sum(b.customers for b in comparison.buckets) == 2357
    assert comparison.actual_total == len(holdout_days)
    assert [b.frequency for b in comparison.buckets] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    # And the model's expectation rises with calibration frequency as the actual purchases do,
    # and tracks them (the paper's figure 4: the largest gap is a few tenths of a purchase)
    predicted = [b.predicted for b in comparison.buckets]
    assert predicted == sorted(predicted)
    for bucket in comparison.buckets:
        assert bucket.predicted == pytest.approx(bucket.actual, abs=0.4), bucket
    assert comparison.predicted_total == pytest.approx(comparison.actual_total, rel=0.15)


# ------------------------------------------------------------------------------ the formulas
def test_the_euler_form_of_the_expectation_agrees_with_the_textbook_form_and_stays_finite(
    cdnow_published_summary: Summary,
) -> None:
    model = bgnbd.fit(cdnow_published_summary)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    x, t_x, T = cdnow_published_summary.frequency, cdnow_published_summary.recency, cdnow_published_summary.T
    t = 39.0
    # Given the textbook formula (eq. 10) evaluated directly, where its hypergeometric series is accurate
    textbook = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
        / (1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    )
    # Then the implementation agrees with it on every CDNOW customer
    np.testing.assert_allclose(model.expected_purchases(cdnow_published_summary, t), textbook, rtol=1e-9, atol=1e-12)
    # And for heavy buyers, where the direct series breaks down, it stays a finite, sane number
    heavy = from_statistics([300.0, 2000.0], [38.8, 38.8], [38.86, 38.86])
    expected = model.expected_purchases(heavy, t)
    assert np.all(np.isfinite(expected))
    rate = heavy.frequency / heavy.recency  # purchases per week while alive
    assert np.all(expected <= rate * t * 1.5)
    assert expected[1] > expected[0]


def test_purchase_probabilities_are_bounded_by_being_alive(cdnow_published_summary: Summary) -> None:
    model = bgnbd.fit(cdnow_published_summary)
    alive = model.p_alive(cdnow_published_summary)
    week = model.p_purchase(cdnow_published_summary, 1.0)
    month = model.p_purchase(cdnow_published_summary, 30 / 7)
    forever = model.p_purchase(cdnow_published_summary, 1e60)  # the gamma tail in rates is slow
    assert np.all((week >= 0) & (week <= month) & (month <= alive))
    np.testing.assert_allclose(forever, alive, rtol=1e-3)
    # A customer who never came back is alive for sure (drop-out follows purchases only)
    assert np.all(alive[cdnow_published_summary.frequency == 0] == 1.0)


def test_the_analytic_gradients_match_finite_differences(cdnow_published_summary: Summary) -> None:
    grouped = bgnbd._group(cdnow_published_summary)
    point = np.log([0.3, 5.0, 0.9, 2.0])
    numeric = approx_fprime(point, lambda p: bgnbd._negative_ll_and_gradient(p, grouped)[0], 1e-7)
    np.testing.assert_allclose(bgnbd._negative_ll_and_gradient(point, grouped)[1], numeric, rtol=1e-4, atol=1e-7)

    repeat = cdnow_published_summary.frequency > 0
    x, m = cdnow_published_summary.frequency[repeat], cdnow_published_summary.monetary[repeat]
    point = np.log([5.0, 3.0, 12.0])
    numeric = approx_fprime(point, lambda p: gamma_gamma._negative_ll_and_gradient(p, x, m)[0], 1e-7)
    np.testing.assert_allclose(gamma_gamma._negative_ll_and_gradient(point, x, m)[1], numeric, rtol=1e-4, atol=1e-7)


def simulate_bgnbd(
    truth: BgNbd, customers: int, seed: int, weeks: float = 52.0
) -> tuple[Summary, np.ndarray, np.ndarray]:
    """Customers acquired at a uniform time in the first half of the period: their (x, t_x, T),
    and the true rate and drop-out probability of each."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(truth.r, 1.0 / truth.alpha, customers)
    drop = rng.beta(truth.a, truth.b, customers)
    T = weeks - rng.uniform(0, weeks / 2, customers)
    x = np.zeros(customers)
    t_x = np.zeros(customers)
    clock = np.zeros(customers)
    active = np.ones(customers, dtype=bool)
    while active.any():
        clock[active] += rng.exponential(1.0 / rate[active])
        active &= clock <= T
        x[active] += 1
        t_x[active] = clock[active]
        active &= rng.random(customers) >= drop  # drops out right after this purchase
    return from_statistics(x, t_x, T), rate, drop


def test_bgnbd_recovers_the_parameters_it_was_simulated_from() -> None:
    # Given 20,000 customers simulated from known parameters
    truth = BgNbd(r=0.5, alpha=3.0, a=0.8, b=2.5)
    summary, _, _ = simulate_bgnbd(truth, 20_000, seed=7)
    # When the model is fitted
    model = bgnbd.fit(summary)
    # Then it finds them (the sampling error at this size is a few percent)
    for name, value in truth.parameters().items():
        assert model.parameters()[name] == pytest.approx(value, rel=0.12), name


def test_p_alive_is_calibrated_against_who_was_simulated_alive() -> None:
    # Given simulated customers, whether each is still alive at T being known
    truth = BgNbd(r=0.5, alpha=3.0, a=0.8, b=2.5)
    rng = np.random.default_rng(11)
    n = 30_000
    rate = rng.gamma(truth.r, 1.0 / truth.alpha, n)
    drop = rng.beta(truth.a, truth.b, n)
    T = np.full(n, 40.0)
    x, t_x, clock = np.zeros(n), np.zeros(n), np.zeros(n)
    buying, alive = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    while buying.any():
        clock[buying] += rng.exponential(1.0 / rate[buying])
        buying &= clock <= T
        x[buying] += 1
        t_x[buying] = clock[buying]
        died = buying & (rng.random(n) < drop)
        alive &= ~died
        buying &= ~died
    summary = from_statistics(x, t_x, T)
    # When P(alive) is computed with the true parameters
    p = truth.p_alive(summary)
    # Then, per decile of P(alive), the share actually alive matches the mean probability
    edges = np.quantile(p, np.linspace(0, 1, 11))
    for low, high in itertools.pairwise(edges):
        members = (p >= low) & (p <= high)
        if members.sum() < 500:
            continue
        assert alive[members].mean() == pytest.approx(p[members].mean(), abs=0.03)


def test_a_population_with_no_repeat_purchase_cannot_be_fitted() -> None:
    with pytest.raises(FitError, match="repeat purchase"):
        bgnbd.fit(from_statistics([0, 0, 0], [0, 0, 0], [10, 20, 30]))
    with pytest.raises(FitError, match="repeat purchase of positive value"):
        gamma_gamma.fit(from_statistics([1, 0], [3, 0], [10, 20], [5.0, 0.0]))


# ------------------------------------------------------------------------------ CLV, scores, cards
def test_clv_discounts_each_months_expected_purchases(cdnow_published_summary: Summary) -> None:
    model = bgnbd.fit(cdnow_published_summary)
    spend = gamma_gamma.fit(cdnow_published_summary)
    value = spend.expected_value(cdnow_published_summary)
    undiscounted = gamma_gamma.clv(model, spend, cdnow_published_summary, annual_discount_rate=0.0)
    # Without discounting, 12 months of value are a year's expected purchases times the expected value
    year = model.expected_purchases(cdnow_published_summary, 365 / 7)
    np.testing.assert_allclose(undiscounted, year * value, rtol=1e-10)
    # Discounting lowers every customer's value, more at a higher rate, never below the discount of month 12
    ten = gamma_gamma.clv(model, spend, cdnow_published_summary, annual_discount_rate=0.10)
    twenty = gamma_gamma.clv(model, spend, cdnow_published_summary, annual_discount_rate=0.20)
    assert np.all(twenty <= ten) and np.all(ten <= undiscounted)
    assert np.all(ten >= undiscounted / 1.10 - 1e-9)
    # A margin scales it
    half = gamma_gamma.clv(model, spend, cdnow_published_summary, annual_discount_rate=0.10, margin=0.5)
    np.testing.assert_allclose(half, ten / 2)


def test_expected_order_value_shrinks_towards_the_population_mean(cdnow_published_summary: Summary) -> None:
    spend = gamma_gamma.fit(cdnow_published_summary)
    summary = from_statistics([0, 1, 50], [0, 5, 38], [38, 38, 38], [0.0, 100.0, 100.0])
    expected = spend.expected_value(summary)
    assert expected[0] == pytest.approx(spend.p * spend.v / (spend.q - 1))  # no repeat: the mean
    assert expected[0] < expected[1] < expected[2] < 100.0  # more evidence, closer to their own mean


def test_fitting_the_cdnow_orders_gives_a_card_that_rescores_the_same(cdnow_orders: Transactions) -> None:
    # Given a fit on the CDNOW orders with the calibration end of the paper
    fit = fit_customer_value(cdnow_orders, calibration_end=CALIBRATION_END, version=3, fitted_at="1997-10-01T00:00:00Z")
    card = fit.card
    # Then the card names its data, parameters and the holdout quality per frequency bucket
    assert card.id == "customer_value.v3"
    assert card.data.calibration_end == "1997-09-30" and card.data.holdout_end == "1998-06-30"
    assert card.data.people == 2357 and card.data.start == "1997-01-01"
    assert card.quality is not None and card.quality.kind == "purchases"
    assert [b.frequency for b in card.quality.buckets][-1] == "7+"
    assert card.quality.spend_customers > 0
    # And survives JSON, and its parameters rescore everyone to the same numbers
    again = ModelCard.from_json(json.loads(json.dumps(card.to_json())))
    assert again == card
    rescored = rescore_customer_value(again, cdnow_orders, as_of=CALIBRATION_END)
    for name, column in fit.scores.columns.items():
        np.testing.assert_allclose(rescored.columns[name], column, rtol=1e-12, err_msg=name)


def test_a_tampered_card_is_refused(cdnow_orders: Transactions) -> None:
    fit = fit_customer_value(cdnow_orders, calibration_end=CALIBRATION_END, fitted_at="1997-10-01T00:00:00Z")
    document = fit.card.to_json()
    document["parameters"]["bgnbd"]["r"] = 0.5
    with pytest.raises(ValueError, match="digest"):
        ModelCard.from_json(document)


def test_the_weekly_refit_back_tests_then_scores_on_everything(cdnow_orders: Transactions) -> None:
    # Given the CDNOW orders, a refit as of the last day with a back-test as long as the paper's holdout
    settings = CustomerValueSettings(holdout_days=(DATA_END - CALIBRATION_END).days)
    refit = refit_customer_value(cdnow_orders, as_of=DATA_END, settings=settings, version=1, fitted_at="x")
    offline = fit_customer_value(cdnow_orders, calibration_end=CALIBRATION_END, fitted_at="x")
    # Then the back-test is the paper's calibration/holdout split, with its parameters
    assert refit.card.quality is not None and offline.card.quality is not None
    assert refit.card.quality.calibration_end == "1997-09-30"
    assert refit.card.quality.buckets == offline.card.quality.buckets
    # And the scoring model saw all 78 weeks
    assert refit.card.data.calibration_end == "1998-06-30"
    assert refit.summary.T.max() == pytest.approx(78.0, abs=0.2)
    assert refit.purchases.parameters() != offline.purchases.parameters()


def test_erased_people_leave_the_training_data(cdnow_orders: Transactions) -> None:
    erased = {"0001", "0002", "9999"}  # the last is not a customer
    refit = refit_customer_value(cdnow_orders, as_of=DATA_END, version=1, fitted_at="x", erased=erased)
    assert len(refit.summary) == 2355
    assert "0001" not in refit.summary.ids and "0001" not in refit.scores.ids
    assert refit.card.data.excluded_people == 2


def test_scores_become_predicted_traits_with_percentiles(cdnow_orders: Transactions) -> None:
    fit = fit_customer_value(cdnow_orders, calibration_end=CALIBRATION_END, fitted_at="x")
    traits = predicted_traits(fit.scores)
    one = traits["0001"]
    assert set(one) == {
        "expected_purchases_30d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "p_alive",
        "churn_risk",
        "p_purchase_30d",
        "expected_order_value",
        "clv_12m",
    }
    assert one["p_purchase_30d"]["value"] == pytest.approx(0.1387, abs=1e-4)
    assert one["churn_risk"]["value"] == pytest.approx(1 - 0.7266, abs=1e-4)
    assert one["clv_12m"]["model"] == fit.card.id
    assert all(0 <= s["percentile"] <= 100 for s in one.values())


def test_percentiles_rank_with_ties_counted_half() -> None:
    np.testing.assert_array_equal(percentiles(np.array([1.0, 2.0, 3.0, 4.0])), [12, 38, 62, 88])
    np.testing.assert_array_equal(percentiles(np.array([0.0, 0.0, 0.0, 5.0])), [38, 38, 38, 88])
    assert len(percentiles(np.array([]))) == 0


def test_orders_on_one_day_are_one_transaction() -> None:
    orders = Transactions.from_columns(
        ["a", "a", "a", "a", "b"],
        [day_number(date(2026, 1, d)) for d in (1, 1, 5, 5)] + [day_number(date(2026, 1, 3))],
        [10.0, 5.0, 20.0, 30.0, 7.0],
    )
    summary = summarise(orders, day_number(date(2026, 1, 8)), unit_days=1.0)
    a = summary.ids.index("a")
    assert summary.frequency[a] == 1  # two days: one first purchase, one repeat
    assert summary.first_value[a] == 15.0 and summary.monetary[a] == 50.0
    assert summary.recency[a] == 4.0 and summary.T[a] == 7.0
    assert summary.transactions == 3
