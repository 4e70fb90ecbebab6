"""`python -m midstage.cli predict fit` on a CSV built from CDNOW's transaction file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from midstage.cli import main
from tests.unit.predictions.conftest import write_cdnow_csv

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "v": 15.44}


def test_predict_fit_prints_the_cdnow_parameters_and_writes_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given CDNOW's orders as customer_id,date,amount
    orders = write_cdnow_csv(tmp_path / "orders.csv")
    scores = tmp_path / "scores.csv"
    card = tmp_path / "card.json"
    # When the command fits them with the paper's calibration end, in weeks
    code = main(
        [
            "predict",
            "fit",
            "--transactions",
            str(orders),
            "--calibration-end",
            "1997-09-30",
            "--unit",
            "week",
            "--scores",
            str(scores),
            "--card",
            str(card),
        ]
    )
    # Then it prints the JSON with the published parameters (within 1 %)
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(printed["gamma_gamma"]) == {"p", "q", "v"}
    assert printed["customers"] == 2357
    for name in ("r", "alpha", "a", "b"):
        assert printed["bgnbd"][name] == pytest.approx(PUBLISHED[name], rel=0.01)
    for name in ("p", "q", "v"):
        assert printed["gamma_gamma"][name] == pytest.approx(PUBLISHED[name], rel=0.01)
    assert printed["bgnbd"]["log_likelihood"] == pytest.approx(-9582.43, abs=0.05)
    # And the holdout period (the orders after the calibration end) is compared per frequency
    assert printed["holdout"]["length"] == pytest.approx(39.0)
    assert sum(b["customers"] for b in printed["holdout"]["buckets"]) == 2357
    # And one row of scores per customer, customer 1 with the paper's figures
    with scores.open() as handle:
        rows = {row["customer_id"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 2357
    one = rows["0001"]
    assert (one["frequency"], float(one["recency"]), float(one["T"])) == (
        "2",
        pytest.approx(30.43, abs=0.01),
        pytest.approx(38.86, abs=0.01),
    )
    assert float(one["p_alive"]) == pytest.approx(0.7266, abs=1e-4)
    assert float(one["p_purchase_30d"]) == pytest.approx(0.1387, abs=1e-4)
    assert float(one["clv_12m"]) > 0 and 0 <= int(one["clv_12m_percentile"]) <= 100
    # And the model card was written, with the same parameters
    written = json.loads(card.read_text())
    assert written["parameters"]["bgnbd"]["r"] == printed["bgnbd"]["r"]


def test_the_command_runs_as_a_module(tmp_path: Path) -> None:
    orders = write_cdnow_csv(tmp_path / "orders.csv")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "midstage.cli",
            "predict",
            "fit",
            "--transactions",
            str(orders),
            "--calibration-end",
            "1997-09-30",
            "--unit",
            "week",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["customers"] == 2357


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("customer,date,amount\na,2026-01-01,1\n", "missing: customer_id"),
        ("customer_id,date,amount\na,2026-01-01,1\nb,01/02/2026,2\nc,2026-01-02,x\n", "line 3: date '01/02/2026'"),
        ("customer_id,date,amount\na,2026-01-01,1\nb,2026-01-02,x\n", "line 3: amount 'x' is not a number"),
        ("customer_id,date,amount\na,2026-01-01,nan\n", "not a finite number"),
        ("customer_id,date,amount,currency\na,2026-01-01,1,EUR\nb,2026-01-02,2,USD\n", "several currencies"),
        ("customer_id,date,amount\n", "no orders"),
        ("customer_id,date,amount\na,2027-01-01,1\n", "no order on or before the calibration end"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(content)
    code = main(["predict", "fit", "--transactions", str(path), "--calibration-end", "2026-06-30"])
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_a_missing_file_and_a_bad_date_argument_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["predict", "fit", "--transactions", str(tmp_path / "none.csv"), "--calibration-end", "2026-06-30"]) == 2
    )
    assert "cannot read" in capsys.readouterr().err
    orders = write_cdnow_csv(tmp_path / "orders.csv")
    assert main(["predict", "fit", "--transactions", str(orders), "--calibration-end", "30/09/1997"]) == 2
    assert "--calibration-end '30/09/1997' is not a date" in capsys.readouterr().err


def test_orders_that_cannot_identify_the_model_exit_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,date,amount\na,2026-01-01,10\nb,2026-01-02,20\n")
    assert main(["predict", "fit", "--transactions", str(path), "--calibration-end", "2026-06-30"]) == 1
    assert "no customer has a repeat purchase" in capsys.readouterr().err
