"""Domain objects into archive records. Pure: the archive time is an argument.

Every record id is derived from what it records, so archiving the same fact twice (a redelivered
batch, a replay) yields the same id and readers can drop the repeat.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from midstage.logic.profile import ORDER_COMPLETED, order_value
from midstage.logic.timefmt import parse_iso
from midstage.models.archive import (
    ArchiveRecord,
    EventRecord,
    ExposureRecord,
    JourneyMoveRecord,
    MergeRecord,
    MessageKind,
    MessageRecord,
    SegmentTransitionRecord,
)
from midstage.models.messaging import MessageRequest

# The context keys kept in the archive: where the event came from, not who the device is.
_CONTEXT_KEPT = ("page", "referrer", "campaign", "library", "locale", "timezone", "app", "os", "screen")
_UTM_KEYS = (("source", "utm_source"), ("medium", "utm_medium"), ("name", "utm_campaign"))
_UTM_EXTRA = (("term", "utm_term"), ("content", "utm_content"))
_EMAIL_LIKE = re.compile(r"[^\s@()]+@[^\s@()]+")
_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_FEEDBACK_KINDS: dict[str, MessageKind] = {
    "delivery": "message_delivered",
    "open": "message_opened",
    "click": "message_clicked",
    "bounce": "message_bounced",
    "complaint": "message_complained",
    "unsubscribe": "message_unsubscribed",
    "subscription": "message_unsubscribed",
}


def record_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _json(value: Any) -> str | None:
    if not value:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str)


def _text(value: Any, limit: int = 512) -> str | None:
    return None if value is None else str(value)[:limit]


def event_record(
    event: Mapping[str, Any],
    profile_id: str,
    archived_at: datetime,
    *,
    conversion_event: str = ORDER_COMPLETED,
    value_property: str = "revenue",
) -> EventRecord:
    """An enriched event (collect's output, as the profile updater applies it) and the profile it
    landed on. UTM fields come from `context.campaign` (Segment's spec: name, source, medium, term,
    content). The conversion event's value is `value_property` (for Order Completed, the spec's
    revenue, else total)."""
    context = event.get("context") or {}
    given = context.get("campaign")
    campaign: Mapping[str, Any] = given if isinstance(given, dict) else {}
    utm = {column: _text(campaign.get(key), 256) for key, column in _UTM_KEYS + _UTM_EXTRA}
    properties = event.get("properties") or {}
    if event.get("type") in {"identify", "group"}:
        properties = event.get("traits") or {}
    name = event.get("event") if event.get("type") == "track" else event.get("name")
    revenue: float | None = None
    currency: str | None = None
    if event.get("type") == "track" and name == conversion_event:
        value = order_value(properties) if name == ORDER_COMPLETED else _number(properties.get(value_property))
        revenue = float(value) if value is not None else None
        currency = _text(properties.get("currency"), 8)
    return EventRecord(
        record_id=record_id("event", str(event.get("sourceId")), str(event["messageId"])),
        occurred_at=parse_iso(event["timestamp"]),
        archived_at=archived_at,
        profile_id=profile_id,
        user_id=event.get("userId"),
        anonymous_id=event.get("anonymousId"),
        source_id=str(event.get("sourceId")),
        event_type=event["type"],
        event=_text(name),
        message_id=str(event["messageId"]),
        revenue=revenue,
        currency=currency,
        properties=_json(properties) if isinstance(properties, dict) else None,
        context=_json({k: context[k] for k in _CONTEXT_KEPT if k in context}),
        campaign=utm["utm_campaign"],
        **utm,
    )


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _message(
    kind: MessageKind,
    request: MessageRequest,
    at: datetime,
    archived_at: datetime,
    *,
    channel: str | None,
    salt: str = "",
    **fields: Any,
) -> MessageRecord:
    origin = request.origin
    template = request.template_for(channel) if channel else None
    if template is None and isinstance(request.template, str):
        template = request.template
    return MessageRecord(
        kind=kind,
        record_id=record_id(kind, request.message_id, salt),
        occurred_at=at,
        archived_at=archived_at,
        profile_id=request.profile_id,
        message_id=request.message_id,
        channel=channel,
        category=request.category,
        origin_kind=origin.kind,
        origin_id=origin.id,
        origin_version=origin.version,
        origin_step=origin.step or None,
        template_id=template,
        experiment_id=_text(request.vars.get("experiment_id")) if request.vars else None,
        variant=_text(request.vars.get("variant")) if request.vars else None,
        campaign=origin.id,
        **fields,
    )


def message_requested(request: MessageRequest, archived_at: datetime) -> MessageRecord:
    return _message(
        "message_requested",
        request,
        parse_iso(request.requested_at),
        archived_at,
        channel=request.channels[0],
        detail=_json({"channels": request.channels}),
    )


def message_outcome(
    request: MessageRequest,
    status: str,
    reason: str,
    channel: str | None,
    at: datetime,
    archived_at: datetime,
    *,
    deferred_until: str | None = None,
) -> MessageRecord | None:
    """Delivery's outcome (logic/delivery.Outcome's status, reason, channel). A blocked or
    deferred message names its guard: the reason's prefix (no_consent, suppressed,
    frequency_cap, quiet_hours, no_profile, ...). Addresses in reasons are masked out."""
    kinds: dict[str, MessageKind] = {
        "sent": "message_sent",
        "blocked": "message_blocked",
        "deferred": "message_deferred",
        "failed": "message_failed",
    }
    kind = kinds.get(status)
    if kind is None:
        return None
    guard = reason.split(":", 1)[0].strip() if kind in {"message_blocked", "message_deferred"} and reason else None
    return _message(
        kind,
        request,
        at,
        archived_at,
        channel=channel,
        # A deferred message may later be sent: each deferral (and its end) is a fact of its own.
        salt=deferred_until or "",
        guard=guard,
        reason=mask_addresses(reason)[:1000] if reason else None,
        detail=_json({"deferred_until": deferred_until}) if deferred_until else None,
    )


def mask_addresses(text: str) -> str:
    return _PHONE_LIKE.sub("<phone>", _EMAIL_LIKE.sub("<address>", text))


def message_feedback(
    request: MessageRequest,
    feedback_kind: str,
    at: datetime,
    archived_at: datetime,
    *,
    channel: str,
    provider_event_id: str,
    link: str | None = None,
    permanent: bool | None = None,
    reason: str = "",
) -> MessageRecord | None:
    """What happened after the provider took the message: logic/feedback's kinds (delivery, open,
    click, bounce, complaint, subscription) and the platform's own unsubscribe. The ledger's request
    supplies the origin; `provider_event_id` tells two opens of one message apart."""
    kind = _FEEDBACK_KINDS.get(feedback_kind)
    if kind is None:
        return None
    return _message(
        kind,
        request,
        at,
        archived_at,
        channel=channel,
        salt=provider_event_id,
        link=link[:2048] if link else None,
        reason=mask_addresses(reason)[:1000] if reason else None,
        detail=_json({"bounce_type": "Permanent" if permanent else "Transient"}) if kind == "message_bounced" else None,
    )


def message_converted(
    request: MessageRequest,
    at: datetime,
    archived_at: datetime,
    *,
    channel: str,
    event_message_id: str,
    value: float | None,
    currency: str | None = None,
) -> MessageRecord:
    """A conversion the platform credits to this message (its attribution rule's verdict)."""
    return _message(
        "message_converted",
        request,
        at,
        archived_at,
        channel=channel,
        salt=event_message_id,
        revenue=value,
        currency=currency,
        detail=_json({"event_message_id": event_message_id}),
    )


def merge_record(record: Mapping[str, Any], archived_at: datetime) -> MergeRecord:
    """The profile updater's merge record (logic/ingest: kind "merged")."""
    return MergeRecord(
        record_id=record_id("identity_merged", str(record["profile_id"]), str(record["merged_profile_id"])),
        occurred_at=parse_iso(record["at"]),
        archived_at=archived_at,
        profile_id=record["profile_id"],
        merged_profile_id=record["merged_profile_id"],
        message_id=record.get("trigger_message_id"),
        source_id=record.get("trigger_source_id"),
        detail=_json({"identifiers": list(record.get("identifiers") or [])}),
    )


def segment_transition(detail_type: str, detail: Mapping[str, Any], archived_at: datetime) -> SegmentTransitionRecord:
    """A `segment.entered` / `segment.exited` domain event's detail (logic/ingest.segment_events)."""
    transition = {"segment.entered": "entered", "segment.exited": "exited"}[detail_type]
    return SegmentTransitionRecord(
        record_id=record_id("segment_transition", detail["profileId"], detail["segmentId"], detail["occurrence"]),
        occurred_at=parse_iso(detail["at"]),
        archived_at=archived_at,
        profile_id=detail["profileId"],
        segment_id=detail["segmentId"],
        transition=transition,
    )


def journey_move(
    *,
    journey_id: str,
    journey_version: int | None,
    profile_id: str,
    run: int,
    seq: int,
    transition: str,
    step: str | None,
    previous_step: str | None,
    at: datetime,
    archived_at: datetime,
    reason: str | None = None,
) -> JourneyMoveRecord:
    """One move of a journey instance (logic/journeys.Instance: its run, seq and step)."""
    return JourneyMoveRecord(
        record_id=record_id("journey_move", journey_id, profile_id, str(run), str(seq), transition),
        occurred_at=at,
        archived_at=archived_at,
        profile_id=profile_id,
        origin_id=journey_id,
        origin_version=journey_version,
        origin_step=step,
        previous_step=previous_step,
        transition=transition,
        reason=reason,
        detail=_json({"run": run, "seq": seq}),
    )


def exposure(
    *,
    experiment_id: str,
    variant: str,
    profile_id: str,
    at: datetime,
    archived_at: datetime,
    origin_kind: str | None = None,
    origin_id: str | None = None,
    message_id: str | None = None,
    phase: int | None = None,
) -> ExposureRecord:
    """An experiment exposure: one per (experiment, person, message or first exposure), and per
    phase for an experiment's own assignments (a new phase deals everyone again)."""
    parts = (experiment_id, profile_id, message_id or "") + (() if phase is None else (f"phase:{phase}",))
    return ExposureRecord(
        record_id=record_id("experiment_exposure", *parts),
        occurred_at=at,
        archived_at=archived_at,
        profile_id=profile_id,
        experiment_id=experiment_id,
        variant=variant,
        origin_kind=origin_kind,
        origin_id=origin_id,
        message_id=message_id,
    )


# ------------------------------------------------------------------------------ what producers put
@dataclass
class Batch:
    """The records a producer puts, and what could not become a record (counted, never raised:
    the fact itself was handled; only its archive copy is missing)."""

    records: list[ArchiveRecord] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def add(self, make: Any, *args: Any, **kwargs: Any) -> None:
        try:
            record = make(*args, **kwargs)
        except (ValidationError, ValueError, KeyError, TypeError) as error:
            self.refused.append(f"{getattr(make, '__name__', 'record')}: {str(error)[:200]}")
            return
        if record is not None:
            self.records.append(record)


def unit_records(
    profile_id: str,
    events: Iterable[Mapping[str, Any]],
    domain: Iterable[tuple[str, Mapping[str, Any]]],
    archived_at: datetime,
) -> Batch:
    """What one committed unit of the profile updater archives: each event applied (enriched, on
    the profile it landed on), each merge and each segment transition its domain events tell."""
    batch = Batch()
    for event in events:
        batch.add(event_record, event, profile_id, archived_at)
    for detail_type, detail in domain:
        if detail_type == "identity.merged":
            batch.add(merge_record, detail, archived_at)
        elif detail_type in {"segment.entered", "segment.exited"}:
            batch.add(segment_transition, detail_type, detail, archived_at)
    return batch


def delivery_records(
    request: MessageRequest,
    status: str,
    reason: str,
    channel: str | None,
    at: datetime,
    archived_at: datetime,
    *,
    deferred_until: str | None = None,
) -> Batch:
    """What one delivery attempt archives: the request (the same record however often it is
    tried) and its outcome when it has one (a duplicate or a message in flight has none)."""
    batch = Batch()
    batch.add(message_requested, request, archived_at)
    batch.add(message_outcome, request, status, reason, channel, at, archived_at, deferred_until=deferred_until)
    return batch


def journey_records(
    *,
    journey_id: str,
    journey_version: int | None,
    profile_id: str,
    run: int,
    seq: int,
    path: list[list[str]],
    steps_run: int,
    entered_at: str | None,
    ended_at: str | None,
    status: str,
    exit_reason: str | None,
    archived_at: datetime,
) -> Batch:
    """What one committed journey move archives: the entry (when it entered), each step it ran
    (the tail of its path: [step, at, outcome]) and its end (exited or completed)."""
    batch = Batch()
    common = {"journey_id": journey_id, "journey_version": journey_version, "profile_id": profile_id, "run": run}
    if entered_at:
        at = parse_iso(entered_at)
        batch.add(
            journey_move,
            **common,
            seq=0,
            transition="entered",
            step=None,
            previous_step=None,
            at=at,
            archived_at=archived_at,
        )
    tail = path[len(path) - steps_run :] if steps_run else []
    before = path[len(path) - steps_run - 1][0] if 0 < steps_run < len(path) else None
    for offset, entry in enumerate(tail):
        step, at_text = entry[0], entry[1] if len(entry) > 1 else ""
        batch.add(
            journey_move,
            **common,
            seq=seq - steps_run + offset + 1,
            transition="moved",
            step=step,
            previous_step=before,
            at=parse_iso(at_text),
            archived_at=archived_at,
            reason=entry[2] if len(entry) > 2 and entry[2] else None,
        )
        before = step
    if ended_at and status in {"exited", "completed"}:
        batch.add(
            journey_move,
            **common,
            seq=seq,
            transition="exited",
            step=None,
            previous_step=before,
            at=parse_iso(ended_at),
            archived_at=archived_at,
            reason=exit_reason or status,
        )
    return batch
