"""Amazon Pinpoint's event stream, as Kinesis Data Firehose writes it to S3, read as a replay plan.

Pinpoint streams one JSON object per event (developer guide, "Stream app event data through
Kinesis and Firehose": the app, email and SMS event pages). Firehose writes the records it
buffered into one S3 object, gzip'd when the stream says so, one after the other *without* a
delimiter unless the stream adds one: a file may be JSON lines, or `}{`-joined objects on one
line, or both. `read_stream` decodes every object in a file's text, each with the line it
starts on, and never gives up on the file for one bad record: it reports the line, skips to the
next line or `}{` boundary, and goes on.

`plan_record` says what one record becomes in Midstage (docs/pinpoint-migration.md, "History"):
- app events (custom ones, `_session.start`/`_session.stop`, `_userauth.*`): tracked events;
- `_email.*` and `_SMS.*` outcomes: tracked events under the names Midstage's own SES feedback
  uses (`Email Delivered`, `Email Opened`, `Email Bounced`...), since the message ledger holds
  only messages Midstage sent; they reach the person's event counts and the archive;
- `_email.hardbounce` and `_email.complaint`: a suppression of the address (reason
  `hard_bounce` / `complaint`, scope `all`), as SES feedback records one;
- `_email.unsubscribe` and `_SMS.OPTOUT` (a STOP reply): an `Unsubscribed` refusal of
  marketing on that channel at the record's time, source `pinpoint`, which the profile updater
  keeps only if nothing newer says otherwise (logic/consent.py).

Who: `endpoint.User.UserId` is the `userId`, as the endpoint import gave it; otherwise the
endpoint id (`endpoint.Id`, else `client.client_id` unless it is the account id, which SMS
records carry) is the anonymousId `pinpoint:<id>` the endpoint import gave a user-less
endpoint. Email and SMS outcomes also carry the address (`mail.destination`,
`destination_phone_number`) as a context trait, so OneID finds the imported person by it.
Every event's messageId derives from the record's `event_id` (else from its whole content) and
what it becomes (internal_events.imported_id), so a replay of the same records adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from midstage.logic import internal_events
from midstage.logic.identity import normalise_email, normalise_phone
from midstage.logic.profile import SEGMENT_ADDED, SEGMENT_REMOVED, UNSUBSCRIBED
from midstage.logic.text import problem as text_problem
from midstage.logic.timefmt import iso

MAX_RECORD_BYTES = 1024 * 1024  # Pinpoint's records are a few KB; a bigger one is not one of them
# Firehose buffers at most 128 MiB into one object; a file inflating past this is not its output.
MAX_FILE_BYTES = 160 * 1024 * 1024  # Firehose writes at most 128 MiB an object; held whole (three copies) in 1 GB
GZIP_MAGIC = b"\x1f\x8b"
MAX_NAME_CHARS = 200
MAX_PROPERTIES = 200
CONSENT_SOURCE = "pinpoint"

# event_type -> the tracked event it becomes (app events: developer guide, "App event data stream").
_APP_EVENTS = {
    "_session.start": "Session Started",
    "_session.stop": "Session Ended",
    "_session.pause": "Session Paused",
    "_session.resume": "Session Resumed",
    "_userauth.sign_in": "Signed In",
    "_userauth.sign_up": "Signed Up",
    "_userauth.auth_fail": "Sign In Failed",
}
# Email outcomes ("Email event data stream"): the names services/feedback.py gives SES's.
_EMAIL_EVENTS = {
    "_email.send": "Email Sent",
    "_email.delivered": "Email Delivered",
    "_email.softbounce": "Email Bounced",
    "_email.hardbounce": "Email Bounced",
    "_email.complaint": "Email Marked as Spam",
    "_email.open": "Email Opened",
    "_email.click": "Email Link Clicked",
    "_email.rejected": "Email Rejected",
    "_email.rendering_failure": "Email Failed",
    "_email.unsubscribe": UNSUBSCRIBED,
}
_EMAIL_SUPPRESSIONS = {"_email.hardbounce": "hard_bounce", "_email.complaint": "complaint"}
# SMS outcomes ("SMS event data stream"); the guide spells them in capitals.
_SMS_EVENTS = {
    "_SMS.SEND": "SMS Sent",
    "_SMS.BUFFERED": "SMS Sent",
    "_SMS.SUCCESS": "SMS Delivered",
    "_SMS.FAILURE": "SMS Failed",
    "_SMS.OPTOUT": UNSUBSCRIBED,
}
# Campaign and journey events ("Campaign event data stream"): push outcomes are reported here.
_CAMPAIGN_EVENTS = {
    "_campaign.send": "Campaign Message Sent",
    "_journey.send": "Journey Message Sent",
    "_campaign.opened_notification": "Push Notification Tapped",  # the name propensity scores read
    "_campaign.received_foreground": "Push Notification Received",
    "_campaign.received_background": "Push Notification Received",
}
# Attributes worth keeping on an outcome's event (the campaign or journey that sent it).
_MESSAGE_ATTRIBUTES = (
    "campaign_id",
    "campaign_activity_id",
    "treatment_id",
    "journey_id",
    "journey_activity_id",
    "message_id",
    "record_status",
    "message_type",
    "iso_country_code",
    "origination_phone_number",
    "from_address",
    "campaign_send_status",
    "delivery_type",
)


@dataclass(frozen=True)
class Suppression:
    channel: str
    address: str
    reason: str  # hard_bounce | complaint
    at: str
    detail: str


@dataclass
class Plan:
    """What a stream becomes: events for the ingest queue, suppressions, and what was read."""

    events: list[dict[str, Any]] = field(default_factory=list)
    suppressions: list[Suppression] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)  # records read, per kind (see kind_of)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why)

    def add(self, other: Plan) -> None:
        self.events += other.events
        self.suppressions += other.suppressions
        self.kinds.update(other.kinds)
        self.problems += other.problems


class RecordProblem(ValueError):
    """A record that cannot be replayed, and why."""


class Unreadable(ValueError):
    """A file that cannot be read at all (a damaged gzip header, over the size limit)."""


# ------------------------------------------------------------------------------- the file
def file_text(pieces: Iterable[bytes]) -> tuple[str, str]:
    """A file's text from its bytes (inflated when gzip'd, told by its first bytes) and the
    damage found ("" when none): a truncated or damaged gzip keeps what inflated before the
    damage, so those records are not lost. Bytes that are not UTF-8 become U+FFFD."""
    chunks = iter(pieces)
    first = next(chunks, b"")
    if not first.startswith(GZIP_MAGIC):
        raw, size = [first], len(first)
        for piece in chunks:
            size += len(piece)
            if size > MAX_FILE_BYTES:
                raise Unreadable(f"it is over {MAX_FILE_BYTES:,} bytes")
            raw.append(piece)
        return b"".join(raw).decode("utf-8", errors="replace"), ""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    size, damage = 0, ""
    for piece in (first, *chunks):
        try:
            inflated = inflater.decompress(piece, MAX_FILE_BYTES + 1 - size)
        except zlib.error as error:
            damage = f"the gzip data is damaged ({error}); the records before it were read"
            break
        out.append(inflated)
        size += len(inflated)
        if size > MAX_FILE_BYTES or inflater.unconsumed_tail:
            raise Unreadable(f"it inflates to over {MAX_FILE_BYTES:,} bytes")
        if inflater.eof:
            break  # one gzip member, as Firehose writes
    if not damage and not inflater.eof:
        damage = "the gzip data is truncated; the records before it were read"
    if size == 0 and damage:
        raise Unreadable(damage)
    return b"".join(out).decode("utf-8", errors="replace"), damage


# ------------------------------------------------------------------------------- the stream
def read_stream(text: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Every JSON object in a Firehose file's text: (line it starts on, object or None, problem).
    Objects may be on lines of their own or joined (`}{`); whitespace between them is skipped."""
    decoder = json.JSONDecoder()
    position, line, size = 0, 1, len(text)
    while position < size:
        start = _skip_space(text, position)
        line += text.count("\n", position, start)
        position = start
        if position >= size:
            return
        try:
            found, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as error:
            resume = _resume_after(text, position)
            yield line, None, f"not valid JSON: {str(error)[:200]}"
            line += text.count("\n", position, resume)
            position = resume
            continue
        if end - position > MAX_RECORD_BYTES:
            yield line, None, f"a record over {MAX_RECORD_BYTES:,} characters"
        elif not isinstance(found, dict):
            yield line, None, "not a JSON object: each record is one event"
        else:
            yield line, found, ""
        line += text.count("\n", position, end)
        position = end


