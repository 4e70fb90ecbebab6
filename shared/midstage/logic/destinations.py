"""Destinations' decisions: which events a destination takes, in what shape, in which batches,
signed how, and when a failed delivery is tried again. Pure: no I/O, no clock reads; the time
and the jitter's draw come from the caller.

An event is forwarded as it was applied to the profile (the full Segment call), after the
destination's filter (the condition language, over the event alone: `event.*` paths) and its
projection (JMESPath). Every delivery carries the event's messageId as its idempotency key.

Kinesis batches differ from the others: one record per person per PutRecords call (see
`kinesis_batches`), since a call goes on past a record it fails to write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from midstage.errors import InvalidInput
from midstage.logic.conditions import Condition, Facts, compile_condition
from midstage.logic.timefmt import iso
from midstage.models.destinations import Destination

SIGNATURE_HEADER = "Midstage-Signature"
IDEMPOTENCY_HEADER = "Midstage-Idempotency-Key"
SEQ_WIDTH = 20  # order keys are zero-padded, so that text order is number order

# Retries: the pause doubles from RETRY_BASE_S up to RETRY_CAP_S, with jitter in [50%, 100%],
# so a destination that recovers is tried again within RETRY_CAP_S.
RETRY_BASE_S = 30.0
RETRY_CAP_S = 600.0

# A queued event is one DynamoDB item (400 KB at most, keys and bookkeeping included): a shaped
# event past this size is refused when queued, with why, rather than failing the feed message.
QUEUED_PAYLOAD_MAX = 350_000
# Kinesis PutRecords: a record (data and partition key) at most 1 MiB, a call at most 5 MiB.
KINESIS_RECORD_MAX = 1024 * 1024
KINESIS_CALL_MAX = 5 * 1024 * 1024
KINESIS_KEY_MAX = 256  # characters of a partition key


class DeliveryFailed(Exception):
    """A delivery did not happen. `kind`: "retryable" (the destination is unwell: keep the events
    queued and try later), "configuration" (the destination refuses us: likewise, until fixed)
    or "permanent" (it refuses these events: they go to the failed records). `delivered`: the
    batch's entries the destination took all the same (a Kinesis call that partly failed)."""

    def __init__(self, kind: str, reason: str, delivered: Sequence[Entry] = ()) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.delivered = tuple(delivered)

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"


@dataclass(frozen=True)
class Entry:
    """One event waiting for one destination: `seq` orders a person's events (the feed's order)."""

    seq: str
    profile_id: str
    message_id: str
    payload: dict[str, Any]
    enqueued_at: str


@dataclass(frozen=True)
class Route:
    """A destination compiled once: its filter and its projection ready to run."""

    destination: Destination
    condition: Condition | None
    projection: ParsedResult | None


@dataclass(frozen=True)
class Shaped:
    """What one event becomes for one destination: a payload, filtered out, or refused (why)."""

    payload: dict[str, Any] | None = None
    refused: str | None = None

    @property
    def filtered(self) -> bool:
        return self.payload is None and self.refused is None


