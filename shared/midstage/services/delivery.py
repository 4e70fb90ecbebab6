"""Delivering one message: the ledger, the guards in their order, rendering, the provider call.

The order is fixed, and every outcome is recorded on the message with its reason:
  0. the ledger claims the message (a conditional write): a send already made, blocked or failed
     is never repeated, whatever redelivers it; two deliverers cannot both hold it;
     then its origin's state, read at send time: a message of a cancelled (or deleted) campaign
     ends `cancelled`, one of a paused campaign is deferred and looked at again later;
  1. the global control group: a marketing message to one of its people is blocked
     (`global_control`; transactional messages go);
     consent for the channel and purpose (transactional messages need no marketing consent);
  2. suppression of the address (hard bounce, complaint, unsubscribe, manual), and before the
     channels, of the person by a privacy request (any of their identifiers or profiles);
  3. frequency caps, reserved atomically on the person's send history (one conditional write);
  4. quiet hours in the recipient's time zone: deferred to the end of the window, not dropped;
then the approved template is rendered and the provider called, unless the channel is paused
(an account-level provider error paused it: the message is deferred to the next probe, and one
message at a time probes the provider after a backoff; its success clears the pause), and once
it holds a send token (the provider's account rate, shared by every deliverer: a message that
finds none this second waits for the next, briefly, else goes back to the queue as `queued`).
Just before rendering, the offer codes the message shows are issued or re-read (its offer
references and its template's `offer('<id>')`, services/offers.py): nothing earlier takes one. Channels are tried in the
request's fallback order (the person's preferred channel first); a channel is skipped when the
person has no address there, no consent, or the address is suppressed. The decisions are
logic/delivery.py's; this module holds the order and the ports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage.config import FrequencyCap
from midstage.logic.archive import records
from midstage.logic.archive.records import delivery_records
from midstage.logic.delivery import (
    BLOCKED,
    CANCELLED,
    DEFERRED,
    DUPLICATE,
    FAILED,
    PACED,
    SENT,
    Address,
    ChannelPause,
    Claim,
    Outcome,
    Policy,
    ProviderFailure,
    RenderFailure,
    RetryLater,
    address_for,
    campaign_paused_reason,
    cancelled_reason,
    cap_refusal,
    channel_paused_reason,
    global_control_refusal,
    held_until,
    is_hold,
    may_be_quieted,
    offer_refusal,
    ordered_channels,
    origin_stop,
    paced_reason,
    probe_delay,
    quiet_reason,
    quiet_until,
    reach_refusal,
    suppression_refusal,
    template_refusal,
    unknown_outcome_refusal,
    zone_of,
)
from midstage.logic.experiments.messages import MessageArm, content_problem, message_arm, with_arm
from midstage.logic.privacy import person_identifiers
from midstage.logic.templates import choose_locale, offers_named
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.archive import ArchiveRecord
from midstage.models.messaging import MessageRequest, Template
from midstage.models.profile import Profile
from midstage.observability import count, logger
from midstage.services.offers import OfferIssuing, message_codes
from midstage.services.ports import (
    ArchiveSink,
    ExperimentLookup,
    MessageSink,
    PersonSuppressionLookup,
    Profiles,
    Timers,
)


# --------------------------------------------------------------------------- ports
class Ledger(Protocol):
    def claim(self, request: MessageRequest, now: datetime, lease_seconds: int) -> Claim: ...
    def finish(self, message_id: str, status: str, reason: str, now: datetime, **fields: Any) -> None: ...
    def note(self, message_id: str, now: datetime, **fields: Any) -> None: ...
    def defer(self, message_id: str, until: datetime, reason: str, now: datetime) -> None: ...
    def release(self, message_id: str, reason: str, now: datetime) -> None: ...


class SuppressionLookup(Protocol):
    def suppression(self, channel: str, address: str) -> Mapping[str, Any] | None: ...


class CapStore(Protocol):
    def reserve(
        self,
        profile_id: str,
        message_id: str,
        channel: str,
        category: str,
        caps: Sequence[FrequencyCap],
        now: datetime,
        merged_from: Sequence[str] = (),
    ) -> FrequencyCap | None: ...


class Templates(Protocol):
    def approved(self, template_id: str) -> Template | None: ...


class Channels(Protocol):
    """Renders and sends on one channel; raises ProviderFailure or RenderFailure."""

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
        """`before_call` is called once the message is rendered, just before the provider."""
        ...


class OriginStates(Protocol):
    """The state of a message's origin at send time (read through a short cache: see its adapter)."""

    def campaign_status(self, campaign_id: str) -> str | None: ...


