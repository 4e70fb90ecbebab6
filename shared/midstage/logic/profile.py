"""How events change a profile: traits, counters, computed traits, and merging two profiles.

Everything here is commutative: applying the same events in any order, or merging the same
profiles in any order, gives the same profile. That is what lets the updater run on a
standard queue and retry freely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from midstage.config import ComputedTraitSettings
from midstage.logic import consent
from midstage.logic.timefmt import day_of, iso, parse_iso
from midstage.models.profile import Profile
from midstage.models.segments import SEGMENT_ID

ORDER_COMPLETED = "Order Completed"
# Track events with a meaning of their own: the platform's rules and feedback send them, and
# so may any source (an app recording consent, a CRM sync adding tags).
TAG_ADDED = "Tag Added"
TAG_REMOVED = "Tag Removed"
CONSENT_UPDATED = "Consent Updated"
UNSUBSCRIBED = "Unsubscribed"
# Static segment membership: only the platform sends these (imports, the admin API). From any
# other source they are ordinary events, so a client cannot put itself in a segment.
SEGMENT_ADDED = "Segment Added"
SEGMENT_REMOVED = "Segment Removed"
MAX_TAGS = 200
MAX_STATIC_SEGMENTS = 500
PLATFORM_SOURCE = "midstage"  # the sourceId of events the platform emits (logic/internal_events.py)
PREDICTED_TRAIT = "predicted"  # the refit's scores (docs/predictions.md): set by the platform only
# `context.midstage.replayed`: a platform event that stands for something the person did before
# Midstage knew them (a migrated history, logic/imports/pinpoint_events.py). It is their activity
# (firstSeen, lastSeen), but past: nothing reacts to it (logic/ingest.domain_events).
REPLAYED = "replayed"
_SEGMENT_ID = re.compile(SEGMENT_ID).match
_UTM_FIELDS = ("source", "medium", "name", "term", "content")
_DEVICE_FIELDS = ("id", "token", "type", "manufacturer", "model", "name", "advertisingId")
_SLIM_CONTEXT = ("page", "campaign", "ip", "userAgent", "locale", "timezone", "library", "screen", "midstage")
_MAX_TIMELINE_PROPERTIES = 4 * 1024
# Bounds that keep a profile document far below DynamoDB's 400 KB item limit. Past them the
# oldest entries (by event time) give way, so the result still does not depend on order.
MAX_EVENT_NAMES = 1000
MAX_DEVICES = 20
MAX_GROUPS = 100
OTHER_EVENTS = "$other"
_CENT = Decimal("0.000001")
_CURRENCY = re.compile(r"[A-Z]{3}")


def counter_name(event: Mapping[str, Any]) -> str:
    """The name an event is counted under: its own for track, `$<type>` for other calls."""
    if event["type"] == "track":
        return str(event["event"])
    return f"${event['type']}"


def stamp_of(event: Mapping[str, Any]) -> str:
    return f"{event['timestamp']}|{event['messageId']}|{event.get('sourceId', '')}"


def is_replayed(event: Mapping[str, Any] | None) -> bool:
    """A platform event replaying the person's past activity (only the platform can say so)."""
    if not event or event.get("sourceId") != PLATFORM_SOURCE:
        return False
    context = event.get("context")
    midstage = context.get("midstage") if isinstance(context, dict) else None
    return isinstance(midstage, dict) and midstage.get(REPLAYED) is True


