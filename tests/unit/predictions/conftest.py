"""The CDNOW sample (tests/fixtures/cdnow/README.md) as the models read it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

from midstage.logic.predictions.summary import Summary, Transactions, day_number, from_statistics

CDNOW = Path(__file__).resolve().parents[2] / "fixtures" / "cdnow"
CALIBRATION_END = date(1997, 9, 30)
DATA_END = date(1998, 6, 30)


def cdnow_rows() -> list[tuple[str, date, float]]:
    """(sample customer id, order date, dollar value), one per line of CDNOW_sample.txt."""
    rows = []
    for line in (CDNOW / "CDNOW_sample.txt").read_text().splitlines():
        _, customer, day, _, amount = line.split()
        rows.append((customer, date(int(day[:4]), int(day[4:6]), int(day[6:])), float(amount)))
    return rows


def write_cdnow_csv(path: Path) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "date", "amount"])
        for customer, day, amount in cdnow_rows():
            writer.writerow([customer, day.isoformat(), f"{amount:.2f}"])
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread() -> Iterator[None]:
    """The fits make many small matrix-vector products; on a busy two-core machine OpenBLAS's
    threads fight over the cores and make each one an order of magnitude slower (measured: a
    propensity fit on 5,000 people, 1.6 s against 0.12 s). One thread is the fast case."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def cdnow_orders() -> Transactions:
    rows = cdnow_rows()
    return Transactions.from_columns([r[0] for r in rows], [day_number(r[1]) for r in rows], [r[2] for r in rows])


@pytest.fixture(scope="session")
def cdnow_published_summary() -> Summary:
    """The summary the paper's authors published (t_x and T rounded to 0.01 week), with zbar."""
    with (CDNOW / "cdnow_customers_summary_with_transactions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return from_statistics(
        [float(r["x"]) for r in rows],
        [float(r["t_x"]) for r in rows],
        [float(r["T"]) for r in rows],
        [float(r["zbar"]) for r in rows],
        ids=tuple(r["ID"] for r in rows),
    )
