"""Tracking intake: decode, size limits, validation, enrichment and grouping by person.

Pure functions over bytes and dicts; the collect handler wires them to HTTP and the hand-off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import json.scanner
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from midstage.config import IdentitySettings
from midstage.errors import InvalidInput, PayloadTooLarge, Unauthorized, describe
from midstage.logic.plain_event import plain_fields
from midstage.logic.text import printable, problem, storable
from midstage.logic.timefmt import iso
from midstage.models.tracking import EVENT_TYPES, TrackingEvent

QUARANTINED_PAYLOAD_BYTES = 8 * 1024
# How far past its receipt an event's time may lie before it is taken for a wrong clock and the
# receipt time used instead. Segment documents the sentAt correction but publishes no bound; five
# minutes is the usual allowance for clocks that are merely unsynchronised (SigV4, Kerberos), and
# small enough that no event keeps a profile "seen" in the future for long.
FUTURE_TOLERANCE = timedelta(minutes=5)
# The received-time window that an event with neither a messageId nor a time of its own is
# identified by (see derived_message_id).
UNDATED_WINDOW_SECONDS = 600
# Fields a client changes when it sends the same event again, left out of a derived messageId.
_RETRY_VOLATILE = frozenset({"sentAt", "writeKey", "messageId"})


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    future_tolerance: timedelta = FUTURE_TOLERANCE


@dataclass(frozen=True)
class Rejection:
    index: int | None
    code: str
    message: str
    payload: str

    def to_body(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass
class Intake:
    """What one request produced: enriched events to hand off and rejections to quarantine."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Accepted events whose time lay beyond FUTURE_TOLERANCE and was replaced by receivedAt.
    future_timestamps: int = 0


@dataclass
class RequestMeta:
    source_id: str
    received_at: datetime
    ip: str | None = None
    user_agent: str | None = None

    @cached_property
    def received_iso(self) -> str:
        return iso(self.received_at)


def write_key_from_authorization(header: str | None) -> str | None:
    """HTTP Basic with the write key as the user name (Segment's convention)."""
    if not header:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise Unauthorized("the Authorization header is not valid Basic credentials") from error
    return decoded.partition(":")[0] or None


def decode_body(body: str | None, *, is_base64: bool, content_encoding: str | None, limit: int) -> bytes:
    """The request body as bytes, gunzipped if needed, refusing anything larger than `limit`.

    Decompression is bounded, so a small gzip bomb cannot expand past the limit in memory.
    """
    if not body:
        raise InvalidInput("the request body is empty", code="empty_body")
    try:
        raw = base64.b64decode(body, validate=True) if is_base64 else body.encode("utf-8")
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("the body is not valid base64", code="invalid_encoding") from error
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        raw = _inflate(raw, limit, gzip=encoding != "deflate")
    elif encoding not in ("", "identity"):
        raise InvalidInput(f"unsupported Content-Encoding '{encoding}'", code="unsupported_encoding")
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is {len(raw)} bytes; the limit is {limit}", code="body_too_large")
    return raw


