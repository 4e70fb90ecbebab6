"""Static segment imports: a file of people in, the internal events that put them in a segment out.

Three formats (`detect_format` tells them apart):
- `csv`: a header row, then one person per row. Identifier columns `user_id`/`userId`, `email`,
  `phone`, `anonymous_id`/`anonymousId` (at least one in the header and non-empty per row);
  every other column is a trait, kept as text.
- `pinpoint-json`: an Amazon Pinpoint export job's output, one endpoint per line (JSON lines).
- `pinpoint-csv`: Pinpoint's segment import CSV (`ChannelType`, `Address`, `User.UserId`,
  `User.UserAttributes.<name>`, `Attributes.<name>`, `Demographic.*`, `Location.*`, ...).

Every parser is pure: text in, an `ImportReport` out. Each accepted person gets an `identify`
event (traits and contact identifiers) and a `Segment Added` track event, both from the platform
(internal_events.SOURCE_ID, which is what lets `Segment Added` change membership). Message ids
derive from (import id, line, kind), so running the same import twice is absorbed by the profile
updater's dedupe. Rows that cannot be used are listed with their line and why, and never sink
the others; a file that is not what it claims, too big, or binary is refused whole.

How a Pinpoint endpoint becomes a person (shared by both Pinpoint formats):
- Endpoints are grouped by `User.UserId`; an endpoint without one is a person of its own, with
  anonymousId `pinpoint:<Id>`.
- EMAIL gives the `email` trait, SMS (else VOICE) the `phone` trait: the most recently effective
  ACTIVE endpoint's address, normalised like every identifier (logic/identity.py). An INACTIVE
  endpoint's address is not used, but its person is kept.
- Push endpoints (APNS, APNS_SANDBOX, GCM, BAIDU, ADM) become devices: the profile keeps any
  event's `context.device` with a `token` (logic/profile.apply_event), and delivery pushes to
  the newest device with a token, by its `type`. A person may have several devices and an event
  carries one, so each is a `Device Registered` track event with `context.device` `{token,
  type, manufacturer, model}` at the endpoint's EffectiveDate (so the newest device stays the
  one delivery picks). No device `id` is sent: it would become a device_id identifier, and
  endpoint ids are not the ids the app's own SDK reports. Types: APNS `ios`, APNS_SANDBOX
  `ios_sandbox` (development builds need their own SNS application), GCM `android`, BAIDU
  `baidu`, ADM `adm`. VoIP, IN_APP, PUSH and CUSTOM endpoints carry no address the platform
  sends to; their people are kept.
- OptOut ALL refuses marketing on that endpoint's channel (email, sms, push) with a
  `Consent Updated` event at the endpoint's EffectiveDate. OptOut NONE is not a grant, so it
  records nothing.
- `User.UserAttributes` and endpoint `Attributes` become traits under their own names, without
  a prefix: segment conditions then read them as `traits.<name>`, as Pinpoint filters did.
  Per-user attributes win over per-endpoint ones; among endpoints the most recently effective
  wins. One-value lists are unwrapped, longer ones kept as lists. Names outside the trait
  alphabet have the other characters replaced by `_`.
- `Demographic.Timezone` (a valid IANA zone) is the `timezone` trait and `context.timezone`;
  `Demographic.Locale` (`en_US` is written `en-US`) is the `locale` trait and `context.locale`;
  `Location` Country, Region, City and PostalCode are the `country`, `region`, `city` and
  `postal_code` traits.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from midstage.config import IdentitySettings
from midstage.errors import InvalidInput
from midstage.logic import internal_events
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.logic.profile import CONSENT_UPDATED, SEGMENT_ADDED
from midstage.logic.text import problem as text_problem
from midstage.logic.timefmt import iso
from midstage.models.segments import SEGMENT_ID

__all__ = [
    "DEVICE_REGISTERED",
    "MAX_CELL_BYTES",
    "MAX_COLUMNS",
    "MAX_ROWS",
    "MAX_TEXT_BYTES",
    "ImportFormat",
    "ImportRefused",
    "ImportReport",
    "detect_format",
    "parse_csv",
    "parse_import",
    "parse_pinpoint_csv",
    "parse_pinpoint_endpoints",
]

ImportFormat = Literal["csv", "pinpoint-json", "pinpoint-csv"]

MAX_ROWS = 100_000
MAX_TEXT_BYTES = 20 * 1024 * 1024
MAX_COLUMNS = 64
MAX_CELL_BYTES = 4 * 1024
MAX_LISTED_REJECTIONS = 100
MAX_IDENTIFIER_BYTES = 512  # as collect and OneID: identifiers live in DynamoDB keys
DEVICE_REGISTERED = "Device Registered"

_TRAIT = re.compile(r"[A-Za-z0-9_$-][A-Za-z0-9_$.-]{0,63}")
_NOT_TRAIT_CHARACTER = re.compile(r"[^A-Za-z0-9_$.-]")
_SEGMENT_ID = re.compile(SEGMENT_ID)
_IDENTIFIER_COLUMNS = {
    "user_id": "userId",
    "userid": "userId",
    "email": "email",
    "phone": "phone",
    "anonymous_id": "anonymousId",
    "anonymousid": "anonymousId",
}
_QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_BARE = re.compile(r"[^,\n]*")
_SNIFF_CHARACTERS = 64 * 1024
_LEADING_SPACE = re.compile(r"\s*")
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_PUSH_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
_DIGITS_ONLY = re.compile(r"[0-9]{7,15}")
_PHONE_NOISE = re.compile(r"[\s().\-/]")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")

# Pinpoint channel types: what each gives the person.
_EMAIL_CHANNEL = "EMAIL"
_PHONE_CHANNELS = ("SMS", "VOICE")
_PUSH_PLATFORMS = {"APNS": "ios", "APNS_SANDBOX": "ios_sandbox", "GCM": "android", "BAIDU": "baidu", "ADM": "adm"}
_NO_ADDRESS_CHANNELS = frozenset({"APNS_VOIP", "APNS_VOIP_SANDBOX", "IN_APP", "CUSTOM", "PUSH"})
_CHANNEL_TYPES = frozenset({_EMAIL_CHANNEL, *_PHONE_CHANNELS, *_PUSH_PLATFORMS, *_NO_ADDRESS_CHANNELS})
_CONSENT_CHANNEL = {"EMAIL": "email", "SMS": "sms", **dict.fromkeys(_PUSH_PLATFORMS, "push")}
_LOCATION_TRAITS = {"Country": "country", "Region": "region", "City": "city", "PostalCode": "postal_code"}
_PINPOINT_SCALARS = ("Id", "ChannelType", "Address", "EndpointStatus", "OptOut", "EffectiveDate")
# Header columns of a Pinpoint CSV read as endpoint fields; the rest are ignored or refused.
_PINPOINT_SECTIONS = ("User.UserAttributes.", "Attributes.", "Demographic.", "Location.")
_PINPOINT_IGNORED = ("Metrics.",)
_PINPOINT_IGNORED_COLUMNS = frozenset({"CreationDate", "RequestId", "CohortId", "ApplicationId"})


class ImportRefused(InvalidInput):
    """The whole file was refused: its format, size or content makes no row worth reading."""

    code = "invalid_import"


@dataclass
class ImportReport:
    """What an import produced: the events to queue, and the rows that could not be used."""

    accepted: int = 0  # rows (CSV) or endpoints (Pinpoint) used
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_LISTED_REJECTIONS
    rejected_total: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    people: int = 0

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


class _RowProblem(Exception):
    """One row cannot be used; the message says why, for the report."""


@dataclass(frozen=True)
class _Job:
    segment_id: str
    import_id: str
    now: datetime
    identity: IdentitySettings

    @property
    def timestamp(self) -> str:
        return iso(self.now)

    def message_id(self, line: int, kind: str) -> str:
        return internal_events.internal_id(self.import_id, str(line), kind)


def _job(segment_id: str, import_id: str, now: datetime, identity: IdentitySettings | None) -> _Job:
    if not isinstance(segment_id, str) or not _SEGMENT_ID.match(segment_id):
        raise ValueError(f"not a segment id: {segment_id!r}")
    if not isinstance(import_id, str) or not import_id:
        raise ValueError("import_id is a non-empty string")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return _Job(segment_id, import_id, now, identity or IdentitySettings())


# ------------------------------------------------------------------------------ entry points
def detect_format(text: str | bytes) -> ImportFormat:
    """Which of the three formats a file is, from its first record."""
    prepared = _prepare(text)
    start = _LEADING_SPACE.match(prepared)
    if prepared.startswith("{", start.end() if start else 0):
        return "pinpoint-json"
    header = next(_records(prepared), None)
    names = [cell.strip() for cell in header[1]] if header else []
    if "ChannelType" in names or any(name.startswith(("User.", *_PINPOINT_SECTIONS)) for name in names):
        return "pinpoint-csv"
    return "csv"


def parse_import(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    fmt: ImportFormat | None = None,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """Parse a file in the given format, or the detected one."""
    parser = {"csv": parse_csv, "pinpoint-json": parse_pinpoint_endpoints, "pinpoint-csv": parse_pinpoint_csv}[
        fmt or detect_format(text)
    ]
    return parser(text, segment_id=segment_id, import_id=import_id, now=now, identity=identity)


def parse_csv(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """A CSV of people: identifier columns and trait columns (see the module's docstring)."""
    job = _job(segment_id, import_id, now, identity)
    records = _records(_prepare(text))
    header = _header(records)
    roles: dict[int, str] = {}
    traits: dict[int, str] = {}
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        role = _IDENTIFIER_COLUMNS.get(name.lower())
        if role is not None:
            if role in roles.values():
                raise ImportRefused(f"two columns hold {role}; keep one (column {index + 1}, {name!r})")
            roles[index] = role
        elif not _TRAIT.fullmatch(name):
            raise ImportRefused(
                f"column {index + 1} ({name[:80]!r}) is not a valid trait name: "
                "1 to 64 of A-Z a-z 0-9 _ $ . -, not starting with a dot"
            )
        elif name in traits.values():
            raise ImportRefused(f"column {name!r} appears twice")
        else:
            traits[index] = name
    if not roles:
        raise ImportRefused(
            "no identifier column: the header needs at least one of user_id, email, phone or anonymous_id"
        )

    report = ImportReport()
    people: dict[tuple[str, str], _Person] = {}
    for line, cells, problem in _counted(records):
        if problem:
            report.reject(line, problem)
            continue
        try:
            person = _csv_person(job, line, header, cells, roles, traits)
        except _RowProblem as why:
            report.reject(line, str(why))
            continue
        report.accepted += 1
        known = people.get(person.key)
        if known is None:
            people[person.key] = person
        else:
            known.absorb(person)
    _emit(job, report, people.values())
    return report


def parse_pinpoint_endpoints(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """An Amazon Pinpoint endpoint export: one JSON endpoint per line (uncompressed)."""
    job = _job(segment_id, import_id, now, identity)
    prepared = _prepare(text)
    report = ImportReport()
    endpoints: list[_Endpoint] = []
    rows = 0
    for line, raw in enumerate(prepared.split("\n"), start=1):
        if not raw.strip():
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise ImportRefused(f"more than {MAX_ROWS:,} endpoints; split the file")
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as error:
            report.reject(line, f"not valid JSON: {str(error)[:200]}")
            continue
        if not isinstance(document, dict):
            report.reject(line, "not a JSON object: each line is one endpoint")
            continue
        found = text_problem(document)
        if found is not None:
            report.reject(line, found.message)
            continue
        try:
            endpoints.append(_endpoint(job, line, document))
        except _RowProblem as why:
            report.reject(line, str(why))
    if rows == 0:
        raise ImportRefused("the file has no endpoints")
    _emit_endpoints(job, report, endpoints)
    return report


def parse_pinpoint_csv(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """Pinpoint's segment import CSV: each row is read as the endpoint JSON it stands for."""
    job = _job(segment_id, import_id, now, identity)
    records = _records(_prepare(text))
    header = _header(records)
    columns: dict[int, tuple[str, ...]] = {}
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        where = _pinpoint_column(name)
        if where is None:
            if name.startswith(_PINPOINT_IGNORED) or name in _PINPOINT_IGNORED_COLUMNS:
                continue
            raise ImportRefused(f"column {index + 1} ({name[:80]!r}) is not a Pinpoint endpoint field")
        if where in columns.values():
            raise ImportRefused(f"column {name!r} appears twice")
        columns[index] = where
    if not any(c in (("Address",), ("Id",), ("User", "UserId")) for c in columns.values()):
        raise ImportRefused("no identifier column: the header needs Address, Id or User.UserId")

    report = ImportReport()
    endpoints: list[_Endpoint] = []
    for line, cells, problem in _counted(records):
        if problem:
            report.reject(line, problem)
            continue
        try:
            _check_shape(cells, header)
            document: dict[str, Any] = {}
            for index, where in columns.items():
                value = cells[index].strip()
                if not value:
                    continue
                if len(where) == 1:
                    document[where[0]] = value
                    continue
                target = document
                for key in where[:-1]:
                    target = target.setdefault(key, {})
                attribute = where[0] == "Attributes" or where[:2] == ("User", "UserAttributes")
                target[where[-1]] = [value] if attribute else value
            endpoints.append(_endpoint(job, line, document))
        except _RowProblem as why:
            report.reject(line, str(why))
    _emit_endpoints(job, report, endpoints)
    return report


def _pinpoint_column(name: str) -> tuple[str, ...] | None:
    """Where a Pinpoint CSV column goes in the endpoint JSON: `User.UserAttributes.plan` is
    ("User", "UserAttributes", "plan")."""
    if name in _PINPOINT_SCALARS:
        return (name,)
    if name == "User.UserId":
        return ("User", "UserId")
    for prefix in _PINPOINT_SECTIONS:
        if name.startswith(prefix) and len(name) > len(prefix):
            return (*prefix.rstrip(".").split("."), name[len(prefix) :])
    return None


# ----------------------------------------------------------------------------- text and CSV
def _prepare(text: str | bytes) -> str:
    """Whole-file checks: size, encoding, binary content. Line ends become \\n."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_TEXT_BYTES:
            raise ImportRefused(f"the file is {len(text):,} bytes; imports are limited to {MAX_TEXT_BYTES:,}")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportRefused(f"the file is not UTF-8 text (byte {error.start + 1})") from error
    if len(text) > MAX_TEXT_BYTES:
        raise ImportRefused(f"the file has {len(text):,} characters; imports are limited to {MAX_TEXT_BYTES:,} bytes")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise ImportRefused("the file is not valid Unicode text") from error
    if size > MAX_TEXT_BYTES:
        raise ImportRefused(f"the file is {size:,} bytes; imports are limited to {MAX_TEXT_BYTES:,}")
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise ImportRefused("the file is binary (it holds NUL bytes); upload UTF-8 text")
    sample = text[:_SNIFF_CHARACTERS]
    if len(_CONTROL.findall(sample)) > max(8, len(sample) // 100):
        raise ImportRefused("the file looks binary (many control characters); upload UTF-8 text")
    if not text.strip():
        raise ImportRefused("the file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _records(text: str) -> Iterator[tuple[int, list[str], str]]:
    """RFC 4180 records: (line the record starts on, cells, problem or ""). Quoted fields may
    hold commas, quotes ("") and newlines. A malformed record is reported and reading resumes
    on the next line. Blank records are skipped."""
    at, line, end = 0, 1, len(text)
    while at < end:
        start = line
        cells: list[str] = []
        problem = ""
        while True:
            if text.startswith('"', at):
                quoted = _QUOTED.match(text, at)
                if quoted is None:
                    problem = "a quoted field is never closed"
                elif quoted.end() < end and text[quoted.end()] not in ",\n":
                    problem = "text after a closing quote; quote the whole field and double inner quotes"
                if problem:
                    newline = text.find("\n", at)
                    at = end if newline < 0 else newline + 1
                    line += 1
                    break
                assert quoted is not None
                cells.append(quoted.group(1).replace('""', '"'))
                line += quoted.group(1).count("\n")
                at = quoted.end()
            else:
                bare = _BARE.match(text, at)
                assert bare is not None  # it matches the empty string
                cells.append(bare.group())
                at = bare.end()
            if at >= end:
                break
            separator = text[at]
            at += 1
            if separator == "\n":
                line += 1
                break
        if problem or any(cell.strip() for cell in cells):
            yield start, cells, problem


def _counted(records: Iterator[tuple[int, list[str], str]]) -> Iterator[tuple[int, list[str], str]]:
    for count, record in enumerate(records, start=1):
        if count > MAX_ROWS:
            raise ImportRefused(f"more than {MAX_ROWS:,} rows; split the file")
        yield record


def _header(records: Iterator[tuple[int, list[str], str]]) -> list[str]:
    first = next(records, None)
    if first is None:
        raise ImportRefused("the file has no header row")
    line, cells, problem = first
    if problem:
        raise ImportRefused(f"the header row (line {line}) is malformed: {problem}")
    if len(cells) > MAX_COLUMNS:
        raise ImportRefused(f"the header has {len(cells):,} columns; at most {MAX_COLUMNS}")
    return cells


def _check_shape(cells: list[str], header: list[str]) -> None:
    if len(cells) != len(header):
        raise _RowProblem(f"{len(cells):,} fields where the header has {len(header)}")
    for index, cell in enumerate(cells):
        if len(cell) > MAX_CELL_BYTES // 4 and len(cell.encode()) > MAX_CELL_BYTES:
            raise _RowProblem(
                f"column {header[index].strip()[:80]!r} holds {len(cell.encode()):,} bytes; at most {MAX_CELL_BYTES:,}"
            )


# ------------------------------------------------------------------------------------- people
@dataclass
class _Person:
    """One person to import: identifiers, traits, and (Pinpoint) devices and refusals."""

    key: tuple[str, str]
    line: int  # the first line naming them: their events' message ids derive from it
    user_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    phone: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    devices: list[tuple[int, dict[str, str], str, str]] = field(default_factory=list)  # line, device, at, id
    refusals: dict[str, str] = field(default_factory=dict)  # consent channel -> when

    def absorb(self, later: _Person) -> None:
        """A later row for the same person: its non-empty values win."""
        self.user_id = later.user_id or self.user_id
        self.anonymous_id = later.anonymous_id or self.anonymous_id
        self.email = later.email or self.email
        self.phone = later.phone or self.phone
        self.traits.update(later.traits)
        self.context.update(later.context)


def _identifier(value: str, label: str, job: _Job) -> str | None:
    text = value.strip()
    if not text:
        return None
    if len(text.encode()) > MAX_IDENTIFIER_BYTES:
        raise _RowProblem(f"{label} is over {MAX_IDENTIFIER_BYTES} bytes")
    if job.identity.is_blocked(text):
        raise _RowProblem(f"{label} {text[:80]!r} is a blocked value (placeholders are never identifiers)")
    return text


def _csv_person(
    job: _Job, line: int, header: list[str], cells: list[str], roles: Mapping[int, str], traits: Mapping[int, str]
) -> _Person:
    _check_shape(cells, header)
    found: dict[str, str | None] = {}
    for index, role in roles.items():
        raw = cells[index].strip()
        if role == "email" and raw:
            found[role] = normalise_email(raw)
            if found[role] is None:
                raise _RowProblem(f"email {raw[:80]!r} is not a valid email address")
        elif role == "phone" and raw:
            found[role] = normalise_phone(raw)
            if found[role] is None:
                raise _RowProblem(
                    f"phone {raw[:80]!r} is not an international number (E.164: + country code, 7 to 15 digits)"
                )
        else:
            found[role] = _identifier(raw, role, job)
    if not any(found.values()):
        present = ", ".join(header[index].strip() for index in roles)
        raise _RowProblem(f"no identifier: {present} {'is' if len(roles) == 1 else 'are all'} empty")
    person = _Person(
        key=_person_key(found),
        line=line,
        user_id=found.get("userId"),
        anonymous_id=found.get("anonymousId"),
        email=found.get("email"),
        phone=found.get("phone"),
    )
    for index, name in traits.items():
        value = cells[index].strip()
        if value:
            person.traits[name] = value  # text as written: "=1+1" stays a string, nothing evaluates it
    person.context = _locale_context(person.traits.get("timezone"), person.traits.get("locale"))
    return person


def _person_key(found: Mapping[str, str | None]) -> tuple[str, str]:
    """Rows for the same person: the strongest identifier they carry, as OneID ranks them."""
    for role in ("userId", "email", "phone", "anonymousId"):
        value = found.get(role)
        if value:
            return role, value
    raise _RowProblem("no identifier")


def _locale_context(timezone: Any, locale: Any) -> dict[str, str]:
    context: dict[str, str] = {}
    if isinstance(timezone, str) and _valid_zone(timezone):
        context["timezone"] = timezone
    if isinstance(locale, str) and _LOCALE.fullmatch(locale):
        context["locale"] = locale.replace("_", "-")
    return context


def _valid_zone(name: str) -> bool:
    if not 0 < len(name) <= 64 or ".." in name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


# ---------------------------------------------------------------------------------- events
def _emit(job: _Job, report: ImportReport, people: Iterable[_Person]) -> None:
    ordered = sorted(people, key=lambda person: person.line)
    report.people = len(ordered)
    for person in ordered:
        report.events.extend(_events_of(job, person))


def _events_of(job: _Job, person: _Person) -> list[dict[str, Any]]:
    who: dict[str, str] = {}
    if person.user_id:
        who["userId"] = person.user_id
    if person.anonymous_id:
        who["anonymousId"] = person.anonymous_id
    if not who:
        # Every event needs a userId or an anonymousId. One derived from the contact identifier
        # is the same in every import, so a person imported twice gains it once.
        kind, value = ("email", person.email) if person.email else ("phone", person.phone)
        who["anonymousId"] = f"import-{kind}-{hashlib.sha256(str(value).encode()).hexdigest()[:32]}"
    contact = {k: v for k, v in (("email", person.email), ("phone", person.phone)) if v}
    traits = {**person.traits, **contact}
    identify = internal_events.identify(
        who, traits, message_id=job.message_id(person.line, "identify"), timestamp=job.timestamp
    )
    identify["context"].update(person.context)
    events = [identify]

    def track(name: str, properties: dict[str, Any], message_id: str, at: str) -> dict[str, Any]:
        event = internal_events.track(who, name, properties, message_id=message_id, timestamp=at)
        if contact:  # each event finds the person by itself, whichever the updater sees first
            event["context"]["traits"] = dict(contact)
        return event

    for line, device, at, endpoint_id in person.devices:
        event = track(
            DEVICE_REGISTERED,
            {"platform": device["type"], "source": "pinpoint", "endpoint": endpoint_id},
            job.message_id(line, "device"),
            at,
        )
        event["context"]["device"] = device
        events.append(event)
    for channel, at in sorted(person.refusals.items()):
        events.append(
            track(
                CONSENT_UPDATED,
                {"channel": channel, "purpose": "marketing", "granted": False},
                job.message_id(person.line, f"consent:{channel}"),
                at,
            )
        )
    events.append(
        track(SEGMENT_ADDED, {"segment": job.segment_id}, job.message_id(person.line, "segment"), job.timestamp)
    )
    return events


# ---------------------------------------------------------------------------------- Pinpoint
@dataclass
class _Endpoint:
    line: int
    id: str | None
    user_id: str | None
    channel: str | None
    address: str | None  # normalised; None when unused (INACTIVE, no address channel)
    opted_out: bool
    at: str  # EffectiveDate as iso(), never after the import's time
    user_attributes: dict[str, Any]
    attributes: dict[str, Any]
    demographic: dict[str, str]
    location: dict[str, str]


def _section(document: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _RowProblem(f"{where}{key} is not an object")
    return value


def _text(value: Any, label: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RowProblem(f"{label} is not text")
    text = str(value).strip()
    if len(text.encode()) > MAX_CELL_BYTES:
        raise _RowProblem(f"{label} is over {MAX_CELL_BYTES:,} bytes")
    return text or None


def _attributes(raw: Mapping[str, Any], label: str) -> dict[str, Any]:
    """Pinpoint attributes ({name: [values]}) as traits; one value unwrapped, none dropped."""
    found: dict[str, Any] = {}
    for name, values in raw.items():
        listed = values if isinstance(values, list) else [values]
        kept = [text for v in listed if (text := _text(v, f"{label}.{name}")) is not None]
        trait = _trait_name(str(name))
        if kept and trait:
            found[trait] = kept[0] if len(kept) == 1 else kept
    return found


def _trait_name(name: str) -> str | None:
    if _TRAIT.fullmatch(name):
        return name
    cleaned = _NOT_TRAIT_CHARACTER.sub("_", name.strip())[:64]
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    return cleaned if _TRAIT.fullmatch(cleaned) else None


def _endpoint(job: _Job, line: int, document: Mapping[str, Any]) -> _Endpoint:
    user = _section(document, "User")
    user_attributes = _section(user, "UserAttributes", "User.")
    attributes = _section(document, "Attributes")
    if len(user_attributes) + len(attributes) > MAX_COLUMNS:
        raise _RowProblem(f"{len(user_attributes) + len(attributes):,} attributes; at most {MAX_COLUMNS}")
    endpoint_id = _text(document.get("Id"), "Id")
    if endpoint_id is not None and len(endpoint_id.encode()) > MAX_IDENTIFIER_BYTES - 9:
        raise _RowProblem(f"Id is over {MAX_IDENTIFIER_BYTES - 9} bytes")
    user_id = _identifier(_text(user.get("UserId"), "User.UserId") or "", "User.UserId", job)
    if endpoint_id is None and user_id is None:
        raise _RowProblem("no Id or User.UserId: nothing identifies the person")
    channel = _text(document.get("ChannelType"), "ChannelType")
    address = _text(document.get("Address"), "Address")
    if channel is None and address is not None:
        raise _RowProblem("an Address needs its ChannelType")
    if channel is not None and channel not in _CHANNEL_TYPES:
        raise _RowProblem(f"unknown ChannelType {channel[:40]!r}; one of: {', '.join(sorted(_CHANNEL_TYPES))}")
    status = _text(document.get("EndpointStatus"), "EndpointStatus") or "ACTIVE"
    if status not in ("ACTIVE", "INACTIVE"):
        raise _RowProblem(f"EndpointStatus {status[:40]!r} is neither ACTIVE nor INACTIVE")
    opt_out = _text(document.get("OptOut"), "OptOut") or "NONE"
    if opt_out not in ("ALL", "NONE"):
        raise _RowProblem(f"OptOut {opt_out[:40]!r} is neither ALL nor NONE")
    demographic = {
        str(k): text for k, v in _section(document, "Demographic").items() if (text := _text(v, f"Demographic.{k}"))
    }
    location = {str(k): text for k, v in _section(document, "Location").items() if (text := _text(v, f"Location.{k}"))}
    usable = None
    if status == "ACTIVE" and channel is not None and channel not in _NO_ADDRESS_CHANNELS:
        usable = _address(channel, address)
    return _Endpoint(
        line=line,
        id=endpoint_id,
        user_id=user_id,
        channel=channel,
        address=usable,
        opted_out=opt_out == "ALL",
        at=_effective(document.get("EffectiveDate"), job.now),
        user_attributes=_attributes(user_attributes, "User.UserAttributes"),
        attributes=_attributes(attributes, "Attributes"),
        demographic=demographic,
        location=location,
    )


def _address(channel: str, address: str | None) -> str:
    if not address:
        raise _RowProblem(f"an ACTIVE {channel} endpoint has no Address")
    if channel == _EMAIL_CHANNEL:
        email = normalise_email(address)
        if email is None:
            raise _RowProblem(f"EMAIL address {address[:80]!r} is not a valid email address")
        return email
    if channel in _PHONE_CHANNELS:
        phone = normalise_phone(address)
        digits = _PHONE_NOISE.sub("", address)
        if phone is None and _DIGITS_ONLY.fullmatch(digits) and not digits.startswith("0"):
            # Pinpoint addresses are international; some exports drop the leading +.
            phone = normalise_phone("+" + digits)
        if phone is None:
            raise _RowProblem(f"{channel} address {address[:80]!r} is not an international phone number (E.164)")
        return phone
    if not _PUSH_TOKEN.fullmatch(address):
        raise _RowProblem(f"{channel} address is not a push token (printable ASCII, no spaces)")
    return address


def _effective(value: Any, now: datetime) -> str:
    """An endpoint's EffectiveDate as a platform timestamp; the import's time when absent,
    unreadable or in the future (a refusal or device is never dated after its import)."""
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            if moment <= now:
                return iso(moment)
    return iso(now)


def _emit_endpoints(job: _Job, report: ImportReport, endpoints: list[_Endpoint]) -> None:
    report.accepted = len(endpoints)
    grouped: dict[tuple[str, str], list[_Endpoint]] = {}
    for endpoint in endpoints:
        key = ("userId", endpoint.user_id) if endpoint.user_id else ("anonymousId", f"pinpoint:{endpoint.id}")
        grouped.setdefault(key, []).append(endpoint)
    _emit(job, report, [_pinpoint_person(key, group) for key, group in grouped.items()])


def _pinpoint_person(key: tuple[str, str], group: list[_Endpoint]) -> _Person:
    by_time = sorted(group, key=lambda e: (e.at, e.line))  # later entries win below
    person = _Person(key=key, line=min(e.line for e in group))
    if key[0] == "userId":
        person.user_id = key[1]
    else:
        person.anonymous_id = key[1]
    for endpoint in by_time:
        person.traits.update(endpoint.attributes)
    for endpoint in by_time:
        person.traits.update(endpoint.user_attributes)
    phones: dict[str, str] = {}
    for endpoint in by_time:
        location = endpoint.location
        person.traits.update({trait: location[k] for k, trait in _LOCATION_TRAITS.items() if k in location})
        context = _locale_context(endpoint.demographic.get("Timezone"), endpoint.demographic.get("Locale"))
        person.context.update(context)
        person.traits.update(context)
        if endpoint.address is None or endpoint.channel is None:
            continue
        if endpoint.channel == _EMAIL_CHANNEL:
            person.email = endpoint.address
        elif endpoint.channel in _PHONE_CHANNELS:
            phones[endpoint.channel] = endpoint.address
        elif endpoint.channel in _PUSH_PLATFORMS:
            device = {"token": endpoint.address, "type": _PUSH_PLATFORMS[endpoint.channel]}
            for field_name, device_field in (("Make", "manufacturer"), ("Model", "model")):
                if endpoint.demographic.get(field_name):
                    device[device_field] = endpoint.demographic[field_name]
            person.devices.append((endpoint.line, device, endpoint.at, endpoint.id or ""))
    person.phone = phones.get("SMS") or phones.get("VOICE")
    for endpoint in by_time:
        channel = _CONSENT_CHANNEL.get(endpoint.channel or "")
        if endpoint.opted_out and channel is not None:
            person.refusals[channel] = endpoint.at
    person.devices.sort(key=lambda entry: entry[0])
    return person
