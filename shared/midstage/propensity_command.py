"""`python -m midstage.cli predict propensity`: a propensity model on a CSV of events, offline.

    python -m midstage.cli predict propensity --events events.csv --goal "Order Completed" \\
        [--as-of 2026-08-31] [--window-days 30] [--outcome does|does_not] [--calibration platt|isotonic] \\
        [--eligible-active-days N] [--order-event "Order Completed"] [--seed 0] [--scores OUT.csv] [--card card.json]

The CSV has a header with at least `customer_id,timestamp,event` (`amount`, the order value, is
optional; other columns are ignored): one row per event. `timestamp` is ISO 8601, a date or a
date and time; without an offset it is UTC. `--as-of` (a date: the end of that day, UTC; or a
timestamp) defaults to the end of the day of the last event.

The model learns "does the goal within N days" with a time split (features as of as_of - 2N,
outcome over the next N days), is judged on the window (as_of - N, as_of] it never saw, and
scores everyone as of `as_of` (midstage.logic.predictions.propensity). Prints JSON: the trait,
the model card id, how many people were scored, and the holdout quality (AUC, Gini, lift at the
top decile, log loss, Brier, calibration per decile, the strongest features). `--scores` writes
`customer_id,<trait>,<trait>_percentile`, one row per person scored. Exit codes: 0 done, 1 the
model could not be fitted (e.g. too few people did the goal), 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from midstage.predict_command import BadInput, csv_reader, numbered_rows, open_csv, parse_amount, refuse_bad_rows

if TYPE_CHECKING:
    from midstage.logic.predictions.propensity import ActivityLog, PropensityFit

REQUIRED = ("customer_id", "timestamp", "event")


def add_command(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = actions.add_parser(
        "propensity",
        help="fit 'does the goal event within N days' on a CSV of events (customer_id,timestamp,event[,amount])",
    )
    command.add_argument("--events", required=True, type=Path, help="CSV with customer_id,timestamp,event[,amount]")
    command.add_argument("--goal", required=True, help="the goal event's name, e.g. 'Order Completed'")
    command.add_argument("--as-of", help="score as of this date (end of day, UTC) or timestamp; default: the data end")
    command.add_argument("--window-days", type=int, default=30, help="N: the goal within N days (7-120, default 30)")
    command.add_argument("--outcome", choices=["does", "does_not"], default="does", help="does_not: churn")
    command.add_argument("--calibration", choices=["platt", "isotonic"], default="platt")
    command.add_argument("--eligible-active-days", type=int, help="only people active in this many days are scored")
    command.add_argument("--order-event", default="Order Completed", help="the event whose amount is an order value")
    command.add_argument("--seed", type=int, default=0, help="the training/calibration split's seed")
    command.add_argument("--scores", type=Path, help="write per-person scores to this CSV")
    command.add_argument("--card", type=Path, help="write the model card (JSON) to this file")


def run(args: argparse.Namespace) -> int:
    # numpy and scipy are imported only when the command runs (see predict_command.run).
    from midstage.logic.predictions.bgnbd import FitError
    from midstage.logic.predictions.propensity import PropensitySettings, fit_propensity

    try:
        settings = PropensitySettings(
            goal_event=args.goal,
            window_days=args.window_days,
            outcome=args.outcome,
            calibration=args.calibration,
            eligible_active_days=args.eligible_active_days,
            order_event=args.order_event,
            seed=args.seed,
        )
        with open_csv(args.events) as handle:
            log, last = read_events(handle)
        as_of = _parse_as_of(args.as_of) if args.as_of else _end_of_day(last.date())
    except (BadInput, ValidationError) as error:
        print(f"predict propensity: {_message(error)}", file=sys.stderr)
        return 2
    try:
        result = fit_propensity(log, settings, as_of=as_of, version=1, fitted_at=as_of.isoformat())
    except FitError as error:
        print(f"predict propensity: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report(result, settings.trait), indent=2))
    if args.scores is not None:
        with args.scores.open("w", newline="", encoding="utf-8") as out:
            write_scores(result, out)
    if args.card is not None:
        args.card.write_text(json.dumps(result.card.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0


def report(result: PropensityFit, trait: str) -> dict[str, Any]:
    quality = result.quality.model_dump(mode="json", exclude={"kind"})
    return {
        "trait": trait,
        "model": result.card.id,
        "as_of": result.card.data.holdout_end,
        "people_scored": len(result.scores.ids),
        "training_people": result.card.data.people,
        "holdout": {"start": result.card.data.calibration_end, "end": result.card.data.holdout_end, **quality},
    }


def write_scores(result: PropensityFit, out: TextIO) -> None:
    table = result.scores
    ranks = table.percentiles()
    names = list(table.columns)
    writer = csv.writer(out)
    writer.writerow(["customer_id", *names, *(f"{n}_percentile" for n in names)])
    for i, person in enumerate(table.ids):
        writer.writerow([person, *(f"{table.columns[n][i]:.6g}" for n in names), *(int(ranks[n][i]) for n in names)])


def read_events(handle: TextIO) -> tuple[ActivityLog, datetime]:
    """The events of a CSV and the latest timestamp; every bad row is reported (the first few)."""
    from midstage.logic.predictions.propensity import ActivityLog

    reader = csv_reader(handle, REQUIRED)
    rows: list[tuple[str, datetime, str, float]] = []
    errors: list[str] = []
    for line, row in numbered_rows(reader):
        try:
            customer = (row.get("customer_id") or "").strip()
            event = (row.get("event") or "").strip()
            if not customer:
                raise BadInput("customer_id is empty")
            if not event:
                raise BadInput("event is empty")
            when = _parse_timestamp((row.get("timestamp") or "").strip(), "timestamp")
            amount = _optional_amount((row.get("amount") or "").strip())
        except BadInput as error:
            errors.append(f"line {line}: {error}")
            continue
        rows.append((customer, when, event, amount))
    refuse_bad_rows(errors)
    if not rows:
        raise BadInput("the CSV has no events")
    return ActivityLog.from_rows(rows), max(r[1] for r in rows)


def _parse_timestamp(text: str, what: str) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what} {text!r} is not an ISO 8601 date or timestamp") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_as_of(text: str) -> datetime:
    if len(text) == 10:
        try:
            return _end_of_day(date.fromisoformat(text))
        except ValueError:
            raise BadInput(f"--as-of {text!r} is not an ISO 8601 date or timestamp") from None
    return _parse_timestamp(text, "--as-of")


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def _optional_amount(text: str) -> float:
    """The amount column is optional here: empty is 0."""
    return parse_amount(text) if text else 0.0


def _message(error: BadInput | ValidationError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
    return str(error)