class ChannelPauses(Protocol):
    """A channel's pause after an account-level provider error (one record per channel)."""

    def paused(self, channel: str) -> ChannelPause | None: ...
    def pause(self, channel: str, reason: str, now: datetime, probe_at: datetime) -> ChannelPause: ...
    def take_probe(self, channel: str, now: datetime, hold_until: datetime) -> bool: ...
    def probe_failed(
        self, channel: str, reason: str, now: datetime, failures: int, probe_at: datetime
    ) -> ChannelPause: ...
    def clear(self, channel: str, now: datetime) -> bool: ...


class Pacer(Protocol):
    def take(self, channel: str, now: datetime, message_id: str) -> datetime | None:
        """A send token for `channel` in `now`'s second (None), or when the next second begins."""
        ...


@dataclass(frozen=True)
class Ports:
    ledger: Ledger
    profiles: Profiles
    suppressions: SuppressionLookup
    caps: CapStore
    templates: Templates
    timers: Timers
    channels: Channels
    origins: OriginStates | None = None  # None: origins are not consulted (every origin may send)
    pauses: ChannelPauses | None = None  # None: an account-level error fails the message
    pacer: Pacer | None = None  # None: no channel is paced
    offers: OfferIssuing | None = None  # None: messages carry no offer codes
    privacy: PersonSuppressionLookup | None = None  # None: no privacy request suppresses anyone
    experiments: ExperimentLookup | None = None  # None: a message naming an experiment goes as requested
    exposures: ArchiveSink | None = None  # where an experiment's exposures are logged


# --------------------------------------------------------------------------- the pipeline
def deliver(
    request: MessageRequest,
    ports: Ports,
    policy: Policy,
    now: datetime,
    wait: Callable[[datetime], datetime] | None = None,
) -> Outcome:
    """`wait(until)` sleeps until `until` and says what time it is then (None: never wait)."""
    if request.released_at:
        # Released by the timer sweep: the scheduler's clock says the deferral is over.
        now = max(now, parse_iso(request.released_at))
    claim = ports.ledger.claim(request, now, policy.lease_seconds)
    if claim.state != "claimed":
        recorded = (str(claim.record.get("status", "")), str(claim.record.get("reason", "")))
        duplicate = claim.state == DUPLICATE
        return Outcome(
            claim.state,
            recorded[0],
            recorded=recorded if duplicate else None,
            was_deferred=duplicate and was_deferred(claim.record),
        )
    unknown = unknown_outcome_refusal(claim.record, request.category)
    if unknown:
        count(OutcomeUnknown=1)
        channel = str(claim.record.get("providerChannel") or "") or None
        outcome = _finish(ports, request.message_id, Outcome(FAILED, unknown, channel), now)
    else:
        if claim.record.get("providerCallAt"):
            logger.warning("sending again after an attempt that ended mid-call", category=request.category)
        outcome = _claimed(request, ports, policy, now, wait, claim)
    # An end (not another deferral) of a message deferred before: its counter leaves `deferred`.
    return replace(outcome, was_deferred=True) if outcome.status in ENDS and was_deferred(claim.record) else outcome