def _inflate(compressed: bytes, limit: int, *, gzip: bool) -> bytes:
    inflater = zlib.decompressobj(wbits=31 if gzip else 15)
    try:
        out = inflater.decompress(compressed, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the decompressed body exceeds the limit of {limit} bytes", code="body_too_large")
        out += inflater.flush()
    except zlib.error as error:
        raise InvalidInput(
            f"the body is not valid {'gzip' if gzip else 'deflate'} data", code="invalid_gzip"
        ) from error
    if not inflater.eof:
        raise InvalidInput("the compressed body is truncated", code="invalid_gzip")
    return out


class _NotFinite(ValueError):
    """A number JSON cannot carry: the NaN and Infinity literals, or a literal too large for a
    double (`1e999999`)."""


def _finite_float(text: str, _finite: Callable[[float], bool] = math.isfinite) -> float:
    value = float(text)
    if not _finite(value):
        raise _NotFinite(text)
    return value


def _no_constant(name: str) -> float:
    raise _NotFinite(name)


@dataclass(frozen=True)
class _Parser:
    """A JSON decoder and its C scanner (the batch reader calls the scanner once per event).

    Two are made once and shared, as `json.loads` shares its own: they hold no state of a request.
    The strict one stops at the first number JSON cannot carry; the body is then read again with
    the lenient one, and each of its events checked (see _may_be_unstorable), so that the check
    costs nothing on the bodies that do not need it."""

    decoder: json.JSONDecoder
    scan: Callable[[str, int], tuple[Any, int]]
    lenient: bool

    @classmethod
    def make(cls, *, lenient: bool) -> _Parser:
        decoder = (
            json.JSONDecoder() if lenient else json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
        )
        return cls(decoder, json.scanner.make_scanner(decoder), lenient)  # type: ignore[arg-type]


_STRICT = _Parser.make(lenient=False)
_LENIENT = _Parser.make(lenient=True)


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SPACE = frozenset(" \t\n\r")


@dataclass
class Document:
    """A parsed request: its events with their sizes as sent, and batch-level fields."""

    items: list[Any]
    sizes: list[int]  # bytes each event took in the body (measured exactly where it matters)
    shared: dict[str, Any]
    write_key: str | None
    # False when the body cannot hold what intake must refuse (see _may_be_unstorable), which
    # spares the per-event check on nearly every request.
    screen: bool = True


def _may_be_unstorable(text: str, parser: _Parser) -> bool:
    """Whether the events of a body need the per-event check: an unpaired surrogate can only come
    from a `\\uDxxx` escape (UTF-8 cannot encode one), and only the lenient parser lets a number
    through that JSON cannot carry."""
    return parser.lenient or "\\ud" in text or "\\uD" in text


def read_document(raw: bytes, endpoint: str, limits: Limits) -> Document:
    """Parse a request body. `endpoint` is a call type ("track", ...) or "batch".

    A batch is read element by element so that each event's size is known from its span in
    the body, before it is validated. A single call takes its type from the route, as
    Segment's API does.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the body is not UTF-8: {error}", code="invalid_json") from error
    if endpoint != "batch":
        try:
            document, parser = _loads(text, _STRICT), _STRICT
        except _NotFinite:
            document, parser = _loads(text, _LENIENT), _LENIENT
        if not isinstance(document, dict):
            raise InvalidInput("the body must be a JSON object", code="invalid_body")
        screen = _may_be_unstorable(text, parser)
        document["type"] = endpoint  # the decoded dict is this request's own
        return Document([document], [len(text)], {}, _write_key(document), screen)
    try:
        fields, items, sizes = _read_batch_object(text, parser := _STRICT)
    except _NotFinite:
        fields, items, sizes = _read_batch_object(text, parser := _LENIENT)
    if not text.isascii():
        # surrogatepass: an unpaired surrogate is sized here and refused per event by enrich().
        sizes = [
            len(json.dumps(i, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if s * 4 > limits.max_event_bytes
            else s
            for i, s in zip(items or [], sizes, strict=True)
        ]
    if items is None:
        raise InvalidInput("a batch body needs a 'batch' array of events", code="invalid_batch")
    if len(items) > limits.max_batch_events:
        raise PayloadTooLarge(
            f"the batch holds {len(items)} events; the limit is {limits.max_batch_events}",
            code="too_many_events",
        )
    shared: dict[str, Any] = {k: fields[k] for k in ("context", "integrations", "sentAt") if k in fields}
    if shared:
        # Batch-level fields are copied into every event, so they count toward each one's size.
        extra = len(json.dumps(shared, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        sizes = [size + extra for size in sizes]
    return Document(items, sizes, shared, _write_key(fields), _may_be_unstorable(text, parser))


def _loads(text: str, parser: _Parser) -> Any:
    try:
        return parser.decoder.decode(text)
    except _NotFinite:
        raise
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}", code="invalid_json") from error
    except RecursionError as error:
        raise InvalidInput("the body nests too deeply", code="invalid_json") from error


def _read_batch_object(text: str, parser: _Parser) -> tuple[dict[str, Any], list[Any] | None, list[int]]:
    """Top-level fields of a batch object, and the 'batch' array's elements with their spans."""
    fields: dict[str, Any] = {}
    items: list[Any] | None = None
    sizes: list[int] = []
    try:
        at = _skip(text, 0)
        if text[at : at + 1] != "{":
            raise InvalidInput("the body must be a JSON object", code="invalid_body")
        at = _skip(text, at + 1)
        while text[at : at + 1] != "}":
            key, at = _scan(parser, text, at)
            at = _skip(text, at)
            if not isinstance(key, str) or text[at : at + 1] != ":":
                raise ValueError(f"expected a key and ':' at character {at}")
            at = _skip(text, at + 1)
            if key == "batch" and text[at : at + 1] == "[":
                items, sizes = _read_array(text, at, parser)
                at = sizes.pop()
            else:
                fields[key], at = _scan(parser, text, at)
            at = _skip(text, at)
            if text[at : at + 1] == ",":
                at = _skip(text, at + 1)
                if text[at : at + 1] == "}":
                    raise ValueError(f"trailing ',' before '}}' at character {at}")
            elif text[at : at + 1] != "}":
                raise ValueError(f"expected ',' or '}}' at character {at}")
        if _skip(text, at + 1) != len(text):
            raise ValueError(f"unexpected data after the object at character {at + 1}")
    except _NotFinite:
        raise
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}", code="invalid_json") from error
    except RecursionError as error:
        raise InvalidInput("the body nests too deeply", code="invalid_json") from error
    return fields, items, sizes


