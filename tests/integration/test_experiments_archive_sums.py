"""A phase's sufficient statistics read from the archive (logic/experiments/archive_sums.py) on
embedded DuckDB: a scripted population of exposures and events archived as Parquet, and the
sums the query answers equal the same sums worked out person by person in Python; the SQL in
Trino's dialect parses."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from midstage.adapters.archive_engines import LocalArchive
from midstage.logic.analytics.dialects import check_parses, to_trino
from midstage.logic.archive import records
from midstage.logic.experiments.archive_sums import phase_statistics, phase_sums_query
from midstage.models.archive import ArchiveRecord, EventRecord
from midstage.models.experiments import Experiment
from midstage.services.experiments import results

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
END = START + timedelta(days=4)
ARMS = ("control", "b", "holdout")


def experiment() -> Experiment:
    phase = {
        "number": 1,
        "started_at": START.isoformat(),
        "ended_at": END.isoformat(),
        "arms": [
            {"id": "control", "weight": 45},
            {"id": "b", "weight": 45},
            {"id": "holdout", "weight": 10, "holdout": True},
        ],
        "control": "control",
        "target": {"kind": "campaign", "id": "spring"},
    }
    return Experiment.model_validate(
        {
            "id": "exp-1",
            "name": "Spring",
            "target": {"kind": "campaign", "id": "spring"},
            "arms": phase["arms"],
            "goal": "purchase",
            "metrics": [
                {"id": "purchase", "kind": "conversion", "event": "Order Completed", "window_hours": 48},
                {"id": "revenue", "kind": "mean", "event": "Order Completed", "value": "revenue", "cuped": True},
                {
                    "id": "per_order",
                    "kind": "ratio",
                    "event": "Order Completed",
                    "value": "revenue",
                    "denominator_event": "Order Completed",
                },
                {
                    "id": "unsubscribe",
                    "kind": "conversion",
                    "event": "Unsubscribed",
                    "guardrail": True,
                    "inverse": True,
                },
            ],
            "status": "stopped",
            "version": 3,
            "phases": [phase],
            "created_at": START.isoformat(),
            "updated_at": END.isoformat(),
        }
    )


def event(person: str, name: str, at: datetime, n: int, revenue: float | None = None) -> EventRecord:
    properties: dict[str, Any] = {} if revenue is None else {"revenue": revenue}
    return EventRecord(
        record_id=f"{person}-{n}",
        occurred_at=at,
        archived_at=at,
        profile_id=person,
        source_id="src",
        event_type="track",
        event=name,
        message_id=f"{person}-{n}",
        revenue=revenue,
        properties=json.dumps(properties),
    )


def population() -> tuple[list[ArchiveRecord], dict[str, tuple[str, datetime]], list[EventRecord]]:
    """Exposures (some repeated, some in two arms, some outside the phase) and events around them."""
    rng = random.Random(14)
    kept: list[ArchiveRecord] = []
    units: dict[str, tuple[str, datetime]] = {}
    events: list[EventRecord] = []
    for i in range(300):
        person = f"p{i}"
        arm = ARMS[rng.randrange(3)]
        at = START + timedelta(minutes=rng.randrange(0, 4 * 24 * 60))
        kept.append(
            records.exposure(experiment_id="exp-1", variant=arm, profile_id=person, at=at, archived_at=at, phase=1)
        )
        if i % 10 == 0:  # exposed again later, same arm: still one unit, first exposure counts
            later = at + timedelta(hours=5)
            kept.append(
                records.exposure(
                    experiment_id="exp-1", variant=arm, profile_id=person, at=later, archived_at=later, message_id="m"
                )
            )
        units[person] = (arm, at)
        for n in range(rng.randrange(0, 4)):
            when = at + timedelta(hours=rng.randrange(-24 * 16, 24 * 5))
            name = rng.choice(("Order Completed", "Order Completed", "Unsubscribed", "Product Viewed"))
            revenue = round(rng.uniform(5, 200), 2) if name == "Order Completed" and rng.random() < 0.9 else None
            events.append(event(person, name, when, n, revenue))
    # Two arms for one person: counted apart. Before the phase and another experiment: not read.
    kept.append(
        records.exposure(
            experiment_id="exp-1",
            variant="b",
            profile_id="p1",
            at=START + timedelta(hours=1),
            archived_at=START,
            message_id="x",
        )
    )
    kept.append(
        records.exposure(
            experiment_id="exp-1", variant="b", profile_id="early", at=START - timedelta(hours=1), archived_at=START
        )
    )
    kept.append(
        records.exposure(
            experiment_id="exp-2", variant="b", profile_id="other", at=START + timedelta(hours=1), archived_at=START
        )
    )
    if units["p1"][0] != "b":
        del units["p1"]
    return kept + events, units, events


def by_hand(units: dict[str, tuple[str, datetime]], events: list[EventRecord]) -> dict[str, Any]:
    """Every metric's sums per arm, person by person, in plain Python."""
    sums: dict[str, dict[str, list[float]]] = {}

    def add(metric: str, arm: str, *values: float) -> None:
        row = sums.setdefault(metric, {}).setdefault(arm, [0.0] * len(values))
        for k, value in enumerate(values):
            row[k] += value

    for person, (arm, at) in units.items():
        mine = [e for e in events if e.profile_id == person]

        def window(name: str, hours: int) -> list[EventRecord]:
            return [x for x in mine if x.event == name and at <= x.occurred_at <= at + timedelta(hours=hours)]  # noqa: B023

        bought48 = 1.0 if window("Order Completed", 48) else 0.0
        orders = window("Order Completed", 72)
        revenue = sum(x.revenue or 0.0 for x in orders)
        before = sum(
            x.revenue or 0.0
            for x in mine
            if x.event == "Order Completed" and at - timedelta(days=14) <= x.occurred_at < at
        )
        unsubscribed = 1.0 if window("Unsubscribed", 72) else 0.0
        add("purchase", arm, bought48, bought48)
        add("revenue", arm, revenue, revenue**2, before, before**2, revenue * before)
        add("per_order", arm, revenue, revenue**2, len(orders), len(orders) ** 2, revenue * len(orders))
        add("unsubscribe", arm, unsubscribed, unsubscribed)
    return sums


