"""Spend lines (date, channel, campaign, amount, currency) from CSV text or API rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from midstage.errors import ImportRefused, describe
from midstage.logic.archive.records import record_id
from midstage.logic.csvfile import prepare, read_records
from midstage.models.archive import SpendRecord

SPEND_COLUMNS = ("date", "channel", "campaign", "amount", "currency")
MAX_SPEND_ROWS = 100_000


@dataclass(frozen=True)
class SpendProblem:
    line: int  # 1-based, the header being line 1 in CSV
    message: str


def parse_spend_csv(
    text: str, *, archived_at: datetime, source_id: str
) -> tuple[list[SpendRecord], list[SpendProblem]]:
    try:
        records_read = read_records(prepare(text))  # RFC 4180, any line ends
    except ImportRefused as refused:  # not text, empty, too large
        return [], [SpendProblem(1, str(refused))]
    header = next(records_read, None)
    names = [cell.strip() for cell in header[1]] if header is not None and not header[2] else []
    missing = [c for c in SPEND_COLUMNS if c not in names and c != "campaign"]
    if missing:
        return [], [SpendProblem(1, f"the header needs the columns {', '.join(SPEND_COLUMNS)}; missing {missing}")]
    problems: list[SpendProblem] = []
    readable: list[tuple[int, dict[str, str]]] = []
    for line, cells, problem in records_read:
        if problem:
            problems.append(SpendProblem(line, problem))
        else:
            readable.append((line, dict(zip(names, cells, strict=False))))
    records, more = spend_rows(readable, archived_at=archived_at, source_id=source_id)
    return records, sorted(problems + more, key=lambda p: p.line)


def spend_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]], *, archived_at: datetime, source_id: str
) -> tuple[list[SpendRecord], list[SpendProblem]]:
    """Good rows become records, each bad one a problem with its line: one bad line sinks nothing else.
    A line's id is (date, channel, campaign, currency): importing a corrected file replaces it."""
    records: list[SpendRecord] = []
    problems: list[SpendProblem] = []
    for count, (line, row) in enumerate(rows):
        if count >= MAX_SPEND_ROWS:
            problems.append(SpendProblem(line, f"more than {MAX_SPEND_ROWS} rows; split the import"))
            break
        try:
            day = date.fromisoformat(str(row.get("date", "")).strip())
            amount = Decimal(str(row.get("amount", "")).strip())
            if not amount.is_finite():
                raise InvalidOperation
        except ValueError:
            problems.append(SpendProblem(line, f"date {str(row.get('date'))[:40]!r} is not YYYY-MM-DD"))
            continue
        except InvalidOperation:
            problems.append(SpendProblem(line, f"amount {str(row.get('amount'))[:40]!r} is not a number"))
            continue
        channel = str(row.get("channel") or "").strip()
        campaign = str(row.get("campaign") or "").strip() or None
        currency = str(row.get("currency") or "").strip().upper()
        try:
            records.append(
                SpendRecord(
                    record_id=record_id("spend", day.isoformat(), channel, campaign or "", currency),
                    occurred_at=datetime.combine(day, time(0), tzinfo=UTC),
                    archived_at=archived_at,
                    channel=channel,
                    campaign=campaign,
                    amount=float(amount),
                    currency=currency,
                    source_id=source_id,
                )
            )
        except ValidationError as error:
            problems.append(SpendProblem(line, describe(error, "row")))
    return records, problems
