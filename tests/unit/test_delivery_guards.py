"""Delivering one message: the ledger, the guards in their order, channel fallback, provider
errors and quiet hours, with every port faked in memory (the fakes keep the stores' semantics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstage.config import FrequencyCap
from midstage.logic.delivery import (
    BLOCKED,
    CANCELLED,
    DEFERRED,
    DUPLICATE,
    FAILED,
    IN_FLIGHT,
    NOT_DUE,
    PACED,
    SENT,
    Address,
    ChannelPause,
    Outcome,
    Policy,
    ProviderFailure,
    RenderFailure,
    RetryLater,
    cap_breached,
    global_control_refusal,
    ordered_channels,
    parse_quiet_hours,
    probe_delay,
    prune_sends,
    quiet_until,
    shard_limits,
    whole_rate,
    zone_of,
)
from midstage.logic.experiments.assignment import in_global_control
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.messaging import MessageRequest, Origin, Template
from midstage.models.profile import Profile
from midstage.services.campaigns import delivery_counts
from midstage.services.delivery import Ports, deliver
from tests.support.fakes import MemoryCaps, MemoryLedger, MemoryOffers, MemoryProfiles

NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # daytime in UTC, outside the default quiet hours
STAMP = "2026-11-01T10:00:00.000Z|m-consent|src_shop"
QUIET = (time(21), time(8))


# ------------------------------------------------------------------------------ fakes
class FakeSuppressions:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, channel: str, address: str, reason: str, scope: str) -> None:
        self.entries[(channel, address)] = {"reason": reason, "scope": scope}

    def suppression(self, channel: str, address: str) -> Mapping[str, Any] | None:
        return self.entries.get((channel, address))


class FakeTemplates:
    def __init__(self, *templates: Template) -> None:
        self.by_id = {t.id: t for t in templates}

    def approved(self, template_id: str) -> Template | None:
        template = self.by_id.get(template_id)
        return template if template is not None and template.status == "approved" else None


class FakeTimers:
    def __init__(self) -> None:
        self.scheduled: list[tuple[datetime, str, dict[str, Any]]] = []

    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any]) -> None:
        self.scheduled.append((at, timer_id, dict(payload)))


@dataclass
class FakeChannels:
    """The providers: records every call; `failures` are raised, in order, before any success."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, message id, address)
    failures: list[Exception] = field(default_factory=list)
    # What each call would render with: the request's vars and the codes `offer('<id>')` shows.
    rendered_with: list[tuple[dict[str, Any], dict[str, str | None]]] = field(default_factory=list)

    def send(
        self,
        channel: str,
        request: MessageRequest,
        profile: Profile,
        address: Address,
        template: Template | None,
        offers: Mapping[str, str | None] | None = None,
        before_call: Callable[[], None] | None = None,
    ) -> str:
        self.calls.append((channel, request.message_id, address.value))
        self.rendered_with.append((dict(request.vars), dict(offers or {})))
        if self.failures and isinstance(self.failures[0], RenderFailure):
            raise self.failures.pop(0)  # rendering comes before the provider call
        if before_call is not None:
            before_call()
        if self.failures:
            raise self.failures.pop(0)
        return f"provider-{len(self.calls)}"


@dataclass
class FakeOrigins:
    """Campaign statuses as delivery reads them (absent: the campaign was deleted); counts reads."""

    statuses: dict[str, str] = field(default_factory=dict)
    reads: int = 0

    def campaign_status(self, campaign_id: str) -> str | None:
        self.reads += 1
        return self.statuses.get(campaign_id)


class MemoryPauses:
    """ChannelPauses' rules in memory: one pause per channel, one probe taker per due probe."""

    def __init__(self) -> None:
        self.pauses: dict[str, ChannelPause] = {}
        self.cleared: list[tuple[str, datetime]] = []

    def paused(self, channel: str) -> ChannelPause | None:
        return self.pauses.get(channel)

    def pause(self, channel: str, reason: str, now: datetime, probe_at: datetime) -> ChannelPause:
        return self.pauses.setdefault(channel, ChannelPause(channel, reason, now, probe_at))

    def take_probe(self, channel: str, now: datetime, hold_until: datetime) -> bool:
        pause = self.pauses.get(channel)
        if pause is None or pause.probe_at > now:
            return False
        self.pauses[channel] = ChannelPause(channel, pause.reason, pause.since, hold_until, pause.failures)
        return True

    def probe_failed(self, channel: str, reason: str, now: datetime, failures: int, probe_at: datetime) -> ChannelPause:
        pause = self.pauses[channel] = ChannelPause(channel, reason, self.pauses[channel].since, probe_at, failures)
        return pause

    def clear(self, channel: str, now: datetime) -> bool:
        self.cleared.append((channel, now))
        return self.pauses.pop(channel, None) is not None


