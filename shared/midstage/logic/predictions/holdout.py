"""How well a purchase model did on a holdout period: Fader, Hardie and Lee (2005) figure 4.

Customers are grouped by their number of repeat transactions in the calibration period (0, 1,
..., `top`+); for each group the mean number of transactions they actually made in the holdout
period is set beside the mean the model expected, E[Y(t*) | x, t_x, T] with t* the length of
the holdout period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midstage.logic.predictions.bgnbd import BgNbd
from midstage.logic.predictions.summary import Summary


@dataclass(frozen=True)
class Bucket:
    frequency: str  # "0", "1", ..., "7+"
    customers: int
    actual: float  # mean holdout transactions per customer
    predicted: float  # mean expected holdout transactions per customer


@dataclass(frozen=True)
class HoldoutComparison:
    length: float  # of the holdout period, in the summary's unit
    buckets: tuple[Bucket, ...]
    actual_total: float
    predicted_total: float

    @property
    def mean_absolute_error(self) -> float:
        """Per-customer-weighted mean |predicted - actual| over the buckets."""
        customers = sum(b.customers for b in self.buckets)
        if not customers:
            return 0.0
        return sum(b.customers * abs(b.predicted - b.actual) for b in self.buckets) / customers


def compare(model: BgNbd, summary: Summary, *, top: int = 7) -> HoldoutComparison:
    length = summary.holdout_length
    if length <= 0:
        raise ValueError("the summary has no holdout period")
    predicted = model.expected_purchases(summary, length)
    actual = summary.holdout_frequency
    bucket_of = np.minimum(summary.frequency, top).astype(np.int64)
    buckets = []
    for k in range(top + 1):
        members = bucket_of == k
        n = int(members.sum())
        buckets.append(
            Bucket(
                frequency=f"{k}+" if k == top else str(k),
                customers=n,
                actual=float(actual[members].mean()) if n else 0.0,
                predicted=float(predicted[members].mean()) if n else 0.0,
            )
        )
    return HoldoutComparison(length, tuple(buckets), float(actual.sum()), float(predicted.sum()))
