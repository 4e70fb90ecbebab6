"""`python -m midstage.cli predict fit`: the customer-value models on a CSV of orders, offline.
(`predict propensity`, on a CSV of events, is in midstage.propensity_command.)

    python -m midstage.cli predict fit --transactions orders.csv --calibration-end 1997-09-30 --unit week \
        [--scores scores.csv] [--card card.json] [--annual-discount-rate 0.1]

The CSV has a header with at least `customer_id,date,amount` (other columns are ignored; a
`currency` column, when present, must hold one currency): one row per order, `date` as
YYYY-MM-DD (a full ISO timestamp is read by its date). Orders of one customer on one day are
one transaction. BG/NBD and Gamma-Gamma are fitted on the orders up to the calibration end
(inclusive); orders after it, when there are any, are the holdout period the fit is judged on.

Prints JSON: {"bgnbd": {"r", "alpha", "a", "b", "log_likelihood"}, "gamma_gamma": {"p", "q", "v"},
"customers": N, ...} plus the transactions counted, the settings and, with a holdout period, the
predicted and actual repeat purchases per calibration frequency. `--scores` writes one row per
customer: their statistics and every score with its percentile. Exit codes: 0 done, 1 the models
could not be fitted, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from midstage.logic.predictions.refit import CustomerValueFit
    from midstage.logic.predictions.summary import Transactions

REQUIRED = ("customer_id", "date", "amount")
MAX_ERRORS_SHOWN = 10


class BadInput(ValueError):
    """The CSV or an argument is not usable; the message says where."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    predict = commands.add_parser("predict", help="predictive models, offline")
    actions = predict.add_subparsers(dest="predict_command", required=True)
    fitting = actions.add_parser(
        "fit", help="fit BG/NBD and Gamma-Gamma on a CSV of orders (customer_id,date,amount) and print JSON"
    )
    fitting.add_argument("--transactions", required=True, type=Path, help="CSV with customer_id,date,amount")
    fitting.add_argument("--calibration-end", required=True, help="last day of the calibration period, YYYY-MM-DD")
    fitting.add_argument("--unit", default="week", choices=["day", "week", "month"], help="time unit (default: week)")
    fitting.add_argument("--scores", type=Path, help="write per-customer scores to this CSV")
    fitting.add_argument("--card", type=Path, help="write the model card (JSON) to this file")
    fitting.add_argument(
        "--annual-discount-rate", type=float, default=0.10, help="discount rate of the 12-month CLV (default 0.10)"
    )
    from midstage import propensity_command  # it reuses this module's input errors

    propensity_command.add_command(actions)


