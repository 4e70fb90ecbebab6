"""SES feedback: what happened to an email after SES accepted it.

SES event publishing sends each event (configuration set -> SNS topic -> SQS queue) to us as one SQS
record. The record body is the SNS envelope, whose `Message` is the SES event as a JSON string, or the SES
event itself when the subscription uses raw message delivery. Identity notifications (the older
per-identity Bounce/Complaint/Delivery topics, keyed by `notificationType`) have the same shape and are
accepted too.

Remote mail servers write the diagnostic text and user agents, so every string taken from an event is
treated as hostile: control characters are removed and lengths are bounded before it reaches a log line
or a profile.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from midstage.logic.timefmt import iso, parse_iso

MAX_BODY_BYTES = 256 * 1024  # the SQS message limit: anything larger did not come from SES through SQS
MESSAGE_TAG = "midstage-message"  # the SES message tag that carries our message id

_EVENT_KINDS = {
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "Send": "send",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "rendering_failure",
    "DeliveryDelay": "delivery_delay",
    "Subscription": "subscription",
}
# Identity notifications only ever report these three.
_LEGACY_KINDS = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery"}
# The key holding each kind's details; "Rendering Failure" is the odd one out.
_DETAIL_KEYS = {
    "bounce": "bounce",
    "complaint": "complaint",
    "delivery": "delivery",
    "send": "send",
    "reject": "reject",
    "open": "open",
    "click": "click",
    "rendering_failure": "failure",
    "delivery_delay": "deliveryDelay",
    "subscription": "subscription",
}
# Kinds whose details must be present for the event to mean anything.
_DETAIL_REQUIRED = frozenset({"bounce", "complaint", "delivery", "reject", "open", "click", "rendering_failure"})
_SNS_IGNORED = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})

# C0/C1 controls, and the Unicode line separators and bidirectional overrides that make a log line lie.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_REASON_LIMIT = 1000
_LINK_LIMIT = 2048
_AGENT_LIMIT = 512
_ADDRESS_LIMIT = 320


class FeedbackError(ValueError):
    """The notification cannot be read; `reason` says why (and never echoes more than a short excerpt)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Feedback:
    kind: str  # bounce | complaint | delivery | send | reject | open | click | rendering_failure | ...
    provider_message_id: str  # SES's mail.messageId
    message_id: str | None  # ours, from the midstage-message tag (absent from identity notifications)
    recipients: tuple[str, ...]  # the addresses this event is about, lower-cased
    at: str  # when it happened, ISO 8601 UTC with milliseconds
    permanent: bool  # a hard bounce: this address will never accept mail
    suppress: bool  # stop mailing these recipients: hard bounce or complaint
    reason: str
    link: str | None = None  # the clicked link
    user_agent: str | None = None  # of an open, click or complaint


