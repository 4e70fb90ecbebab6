"""The pure-Python distribution functions under the engines equal scipy's (the engines run in a
Lambda without scipy, so these are written out by hand and held to scipy here)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from midstage.logic.experiments import distributions as d

RELATIVE = 1e-10


def near(ours: float, theirs: float, relative: float = RELATIVE, absolute: float = 1e-300) -> bool:
    return abs(ours - theirs) <= relative * abs(theirs) + absolute


@given(x=st.floats(-37, 37))
def test_normal_cdf_sf_and_pdf_equal_scipy_into_both_tails(x: float) -> None:
    # Given any point out to where the tails underflow, then Φ, 1 - Φ and φ keep their relative precision.
    assert near(d.normal_cdf(x), stats.norm.cdf(x))
    assert near(d.normal_sf(x), stats.norm.sf(x))
    assert near(d.normal_pdf(x), stats.norm.pdf(x))


@given(p=st.floats(1e-12, 1 - 1e-12))
def test_normal_ppf_equals_scipy(p: float) -> None:
    assert near(d.normal_ppf(p), stats.norm.ppf(p), 1e-9)


@settings(max_examples=300)
@given(t=st.floats(-60, 60), df=st.one_of(st.floats(0.5, 30), st.floats(30, 1e6), st.floats(1e6, 1e12)))
def test_student_t_tails_equal_scipy(t: float, df: float) -> None:
    # Given fractional and huge degrees of freedom (Welch's), then both tails equal scipy's to
    # 1e-8 of their value and 1e-15 absolutely: from 1e7 degrees of freedom the first-order
    # expansion around the normal is used, whose relative error grows like t⁸/df² in tails
    # already far below any p-value's precision.
    assert near(d.student_t_sf(t, df), stats.t.sf(t, df), 1e-8, 1e-15)
    assert near(d.student_t_cdf(t, df), stats.t.cdf(t, df), 1e-8, 1e-15)


@settings(max_examples=300)
@given(p=st.floats(1e-9, 1 - 1e-9), df=st.one_of(st.floats(1, 30), st.floats(30, 1e6), st.floats(1e6, 1e12)))
def test_student_t_quantile_equals_scipy(p: float, df: float) -> None:
    assert near(d.student_t_ppf(p, df), stats.t.ppf(p, df), 1e-8)


@settings(max_examples=300)
@given(x=st.floats(0, 500), df=st.integers(1, 60))
def test_chi_square_survival_equals_scipy(x: float, df: int) -> None:
    assert near(d.chi2_sf(x, df), stats.chi2.sf(x, df), 1e-9)


@given(x=st.floats(1e3, 1e300), df=st.integers(1, 60))
def test_chi_square_survival_far_in_the_tail_is_zero_not_an_error(x: float, df: int) -> None:
    # A sample ratio that far off (a split of 3.5 million against almost nothing) is certain SRM.
    assert d.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-300)


@given(t=st.floats(1e150, 1e300), df=st.floats(1, 1e6))
def test_student_t_tails_beyond_where_t_squared_overflows_stay_numbers(t: float, df: float) -> None:
    # Given |t| so large that t² overflows, then the tails are numbers (not NaN): 0 and 1 to any
    # p-value's precision, and for one degree of freedom exactly Cauchy's, arctan(1/t)/π, which
    # scipy already rounds to 0.
    upper = d.student_t_sf(t, df)
    assert abs(upper - stats.t.sf(t, df)) <= 1e-150
    assert d.student_t_sf(-t, df) == 1.0
    assert near(d.student_t_sf(t, 1.0), math.atan(1 / t) / math.pi, 1e-10)


def test_bad_arguments_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="probability"):
        d.normal_ppf(1.0)
    with pytest.raises(ValueError, match="degrees of freedom"):
        d.student_t_sf(1.0, 0.0)
    with pytest.raises(ValueError, match="degrees of freedom"):
        d.chi2_sf(1.0, -1)
