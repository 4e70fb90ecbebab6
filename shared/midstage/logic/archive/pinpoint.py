"""Archive records in Amazon Pinpoint's event-stream envelope, for an existing `all_events` table.

Pinpoint streamed one JSON object per event (to Kinesis or Firehose, then S3): `event_type`,
millisecond `event_timestamp` and `arrival_timestamp`, `event_version`, `application`,
`client.client_id` (the endpoint; here the profile), string `attributes`, numeric `metrics`,
and for email `facets.email_channel.mail_event`. Campaign and journey sends carry their ids in
`attributes` (`campaign_id`, `campaign_activity_id`, `treatment_id`; `journey_id`,
`journey_activity_id`). Records with no Pinpoint counterpart (blocked messages, segment
transitions, merges, spend) have no envelope.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from midstage.models.archive import ArchiveRecord, EventRecord, MessageRecord

EMAIL_TYPES = {
    "message_sent": "_email.send",
    "message_delivered": "_email.delivered",
    "message_opened": "_email.open",
    "message_clicked": "_email.click",
    "message_complained": "_email.complaint",
    "message_unsubscribed": "_email.unsubscribe",
    "message_failed": "_email.rejected",
}
SMS_TYPES = {
    "message_sent": "_SMS.BUFFERED",
    "message_delivered": "_SMS.SUCCESS",
    "message_failed": "_SMS.FAILURE",
    "message_bounced": "_SMS.FAILURE",
    "message_unsubscribed": "_SMS.OPTOUT",
}
PUSH_TYPES = {"message_sent": "_campaign.send", "message_opened": "_campaign.opened_notification"}
_MAIL_EVENT_KEYS = {"_email.delivered": "delivery", "_email.open": "open", "_email.click": "click"}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def event_type_of(record: ArchiveRecord) -> str | None:
    if isinstance(record, EventRecord):
        if record.event_type == "track":
            return record.event
        if record.event_type in {"page", "screen"}:
            return "_page.viewed" if record.event_type == "page" else "_screen.viewed"
        return None
    if not isinstance(record, MessageRecord):
        return None
    if record.channel == "email":
        if record.kind == "message_bounced":
            detail = json.loads(record.detail or "{}")
            return "_email.hardbounce" if detail.get("bounce_type") == "Permanent" else "_email.softbounce"
        return EMAIL_TYPES.get(record.kind)
    if record.channel == "sms":
        return SMS_TYPES.get(record.kind)
    if record.channel == "push":
        return PUSH_TYPES.get(record.kind)
    return None


def envelope(record: ArchiveRecord, *, app_id: str, account_id: str = "") -> dict[str, Any] | None:
    event_type = event_type_of(record)
    if event_type is None:
        return None
    attributes: dict[str, str] = {}
    metrics: dict[str, float] = {}
    body: dict[str, Any] = {
        "event_type": event_type,
        "event_timestamp": _ms(record.occurred_at),
        "arrival_timestamp": _ms(record.archived_at),
        "event_version": "3.0" if isinstance(record, EventRecord) else "3.1",
        "application": {"app_id": app_id, "sdk": {"name": "midstage"}},
        "client": {"client_id": record.profile_id or ""},
        "attributes": attributes,
        "metrics": metrics,
        "awsAccountId": account_id,
    }
    if isinstance(record, EventRecord):
        for key, value in json.loads(record.properties or "{}").items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                if isinstance(value, str | bool):
                    attributes[key] = str(value)
            else:
                metrics[key] = float(value)
        for column in ("utm_source", "utm_medium", "utm_campaign"):
            if getattr(record, column):
                attributes[column] = getattr(record, column)
        return body
    assert isinstance(record, MessageRecord)
    attributes["message_id"] = record.message_id
    if record.origin_kind == "journey":
        attributes["journey_id"] = record.origin_id
        attributes["journey_activity_id"] = record.origin_step or ""
    else:
        attributes["campaign_id"] = record.origin_id
        attributes["campaign_activity_id"] = record.origin_step or record.origin_kind
        attributes["treatment_id"] = record.variant or "0"
    if record.channel == "email":
        mail_event: dict[str, Any] = {
            "mail": {"message_id": record.message_id, "message_send_timestamp": _ms(record.occurred_at)}
        }
        key = _MAIL_EVENT_KEYS.get(event_type)
        if key == "click":
            mail_event["click"] = {"link": record.link or ""}
        elif key:
            mail_event[key] = {}
        if event_type in {"_email.hardbounce", "_email.softbounce"}:
            mail_event["bounce"] = {"bounce_type": "Permanent" if event_type == "_email.hardbounce" else "Transient"}
        body["facets"] = {"email_channel": {"mail_event": mail_event}}
    if record.channel == "sms":
        attributes["record_status"] = event_type.split(".", 1)[1]
    return body


def json_line(record: ArchiveRecord, *, app_id: str, account_id: str = "") -> bytes | None:
    """One newline-terminated JSON object, as Pinpoint's Firehose stream wrote them."""
    body = envelope(record, app_id=app_id, account_id=account_id)
    if body is None:
        return None
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
