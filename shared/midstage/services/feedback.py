"""SES feedback: suppress what must not be mailed again, record statuses, tell the profile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from midstage.logic import internal_events
from midstage.logic.archive import records
from midstage.logic.feedback import Feedback
from midstage.logic.timefmt import parse_iso
from midstage.models.messaging import MessageRequest
from midstage.services.ports import ArchiveSink, EventSink, Profiles, StatusLedger, Suppressions

# kind -> (message status, whether it replaces the status or only joins the history)
_STATUS = {
    "delivery": ("delivered", True),
    "bounce": ("bounced", True),
    "reject": ("failed", True),
    "rendering_failure": ("failed", True),
    "complaint": ("complained", False),
    "open": ("opened", False),
    "click": ("clicked", False),
    "send": ("accepted", False),
    "delivery_delay": ("delayed", False),
    "subscription": ("subscription", False),
}
# The consent source of an unsubscribe SES's list management reported (List-Unsubscribe header,
# its subscription page).
SES_UNSUBSCRIBE_SOURCE = "ses:subscription"
_EVENTS = {
    "bounce": "Email Bounced",
    "complaint": "Email Marked as Spam",
    "delivery": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Link Clicked",
}


@dataclass
class Handled:
    suppressed: list[str] = field(default_factory=list)
    statuses: int = 0
    events: int = 0
    unknown_messages: int = 0
    unarchived: int = 0


def handle(
    notices: Sequence[Feedback],
    ledger: StatusLedger,
    suppressions: Suppressions,
    profiles: Profiles,
    events: EventSink,
    *,
    archive: ArchiveSink | None = None,
    now: datetime | None = None,
) -> Handled:
    """With `archive`, what each notice tells about one of our messages is archived too (after
    everything else: a failure sends the notification back to its queue, and every step above
    is idempotent)."""
    handled = Handled()
    outgoing: dict[str, list[dict[str, Any]]] = {}
    archived = records.Batch()
    for notice in notices:
        at = parse_iso(notice.at)
        if notice.suppress:
            reason = "complaint" if notice.kind == "complaint" else "hard_bounce"
            for address in notice.recipients:
                suppressions.suppress("email", address, reason, "all", at, detail=notice.reason)
                handled.suppressed.append(address)
        elif notice.kind == "subscription" and "unsubscribed" in notice.reason.lower():
            # SES's own list management header: an unsubscribe, so marketing stops (not receipts).
            for address in notice.recipients:
                suppressions.suppress("email", address, "unsubscribe", "marketing", at, detail=notice.reason)
                handled.suppressed.append(address)
        if not notice.message_id:
            handled.unknown_messages += 1  # mail not sent by us, or sent without our tags
            continue
        status, final = _STATUS.get(notice.kind, (notice.kind, False))
        if ledger.update_status(
            notice.message_id,
            status,
            notice.reason or notice.kind,
            at,
            final_only=final,
            provider_id=notice.provider_message_id,
        ):
            handled.statuses += 1
        else:
            handled.unknown_messages += 1
            continue
        name = _EVENTS.get(notice.kind)
        unsubscribed = notice.kind == "subscription" and "unsubscribed" in notice.reason.lower()
        if unsubscribed:
            name = "Unsubscribed"  # the person's email-marketing consent is refused, at SES's time
        if name is None and not (archive is not None and _archived(notice)):
            continue
        message = ledger.get(notice.message_id) or {}
        if archive is not None and _archived(notice):
            _archive_notice(archived, notice, message, now or at)
        if name is None:
            continue
        profile = profiles.profile(str(message.get("profileId", ""))) if message.get("profileId") else None
        person = internal_events.addressed_to(profile) if profile else None
        if person is None:
            continue
        properties: dict[str, Any] = {"messageId": notice.message_id, "reason": notice.reason[:500]}
        if unsubscribed:
            properties.update(channel="email", purpose="marketing", source=SES_UNSUBSCRIBE_SOURCE)
        if notice.link:
            properties["url"] = notice.link[:2000]
        cause = f"ses|{notice.kind}|{notice.provider_message_id}|{notice.at}|{notice.link or ''}"
        event = internal_events.track(
            person, name, properties, message_id=internal_events.internal_id(cause), timestamp=notice.at
        )
        outgoing.setdefault(internal_events.person_key(event), []).append(event)
        handled.events += 1
    if outgoing:
        events.send(outgoing)
    if archive is not None and archived.records:
        archive.put(archived.records)
    handled.unarchived = len(archived.refused)
    return handled


def _archived(notice: Feedback) -> bool:
    if notice.kind == "subscription":
        return "unsubscribed" in notice.reason.lower()
    return notice.kind in {"delivery", "open", "click", "bounce", "complaint"}


def _archive_notice(batch: records.Batch, notice: Feedback, message: Mapping[str, Any], now: datetime) -> None:
    raw = message.get("request")
    if not isinstance(raw, str):
        batch.refused.append(f"message {notice.message_id}: the ledger holds no request")
        return
    try:
        request = MessageRequest.model_validate_json(raw)
    except ValueError as error:
        batch.refused.append(f"message {notice.message_id}: {str(error)[:200]}")
        return
    batch.add(
        records.message_feedback,
        request,
        notice.kind,
        parse_iso(notice.at),
        now,
        channel="email",
        # Two opens of one message are two facts; the same notification twice is one.
        provider_event_id=f"{notice.provider_message_id}|{notice.at}|{notice.link or ''}",
        link=notice.link,
        permanent=notice.permanent,
        reason=notice.reason,
    )
