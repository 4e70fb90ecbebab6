"""Privacy requests (Segment's Regulations shape): what a request's subjects are once normalised,
the salted hash a suppression keeps instead of an identifier, what makes two requests the same,
when a request is due, and what an export bundle's manifest says.

Pure: the salt, the time and the stores' answers are all arguments.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from midstage.logic.identity import Identifier, normalise_email, normalise_phone

MAX_SUBJECTS = 5000
MAX_SUBJECT_CHARS = 512  # identifiers are kept well below DynamoDB's 2,048-byte key (logic/identity.py)

REGULATION_TYPES = ("SUPPRESS_ONLY", "UNSUPPRESS", "SUPPRESS_WITH_DELETE", "DELETE_ONLY", "EXPORT")
# Segment's types that Midstage does not do (its DELETE_ONLY reaches every store, the archive
# included, so a deletion of only some stores is not offered): refused, never pretended.
NOT_SUPPORTED_YET = frozenset({"DELETE_INTERNAL", "DELETE_ARCHIVE_ONLY"})
SUBJECT_TYPES = ("USER_ID", "ANONYMOUS_ID", "EMAIL", "PHONE", "PROFILE_ID")
STATUSES = ("INITIALIZED", "RUNNING", "FINISHED", "FAILED")
JURISDICTIONS = ("GDPR", "CCPA", "PIPL")

# A subject type and the OneID identifier type it names ("profile_id" is not an identity: the
# profile itself).
IDENTIFIER_TYPES = {
    "USER_ID": "user_id",
    "ANONYMOUS_ID": "anonymous_id",
    "EMAIL": "email",
    "PHONE": "phone",
    "PROFILE_ID": "profile_id",
}
PROFILE_ID = "profile_id"


# --------------------------------------------------------------------------- subjects
def subject_identifier(subject_type: str, raw: str) -> Identifier | None:
    """The identifier a subject names, normalised as OneID keeps it (emails lower-cased, phones in
    E.164); None when it cannot be one (an email without a domain, a phone without a country code)."""
    id_type = IDENTIFIER_TYPES[subject_type]
    text = raw.strip()
    if not text or len(text) > MAX_SUBJECT_CHARS:
        return None
    if id_type == "email":
        value = normalise_email(text)
    elif id_type == "phone":
        value = normalise_phone(text)
    else:
        value = text if text.isprintable() else None
    return (id_type, value) if value else None


@dataclass(frozen=True)
class Subjects:
    identifiers: tuple[Identifier, ...]  # sorted, without duplicates
    invalid: tuple[int, ...]  # positions in the request of subjects that name nothing


def normalise_subjects(subject_type: str, raw: Sequence[str]) -> Subjects:
    found: set[Identifier] = set()
    invalid: list[int] = []
    for position, text in enumerate(raw):
        identifier = subject_identifier(subject_type, text)
        if identifier is None:
            invalid.append(position)
        else:
            found.add(identifier)
    return Subjects(tuple(sorted(found)), tuple(invalid))


# --------------------------------------------------------------------------- hashes
def identifier_hash(salt: bytes, identifier: Identifier) -> str:
    """HMAC-SHA256 of the identifier under the deployment's salt: the same identifier always gives
    the same hash here (so a send or an event can be checked against it), while the hash alone,
    without the salt, cannot be reversed by hashing a list of known emails or phones."""
    id_type, value = identifier
    return hmac.new(salt, f"{id_type}\x00{value}".encode(), hashlib.sha256).hexdigest()


def request_digest(
    regulation_type: str, subject_type: str, identifiers: Iterable[Identifier], jurisdiction: str
) -> str:
    """What makes two requests the same: their type, jurisdiction and set of normalised subjects
    (order, duplicates, case of emails and spacing of phones do not count)."""
    canonical = json.dumps(
        [regulation_type, subject_type, jurisdiction, sorted(f"{t}:{v}" for t, v in identifiers)],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def subjects_digest(subject_type: str, identifiers: Iterable[Identifier]) -> str:
    """One set of subjects, whatever is asked about them: the key of the latest request on them
    (a repeat of it is the same request; another request on them is a new one)."""
    return request_digest("", subject_type, identifiers, "")


def person_identifiers(
    profile_id: str, merged_from: Iterable[str], identities: Mapping[str, Iterable[str]]
) -> list[Identifier]:
    """Everything a person is known by: their profile, the profiles merged into it, every identity."""
    found = {(PROFILE_ID, profile_id), *((PROFILE_ID, p) for p in merged_from)}
    found.update((id_type, value) for id_type, values in identities.items() for value in values)
    return sorted(found)


# --------------------------------------------------------------------------- due dates
def due_date(received: datetime, jurisdiction: str) -> datetime:
    """When an answer is due.

    GDPR Art. 12(3): "without undue delay and in any event within one month of receipt" - the
    same day of the next month (the month's last day when it has no such day).
    CCPA, Cal. Civ. Code 1798.130(a)(2): within 45 calendar days of receipt.
    PIPL Art. 50 says only "promptly"; the enforcement rules for apps (the 2019 Methods for
    Identifying Illegal Collection and Use of Personal Information by Apps, item 6) set 15
    working days, counted here Monday to Friday (public holidays are not known here).
    """
    if jurisdiction == "CCPA":
        return received + timedelta(days=45)
    if jurisdiction == "PIPL":
        day, left = received, 15
        while left:
            day += timedelta(days=1)
            if day.weekday() < 5:
                left -= 1
        return day
    year, month = (received.year, received.month + 1) if received.month < 12 else (received.year + 1, 1)
    for day_of_month in range(received.day, 27, -1):
        try:
            return received.replace(year=year, month=month, day=day_of_month)
        except ValueError:
            continue
    return received.replace(year=year, month=month, day=min(received.day, 28))


def is_overdue(record: Mapping[str, Any], now_iso: str) -> bool:
    return record.get("status") not in ("FINISHED", "FAILED") and str(record.get("dueAt", "")) < now_iso


def overdue(records: Iterable[Mapping[str, Any]], now_iso: str) -> list[str]:
    """The ids of the requests past their due date and not ended, oldest due first."""
    late = [r for r in records if is_overdue(r, now_iso)]
    return [str(r["regulateId"]) for r in sorted(late, key=lambda r: str(r["dueAt"]))]


# --------------------------------------------------------------------------- export bundles
@dataclass(frozen=True)
class BundleFile:
    name: str
    content: bytes
    content_type: str


def json_file(name: str, value: Any) -> BundleFile:
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return BundleFile(name, text.encode(), "application/json")


def csv_file(name: str, rows: Sequence[Mapping[str, Any]]) -> BundleFile:
    """Rows as CSV (RFC 4180, CRLF), one column per key any row has; nested values as JSON."""
    columns = sorted({key for row in rows for key in row})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return BundleFile(name, out.getvalue().encode(), "text/csv")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    # Text a spreadsheet would read as a formula (=, +, -, @, a tab or a carriage return first)
    # is kept as text: the bundle is opened in spreadsheets, and a trait is anyone's text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def flatten(value: Any, prefix: str = "") -> list[dict[str, Any]]:
    """A nested document as `{field, value}` rows, one per leaf, with dotted paths."""
    if isinstance(value, Mapping) and value:
        rows: list[dict[str, Any]] = []
        for key in sorted(value):
            rows.extend(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [{"field": prefix, "value": value}]


def manifest(files: Sequence[BundleFile], about: Mapping[str, Any]) -> BundleFile:
    """The bundle's table of contents: each file with its size and sha256."""
    listed = [
        {
            "name": f.name,
            "bytes": len(f.content),
            "sha256": hashlib.sha256(f.content).hexdigest(),
            "type": f.content_type,
        }
        for f in files
    ]
    return json_file("manifest.json", {**about, "files": listed})