def _clean(value: object, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    text = " ".join(_UNPRINTABLE.sub(" ", value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _excerpt(value: object) -> str:
    return repr(_clean(str(value), 60))


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FeedbackError(f"{where} is missing or not a JSON object")
    return value


def _load(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise FeedbackError(f"{where} is not valid JSON: {_clean(str(error), 120)}") from None


def _address(value: object) -> str | None:
    """A bare, lower-cased address; None for anything that is not one."""
    if not isinstance(value, str) or len(value) > 2 * _ADDRESS_LIMIT:
        return None
    address = (parseaddr(value)[1] if "<" in value else value).strip().lower()
    local, _, domain = address.rpartition("@")
    if (
        not local
        or not domain
        or len(address) > _ADDRESS_LIMIT
        or _UNPRINTABLE.search(address)
        or any(char.isspace() or char in "<>,;\"'" for char in address)
    ):
        return None
    return address


def _addresses(values: object, key: str | None = None) -> tuple[str, ...]:
    """Addresses from a list of strings, or of objects holding one under `key`; duplicates dropped."""
    found: dict[str, None] = {}
    for item in values if isinstance(values, list) else []:
        address = _address(item.get(key) if key and isinstance(item, dict) else item)
        if address:
            found[address] = None
    return tuple(found)


def _timestamp(*candidates: object) -> str:
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            try:
                return iso(parse_iso(candidate))
            except ValueError:
                raise FeedbackError(f"timestamp {_excerpt(candidate)} is not ISO 8601") from None
    raise FeedbackError("the event carries no timestamp")


def _our_message_id(mail: Mapping[str, Any]) -> str | None:
    tags = mail.get("tags")
    values = tags.get(MESSAGE_TAG) if isinstance(tags, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], str):
        return _clean(values[0], 256) or None
    return None


def _envelope(body: str | bytes) -> tuple[dict[str, Any], str | None] | None:
    """The SES event inside a record body and the envelope's timestamp; None for SNS housekeeping."""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > MAX_BODY_BYTES:
        raise FeedbackError(f"notification is {size} bytes, over the {MAX_BODY_BYTES}-byte limit")
    document = _object(_load(body, "notification"), "notification")
    if "Type" not in document:
        return document, None  # raw message delivery: the SES event itself
    kind = document["Type"]
    if kind in _SNS_IGNORED:
        return None
    if kind != "Notification":
        raise FeedbackError(f"unknown SNS message type {_excerpt(kind)}")
    message = document.get("Message")
    if not isinstance(message, str):
        raise FeedbackError("SNS notification has no Message string")
    timestamp = document.get("Timestamp")
    return _object(_load(message, "SNS Message"), "SNS Message"), timestamp if isinstance(timestamp, str) else None


def is_subscription_confirmation(body: str | bytes) -> bool:
    """True for SNS's SubscriptionConfirmation (its SubscribeURL must be visited to start the flow)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and document.get("Type") == "SubscriptionConfirmation"


def parse_notification(body: str | bytes) -> list[Feedback]:
    """The feedback in one SQS record body; [] for SNS subscription messages; FeedbackError otherwise."""
    unwrapped = _envelope(body)
    if unwrapped is None:
        return []
    event, sent_at = unwrapped
    if "eventType" in event:
        kind = _EVENT_KINDS.get(event["eventType"]) if isinstance(event["eventType"], str) else None
        if kind is None:
            raise FeedbackError(f"unknown SES event type {_excerpt(event['eventType'])}")
    elif "notificationType" in event:
        if event["notificationType"] == "AmazonSnsSubscriptionSucceeded":
            return []  # SES's note that an identity's notification topic is now set
        kind = _LEGACY_KINDS.get(event["notificationType"]) if isinstance(event["notificationType"], str) else None
        if kind is None:
            raise FeedbackError(f"unknown SES notification type {_excerpt(event['notificationType'])}")
    else:
        raise FeedbackError("neither an SES event (eventType) nor an SES notification (notificationType)")
    return [_feedback(kind, event, sent_at)]


def _feedback(kind: str, event: dict[str, Any], sent_at: str | None) -> Feedback:
    mail = _object(event.get("mail"), "mail")
    provider_id = mail.get("messageId")
    if not isinstance(provider_id, str) or not provider_id.strip():
        raise FeedbackError("mail.messageId is missing")
    detail_key = _DETAIL_KEYS[kind]
    raw_detail = event.get(detail_key)
    optional = kind not in _DETAIL_REQUIRED and raw_detail is None
    detail = {} if optional else _object(raw_detail, detail_key)
    destination = _addresses(mail.get("destination"))
    permanent = suppress = False
    link = user_agent = None

    if kind == "bounce":
        recipients = _required(
            _addresses(_list(detail, "bouncedRecipients"), "emailAddress"), "bounce.bouncedRecipients"
        )
        bounce_type = _clean(detail.get("bounceType"), 40) or "Undetermined"
        permanent = suppress = bounce_type == "Permanent"
        diagnostics = [
            _clean(item.get("diagnosticCode") or item.get("status"), 300)
            for item in _list(detail, "bouncedRecipients")
            if isinstance(item, dict)
        ]
        reason = _join(f"{bounce_type}/{_clean(detail.get('bounceSubType'), 60) or 'General'}", *diagnostics)
    elif kind == "complaint":
        recipients = _required(
            _addresses(_list(detail, "complainedRecipients"), "emailAddress"), "complaint.complainedRecipients"
        )
        feedback_type = _clean(detail.get("complaintFeedbackType"), 60)
        # A "not-spam" report is a recipient taking back a spam verdict, not a complaint.
        suppress = feedback_type != "not-spam"
        sub_type = _clean(detail.get("complaintSubType"), 60)
        reason = _join(f"complaint: {feedback_type or 'unspecified'}", sub_type)
        user_agent = _clean(detail.get("userAgent"), _AGENT_LIMIT) or None
    elif kind == "delivery":
        recipients = _addresses(detail.get("recipients")) or destination
        reason = _clean(detail.get("smtpResponse"), _REASON_LIMIT) or "delivered"
    elif kind == "delivery_delay":
        recipients = _addresses(_list(detail, "delayedRecipients"), "emailAddress") or destination
        diagnostics = [
            _clean(item.get("diagnosticCode") or item.get("status"), 300)
            for item in _list(detail, "delayedRecipients")
            if isinstance(item, dict)
        ]
        reason = _join(f"delayed: {_clean(detail.get('delayType'), 60) or 'unspecified'}", *diagnostics)
    elif kind == "reject":
        recipients = destination
        reason = _clean(detail.get("reason"), _REASON_LIMIT) or "rejected"
    elif kind == "rendering_failure":
        recipients = destination
        template = _clean(detail.get("templateName"), 120)
        reason = _join(_clean(detail.get("errorMessage"), _REASON_LIMIT) or "rendering failed", template)
    elif kind == "click":
        recipients = destination
        link = _clean(detail.get("link"), _LINK_LIMIT) or None
        user_agent = _clean(detail.get("userAgent"), _AGENT_LIMIT) or None
        reason = "clicked"
    elif kind == "open":
        recipients = destination
        user_agent = _clean(detail.get("userAgent"), _AGENT_LIMIT) or None
        reason = "opened"
    elif kind == "subscription":
        recipients = destination
        reason = _subscription_reason(detail)
    else:  # send
        recipients = destination
        reason = "accepted by SES"

    return Feedback(
        kind=kind,
        provider_message_id=_clean(provider_id, 256),
        message_id=_our_message_id(mail),
        recipients=recipients,
        at=_timestamp(detail.get("timestamp"), mail.get("timestamp"), sent_at),
        permanent=permanent,
        suppress=suppress,
        reason=_clean(reason, _REASON_LIMIT),
        link=link,
        user_agent=user_agent,
    )


def _required(recipients: tuple[str, ...], where: str) -> tuple[str, ...]:
    # These kinds suppress addresses: guessing them from mail.destination could silence the wrong people.
    if not recipients:
        raise FeedbackError(f"{where} holds no email address")
    return recipients


def _list(detail: Mapping[str, Any], key: str) -> list[Any]:
    value = detail.get(key)
    return value if isinstance(value, list) else []


def _join(head: str, *details: str) -> str:
    seen = list(dict.fromkeys(detail for detail in details if detail))
    return f"{head}: {'; '.join(seen)}" if seen else head


def _subscription_reason(detail: Mapping[str, Any]) -> str:
    source = _clean(detail.get("source"), 60) or "unknown source"
    preferences = detail.get("newTopicPreferences")
    if isinstance(preferences, dict) and preferences.get("unsubscribeAll") is True:
        return f"unsubscribed from all topics via {source}"
    opted_out = [
        _clean(topic.get("topicName"), 80)
        for topic in (preferences.get("topicSubscriptionStatus") if isinstance(preferences, dict) else None) or []
        if isinstance(topic, dict) and topic.get("subscriptionStatus") == "OptOut"
    ]
    return _join(f"subscription preferences changed via {source}", *(f"opted out of {t}" for t in opted_out if t))