def _skip_space(text: str, position: int) -> int:
    size = len(text)
    while position < size and text[position] in " \t\r\n\ufeff":
        position += 1
    return position


def _resume_after(text: str, position: int) -> int:
    """Where to read on after a bad record: the next line, or the next `}{` join, whichever is first."""
    candidates = [i + 1 for i in (text.find("\n", position), text.find("}{", position)) if i >= 0]
    return min(candidates) if candidates else len(text)


def plan_stream(text: str, received_at: str | None = None) -> Plan:
    """A whole file's records, each planned on its own; a bad one is a problem, not the end."""
    plan = Plan()
    for batch in plan_batches(text, received_at=received_at):
        plan.add(batch)
    return plan


def plan_batches(text: str, records: int = 2000, *, received_at: str | None = None) -> Iterator[Plan]:
    """The file's plan in parts of at most `records` records, so a large file is replayed
    without holding every event of it at once. `received_at` is the replay's time (see
    plan_record)."""
    plan, count = Plan(), 0
    for line, record, problem in read_stream(text):
        if count >= records:
            yield plan
            plan, count = Plan(), 0
        count += 1
        if record is None:
            plan.kinds["rejected"] += 1
            plan.problems.append((line, problem))
            continue
        try:
            plan.add(plan_record(record, received_at))
        except RecordProblem as why:
            plan.kinds["rejected"] += 1
            plan.problems.append((line, str(why)))
    if count:
        yield plan


