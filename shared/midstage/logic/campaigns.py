"""Campaigns: who a run reaches, who is held out, which variant, when each message goes, how
fast workers queue, what a run's counters say, and which conversions a campaign earns.

Pure: no I/O. A campaign run goes like this. EventBridge Scheduler fires the runner with the
occurrence's scheduled time, which names the run (`run_id_for`): a schedule that fires twice
starts the same run. The runner fans out workers over all profiles; each calls `plan_recipient`
for every profile it scans and queues the "send" decisions at its share of the campaign's rate
(`share_of_rate`, `pace`), counting those beyond `max_messages` as capped. The deliver function
applies every guard; its ledger never sends one message id twice, and a campaign message's key
names (campaign, run, person), so a redelivered page, a retried worker or a double fire sends
nothing twice.

Assignment is by hash, never by chance: the same person is in or out of a campaign's holdout,
and in the same variant, on every run, in every worker, after every retry. The holdout and the
variant use differently salted hashes, so the control group is a fair sample of every variant.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Final, Literal
from zoneinfo import ZoneInfo

from midstage.errors import CampaignStateError as CampaignStateError
from midstage.logic.campaign_experiments import Deal
from midstage.logic.campaign_results import (  # noqa: F401 - importable from here as before
    BLOCK_CODES,
    BLOCKED_PREFIX,
    BOUNCED,
    CAPPED,
    CLICKED,
    COMPLAINED,
    CONVERTED,
    DEFERRED,
    DELIVERED,
    FAILED,
    HELD_OUT,
    HOLDOUT_CONVERTED,
    HOLDOUT_REVENUE,
    MAX_REVENUE,
    MISSED,
    OPENED,
    OTHER,
    QUEUED,
    RATE_DECIMALS,
    REVENUE,
    SENT,
    TARGETED,
    UNSUBSCRIBED,
    Attribution,
    TouchKind,
    attribute,
    blocked_counter,
    converted_key,
    reason_code,
    revenue_of,
    stats_view,
)
from midstage.logic.conditions import Issue
from midstage.logic.delivery import zone_of
from midstage.logic.schedules import (
    AtExpression,
    at_expression,
    occurrences,
    parse_expression,
    validate_expression,
)
from midstage.logic.timefmt import iso
from midstage.models.campaigns import (
    Audience,
    Campaign,
    CampaignBody,
    CampaignStatus,
    LocalTimeSchedule,
    OnceSchedule,
    RecurringSchedule,
    Variant,
)
from midstage.models.messaging import Channel, MessageRequest, OfferRef, Origin
from midstage.models.profile import Profile

# ------------------------------------------------------------------------------ other constants
BUCKETS: Final = 10_000  # hundredths of a percent
# The largest UTC offset anywhere (Pacific/Kiritimati) and the smallest (Etc/GMT+12): a local
# wall-clock time happens first at UTC+14 and last at UTC-12, 26 hours apart.
EARLIEST_OFFSET: Final = timedelta(hours=14)
LATEST_OFFSET: Final = timedelta(hours=-12)
# A local-time message whose moment passed at most this long before the run fired is sent at
# once (a morning message at lunchtime still reads as today's); beyond it, it is not sent at all,
# since 10:00's message in the evening reads as a mistake. A run fired on time misses no one.
LOCAL_TIME_GRACE: Final = timedelta(hours=6)
MAX_PACE_WAIT: Final = 60.0  # seconds; a worker sleeps at most this long, then asks again
MIN_RUN_INTERVAL: Final = timedelta(hours=1)  # a recurring campaign messages its audience at most hourly
_INTERVAL_SAMPLE: Final = 100  # occurrences looked at to find a recurring schedule's shortest gap


# ------------------------------------------------------------------------------ state
Action = Literal["schedule", "start", "pause", "resume", "cancel", "complete"]
ACTIONS: Final[tuple[Action, ...]] = ("schedule", "start", "pause", "resume", "cancel", "complete")


# (status, action) -> the new status. An action whose effect already holds is accepted again
# (schedule a scheduled campaign, pause a paused one, start a running one), so retried API
# calls and a double-fired schedule are harmless.
_MOVES: Final[dict[tuple[CampaignStatus, Action], CampaignStatus]] = {
    ("draft", "schedule"): "scheduled",
    ("draft", "cancel"): "cancelled",
    ("scheduled", "schedule"): "scheduled",
    ("scheduled", "start"): "running",
    ("scheduled", "pause"): "paused",
    ("scheduled", "resume"): "scheduled",
    ("scheduled", "cancel"): "cancelled",
    ("scheduled", "complete"): "completed",  # a schedule with no run left (its end passed)
    ("running", "start"): "running",
    ("running", "pause"): "paused",
    ("running", "resume"): "running",
    ("running", "cancel"): "cancelled",
    ("running", "complete"): "completed",
    ("paused", "pause"): "paused",
    ("paused", "resume"): "scheduled",
    ("paused", "cancel"): "cancelled",
    ("completed", "complete"): "completed",
    ("cancelled", "cancel"): "cancelled",
}

_REFUSALS: Final[dict[tuple[CampaignStatus, Action], str]] = {
    ("draft", "start"): "a draft cannot run: schedule it first",
    ("draft", "pause"): "a draft is not sending, so there is nothing to pause: schedule it first",
    ("draft", "resume"): "only a paused campaign can be resumed, and this one is a draft",
    ("draft", "complete"): "a draft has not run, so it cannot complete",
    ("running", "schedule"): "the campaign is running: pause it before changing its schedule",
    ("paused", "schedule"): "the campaign is paused: resume it to put it back on its schedule",
    ("paused", "start"): "the campaign is paused: it runs again once resumed",
    ("paused", "complete"): "the campaign is paused: resume it, or cancel it",
}


def transition(status: CampaignStatus, action: Action, *, more_runs: bool = False) -> CampaignStatus:
    """The status after `action`, or CampaignStateError saying why it does not apply.

    `start` is the runner beginning a run; `complete` is a run ending, which leaves a recurring
    campaign with runs still to come (`more_runs`, see `next_fire`) scheduled, not completed.
    `resume` puts a paused campaign back on its schedule; a run that was interrupted is started
    again by the service under the same run id, so nobody gets a second message.
    """
    if action == "complete" and more_runs and status in ("scheduled", "running"):
        return "scheduled"
    moved = _MOVES.get((status, action))
    if moved is not None:
        return moved
    if status == "cancelled":
        raise CampaignStateError(f"cannot {action} a cancelled campaign: it has ended; copy it to send again")
    if status == "completed":
        raise CampaignStateError(f"cannot {action} a completed campaign: it has sent; copy it to send again")
    reason = _REFUSALS.get((status, action), f"a {status} campaign cannot {action}")
    raise CampaignStateError(f"cannot {action}: {reason}")


def next_fire(campaign: CampaignBody, after: datetime) -> datetime | None:
    """When the campaign's schedule fires next strictly after `after` (UTC), or None."""
    schedule = campaign.schedule
    if isinstance(schedule, OnceSchedule):
        moment = schedule.moment().astimezone(UTC)
        return moment if moment > after else None
    if isinstance(schedule, LocalTimeSchedule):
        first = first_fire_for_local_time(schedule.local_date(), schedule.local_clock())
        return first if first > after else None
    found = occurrences(
        schedule.expression, schedule.timezone, after, 1, start=schedule.start_at(), end=schedule.end_at()
    )
    return found[0] if found else None


