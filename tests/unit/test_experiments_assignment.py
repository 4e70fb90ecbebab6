"""Arms by hash: the split follows the weights, the same id always gets the same arm, a new
phase deals again, the global control group is a stable share, and merges are resolved to the
surviving profile."""

from __future__ import annotations

from collections import Counter

import pytest

from midstage.logic.experiments.assignment import MULTIPLE, Split, assign, assigner, in_global_control, person_arms

WEIGHTS = [("control", 0.45), ("b", 0.45), ("holdout", 0.10)]
MILLION = 1_000_000


def test_a_million_ids_split_within_0_3_percent_of_the_weights_and_identically_on_rerun() -> None:
    # Given 10⁶ profile ids, when each is assigned twice, then every arm's share is within
    # ±0.3 % (absolute) of its weight and the second pass gives every id the same arm.
    ids = [f"p{i:07d}" for i in range(MILLION)]
    first = list(map(assigner(Split.of(WEIGHTS), "exp-1", 1), ids))
    shares = Counter(first)
    for arm, weight in WEIGHTS:
        assert abs(shares[arm] / MILLION - weight) <= 0.003, (arm, shares[arm])
    assert list(map(assigner(Split.of(WEIGHTS), "exp-1", 1), ids)) == first


def test_the_audience_assigner_gives_each_unit_the_same_arm_as_assign() -> None:
    split = Split.of(WEIGHTS)
    ids = [f"user-{i}" for i in range(5000)] + ["a:b:c", "ü", ""]
    one_by_one = [assign(split, "exp:9", 3, unit) for unit in ids]
    assert list(map(assigner(split, "exp:9", 3), ids)) == one_by_one


def test_a_new_phase_or_another_experiment_deals_units_again() -> None:
    split = Split.of([("a", 1), ("b", 1)])
    ids = [f"u{i}" for i in range(4000)]
    phase_1 = [assign(split, "exp-1", 1, unit) for unit in ids]
    phase_2 = [assign(split, "exp-1", 2, unit) for unit in ids]
    other = [assign(split, "exp-2", 1, unit) for unit in ids]
    # Independent deals agree on about half the units, not all of them.
    for deal in (phase_2, other):
        agree = sum(x == y for x, y in zip(phase_1, deal, strict=True)) / len(ids)
        assert 0.45 < agree < 0.55


def test_weights_on_any_scale_cut_the_same_slices() -> None:
    assert Split.of([("a", 1), ("b", 3)]).edges == Split.of([("a", 0.25), ("b", 0.75)]).edges
    assert Split.of([("a", 1), ("b", 3)]).edges[-1] == 1 << 64


@pytest.mark.parametrize(
    ("weights", "message"),
    [([], "at least one arm"), ([("a", -1), ("b", 2)], "negative"), ([("a", 0), ("b", 0)], "more than 0")],
)
def test_impossible_weights_are_refused(weights: list[tuple[str, float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Split.of(weights)


def test_the_global_control_group_is_a_stable_share_apart_from_every_experiment() -> None:
    # Given a 5 % global control group, then about 5 % of people are in it, always the same ones,
    # and a new salt deals another group.
    ids = [f"p{i}" for i in range(100_000)]
    group = {unit for unit in ids if in_global_control(unit, 0.05)}
    assert abs(len(group) / len(ids) - 0.05) < 0.003
    assert group == {unit for unit in ids if in_global_control(unit, 0.05)}
    resalted = {unit for unit in ids if in_global_control(unit, 0.05, salt="2027")}
    assert len(group & resalted) < 0.2 * len(group)
    # It is a fair sample of every arm: each arm holds its weight's share of the group.
    split = Split.of(WEIGHTS)
    arms = Counter(assign(split, "exp-1", 1, unit) for unit in group)
    for arm, weight in WEIGHTS:
        assert abs(arms[arm] / len(group) - weight) < 0.03
    assert not in_global_control("p1", 0.0) and in_global_control("p1", 1.0)


def test_after_a_merge_the_survivor_id_carries_the_exposures_and_two_arms_make_a_multiple() -> None:
    # Given "old" merged into "new" (and "older" into "old"), when the exposures are read, then
    # they count under the survivor; a person exposed in two arms is MULTIPLE, not counted twice.
    survivors = {"old": "new", "older": "old", "x1": "x2"}
    exposures = [("older", "a"), ("new", "a"), ("x1", "a"), ("x2", "b"), ("solo", "b"), ("solo", "b")]
    assert person_arms(exposures, survivors) == {"new": "a", "x2": MULTIPLE, "solo": "b"}


def test_a_cycle_in_the_merge_map_does_not_loop() -> None:
    assert person_arms([("a", "arm")], {"a": "b", "b": "a"}) in ({"a": "arm"}, {"b": "arm"})