def _read_array(text: str, at: int, parser: _Parser) -> tuple[list[Any], list[int]]:
    """The elements of the array at `at` and the characters each took, then the position after
    the array (as the last of those). The per-event loop of a batch, so written for speed: no
    call but the scanner's, and whitespace skipped only where there is some (SDKs send none)."""
    items: list[Any] = []
    sizes: list[int] = []
    scan = parser.scan
    at += 1
    if text[at : at + 1] in _SPACE:
        at = _skip(text, at)
    if text[at : at + 1] == "]":
        sizes.append(at + 1)
        return items, sizes
    while True:
        try:
            value, end = scan(text, at)
        except StopIteration as stop:
            raise ValueError(f"expected a value at character {stop.value}") from None
        items.append(value)
        sizes.append(end - at)
        at = end
        if text[at : at + 1] in _SPACE:
            at = _skip(text, at)
        mark = text[at : at + 1]
        if mark == "]":
            sizes.append(at + 1)
            return items, sizes
        if mark != ",":
            raise ValueError(f"expected ',' or ']' at character {at}")
        at += 1
        if text[at : at + 1] in _SPACE:
            at = _skip(text, at)
        if text[at : at + 1] == "]":
            raise ValueError(f"trailing ',' before ']' at character {at}")


def _scan(parser: _Parser, text: str, at: int) -> tuple[Any, int]:
    try:
        value, end = parser.scan(text, at)
    except StopIteration as stop:
        raise ValueError(f"expected a value at character {stop.value}") from None
    return value, end


def _skip(text: str, at: int) -> int:
    return _WHITESPACE.match(text, at).end()  # type: ignore[union-attr]


def _write_key(document: Any) -> str | None:
    key = document.get("writeKey") if isinstance(document, dict) else None
    # A key that is not well-formed text cannot be any source's: treated as no key at all.
    return key if isinstance(key, str) and key and printable(key) == key else None


def intake(document: Document, meta: RequestMeta, identity: IdentitySettings, limits: Limits) -> Intake:
    """Validate and enrich every event; one bad event never sinks the others."""
    result = Intake()
    for index, item in enumerate(document.items):
        outcome = enrich(
            item, index, document.sizes[index], document.shared, meta, identity, limits, screen=document.screen
        )
        if isinstance(outcome, Rejection):
            result.rejected.append(outcome)
        else:
            result.accepted.append(outcome)
            if "timestampCorrection" in outcome:
                result.future_timestamps += 1
    return result


def enrich(
    item: Any,
    index: int,
    size: int,
    shared: Mapping[str, Any],
    meta: RequestMeta,
    identity: IdentitySettings,
    limits: Limits,
    *,
    screen: bool = True,
) -> dict[str, Any] | Rejection:
    if size > limits.max_event_bytes:
        return Rejection(
            index,
            "event_too_large",
            f"the event is {size} bytes; the limit is {limits.max_event_bytes}",
            _excerpt(item),
        )
    if not isinstance(item, dict):
        return Rejection(index, "invalid_event", "an event must be a JSON object", _excerpt(item))
    if shared:
        item = _with_batch_fields(item, shared)
    # Checked once, here: nothing behind the acknowledgement has to cope with text that cannot
    # be encoded or numbers that are not JSON.
    if screen and not storable(item):
        found = problem(item)
        if found is not None:
            return Rejection(index, found.code, found.message, _excerpt(item))
    kind = item.get("type")
    if type(kind) is not str or kind not in EVENT_TYPES:  # a list or an object is not hashable
        return Rejection(
            index, "invalid_type", f"'type' must be one of {', '.join(sorted(EVENT_TYPES))}", _excerpt(item)
        )
    fields = plain_fields(item, size)
    if fields is None:
        try:
            # pydantic keeps validated fields in a plain dict: cheapest access
            fields = TrackingEvent.model_validate(item).__dict__
        except ValidationError as error:
            return Rejection(index, "invalid_event", describe(error, "event"), _excerpt(item))

    user_id = _usable(fields["userId"], identity)
    anonymous_id = _usable(fields["anonymousId"], identity)
    if user_id is None and anonymous_id is None:
        blocked = [v for v in (fields["userId"], fields["anonymousId"]) if v is not None]
        message = (
            f"userId/anonymousId {[b[:64] for b in blocked]!r} are blocked values or over 512 bytes; "
            "a real identifier is needed"
            if blocked
            else "an event needs a 'userId' or an 'anonymousId'"
        )
        return Rejection(index, "missing_identifier", message, _excerpt(item))

    received = meta.received_at
    sent_at = fields["sentAt"]
    original = fields["originalTimestamp"] or fields["timestamp"]
    if (original is not None and original.tzinfo is None) or (sent_at is not None and sent_at.tzinfo is None):
        return Rejection(index, "invalid_timestamp", "timestamps need a time zone offset", _excerpt(item))
    try:
        if original is not None and sent_at is not None:
            # Segment's clock-skew correction: trust the client's relative times, not its clock.
            timestamp = received - (sent_at - original)
        else:
            timestamp = original or received
        in_future = timestamp - received > limits.future_tolerance
        stamped = meta.received_iso if in_future else iso(timestamp)
    except (OverflowError, ValueError):
        return Rejection(index, "invalid_timestamp", "sentAt and the event time are too far apart", _excerpt(item))

    context = fields["context"]
    if (meta.ip and "ip" not in context) or (meta.user_agent and "userAgent" not in context):
        context = dict(context)
        if meta.ip:
            context.setdefault("ip", meta.ip)
        if meta.user_agent:
            context.setdefault("userAgent", meta.user_agent)

    enriched: dict[str, Any] = {
        "type": fields["type"],
        # Every SDK sends its own messageId, which is what makes retries safe; for a client that
        # does not, the same event sent again must still get the same one.
        "messageId": fields["messageId"] or derived_message_id(item, meta, dated=original is not None),
        "userId": user_id,
        "anonymousId": anonymous_id,
        "timestamp": stamped,
        "receivedAt": meta.received_iso,
        "sourceId": meta.source_id,
        "context": context,
    }
    # The client's own clock readings are kept as sent, as Segment does.
    if original is not None:
        given = item.get("originalTimestamp")
        enriched["originalTimestamp"] = given if given is not None else item["timestamp"]
    if sent_at is not None:
        enriched["sentAt"] = item["sentAt"]
    if in_future:
        # A time after the event reached us is a wrong clock, not a fact: the event is placed at
        # its receipt, so that it cannot pin the profile's lastSeen in the future.
        enriched["timestampCorrection"] = "future"
    for name in _OPTIONAL_FIELDS:
        value = fields[name]
        if value:
            enriched[name] = value
    return enriched


