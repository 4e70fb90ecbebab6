"""Delivering one message: the ledger, the guards in their order, rendering, the provider call.

The order is fixed, and every outcome is recorded on the message with its reason:
  0. the ledger claims the message (a conditional write): a send already made, blocked or failed
     is never repeated, whatever redelivers it; two deliverers cannot both hold it;
  1. consent for the channel and purpose (transactional messages need no marketing consent);
  2. suppression of the address (hard bounce, complaint, unsubscribe, manual);
  3. frequency caps, reserved atomically on the person's send history (one conditional write);
  4. quiet hours in the recipient's time zone: deferred to the end of the window, not dropped;
then the approved template is rendered and the provider called. Channels are tried in the
request's fallback order (the person's preferred channel first); a channel is skipped when the
person has no address there, no consent, or the address is suppressed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from midstage.config import FrequencyCap
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.messaging import MessageRequest, Template
from midstage.models.profile import Profile

# --------------------------------------------------------------------------- outcomes
SENT = "sent"
BLOCKED = "blocked"
FAILED = "failed"
DEFERRED = "deferred"
DUPLICATE = "duplicate"
IN_FLIGHT = "in_flight"
NOT_DUE = "not_due"


class RetryLater(Exception):
    """The provider or a store is briefly unavailable: the queue redelivers the request later."""


@dataclass
class Outcome:
    status: str
    reason: str = ""
    channel: str | None = None
    provider_id: str | None = None
    deferred_until: str | None = None


@dataclass(frozen=True)
class Claim:
    state: str  # "claimed" | DUPLICATE | IN_FLIGHT | NOT_DUE
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cap_reserved(self) -> bool:
        return bool(self.record.get("capReserved"))


# --------------------------------------------------------------------------- ports
class Ledger(Protocol):
    def claim(self, request: MessageRequest, now: datetime, lease_seconds: int) -> Claim: ...
    def finish(self, message_id: str, status: str, reason: str, now: datetime, **fields: Any) -> None: ...
    def note(self, message_id: str, now: datetime, **fields: Any) -> None: ...
    def defer(self, message_id: str, until: datetime, reason: str, now: datetime) -> None: ...
    def release(self, message_id: str, reason: str, now: datetime) -> None: ...


class Profiles(Protocol):
    def profile(self, profile_id: str) -> Profile | None: ...


class Suppressions(Protocol):
    def suppression(self, channel: str, address: str) -> Mapping[str, Any] | None: ...


class CapStore(Protocol):
    def reserve(
        self, profile_id: str, message_id: str, channel: str, category: str, caps: Sequence[FrequencyCap], now: datetime
    ) -> FrequencyCap | None: ...


class Templates(Protocol):
    def approved(self, template_id: str) -> Template | None: ...


class Timers(Protocol):
    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any]) -> None: ...


class Channels(Protocol):
    """Renders and sends on one channel; raises ProviderFailure or RenderFailure."""

    def send(
        self, channel: str, request: MessageRequest, profile: Profile, address: Address, template: Template | None
    ) -> str: ...


class RenderFailure(Exception):
    pass


class ProviderFailure(Exception):
    def __init__(self, kind: str, reason: str) -> None:  # kind: retryable | permanent | configuration
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    marketing_consent: str = "opt_in"  # or "opt_out"
    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: tuple[time, time] | None = (time(21), time(8))
    default_timezone: str = "UTC"
    lease_seconds: int = 120


@dataclass(frozen=True)
class Ports:
    ledger: Ledger
    profiles: Profiles
    suppressions: Suppressions
    caps: CapStore
    templates: Templates
    timers: Timers
    channels: Channels


# --------------------------------------------------------------------------- the pipeline
def deliver(request: MessageRequest, ports: Ports, policy: Policy, now: datetime) -> Outcome:
    if request.released_at:
        # Released by the timer sweep: the scheduler's clock says the deferral is over.
        now = max(now, parse_iso(request.released_at))
    message_id = request.message_id
    claim = ports.ledger.claim(request, now, policy.lease_seconds)
    if claim.state != "claimed":
        return Outcome(claim.state, str(claim.record.get("status", "")))

    profile = ports.profiles.profile(request.profile_id)
    if profile is None:
        return _finish(ports, message_id, Outcome(BLOCKED, "no_profile: the person does not exist"), now)

    chosen: tuple[str, Address] | None = None
    first_refusal = ""
    for channel in ordered_channels(request.channels, profile):
        address = address_for(channel, profile, request)
        refusal = (
            "no_address: the person has no " + ADDRESS_NAMES[channel]
            if address is None
            else consent_refusal(profile, channel, request.category, policy.marketing_consent)
        )
        if not refusal and address is not None:
            suppression = ports.suppressions.suppression(channel, address.value) if address.suppressible else None
            if suppression and (suppression.get("scope") == "all" or request.category == "marketing"):
                refusal = f"suppressed: {address.value} ({suppression.get('reason', 'manual')})"
        if not refusal and address is not None:
            chosen = (channel, address)
            break
        first_refusal = first_refusal or f"{refusal} [{channel}]"
    if chosen is None:
        return _finish(ports, message_id, Outcome(BLOCKED, first_refusal), now)
    channel, address = chosen

    if not claim.cap_reserved:
        cap = ports.caps.reserve(profile.id, message_id, channel, request.category, policy.caps, now)
        if cap is not None:
            where = "all channels" if cap.channel == "*" else cap.channel
            reason = f"frequency_cap: {cap.limit} {cap.category} message(s) per {cap.days:g} days on {where}"
            return _finish(ports, message_id, Outcome(BLOCKED, reason, channel), now)
        ports.ledger.note(message_id, now, capReserved=True)

    if request.category == "marketing" and channel not in ("inbox", "webhook") and policy.quiet_hours:
        zone = zone_of(profile, policy.default_timezone)
        until = quiet_until(now, zone, policy.quiet_hours)
        if until is not None:
            ports.timers.schedule(until, message_id, request.model_dump(mode="json"))
            reason = f"quiet_hours: deferred to {iso(until)} ({zone.key} {policy.quiet_hours[1].strftime('%H:%M')})"
            ports.ledger.defer(message_id, until, reason, now)
            return Outcome(DEFERRED, reason, channel, deferred_until=iso(until))

    template: Template | None = None
    if channel != "webhook":
        template_id = request.template_for(channel)
        template = ports.templates.approved(template_id) if template_id else None
        if template is None:
            return _finish(ports, message_id, Outcome(FAILED, f"no approved template {template_id!r}", channel), now)
        if template.channel != channel:
            reason = f"template {template.id!r} is for {template.channel}, not {channel}"
            return _finish(ports, message_id, Outcome(FAILED, reason, channel), now)
    try:
        provider_id = ports.channels.send(channel, request, profile, address, template)
    except RenderFailure as error:
        return _finish(ports, message_id, Outcome(FAILED, f"render: {error}", channel), now)
    except ProviderFailure as error:
        if error.kind == "retryable":
            ports.ledger.release(message_id, f"retrying: {error.reason}", now)
            raise RetryLater(error.reason) from error
        return _finish(ports, message_id, Outcome(FAILED, f"{error.kind}: {error.reason}", channel), now)
    outcome = Outcome(SENT, f"sent by {channel}", channel, provider_id)
    ports.ledger.finish(
        message_id,
        SENT,
        outcome.reason,
        now,
        channel=channel,
        address=address.value,
        providerId=provider_id,
        templateVersion=template.version if template else None,
    )
    return outcome


def _finish(ports: Ports, message_id: str, outcome: Outcome, now: datetime) -> Outcome:
    ports.ledger.finish(message_id, outcome.status, outcome.reason, now, channel=outcome.channel)
    return outcome


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
    for key in (f"{channel}:{category}", f"*:{category}"):
        grant = profile.consent.get(key)
        if grant is not None:
            return (
                "" if grant["granted"] else f"no_consent: {category} on {channel} was refused at {grant['stamp'][:24]}"
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
