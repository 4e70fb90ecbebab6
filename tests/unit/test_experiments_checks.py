"""The SRM check's alert rule and the multiple-testing corrections (equal to statsmodels'
`multipletests`), over the families a user can choose."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from midstage.logic.experiments.corrections import Comparison, adjust, correct
from midstage.logic.experiments.srm import check_srm, srm_p_value

p_values = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30)


@settings(max_examples=60)
@given(p=p_values)
def test_holm_equals_statsmodels(p: list[float]) -> None:
    assert adjust(p, "holm") == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-12)


@settings(max_examples=60)
@given(p=p_values)
def test_benjamini_hochberg_equals_statsmodels(p: list[float]) -> None:
    assert adjust(p, "benjamini-hochberg") == pytest.approx(list(multipletests(p, method="fdr_bh")[1]), abs=1e-12)


def test_no_correction_leaves_p_values_as_they_are() -> None:
    assert adjust([0.01, 0.5], "none") == [0.01, 0.5]


@settings(max_examples=25)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6), method=st.sampled_from(["holm", "benjamini-hochberg"]))
def test_each_family_is_corrected_on_its_own(p: list[float], method: str) -> None:
    # Given 2 metrics x 3 variants, when corrected within a metric, within a variant and over all,
    # then each family's adjusted p-values are statsmodels' over that family's members only.
    sm_method = "holm" if method == "holm" else "fdr_bh"
    comparisons = [
        Comparison(metric, variant, p[i * 3 + j]) for i, metric in enumerate("mn") for j, variant in enumerate("abc")
    ]
    every = correct(comparisons, method, "all")  # type: ignore[arg-type]
    assert every == pytest.approx(list(multipletests(p, method=sm_method)[1]), abs=1e-12)
    by_metric = correct(comparisons, method, "metric")  # type: ignore[arg-type]
    for i in range(2):
        assert by_metric[i * 3 : i * 3 + 3] == pytest.approx(
            list(multipletests(p[i * 3 : i * 3 + 3], method=sm_method)[1]), abs=1e-12
        )
    by_variant = correct(comparisons, method, "variant")  # type: ignore[arg-type]
    for j in range(3):
        members = [j, j + 3]
        expected = multipletests([p[k] for k in members], method=sm_method)[1]
        assert [by_variant[k] for k in members] == pytest.approx(list(expected), abs=1e-12)


@settings(max_examples=60)
@given(
    units=st.lists(st.integers(1, 10**6), min_size=2, max_size=6),
    raw=st.lists(st.floats(0.1, 10), min_size=6, max_size=6),
)
def test_srm_p_value_is_scipy_chisquare_goodness_of_fit(units: list[int], raw: list[float]) -> None:
    weights = raw[: len(units)]
    expected = [w / sum(weights) * sum(units) for w in weights]
    assert srm_p_value(units, weights) == pytest.approx(stats.chisquare(units, expected).pvalue, abs=1e-9)


def test_a_tampered_split_raises_the_srm_alert() -> None:
    # Given a 50/50 split where 6 % of one arm's units went missing, then the check alerts.
    check = check_srm([10_000, 9_400], [0.5, 0.5])
    assert check.p_value < 0.001 and check.alert
    assert "no result can be trusted" in check.reason


def test_a_fair_split_does_not_alert() -> None:
    assert not check_srm([5_020, 4_980], [1, 1]).alert


def test_too_few_units_never_alert_however_skewed() -> None:
    # Given an arm below 8 units, then no alert: the chi-square approximation does not hold.
    check = check_srm([7, 400], [1, 1])
    assert not check.alert and "fewer than 8" in check.reason


def test_a_tiny_skew_at_huge_scale_alerts_unless_a_minimum_deviation_is_asked_for() -> None:
    # Given 0.2 % skew over 20 million units, p is far below 0.001: the default rule alerts, and
    # with a 5 % minimum deviation asked for (no arm is that far off) it does not.
    assert check_srm([10_020_000, 9_980_000], [1, 1]).alert
    guarded = check_srm([10_020_000, 9_980_000], [1, 1], min_deviation=0.05)
    assert guarded.p_value < 0.001 and not guarded.alert
    assert guarded.max_deviation == pytest.approx(0.002)
    assert "5% off" in guarded.reason


def test_no_units_give_p_value_one() -> None:
    assert srm_p_value([0, 0], [1, 1]) == 1.0


def test_weights_must_match_the_arms() -> None:
    with pytest.raises(ValueError, match="one weight per arm"):
        srm_p_value([1, 2, 3], [1, 1])
