"""The profile updater's work per invocation: pieces sized by measured cost, never by a guess
alone, and always some progress."""

from __future__ import annotations

from midstage.logic.ingest import PROBE_EVENTS, RESERVE_FRACTION, SAFETY, UNIT_EVENTS, CostModel, WorkBudget


def test_a_container_that_measured_nothing_starts_with_a_small_probe() -> None:
    budget = WorkBudget.for_invocation(30.0, CostModel())
    assert budget.next_piece(remaining_s=30.0, left=50) == PROBE_EVENTS
    assert budget.next_piece(remaining_s=30.0, left=3) == 3


def test_pieces_grow_to_a_whole_unit_when_events_are_cheap() -> None:
    # Given a first piece of 10 events that took 50 ms (as on DynamoDB)
    budget = WorkBudget.for_invocation(30.0, CostModel())
    budget.spent(10, 0.05)
    # Then the next piece is as large as a unit may be
    assert budget.next_piece(remaining_s=29.9, left=250) == UNIT_EVENTS


def test_pieces_shrink_to_what_fits_above_the_reserve_when_events_are_slow() -> None:
    # Given 0.5 s an event (a store under heavy contention) and 25 s left of 30
    budget = WorkBudget.for_invocation(30.0, CostModel())
    budget.spent(10, 5.0)
    assert budget.reserve_s == 30.0 * RESERVE_FRACTION
    # Then a piece is what the 10 s above the reserve hold at twice the estimate: 10 events
    assert budget.next_piece(remaining_s=25.0, left=50) == int(10.0 / (0.5 * SAFETY))
    # And once nothing fits above the reserve, the rest is handed back
    assert budget.next_piece(remaining_s=15.5, left=50) == 0


def test_every_invocation_applies_something_whatever_the_estimate() -> None:
    cost = CostModel()
    cost.observe(1, 60.0)  # a container that once took a minute for one event
    budget = WorkBudget.for_invocation(30.0, cost)
    assert budget.next_piece(remaining_s=30.0, left=50) == 1
    budget.spent(1, 1.0)
    assert budget.next_piece(remaining_s=29.0, left=49) == 0


def test_a_slow_piece_is_believed_at_once_and_forgotten_slowly() -> None:
    cost = CostModel()
    cost.observe(10, 0.1)
    assert cost.seconds_per_event == 0.01
    cost.observe(10, 1.0)  # 0.1 s an event: the store is slow now
    assert cost.seconds_per_event == 0.1
    cost.observe(10, 0.1)  # back to 0.01
    assert 0.01 < cost.seconds_per_event < 0.1
    for _ in range(50):
        cost.observe(10, 0.1)
    assert round(cost.seconds_per_event, 3) == 0.01