@dataclass(frozen=True)
class SchedulerSpec:
    """What EventBridge Scheduler is given for a campaign (CreateSchedule's fields)."""

    expression: str
    timezone: str
    start: str | None  # StartDate, ISO UTC
    end: str | None  # EndDate, ISO UTC
    one_time: bool
    moment: datetime | None = None  # a one-time schedule's firing moment


def scheduler_spec(campaign: CampaignBody, now: datetime) -> SchedulerSpec:
    """The schedule that starts the campaign's runs. One-time schedules are given in UTC (an
    at() in a local zone cannot name the second pass of a repeated hour); a local-time campaign
    fires when its wall-clock time first happens anywhere (UTC+14). A one-time moment already
    past (a campaign resumed late) fires a minute from now instead."""
    schedule = campaign.schedule
    if isinstance(schedule, RecurringSchedule):
        start, end = schedule.start_at(), schedule.end_at()
        return SchedulerSpec(
            schedule.expression,
            schedule.timezone,
            iso(start) if start else None,
            iso(end) if end else None,
            one_time=False,
        )
    if isinstance(schedule, OnceSchedule):
        moment = schedule.moment()
    else:
        moment = first_fire_for_local_time(schedule.local_date(), schedule.local_clock())
    soonest = now.astimezone(UTC).replace(microsecond=0) + timedelta(minutes=1)
    fires = max(moment, soonest)
    return SchedulerSpec(at_expression(fires, "UTC"), "UTC", None, None, one_time=True, moment=fires)