def _claimed(
    request: MessageRequest,
    ports: Ports,
    policy: Policy,
    now: datetime,
    wait: Callable[[datetime], datetime] | None,
    claim: Claim,
) -> Outcome:
    message_id = request.message_id
    if ports.origins is not None and request.origin.kind == "campaign":
        # After the claim, so the decision is the ledger's and a redelivery cannot race it.
        status = ports.origins.campaign_status(request.origin.id)
        stop = origin_stop(request.origin.kind, status)
        if stop == "cancel":
            return _finish(ports, message_id, Outcome(CANCELLED, cancelled_reason(request.origin.id, status)), now)
        if stop == "hold":
            recheck = now + timedelta(seconds=policy.paused_recheck_seconds)
            return _defer(ports, request, recheck, campaign_paused_reason(request.origin.id, recheck), now)

    profile = ports.profiles.profile(request.profile_id)
    if profile is None:
        return _finish(ports, message_id, Outcome(BLOCKED, "no_profile: the person does not exist"), now)
    if ports.privacy is not None:
        # The whole person, on every channel and for every category, transactional included.
        # The address an email would go to is checked too: the `email` trait is used before the
        # identities, and a trait need not be an identity (a refused merge, a full identity slot).
        emailed = address_for("email", profile, request)
        known = person_identifiers(profile.id, profile.merged_from, profile.identities)
        held = ports.privacy.matching([*known, *([("email", emailed.value)] if emailed else [])])
        if held:
            reason = f"suppressed: privacy request {min(held.values())}"
            return _finish(ports, message_id, Outcome(BLOCKED, reason), now)
    held_out = global_control_refusal(profile.id, request.category, policy)
    if held_out:
        return _finish(ports, message_id, Outcome(BLOCKED, held_out), now)
    if request.experiment and ports.experiments is not None:
        dealt = _experiment_arm(request, request.experiment, ports.experiments, ports.exposures, profile.id, now)
        if isinstance(dealt, Outcome):
            return _finish(ports, message_id, dealt, now)
        request = dealt

    chosen: tuple[str, Address] | None = None
    first_refusal = ""
    for channel in ordered_channels(request.channels, profile):
        address = address_for(channel, profile, request)
        refusal = reach_refusal(channel, address, profile, request.category, policy)
        if not refusal and address is not None and address.suppressible:
            suppression = ports.suppressions.suppression(channel, address.value)
            refusal = suppression_refusal(address, request.category, suppression)
        if not refusal and address is not None:
            chosen = (channel, address)
            break
        first_refusal = first_refusal or f"{refusal} [{channel}]"
    if chosen is None:
        return _finish(ports, message_id, Outcome(BLOCKED, first_refusal), now)
    channel, address = chosen

    if not claim.cap_reserved:
        cap = ports.caps.reserve(
            profile.id, message_id, channel, request.category, policy.caps, now, merged_from=profile.merged_from
        )
        if cap is not None:
            return _finish(ports, message_id, Outcome(BLOCKED, cap_refusal(cap), channel), now)
        ports.ledger.note(message_id, now, capReserved=True)

    if may_be_quieted(request.category, channel, policy) and policy.quiet_hours:
        zone = zone_of(profile, policy.default_timezone)
        until = quiet_until(now, zone, policy.quiet_hours)
        if until is not None:
            return _defer(ports, request, until, quiet_reason(until, zone, policy.quiet_hours), now, channel)

    template: Template | None = None
    if channel != "webhook":
        template_id = request.template_for(channel)
        template = ports.templates.approved(template_id) if template_id else None
        refusal = template_refusal(channel, template_id, template)
        if refusal:
            return _finish(ports, message_id, Outcome(FAILED, refusal, channel), now)
    pause = ports.pauses.paused(channel) if ports.pauses is not None else None
    if pause is not None and pause.probe_at > now:
        return _held_by_pause(ports, request, pause, now)
    if ports.pacer is not None:
        deadline = now + timedelta(seconds=policy.pace_wait_seconds)
        while (next_at := ports.pacer.take(channel, now, message_id)) is not None:
            waited = wait(next_at) if wait is not None and next_at <= deadline else None
            if waited is None or waited < next_at:  # no waiting, or a clock that did not move
                # Given back, not deferred on a timer: the caller puts it on the queue for a moment.
                reason = paced_reason(channel, next_at)
                ports.ledger.release(message_id, reason, now)
                return Outcome(PACED, reason, channel, deferred_until=iso(next_at))
            now = waited
    probing = False
    if pause is not None and ports.pauses is not None:
        # The probe is this message, if no other deliverer took it: it holds the probe for a lease.
        probing = ports.pauses.take_probe(channel, now, now + timedelta(seconds=policy.lease_seconds))
        if not probing:
            return _held_by_pause(ports, request, pause, now)
    # Issued after every guard, so a message blocked or deferred takes no code.
    request, codes = _offer_codes(request, profile, template, ports, now)
    # The refusals of the offers the message carries (not any var a caller named `*_refused`).
    refused = {var: str(request.vars[f"{var}_refused"]) for var in request.offers if f"{var}_refused" in request.vars}
    if refused and (refusal := offer_refusal(request.vars, template, refused)):
        return _finish(ports, message_id, Outcome(BLOCKED, refusal, channel), now)

    def mark_the_call() -> None:
        # Rendered and signed, the provider next: until the answer is recorded (every finish
        # removes the mark), a redelivery after this attempt's lease knows the provider may
        # already have the message.
        ports.ledger.note(message_id, now, providerCallAt=iso(now), providerChannel=channel)

    try:
        provider_id = ports.channels.send(channel, request, profile, address, template, codes, mark_the_call)
    except RenderFailure as error:
        return _finish(ports, message_id, Outcome(FAILED, f"render: {error}", channel), now)
    except ProviderFailure as error:
        if error.kind == "retryable":
            if error.ambiguous:
                # The answer was lost: the same rule as an attempt that died mid-call.
                unknown = unknown_outcome_refusal(
                    {"providerCallAt": iso(now), "providerChannel": channel}, request.category
                )
                if unknown:
                    count(OutcomeUnknown=1)
                    if probing and pause is not None and ports.pauses is not None:
                        # No answer says nothing of the account: the next message probes at once.
                        ports.pauses.probe_failed(channel, pause.reason, now, pause.failures, now)
                    return _finish(ports, message_id, Outcome(FAILED, unknown, channel), now)
            ports.ledger.release(message_id, f"retrying: {error.reason}", now)
            raise RetryLater(error.reason) from error
        if error.account and ports.pauses is not None:
            if pause is not None and probing:
                failures = pause.failures + 1
                pause = ports.pauses.probe_failed(channel, error.reason, now, failures, now + probe_delay(failures))
            else:
                pause = ports.pauses.pause(channel, error.reason, now, now + probe_delay(1))
            logger.warning("channel paused", channel=channel, reason=error.reason, failures=pause.failures)
            return _held_by_pause(ports, request, pause, now)
        return _finish(ports, message_id, Outcome(FAILED, f"{error.kind}: {error.reason}", channel), now)
    if probing and ports.pauses is not None and ports.pauses.clear(channel, now):
        logger.info("channel resumed", channel=channel)
        count(ChannelResumed=1)
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