def apply_event(profile: Profile, event: Mapping[str, Any]) -> None:
    timestamp: str = event["timestamp"]
    stamp = stamp_of(event)
    # The platform's own events (a rule's tag, an email delivered) are not the person's activity:
    # they must not make a silent customer look active. A replayed one is their past activity.
    if event.get("sourceId") != PLATFORM_SOURCE or is_replayed(event):
        # A replayed record dated after its replay (a device's wrong clock) says the person was
        # seen then, not later: its lastSeen is at most when it was replayed (its receivedAt).
        received = event.get("receivedAt")
        seen = min(timestamp, received) if is_replayed(event) and isinstance(received, str) else timestamp
        if profile.first_seen is None or seen < profile.first_seen:
            profile.first_seen = seen
        if profile.last_seen is None or seen > profile.last_seen:
            profile.last_seen = seen

    name = counter_name(event)
    if name not in profile.event_counts and len(profile.event_counts) >= MAX_EVENT_NAMES:
        name = OTHER_EVENTS  # event names with ids in them would otherwise grow without bound
    profile.event_counts[name] = profile.event_counts.get(name, 0) + 1
    days = profile.daily_counts.setdefault(name, {})
    day = day_of(timestamp)
    days[day] = days.get(day, 0) + 1
    profile.events_applied += 1

    context = event.get("context") or {}
    traits: dict[str, Any] = {}
    if isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if event["type"] == "identify" and isinstance(event.get("traits"), dict):
        traits.update(event["traits"])
    for key, value in traits.items():
        if key == PREDICTED_TRAIT and event.get("sourceId") != PLATFORM_SOURCE:
            continue  # the models' scores: only the refit sets them, a client cannot forge one
        _set_trait(profile, key, value, stamp)

    if event["type"] == "group" and event.get("groupId"):
        group = profile.groups.get(event["groupId"])
        if group is None or group["stamp"] < stamp:
            profile.groups[event["groupId"]] = {"traits": event.get("traits") or {}, "stamp": stamp}
            _keep_latest(profile.groups, MAX_GROUPS)

    if event["type"] == "track" and event.get("event") == ORDER_COMPLETED:
        properties = event.get("properties") or {}
        profile.orders += 1
        amount = order_value(properties)
        profile.revenue = str(Decimal(profile.revenue) + amount)
        currency = currency_of(properties)
        if currency and amount:
            held = profile.revenue_by_currency.get(currency, "0")
            profile.revenue_by_currency[currency] = str(Decimal(held) + amount)
        if profile.first_order_at is None or timestamp < profile.first_order_at:
            profile.first_order_at = timestamp
        if profile.last_order_at is None or timestamp > profile.last_order_at:
            profile.last_order_at = timestamp

    campaign = context.get("campaign")
    if isinstance(campaign, dict) and stamp > profile.last_utm_stamp:
        utm = {k: str(campaign[k]) for k in _UTM_FIELDS if campaign.get(k) is not None}
        if utm:
            profile.last_utm, profile.last_utm_stamp = utm, stamp

    for field_name, key in (("timezone", "$timezone"), ("locale", "$locale")):
        value = context.get(field_name)
        if isinstance(value, str) and 0 < len(value) <= 64 and profile.trait_stamps.get(key, "") < stamp:
            setattr(profile, field_name, value)
            profile.trait_stamps[key] = stamp

    if event["type"] == "track":
        _apply_reserved(profile, str(event.get("event")), event.get("properties") or {}, stamp, event)

    device = context.get("device")
    if isinstance(device, dict):
        device_key = device.get("id") or device.get("token")
        if device_key:
            known = profile.devices.get(str(device_key))
            if known is None or known["stamp"] < stamp:
                slim = {k: device[k] for k in _DEVICE_FIELDS if device.get(k) is not None}
                profile.devices[str(device_key)] = {**slim, "stamp": stamp}
                _keep_latest(profile.devices, MAX_DEVICES)


def _apply_reserved(
    profile: Profile, name: str, properties: Mapping[str, Any], stamp: str, event: Mapping[str, Any]
) -> None:
    if name in (TAG_ADDED, TAG_REMOVED):
        tag = properties.get("tag")
        if isinstance(tag, str) and 0 < len(tag) <= 64:
            set_tag(profile, tag, name == TAG_ADDED, stamp)
    elif name in (CONSENT_UPDATED, UNSUBSCRIBED):
        channel = str(properties.get("channel", "email"))
        purpose = str(properties.get("purpose", "marketing"))
        granted = properties.get("granted") is True if name == CONSENT_UPDATED else False
        if channel in consent.CHANNELS and purpose in consent.PURPOSES:
            fallback = consent.UNSUBSCRIBE_SOURCE if name == UNSUBSCRIBED else str(event.get("sourceId", ""))
            written = consent.entry(granted, stamp, consent.source_of(properties, fallback))
            consent.record(profile.consent, consent.key_of(channel, purpose), written)
    elif name in (SEGMENT_ADDED, SEGMENT_REMOVED) and event.get("sourceId") == PLATFORM_SOURCE:
        segment = properties.get("segment")
        if isinstance(segment, str) and _SEGMENT_ID(segment):
            set_static_segment(profile, segment, name == SEGMENT_ADDED, stamp)


