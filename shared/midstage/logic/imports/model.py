"""What an import is made of: its formats and limits, the report it answers with, the job it runs
under, and the shapes of text it accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from midstage.config import IdentitySettings
from midstage.errors import ImportRefused as ImportRefused
from midstage.logic import internal_events
from midstage.logic.csvfile import BARE as BARE
from midstage.logic.csvfile import CONTROL as CONTROL
from midstage.logic.csvfile import MAX_TEXT_BYTES as MAX_TEXT_BYTES
from midstage.logic.csvfile import QUOTED as QUOTED
from midstage.logic.csvfile import SNIFF_CHARACTERS as SNIFF_CHARACTERS
from midstage.logic.timefmt import iso
from midstage.models.segments import SEGMENT_ID

ImportFormat = Literal["csv", "pinpoint-json", "pinpoint-csv"]

MAX_ROWS = 100_000
MAX_COLUMNS = 64
MAX_CELL_BYTES = 4 * 1024
MAX_LISTED_REJECTIONS = 100
MAX_IDENTIFIER_BYTES = 512  # as collect and OneID: identifiers live in DynamoDB keys
DEVICE_REGISTERED = "Device Registered"

TRAIT = re.compile(r"[A-Za-z0-9_$-][A-Za-z0-9_$.-]{0,63}")
NOT_TRAIT_CHARACTER = re.compile(r"[^A-Za-z0-9_$.-]")
_SEGMENT_ID = re.compile(SEGMENT_ID)
IDENTIFIER_COLUMNS = {
    "user_id": "userId",
    "userid": "userId",
    "email": "email",
    "phone": "phone",
    "anonymous_id": "anonymousId",
    "anonymousid": "anonymousId",
}
LEADING_SPACE = re.compile(r"\s*")
PUSH_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
DIGITS_ONLY = re.compile(r"[0-9]{7,15}")
PHONE_NOISE = re.compile(r"[\s().\-/]")
LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")


@dataclass
class ImportReport:
    """What an import produced: the events to queue, and the rows that could not be used."""

    accepted: int = 0  # rows (CSV) or endpoints (Pinpoint) used
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_LISTED_REJECTIONS
    rejected_total: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    people: int = 0
    # Each person's key (the strongest identifier, as OneID ranks them): who is the same person
    # across imports, so a file cut into several counts each person once (pinpoint-import).
    person_keys: list[tuple[str, str]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_LISTED_REJECTIONS:
            self.rejected.append({"line": line, "reason": reason})

    def summary(self) -> dict[str, Any]:
        """The report without its events, as the admin API shows it."""
        return {
            "accepted": self.accepted,
            "rejected": list(self.rejected),
            "rejected_total": self.rejected_total,
            "people": self.people,
            "events": len(self.events),
        }


class RowProblem(Exception):
    """One row cannot be used; the message says why, for the report."""


@dataclass(frozen=True)
class Job:
    segment_id: str
    import_id: str
    now: datetime
    identity: IdentitySettings

    @property
    def timestamp(self) -> str:
        return iso(self.now)

    def message_id(self, line: int, kind: str) -> str:
        return internal_events.internal_id(self.import_id, str(line), kind)


def new_job(segment_id: str, import_id: str, now: datetime, identity: IdentitySettings | None) -> Job:
    if not isinstance(segment_id, str) or not _SEGMENT_ID.match(segment_id):
        raise ValueError(f"not a segment id: {segment_id!r}")
    if not isinstance(import_id, str) or not import_id:
        raise ValueError("import_id is a non-empty string")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return Job(segment_id, import_id, now, identity or IdentitySettings())
