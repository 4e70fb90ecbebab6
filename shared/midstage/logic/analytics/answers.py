# ruff: noqa: S608 -- these modules build SQL by design; every value enters through sql.text() or as a number
"""From an engine's rows to a report's answer: derived figures (rates, CPC, ROAS, changes against
the previous period) and what every answer carries: its data's freshness and the bytes scanned."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from midstage.logic.analytics.reports import Query
from midstage.logic.analytics.sql import source
from midstage.logic.timefmt import iso


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    bytes_scanned: int
    engine: str  # duckdb | athena
    query_id: str | None = None  # Athena's QueryExecutionId

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass
class Answer:
    report: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    freshness: dict[str, str | None] = field(default_factory=dict)
    bytes_scanned: int = 0
    engine: str = ""

    def to_body(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "rows": self.rows,
            "summary": self.summary,
            "freshness": self.freshness,
            "bytes_scanned": self.bytes_scanned,
            "engine": self.engine,
        }


def freshness_query(query: Query) -> Query:
    """The newest record the report could see: when it happened and when it was archived."""
    sql = (
        "SELECT MAX(occurred_at) AS data_until, MAX(archived_at) AS archived_until "
        f"FROM ({source(query.kinds, query.start, query.end, columns='occurred_at, archived_at')}) f"
    )
    return Query("freshness", sql, query.kinds, query.start, query.end)


def _ratio(numerator: float | int | None, denominator: float | int | None) -> float | None:
    if not denominator or numerator is None:
        return None
    return float(numerator) / float(denominator)


def _number(value: Any) -> Any:
    # Athena answers in text and DuckDB in Decimals for some sums: one type per figure here.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return value
    return int(as_float) if as_float.is_integer() and not isinstance(value, float) else as_float


def answer(query: Query, result: QueryResult, fresh: QueryResult, now: datetime) -> Answer:
    rows = [{k: _number(v) for k, v in row.items()} for row in result.records()]
    stamps = fresh.records()[0] if fresh.rows else {}
    freshness = {
        "data_until": _stamp(stamps.get("data_until")),
        "archived_until": _stamp(stamps.get("archived_until")),
        "as_of": iso(now),
    }
    shaped = _SHAPERS.get(query.report)
    summary = shaped(rows) if shaped else {}
    return Answer(
        report=query.report,
        rows=rows,
        summary=summary,
        freshness=freshness,
        bytes_scanned=result.bytes_scanned + fresh.bytes_scanned,
        engine=result.engine,
    )


def _stamp(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _funnel(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["breakdown"]), []).append(row)
    out: dict[str, Any] = {}
    for breakdown, steps in groups.items():
        steps.sort(key=lambda r: r["step"])
        entered = steps[0]["people"] if steps and steps[0]["step"] == 1 else 0
        listed = []
        previous = entered
        for row in steps:
            listed.append(
                {
                    "step": row["step"],
                    "people": row["people"],
                    "conversion": _ratio(row["people"], entered),
                    "step_conversion": _ratio(row["people"], previous),
                    "median_seconds": None if row["median_ms"] is None else float(row["median_ms"]) / 1000,
                }
            )
            previous = row["people"]
        out[breakdown] = listed
    return {"breakdowns": out}


_RATES = (
    ("delivery_rate", "delivered", "sent"),
    ("open_rate", "opened", "delivered"),
    ("click_rate", "clicked", "delivered"),
)


def _review(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_period = {row["period"]: dict(row) for row in rows}
    for row in by_period.values():
        row["aov"] = _ratio(row.get("revenue"), row.get("orders"))
        for name, numerator, denominator in _RATES:
            row[name] = _ratio(row.get(numerator), row.get(denominator))
        row["unsubscribe_rate"] = _ratio(row.get("unsubscribed"), row.get("delivered"))
    current, previous = by_period.get("current", {}), by_period.get("previous", {})
    change = {}
    for key, value in current.items():
        before = previous.get(key)
        if isinstance(value, int | float) and isinstance(before, int | float) and key not in {"period"}:
            change[key] = {"delta": value - before, "relative": _ratio(value - before, before)}
    return {"current": current, "previous": previous, "change": change}


def _roi(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table = []
    for row in rows:
        cost = row.get("cost") or 0
        table.append(
            {
                **row,
                "cpc": _ratio(cost, row.get("clicks")),
                "cpa": _ratio(cost, row.get("conversions")),
                "roas": _ratio(row.get("revenue"), cost),
                "roi": _ratio((row.get("revenue") or 0) - cost, cost),
                "incremental_roas": _ratio(row.get("incremental_revenue"), cost),
            }
        )
    return {"table": table}


_SHAPERS = {"funnel": _funnel, "review": _review, "roi": _roi}