# ------------------------------------------------------------------------------- one record
def kind_of(event_type: str) -> str:
    """How a record is counted: its own type when Midstage knows it, `custom` for an app's own
    events, `unknown` for Pinpoint's other reserved ones (`_monetization.purchase`, `_push.*`...)."""
    if any(event_type in known for known in (_APP_EVENTS, _EMAIL_EVENTS, _SMS_EVENTS, _CAMPAIGN_EVENTS)):
        return event_type
    return "unknown" if event_type.startswith("_") else "custom"


def plan_record(record: Mapping[str, Any], received_at: str | None = None) -> Plan:
    """One record's plan. Its event is marked replayed (logic/profile.is_replayed): it dates the
    person's firstSeen and lastSeen, and no rule, journey or conversion reacts to it. Received at
    `received_at` (the replay's time) when given, so a record dated later moves lastSeen no
    further than the replay."""
    found = text_problem(record)
    if found is not None:
        raise RecordProblem(found.message)
    event_type = record.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise RecordProblem("no event_type")
    event_type = event_type.strip()[:MAX_NAME_CHARS]
    plan = Plan()
    kind = kind_of(event_type)
    plan.kinds[kind] += 1
    if kind == "unknown":
        return plan  # counted, not replayed: its meaning is not documented well enough to guess
    at = _timestamp(record)
    record_id = _record_id(record)
    attributes = _object(record, "attributes")
    properties: dict[str, Any] = {"pinpoint_event_type": event_type}
    address: tuple[str, str] | None = None
    name: str
    if event_type in _EMAIL_EVENTS:
        mail = _object(_object(_object(_object(record, "facets"), "email_channel"), "mail_event"), "mail")
        email = _first_email(mail.get("destination"))
        address = ("email", email) if email else None
        name = _EMAIL_EVENTS[event_type]
        properties.update(_kept(attributes, _MESSAGE_ATTRIBUTES))
        if isinstance(mail.get("message_id"), str):
            properties["provider_message_id"] = mail["message_id"][:200]
        if event_type in ("_email.softbounce", "_email.hardbounce"):
            properties["permanent"] = event_type == "_email.hardbounce"
        link = _link(record, attributes)
        if event_type == "_email.click" and link:
            properties["url"] = link
        reason = _EMAIL_SUPPRESSIONS.get(event_type)
        if reason and email:
            plan.suppressions.append(Suppression("email", email, reason, at, f"pinpoint {event_type} {record_id}"))
    elif event_type in _SMS_EVENTS:
        phone = normalise_phone(attributes.get("destination_phone_number"))
        address = ("phone", phone) if phone else None
        name = _SMS_EVENTS[event_type]
        properties.update(_kept(attributes, _MESSAGE_ATTRIBUTES))
    elif event_type in _CAMPAIGN_EVENTS:
        name = _CAMPAIGN_EVENTS[event_type]
        properties.update(_kept(attributes, _MESSAGE_ATTRIBUTES))
    else:
        name = _APP_EVENTS.get(event_type) or _custom_name(event_type)
        if name in (SEGMENT_ADDED, SEGMENT_REMOVED):
            # Replayed as the platform's own, it would change static segments: only imports may.
            raise RecordProblem(f"a custom event named {name!r} is not replayed (a name Midstage reserves)")
        properties.update(_app_properties(record, attributes))
    who = _who(record, address)
    if name == UNSUBSCRIBED:  # a refusal, as Midstage's own unsubscribes record one (logic/profile.py)
        channel = "email" if event_type.startswith("_email.") else "sms"
        properties.update({"channel": channel, "purpose": "marketing", "source": CONSENT_SOURCE})
    message_id = internal_events.imported_id("pinpoint-event", record_id, name)
    event = internal_events.track(who, name, properties, message_id=message_id, timestamp=at)
    internal_events.replayed(event, received_at)
    if address is not None:
        event["context"]["traits"] = {address[0]: address[1]}
    plan.events.append(event)
    return plan


