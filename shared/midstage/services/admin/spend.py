"""Ad and channel spend: cost lines into the analytics archive, for the ROI report.

A line is (date, channel, campaign, amount, currency); its record id is derived from the date,
channel, campaign and currency, so importing a corrected file again replaces the lines it
repeats: the ROI report counts the newest archived copy of each. One bad line is reported by
its place and sinks nothing else.
"""

from __future__ import annotations

import hashlib
from typing import Any

from midstage.clock import Clock
from midstage.errors import IssuesError, Unavailable
from midstage.logic.archive.spend import SPEND_COLUMNS, SpendProblem, parse_spend_csv, spend_rows
from midstage.models.requests import SpendImport
from midstage.services.ports import ArchiveSink


class SpendAdmin:
    def __init__(self, archive: ArchiveSink | None, *, clock: Clock) -> None:
        self.archive = archive
        self.clock = clock

    def import_spend(self, body: SpendImport) -> dict[str, Any]:
        if self.archive is None:
            raise Unavailable(
                "spend goes into the analytics archive, and this deployment has none (ARCHIVE_STREAM is unset)",
                code="analytics_not_configured",
            )
        raw = body.data if body.data is not None else "\n".join(str(line) for line in body.lines or [])
        import_id = "spend_" + hashlib.sha256(raw.encode()).hexdigest()[:24]
        now = self.clock()
        if body.data is not None:
            records, problems = parse_spend_csv(body.data, archived_at=now, source_id=import_id)
        else:
            rows = ((number, line.model_dump()) for number, line in enumerate(body.lines or [], start=1))
            records, problems = spend_rows(rows, archived_at=now, source_id=import_id)
        if not records:
            raise IssuesError(
                f"no spend line could be read (each needs {', '.join(SPEND_COLUMNS)})",
                [_issue(p, body.data is not None) for p in problems],
                code="invalid_spend",
            )
        self.archive.put(records)
        return {
            "import_id": import_id,
            "accepted": len(records),
            "rejected": [_issue(p, body.data is not None) for p in problems],
        }


def _issue(problem: SpendProblem, csv: bool) -> dict[str, Any]:
    return {"location": f"line {problem.line}" if csv else f"lines[{problem.line - 1}]", "message": problem.message}
