"""A campaign run's results: its counters and how they read as stats, and which conversions the
campaign earns (attribution). Pure: no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Final, Literal

from midstage.logic.timefmt import parse_iso
from midstage.models.campaigns import (
    CampaignBody,
    Conversion,
)

# ------------------------------------------------------------------------------ counters
# A run's counters, as the service stores them (sharded; readers add the shards up) and as
# `stats_view` reads them. Each is a whole number except the two revenues (decimal strings).
TARGETED: Final = "targeted"  # in the audience when a worker looked: every decision but not_in_audience
MISSED: Final = "missed"  # a local-time send whose moment had passed by more than the grace period
HELD_OUT: Final = "held_out"  # in the control group: counted, not messaged
CAPPED: Final = "capped"  # would have been sent, but the run had queued max_messages already
QUEUED: Final = "queued"  # handed to the delivery queue
SENT: Final = "sent"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"  # queued, then not sent: the campaign was cancelled first
DEFERRED: Final = "deferred"  # a gauge: +1 when a message is deferred, -1 when a deferred one ends
BLOCKED_PREFIX: Final = "blocked:"  # + a reason code: "blocked:frequency_cap"
DELIVERED: Final = "delivered"
OPENED: Final = "opened"
CLICKED: Final = "clicked"
BOUNCED: Final = "bounced"
COMPLAINED: Final = "complained"
UNSUBSCRIBED: Final = "unsubscribed"
CONVERTED: Final = "converted"  # people messaged who converted (once per person per run)
REVENUE: Final = "revenue"  # decimal string: the revenue of their converting events
HOLDOUT_CONVERTED: Final = "holdout_converted"
HOLDOUT_REVENUE: Final = "holdout_revenue"

BLOCK_CODES: Final = (
    "no_consent",
    "suppressed",
    "frequency_cap",
    "quiet_hours",
    "no_address",
    "no_profile",
    "offer_refused",
    "global_control",
    "experiment_holdout",
)
OTHER: Final = "other"
_PLAIN_COUNTERS: Final = (
    TARGETED,
    HELD_OUT,
    MISSED,
    CAPPED,
    QUEUED,
    SENT,
    FAILED,
    CANCELLED,
    DEFERRED,
    DELIVERED,
    OPENED,
    CLICKED,
    BOUNCED,
    COMPLAINED,
    UNSUBSCRIBED,
    CONVERTED,
    HOLDOUT_CONVERTED,
)
RATE_DECIMALS: Final = 4

MAX_REVENUE: Final = Decimal(10) ** 12
_REVENUE_PLACES: Final = Decimal("0.000001")
_NUMBER: Final = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,12})?")


# ------------------------------------------------------------------------------ stats
def reason_code(reason: str) -> str:
    """The guard behind a ledger reason ("frequency_cap: 3 marketing ..." -> "frequency_cap")."""
    code = reason.split(":", 1)[0].strip() if isinstance(reason, str) and ":" in reason else ""
    return code if code in BLOCK_CODES else OTHER


def blocked_counter(reason: str) -> str:
    """The counter a blocked message's reason adds to."""
    return BLOCKED_PREFIX + reason_code(reason)


def _count(counts: Mapping[str, int | str | Decimal], name: str) -> int:
    value = counts.get(name, 0)
    try:
        return int(Decimal(value) if isinstance(value, str) else value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"counter {name!r} is not a whole number: {str(value)[:40]!r}") from None


def _money(counts: Mapping[str, int | str | Decimal], name: str) -> Decimal:
    raw = counts.get(name, "0")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"counter {name!r} is not a decimal: {str(raw)[:40]!r}") from None
    if not value.is_finite():
        raise ValueError(f"counter {name!r} is not a decimal: {str(raw)[:40]!r}")
    return value


def _ratio(part: Fraction | None, whole: Fraction | None = None) -> float | None:
    if part is None:
        return None
    value = part if whole is None else (None if whole == 0 else part / whole)
    return None if value is None else float(round(value, RATE_DECIMALS))


def _rate(numerator: int, denominator: int) -> Fraction | None:
    return None if denominator <= 0 else Fraction(numerator, denominator)