def set_tag(profile: Profile, tag: str, on: bool, stamp: str) -> None:
    known = profile.tag_stamps.get(tag)
    if known is not None and known[0] >= stamp:
        return
    profile.tag_stamps[tag] = [stamp, on]
    _keep_latest_tags(profile)
    profile.tags = sorted(t for t, (_, state) in profile.tag_stamps.items() if state)


def _keep_latest_tags(profile: Profile) -> None:
    if len(profile.tag_stamps) > MAX_TAGS:
        oldest_first = sorted(profile.tag_stamps, key=lambda t: (profile.tag_stamps[t][0], t))
        for tag in oldest_first[: len(oldest_first) - MAX_TAGS]:
            del profile.tag_stamps[tag]


def set_static_segment(profile: Profile, segment_id: str, on: bool, stamp: str) -> None:
    """Record an import's add or remove: last write wins by event stamp, like tags."""
    known = profile.static_segments.get(segment_id)
    if known is not None and known[0] >= stamp:
        return
    profile.static_segments[segment_id] = [stamp, on]
    if len(profile.static_segments) > MAX_STATIC_SEGMENTS:
        entries = profile.static_segments
        oldest_first = sorted(entries, key=lambda s: (entries[s][0], s))
        for stale in oldest_first[: len(oldest_first) - MAX_STATIC_SEGMENTS]:
            del entries[stale]


def _keep_latest(entries: dict[str, dict[str, Any]], limit: int) -> None:
    if len(entries) > limit:
        for key in sorted(entries, key=lambda k: (entries[k]["stamp"], k))[: len(entries) - limit]:
            del entries[key]


def order_value(properties: Mapping[str, Any]) -> Decimal:
    """`revenue`, else `total`, of the e-commerce spec's Order Completed (0 when absent or bad).

    Amounts are rounded to 6 decimals and bounded, so sums are exact and order-independent.
    """
    for key in ("revenue", "total"):
        value = properties.get(key)
        if isinstance(value, bool) or value is None:
            continue
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            continue
        if amount.is_finite() and amount.adjusted() < 12:  # |amount| < 1e12, without overflowing
            return amount.quantize(_CENT)
    return Decimal(0)


def currency_of(properties: Mapping[str, Any]) -> str:
    """The order's ISO 4217 code (upper-cased), or "" when it names none or not one."""
    value = properties.get("currency")
    if not isinstance(value, str):
        return ""
    code = value.strip().upper()
    return code if _CURRENCY.fullmatch(code) else ""


def revenue_in(profile: Profile, settings: ComputedTraitSettings) -> tuple[Decimal, dict[str, str]]:
    """Lifetime revenue in the reporting currency, and the sums in currencies with no rate (kept
    apart, not added). Orders without a currency, and those from before currencies were kept,
    count as the reporting currency."""
    total = Decimal(profile.revenue)
    unconverted: dict[str, str] = {}
    for code, held in sorted(profile.revenue_by_currency.items()):
        if code == settings.currency:
            continue
        amount = Decimal(held)
        total -= amount
        rate = settings.currency_rates.get(code)
        if rate is None:
            unconverted[code] = held
        else:
            total += (amount * Decimal(str(rate))).quantize(_CENT)
    return total, unconverted


def _set_trait(profile: Profile, key: str, value: Any, stamp: str) -> None:
    if profile.trait_stamps.get(key, "") < stamp:
        profile.traits[key] = value
        profile.trait_stamps[key] = stamp


