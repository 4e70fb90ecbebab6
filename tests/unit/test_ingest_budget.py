"""The profile updater's work per invocation: bounded by measured cost, never by a guess alone."""

from __future__ import annotations

from midstage.logic.ingest import (
    RESERVE_FRACTION,
    SAFETY,
    UNIT_EVENTS,
    CostModel,
    WorkBudget,
    pieces,
)


def test_a_large_unit_is_worked_in_pieces_of_at_most_a_units_events_in_order() -> None:
    events = [{"messageId": str(i)} for i in range(2 * UNIT_EVENTS + 7)]
    split = pieces(events)
    assert [len(p) for p in split] == [UNIT_EVENTS, UNIT_EVENTS, 7]
    assert [e for p in split for e in p] == events


def test_a_small_unit_is_one_piece() -> None:
    events = [{"messageId": "a"}]
    assert pieces(events) == [events]


def test_the_first_piece_always_runs_so_every_invocation_makes_progress() -> None:
    budget = WorkBudget.for_invocation(30.0, CostModel(seconds_per_event=10.0))
    assert budget.allows(remaining_s=1.0, events=100)


def test_work_starts_only_while_the_expected_cost_leaves_the_reserve() -> None:
    # Given an invocation of 30 s whose first 50-event unit took 2 s (0.04 s an event)
    cost = CostModel()
    budget = WorkBudget.for_invocation(30.0, cost)
    budget.spent(50, 2.0)
    assert budget.reserve_s == 30.0 * RESERVE_FRACTION
    expected = 50 * 0.04 * SAFETY  # 4 s for the next unit of 50
    # When enough is left for the next unit and the reserve, it starts; when not, it waits
    assert budget.allows(remaining_s=budget.reserve_s + expected + 0.1, events=50)
    assert not budget.allows(remaining_s=budget.reserve_s + expected - 0.1, events=50)


def test_a_slow_piece_is_believed_at_once_and_forgotten_slowly() -> None:
    cost = CostModel(seconds_per_event=0.01)
    cost.observe(10, 1.0)  # 0.1 s an event: the store is slow now
    assert cost.seconds_per_event == 0.1
    cost.observe(10, 0.1)  # back to 0.01
    assert 0.01 < cost.seconds_per_event < 0.1
    for _ in range(50):
        cost.observe(10, 0.1)
    assert round(cost.seconds_per_event, 3) == 0.01