def run(args: argparse.Namespace) -> int:
    if args.predict_command == "propensity":
        from midstage import propensity_command

        return propensity_command.run(args)
    # The numerical stack is imported here, not with the module: the rest of the command line
    # must keep working where the predictions extra (numpy, scipy) is not installed.
    from midstage.logic.predictions.bgnbd import FitError
    from midstage.logic.predictions.refit import CustomerValueSettings, fit_customer_value

    try:
        calibration_end = _parse_day(args.calibration_end, "--calibration-end")
        settings = CustomerValueSettings(unit=args.unit, annual_discount_rate=args.annual_discount_rate)
        with open_csv(args.transactions) as handle:
            orders = read_orders(handle)
        if not len(orders.day) or int(orders.day.min()) > _day(calibration_end):
            raise BadInput(f"no order on or before the calibration end {calibration_end.isoformat()}")
    except BadInput as error:
        print(f"predict fit: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # settings out of range
        print(f"predict fit: {error}", file=sys.stderr)
        return 2
    try:
        result = fit_customer_value(
            orders,
            calibration_end=calibration_end,
            settings=settings,
            fitted_at=f"{calibration_end.isoformat()}T00:00:00Z",
        )
    except FitError as error:
        print(f"predict fit: {error}", file=sys.stderr)
        return 1
    if result.spend is None:
        print(f"predict fit: {'; '.join(result.card.notes)}", file=sys.stderr)
        return 1
    print(json.dumps(report(result), indent=2))
    if args.scores is not None:
        with args.scores.open("w", newline="", encoding="utf-8") as out:
            write_scores(result, out)
    if args.card is not None:
        args.card.write_text(json.dumps(result.card.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0


def report(result: CustomerValueFit) -> dict[str, Any]:
    purchases, spend, summary = result.purchases, result.spend, result.summary
    out: dict[str, Any] = {
        "bgnbd": {**purchases.parameters(), "log_likelihood": purchases.log_likelihood},
        "gamma_gamma": spend.parameters() if spend is not None else None,
        "customers": len(summary),
        "repeat_buyers": spend.customers if spend is not None else 0,
        "transactions": summary.transactions,
        "calibration_end": result.card.data.calibration_end,
        "unit": result.card.data.unit,
        "model": result.card.id,
    }
    if result.comparison is not None:
        comparison = result.comparison
        out["holdout"] = {
            "end": result.card.data.holdout_end,
            "length": comparison.length,
            "actual_total": comparison.actual_total,
            "predicted_total": comparison.predicted_total,
            "buckets": [vars(bucket) for bucket in comparison.buckets],
        }
    return out


def write_scores(result: CustomerValueFit, out: TextIO) -> None:
    summary, table = result.summary, result.scores
    ranks = table.percentiles()
    names = list(table.columns)
    writer = csv.writer(out)
    writer.writerow(
        ["customer_id", "frequency", "recency", "T", "monetary_value", *names, *(f"{n}_percentile" for n in names)]
    )
    for i, person in enumerate(summary.ids):
        writer.writerow(
            [
                person,
                int(summary.frequency[i]),
                _num(summary.recency[i]),
                _num(summary.T[i]),
                _num(summary.monetary[i]),
                *(_num(table.columns[n][i]) for n in names),
                *(int(ranks[n][i]) for n in names),
            ]
        )


def read_orders(handle: TextIO) -> Transactions:
    """The orders of a CSV; every bad row is reported (the first few, with line numbers)."""
    from midstage.logic.predictions.summary import Transactions

    reader = csv_reader(handle, REQUIRED)
    ids: list[str] = []
    days: list[int] = []
    amounts: list[float] = []
    currencies: set[str] = set()
    errors: list[str] = []
    for line, row in numbered_rows(reader):
        try:
            customer = (row.get("customer_id") or "").strip()
            if not customer:
                raise BadInput("customer_id is empty")
            day = _parse_day((row.get("date") or "").strip(), "date")
            amount = parse_amount((row.get("amount") or "").strip())
        except BadInput as error:
            errors.append(f"line {line}: {error}")
            continue
        if row.get("currency"):
            currencies.add(row["currency"].strip().upper())
        ids.append(customer)
        days.append(_day(day))
        amounts.append(amount)
    refuse_bad_rows(errors)
    if len(currencies) > 1:
        raise BadInput(f"amounts in several currencies ({', '.join(sorted(currencies))}): convert them to one first")
    if not ids:
        raise BadInput("the CSV has no orders")
    return Transactions.from_columns(ids, days, amounts)


def csv_reader(handle: TextIO, required: tuple[str, ...]) -> csv.DictReader[str]:
    """A reader over a CSV whose header (trimmed) has the `required` columns."""
    reader = csv.DictReader(handle)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        raise BadInput(f"the CSV needs the columns {', '.join(required)}; missing: {', '.join(missing)}")
    reader.fieldnames = header
    return reader


def numbered_rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Each row with the line it ends on (a quoted field may span lines)."""
    for row in reader:
        yield reader.line_num, row


def refuse_bad_rows(errors: list[str]) -> None:
    """Every bad row is reported together: the first MAX_ERRORS_SHOWN, and how many more."""
    if errors:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise BadInput(f"{len(errors)} bad row(s):\n  {shown}{more}")


def _parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise BadInput(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def parse_amount(text: str) -> float:
    try:
        amount = float(text)
    except ValueError:
        raise BadInput(f"amount {text!r} is not a number") from None
    if not math.isfinite(amount):
        raise BadInput(f"amount {text!r} is not a finite number")
    return amount


def _day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _num(value: float) -> str:
    return f"{float(value):.6g}"


def open_csv(path: Path) -> TextIO:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror}") from None
