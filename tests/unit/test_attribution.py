"""Attribution models: the textbook Markov chain, an independent linear-algebra check, Shapley and
the rule models against hand-computed cases, and every model adding up to the total."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from midstage.logic.attribution import (
    Conversion,
    Path,
    Touch,
    aggregate,
    build_paths,
    first_touch,
    last_non_direct,
    last_touch,
    linear,
    markov,
    position_based,
    shapley,
    time_decay,
)
from midstage.models.attribution import AnalyzeRequest
from midstage.services.attribution import analyze

# AnalyzeCore's walk-through, as the anchors give it: c1>c2>c3 converts, c1 and c2>c3 do not.
TOY = [Path(("c1", "c2", "c3"), conversions=1), Path(("c1",), nulls=1), Path(("c2", "c3"), nulls=1)]


def _shares(credits: dict, attribute: str = "conversions") -> dict[str, float]:
    return {c: getattr(k, attribute) for c, k in credits.items()}


# ------------------------------------------------------------------ Markov, exactly
def test_markov_on_the_textbook_example_gives_exactly_02_04_04() -> None:
    # Given the toy paths
    # When the order-1 Markov model runs
    result = markov(TOY)
    # Then credit and removal effects are the closed-form numbers, to the last bit
    assert _shares(result.credits) == {"c1": 0.2, "c2": 0.4, "c3": 0.4}
    assert result.removal_effects == {"c1": 0.5, "c2": 1.0, "c3": 1.0}
    assert result.conversion_probability == 1 / 3
    assert result.transitions["(start)"] == {"c1": 2 / 3, "c2": 1 / 3}
    assert result.transitions["c3"] == {"(conversion)": 0.5, "(null)": 0.5}


def test_markov_on_the_issue_wording_of_the_example_gives_the_same_shares_of_two_conversions() -> None:
    # Given the example as the issue words it (c2>c3 converting too): two conversions
    paths = [Path(("c1", "c2", "c3"), conversions=1), Path(("c1",), nulls=1), Path(("c2", "c3"), conversions=1)]
    # When
    result = markov(paths)
    # Then the removal effects are the same and the 0.2 / 0.4 / 0.4 shares are of 2 conversions
    assert result.removal_effects == {"c1": 0.5, "c2": 1.0, "c3": 1.0}
    assert _shares(result.credits) == {"c1": 0.4, "c2": 0.8, "c3": 0.8}
    assert result.conversion_probability == 2 / 3


def _markov_by_numpy(paths: list[Path], order: int = 1) -> tuple[dict[str, float], float]:
    """A second formulation: the full transition matrix P over every state (absorbing ones
    included), removal by rewriting P's columns, and B = N R with N = inv(I - Q) formed outright."""
    states: list[tuple[str, ...]] = [("(start)",)]
    for p in paths:
        for i in range(len(p.channels)):
            s = tuple(p.channels[max(0, i + 1 - order) : i + 1])
            if s not in states:
                states.append(s)
    absorbing = [("(conversion)",), ("(null)",)]
    everything = states + absorbing
    at = {s: i for i, s in enumerate(everything)}
    counts = np.zeros((len(everything), len(everything)))
    for p in paths:
        prev = ("(start)",)
        walked = p.conversions + p.nulls
        for i in range(len(p.channels)):
            s = tuple(p.channels[max(0, i + 1 - order) : i + 1])
            counts[at[prev], at[s]] += walked
            prev = s
        counts[at[prev], at[("(conversion)",)]] += p.conversions
        counts[at[prev], at[("(null)",)]] += p.nulls

    def conversion(removed: str | None) -> float:
        c = counts.copy()
        if removed is not None:
            for s in states:
                if removed in s:
                    c[:, at[("(null)",)]] += c[:, at[s]]
                    c[:, at[s]] = 0
        totals = c.sum(axis=1, keepdims=True)
        probabilities = np.divide(c, totals, out=np.zeros_like(c), where=totals > 0)
        t = len(states)
        q, r = probabilities[:t, :t], probabilities[:t, t:]
        n = np.linalg.inv(np.eye(t) - q)
        return float((n @ r)[0, 0])

    base = conversion(None)
    channels = sorted({c for p in paths for c in p.channels})
    return {c: 1 - conversion(c) / base for c in channels}, base


def _random_paths(rng: random.Random, channels: int, count: int) -> list[Path]:
    names = [f"ch{i}" for i in range(channels)]
    paths = []
    for _ in range(count):
        length = rng.randint(1, 6)
        converted = rng.random() < 0.4
        paths.append(
            Path(
                tuple(rng.choice(names) for _ in range(length)),
                conversions=rng.randint(1, 9) if converted else 0,
                nulls=rng.randint(0, 20) if not converted or rng.random() < 0.5 else 0,
                value=round(rng.uniform(0, 300), 2) if converted else 0,
            )
        )
    if not any(p.conversions for p in paths):
        paths.append(Path((names[0],), conversions=1))
    return paths


