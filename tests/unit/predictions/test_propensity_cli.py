"""`python -m midstage.cli predict propensity` on a CSV of the generated population's events."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from midstage.cli import main
from midstage.logic.predictions.cards import ModelCard
from midstage.logic.predictions.propensity import SECONDS_PER_DAY, PropensitySettings, fit_propensity
from tests.unit.predictions.population import AS_OF, GOAL, WINDOW, Population, generate


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(4_000, seed=5)


@pytest.fixture(scope="module")
def events_csv(population: Population, tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = population.log
    path = tmp_path_factory.mktemp("events") / "events.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "timestamp", "event", "amount", "ignored"])
        for i in np.argsort(log.at, kind="mergesort"):
            when = datetime.fromtimestamp(float(log.at[i]) * SECONDS_PER_DAY, UTC).isoformat()
            amount = f"{log.amount[i]:.2f}" if log.amount[i] else ""
            writer.writerow([log.people[log.person[i]], when, log.kinds[log.kind[i]], amount, "x"])
    return path


def test_predict_propensity_prints_the_holdout_quality_and_writes_scores_and_card(
    population: Population, events_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the population's events as customer_id,timestamp,event,amount
    scores, card = tmp_path / "scores.csv", tmp_path / "card.json"
    as_of = (AS_OF - timedelta(days=1)).date().isoformat()  # the end of that day is AS_OF
    # When the command fits "Subscription Started within 30 days" as of the end of the data
    fitting = ["predict", "propensity", "--events", str(events_csv), "--goal", GOAL, "--window-days", str(WINDOW)]
    code = main([*fitting, "--as-of", as_of, "--scores", str(scores), "--card", str(card)])
    # Then it prints the trait, the model and the holdout quality, as the library computes them
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    library = fit_propensity(
        population.log,
        PropensitySettings(goal_event=GOAL, window_days=WINDOW),
        as_of=AS_OF,
        version=1,
        fitted_at="unused",
    )
    assert printed["trait"] == "propensity_subscription_started_30d"
    assert printed["model"] == "propensity.v1"
    assert printed["as_of"] == as_of
    assert printed["people_scored"] == len(library.scores.ids) == len(population.log.people)
    # (the CSV lists events by time, so people are met in another order: the split must not care)
    assert printed["holdout"]["auc"] == pytest.approx(library.quality.auc, abs=1e-6)
    assert printed["holdout"]["auc"] > 0.7
    assert printed["holdout"]["lift_top_decile"] > 2.0
    assert len(printed["holdout"]["deciles"]) == 10
    # And one row of scores per person, the same as the library's, with percentiles
    with scores.open() as handle:
        rows = {row["customer_id"]: row for row in csv.DictReader(handle)}
    assert len(rows) == len(library.scores.ids)
    trait = printed["trait"]
    first = library.scores.ids[0]
    assert float(rows[first][trait]) == pytest.approx(library.scores.columns[trait][0], rel=1e-5)
    assert all(0 <= int(row[f"{trait}_percentile"]) <= 100 for row in rows.values())
    # And the card reads back whole (its digest checks)
    written = ModelCard.from_json(json.loads(card.read_text()))
    assert written.parameters["coefficients"] == pytest.approx(library.card.parameters["coefficients"], abs=1e-6)


def test_as_of_defaults_to_the_end_of_the_last_events_day(
    population: Population, events_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no --as-of
    last = datetime.fromtimestamp(float(population.log.at.max()) * SECONDS_PER_DAY, UTC).date()
    code = main(["predict", "propensity", "--events", str(events_csv), "--goal", GOAL, "--outcome", "does_not"])
    # Then the model is scored as of the end of that day, and churn names its trait
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["as_of"] == last.isoformat()
    assert printed["trait"] == "churn_subscription_started_30d"


@pytest.mark.parametrize(
    ("content", "arguments", "message"),
    [
        ("customer_id,date,event\na,2026-01-01,X\n", [], "missing: timestamp"),
        ("customer_id,timestamp,event\na,2026-01-01,X\nb,01/02/2026,X\n", [], "line 3: timestamp '01/02/2026'"),
        ("customer_id,timestamp,event,amount\na,2026-01-01,X,ten\n", [], "line 2: amount 'ten' is not a number"),
        ("customer_id,timestamp,event\na,2026-01-01,\n", [], "line 2: event is empty"),
        ("customer_id,timestamp,event\n", [], "no events"),
        ("customer_id,timestamp,event\na,2026-01-01,X\n", ["--window-days", "3"], "window_days"),
        ("customer_id,timestamp,event\na,2026-01-01,X\n", ["--as-of", "2026-13-01"], "--as-of '2026-13-01'"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, arguments: list[str], message: str
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(content)
    code = main(["predict", "propensity", "--events", str(path), "--goal", "X", *arguments])
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_a_goal_too_rare_to_learn_exits_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a valid file where the goal happened once
    path = tmp_path / "events.csv"
    rows = [f"p{i},2026-0{1 + i % 6}-1{i % 10}T10:00:00Z,Product Viewed," for i in range(200)]
    path.write_text("customer_id,timestamp,event,amount\n" + "\n".join(rows) + "\np1,2026-06-20,Goal,\n")
    # When fitted
    # Then it exits 1 and says why
    assert main(["predict", "propensity", "--events", str(path), "--goal", "Goal"]) == 1
    assert "at least 20 of each are needed" in capsys.readouterr().err
