"""Orders -> the sufficient statistics of the buy-till-you-die models, one row per customer.

A customer's history is reduced to (x, t_x, T) and the mean value of the repeat transactions:
x repeat transactions after the first one, the last of them t_x after the first, and T from the
first to the end of the calibration period, in the chosen time unit. Orders placed on the same
day are one transaction (their amounts added), as in Fader, Hardie and Lee (2005), whose CDNOW
data counts days. Only customers whose first transaction falls in the calibration period are
summarised: the models describe a cohort that has already bought once.

Days are whole days since 1970-01-01 (UTC); the callers turn dates into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EPOCH = date(1970, 1, 1)
UNITS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}


def day_number(day: date) -> int:
    return (day - EPOCH).days


@dataclass(frozen=True)
class Transactions:
    """Orders as columns: `customer[i]` indexes `ids`; one row per order."""

    ids: tuple[str, ...]
    customer: IntArray
    day: IntArray
    amount: FloatArray

    def __post_init__(self) -> None:
        n = len(self.customer)
        if len(self.day) != n or len(self.amount) != n:
            raise ValueError("customer, day and amount must have the same length")

    @classmethod
    def from_columns(cls, customer_ids: list[str], days: list[int], amounts: list[float]) -> Transactions:
        ids, codes = np.unique(np.asarray(customer_ids, dtype=object).astype(str), return_inverse=True)
        return cls(
            ids=tuple(str(i) for i in ids),
            customer=codes.astype(np.int64),
            day=np.asarray(days, dtype=np.int64),
            amount=np.asarray(amounts, dtype=np.float64),
        )

    @property
    def last_day(self) -> int:
        return int(self.day.max()) if len(self.day) else 0

    def without(self, excluded: set[str]) -> Transactions:
        """The same orders without some customers (erased people leave the training data)."""
        if not excluded:
            return self
        drop = np.array([i in excluded for i in self.ids], dtype=bool)
        keep = ~drop[self.customer]
        return Transactions(self.ids, self.customer[keep], self.day[keep], self.amount[keep])


@dataclass(frozen=True)
class Summary:
    """Per customer, in the time unit `unit_days`: calibration statistics and the holdout count."""

    ids: tuple[str, ...]
    frequency: FloatArray  # x: repeat transactions in the calibration period
    recency: FloatArray  # t_x: first to last transaction (0 when x = 0)
    T: FloatArray  # first transaction to the end of the calibration period
    monetary: FloatArray  # mean value of the repeat transactions (0 when x = 0)
    first_value: FloatArray  # the value of the first transaction
    holdout_frequency: FloatArray  # transactions after the calibration period, up to holdout_end
    holdout_monetary: FloatArray  # their mean value (0 when there are none)
    calibration_end: int  # day number, inclusive
    holdout_end: int  # day number, inclusive; == calibration_end when there is no holdout
    unit_days: float
    transactions: int  # calibration transactions summarised (after same-day orders were joined)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def holdout_length(self) -> float:
        return (self.holdout_end - self.calibration_end) / self.unit_days

    def take(self, mask: npt.NDArray[np.bool_]) -> Summary:
        kept = np.flatnonzero(mask)
        return Summary(
            ids=tuple(self.ids[i] for i in kept),
            frequency=self.frequency[kept],
            recency=self.recency[kept],
            T=self.T[kept],
            monetary=self.monetary[kept],
            first_value=self.first_value[kept],
            holdout_frequency=self.holdout_frequency[kept],
            holdout_monetary=self.holdout_monetary[kept],
            calibration_end=self.calibration_end,
            holdout_end=self.holdout_end,
            unit_days=self.unit_days,
            transactions=int(self.frequency[kept].sum() + len(kept)),
        )


def summarise(
    orders: Transactions, calibration_end: int, *, unit_days: float = 7.0, holdout_end: int | None = None
) -> Summary:
    """Summarise `orders` with the calibration period ending on day `calibration_end` (inclusive)
    and the holdout period running to `holdout_end` (inclusive; default: no holdout)."""
    if unit_days <= 0:
        raise ValueError("unit_days must be positive")
    end = calibration_end if holdout_end is None else holdout_end
    if end < calibration_end:
        raise ValueError("the holdout period cannot end before the calibration period")
    if len(orders.amount) and not np.all(np.isfinite(orders.amount)):
        raise ValueError("order amounts must be finite numbers")

    in_window = orders.day <= end
    customer, day, amount = orders.customer[in_window], orders.day[in_window], orders.amount[in_window]
    # One transaction per customer and day: sort by (customer, day) and add up runs.
    order = np.lexsort((day, customer))
    customer, day, amount = customer[order], day[order], amount[order]
    starts = np.ones(len(customer), dtype=bool)
    starts[1:] = (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])
    first_rows = np.flatnonzero(starts)
    t_customer, t_day = customer[first_rows], day[first_rows]
    t_amount = np.add.reduceat(amount, first_rows) if len(first_rows) else np.zeros(0)

    # Per customer, over their transactions (still sorted by customer, then day).
    n_customers = len(orders.ids)
    seen = np.zeros(n_customers, dtype=bool)
    seen[t_customer] = True
    first_day = np.full(n_customers, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_day, t_customer, t_day)
    in_cohort = seen & (first_day <= calibration_end)

    calibration = t_day <= calibration_end
    cal_customer = t_customer[calibration]
    count = np.bincount(cal_customer, minlength=n_customers).astype(np.float64)
    total = np.bincount(cal_customer, weights=t_amount[calibration], minlength=n_customers)
    last_day = np.zeros(n_customers, dtype=np.int64)
    np.maximum.at(last_day, cal_customer, t_day[calibration])
    first_value = np.zeros(n_customers)
    is_first = np.ones(len(t_customer), dtype=bool)
    is_first[1:] = t_customer[1:] != t_customer[:-1]
    first_value[t_customer[is_first]] = t_amount[is_first]

    holdout = ~calibration
    h_count = np.bincount(t_customer[holdout], minlength=n_customers).astype(np.float64)
    h_total = np.bincount(t_customer[holdout], weights=t_amount[holdout], minlength=n_customers)

    kept = np.flatnonzero(in_cohort)
    x = count[kept] - 1.0
    repeat_total = total[kept] - first_value[kept]
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(x > 0, repeat_total / np.maximum(x, 1.0), 0.0)
        holdout_monetary = np.where(h_count[kept] > 0, h_total[kept] / np.maximum(h_count[kept], 1.0), 0.0)
    return Summary(
        ids=tuple(orders.ids[i] for i in kept),
        frequency=x,
        recency=(last_day[kept] - first_day[kept]) / unit_days,
        T=(calibration_end - first_day[kept]) / unit_days,
        monetary=monetary,
        first_value=first_value[kept],
        holdout_frequency=h_count[kept],
        holdout_monetary=holdout_monetary,
        calibration_end=calibration_end,
        holdout_end=end,
        unit_days=unit_days,
        transactions=int(count[kept].sum()),
    )


def from_statistics(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    monetary: npt.ArrayLike | None = None,
    *,
    ids: tuple[str, ...] | None = None,
    unit_days: float = 7.0,
) -> Summary:
    """A summary from statistics already computed elsewhere (for example a published data set)."""
    x = np.asarray(frequency, dtype=np.float64)
    n = len(x)
    zeros = np.zeros(n)
    return Summary(
        ids=ids if ids is not None else tuple(str(i) for i in range(1, n + 1)),
        frequency=x,
        recency=np.asarray(recency, dtype=np.float64),
        T=np.asarray(T, dtype=np.float64),
        monetary=zeros if monetary is None else np.asarray(monetary, dtype=np.float64),
        first_value=zeros,
        holdout_frequency=zeros,
        holdout_monetary=zeros,
        calibration_end=0,
        holdout_end=0,
        unit_days=unit_days,
        transactions=int(x.sum() + n),
    )