def stats_view(counts: Mapping[str, int | str | Decimal], *, conversion: Conversion | None = None) -> dict[str, Any]:
    """A campaign's (or one run's) counters shaped for the API.

    Rates are exact fractions rounded half-even to RATE_DECIMALS places for display, None when
    their denominator is zero: conversion_rate is of those sent, holdout_conversion_rate of those
    held out, and lift is conversion_rate / holdout_conversion_rate - 1 (None when either is
    undefined or the holdout's rate is zero). Revenue is a decimal string, summed exactly.
    `conversion` describes the goal the counters were kept for (None: the campaign has none).
    """
    plain = {name: _count(counts, name) for name in _PLAIN_COUNTERS}
    # The deferred gauge goes up and down in separate writes, so a reader can catch it below zero.
    plain[DEFERRED] = max(0, plain[DEFERRED])
    blocked = dict.fromkeys((*BLOCK_CODES, OTHER), 0)
    for name in counts:
        if name.startswith(BLOCKED_PREFIX):
            code = name[len(BLOCKED_PREFIX) :]
            blocked[code if code in BLOCK_CODES else OTHER] += _count(counts, name)
    converted_rate = _rate(plain[CONVERTED], plain[SENT])
    holdout_rate = _rate(plain[HOLDOUT_CONVERTED], plain[HELD_OUT])
    lift = None
    if converted_rate is not None and holdout_rate:
        lift = converted_rate / holdout_rate - 1
    return {
        TARGETED: plain[TARGETED],
        HELD_OUT: plain[HELD_OUT],
        MISSED: plain[MISSED],
        CAPPED: plain[CAPPED],
        QUEUED: plain[QUEUED],
        SENT: plain[SENT],
        "blocked": blocked,
        FAILED: plain[FAILED],
        CANCELLED: plain[CANCELLED],
        DEFERRED: plain[DEFERRED],
        DELIVERED: plain[DELIVERED],
        OPENED: plain[OPENED],
        CLICKED: plain[CLICKED],
        BOUNCED: plain[BOUNCED],
        COMPLAINED: plain[COMPLAINED],
        UNSUBSCRIBED: plain[UNSUBSCRIBED],
        CONVERTED: plain[CONVERTED],
        REVENUE: format(_money(counts, REVENUE), "f"),
        "conversion_rate": _ratio(converted_rate),
        HOLDOUT_CONVERTED: plain[HOLDOUT_CONVERTED],
        HOLDOUT_REVENUE: format(_money(counts, HOLDOUT_REVENUE), "f"),
        "holdout_conversion_rate": _ratio(holdout_rate),
        "lift": _ratio(lift),
        "conversion": None
        if conversion is None
        else {"event": conversion.event, "window": conversion.window, "revenue_property": conversion.revenue_property},
    }


# ------------------------------------------------------------------------------ attribution
TouchKind = Literal["sent", "held_out"]


@dataclass(frozen=True)
class Attribution:
    """One campaign run a conversion event counts for. `key` names (run, event) so an event
    handled twice is counted once; `converted_key` names (run, person) for the once-per-run
    count of people converted."""

    campaign_id: str
    run_id: str
    kind: TouchKind
    revenue: Decimal
    key: str
    touched_at: datetime

    @property
    def converted_counter(self) -> str:
        return CONVERTED if self.kind == "sent" else HOLDOUT_CONVERTED

    @property
    def revenue_counter(self) -> str:
        return REVENUE if self.kind == "sent" else HOLDOUT_REVENUE


def converted_key(campaign_id: str, run_id: str, profile_id: str) -> str:
    """The marker that a person has been counted as converted for a run (once per run)."""
    return f"converted:{campaign_id}:{run_id}:{profile_id}"


def revenue_of(properties: Any, path: str) -> Decimal:
    """The revenue at a dotted property path, exact; 0 when absent, not a number, negative (a
    refund is not negative revenue for a campaign), or beyond MAX_REVENUE."""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return Decimal(0)
        value = value.get(part)
    if isinstance(value, bool) or value is None:
        return Decimal(0)
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return Decimal(0)
        amount = Decimal(repr(value))  # the number as written, not its binary expansion
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        amount = Decimal(value.strip())
    else:
        return Decimal(0)
    if amount <= 0 or amount > MAX_REVENUE:
        return Decimal(0)
    exponent = amount.as_tuple().exponent
    return amount.quantize(_REVENUE_PLACES) if isinstance(exponent, int) and exponent < -6 else amount


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = parse_iso(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def attribute(
    conversion_event: Mapping[str, Any],
    recent_touches: Iterable[Mapping[str, Any]],
    campaigns: Mapping[str, CampaignBody],
) -> list[Attribution]:
    """The campaign runs a tracked event converts, one per campaign, by campaign id.

    `conversion_event` is a slim tracked event: name (or a track call's `event`), properties,
    timestamp, messageId. `recent_touches` are the person's {campaign_id, run_id, at, kind}
    records ("sent" or "held_out"). A touch counts when its campaign's conversion event is this
    event's name and the event happened at or after the touch and at most the window later; of
    several, the last touch wins. An event without a messageId or a readable timestamp cannot be
    counted once, so it converts nothing.
    """
    name = conversion_event.get("name") or conversion_event.get("event")
    message_id = conversion_event.get("messageId")
    happened = _moment(conversion_event.get("timestamp"))
    if not isinstance(name, str) or not message_id or happened is None:
        return []
    latest: dict[str, tuple[datetime, str, TouchKind]] = {}
    for touch in recent_touches:
        campaign_id, run_id, kind = touch.get("campaign_id"), touch.get("run_id"), touch.get("kind")
        if not isinstance(campaign_id, str) or not isinstance(run_id, str) or kind not in ("sent", "held_out"):
            continue
        touched = _moment(touch.get("at"))
        campaign = campaigns.get(campaign_id)
        goal = campaign.conversion if campaign is not None else None
        if touched is None or goal is None or goal.event != name:
            continue
        if not touched <= happened <= touched + goal.window_length():
            continue
        seen = latest.get(campaign_id)
        if seen is None or (touched, run_id) > (seen[0], seen[1]):
            latest[campaign_id] = (touched, run_id, kind)
    found = []
    for campaign_id, (touched, run_id, kind) in sorted(latest.items()):
        goal = campaigns[campaign_id].conversion
        assert goal is not None
        revenue = revenue_of(conversion_event.get("properties"), goal.revenue_property)
        key = f"{campaign_id}:{run_id}:{message_id}"
        found.append(Attribution(campaign_id, run_id, kind, revenue, key, touched))
    return found
