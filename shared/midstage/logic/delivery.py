"""Delivering one message, the decisions: which channel can reach the person (address, consent,
suppression), what a frequency cap or quiet hours say, whether the template fits, and the
outcomes with their reasons. services/delivery.py runs them in their fixed order against the
ledger, the stores and the provider (its docstring gives the order)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from midstage.config import FrequencyCap
from midstage.logic import consent
from midstage.logic.experiments.assignment import in_global_control
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, Template
from midstage.models.profile import Profile

# --------------------------------------------------------------------------- outcomes
SENT = "sent"
BLOCKED = "blocked"
FAILED = "failed"
DEFERRED = "deferred"
CANCELLED = "cancelled"  # final: its campaign was cancelled (or deleted) before it was sent
DUPLICATE = "duplicate"
IN_FLIGHT = "in_flight"
NOT_DUE = "not_due"
PACED = "paced"  # no send token left this second: given back to the queue for a moment (`queued`)


class RetryLater(Exception):
    """The provider or a store is briefly unavailable: the queue redelivers the request later."""


@dataclass
class Outcome:
    status: str
    reason: str = ""
    channel: str | None = None
    provider_id: str | None = None
    deferred_until: str | None = None
    # For a duplicate: the (status, reason) the ledger holds, which the first attempt counted
    # unless it died first (its count is then made by this one, once: services/campaigns).
    recorded: tuple[str, str] | None = None
    # An end (sent, blocked, failed, cancelled) of a message the ledger shows deferred before.
    was_deferred: bool = False


@dataclass(frozen=True)
class Claim:
    state: str  # "claimed" | DUPLICATE | IN_FLIGHT | NOT_DUE
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cap_reserved(self) -> bool:
        return bool(self.record.get("capReserved"))


# --------------------------------------------------------------------------- failures and policy
class RenderFailure(Exception):
    pass


class ProviderFailure(Exception):
    """`kind`: retryable | permanent | configuration; `account`: the provider refused the account
    (not this message), so every message on the channel would be refused the same way;
    `ambiguous`: the provider may have received the message (its answer was lost)."""

    def __init__(self, kind: str, reason: str, *, account: bool = False, ambiguous: bool = False) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.account = account
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class Policy:
    marketing_consent: str = "opt_in"  # or "opt_out"
    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: tuple[time, time] | None = (time(21), time(8))
    default_timezone: str = "UTC"
    lease_seconds: int = 120
    # A message of a paused campaign waits this long before delivery looks at the campaign again.
    paused_recheck_seconds: int = 300
    # How long one delivery may wait in-process for a send token before giving the message back.
    pace_wait_seconds: float = 1.0
    # The global control group (logic/experiments/assignment.py): this share of everyone, dealt
    # by a hash salted with `global_control_salt`, gets no marketing at all, so the programme's
    # total lift can be measured against them. 0 turns it off.
    global_control_share: float = 0.0
    global_control_salt: str = ""


# --------------------------------------------------------------------------- global control
GLOBAL_CONTROL = "global_control"


def global_control_refusal(profile_id: str, category: str, policy: Policy) -> str:
    """Why a marketing message may not go to a person of the global control group ("" when it
    may). Transactional messages always go. The id is the surviving profile's (after a merge),
    as in experiment assignment, so a person stays in or out of the group across merges."""
    if category != "marketing" or policy.global_control_share <= 0:
        return ""
    if not in_global_control(profile_id, policy.global_control_share, policy.global_control_salt):
        return ""
    return f"{GLOBAL_CONTROL}: the person is in the global control group, held out of all marketing"


# --------------------------------------------------------------------------- holds
# Reasons of deferrals that hold a message back for the sender's sake (its campaign is paused,
# its channel is paused): they may repeat until the hold ends, so they are not counted as the
# person's deferral (quiet hours) is.
CAMPAIGN_PAUSED = "campaign_paused"
CHANNEL_PAUSED = "channel_paused"
HOLD_CODES = frozenset({CAMPAIGN_PAUSED, CHANNEL_PAUSED})


def is_hold(reason: str) -> bool:
    return reason.split(":", 1)[0] in HOLD_CODES


def origin_stop(origin_kind: str, origin_status: str | None) -> str:
    """What the state of a message's origin, read at send time, says about sending it now:
    "cancel" (a cancelled or deleted campaign: never), "hold" (a paused campaign: later) or ""."""
    if origin_kind != "campaign":
        return ""
    if origin_status is None or origin_status == "cancelled":
        return "cancel"
    return "hold" if origin_status == "paused" else ""


def cancelled_reason(origin_id: str, origin_status: str | None) -> str:
    said = "was deleted" if origin_status is None else "was cancelled"
    return f"cancelled: campaign {origin_id} {said} before the message was sent"


def campaign_paused_reason(origin_id: str, until: datetime) -> str:
    return f"{CAMPAIGN_PAUSED}: campaign {origin_id} is paused; looked at again at {iso(until)}"


# --------------------------------------------------------------------------- channel pauses
# A provider error about the account (unverified sender, sandbox, sending paused, credentials)
# would fail every message the same way: the channel pauses instead, and one message at a time
# probes it after a backoff that doubles from PROBE_FIRST up to PROBE_MAX.
PROBE_FIRST = timedelta(seconds=60)
PROBE_MAX = timedelta(minutes=15)


@dataclass(frozen=True)
class ChannelPause:
    channel: str
    reason: str
    since: datetime
    probe_at: datetime  # when the next message may try the provider again
    failures: int = 1  # the error that paused it, then each failed probe


def probe_delay(failures: int) -> timedelta:
    """How long after the `failures`-th account error the channel is probed again."""
    return min(PROBE_FIRST * 2 ** max(0, min(failures, 16) - 1), PROBE_MAX)


def held_until(pause: ChannelPause, now: datetime) -> datetime:
    """When a message that finds its channel paused comes back: at the next probe, and never
    sooner than PROBE_FIRST (a probe another deliverer holds is running now)."""
    return max(pause.probe_at, now + PROBE_FIRST)


def channel_paused_reason(pause: ChannelPause, until: datetime) -> str:
    return (
        f"{CHANNEL_PAUSED}: {pause.channel} sending is paused since {iso(pause.since)} ({pause.reason});"
        f" looked at again at {iso(until)}"
    )


# --------------------------------------------------------------------------- pacing
# A channel's provider rate (SES's MaxSendRate) as tokens per whole second, shared by every
# deliverer through counters in the DataTable. One counter item takes at most SHARD_RATE grants a
# second (a DynamoDB partition takes 1,000 writes a second, refused conditional writes included),
# so a higher rate is split over shards whose limits add up to it exactly.
SHARD_RATE = 500


def whole_rate(max_send_rate: float) -> int:
    """Sends a second as whole tokens: a fraction is not granted (at least one a second)."""
    return max(1, math.floor(max_send_rate))


def shard_limits(rate: int) -> list[int]:
    """Each shard's tokens for one second; they add up to `rate`."""
    shards = max(1, math.ceil(rate / SHARD_RATE))
    return [rate // shards + (1 if shard < rate % shards else 0) for shard in range(shards)]


def paced_reason(channel: str, next_at: datetime) -> str:
    return f"paced: {channel} is at its send rate; tried again from {iso(next_at)}"


# --------------------------------------------------------------------------- decisions
def reach_refusal(channel: str, address: Address | None, profile: Profile, category: str, policy: Policy) -> str:
    """Why this channel cannot reach this person for this purpose (empty: it can)."""
    if address is None:
        return "no_address: the person has no " + ADDRESS_NAMES[channel]
    return consent_refusal(profile, channel, category, policy.marketing_consent)


def suppression_refusal(address: Address, category: str, suppression: Mapping[str, Any] | None) -> str:
    """Why a suppressed address is not messaged (empty: it may be). A suppression scoped to
    marketing lets transactional messages through."""
    if suppression and (suppression.get("scope") == "all" or category == "marketing"):
        return f"suppressed: {address.value} ({suppression.get('reason', 'manual')})"
    return ""


def cap_refusal(cap: FrequencyCap) -> str:
    where = "all channels" if cap.channel == "*" else cap.channel
    return f"frequency_cap: {cap.limit} {cap.category} message(s) per {cap.days:g} days on {where}"


def may_be_quieted(category: str, channel: str, policy: Policy) -> bool:
    """Quiet hours hold back marketing that interrupts: not the inbox, not a webhook."""
    return category == "marketing" and channel not in ("inbox", "webhook") and policy.quiet_hours is not None


def quiet_reason(until: datetime, zone: ZoneInfo, window: tuple[time, time]) -> str:
    return f"quiet_hours: deferred to {iso(until)} ({zone.key} {window[1].strftime('%H:%M')})"


# Channels where a second call is not a second message, so an attempt that died mid-call can
# simply be made again: the inbox is our own table, written by message id; a webhook carries
# `Midstage-Idempotency-Key: <message id>`, by which its receiver drops a repeat.
RESEND_SAFE_CHANNELS = frozenset({"inbox", "webhook"})


def unknown_outcome_refusal(record: Mapping[str, Any], category: str) -> str:
    """Why a message is not sent again when its last attempt called the provider and ended
    before the answer was recorded (a killed worker, a timeout): the provider may have sent it,
    and SES and SNS take no idempotency key, so a second call may be a second email.
    Marketing is then sent at most once: it ends `failed` with this reason, and the provider's
    own feedback (a delivery, a bounce) still lands on the record. Transactional messages (a
    receipt, a password reset) and resend-safe channels are sent again: '' means send."""
    called = record.get("providerCallAt")
    channel = str(record.get("providerChannel") or "")
    if not called or category == "transactional" or channel in RESEND_SAFE_CHANNELS:
        return ""
    return (
        f"outcome_unknown: the {channel or 'provider'} call made at {called} ended before its answer was"
        " recorded; not made again, so that nobody gets the message twice"
    )


def offer_refusal(variables: Mapping[str, Any], template: Template | None, refused: Mapping[str, str]) -> str:
    """Why a message whose template needs an offer's code is not sent when the offer gave none
    (its budget is spent, the person is not in its segments...): blocked, with the offer's
    reason, rather than failing to render. `refused` is {var: reason} of the vars left without a
    code; a template that can do without the code (no `required`) is sent."""
    if template is None:
        return ""
    for var, reason in refused.items():
        spec = template.variables.get(f"vars.{var}")
        if spec is not None and spec.required and variables.get(var) is None:
            return f"offer_refused: {reason} (the template needs vars.{var})"
    return ""


def template_refusal(channel: str, template_id: str | None, template: Template | None) -> str:
    """Why the approved template cannot be used on this channel (empty: it can)."""
    if template is None:
        return f"no approved template {template_id!r}"
    if template.channel != channel:
        return f"template {template.id!r} is for {template.channel}, not {channel}"
    return ""


# --------------------------------------------------------------------------- channels and addresses
ADDRESS_NAMES = {
    "email": "email address",
    "sms": "phone number",
    "push": "device with a push token",
    "inbox": "profile",
    "webhook": "webhook URL",
}


@dataclass(frozen=True)
class Address:
    value: str
    platform: str | None = None  # push: ios / android
    suppressible: bool = True


def ordered_channels(channels: Sequence[str], profile: Profile) -> list[str]:
    """The request's fallback order, with the person's preferred channel moved to the front."""
    preferred = profile.traits.get("preferred_channel")
    if isinstance(preferred, str) and preferred in channels:
        return [preferred] + [c for c in channels if c != preferred]
    return list(channels)


def address_for(channel: str, profile: Profile, request: MessageRequest) -> Address | None:
    if channel == "email":
        email = profile.traits.get("email")
        if not isinstance(email, str) or "@" not in email:
            email = next(iter(profile.identities.get("email") or []), None)
        return Address(email.strip().lower()) if isinstance(email, str) and "@" in email else None
    if channel == "sms":
        phones = profile.identities.get("phone") or []
        return Address(phones[0]) if phones else None
    if channel == "push":
        devices = [d for d in profile.devices.values() if d.get("token")]
        if not devices:
            return None
        device = max(devices, key=lambda d: d["stamp"])
        platform = str(device.get("type") or "").lower()
        return Address(str(device["token"]), platform=platform or None)
    if channel == "inbox":
        return Address(profile.id, suppressible=False)
    if channel == "webhook":
        return Address(request.webhook_url, suppressible=False) if request.webhook_url else None
    return None


def consent_refusal(profile: Profile, channel: str, category: str, marketing_consent: str) -> str:
    """Empty when the person's consent allows this channel and purpose, else why not."""
    if channel == "webhook":
        return ""  # not a message to the person
    found = consent.governing(profile.consent, channel, category)
    if found is not None:
        grant = found[1]
        return (
            ""
            if grant["granted"] is True
            else f"no_consent: {category} on {channel} was refused at {consent.at_of(grant)}"
        )
    if category == "transactional" or marketing_consent == "opt_out":
        return ""
    return f"no_consent: no {category} consent recorded for {channel}"


# --------------------------------------------------------------------------- caps
def cap_breached(
    sends: Sequence[Mapping[str, Any]], channel: str, category: str, caps: Sequence[FrequencyCap], now: datetime
) -> FrequencyCap | None:
    """The first cap one more send would break. `sends` holds {at (epoch s), channel, category}."""
    now_s = now.timestamp()
    for cap in caps:
        if cap.category != category or cap.channel not in ("*", channel):
            continue
        since = now_s - cap.days * 86_400
        used = sum(
            1 for s in sends if s["at"] > since and s["category"] == category and cap.channel in ("*", s["channel"])
        )
        if used >= cap.limit:
            return cap
    return None


def prune_sends(sends: Sequence[Mapping[str, Any]], caps: Sequence[FrequencyCap], now: datetime) -> list[Any]:
    horizon = now.timestamp() - max((c.days for c in caps), default=0) * 86_400
    return [s for s in sends if s["at"] > horizon]


# --------------------------------------------------------------------------- quiet hours
def parse_quiet_hours(text: str) -> tuple[time, time] | None:
    """A window like 21:00-08:00 (may wrap midnight); empty, or starting where it ends, is none."""
    if not text:
        return None
    start, end = (time.fromisoformat(part) for part in text.split("-"))
    return None if start == end else (start, end)


def zone_of(profile: Profile, default: str) -> ZoneInfo:
    for candidate in (profile.traits.get("timezone"), profile.timezone, default, "UTC"):
        if isinstance(candidate, str) and candidate:
            try:
                return ZoneInfo(candidate[:64])
            except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a directory, not a zone
                continue
    return ZoneInfo("UTC")


def quiet_until(now: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime | None:
    """When the quiet window that `now` falls in ends (in UTC), or None outside the window."""
    start, end = window
    if start == end:
        return None
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = (start <= clock < end) if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    # The window's end as an instant: when clocks go back it may occur twice (take the first
    # still ahead of now); when they go forward it may not exist (zoneinfo then moves it on).
    for fold in (0, 1):
        ends = datetime.combine(end_day, end, tzinfo=zone).replace(fold=fold).astimezone(now.tzinfo)
        if ends > now:
            return ends
    return datetime.combine(end_day + timedelta(days=1), end, tzinfo=zone).astimezone(now.tzinfo)