@pytest.mark.parametrize("seed", range(25))
def test_markov_agrees_with_an_independent_fundamental_matrix_on_random_paths(seed: int) -> None:
    # Given a random set of paths (some chains exact in fractions, the larger in floating point)
    rng = random.Random(seed)
    paths = _random_paths(rng, channels=rng.randint(2, 12) if seed % 5 else 45, count=rng.randint(3, 120))
    # When both implementations run
    ours = markov(paths)
    theirs, base = _markov_by_numpy(paths)
    # Then removal effects and P(conversion) agree to 1e-9
    assert ours.conversion_probability == pytest.approx(base, abs=1e-9)
    assert set(ours.removal_effects) == set(theirs)
    for channel, effect in theirs.items():
        assert ours.removal_effects[channel] == pytest.approx(effect, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_second_order_markov_agrees_with_the_independent_formulation(seed: int) -> None:
    # Given random paths and an order-2 chain (states are the last two channels)
    rng = random.Random(100 + seed)
    paths = _random_paths(rng, channels=4, count=40)
    # When / Then
    ours = markov(paths, order=2)
    theirs, base = _markov_by_numpy(paths, order=2)
    assert ours.conversion_probability == pytest.approx(base, abs=1e-9)
    for channel, effect in theirs.items():
        assert ours.removal_effects[channel] == pytest.approx(effect, abs=1e-9)
    assert math.fsum(c.conversions for c in ours.credits.values()) == pytest.approx(
        sum(p.conversions for p in paths), abs=1e-9
    )


def test_markov_without_nulls_ignores_paths_that_did_not_convert() -> None:
    # Given the toy paths, nulls left out: only c1>c2>c3 remains and each channel is essential
    result = markov(TOY, use_nulls=False)
    # Then
    assert result.conversion_probability == 1.0
    assert result.removal_effects == {"c1": 1.0, "c2": 1.0, "c3": 1.0}
    assert _shares(result.credits) == pytest.approx({"c1": 1 / 3, "c2": 1 / 3, "c3": 1 / 3}, abs=1e-15)


def test_markov_splits_value_by_the_same_removal_shares() -> None:
    paths = [Path(("c1", "c2", "c3"), conversions=1, value=100.0), Path(("c1",), nulls=1), Path(("c2", "c3"), nulls=1)]
    result = markov(paths)
    assert _shares(result.credits, "value") == {"c1": 20.0, "c2": 40.0, "c3": 40.0}


# ------------------------------------------------------------------ Shapley
def test_shapley_on_the_toy_gives_a_third_each() -> None:
    assert _shares(shapley(TOY)) == pytest.approx({"c1": 1 / 3, "c2": 1 / 3, "c3": 1 / 3}, abs=1e-15)


def test_shapley_on_a_three_channel_case_matches_the_hand_computation() -> None:
    # Given {A}: 10, {B}: 5, {A,B}: 6, {A,B,C}: 3 conversions (value 10 per conversion)
    paths = [
        Path(("A",), conversions=10, value=100),
        Path(("B",), conversions=5, value=50),
        Path(("B", "A", "B"), conversions=6, value=60),
        Path(("C", "A", "B"), conversions=3, value=30),
        Path(("C",), nulls=40),
    ]
    # When
    credits = shapley(paths)
    # Then, by hand: v(A)=10 v(B)=5 v(C)=0 v(AB)=21 v(AC)=10 v(BC)=5 v(ABC)=24;
    # phi_C = 1/3 (24 - 21) = 1; phi_A = 1/3*10 + 1/6*(21-5) + 1/6*(10-0) + 1/3*(24-5) = 14; phi_B = 9
    assert _shares(credits) == pytest.approx({"A": 14, "B": 9, "C": 1}, abs=1e-12)
    assert _shares(credits, "value") == pytest.approx({"A": 140, "B": 90, "C": 10}, abs=1e-10)


def test_shapley_by_enumeration_equals_the_closed_form_up_to_fifteen_channels() -> None:
    # Given random paths over 9 channels
    paths = _random_paths(random.Random(7), channels=9, count=60)
    # When computed by the definition and by the unanimity decomposition
    enumerated = shapley(paths)
    closed = shapley(paths, enumerate_up_to=0)
    # Then they agree
    for channel in enumerated:
        assert enumerated[channel].conversions == pytest.approx(closed[channel].conversions, abs=1e-9)
        assert enumerated[channel].value == pytest.approx(closed[channel].value, abs=1e-9)


def test_shapley_enumeration_matches_the_textbook_formula_written_out() -> None:
    # Given paths over four channels, and the Shapley formula written as permutations
    paths = _random_paths(random.Random(11), channels=4, count=25)
    channels = sorted({c for p in paths for c in p.channels if p.conversions})

    def v(coalition: set[str]) -> Fraction:
        return sum((Fraction(p.conversions) for p in paths if set(p.channels) <= coalition), Fraction(0))

    by_permutation = dict.fromkeys(channels, Fraction(0))
    orders = list(itertools.permutations(channels))
    for order in orders:
        seen: set[str] = set()
        for channel in order:
            by_permutation[channel] += v(seen | {channel}) - v(seen)
            seen.add(channel)
    # When / Then
    credits = shapley(paths)
    for channel in channels:
        assert credits[channel].conversions == pytest.approx(float(by_permutation[channel] / len(orders)), abs=1e-12)


# ------------------------------------------------------------------ rule models
def test_rule_models_on_the_toy_match_the_anchor_numbers() -> None:
    assert _shares(first_touch(TOY)) == {"c1": 1.0, "c2": 0.0, "c3": 0.0}
    assert _shares(last_touch(TOY)) == {"c1": 0.0, "c2": 0.0, "c3": 1.0}
    assert _shares(linear(TOY)) == pytest.approx({"c1": 1 / 3, "c2": 1 / 3, "c3": 1 / 3}, abs=1e-15)


def test_last_non_direct_skips_direct_visits_unless_there_is_nothing_else() -> None:
    paths = [Path(("email", "sms", "direct", "direct"), conversions=2, value=50), Path(("direct",), conversions=1)]
    assert _shares(last_non_direct(paths)) == {"email": 0.0, "sms": 2.0, "direct": 1.0}
    assert _shares(last_non_direct(paths), "value") == {"email": 0.0, "sms": 50.0, "direct": 0.0}


def test_time_decay_halves_the_weight_every_half_life() -> None:
    # Given touches 14, 7 and 0 days before the conversion, half-life 7 days: weights 1/4, 1/2, 1
    path = Path(("a", "b", "c"), conversions=7, value=70, days_before=(14.0, 7.0, 0.0))
    # When
    credits = time_decay([path])
    # Then (1/4 : 1/2 : 1) of 7 is 1 : 2 : 4
    assert _shares(credits) == pytest.approx({"a": 1.0, "b": 2.0, "c": 4.0}, abs=1e-12)
    weights = {"a": 0.5, "b": 2**-0.5, "c": 1.0}  # half-life 14 days
    total = sum(weights.values())
    expected = {c: 7 * w / total for c, w in weights.items()}
    assert _shares(time_decay([path], half_life_days=14)) == pytest.approx(expected, abs=1e-12)


def test_time_decay_refuses_paths_without_times() -> None:
    with pytest.raises(ValueError, match="days_before"):
        time_decay([Path(("a",), conversions=1)])


def test_position_based_gives_40_20_40_and_handles_short_paths() -> None:
    paths = [Path(("a", "b", "c", "d"), conversions=10)]
    assert _shares(position_based(paths)) == pytest.approx({"a": 4.0, "b": 1.0, "c": 1.0, "d": 4.0}, abs=1e-12)
    assert _shares(position_based([Path(("a", "b"), conversions=1)])) == {"a": 0.5, "b": 0.5}
    assert _shares(position_based([Path(("a",), conversions=1)])) == {"a": 1.0}
    # the last touch's weight is honoured (a bug seen in the wild dropped it)
    assert _shares(position_based(paths, (0.3, 0.2, 0.5))) == pytest.approx({"a": 3, "b": 1, "c": 1, "d": 5})


# ------------------------------------------------------------------ every model adds up
paths_strategy = st.lists(
    st.builds(
        lambda channels, conversions, nulls, value: Path(
            tuple(channels), conversions, nulls, value, tuple(float(i) for i in range(len(channels)))
        ),
        st.lists(st.sampled_from(["email", "sms", "push", "ads", "direct", "seo"]), min_size=1, max_size=7),
        st.integers(0, 50).map(float),
        st.integers(0, 50).map(float),
        st.floats(0, 10_000, allow_nan=False).map(lambda v: round(v, 2)),
    ),
    min_size=1,
    max_size=30,
).filter(lambda ps: any(p.conversions for p in ps))


@settings(max_examples=150, deadline=None)
@given(paths_strategy)
def test_every_model_adds_up_to_the_total(paths: list[Path]) -> None:
    conversions = math.fsum(p.conversions for p in paths)
    value = math.fsum(p.value for p in paths if p.conversions or p.value)
    models = {
        "first": first_touch(paths),
        "last": last_touch(paths),
        "last_non_direct": last_non_direct(paths),
        "linear": linear(paths),
        "time_decay": time_decay(paths),
        "position": position_based(paths),
        "markov": markov(paths).credits,
        "shapley": shapley(paths),
    }
    for name, credits in models.items():
        got_conversions = math.fsum(c.conversions for c in credits.values())
        assert got_conversions == pytest.approx(conversions, rel=1e-9, abs=1e-9), name
        if name != "markov" or conversions:
            assert math.fsum(c.value for c in credits.values()) == pytest.approx(value, rel=1e-9, abs=1e-9), name
        assert all(c.conversions >= -1e-12 for c in credits.values()), name


# ------------------------------------------------------------------ paths from touches
def test_build_paths_keeps_the_touches_in_the_lookback_since_the_last_conversion() -> None:
    # Given one person's touches and two orders, and a second person who never bought
    day = datetime(2026, 3, 1, tzinfo=UTC)
    touches = [
        Touch("p1", day - timedelta(days=40), "ads"),  # outside the 30-day window
        Touch("p1", day - timedelta(days=10), "email", kind="clicked"),
        Touch("p1", day - timedelta(days=3), "sms", kind="clicked"),
        Touch("p1", day + timedelta(days=2), "email", kind="opened"),
        Touch("p1", day + timedelta(days=20), "push", kind="clicked"),  # after the last order: a null path
        Touch("p2", day, "ads"),
    ]
    conversions = [Conversion("p1", day, 120.0), Conversion("p1", day + timedelta(days=5), 30.0)]
    # When
    paths = build_paths(touches, conversions, end=day + timedelta(days=25))
    # Then
    assert paths == [
        Path(("email", "sms"), conversions=1, value=120.0, days_before=(10.0, 3.0)),
        Path(("email",), conversions=1, value=30.0, days_before=(3.0,)),
        Path(("push",), nulls=1),
        Path(("ads",), nulls=1),
    ]
    assert aggregate(paths) == [
        Path(("ads",), nulls=1),
        Path(("email",), conversions=1, value=30.0),
        Path(("email", "sms"), conversions=1, value=120.0),
        Path(("push",), nulls=1),
    ]


def test_a_conversion_without_touches_is_credited_to_direct() -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    paths = build_paths([], [Conversion("p9", day, 10.0)], end=day)
    assert paths == [Path(("direct",), conversions=1, value=10.0, days_before=(0.0,))]


# ------------------------------------------------------------------ the analyze service
def test_analyze_answers_in_the_issue_shape() -> None:
    # Given the issue's request body shape
    body = {
        "paths": [
            {"channels": ["c1", "c2", "c3"], "conversions": 1, "nulls": 0, "value": 100.0},
            {"channels": ["c1"], "conversions": 0, "nulls": 1},
            {"channels": ["c2", "c3"], "conversions": 0, "nulls": 1},
        ],
        "models": ["first_touch", "last_touch", "linear", "markov", "shapley"],
    }
    # When
    answer = analyze(AnalyzeRequest.model_validate(body)).model_dump()
    # Then
    assert set(answer["models"]) == {"first_touch", "last_touch", "linear", "markov", "shapley"}
    assert answer["models"]["markov"]["c1"] == {"conversions": 0.2, "value": 20.0}
    assert answer["models"]["first_touch"]["c1"] == {"conversions": 1.0, "value": 100.0}
    assert answer["removal_effects"] == {"c1": 0.5, "c2": 1.0, "c3": 1.0}
    assert answer["totals"] == {"conversions": 1.0, "value": 100.0, "nulls": 2.0}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"paths": []}, "paths"),
        ({"paths": [{"channels": []}]}, "channels"),
        ({"paths": [{"channels": ["a>b"], "conversions": 1}]}, "channel name"),
        ({"paths": [{"channels": ["a"], "conversions": -1}]}, "conversions"),
        ({"paths": [{"channels": ["a"], "conversions": 1}], "models": ["magic"]}, "models"),
        ({"paths": [{"channels": ["a"], "conversions": 1}], "models": ["time_decay"]}, "days_before"),
        ({"paths": [{"channels": ["a"], "conversions": 1}], "position_weights": [0.5, 0.5, 0.5]}, "position_weights"),
    ],
)
def test_analyze_refuses_bad_requests_with_a_reason(body: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        AnalyzeRequest.model_validate(body)