@pytest.fixture(scope="module")
def archived(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[LocalArchive, dict[str, tuple[str, datetime]], list[EventRecord]]:
    store = LocalArchive(Path(tmp_path_factory.mktemp("experiments")), threads=1)
    everything, units, events = population()
    store.write(everything, "scripted")
    return store, units, events


def test_the_archive_sums_equal_the_sums_worked_out_person_by_person(archived: Any) -> None:
    store, units, events = archived
    exp = experiment()
    phase = exp.phases[0]
    statistics = phase_statistics(exp, phase, store.run(phase_sums_query(exp, phase, END)).records())
    assert statistics.exposures == {arm: sum(1 for a, _ in units.values() if a == arm) for arm in ARMS}
    assert statistics.multiple_exposures == (0 if "p1" in units else 1)
    expected = by_hand(units, events)
    for metric, rows in statistics.metrics.items():
        for row in rows:
            got = [row.sum, row.sum_squares]
            if metric == "per_order":
                got += [row.denominator_sum, row.denominator_sum_squares, row.main_denominator_sum_product]
            if metric == "revenue":
                got += [row.covariate_sum, row.covariate_sum_squares, row.main_covariate_sum_product]
            want = expected[metric].get(row.arm, [0.0] * len(got))
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (metric, row.arm)
    # And the results computed on them: SRM first, every engine on every metric.
    answer = results(exp, statistics, now=END)
    assert [a.units for a in answer.arms] == [statistics.exposures[a] for a in ("control", "b", "holdout")]
    assert answer.metric("revenue").cuped and len(answer.metric("purchase").sequential) == 2


def test_an_empty_archive_gives_every_arm_zero_units(tmp_path: Path) -> None:
    exp = experiment()
    phase = exp.phases[0]
    store = LocalArchive(tmp_path, threads=1)
    store.write([event("p", "Product Viewed", START, 0)], "one")
    statistics = phase_statistics(exp, phase, store.run(phase_sums_query(exp, phase, END)).records())
    assert statistics.exposures == dict.fromkeys(ARMS, 0)
    assert all(row.sum == 0 for rows in statistics.metrics.values() for row in rows)


def test_values_no_sum_can_hold_count_zero(tmp_path: Path) -> None:
    # Given a unit whose orders carry a huge, an infinite, a NaN and a text value, and one real one
    exp = experiment()
    phase = exp.phases[0]
    at = START + timedelta(hours=1)
    made: list[ArchiveRecord] = [
        records.exposure(experiment_id="exp-1", variant="b", profile_id="p", at=at, archived_at=at, phase=1)
    ]
    for n, raw in enumerate(["1e300", "Infinity", "NaN", "lots", "-1e13", 12.5]):
        order = event("p", "Order Completed", at + timedelta(hours=1), n)
        made.append(order.model_copy(update={"properties": json.dumps({"revenue": raw})}))
    store = LocalArchive(tmp_path, threads=1)
    store.write(made, "odd")
    # Then only the real value counts, and the results can be computed on the sums
    statistics = phase_statistics(exp, phase, store.run(phase_sums_query(exp, phase, END)).records())
    revenue = {row.arm: (row.sum, row.sum_squares) for row in statistics.metrics["revenue"]}
    assert revenue["b"] == (12.5, 12.5**2)
    assert results(exp, statistics, now=END).metric("revenue").arms


def test_the_statement_in_trinos_dialect_parses() -> None:
    exp = experiment()
    check_parses(to_trino(phase_sums_query(exp, exp.phases[0], END).sql), "trino")