def merge_into(survivor: Profile, loser: Profile) -> None:
    """Fold `loser` into `survivor` (the loser becomes a tombstone pointing at the survivor)."""
    for id_type, values in loser.identities.items():
        survivor.identities[id_type] = sorted(set(survivor.identities.get(id_type, [])) | set(values))
    for key, value in loser.traits.items():
        _set_trait(survivor, key, value, loser.trait_stamps.get(key, ""))
    for group_id, group in loser.groups.items():
        mine = survivor.groups.get(group_id)
        if mine is None or mine["stamp"] < group["stamp"]:
            survivor.groups[group_id] = group
    for key, device in loser.devices.items():
        mine = survivor.devices.get(key)
        if mine is None or mine["stamp"] < device["stamp"]:
            survivor.devices[key] = device
    _keep_latest(survivor.devices, MAX_DEVICES)
    _keep_latest(survivor.groups, MAX_GROUPS)
    survivor.first_seen = _min(survivor.first_seen, loser.first_seen)
    survivor.last_seen = _max(survivor.last_seen, loser.last_seen)
    survivor.first_order_at = _min(survivor.first_order_at, loser.first_order_at)
    survivor.last_order_at = _max(survivor.last_order_at, loser.last_order_at)
    survivor.created_at = min(survivor.created_at, loser.created_at)
    for name, count in loser.event_counts.items():
        if name not in survivor.event_counts and len(survivor.event_counts) >= MAX_EVENT_NAMES:
            name = OTHER_EVENTS
        survivor.event_counts[name] = survivor.event_counts.get(name, 0) + count
    for name, days in loser.daily_counts.items():
        mine_days = survivor.daily_counts.setdefault(name, {})
        for day, count in days.items():
            mine_days[day] = mine_days.get(day, 0) + count
    survivor.orders += loser.orders
    survivor.revenue = str(Decimal(survivor.revenue) + Decimal(loser.revenue))
    for code, held in loser.revenue_by_currency.items():
        survivor.revenue_by_currency[code] = str(Decimal(survivor.revenue_by_currency.get(code, "0")) + Decimal(held))
    if loser.last_utm_stamp > survivor.last_utm_stamp:
        survivor.last_utm, survivor.last_utm_stamp = loser.last_utm, loser.last_utm_stamp
    for tag, (tag_stamp, on) in loser.tag_stamps.items():
        set_tag(survivor, tag, on, tag_stamp)
    for segment_id, (segment_stamp, on) in loser.static_segments.items():
        set_static_segment(survivor, segment_id, on, segment_stamp)
    for key, grant in loser.consent.items():
        consent.record(survivor.consent, key, grant)
    for field_name, key in (("timezone", "$timezone"), ("locale", "$locale")):
        if loser.trait_stamps.get(key, "") > survivor.trait_stamps.get(key, ""):
            setattr(survivor, field_name, getattr(loser, field_name))
            survivor.trait_stamps[key] = loser.trait_stamps[key]
    survivor.merged_from = sorted(set(survivor.merged_from) | {loser.id} | set(loser.merged_from))
    survivor.pending = {**loser.pending, **survivor.pending}
    survivor.outbox = {**loser.outbox, **survivor.outbox}
    survivor.events_applied += loser.events_applied


def _min(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: str | None, b: str | None) -> str | None:
    return b if a is None else a if b is None else max(a, b)


def prune_daily_counts(profile: Profile, now: datetime, settings: ComputedTraitSettings) -> None:
    """Forget day buckets no window can reach any more (they only cost write units)."""
    oldest = day_of(iso(now - timedelta(days=max(settings.count_windows_days))))
    for name in list(profile.daily_counts):
        days = {d: n for d, n in profile.daily_counts[name].items() if d >= oldest}
        if days:
            profile.daily_counts[name] = days
        else:
            del profile.daily_counts[name]


def windowed_count(days: Mapping[str, int], now: datetime, window_days: int) -> int:
    """Events on the last `window_days` UTC calendar days, today included."""
    first = day_of(iso(now - timedelta(days=window_days - 1)))
    return sum(n for d, n in days.items() if d >= first)


def score(value: float, edges: tuple[float, ...] | tuple[int, ...]) -> int:
    """1 below the first edge, up to len(edges) + 1 at or above the last."""
    return 1 + sum(1 for edge in edges if value >= edge)