# ------------------------------------------------------------------------------ who, which
def in_audience(memberships: Mapping[str, str], audience: Audience) -> bool:
    """A member of any listed segment and of none excluded (memberships: segment id -> entered)."""
    return any(segment in memberships for segment in audience.segments) and not any(
        segment in memberships for segment in audience.exclude
    )


def _bucket(purpose: str, campaign_id: str, profile_id: str) -> int:
    digest = hashlib.sha256(f"campaign-{purpose}:{campaign_id}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_holdout(campaign_id: str, profile_id: str, percent: float) -> bool:
    """A stable control group: the same person is always in or out of a campaign's holdout."""
    return percent > 0 and _bucket("holdout", campaign_id, profile_id) < round(percent * 100)


def variant_for(campaign_id: str, profile_id: str, variants: Sequence[Variant] | None) -> Variant | None:
    """The person's variant, stable across runs, each variant drawn in proportion to its percent."""
    if not variants:
        return None
    bucket = _bucket("variant", campaign_id, profile_id)
    edge = 0
    for variant in variants:
        edge += variant.hundredths
        if bucket < edge:
            return variant
    return variants[-1]  # only if the percents fall short of 100, which the model refuses


def run_id_for(scheduled_time: datetime) -> str:
    """A run's id from its scheduled time, to the minute in UTC ("r20261201T1000Z"): Scheduler
    fires within the minute, so a double fire names the same run and two occurrences differ."""
    if scheduled_time.tzinfo is None or scheduled_time.utcoffset() is None:
        raise ValueError(f"scheduled_time must be timezone-aware, got {scheduled_time!r}")
    return scheduled_time.astimezone(UTC).strftime("r%Y%m%dT%H%MZ")


# ------------------------------------------------------------------------------ local time
def first_fire_for_local_time(day: date, clock: time) -> datetime:
    """The earliest instant that is `day` at `clock` somewhere on Earth (at UTC+14), in UTC."""
    return datetime.combine(day, clock, tzinfo=timezone(EARLIEST_OFFSET)).astimezone(UTC)


def last_local_time(day: date, clock: time) -> datetime:
    """The latest instant that is `day` at `clock` somewhere on Earth (at UTC-12), in UTC."""
    return datetime.combine(day, clock, tzinfo=timezone(LATEST_OFFSET)).astimezone(UTC)


def local_send_time(day: date, clock: time, zone: ZoneInfo | str) -> datetime:
    """`day` at `clock` in `zone`, in UTC. A time the clocks skip moves forward by the gap (02:30
    on a spring-forward night is sent at 03:30); a time that happens twice takes the first."""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    # fold=0 reads a repeated time with the offset before the change, the first instant, and a
    # skipped time with that same offset, which lands after the gap.
    return datetime.combine(day, clock).replace(tzinfo=tz, fold=0).astimezone(UTC)


SendAt = datetime | None | Literal["missed"]


def send_at(campaign: CampaignBody, profile: Profile, fired_at: datetime, default_timezone: str = "UTC") -> SendAt:
    """When this person's message should go: None for now, a UTC datetime for later, or "missed".

    Only local-time campaigns wait: the run fires at the first moment anywhere, and each person
    gets the message at the wall-clock time in their zone (trait `timezone`, then the profile's,
    then `default_timezone`). A moment passed by at most LOCAL_TIME_GRACE is sent now; one passed
    longer ago is "missed" (counted, not sent). Judged against `fired_at`, not the worker's clock,
    so a retried worker makes the same decision.
    """
    schedule = campaign.schedule
    if not isinstance(schedule, LocalTimeSchedule):
        return None
    target = local_send_time(schedule.local_date(), schedule.local_clock(), zone_of(profile, default_timezone))
    fired = fired_at.astimezone(UTC)
    if target > fired:
        return target
    return None if fired - target <= LOCAL_TIME_GRACE else "missed"


# ------------------------------------------------------------------------------ planning
Decision = Literal["not_in_audience", "missed", "held_out", "global_control", "awaiting_winner", "in_test", "send"]


@dataclass(frozen=True)
class Recipient:
    """What a run does for one person. Only "send" carries a request; `send_at` None is now."""

    profile_id: str
    decision: Decision
    variant: Variant | None = None
    request: MessageRequest | None = None
    send_at: datetime | None = None
    arm: str | None = None  # the experiment's arm, when an experiment splits the campaign


def message_key(campaign_id: str, run_id: str, profile_id: str) -> str:
    return f"campaign:{campaign_id}:{run_id}:{profile_id}"


def plan_recipient(
    campaign: Campaign,
    profile: Profile,
    run_id: str,
    fired_at: datetime,
    *,
    default_timezone: str = "UTC",
    now: datetime | None = None,
    deal: Deal | None = None,
) -> Recipient:
    """The run's decision for one person, in order: the audience (a merged-away profile is no
    one), a local time missed, the holdout, then the message. A missed person is judged before
    the holdout so that the control group is drawn from the same people as those messaged.
    `now` stamps the request (the worker's clock); it defaults to `fired_at`. With `deal` (an
    experiment splits the campaign) the experiment places the person instead of the campaign's
    own holdout and variant hashes (logic.campaign_experiments)."""
    if profile.merged_into or not in_audience(profile.segments, campaign.audience):
        return Recipient(profile.id, "not_in_audience")
    when = send_at(campaign, profile, fired_at, default_timezone)
    if when == "missed":
        return Recipient(profile.id, "missed")
    arm = None
    if deal is not None:
        placed = deal.place(profile.id)
        if placed.kind in ("global_control", "awaiting_winner", "in_test"):
            return Recipient(profile.id, placed.kind)
        if placed.kind == "holdout":
            return Recipient(profile.id, "held_out", arm=placed.arm)
        arm = placed.arm
        variant = next((v for v in campaign.variants or [] if v.id == placed.variant), None)
    elif in_holdout(campaign.id, profile.id, campaign.holdout_percent):
        return Recipient(profile.id, "held_out")
    else:
        variant = variant_for(campaign.id, profile.id, campaign.variants)
    message = campaign.message
    template: str | dict[Channel, str] = message.template
    variables = dict(message.vars)
    if variant is not None:
        template = variant.template if variant.template is not None else message.template
        variables.update(variant.vars)
    request = MessageRequest(
        key=message_key(campaign.id, run_id, profile.id),
        origin=Origin(
            kind="campaign", id=campaign.id, version=campaign.version, step=variant.id if variant else "main"
        ),
        profile_id=profile.id,
        channels=list(message.channels),
        category=message.category,
        template=template,
        vars=variables,
        offers=offer_refs(campaign, profile.id),
        requested_at=iso(now or fired_at),
    )
    return Recipient(profile.id, "send", variant, request, when if isinstance(when, datetime) else None, arm)


def offer_refs(campaign: Campaign, profile_id: str) -> dict[str, OfferRef]:
    """The code a campaign's message carries: one per campaign and person (every run and every
    redelivery re-reads the same), issued when the message is delivered."""
    offer = campaign.message.offer
    if offer is None:
        return {}
    return {offer.var: OfferRef(offer=offer.id, cause=f"campaign:{campaign.id}:{profile_id}")}


# ------------------------------------------------------------------------------ pacing
def share_of_rate(send_rate: float, workers: int) -> float:
    """Each of `workers` parallel workers' part of the campaign's messages per second."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not send_rate > 0 or not math.isfinite(send_rate):
        raise ValueError(f"send_rate must be a positive number, got {send_rate}")
    return send_rate / workers


def pace(queued_so_far: int, started_at: float, rate_per_second: float, now: float) -> float:
    """Seconds to wait before queuing the next message(s) so that a worker that started at
    `started_at` (epoch seconds) has queued no faster than `rate_per_second` on average: message
    number n is due at started_at + n / rate. Never negative; at most MAX_PACE_WAIT, so a worker
    with a long wait ahead sleeps in steps and can look at its deadline and the campaign's status
    in between (call again after waiting)."""
    if not rate_per_second > 0 or not math.isfinite(rate_per_second):
        raise ValueError(f"rate_per_second must be a positive number, got {rate_per_second}")
    if queued_so_far < 0:
        raise ValueError(f"queued_so_far cannot be negative, got {queued_so_far}")
    if not (math.isfinite(started_at) and math.isfinite(now)):
        raise ValueError("started_at and now must be finite")
    due = started_at + queued_so_far / rate_per_second
    return min(max(0.0, due - now), MAX_PACE_WAIT)


# ------------------------------------------------------------------------------ validation
def validate_campaign(
    body: CampaignBody, *, segments_known: set[str], templates_known: set[str], now: datetime
) -> list[Issue]:
    """What the model cannot judge alone, located by JSON pointer: segments and templates that do
    not exist, a one-time or local-time schedule already past, and a recurring schedule Scheduler
    would refuse, that never fires again, or that would message the audience more than hourly."""
    issues: list[Issue] = []
    for name, ids in (("segments", body.audience.segments), ("exclude", body.audience.exclude)):
        issues.extend(
            Issue(f"/audience/{name}/{i}", f"no segment {segment!r}")
            for i, segment in enumerate(ids)
            if segment not in segments_known
        )
    issues.extend(_template_issues("/message/template", body.message.template, templates_known))
    for i, variant in enumerate(body.variants or []):
        if variant.template is not None:
            issues.extend(_template_issues(f"/variants/{i}/template", variant.template, templates_known))
    issues.extend(_schedule_issues(body, now.astimezone(UTC)))
    return issues


def _template_issues(location: str, template: str | dict[Channel, str], known: set[str]) -> list[Issue]:
    if isinstance(template, str):
        named = [(location, template)]
    else:
        named = [(f"{location}/{channel}", template_id) for channel, template_id in template.items()]
    return [Issue(where, f"no template {template_id!r}") for where, template_id in named if template_id not in known]


def _schedule_issues(body: CampaignBody, now: datetime) -> list[Issue]:
    schedule = body.schedule
    if isinstance(schedule, OnceSchedule):
        if schedule.moment() <= now:
            return [Issue("/schedule/at", f"{schedule.at} has passed (it is {iso(now)})")]
        return []
    if isinstance(schedule, LocalTimeSchedule):
        if last_local_time(schedule.local_date(), schedule.local_clock()) <= now:
            return [Issue("/schedule/date", f"{schedule.date} {schedule.time} has passed in every time zone")]
        return []
    problems = validate_expression(schedule.expression, schedule.timezone)
    if problems:
        return [Issue("/schedule" + problem.location, problem.message) for problem in problems]
    if isinstance(parse_expression(schedule.expression), AtExpression):
        return [Issue("/schedule/expression", "a recurring schedule takes cron() or rate(); use a once schedule")]
    end = schedule.end_at()
    if end is not None and end <= now:
        return [Issue("/schedule/end", f"{schedule.end} has passed (it is {iso(now)})")]
    start = schedule.start_at()
    upcoming = occurrences(schedule.expression, schedule.timezone, now, _INTERVAL_SAMPLE, start=start, end=end)
    if not upcoming:
        return [Issue("/schedule/expression", "never fires again" + (f" before {schedule.end}" if end else ""))]
    gaps = [later - earlier for earlier, later in itertools.pairwise(upcoming)]
    if gaps and min(gaps) < MIN_RUN_INTERVAL:
        minutes = int(min(gaps).total_seconds() // 60)
        return [
            Issue(
                "/schedule/expression",
                f"runs {minutes} minute(s) apart; a campaign messages its whole audience each run, "
                "so it may run at most once an hour",
            )
        ]
    return []