def _offer_codes(
    request: MessageRequest, profile: Profile, template: Template | None, ports: Ports, now: datetime
) -> tuple[MessageRequest, dict[str, str | None]]:
    """The request with its offer references filled into its vars, and the codes of the offers
    its template names with `offer('<id>')`."""
    named: list[str] = []
    if template is not None:
        locale = choose_locale(template.locales, profile.locale, template.default_locale)
        named = offers_named(template.channel, template.locales[locale])
    if ports.offers is None or not (named or request.offers):
        return request, {}
    variables, codes = message_codes(ports.offers, profile, request.offers, named, request.message_id, now)
    if variables:
        request = request.model_copy(update={"vars": {**request.vars, **variables}})
    return request, codes


def _experiment_arm(
    request: MessageRequest,
    experiment_id: str,
    experiments: ExperimentLookup,
    exposures: ArchiveSink | None,
    profile_id: str,
    now: datetime,
) -> MessageRequest | Outcome:
    """The message as the person's arm sends it (logged as an exposure), or the holdout's end.
    Dealt before the reach guards, as a campaign deals before delivery: both arms meet them alike."""
    experiment = experiments.find_experiment(experiment_id)
    if experiment is None:
        return Outcome(FAILED, f"no_experiment: experiment {experiment_id} does not exist")
    arm = message_arm(experiment, profile_id)
    if arm is None:
        return request  # not running: nobody is split
    content = next((a.content for a in experiment.phases[-1].arms if a.id == arm.arm), None)
    problem = content_problem(content)
    if problem:
        return Outcome(FAILED, f"experiment_content: {experiment_id} arm {arm.arm}: {problem}")
    if exposures is not None:
        exposures.put([message_exposure(request, profile_id, arm, now)])
    if arm.holdout:
        return Outcome(BLOCKED, f"experiment_holdout: {arm.experiment_id} arm {arm.arm}, measured and not sent")
    return with_arm(request, arm)