def compute(profile: Profile, now: datetime, settings: ComputedTraitSettings) -> dict[str, Any]:
    """Computed traits as of `now`; stored on the profile and refreshed on every write."""
    revenue, unconverted = revenue_in(profile, settings)
    # Window counts only for names seen within the longest window; others keep their total.
    counts: dict[str, dict[str, int]] = {}
    for name, total in sorted(profile.event_counts.items()):
        counts[name] = {"total": total}
        if name in profile.daily_counts:
            for window in settings.count_windows_days:
                counts[name][f"{window}d"] = windowed_count(profile.daily_counts[name], now, window)
    computed: dict[str, Any] = {
        "event_counts": counts,
        "orders": profile.orders,
        "revenue": float(revenue),
        "average_order_value": float(revenue / profile.orders) if profile.orders else None,
        "lifecycle_stage": lifecycle_stage(profile, now, settings),
        "value_tier": ("low", "medium", "high", "vip")[min(score(float(revenue), settings.value_tiers) - 1, 3)],
        "days_since_last_seen": _days_since(profile.last_seen, now),
        "days_since_last_order": _days_since(profile.last_order_at, now),
        "rfm": None,
    }
    if profile.orders and profile.last_order_at:
        recency_days = _days_since(profile.last_order_at, now) or 0
        # Fewer days since the last order is better, so recency scores from the top down.
        r = len(settings.rfm_recency_days) + 2 - score(recency_days, settings.rfm_recency_days)
        f = score(profile.orders, settings.rfm_frequency_orders)
        m = score(float(revenue), settings.rfm_monetary)
        computed["rfm"] = {"recency": r, "frequency": f, "monetary": m, "score": f"{r}{f}{m}"}
    if profile.revenue_by_currency:
        computed["revenue_by_currency"] = {
            code: float(Decimal(v)) for code, v in sorted(profile.revenue_by_currency.items())
        }
    if unconverted:
        computed["revenue_unconverted"] = {code: float(Decimal(v)) for code, v in unconverted.items()}
    if profile.last_utm:
        computed["last_utm"] = dict(profile.last_utm)
    return computed


def lifecycle_stage(profile: Profile, now: datetime, settings: ComputedTraitSettings) -> str | None:
    if profile.last_seen is None or profile.first_seen is None:
        return None
    idle = now - parse_iso(profile.last_seen)
    if idle >= timedelta(days=settings.lifecycle_churned_days):
        return "churned"
    if idle >= timedelta(days=settings.lifecycle_silent_days):
        return "silent"
    if now - parse_iso(profile.first_seen) < timedelta(days=settings.lifecycle_new_days):
        return "new"
    return "active"


def _days_since(timestamp: str | None, now: datetime) -> int | None:
    if timestamp is None:
        return None
    return max(0, (now - parse_iso(timestamp)).days)


def changes(before: Profile | None, after: Profile) -> dict[str, Any]:
    """What a write changed, for `profile.updated` subscribers."""
    old_traits = before.traits if before else {}
    old_computed = before.computed if before else {}
    old_ids = before.identifier_set() if before else set()
    changed: dict[str, Any] = {}
    traits = {k: v for k, v in after.traits.items() if k not in old_traits or old_traits[k] != v}
    if traits:
        changed["traits"] = traits
    computed = {
        k: after.computed.get(k)
        for k in ("lifecycle_stage", "value_tier", "orders", "revenue", "rfm")
        if old_computed.get(k) != after.computed.get(k)
    }
    if computed:
        changed["computed"] = computed
    old_tags = set(before.tags) if before else set()
    if set(after.tags) - old_tags:
        changed["tags_added"] = sorted(set(after.tags) - old_tags)
    if old_tags - set(after.tags):
        changed["tags_removed"] = sorted(old_tags - set(after.tags))
    old_consent = before.consent if before else {}
    flipped = {
        k: v["granted"] for k, v in after.consent.items() if old_consent.get(k, {}).get("granted") != v["granted"]
    }
    if flipped:
        changed["consent"] = flipped
    added = sorted(after.identifier_set() - old_ids)
    if added:
        changed["identities_added"] = [f"{t}:{v}" for t, v in added]
    return changed


def slim_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an event kept on the timeline and sent on the bus."""
    slim = {
        k: event[k]
        for k in (
            "type",
            "event",
            "name",
            "messageId",
            "timestamp",
            "receivedAt",
            "sourceId",
            "userId",
            "anonymousId",
            "groupId",
            "previousId",
        )
        if event.get(k) is not None
    }
    properties = event.get("properties")
    if properties:
        slim["properties"] = properties if len(repr(properties)) <= _MAX_TIMELINE_PROPERTIES else {"_truncated": True}
    context = event.get("context") or {}
    kept = {k: context[k] for k in _SLIM_CONTEXT if k in context}
    if kept:
        slim["context"] = kept
    return slim