@lru_cache(maxsize=512)
def _projection(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


def compile_transform(expression: str) -> ParsedResult:
    try:
        return _projection(expression)
    except JMESPathError as error:
        raise InvalidInput(
            f"transform is not a valid JMESPath expression: {error}", code="invalid_destination"
        ) from error


def compile_route(destination: Destination, *, max_window_days: int) -> Route:
    """Raises the conditions' ConditionError for a bad filter, InvalidInput for a bad transform."""
    condition = None
    if destination.filter is not None:
        condition = compile_condition(destination.filter, max_window_days=max_window_days)
    projection = compile_transform(destination.transform) if destination.transform else None
    return Route(destination, condition, projection)


def shape(route: Route, event: Mapping[str, Any], now: datetime) -> Shaped:
    """The payload `event` becomes for the route's destination."""
    if route.condition is not None and not route.condition.test(Facts(profile=None, event=event, now=now)):
        return Shaped()
    if route.projection is None:
        return Shaped(payload=dict(event))
    try:
        projected = route.projection.search(dict(event))
    except JMESPathError as error:  # a function applied to a value of the wrong type
        return Shaped(refused=f"transform failed: {error}"[:500])
    if projected is None:  # a projection may drop an event, as a filter does
        return Shaped()
    if not isinstance(projected, dict):
        return Shaped(refused=f"transform gave {type(projected).__name__}, not an object")
    if route.destination.kind == "segment":
        # What Segment needs to accept and dedupe a call survives any projection.
        needs = ("type", "messageId", "userId", "anonymousId", "timestamp")
        kept = {k: event[k] for k in needs if event.get(k) is not None}
        return Shaped(payload={**projected, **kept})
    return Shaped(payload=projected)


def seq_of(number: int) -> str:
    """An entry's order key in its destination's queue: a number the destination's counter gave."""
    return f"{number:0{SEQ_WIDTH}d}"


def entries_for(
    kept: Sequence[tuple[str, Mapping[str, Any], Shaped]],
    first: int,
    now: datetime,
    destination: Destination | None = None,
) -> tuple[list[Entry], list[tuple[Entry, str]]]:
    """Entries for (profile id, event, shaped) triples not filtered out, numbered from `first` in
    the order given: (entries to deliver, entries refused with why). An entry too big for the
    queue or for `destination` is refused; its failed record keeps the event as it came."""
    stamp = iso(now)
    taken: list[Entry] = []
    refused: list[tuple[Entry, str]] = []
    for offset, (profile_id, event, shaped) in enumerate(kept):
        seq, message_id = seq_of(first + offset), str(event.get("messageId", ""))
        why = shaped.refused or "refused"
        if shaped.payload is not None:
            entry = Entry(seq, profile_id, message_id, shaped.payload, stamp)
            too_big = oversize(destination, entry) if destination is not None else None
            if too_big is None:
                taken.append(entry)
                continue
            why = too_big
        refused.append((Entry(seq, profile_id, message_id, dict(event), stamp), why))
    return taken, refused


def oversize(destination: Destination, entry: Entry) -> str | None:
    """Why `entry` can never be delivered to `destination` for its size, or None."""
    if destination.kind == "kinesis":
        size = record_size(kinesis_record(entry, destination.id))
        if size > KINESIS_RECORD_MAX:
            return f"the Kinesis record is {size:,} bytes; Kinesis takes at most 1 MiB ({KINESIS_RECORD_MAX:,} bytes)"
    queued = len(json.dumps(entry.payload, separators=(",", ":"), default=str))  # as the queue stores it
    if queued > QUEUED_PAYLOAD_MAX:
        return f"the shaped event is {queued:,} bytes; a destination's queue holds at most {QUEUED_PAYLOAD_MAX:,}"
    return None


def batches(entries: Sequence[Entry], size: int) -> Iterator[list[Entry]]:
    for start in range(0, len(entries), size):
        yield list(entries[start : start + size])


def batches_for(destination: Destination, entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    """The calls `entries` (oldest first) go in to `destination`."""
    if destination.kind == "kinesis":
        return kinesis_batches(entries, destination.id, destination.batch_size)
    return batches(entries, destination.batch_size)


def kinesis_batches(
    entries: Sequence[Entry], destination_id: str, size: int, max_bytes: int = KINESIS_CALL_MAX
) -> Iterator[list[Entry]]:
    """PutRecords calls for `entries`: each at most `size` records and `max_bytes`, and at most one
    record per person, a person's records in their order from call to call.

    Why one per person: PutRecords goes on past a record it fails to write, so a person's later
    record in the same call could be written before the failed one is tried again. With one
    each, a call that partly fails leaves each of its people at most one record behind, and the
    drain stops there: nothing later of theirs is sent before it."""
    sizes = {e.seq: record_size(kinesis_record(e, destination_id)) for e in entries}
    rest = list(entries)
    while rest:
        batch: list[Entry] = []
        left: list[Entry] = []
        seen: set[str] = set()  # people in this call, or with a record held back from it
        total = 0
        for index, entry in enumerate(rest):
            if len(batch) >= size:
                left.extend(rest[index:])
                break
            if entry.profile_id in seen or (batch and total + sizes[entry.seq] > max_bytes):
                seen.add(entry.profile_id)
                left.append(entry)
                continue
            seen.add(entry.profile_id)
            batch.append(entry)
            total += sizes[entry.seq]
        yield batch
        rest = left


def idempotency_key(entries: Sequence[Entry]) -> str:
    """A delivery's key: the event's messageId, or for a batch a digest of its events' messageIds
    (each event in the body carries its own messageId as well)."""
    if len(entries) == 1:
        return entries[0].message_id
    digest = hashlib.sha256("\n".join(e.message_id for e in entries).encode()).hexdigest()
    return f"batch-{digest[:40]}"


def envelope(entry: Entry, destination_id: str) -> dict[str, Any]:
    """An event as a webhook or EventBridge destination receives it: its messageId (the
    idempotency key), the person, and the event as the projection left it."""
    return {
        "messageId": entry.message_id,
        "profileId": entry.profile_id,
        "destinationId": destination_id,
        "event": entry.payload,
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def webhook_body(entries: Sequence[Entry], destination_id: str, sent_at: datetime) -> bytes:
    return _json({"sentAt": iso(sent_at), "batch": [envelope(e, destination_id) for e in entries]})


def segment_body(entries: Sequence[Entry], sent_at: datetime) -> bytes:
    """Segment's batch shape (POST /v1/batch): the calls themselves, each with its messageId."""
    return _json({"batch": [e.payload for e in entries], "sentAt": iso(sent_at)})


def segment_url(base: str) -> str:
    return base.rstrip("/") + "/v1/batch"


def basic_auth(write_key: str) -> str:
    """Segment's authentication: the write key as the user name of HTTP Basic, no password."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Midstage-Signature header: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(header: str, body: bytes, secret: str, now: int, tolerance_s: int = 300) -> bool:
    """How a receiver checks a delivery (the reference implementation of docs/integrations.md's recipe):
    split the header on "," into `t` and `v1`; compute hex HMAC-SHA256 with the destination's secret
    over ``<t> + "." + <raw body>``; accept when it equals `v1` (constant-time) and `t` is within
    `tolerance_s` of the receiver's clock."""
    fields = dict(item.strip().partition("=")[::2] for item in header.split(","))
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not (stamp.isascii() and stamp.isdigit()) or abs(now - int(stamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, int(stamp)).partition(",v1=")[2], given)


def eventbridge_entries(entries: Sequence[Entry], destination: Destination) -> list[dict[str, Any]]:
    assert destination.bus_arn is not None  # an eventbridge destination has one (models/destinations.py)
    return [
        {
            "EventBusName": destination.bus_arn,
            "Source": destination.source,
            "DetailType": str(e.payload.get("type") or "event")[:128],
            "Detail": _json(envelope(e, destination.id)).decode(),
        }
        for e in entries
    ]


def partition_key(profile_id: str) -> str:
    """A person's records share a partition key, so a shard (which Kinesis keeps in order): the
    profile id, or its digest past Kinesis's 256 characters."""
    if 1 <= len(profile_id) <= KINESIS_KEY_MAX:
        return profile_id
    return hashlib.sha256(profile_id.encode()).hexdigest()


def kinesis_record(entry: Entry, destination_id: str) -> dict[str, Any]:
    """One PutRecords record: the webhook's batch item as one JSON line (newline-terminated, so
    that records a consumer or Firehose concatenates stay one JSON object a line)."""
    return {"Data": _json(envelope(entry, destination_id)) + b"\n", "PartitionKey": partition_key(entry.profile_id)}


def record_size(record: Mapping[str, Any]) -> int:
    """What Kinesis counts against its limits: the data and the partition key."""
    return len(record["Data"]) + len(str(record["PartitionKey"]).encode())


def retry_delay(attempts: int, draw: float) -> float:
    """Seconds before attempt `attempts + 1`, `draw` in [0, 1) spreading destinations apart."""
    pause = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(attempts - 1, 0))
    return pause * (0.5 + draw / 2)


def expired(entry: Entry, now: datetime, max_age_s: float) -> bool:
    """An entry waited longer than the destination's retry window: it goes to the failed records."""
    enqueued = datetime.fromisoformat(entry.enqueued_at.replace("Z", "+00:00"))
    return (now - enqueued).total_seconds() > max_age_s