def _who(record: Mapping[str, Any], address: tuple[str, str] | None) -> dict[str, str]:
    endpoint = _endpoint(record)
    user_id = _object(endpoint, "User").get("UserId")
    if isinstance(user_id, str) and user_id.strip():
        return {"userId": user_id.strip()[:512]}
    endpoint_id = endpoint.get("Id")
    if not (isinstance(endpoint_id, str) and endpoint_id.strip()):
        client_id = _object(record, "client").get("client_id")
        # A transactional SMS record's client_id is the AWS account, not a person.
        if isinstance(client_id, str) and client_id.strip() and client_id != record.get("awsAccountId"):
            endpoint_id = client_id
    if isinstance(endpoint_id, str) and endpoint_id.strip():
        return {"anonymousId": f"pinpoint:{endpoint_id.strip()[:500]}"}
    if address is not None:
        # As the endpoint import names a person known only by an address (logic/imports/people.py).
        kind, value = address
        return {"anonymousId": f"import-{kind}-{hashlib.sha256(value.encode()).hexdigest()[:32]}"}
    raise RecordProblem("nothing names the person: no endpoint, client_id or address")


def _endpoint(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The endpoint a record carries: `endpoint`, else `client_context.custom.endpoint`, which
    campaign records hold as a JSON string (the campaign event example)."""
    endpoint = _object(record, "endpoint")
    if endpoint:
        return endpoint
    custom = _object(_object(record, "client_context"), "custom").get("endpoint")
    if isinstance(custom, str) and len(custom) <= 100_000:
        try:
            custom = json.loads(custom)
        except (ValueError, RecursionError):
            return {}
    return custom if isinstance(custom, dict) and text_problem(custom) is None else {}


def _timestamp(record: Mapping[str, Any]) -> str:
    for key in ("event_timestamp", "arrival_timestamp"):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 32503680000000:
            return iso(datetime.fromtimestamp(value / 1000, tz=UTC))
    raise RecordProblem("no event_timestamp (Unix time in milliseconds)")


def _record_id(record: Mapping[str, Any]) -> str:
    """Pinpoint's `event_id`, else a digest of the whole record (the same record, the same id)."""
    event_id = record.get("event_id")
    if isinstance(event_id, str) and event_id.strip():
        return event_id.strip()[:200]
    content = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()


def _object(container: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def _first_email(destination: Any) -> str | None:
    listed = destination if isinstance(destination, list) else [destination]
    for value in listed[:50]:
        email = normalise_email(value)
        if email:
            return email
    return None


def _link(record: Mapping[str, Any], attributes: Mapping[str, Any]) -> str | None:
    click = _object(_object(_object(_object(record, "facets"), "email_channel"), "mail_event"), "click")
    for value in (click.get("link"), attributes.get("click_link"), attributes.get("link")):
        if isinstance(value, str) and value.strip():
            return value.strip()[:2000]
    return None


def _kept(attributes: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _scalar(attributes[name]) for name in names if _scalar(attributes.get(name)) is not None}


def _scalar(value: Any) -> str | int | float | bool | None:
    if isinstance(value, str):
        return value[:1000] if value.strip() else None
    if isinstance(value, bool | int | float):
        return value
    return None


def _custom_name(event_type: str) -> str:
    return event_type.strip()[:MAX_NAME_CHARS]


def _app_properties(record: Mapping[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """An app event's attributes and metrics as properties, with its session and device."""
    properties: dict[str, Any] = {}
    metrics = _object(record, "metrics")
    for source in (attributes, metrics):
        for key, value in list(source.items())[:MAX_PROPERTIES]:
            kept = _scalar(value)
            if kept is not None and isinstance(key, str) and key.strip():
                properties[key.strip()[:MAX_NAME_CHARS]] = kept
    session = _object(record, "session")
    if isinstance(session.get("session_id"), str):
        properties["session_id"] = session["session_id"][:200]
    start, stop = session.get("start_timestamp"), session.get("stop_timestamp")
    if isinstance(start, int) and isinstance(stop, int) and stop >= start:
        properties["session_seconds"] = round((stop - start) / 1000, 3)
    platform = _object(_object(record, "device"), "platform").get("name")
    if isinstance(platform, str) and platform.strip():
        properties["platform"] = platform.strip()[:100]
    return properties
