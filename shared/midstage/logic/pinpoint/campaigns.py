"""Pinpoint campaigns (`CampaignResponse`) as Midstage campaigns, or rules for event-based ones.

A scheduled campaign becomes a campaign (created as a draft): its segment the audience, its
template (or its inline email or SMS message, made a template) the message, `HoldoutPercent`
the holdout, treatments variants (Pinpoint's `SizePercent` is a share of the whole segment, a
variant's `percent` a share of the people messaged, so they are scaled), `MessagesPerSecond`
the send rate. `ONCE` is a one-time send (`IsLocalTime`: each person at that local time);
`HOURLY` to `MONTHLY` a recurring cron() from the start time. A campaign with `Frequency`
`EVENT` becomes a rule triggered by the event. Per-campaign quiet time and per-endpoint limits
have stack-wide counterparts only (QuietHours, FrequencyCaps) and are reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from midstage.logic.pinpoint.common import Converted, Note, Unconvertible, slug
from midstage.logic.pinpoint.dimensions import combine, event_dimensions
from midstage.logic.pinpoint.templates import inline_template

Lookup = Callable[[str, str], str]  # (Pinpoint name or id, where) -> Midstage id
TemplateLookup = Callable[[str, str, str], str]  # (template name, channel, where) -> Midstage id

TEMPLATE_CHANNELS = {"EmailTemplate": "email", "SMSTemplate": "sms", "PushTemplate": "push"}
INLINE_CHANNELS = {"EmailMessage": "email", "SMSMessage": "sms"}
PUSH_MESSAGES = ("DefaultMessage", "APNSMessage", "GCMMessage", "ADMMessage", "BaiduMessage")
_OFFSET = re.compile(r"UTC(?:([+-])(\d{1,2})(?::?(\d{2}))?)?")
_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
MAX_SEND_RATE = 10_000


class _Campaign:
    def __init__(self, item: Mapping[str, Any], campaign_id: str, source: str, now: datetime) -> None:
        self.item = item
        self.id = campaign_id
        self.source = source
        self.now = now
        self.notes: list[Note] = []
        self.extra: list[Converted] = []  # templates made from inline messages

    def message(self, part: Mapping[str, Any], at: str, templates: TemplateLookup, label: str) -> dict[str, str]:
        """channel -> template id for a campaign's or treatment's TemplateConfiguration and
        MessageConfiguration, in the order email, SMS, push."""
        found: dict[str, str] = {}
        for key, template in (part.get("TemplateConfiguration") or {}).items():
            where = f"{at}/TemplateConfiguration/{key}"
            channel = TEMPLATE_CHANNELS.get(key)
            if channel is None:
                self.notes.append(Note(where, f"{key}: Midstage has no {key.removesuffix('Template').lower()} channel"))
            elif template and template.get("Name"):
                found[channel] = templates(str(template["Name"]), channel, where)
                if template.get("Version"):
                    self.notes.append(Note(f"{where}/Version", "Midstage sends a template's approved version"))
        for key, message in (part.get("MessageConfiguration") or {}).items():
            where = f"{at}/MessageConfiguration/{key}"
            channel = INLINE_CHANNELS.get(key)
            if channel is not None and channel not in found and message:
                self._inline(message, channel, where, label, found)
            elif channel is not None and message and any(message.get(k) for k in ("Title", "HtmlBody", "Body")):
                self.notes.append(Note(where, "the campaign's template is sent; this inline content is not kept"))
            elif key in PUSH_MESSAGES and message and "push" not in found:
                self.notes.append(Note(where, "an inline push message: make a push template and name it here"))
            elif key in ("CustomMessage", "InAppMessage") and message:
                self.notes.append(
                    Note(where, f"{key}: no counterpart (a webhook step of a journey can replace a custom channel)")
                )
            if channel == "sms" and message:
                for extra in ("OriginationNumber", "SenderId", "EntityId", "TemplateId"):
                    if message.get(extra):
                        self.notes.append(
                            Note(f"{where}/{extra}", "SMS sender settings are the stack's (SNS), not a campaign's")
                        )
                if message.get("MessageType") == "TRANSACTIONAL":
                    self.notes.append(Note(f"{where}/MessageType", "sent as marketing: consent and quiet hours apply"))
            if channel == "email" and message and message.get("FromAddress") and f"{label}-email" not in found.values():
                self.notes.append(Note(f"{where}/FromAddress", "the sender is the template's `sender`: set it there"))
        return {c: found[c] for c in ("email", "sms", "push") if c in found}

    def _inline(self, message: Mapping[str, Any], channel: str, where: str, label: str, found: dict[str, str]) -> None:
        template_id = f"{label}-{channel}"[:64]
        notes: list[Note] = []
        body = inline_template(
            message, channel, template_id, f"{self.item.get('Name', label)} ({channel})", self.source, notes, where
        )
        if body is None:
            self.notes.append(Note(where, "an inline message without the content a template needs"))
            return
        self.extra.append(Converted("template", template_id, f"{self.source} {where}", body, notes))
        found[channel] = template_id


def convert_campaign(
    item: Mapping[str, Any],
    campaign_id: str,
    source: str,
    segment_of: Lookup,
    template_of: TemplateLookup,
    now: datetime,
) -> list[Converted]:
    """The campaign (or rule), then any templates made from its inline messages."""
    work = _Campaign(item, campaign_id, source, now)
    try:
        return _convert(item, work, segment_of, template_of)
    except Unconvertible as error:
        error.earlier[:0] = work.notes
        raise


def _convert(
    item: Mapping[str, Any], work: _Campaign, segment_of: Lookup, template_of: TemplateLookup
) -> list[Converted]:
    campaign_id, source = work.id, work.source
    schedule = item.get("Schedule") or {}
    channels = work.message(item, "", template_of, campaign_id)
    if not channels:
        raise Unconvertible("/MessageConfiguration", "no email, SMS or push message or template to send")
    segment = segment_of(str(item.get("SegmentId")), "/SegmentId")
    _limits_and_extras(item, work, list(channels))
    if schedule.get("Frequency") in ("EVENT", "IN_APP_EVENT"):
        if schedule.get("Frequency") == "IN_APP_EVENT":
            raise Unconvertible("/Schedule/Frequency", "in-app messages have no counterpart")
        body = _rule(item, work, channels, segment)
        return [Converted("rule", campaign_id, source, body, work.notes), *work.extra]
    body = {
        "id": campaign_id,
        "name": str(item.get("Name") or campaign_id)[:200],
        "description": str(item.get("Description") or f"Converted from Pinpoint campaign {item.get('Id', '?')}")[:2000],
        "audience": {"segments": [segment]},
        "message": {"channels": list(channels), "template": _template(channels)},
        "schedule": _schedule(schedule, work),
    }
    if len(channels) > 1:
        work.notes.append(
            Note(
                "/MessageConfiguration",
                "Pinpoint sends on every channel; Midstage on the first that reaches the "
                f"person, in the order {', '.join(channels)}: make one campaign per channel to send on each",
            )
        )
    holdout = item.get("HoldoutPercent") or 0
    if holdout > 50:
        raise Unconvertible("/HoldoutPercent", f"a holdout of {holdout}%: Midstage holds out at most 50%")
    if holdout:
        body["holdout_percent"] = float(holdout)
    variants = _variants(item, work, channels, template_of, float(holdout))
    if variants:
        body["variants"] = variants
    rate = (item.get("Limits") or {}).get("MessagesPerSecond")
    if rate:
        body["send_rate"] = max(1, min(int(rate), MAX_SEND_RATE))
        if body["send_rate"] != rate:
            work.notes.append(
                Note("/Limits/MessagesPerSecond", f"{rate} is outside 1 to {MAX_SEND_RATE}; {body['send_rate']} kept")
            )
    return [Converted("campaign", campaign_id, source, body, work.notes), *work.extra]


def _template(channels: dict[str, str]) -> str | dict[str, str]:
    ids = set(channels.values())
    return next(iter(ids)) if len(ids) == 1 else dict(channels)


def _limits_and_extras(item: Mapping[str, Any], work: _Campaign, channels: list[str]) -> None:
    limits = item.get("Limits") or {}
    daily = limits.get("Daily")
    if daily:
        caps = ", ".join(f'{{"channel":"{c}","category":"marketing","limit":{daily},"days":1}}' for c in channels)
        work.notes.append(
            Note(
                "/Limits/Daily",
                f"{daily} message(s) per endpoint per day: caps are the stack's FrequencyCaps, per person and "
                f"channel across every sender (the nearest: {caps}); not converted",
            )
        )
    for key, why in (
        ("Total", "messages per endpoint over the campaign: only the stack's FrequencyCaps (per days) exist"),
        ("Session", "messages per session (in-app): no counterpart"),
        ("MaximumDuration", "seconds a run may last: no counterpart (a run ends when its audience is queued)"),
    ):
        if limits.get(key):
            work.notes.append(Note(f"/Limits/{key}", f"{limits[key]} {why}; not converted"))
    quiet = (item.get("Schedule") or {}).get("QuietTime") or {}
    if quiet.get("Start") or quiet.get("End"):
        window = f"{quiet.get('Start')}-{quiet.get('End')}"
        work.notes.append(
            Note(
                "/Schedule/QuietTime",
                f"{window}: quiet hours are one window for the stack, in each person's zone (the QuietHours "
                f"parameter: QuietHours={window} defers every marketing message in it); not converted",
            )
        )
    hook = item.get("Hook") or {}
    if hook.get("LambdaFunctionName") or hook.get("WebUrl"):
        work.notes.append(Note("/Hook", "a segment-filtering Lambda function: no counterpart; not converted"))
    if item.get("CustomDeliveryConfiguration"):
        work.notes.append(
            Note("/CustomDeliveryConfiguration", "a custom channel: no counterpart in campaigns; not converted")
        )
    if item.get("Priority"):
        work.notes.append(Note("/Priority", "in-app message priority: no counterpart; not converted"))


def _offset(text: Any) -> timezone | None:
    match = _OFFSET.fullmatch(str(text or "UTC").strip().upper())
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    span = timedelta(hours=int(hours or 0), minutes=int(minutes or 0))
    return timezone(-span if sign == "-" else span)


def _instant(text: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise Unconvertible(where, f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _schedule(schedule: Mapping[str, Any], work: _Campaign) -> dict[str, Any]:
    frequency = schedule.get("Frequency") or "ONCE"
    if schedule.get("StartTime") in (None, "IMMEDIATE"):
        raise Unconvertible("/Schedule/StartTime", "sent at once when it was launched: nothing left to schedule")
    start = _instant(schedule["StartTime"], "/Schedule/StartTime")
    end = _instant(schedule["EndTime"], "/Schedule/EndTime") if schedule.get("EndTime") else None
    if frequency == "ONCE":
        if start <= work.now:
            raise Unconvertible(
                "/Schedule/StartTime", f"its one send ({schedule['StartTime']}) is past: nothing left to run"
            )
        if schedule.get("IsLocalTime"):
            zone = _offset(schedule.get("Timezone"))
            if zone is None:
                raise Unconvertible("/Schedule/Timezone", f"{schedule.get('Timezone')!r} is not a UTC offset")
            local = start.astimezone(zone)
            return {"type": "local_time", "date": local.date().isoformat(), "time": local.strftime("%H:%M")}
        return {"type": "once", "at": start.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    if end is not None and end <= work.now:
        raise Unconvertible("/Schedule/EndTime", f"it ended ({schedule['EndTime']}): nothing left to run")
    at = start.astimezone(UTC)
    minute, hour = at.minute, at.hour
    expressions = {
        "HOURLY": f"cron({minute} * * * ? *)",
        "DAILY": f"cron({minute} {hour} * * ? *)",
        "WEEKLY": f"cron({minute} {hour} ? * {_DAYS[at.weekday()]} *)",
        "MONTHLY": f"cron({minute} {hour} {at.day} * ? *)",
    }
    if frequency not in expressions:
        raise Unconvertible("/Schedule/Frequency", f"{frequency!r} is not a frequency Pinpoint documents")
    if frequency == "MONTHLY" and at.day > 28:
        work.notes.append(Note("/Schedule/StartTime", f"monthly on day {at.day}: months without that day are skipped"))
    if schedule.get("IsLocalTime"):
        work.notes.append(
            Note(
                "/Schedule/IsLocalTime",
                "recurring sends in each person's local time are not supported: "
                f"it runs at {at:%H:%M} UTC for everyone",
            )
        )
    found: dict[str, Any] = {"type": "recurring", "expression": expressions[frequency], "timezone": "UTC"}
    if start > work.now:
        found["start"] = at.isoformat().replace("+00:00", "Z")
    if end is not None:
        found["end"] = end.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return found


def _variants(
    item: Mapping[str, Any], work: _Campaign, channels: dict[str, str], templates: TemplateLookup, holdout: float
) -> list[dict[str, Any]]:
    treatments = item.get("AdditionalTreatments") or []
    if not treatments:
        return []
    messaged = 100.0 - holdout
    shares = [float(t.get("SizePercent") or 0) for t in treatments]
    main = messaged - sum(shares)
    if main <= 0 or any(s <= 0 for s in shares):
        raise Unconvertible("/AdditionalTreatments", "treatment sizes leave no share for the main treatment")
    variants: list[dict[str, Any]] = [{"id": slug(str(item.get("TreatmentName") or ""), "treatment-a"), "share": main}]
    for index, treatment in enumerate(treatments):
        at = f"/AdditionalTreatments/{index}"
        own = work.message(treatment, at, templates, f"{work.id}-t{index + 1}")
        if set(own) != set(channels):
            raise Unconvertible(
                at,
                f"this treatment sends on {', '.join(own) or 'nothing'}, the campaign on "
                f"{', '.join(channels)}: variants share the campaign's channels",
            )
        if treatment.get("Schedule"):
            work.notes.append(Note(f"{at}/Schedule", "variants share the campaign's schedule; this one is not kept"))
        fallback = f"treatment-{chr(ord('b') + index)}"
        variants.append(
            {
                "id": slug(str(treatment.get("TreatmentName") or ""), fallback),
                "share": shares[index],
                "template": _template(own),
            }
        )
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        if variant["id"] in seen:
            variant["id"] = f"treatment-{chr(ord('a') + index)}"
        seen.add(variant["id"])
    hundredths = [round(v.pop("share") / messaged * 10_000) for v in variants]
    hundredths[0] += 10_000 - sum(hundredths)
    exact = all(
        abs(h - v) < 1e-9 for h, v in zip(hundredths, [s / messaged * 10_000 for s in [main, *shares]], strict=True)
    )
    if not exact:
        work.notes.append(
            Note("/AdditionalTreatments", "the treatments' shares of the people messaged are rounded to 0.01%")
        )
    for variant, share in zip(variants, hundredths, strict=True):
        variant["percent"] = share / 100
    return variants


def _rule(item: Mapping[str, Any], work: _Campaign, channels: dict[str, str], segment: str) -> dict[str, Any]:
    schedule = item.get("Schedule") or {}
    event_filter = schedule.get("EventFilter") or {}
    names, where = event_dimensions(
        event_filter.get("Dimensions") or {}, "/Schedule/EventFilter/Dimensions", work.notes
    )
    system = [n for n in names if n.startswith("_")]
    if system:
        work.notes.append(
            Note(
                "/Schedule/EventFilter/Dimensions/EventType",
                f"{', '.join(system)}: Pinpoint's own "
                "events; the rule waits for events of that name, which only your apps can send",
            )
        )
    trigger: dict[str, Any] = {"type": "event", "event": names[0] if len(names) == 1 else "*"}
    if len(names) > 1:
        where.insert(0, {"path": "event.name", "op": "in", "value": names})
    condition = combine("ALL", where)
    if condition is not None:
        trigger["where"] = condition
    if item.get("AdditionalTreatments"):
        work.notes.append(Note("/AdditionalTreatments", "a rule has no variants: only the main treatment is converted"))
    body: dict[str, Any] = {
        "id": work.id,
        "name": str(item.get("Name") or work.id)[:200],
        "description": str(item.get("Description") or f"Converted from Pinpoint campaign {item.get('Id', '?')}")[:2000],
        "enabled": False,
        "trigger": trigger,
        "conditions": {"path": "segments", "op": "contains", "value": segment},
        "actions": [{"type": "send", "channels": list(channels), "template": _template(channels)}],
        "refire": {"mode": "every"},
    }
    holdout = item.get("HoldoutPercent") or 0
    if holdout:
        body["holdout_percent"] = float(holdout)
    for key, field in (("StartTime", "valid_from"), ("EndTime", "valid_until")):
        if schedule.get(key) and schedule[key] != "IMMEDIATE":
            moment = _instant(schedule[key], f"/Schedule/{key}")
            body[field] = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if (item.get("Limits") or {}).get("MessagesPerSecond"):
        work.notes.append(Note("/Limits/MessagesPerSecond", "a rule sends as its events come; no rate"))
    return body