_OPTIONAL_FIELDS = (
    "event",
    "name",
    "category",
    "previousId",
    "groupId",
    "channel",
    "properties",
    "traits",
    "integrations",
)


def derived_message_id(item: Mapping[str, Any], meta: RequestMeta, *, dated: bool) -> str:
    """The messageId of an event sent without one: the same for the same event sent again.

    Made from the source, the event as sent in canonical form (keys sorted, without the fields a
    retry changes: `sentAt`, `writeKey`) and a time window. An event with a time of its own
    (`timestamp` or `originalTimestamp`, part of the canonical form) needs no other window: its
    retry dedupes for as long as the updater remembers ids. An undated event is placed in a
    bucket of UNDATED_WINDOW_SECONDS of its receipt, so the same call a day later is a new event.
    The price: two identical undated events from one source in one bucket are one event, and a
    retry that falls into the next bucket counts again (for a retry d seconds later, a chance of
    d / UNDATED_WINDOW_SECONDS).
    """
    body = {k: v for k, v in item.items() if k not in _RETRY_VOLATILE}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    window = "" if dated else str(int(meta.received_at.timestamp()) // UNDATED_WINDOW_SECONDS)
    digest = hashlib.sha256(f"{meta.source_id}\n{window}\n{canonical}".encode("utf-8", "surrogatepass"))
    return f"ms-{digest.hexdigest()[:32]}"


def person_key(event: Mapping[str, Any]) -> str:
    """The hand-off key: all of one person's events from a request travel together."""
    user_id = event.get("userId")
    return f"u:{user_id}" if user_id else f"a:{event['anonymousId']}"


def group_by_person(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        groups.setdefault(person_key(event), []).append(event)
    return groups


def _usable(value: str | None, identity: IdentitySettings) -> str | None:
    if value is None or identity.is_blocked(value):
        return None
    # No character takes more than 4 bytes: only a longer value needs encoding to be measured.
    if len(value) > 128 and len(value.encode("utf-8", "surrogatepass")) > 512:
        return None
    return value


def _with_batch_fields(item: dict[str, Any], shared: Mapping[str, Any]) -> dict[str, Any]:
    """The event with the batch's fields under its own. Written into the event's dict, which was
    decoded for this request alone (a copy per event cost more than the rest of reading it)."""
    for name in ("context", "integrations"):
        given = shared.get(name)
        if type(given) is dict:
            own = item.get(name)
            item[name] = {**given, **own} if type(own) is dict else given
    if "sentAt" in shared and "sentAt" not in item:
        item["sentAt"] = shared["sentAt"]
    return item


def _excerpt(item: Any) -> str:
    # Escaped where it could not be stored as it came (unpaired surrogates), so that the
    # quarantine can keep exactly the events refused for that reason.
    shown = json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=str)
    return printable(shown[:QUARANTINED_PAYLOAD_BYTES])
