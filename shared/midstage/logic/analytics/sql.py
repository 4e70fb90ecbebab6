# ruff: noqa: S608 -- these modules build SQL by design; every value enters through sql.text() or as a number
"""SQL pieces every report shares, written once in DuckDB's dialect and kept to the subset that
sqlglot translates to Trino (Athena engine 3) without loss.

Rules the builders follow so both engines give the same numbers:
- the archive is one relation named `archive` with the partition columns `kind` and `dt` (text);
  every read names its kinds and a `dt` range, so Athena prunes partitions and DuckDB skips files;
- times are compared as integer epoch milliseconds (`ts`), never with engine-specific intervals;
- medians are computed exactly with row numbers (Trino has only an approximate percentile);
- values reach the SQL as literals quoted here, after the request model validated them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

DAY_MS = 86_400_000


def text(value: str) -> str:
    """A string literal."""
    return "'" + value.replace("'", "''") + "'"


def texts(values: Iterable[str]) -> str:
    return ", ".join(text(v) for v in values)


def number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def epoch_ms(day: date) -> int:
    """Midnight UTC of a day, in epoch milliseconds."""
    return (day - date(1970, 1, 1)).days * DAY_MS


def ts(column: str = "occurred_at") -> str:
    """Epoch milliseconds of a timestamp column, the same number on both engines."""
    return f"CAST(ROUND(epoch({column}) * 1000) AS BIGINT)"


def source(kinds: Iterable[str], start: date, end: date, *, columns: str = "*") -> str:
    """The archive's rows of `kinds` whose partition day is in [start, end]."""
    listed = sorted(set(kinds))
    return (
        f"SELECT {columns} FROM archive WHERE kind IN ({texts(listed)}) "
        f"AND dt BETWEEN {text(start.isoformat())} AND {text(end.isoformat())}"
    )


def within(start: date, end: date) -> str:
    """Rows that happened on the days [start, end] (the partition day is the UTC day too)."""
    return f"{ts()} >= {epoch_ms(start)} AND {ts()} < {epoch_ms(end + timedelta(days=1))}"


def prop(name: str, column: str = "properties") -> str:
    """A property's value as text (null when absent). Names are validated to [A-Za-z0-9_$.-]."""
    return f"json_extract_string({column}, {text('$.' + name)})"


def period_start(unit: str, column: str = "occurred_at") -> str:
    """The day the period (day, week from Monday, month) of a timestamp starts, as YYYY-MM-DD."""
    return f"strftime(date_trunc({text(unit)}, {column}), '%Y-%m-%d')"


def exact_median(value: str, partition: str) -> tuple[str, str]:
    """Columns to select (row number and count) and the aggregate that averages the middle one
    or two: together an exact median on both engines."""
    over = f"OVER (PARTITION BY {partition} ORDER BY {value})" if partition else f"OVER (ORDER BY {value})"
    count_over = f"OVER (PARTITION BY {partition})" if partition else "OVER ()"
    columns = f"ROW_NUMBER() {over} AS _rn, COUNT(*) {count_over} AS _n"
    aggregate = f"AVG(CASE WHEN _rn BETWEEN _n / 2.0 AND _n / 2.0 + 1 THEN {value} END)"
    return columns, aggregate