class MemoryBucket:
    """SendRateBucket's rule in memory: `rate` grants per whole second on each paced channel."""

    def __init__(self, rate: int, channels: Sequence[str] = ("email",)) -> None:
        self.rate = rate
        self.channels = set(channels)
        self.granted: dict[tuple[str, int], int] = {}

    def take(self, channel: str, now: datetime, message_id: str) -> datetime | None:
        if channel not in self.channels:
            return None
        second = int(now.timestamp() // 1)
        if self.granted.get((channel, second), 0) >= self.rate:
            return datetime.fromtimestamp(second + 1, UTC)
        self.granted[(channel, second)] = self.granted.get((channel, second), 0) + 1
        return None


def template(template_id: str, channel: str, status: str = "approved") -> Template:
    fields = {"email": {"subject": "Hi", "html": "<p>Hi</p>"}, "sms": {"body": "Hi"}}.get(
        channel, {"title": "Hi", "body": "Hi"}
    )
    return Template(id=template_id, name=template_id, channel=channel, locales={"en": fields}, status=status)


TEMPLATES = (
    template("promo", "email"),
    template("promo-sms", "sms"),
    template("promo-push", "push"),
    template("promo-inbox", "inbox"),
    template("draft", "email", status="draft"),
)
PER_CHANNEL = {"email": "promo", "sms": "promo-sms", "push": "promo-push", "inbox": "promo-inbox"}


def grant(granted: bool = True, at: str = STAMP[:24]) -> dict[str, Any]:
    return {"granted": granted, "stamp": at + STAMP[24:], "source": "src_shop"}


def person(profile_id: str = "p1", **fields: Any) -> Profile:
    base: dict[str, Any] = {
        "id": profile_id,
        "created_at": "2026-01-01T00:00:00.000Z",
        "traits": {"email": "Ann@Example.COM "},
        "identities": {"user_id": ["u1"], "phone": ["+33612345678"]},
        "devices": {"d1": {"token": "push-token-1", "type": "iOS", "stamp": STAMP}},
        "consent": {f"{c}:marketing": grant() for c in ("email", "sms", "push", "inbox")},
    }
    base.update(fields)
    return Profile(**base)


def request(key: str = "k1", channels: Sequence[str] = ("email",), **fields: Any) -> MessageRequest:
    body: dict[str, Any] = {
        "key": key,
        "origin": Origin(kind="rule", id="r1", version=1, step="action-0"),
        "profile_id": "p1",
        "channels": list(channels),
        "template": {c: PER_CHANNEL[c] for c in channels if c in PER_CHANNEL},
        "requested_at": iso(NOON),
    }
    body.update(fields)
    return MessageRequest(**body)


@dataclass
class Rig:
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    profiles: MemoryProfiles = field(default_factory=lambda: MemoryProfiles(person()))
    suppressions: FakeSuppressions = field(default_factory=FakeSuppressions)
    caps: MemoryCaps = field(default_factory=MemoryCaps)
    templates: FakeTemplates = field(default_factory=lambda: FakeTemplates(*TEMPLATES))
    timers: FakeTimers = field(default_factory=FakeTimers)
    channels: FakeChannels = field(default_factory=FakeChannels)
    policy: Policy = field(default_factory=Policy)
    origins: FakeOrigins = field(default_factory=FakeOrigins)
    pauses: MemoryPauses | None = None
    pacer: MemoryBucket | None = None
    offers: MemoryOffers | None = None

    @property
    def ports(self) -> Ports:
        return Ports(
            self.ledger,
            self.profiles,
            self.suppressions,
            self.caps,
            self.templates,
            self.timers,
            self.channels,
            self.origins,
            self.pauses,
            self.pacer,
            offers=self.offers,
        )

    def deliver(self, message: MessageRequest, now: datetime = NOON) -> Outcome:
        return deliver(message, self.ports, self.policy, now)

    def record(self, message: MessageRequest) -> dict[str, Any]:
        return self.ledger.items[message.message_id]

    def with_person(self, profile: Profile) -> Rig:
        self.profiles = MemoryProfiles(profile)
        return self


def assert_blocked(rig: Rig, message: MessageRequest, outcome: Outcome, reason: str) -> None:
    assert (outcome.status, outcome.reason) == (BLOCKED, reason)
    record = rig.record(message)
    assert (record["status"], record["reason"]) == (BLOCKED, reason)
    assert rig.channels.calls == []


# ============================================================================== the happy path
def test_given_a_consenting_person_when_delivered_then_the_provider_is_called_once_and_the_ledger_says_sent() -> None:
    rig = Rig()
    message = request()
    outcome = rig.deliver(message)
    assert (outcome.status, outcome.channel, outcome.provider_id) == (SENT, "email", "provider-1")
    assert rig.channels.calls == [("email", message.message_id, "ann@example.com")]
    record = rig.record(message)
    assert (record["status"], record["address"], record["providerId"], record["templateVersion"]) == (
        SENT,
        "ann@example.com",
        "provider-1",
        1,
    )
    assert "leaseUntil" not in record and record["capReserved"] is True


# ============================================================================== each guard's block
def test_given_no_profile_when_delivered_then_it_is_blocked_as_no_profile() -> None:
    rig = Rig(profiles=MemoryProfiles())
    message = request()
    assert_blocked(rig, message, rig.deliver(message), "no_profile: the person does not exist")


@pytest.mark.parametrize(
    ("channel", "missing", "name"),
    [
        ("email", {"traits": {}, "identities": {}}, "email address"),
        ("sms", {"identities": {"user_id": ["u1"]}}, "phone number"),
        ("push", {"devices": {"d1": {"type": "ios", "stamp": STAMP}}}, "device with a push token"),
    ],
)
def test_given_no_address_on_the_channel_when_delivered_then_it_is_blocked_as_no_address(
    channel: str, missing: dict[str, Any], name: str
) -> None:
    rig = Rig().with_person(person(**missing))
    message = request(channels=[channel])
    assert_blocked(rig, message, rig.deliver(message), f"no_address: the person has no {name} [{channel}]")


def test_given_an_email_only_in_identities_when_delivered_then_that_address_is_used() -> None:
    rig = Rig().with_person(person(traits={"email": "not-an-address"}, identities={"email": ["id@example.com"]}))
    assert rig.deliver(request()).status == SENT
    assert rig.channels.calls[0][2] == "id@example.com"


def test_given_opt_in_and_no_consent_recorded_when_marketing_is_delivered_then_it_is_blocked_as_no_consent() -> None:
    rig = Rig().with_person(person(consent={}))
    message = request()
    assert_blocked(rig, message, rig.deliver(message), "no_consent: no marketing consent recorded for email [email]")


def test_given_no_consent_recorded_when_a_transactional_message_is_delivered_then_it_is_sent() -> None:
    rig = Rig().with_person(person(consent={"email:marketing": grant(False)}))
    assert rig.deliver(request(category="transactional")).status == SENT


@pytest.mark.parametrize(
    ("consent", "category", "reason"),
    [
        ({"email:marketing": grant(False)}, "marketing", "no_consent: marketing on email was refused at "),
        ({"*:marketing": grant(False)}, "marketing", "no_consent: marketing on email was refused at "),
        ({"email:transactional": grant(False)}, "transactional", "no_consent: transactional on email was refused at "),
    ],
)
def test_given_an_explicit_refusal_when_delivered_then_it_is_blocked_with_when_it_was_refused(
    consent: dict[str, Any], category: str, reason: str
) -> None:
    rig = Rig().with_person(person(consent=consent))
    message = request(category=category)
    assert_blocked(rig, message, rig.deliver(message), f"{reason}{STAMP[:24]} [email]")


def test_given_a_refusal_for_all_channels_then_a_newer_channel_grant_when_delivered_then_the_grant_wins() -> None:
    consent = {"*:marketing": grant(False, "2026-10-01T10:00:00.000Z"), "email:marketing": grant(True)}
    rig = Rig().with_person(person(consent=consent))
    assert rig.deliver(request()).status == SENT


def test_given_a_channel_grant_then_a_newer_refusal_for_all_channels_when_delivered_then_it_is_blocked() -> None:
    consent = {"*:marketing": grant(False, "2026-11-02T10:00:00.000Z"), "email:marketing": grant(True)}
    rig = Rig().with_person(person(consent=consent))
    message = request()
    reason = "no_consent: marketing on email was refused at 2026-11-02T10:00:00.000Z [email]"
    assert_blocked(rig, message, rig.deliver(message), reason)


def test_given_a_channel_refusal_then_a_newer_grant_for_all_channels_when_delivered_then_the_refusal_stands() -> None:
    # A blanket grant is not a choice about this channel: only a grant of the channel lifts its refusal
    consent = {"email:marketing": grant(False), "*:marketing": grant(True, "2026-11-20T10:00:00.000Z")}
    rig = Rig().with_person(person(consent=consent))
    email = request("by-email")
    assert_blocked(
        rig, email, rig.deliver(email), f"no_consent: marketing on email was refused at {STAMP[:24]} [email]"
    )
    assert rig.deliver(request("by-sms", channels=["sms"])).status == SENT  # other channels have the grant


def test_given_opt_out_mode_when_delivered_then_silence_allows_marketing_but_a_refusal_still_blocks() -> None:
    rig = Rig(policy=Policy(marketing_consent="opt_out")).with_person(person(consent={}))
    assert rig.deliver(request("silent")).status == SENT
    rig.with_person(person(consent={"email:marketing": grant(False)}))
    refused = request("refused")
    assert rig.deliver(refused).status == BLOCKED
    assert rig.record(refused)["reason"].startswith("no_consent: marketing on email was refused")


@pytest.mark.parametrize(
    ("scope", "category", "blocked"),
    [
        ("all", "marketing", True),
        ("all", "transactional", True),
        ("marketing", "marketing", True),
        ("marketing", "transactional", False),
    ],
)
def test_given_a_suppressed_address_when_delivered_then_its_scope_decides_what_is_blocked(
    scope: str, category: str, blocked: bool
) -> None:
    rig = Rig()
    rig.suppressions.add("email", "ann@example.com", "hard_bounce", scope)
    message = request(category=category)
    outcome = rig.deliver(message)
    if blocked:
        assert_blocked(rig, message, outcome, "suppressed: ann@example.com (hard_bounce) [email]")
    else:
        assert outcome.status == SENT


def test_given_a_frequency_cap_when_it_is_reached_then_the_next_message_is_blocked_and_names_the_cap() -> None:
    rig = Rig(policy=Policy(caps=(FrequencyCap(channel="email", category="marketing", limit=2, days=7),)))
    assert [rig.deliver(request(f"k{n}"), NOON + timedelta(hours=n)).status for n in range(2)] == [SENT, SENT]
    third = request("k3")
    outcome = rig.deliver(third, NOON + timedelta(days=1))
    reason = "frequency_cap: 2 marketing message(s) per 7 days on email"
    assert (outcome.status, outcome.reason, outcome.channel) == (BLOCKED, reason, "email")
    assert rig.record(third)["status"] == BLOCKED and len(rig.channels.calls) == 2
    # A week after the first send, a slot is free again.
    assert rig.deliver(request("k4"), NOON + timedelta(days=7, seconds=1)).status == SENT


def test_given_a_cap_on_all_channels_when_reached_then_the_reason_says_all_channels_and_transactional_passes() -> None:
    rig = Rig(policy=Policy(caps=(FrequencyCap(channel="*", category="marketing", limit=1, days=1),)))
    assert rig.deliver(request("k1", channels=["email"])).status == SENT
    blocked = rig.deliver(request("k2", channels=["sms"]))
    assert blocked.reason == "frequency_cap: 1 marketing message(s) per 1 days on all channels"
    assert rig.deliver(request("k3", category="transactional")).status == SENT


# ============================================================================== the order of the guards
def test_given_no_consent_and_a_suppression_when_delivered_then_consent_is_the_recorded_reason() -> None:
    rig = Rig().with_person(person(consent={}))
    rig.suppressions.add("email", "ann@example.com", "complaint", "all")
    assert rig.deliver(request()).reason.startswith("no_consent:")


def test_given_a_blocked_channel_when_delivered_then_no_cap_slot_is_reserved() -> None:
    rig = Rig(policy=Policy(caps=(FrequencyCap(channel="email", category="marketing", limit=1, days=7),)))
    rig.suppressions.add("email", "ann@example.com", "hard_bounce", "all")
    assert rig.deliver(request("k1")).reason.startswith("suppressed:")
    assert rig.caps.calls == 0 and rig.caps.sends == {}


def test_given_a_breached_cap_during_quiet_hours_when_delivered_then_it_is_blocked_not_deferred() -> None:
    rig = Rig(policy=Policy(caps=(FrequencyCap(channel="email", category="marketing", limit=0, days=7),)))
    outcome = rig.deliver(request(), datetime(2026, 11, 22, 23, 0, tzinfo=UTC))
    assert outcome.status == BLOCKED and outcome.reason.startswith("frequency_cap:")
    assert rig.timers.scheduled == []


def test_given_quiet_hours_and_an_unapproved_template_when_delivered_then_it_is_deferred_first() -> None:
    rig = Rig()
    outcome = rig.deliver(request(template="draft"), datetime(2026, 11, 22, 23, 0, tzinfo=UTC))
    assert outcome.status == DEFERRED and rig.channels.calls == []


# ============================================================================== quiet hours in the pipeline
def paris_person(**fields: Any) -> Profile:
    return person(timezone="Europe/Paris", **fields)


def test_given_quiet_hours_when_delivered_at_night_then_it_is_deferred_to_the_end_and_released_once() -> None:
    rig = Rig().with_person(paris_person())
    message = request()
    night = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    outcome = rig.deliver(message, night)
    morning = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Paris (CET)
    assert (outcome.status, outcome.deferred_until) == (DEFERRED, iso(morning))
    assert outcome.reason == f"quiet_hours: deferred to {iso(morning)} (Europe/Paris 08:00)"
    record = rig.record(message)
    assert (record["status"], record["notBefore"]) == (DEFERRED, int(morning.timestamp()))
    ((at, timer_id, payload),) = rig.timers.scheduled
    assert (at, timer_id) == (morning, message.message_id)
    assert rig.channels.calls == []

    # The queue redelivers the original request in the night: not due yet.
    assert rig.deliver(message, night + timedelta(hours=2)).status == NOT_DUE

    # The 07:01 sweep (timers are filed under the minute after they fall due) releases it with
    # the scheduler's time; this container's clock lags by more than a minute.
    released = MessageRequest.model_validate({**payload, "released_at": iso(morning + timedelta(minutes=1, seconds=2))})
    sent = rig.deliver(released, morning - timedelta(seconds=3))
    assert (sent.status, sent.channel) == (SENT, "email")
    assert rig.deliver(released, morning + timedelta(minutes=1)).status == DUPLICATE
    assert rig.deliver(message, morning + timedelta(minutes=2)).status == DUPLICATE
    assert len(rig.channels.calls) == 1
    assert rig.caps.calls == 1  # the slot reserved before the deferral is the one the send uses


def test_given_a_released_message_without_released_at_when_the_clock_lags_then_it_is_not_due() -> None:
    rig = Rig().with_person(paris_person())
    message = request()
    rig.deliver(message, datetime(2026, 11, 22, 22, 30, tzinfo=UTC))
    assert rig.deliver(message, datetime(2026, 11, 23, 6, 59, 58, tzinfo=UTC)).status == NOT_DUE


@pytest.mark.parametrize(
    ("channels", "category"), [(["email"], "transactional"), (["inbox"], "marketing")], ids=["transactional", "inbox"]
)
def test_given_quiet_hours_when_a_transactional_or_inbox_message_is_delivered_then_it_is_not_deferred(
    channels: list[str], category: str
) -> None:
    rig = Rig().with_person(paris_person())
    assert (
        rig.deliver(request(channels=channels, category=category), datetime(2026, 11, 22, 23, 0, tzinfo=UTC)).status
        == SENT
    )


def test_given_no_quiet_hours_when_delivered_at_night_then_it_is_sent() -> None:
    rig = Rig(policy=Policy(quiet_hours=None))
    assert rig.deliver(request(), datetime(2026, 11, 22, 23, 0, tzinfo=UTC)).status == SENT


def test_given_the_persons_time_zone_when_it_is_day_there_then_the_message_is_not_deferred() -> None:
    rig = Rig().with_person(person(traits={"email": "a@example.com", "timezone": "Asia/Tokyo"}))
    # 23:00 UTC is 08:00 in Tokyo: the window has just ended there.
    assert rig.deliver(request(), datetime(2026, 11, 22, 23, 0, tzinfo=UTC)).status == SENT


def test_given_an_unknown_time_zone_when_delivered_then_the_default_zone_decides() -> None:
    rig = Rig(policy=Policy(default_timezone="America/New_York")).with_person(
        person(traits={"email": "a@example.com", "timezone": "Mars/Olympus_Mons"})
    )
    # 03:00 UTC is 22:00 in New York: quiet there, though not in UTC's morning.
    outcome = rig.deliver(request(), datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    assert outcome.status == DEFERRED and "America/New_York" in outcome.reason


# ============================================================================== channel fallback
def test_given_a_preferred_channel_when_delivered_then_it_is_tried_first() -> None:
    rig = Rig().with_person(person(traits={"email": "a@example.com", "preferred_channel": "sms"}))
    outcome = rig.deliver(request(channels=["email", "sms"]))
    assert outcome.channel == "sms" and rig.channels.calls[0][0] == "sms"
    assert ordered_channels(["email", "sms", "push"], person(traits={"preferred_channel": "push"})) == [
        "push",
        "email",
        "sms",
    ]
    assert ordered_channels(["email", "sms"], person(traits={"preferred_channel": "inbox"})) == ["email", "sms"]
    assert ordered_channels(["email", "sms"], person(traits={"preferred_channel": 3})) == ["email", "sms"]


@pytest.mark.parametrize(
    "blocker",
    ["no address", "no consent", "suppressed"],
)
def test_given_a_channel_that_cannot_be_used_when_delivered_then_the_next_channel_is_used(blocker: str) -> None:
    rig = Rig()
    if blocker == "no address":
        rig.with_person(person(traits={}))
    elif blocker == "no consent":
        rig.with_person(person(consent={"email:marketing": grant(False), "sms:marketing": grant()}))
    else:
        rig.suppressions.add("email", "ann@example.com", "complaint", "all")
    message = request(channels=["email", "sms", "push"])
    outcome = rig.deliver(message)
    assert (outcome.status, outcome.channel) == (SENT, "sms")
    assert rig.channels.calls == [("sms", message.message_id, "+33612345678")]
    assert rig.record(message)["channel"] == "sms"


def test_given_every_channel_refused_when_delivered_then_the_first_refusal_is_recorded() -> None:
    rig = Rig().with_person(person(traits={}, consent={"sms:marketing": grant(False)}, devices={}))
    message = request(channels=["email", "sms", "push"])
    assert_blocked(rig, message, rig.deliver(message), "no_address: the person has no email address [email]")


def test_given_a_fallback_with_a_preferred_channel_when_all_fail_then_the_preferred_channels_refusal_is_recorded() -> (
    None
):
    rig = Rig().with_person(person(traits={"preferred_channel": "sms"}, consent={}))
    message = request(channels=["email", "sms"])
    assert rig.deliver(message).reason == "no_consent: no marketing consent recorded for sms [sms]"


def test_given_webhook_and_inbox_addresses_when_suppressions_exist_then_they_are_not_consulted() -> None:
    rig = Rig()
    rig.suppressions.add("inbox", "p1", "manual", "all")
    assert rig.deliver(request(channels=["inbox"])).status == SENT
    hook = request(
        "hook", channels=["webhook"], template=None, category="transactional", webhook_url="https://h.example.com"
    )
    rig.suppressions.add("webhook", "https://h.example.com", "manual", "all")
    assert rig.deliver(hook).status == SENT
    assert rig.channels.calls[-1] == ("webhook", hook.message_id, "https://h.example.com")


# ============================================================================== the ledger: duplicates and leases
def test_given_a_sent_message_when_requested_again_then_it_is_a_duplicate_without_a_second_provider_call() -> None:
    rig = Rig()
    message = request()
    rig.deliver(message)
    again = rig.deliver(message, NOON + timedelta(hours=1))
    assert (again.status, again.reason) == (DUPLICATE, SENT)
    assert len(rig.channels.calls) == 1


@pytest.mark.parametrize("final", [BLOCKED, FAILED])
def test_given_a_blocked_or_failed_message_when_requested_again_then_it_stays_a_duplicate(final: str) -> None:
    rig = Rig().with_person(person(consent={})) if final == BLOCKED else Rig()
    message = request() if final == BLOCKED else request(template="draft")
    first = rig.deliver(message)
    assert first.status == final
    rig.with_person(person())  # consent given meanwhile: the decision stands
    again = rig.deliver(message, NOON + timedelta(minutes=5))
    # The ledger's outcome travels with the duplicate: what the counters count if the first did not.
    assert again == Outcome(DUPLICATE, final, recorded=(final, first.reason))
    assert rig.channels.calls == []


def test_given_another_deliverer_holds_the_lease_when_delivered_then_it_is_in_flight_until_the_lease_ends() -> None:
    rig = Rig(policy=Policy(lease_seconds=120))
    message = request()
    assert rig.ledger.claim(message, NOON, 120).state == "claimed"  # a deliverer that then died
    assert rig.deliver(message, NOON + timedelta(seconds=60)) == Outcome(IN_FLIGHT, "sending")
    assert rig.deliver(message, NOON + timedelta(seconds=120)).status == IN_FLIGHT  # the lease's last second
    taken_over = rig.deliver(message, NOON + timedelta(seconds=121))
    assert taken_over.status == SENT and len(rig.channels.calls) == 1
    assert rig.record(message)["attempts"] == 2


class DiedInTheCall(BaseException):
    """The worker was killed while the provider call was in flight (after the provider took it)."""


def test_given_a_worker_killed_in_the_provider_call_when_marketing_is_redelivered_then_it_is_not_sent_again() -> None:
    rig = Rig(policy=Policy(lease_seconds=120))
    rig.channels.failures.append(DiedInTheCall())  # type: ignore[arg-type]
    message = request()
    with pytest.raises(DiedInTheCall):
        rig.deliver(message)
    assert rig.record(message)["providerCallAt"] == iso(NOON)
    assert rig.deliver(message, NOON + timedelta(seconds=60)).status == IN_FLIGHT  # the dead attempt's lease
    # Whether the provider took it or not, the ledger cannot know: the call is not made again.
    redelivered = rig.deliver(message, NOON + timedelta(seconds=121))
    assert (redelivered.status, redelivered.channel) == (FAILED, "email")
    assert redelivered.reason.startswith("outcome_unknown: the email call made at 2026-11-22T12:00:00")
    assert len(rig.channels.calls) == 1
    record = rig.record(message)
    assert record["status"] == FAILED and "providerCallAt" not in record and "leaseUntil" not in record
    assert rig.deliver(message, NOON + timedelta(seconds=300)).status == DUPLICATE
    assert len(rig.channels.calls) == 1


@pytest.mark.parametrize(
    ("channels", "category"), [(["email"], "transactional"), (["inbox"], "marketing")], ids=["transactional", "inbox"]
)
def test_given_a_worker_killed_during_the_provider_call_when_a_resendable_message_is_redelivered_then_it_is_sent(
    channels: list[str], category: str
) -> None:
    rig = Rig(policy=Policy(lease_seconds=120))
    rig.channels.failures.append(DiedInTheCall())  # type: ignore[arg-type]
    message = request(channels=channels, category=category)
    with pytest.raises(DiedInTheCall):
        rig.deliver(message)
    redelivered = rig.deliver(message, NOON + timedelta(seconds=121))
    assert redelivered.status == SENT
    assert len(rig.channels.calls) == 2
    assert "providerCallAt" not in rig.record(message)


@pytest.mark.parametrize(("category", "ends"), [("marketing", FAILED), ("transactional", "queued")])
def test_given_a_provider_answer_lost_when_delivered_then_marketing_ends_unknown_and_transactional_is_retried(
    category: str, ends: str
) -> None:
    rig = Rig()
    rig.channels.failures.append(ProviderFailure("retryable", "SES did not answer", ambiguous=True))
    message = request(category=category)
    if category == "transactional":
        with pytest.raises(RetryLater):
            rig.deliver(message)
        assert rig.deliver(message, NOON + timedelta(seconds=30)).status == SENT
        assert len(rig.channels.calls) == 2
    else:
        outcome = rig.deliver(message)
        assert (outcome.status, outcome.reason[:16]) == (FAILED, "outcome_unknown:")
        assert rig.deliver(message, NOON + timedelta(seconds=30)).status == DUPLICATE
        assert len(rig.channels.calls) == 1
    assert ends in [entry["status"] for entry in rig.record(message)["history"]]


def test_given_a_worker_that_fails_before_the_provider_call_when_redelivered_then_the_message_is_sent() -> None:
    # The mark is made once the message is rendered and signed: a failure before that (the links
    # key ring unreadable, say) leaves no doubt, and the redelivery sends.
    class FailsWhileRendering(FakeChannels):
        def send(self, *args: Any, **kwargs: Any) -> str:
            if not self.calls:
                self.calls.append(("email", "unreadable key ring", ""))
                raise RuntimeError("the links key ring could not be read")
            return super().send(*args, **kwargs)

    rig = Rig(policy=Policy(lease_seconds=120), channels=FailsWhileRendering())
    message = request()
    with pytest.raises(RuntimeError):
        rig.deliver(message)
    assert "providerCallAt" not in rig.record(message)
    assert rig.deliver(message, NOON + timedelta(seconds=121)).status == SENT


def test_given_a_webhook_cut_off_mid_call_when_redelivered_then_it_is_sent_again_with_its_idempotency_key() -> None:
    profile = person(identities={"user_id": ["u1"]})
    rig = Rig(policy=Policy(lease_seconds=120)).with_person(profile)
    rig.channels.failures.append(DiedInTheCall())  # type: ignore[arg-type]
    message = request(channels=["webhook"], webhook_url="https://hooks.example.com/in")
    with pytest.raises(DiedInTheCall):
        rig.deliver(message)
    assert rig.deliver(message, NOON + timedelta(seconds=121)).status == SENT


def test_given_a_provider_answer_when_the_message_is_released_deferred_or_finished_then_no_call_is_left_awaiting() -> (
    None
):
    # A retryable error is an answer: the retry is not mistaken for an attempt that died mid-call.
    rig = Rig()
    rig.channels.failures.append(ProviderFailure("retryable", "throttled"))
    message = request()
    with pytest.raises(RetryLater):
        rig.deliver(message)
    assert "providerCallAt" not in rig.record(message)
    assert rig.deliver(message, NOON + timedelta(seconds=30)).status == SENT
    assert len(rig.channels.calls) == 2


class FakePrivacy:
    """Privacy suppressions by identifier, as PrivacyStore.matching answers."""

    def __init__(self, *held: tuple[str, str]) -> None:
        self.held = set(held)
        self.asked: list[tuple[str, str]] = []

    def matching(self, identifiers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        self.asked = list(identifiers)
        return {i: "reg_1" for i in self.asked if i in self.held}


def test_given_a_privacy_suppressed_address_only_in_the_email_trait_when_delivered_then_it_is_blocked() -> None:
    # The trait (used first) is not among the identities: a merge was refused, say
    rig = Rig().with_person(person(traits={"email": " Left@Example.COM"}, identities={"email": ["other@example.com"]}))
    ports = replace(rig.ports, privacy=FakePrivacy(("email", "left@example.com")))
    outcome = deliver(request(), ports, rig.policy, NOON)
    assert (outcome.status, outcome.reason) == (BLOCKED, "suppressed: privacy request reg_1")
    assert rig.channels.calls == []


# ============================================================================== provider and template errors
def test_given_a_retryable_provider_error_when_delivered_then_retry_later_and_a_later_attempt_sends_once() -> None:
    rig = Rig(policy=Policy(caps=(FrequencyCap(channel="email", category="marketing", limit=1, days=7),)))
    rig.channels.failures.append(ProviderFailure("retryable", "throttled"))
    message = request()
    with pytest.raises(RetryLater, match="throttled"):
        rig.deliver(message)
    record = rig.record(message)
    assert (record["status"], record["reason"]) == ("queued", "retrying: throttled")
    assert "leaseUntil" not in record
    retried = rig.deliver(message, NOON + timedelta(seconds=30))
    assert retried.status == SENT
    assert rig.deliver(message, NOON + timedelta(seconds=60)).status == DUPLICATE
    assert len(rig.channels.calls) == 2  # the failed call and the one that sent
    assert len(rig.caps.sends["p1"]) == 1  # the cap counted the message once (limit 1 still let it through)


@pytest.mark.parametrize("kind", ["permanent", "configuration"])
def test_given_a_permanent_or_configuration_error_when_delivered_then_it_fails_with_the_reason(kind: str) -> None:
    rig = Rig()
    rig.channels.failures.append(ProviderFailure(kind, "address rejected"))
    message = request()
    outcome = rig.deliver(message)
    assert (outcome.status, outcome.reason, outcome.channel) == (FAILED, f"{kind}: address rejected", "email")
    assert rig.record(message)["status"] == FAILED
    assert rig.deliver(message).status == DUPLICATE and len(rig.channels.calls) == 1


def test_given_a_render_failure_when_delivered_then_it_fails_as_render() -> None:
    rig = Rig()
    rig.channels.failures.append(RenderFailure("missing variable person.first_name"))
    message = request()
    outcome = rig.deliver(message)
    assert (outcome.status, outcome.reason) == (FAILED, "render: missing variable person.first_name")
    assert rig.record(message)["reason"] == "render: missing variable person.first_name"


def test_given_a_template_that_is_not_approved_or_missing_when_delivered_then_it_fails_without_a_provider_call() -> (
    None
):
    rig = Rig()
    for key, template_id in (("draft", "draft"), ("missing", "nope")):
        message = request(key, template=template_id)
        outcome = rig.deliver(message)
        assert (outcome.status, outcome.reason) == (FAILED, f"no approved template {template_id!r}")
    assert rig.channels.calls == []


def test_given_a_template_for_another_channel_when_delivered_then_it_fails_naming_both_channels() -> None:
    rig = Rig()
    outcome = rig.deliver(request(template="promo-sms"))
    assert (outcome.status, outcome.reason) == (FAILED, "template 'promo-sms' is for sms, not email")
    assert rig.channels.calls == []


# ============================================================================== quiet_until and friends
def at(zone: str, *parts: int, fold: int = 0) -> datetime:
    """A local wall-clock time in `zone`, as the UTC instant."""
    year, month, day, hour, minute, second = (*parts, 0, 0, 0)[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def test_given_quiet_hours_text_when_parsed_then_it_gives_the_window_or_none() -> None:
    assert parse_quiet_hours("21:00-08:00") == (time(21), time(8))
    assert parse_quiet_hours("12:30-14:00") == (time(12, 30), time(14))
    assert parse_quiet_hours("") is None


@pytest.mark.parametrize(
    ("local", "until"),
    [
        ((2026, 6, 10, 20, 59, 59), None),
        ((2026, 6, 10, 21, 0), (2026, 6, 11, 8, 0)),
        ((2026, 6, 10, 23, 30), (2026, 6, 11, 8, 0)),
        ((2026, 6, 11, 0, 0), (2026, 6, 11, 8, 0)),
        ((2026, 6, 11, 7, 59, 59), (2026, 6, 11, 8, 0)),
        ((2026, 6, 11, 8, 0), None),
        ((2026, 6, 11, 13, 0), None),
    ],
)
def test_given_a_window_across_midnight_when_asked_then_it_ends_at_the_next_end(
    local: tuple[int, ...], until: tuple[int, ...] | None
) -> None:
    zone = ZoneInfo("Europe/Paris")
    found = quiet_until(at("Europe/Paris", *local), zone, QUIET)
    assert found == (at("Europe/Paris", *until) if until else None)


@pytest.mark.parametrize(
    ("local", "until"),
    [
        ((2026, 6, 10, 11, 59), None),
        ((2026, 6, 10, 12, 0), (2026, 6, 10, 14, 0)),
        ((2026, 6, 10, 13, 59, 59), (2026, 6, 10, 14, 0)),
        ((2026, 6, 10, 14, 0), None),
        ((2026, 6, 10, 23, 0), None),
    ],
)
def test_given_a_window_within_one_day_when_asked_then_it_ends_the_same_day(
    local: tuple[int, ...], until: tuple[int, ...] | None
) -> None:
    window = (time(12), time(14))
    found = quiet_until(at("America/New_York", *local), ZoneInfo("America/New_York"), window)
    assert found == (at("America/New_York", *until) if until else None)


@pytest.mark.parametrize(
    ("zone", "evening", "expected_end_utc", "hours"),
    [
        # Spring forward: the night is an hour shorter.
        ("Europe/Paris", (2026, 3, 28, 22, 0), datetime(2026, 3, 29, 6, 0, tzinfo=UTC), 9),
        ("America/New_York", (2026, 3, 7, 22, 0), datetime(2026, 3, 8, 12, 0, tzinfo=UTC), 9),
        # Fall back: an hour longer.
        ("Europe/Paris", (2026, 10, 24, 22, 0), datetime(2026, 10, 25, 7, 0, tzinfo=UTC), 11),
        ("America/New_York", (2026, 10, 31, 22, 0), datetime(2026, 11, 1, 13, 0, tzinfo=UTC), 11),
    ],
)
def test_given_a_dst_change_in_the_night_when_deferred_then_it_ends_at_8_local_time(
    zone: str, evening: tuple[int, ...], expected_end_utc: datetime, hours: int
) -> None:
    now = at(zone, *evening)
    until = quiet_until(now, ZoneInfo(zone), QUIET)
    assert until == expected_end_utc
    assert until is not None and until - now == timedelta(hours=hours)
    assert until.astimezone(ZoneInfo(zone)).time() == time(8)


def test_given_a_dst_day_when_the_local_clock_is_read_then_the_new_offset_decides_inside_or_out() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 05:30 UTC on 29 March is 07:30 CEST: still quiet; 06:30 UTC is 08:30 CEST: not.
    assert quiet_until(datetime(2026, 3, 29, 5, 30, tzinfo=UTC), paris, QUIET) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 3, 29, 6, 30, tzinfo=UTC), paris, QUIET) is None
    # On 25 October 06:30 UTC is 07:30 CET: still quiet until 07:00 UTC.
    assert quiet_until(datetime(2026, 10, 25, 6, 30, tzinfo=UTC), paris, QUIET) == datetime(
        2026, 10, 25, 7, 0, tzinfo=UTC
    )


def test_given_a_window_ending_in_the_spring_forward_gap_when_deferred_then_a_real_later_instant_is_chosen() -> None:
    paris = ZoneInfo("Europe/Paris")
    now = at("Europe/Paris", 2026, 3, 29, 1, 30)  # 01:30 CET; 02:30 does not exist that night
    until = quiet_until(now, paris, (time(22), time(2, 30)))
    assert until is not None and now < until <= now + timedelta(hours=2)
    assert quiet_until(until, paris, (time(22), time(2, 30))) is None  # at release, it is outside the window


@pytest.mark.parametrize(
    ("zone", "now", "window"),
    [
        ("America/New_York", datetime(2026, 11, 1, 6, 15, tzinfo=UTC), (time(0, 30), time(1, 30))),  # 01:15 EST
        ("Europe/Paris", datetime(2026, 10, 25, 1, 15, tzinfo=UTC), (time(1, 0), time(2, 30))),  # 02:15 CET
    ],
)
def test_given_a_window_ending_in_the_repeated_fall_back_hour_when_deferred_then_the_end_is_in_the_future(
    zone: str, now: datetime, window: tuple[time, time]
) -> None:
    until = quiet_until(now, ZoneInfo(zone), window)
    assert until is not None and until == now + timedelta(minutes=15)  # the end's second occurrence, not the past first
    assert until.astimezone(ZoneInfo(zone)).time() == window[1]
    assert quiet_until(until, ZoneInfo(zone), window) is None


def test_given_an_empty_window_when_asked_then_nothing_is_deferred() -> None:
    # QUIET_HOURS=08:00-08:00 passes DeliverySettings' pattern: it means no quiet hours at all.
    assert parse_quiet_hours("08:00-08:00") is None
    assert parse_quiet_hours("") is None
    assert parse_quiet_hours("21:00-08:00") == QUIET
    for window in ((time(8), time(8)), (time(0), time(0)), (time(21, 30), time(21, 30))):
        for hour in (0, 7, 8, 12, 20, 21, 23):
            for zone in ("UTC", "Europe/Paris"):
                assert quiet_until(datetime(2026, 6, 10, hour, tzinfo=UTC), ZoneInfo(zone), window) is None


def test_given_an_empty_window_in_the_policy_when_delivered_at_night_then_it_is_sent() -> None:
    for window in (parse_quiet_hours("08:00-08:00"), (time(8), time(8))):
        rig = Rig(policy=Policy(quiet_hours=window)).with_person(paris_person())
        outcome = rig.deliver(request(), datetime(2026, 11, 22, 22, 30, tzinfo=UTC))  # 23:30 in Paris
        assert (outcome.status, outcome.deferred_until) == (SENT, None)
        assert rig.timers.scheduled == []


def test_given_time_zones_when_chosen_then_trait_then_profile_then_default_then_utc() -> None:
    both = person(traits={"timezone": "Asia/Tokyo"}, timezone="Europe/Paris")
    assert zone_of(both, "America/New_York").key == "Asia/Tokyo"
    assert zone_of(person(timezone="Europe/Paris"), "America/New_York").key == "Europe/Paris"
    assert zone_of(person(), "America/New_York").key == "America/New_York"
    unknown = person(traits={"timezone": "Mars/Olympus_Mons"}, timezone="Not/AZone")
    assert zone_of(unknown, "America/New_York").key == "America/New_York"
    assert zone_of(unknown, "Also/Unknown").key == "UTC"
    for bad in ("", "../../etc/passwd", "/etc/localtime", "UTC\x00", 42, None):
        assert zone_of(person(traits={"timezone": bad}), "Europe/Paris").key == "Europe/Paris"


@pytest.mark.parametrize("bad", ["Europe", "America", "x" * 300])
def test_given_a_time_zone_that_names_a_directory_or_is_too_long_when_chosen_then_the_default_is_used(
    bad: str,
) -> None:
    assert zone_of(person(traits={"timezone": bad}), "Europe/Paris").key == "Europe/Paris"


# ------------------------------------------------------------------------------ properties
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
# Whole or half hours from 05:00 to 23:30: away from every DST change these zones make.
CLOCKS = st.builds(time, st.integers(5, 23), st.sampled_from([0, 30]))


def minutes(clock: time) -> float:
    return clock.hour * 60 + clock.minute + clock.second / 60 + clock.microsecond / 60e6


@settings(max_examples=400, deadline=None)
@given(
    now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
    zone_name=st.sampled_from(ZONES),
    start=CLOCKS,
    end=CLOCKS,
)
def test_property_quiet_until_ends_the_window_it_finds_in_local_time(
    now: datetime, zone_name: str, start: time, end: time
) -> None:
    zone = ZoneInfo(zone_name)
    clock = minutes(now.astimezone(zone).time())
    if start == end:
        inside = False  # an empty window: never quiet
    elif start < end:
        inside = minutes(start) <= clock < minutes(end)
    else:
        inside = clock >= minutes(start) or clock < minutes(end)
    until = quiet_until(now, zone, (start, end))
    assert (until is not None) == inside
    if until is not None:
        assert now < until <= now + timedelta(hours=25)
        assert until.astimezone(zone).time() == end
        assert quiet_until(until, zone, (start, end)) is None


CAPS = st.lists(
    st.builds(
        FrequencyCap,
        channel=st.sampled_from(["*", "email", "sms"]),
        category=st.sampled_from(["marketing", "transactional"]),
        limit=st.integers(0, 3),
        days=st.sampled_from([0.5, 1, 7]),
    ),
    min_size=1,
    max_size=4,
)
ATTEMPTS = st.lists(
    st.tuples(
        st.integers(0, 3 * 86_400),  # seconds after the previous attempt
        st.sampled_from(["email", "sms"]),
        st.sampled_from(["marketing", "transactional"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(caps=CAPS, attempts=ATTEMPTS)
def test_property_sends_that_pass_never_exceed_a_cap_within_any_window(
    caps: list[FrequencyCap], attempts: list[tuple[int, str, str]]
) -> None:
    """Attempts come in time order, whole seconds apart (deliverers share one clock)."""
    rig = Rig(policy=Policy(caps=tuple(caps), quiet_hours=None))
    now = NOON
    passed: list[tuple[float, str, str]] = []
    for n, (gap, channel, category) in enumerate(attempts):
        now += timedelta(seconds=gap)
        outcome = rig.deliver(request(f"k{n}", channels=[channel], category=category), now)
        assert outcome.status in (SENT, BLOCKED)
        if outcome.status == SENT:
            passed.append((now.timestamp(), channel, category))
        else:
            assert outcome.reason.startswith("frequency_cap:")
    for cap in caps:
        span = cap.days * 86_400
        counted = [t for t, channel, category in passed if category == cap.category and cap.channel in ("*", channel)]
        for end in counted:  # the fullest window ends at a send
            assert sum(1 for t in counted if end - span < t <= end) <= cap.limit, (cap, counted)


def test_given_sends_when_caps_are_checked_then_a_send_exactly_days_ago_no_longer_counts() -> None:
    cap = FrequencyCap(channel="email", category="marketing", limit=1, days=1)
    sends = [{"at": int(NOON.timestamp()), "channel": "email", "category": "marketing"}]
    assert cap_breached(sends, "email", "marketing", [cap], NOON + timedelta(days=1, seconds=-1)) == cap
    assert cap_breached(sends, "email", "marketing", [cap], NOON + timedelta(days=1)) is None
    assert cap_breached(sends, "sms", "marketing", [cap], NOON) is None
    assert cap_breached(sends, "email", "transactional", [cap], NOON) is None
    assert prune_sends(sends, [cap], NOON + timedelta(days=1)) == []
    assert prune_sends(sends, [cap, FrequencyCap(limit=5, days=7)], NOON + timedelta(days=1)) == sends


def test_given_a_released_request_when_delivered_then_the_later_of_both_clocks_is_now() -> None:
    rig = Rig().with_person(paris_person())
    message = request()
    rig.deliver(message, datetime(2026, 11, 22, 22, 30, tzinfo=UTC))
    released = request(released_at=iso(datetime(2026, 11, 23, 7, 0, tzinfo=UTC)))
    outcome = rig.deliver(
        released, datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    )  # a late sweep: the container's clock wins
    assert outcome.status == SENT
    assert parse_iso(rig.record(message)["updatedAt"]) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


# ============================================================================== the origin's state at send time
def campaign_request(key: str = "campaign:spring:202612010900:p1", **fields: Any) -> MessageRequest:
    return request(key, origin=Origin(kind="campaign", id="spring", version=3, step="main"), **fields)


@pytest.mark.parametrize(("statuses", "said"), [({"spring": "cancelled"}, "was cancelled"), ({}, "was deleted")])
def test_given_a_cancelled_or_deleted_campaign_when_its_queued_message_is_delivered_then_it_ends_cancelled_unsent(
    statuses: dict[str, str], said: str
) -> None:
    rig = Rig(origins=FakeOrigins(statuses))
    message = campaign_request()

    outcome = rig.deliver(message)

    reason = f"cancelled: campaign spring {said} before the message was sent"
    assert (outcome.status, outcome.reason) == (CANCELLED, reason)
    record = rig.record(message)
    assert (record["status"], record["reason"]) == (CANCELLED, reason)
    assert rig.channels.calls == [] and rig.timers.scheduled == []
    rig.origins.statuses["spring"] = "running"  # the decision is final, like a block
    assert rig.deliver(message, NOON + timedelta(minutes=1)) == Outcome(
        DUPLICATE, CANCELLED, recorded=(CANCELLED, reason)
    )
    assert rig.channels.calls == []


def test_given_a_paused_campaign_when_delivered_then_deferred_on_a_timer_and_sent_once_after_the_resume() -> None:
    rig = Rig(origins=FakeOrigins({"spring": "paused"}), policy=Policy(paused_recheck_seconds=300))
    message = campaign_request()

    held = rig.deliver(message)

    due = NOON + timedelta(seconds=300)
    assert (held.status, held.deferred_until) == (DEFERRED, iso(due))
    assert held.reason == f"campaign_paused: campaign spring is paused; looked at again at {iso(due)}"
    assert rig.record(message)["status"] == DEFERRED and rig.record(message)["notBefore"] == int(due.timestamp())
    assert [(at, timer_id) for at, timer_id, _ in rig.timers.scheduled] == [(due, message.message_id)]
    assert rig.channels.calls == []
    assert rig.deliver(message, NOON + timedelta(seconds=10)).status == NOT_DUE  # a redelivery before it is due

    still_paused = rig.deliver(request(**{**message.model_dump(), "released_at": iso(due)}), due)
    assert still_paused.status == DEFERRED and rig.channels.calls == []  # looked at again: still paused
    rig.origins.statuses["spring"] = "running"  # resumed
    later = due + timedelta(seconds=300)
    released = MessageRequest.model_validate({**rig.timers.scheduled[-1][2], "released_at": iso(later)})
    assert rig.deliver(released, later).status == SENT
    assert rig.deliver(released, later + timedelta(seconds=1)).status == DUPLICATE
    assert rig.channels.calls == [("email", message.message_id, "ann@example.com")]


@pytest.mark.parametrize("status", ["scheduled", "running", "completed"])
def test_given_a_campaign_that_is_not_paused_or_cancelled_when_delivered_then_it_is_sent(status: str) -> None:
    """A completed run still has local-time messages on timers: they go out."""
    rig = Rig(origins=FakeOrigins({"spring": status}))
    assert rig.deliver(campaign_request()).status == SENT


def test_given_a_message_of_another_origin_when_delivered_then_no_campaign_state_is_read() -> None:
    rig = Rig(origins=FakeOrigins({"r1": "cancelled"}))
    assert rig.deliver(request()).status == SENT
    assert rig.origins.reads == 0


def test_given_cancelled_and_paused_outcomes_when_counted_then_cancelled_counts_and_a_pause_hold_does_not() -> None:
    message = campaign_request()
    assert delivery_counts(message, CANCELLED, "cancelled: campaign spring was cancelled") == (
        "campaign",
        "202612010900",
        {"cancelled": 1},
    )
    assert delivery_counts(message, DEFERRED, "campaign_paused: campaign spring is paused; ...") is None
    assert delivery_counts(message, DEFERRED, "quiet_hours: deferred to ...") == (
        "campaign",
        "202612010900",
        {"deferred": 1},
    )


# ============================================================================== channel pauses
UNVERIFIED = "SES refused the sender: verify the sender identity news@example.com"


def test_given_an_account_level_error_when_delivered_then_the_channel_pauses_and_the_message_is_deferred() -> None:
    rig = Rig(pauses=MemoryPauses())
    rig.channels.failures.append(ProviderFailure("configuration", UNVERIFIED, account=True))
    first, second = request("k1"), request("k2")

    held = rig.deliver(first)
    next_one = rig.deliver(second, NOON + timedelta(seconds=5))

    probe = NOON + timedelta(seconds=60)
    assert rig.pauses is not None and rig.pauses.pauses["email"] == ChannelPause("email", UNVERIFIED, NOON, probe)
    assert (held.status, held.channel, held.deferred_until) == (DEFERRED, "email", iso(probe))
    assert held.reason == (
        f"channel_paused: email sending is paused since {iso(NOON)} ({UNVERIFIED}); looked at again at {iso(probe)}"
    )
    assert rig.record(first)["status"] == DEFERRED  # not failed: nothing is lost
    # The next message does not try the provider: it waits for the probe.
    assert next_one.status == DEFERRED and next_one.deferred_until == iso(NOON + timedelta(seconds=65))
    assert [call[1] for call in rig.channels.calls] == [first.message_id]
    assert [timer_id for _, timer_id, _ in rig.timers.scheduled] == [first.message_id, second.message_id]


def test_given_a_paused_channel_when_the_probe_fails_then_the_backoff_doubles_and_when_it_passes_sending_resumes() -> (
    None
):
    rig = Rig(pauses=MemoryPauses())
    rig.channels.failures += [ProviderFailure("configuration", UNVERIFIED, account=True)] * 2
    first, second = request("k1"), request("k2")
    rig.deliver(first)

    at = NOON + timedelta(seconds=61)
    again = rig.deliver(request("k1", released_at=iso(at)), at)  # the timer brings it back: it probes, still refused
    assert again.status == DEFERRED
    assert rig.pauses is not None and rig.pauses.pauses["email"].failures == 2
    assert rig.pauses.pauses["email"].probe_at == at + timedelta(seconds=120)

    later = at + timedelta(seconds=120)
    sent = rig.deliver(request("k2"), later)  # whichever message comes first probes: it goes through
    assert sent.status == SENT and rig.pauses.pauses == {} and rig.pauses.cleared == [("email", later)]
    assert rig.deliver(request("k1", released_at=iso(later)), later).status == SENT
    tried = [call[1] for call in rig.channels.calls]
    assert tried == [first.message_id, first.message_id, second.message_id, first.message_id]
    assert rig.deliver(first, later + timedelta(seconds=1)).status == DUPLICATE


def test_given_a_paused_channel_when_its_probe_is_held_elsewhere_then_the_message_waits_without_calling() -> None:
    rig = Rig(pauses=MemoryPauses())
    rig.channels.failures.append(ProviderFailure("configuration", UNVERIFIED, account=True))
    rig.deliver(request("k1"))
    at = NOON + timedelta(seconds=60)
    assert rig.pauses is not None and rig.pauses.take_probe("email", at, at + timedelta(seconds=120))

    held = rig.deliver(request("k2"), at)

    assert held.status == DEFERRED and len(rig.channels.calls) == 1


@pytest.mark.parametrize(
    "failure",
    [
        ProviderFailure("permanent", "SES rejected the message: bad address"),
        ProviderFailure("configuration", "no SNS platform application is configured for push platform 'android'"),
    ],
)
def test_given_an_error_about_the_message_not_the_account_when_delivered_then_it_fails_and_nothing_pauses(
    failure: ProviderFailure,
) -> None:
    rig = Rig(pauses=MemoryPauses())
    rig.channels.failures.append(failure)
    outcome = rig.deliver(request())
    assert (outcome.status, outcome.reason) == (FAILED, f"{failure.kind}: {failure.reason}")
    assert rig.pauses is not None and rig.pauses.pauses == {}


def test_given_a_paused_channel_when_a_message_can_use_another_channel_then_it_still_waits_for_its_own() -> None:
    """The fallback order is about reaching the person, not about the sender's trouble."""
    rig = Rig(pauses=MemoryPauses())
    assert rig.pauses is not None
    rig.pauses.pause("email", UNVERIFIED, NOON, NOON + timedelta(seconds=60))
    assert rig.deliver(request(channels=["email", "sms"])).status == DEFERRED
    assert rig.deliver(request("k-sms", channels=["sms"])).status == SENT


def test_given_failures_when_the_probe_delay_is_asked_then_it_doubles_from_a_minute_up_to_fifteen() -> None:
    assert [probe_delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 6, 50)] == [60, 120, 240, 480, 900, 900, 900]


# ============================================================================== pacing to the send rate
def test_given_no_token_left_this_second_and_no_waiting_when_delivered_then_it_is_given_back_unsent() -> None:
    rig = Rig(pacer=MemoryBucket(rate=1))
    assert rig.deliver(request("k1")).status == SENT

    paced = rig.deliver(request("k2"), NOON + timedelta(milliseconds=400))

    next_second = NOON + timedelta(seconds=1)
    assert (paced.status, paced.deferred_until) == (PACED, iso(next_second))
    record = rig.record(request("k2"))
    assert (record["status"], record["reason"]) == (
        "queued",
        f"paced: email is at its send rate; tried again from {iso(next_second)}",
    )
    assert "leaseUntil" not in record and len(rig.channels.calls) == 1
    assert rig.deliver(request("k2"), next_second).status == SENT  # the queue brings it back: claimable
    assert len(rig.channels.calls) == 2


def test_given_no_token_when_the_next_second_is_within_the_wait_then_it_waits_and_is_sent_in_that_second() -> None:
    rig = Rig(pacer=MemoryBucket(rate=1))
    rig.deliver(request("k1"))
    waited: list[datetime] = []

    def wait(until: datetime) -> datetime:
        waited.append(until)
        return until + timedelta(milliseconds=3)

    outcome = deliver(request("k2"), rig.ports, rig.policy, NOON + timedelta(milliseconds=400), wait)

    assert outcome.status == SENT and waited == [NOON + timedelta(seconds=1)]
    assert rig.record(request("k2"))["updatedAt"] == iso(NOON + timedelta(seconds=1, milliseconds=3))


def test_given_a_clock_that_does_not_move_when_waiting_for_a_token_then_the_message_is_given_back() -> None:
    rig = Rig(pacer=MemoryBucket(rate=1))
    rig.deliver(request("k1"))
    outcome = deliver(request("k2"), rig.ports, rig.policy, NOON, lambda until: NOON)
    assert outcome.status == PACED and len(rig.channels.calls) == 1


def test_given_a_paced_email_channel_when_other_channels_send_then_they_take_no_token() -> None:
    rig = Rig(pacer=MemoryBucket(rate=1))
    assert [rig.deliver(request(f"s{n}", channels=["sms"])).status for n in range(3)] == [SENT] * 3
    assert rig.pacer is not None and rig.pacer.granted == {}


def test_given_send_rates_when_split_into_shards_then_the_limits_add_up_to_the_rate_and_none_passes_500() -> None:
    for rate in (1, 14, 499, 500, 501, 1000, 1001, 20_000, 20_001):
        limits = shard_limits(rate)
        assert sum(limits) == rate and max(limits) <= 500 and max(limits) - min(limits) <= 1
    assert (whole_rate(0.5), whole_rate(1.0), whole_rate(14.9), whole_rate(200.0)) == (1, 1, 14, 200)


# ============================================================================== the global control group
def salt_putting(profile_id: str, inside: bool, share: float = 0.3) -> str:
    """A salt that deals `profile_id` into (or out of) a global control group of `share`."""
    return next(s for s in map(str, range(1000)) if in_global_control(profile_id, share, s) is inside)


def test_given_a_person_in_the_global_control_group_when_marketing_is_delivered_then_it_is_blocked() -> None:
    rig = Rig(policy=Policy(global_control_share=0.3, global_control_salt=salt_putting("p1", True)))
    message = request()
    reason = "global_control: the person is in the global control group, held out of all marketing"
    assert_blocked(rig, message, rig.deliver(message), reason)
    assert rig.caps.calls == 0  # no cap slot taken for a message never sent
    as_campaign = message.model_copy(update={"origin": Origin(kind="campaign", id="c", step="a")})
    counted = delivery_counts(as_campaign, BLOCKED, reason)
    assert counted is not None and counted[2] == {"blocked:global_control": 1}  # a campaign's stats show it


def test_given_a_person_in_the_global_control_group_when_a_transactional_message_is_delivered_then_it_is_sent() -> None:
    rig = Rig(policy=Policy(global_control_share=0.3, global_control_salt=salt_putting("p1", True)))
    assert rig.deliver(request(category="transactional")).status == SENT


def test_given_a_person_outside_the_group_or_no_group_when_marketing_is_delivered_then_it_is_sent() -> None:
    outside = Rig(policy=Policy(global_control_share=0.3, global_control_salt=salt_putting("p1", False)))
    assert outside.deliver(request()).status == SENT
    assert Rig(policy=Policy(global_control_share=0.0)).deliver(request(key="k2")).status == SENT


def test_the_global_control_group_is_the_share_asked_for_and_the_one_experiments_leave_out() -> None:
    policy = Policy(global_control_share=0.1, global_control_salt="s")
    held = [f"p{n}" for n in range(20_000) if global_control_refusal(f"p{n}", "marketing", policy)]
    assert abs(len(held) / 20_000 - 0.1) < 0.01
    assert all(in_global_control(p, 0.1, "s") for p in held)  # the same deal as Experiments.assign