def message_exposure(request: MessageRequest, profile_id: str, arm: MessageArm, now: datetime) -> ArchiveRecord:
    return records.exposure(
        experiment_id=arm.experiment_id,
        variant=arm.arm,
        profile_id=profile_id,
        at=now,
        archived_at=now,
        origin_kind=request.origin.kind,
        origin_id=request.origin.id,
        message_id=request.message_id,
        phase=arm.phase,
    )


def deliver_paced(
    request: MessageRequest,
    ports: Ports,
    policy: Policy,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    queue: MessageSink,
) -> Outcome:
    """deliver() at the clock's time, sleeping for a send token when one frees up within the
    policy's wait; a message paced all the same goes back on `queue` for the seconds until then,
    so the receive that brought it ends well and waiting never counts toward the dead-letter queue."""

    def wait(until: datetime) -> datetime:
        sleep(max(0.0, (until - clock()).total_seconds()))
        return clock()

    outcome = deliver(request, ports, policy, clock(), wait)
    if outcome.status == PACED and outcome.deferred_until:
        delay = math.ceil((parse_iso(outcome.deferred_until) - clock()).total_seconds())
        queue.send([request], delay_seconds=min(900, max(1, delay)))
    return outcome


ENDS = frozenset({SENT, BLOCKED, FAILED, CANCELLED})


def was_deferred(record: Mapping[str, Any]) -> bool:
    """Whether the ledger shows the message deferred (counted in `deferred`) before: quiet hours or
    a local-time send, not the sender's holds (a paused campaign or channel), which are not counted."""
    return any(
        isinstance(entry, Mapping) and entry.get("status") == DEFERRED and not is_hold(str(entry.get("reason", "")))
        for entry in record.get("history") or []
    )


def _defer(
    ports: Ports, request: MessageRequest, until: datetime, reason: str, now: datetime, channel: str | None = None
) -> Outcome:
    """Hold the message back until `until`: a timer brings it to delivery again then (the timer
    first, so a crash between both leaves a timer whose claim finds the message claimable)."""
    ports.timers.schedule(until, request.message_id, request.model_dump(mode="json"))
    ports.ledger.defer(request.message_id, until, reason, now)
    return Outcome(DEFERRED, reason, channel, deferred_until=iso(until))


def _held_by_pause(ports: Ports, request: MessageRequest, pause: ChannelPause, now: datetime) -> Outcome:
    until = held_until(pause, now)
    # Counted for every message held, so the alarm on it stays raised while messages wait.
    count(ChannelPaused=1)
    return _defer(ports, request, until, channel_paused_reason(pause, until), now, pause.channel)


def _finish(ports: Ports, message_id: str, outcome: Outcome, now: datetime) -> Outcome:
    ports.ledger.finish(message_id, outcome.status, outcome.reason, now, channel=outcome.channel)
    return outcome


ARCHIVED_OUTCOMES = frozenset({SENT, BLOCKED, DEFERRED, FAILED})


def archive_outcome(request: MessageRequest, outcome: Outcome, archive: ArchiveSink, now: datetime) -> None:
    """The request and its outcome into the analytics archive, once the attempt has one (a
    duplicate or a message another worker holds is not a new fact).

    Called last and never raising: a redelivered request finds the ledger's final state and would
    not archive again, so failing the record could not recover the copy; it is logged and counted
    instead (closing that window takes an outbox, as for the bus's domain events)."""
    if outcome.status not in ARCHIVED_OUTCOMES:
        return
    batch = delivery_records(
        request, outcome.status, outcome.reason, outcome.channel, now, now, deferred_until=outcome.deferred_until
    )
    try:
        archive.put(batch.records)
    except Exception:
        logger.exception("delivery outcome not archived", status=outcome.status, message_id=request.message_id)
        count(ArchiveFailures=1)
    count(Unarchived=len(batch.refused))
