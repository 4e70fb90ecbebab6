"""Amazon Pinpoint exports, as endpoint JSON lines or Pinpoint's segment CSV: endpoints grouped
into people (see the package docstring for how each field is read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from midstage.config import IdentitySettings
from midstage.logic.identity import normalise_email
from midstage.logic.imports.model import (
    MAX_CELL_BYTES,
    MAX_COLUMNS,
    MAX_IDENTIFIER_BYTES,
    MAX_ROWS,
    NOT_TRAIT_CHARACTER,
    PUSH_TOKEN,
    TRAIT,
    ImportRefused,
    ImportReport,
    Job,
    RowProblem,
    new_job,
)
from midstage.logic.imports.people import Person, Update, clean_identifier, emit, locale_context
from midstage.logic.imports.phones import international_phone
from midstage.logic.imports.text import check_shape, counted, prepare, read_header, read_records
from midstage.logic.text import problem as text_problem
from midstage.logic.timefmt import iso

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
PINPOINT_SECTIONS = ("User.UserAttributes.", "Attributes.", "Demographic.", "Location.")
_PINPOINT_IGNORED = ("Metrics.",)
_PINPOINT_IGNORED_COLUMNS = frozenset({"CreationDate", "RequestId", "CohortId", "ApplicationId"})


def parse_pinpoint_endpoints(
    text: str | bytes,
    *,
    segment_id: str,
    import_id: str,
    now: datetime,
    identity: IdentitySettings | None = None,
) -> ImportReport:
    """An Amazon Pinpoint endpoint export: one JSON endpoint per line (uncompressed)."""
    job = new_job(segment_id, import_id, now, identity)
    prepared = prepare(text)
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
        except RowProblem as why:
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
    job = new_job(segment_id, import_id, now, identity)
    records = read_records(prepare(text))
    header = read_header(records)
    columns: dict[int, tuple[str, ...]] = {}
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        where = _pinpoint_column(name)
        if where is None:
            if name.startswith(_PINPOINT_IGNORED) or name in _PINPOINT_IGNORED_COLUMNS:
                continue
            raise ImportRefused(f"column {index + 1} ({name[:80]!r}) is not a Pinpoint endpoint field")
        if where in columns.values() and not _is_attribute(where):
            raise ImportRefused(f"column {name!r} appears twice")
        columns[index] = where  # a repeated attribute column holds one more of its values
    if not any(c in (("Address",), ("Id",), ("User", "UserId")) for c in columns.values()):
        raise ImportRefused("no identifier column: the header needs Address, Id or User.UserId")
    # Pinpoint's user-ID file: a `User.UserId` header alone, and ids separated by spaces.
    user_ids_only = list(columns.values()) == [("User", "UserId")]

    report = ImportReport()
    endpoints: list[_Endpoint] = []
    for line, cells, problem in counted(records):
        if problem:
            report.reject(line, problem)
            continue
        if user_ids_only:
            _user_ids(job, line, cells, header, next(iter(columns)), report, endpoints)
            continue
        try:
            check_shape(cells, header)
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
                if _is_attribute(where):
                    target.setdefault(where[-1], []).append(value)
                else:
                    target[where[-1]] = value
            endpoints.append(_endpoint(job, line, document))
        except RowProblem as why:
            report.reject(line, str(why))
    _emit_endpoints(job, report, endpoints)
    return report


def _user_ids(
    job: Job, line: int, cells: list[str], header: list[str], column: int, report: ImportReport, found: list[_Endpoint]
) -> None:
    """A row of a user-ID file: ids separated by spaces, each a person of its own. AWS puts them
    all on one line, so the line may be as long as the file (each id is checked on its own)."""
    if len(cells) != len(header):
        report.reject(line, f"{len(cells):,} fields where the header has {len(header)}")
        return
    for user_id in cells[column].split():
        if len(found) >= MAX_ROWS:
            raise ImportRefused(f"more than {MAX_ROWS:,} user ids; split the file")
        try:
            found.append(_endpoint(job, line, {"User": {"UserId": user_id}}))
        except RowProblem as why:
            report.reject(line, str(why))


def _is_attribute(where: tuple[str, ...]) -> bool:
    return where[0] == "Attributes" or where[:2] == ("User", "UserAttributes")


def _pinpoint_column(name: str) -> tuple[str, ...] | None:
    """Where a Pinpoint CSV column goes in the endpoint JSON: `User.UserAttributes.plan` is
    ("User", "UserAttributes", "plan")."""
    if name in _PINPOINT_SCALARS:
        return (name,)
    if name == "User.UserId":
        return ("User", "UserId")
    for prefix in PINPOINT_SECTIONS:
        if name.startswith(prefix) and len(name) > len(prefix):
            return (*prefix.rstrip(".").split("."), name[len(prefix) :])
    return None


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
    # The EffectiveDate that names the endpoint's events: "" when absent, unreadable or future
    # (then `at` is the import's time, which must not make a second import's events new).
    stated: str
    user_attributes: dict[str, Any]
    attributes: dict[str, Any]
    demographic: dict[str, str]
    location: dict[str, str]


def _section(document: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RowProblem(f"{where}{key} is not an object")
    return value


def _text(value: Any, label: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowProblem(f"{label} is not text")
    text = str(value).strip()
    if len(text.encode()) > MAX_CELL_BYTES:
        raise RowProblem(f"{label} is over {MAX_CELL_BYTES:,} bytes")
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
    if TRAIT.fullmatch(name):
        return name
    cleaned = NOT_TRAIT_CHARACTER.sub("_", name.strip())[:64]
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    return cleaned if TRAIT.fullmatch(cleaned) else None


def _endpoint(job: Job, line: int, document: Mapping[str, Any]) -> _Endpoint:
    user = _section(document, "User")
    user_attributes = _section(user, "UserAttributes", "User.")
    attributes = _section(document, "Attributes")
    if len(user_attributes) + len(attributes) > MAX_COLUMNS:
        raise RowProblem(f"{len(user_attributes) + len(attributes):,} attributes; at most {MAX_COLUMNS}")
    endpoint_id = _text(document.get("Id"), "Id")
    if endpoint_id is not None and len(endpoint_id.encode()) > MAX_IDENTIFIER_BYTES - 9:
        raise RowProblem(f"Id is over {MAX_IDENTIFIER_BYTES - 9} bytes")
    user_id = clean_identifier(_text(user.get("UserId"), "User.UserId") or "", "User.UserId", job)
    if endpoint_id is None and user_id is None:
        raise RowProblem("no Id or User.UserId: nothing identifies the person")
    channel = _text(document.get("ChannelType"), "ChannelType")
    address = _text(document.get("Address"), "Address")
    if channel is None and address is not None:
        raise RowProblem("an Address needs its ChannelType")
    if channel is not None and channel not in _CHANNEL_TYPES:
        raise RowProblem(f"unknown ChannelType {channel[:40]!r}; one of: {', '.join(sorted(_CHANNEL_TYPES))}")
    status = _text(document.get("EndpointStatus"), "EndpointStatus") or "ACTIVE"
    if status not in ("ACTIVE", "INACTIVE"):
        raise RowProblem(f"EndpointStatus {status[:40]!r} is neither ACTIVE nor INACTIVE")
    opt_out = _text(document.get("OptOut"), "OptOut") or "NONE"
    if opt_out not in ("ALL", "NONE"):
        raise RowProblem(f"OptOut {opt_out[:40]!r} is neither ALL nor NONE")
    demographic = {
        str(k): text for k, v in _section(document, "Demographic").items() if (text := _text(v, f"Demographic.{k}"))
    }
    location = {str(k): text for k, v in _section(document, "Location").items() if (text := _text(v, f"Location.{k}"))}
    usable = None
    if status == "ACTIVE" and channel is not None and channel not in _NO_ADDRESS_CHANNELS:
        usable = _address(channel, address, location.get("Country"))
    return _Endpoint(
        line=line,
        id=endpoint_id,
        user_id=user_id,
        channel=channel,
        address=usable,
        opted_out=opt_out == "ALL",
        at=(at := _effective(document.get("EffectiveDate"), job.now)) or job.timestamp,
        stated=at,
        user_attributes=_attributes(user_attributes, "User.UserAttributes"),
        attributes=_attributes(attributes, "Attributes"),
        demographic=demographic,
        location=location,
    )


def _address(channel: str, address: str | None, country: str | None) -> str:
    if not address:
        raise RowProblem(f"an ACTIVE {channel} endpoint has no Address")
    if channel == _EMAIL_CHANNEL:
        email = normalise_email(address)
        if email is None:
            raise RowProblem(f"EMAIL address {address[:80]!r} is not a valid email address")
        return email
    if channel in _PHONE_CHANNELS:
        phone = international_phone(address, country)
        if phone is None:
            raise RowProblem(f"{channel} address {address[:80]!r} is not an international phone number (E.164)")
        return phone
    if not PUSH_TOKEN.fullmatch(address):
        raise RowProblem(f"{channel} address is not a push token (printable ASCII, no spaces)")
    return address


def _effective(value: Any, now: datetime) -> str:
    """An endpoint's EffectiveDate as a platform timestamp; "" when absent, unreadable or in the
    future (then the import's time dates it: a refusal or device is never after its import)."""
    if isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            if moment <= now:
                return iso(moment)
    return ""


def _emit_endpoints(job: Job, report: ImportReport, endpoints: list[_Endpoint]) -> None:
    report.accepted = len(endpoints)
    grouped: dict[tuple[str, str], list[_Endpoint]] = {}
    for endpoint in endpoints:
        key = ("userId", endpoint.user_id) if endpoint.user_id else ("anonymousId", f"pinpoint:{endpoint.id}")
        grouped.setdefault(key, []).append(endpoint)
    emit(job, report, [_pinpoint_person(key, group) for key, group in grouped.items()])


def _pinpoint_person(key: tuple[str, str], group: list[_Endpoint]) -> Person:
    """Each endpoint says what it knows in an identify of its own, dated by its EffectiveDate, so
    the profile keeps the most recently effective value of each trait, whichever file or import
    brought it. The person's email and phone (for their other events to find them by) are the
    most recently effective active ones; an SMS number is preferred to a VOICE one."""
    by_time = sorted(group, key=lambda e: (e.at, e.line))
    person = Person(key=key, line=min(e.line for e in group), updates=[])
    if key[0] == "userId":
        person.user_id = key[1]
    else:
        person.anonymous_id = key[1]
    has_sms = any(e.channel == "SMS" and e.address for e in group)
    phones: dict[str, str] = {}
    for endpoint in by_time:
        location = endpoint.location
        context = locale_context(endpoint.demographic.get("Timezone"), endpoint.demographic.get("Locale"))
        traits: dict[str, Any] = {**endpoint.attributes, **endpoint.user_attributes}  # the user's win
        traits.update({trait: location[k] for k, trait in _LOCATION_TRAITS.items() if k in location})
        traits.update(context)
        channel, address = endpoint.channel, endpoint.address
        if address is not None and channel == _EMAIL_CHANNEL:
            traits["email"] = person.email = address
        elif address is not None and channel in _PHONE_CHANNELS:
            phones[channel] = address
            if channel == "SMS" or not has_sms:
                traits["phone"] = address
        elif address is not None and channel in _PUSH_PLATFORMS:
            device = {"token": address, "type": _PUSH_PLATFORMS[channel]}
            for field_name, device_field in (("Make", "manufacturer"), ("Model", "model")):
                if endpoint.demographic.get(field_name):
                    device[device_field] = endpoint.demographic[field_name]
            person.devices.append((endpoint.line, device, endpoint.at, endpoint.id or "", endpoint.stated))
        assert person.updates is not None
        person.updates.append(Update(endpoint.id or "", endpoint.at, endpoint.stated, traits, context))
        consent_channel = _CONSENT_CHANNEL.get(channel or "")
        if endpoint.opted_out and consent_channel is not None:
            person.refusals.append((consent_channel, endpoint.at, endpoint.id or "", endpoint.stated))
    person.phone = phones.get("SMS") or phones.get("VOICE")
    person.devices.sort(key=lambda entry: entry[0])
    return person
