"""The weekly refit's whole run over an archive: read, fit, recommend, hand off.

The refit service's unit-test shop (tests/unit/predictions/test_refit_service.py: regulars and
lapsed customers buying every one to five weeks for a year and a half, each order naming
products) at 2,000 and 20,000 customers, written as the archive's Parquet files (not timed) and
read by embedded DuckDB, as the local cloud reads it. Timed: the two archive queries and the
histories built from their rows ("read"), then the rest of `services.predictions.refit` (the
back-test and the fits, scoring, the item model, each person's recommendations and identify)
into in-memory cards, suppressions and ingest queue. Wall seconds, one BLAS thread, once each
(the machine is shared); the process's peak memory after each case.

What this leaves out on AWS: Athena's time and the GetQueryResults pages the rows come back in
(a thousand rows a page), and the SQS calls of the hand-off.
"""

from __future__ import annotations

import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from midstage.adapters.archive_engines import LocalArchive
from midstage.logic.analytics.answers import QueryResult
from midstage.logic.analytics.reports import Query
from midstage.services.predictions import refit
from tests.unit.predictions.test_refit_service import AS_OF, MemoryCards, MemoryEvents, MemorySuppressions, shop_records


class TimedEngine:
    """The archive engine, with the time its queries take and the rows they answer."""

    dialect = "duckdb"

    def __init__(self, engine: LocalArchive) -> None:
        self.engine = engine
        self.seconds = 0.0
        self.rows = 0

    def run(self, query: Query) -> QueryResult:
        started = time.perf_counter()
        result = self.engine.run(query)
        self.seconds += time.perf_counter() - started
        self.rows += len(result.rows)
        return result


def case(customers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        archive = LocalArchive(Path(folder), threads=1)
        records = shop_records(customers // 2)
        archive.write(records, "bench")
        engine = TimedEngine(archive)
        events = MemoryEvents()
        started = time.perf_counter()
        summary = refit(engine, MemorySuppressions(()), MemoryCards(), events, now=AS_OF)
        total = time.perf_counter() - started
        archive.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rest = total - engine.seconds
    print(
        f"   {customers:>7,} customers  {len(records):>9,} archived orders  read {engine.seconds:6.2f} s"
        f" ({engine.rows:,} rows)  fit, score, recommend, hand off {rest:6.2f} s  whole {total:6.2f} s"
        f"  {summary.scored / total:>8,.0f} people/s  peak {peak_mb:,.0f} MB  cards {', '.join(summary.cards)}"
    )
    _ = events


def main(sizes: tuple[int, ...] = (2_000, 20_000)) -> Any:
    print(f"   {datetime.now(UTC).date()}  wall seconds, one BLAS thread, DuckDB on one thread")
    with threadpool_limits(limits=1, user_api="blas"):
        for customers in sizes:
            case(customers)


if __name__ == "__main__":
    main()
