"""The stepper: what wakes an instance, and the steps it runs until it waits or ends."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from midstage.logic import internal_events
from midstage.logic.conditions import Facts
from midstage.logic.delivery import zone_of
from midstage.logic.experiments.messages import Dealt
from midstage.logic.journeys.definition import MAX_PATH, CompiledJourney
from midstage.logic.journeys.entry import ENDED, MAX_SENT, NOBODY, Instance, InstanceStatus, WaitState, event_name
from midstage.logic.profile import slim_event
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.journeys import (
    ConditionStep,
    ExitStep,
    IssueOfferStep,
    RandomStep,
    SendStep,
    Step,
    UpdateProfileStep,
    WaitStep,
    WebhookStep,
)
from midstage.models.messaging import MESSAGE_EVENTS, MessageRequest, OfferRef, Origin, message_id_for
from midstage.models.profile import Profile


@dataclass(frozen=True)
class Wake:
    """What woke an instance: its entry, one of its timers, or an event the person did."""

    kind: Literal["enter", "timer", "event"]
    timer_id: str | None = None
    due: str | None = None  # the timer's due time (ISO)
    event: Mapping[str, Any] | None = None  # a slim event

    @classmethod
    def enter(cls) -> Wake:
        return cls("enter")

    @classmethod
    def timer(cls, timer_id: str, due: str) -> Wake:
        return cls("timer", timer_id=timer_id, due=due)

    @classmethod
    def on_event(cls, event: Mapping[str, Any]) -> Wake:
        return cls("event", event=event)


@dataclass(frozen=True)
class Timer:
    at: datetime
    timer_id: str
    payload: dict[str, Any]  # {"journeyId", "profileId", "run", "timerId"}


@dataclass
class Progress:
    instance: Instance  # a new instance; the one given is never changed
    messages: list[MessageRequest] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    steps_run: int = 0  # the last steps_run entries of instance.path are the steps this advance ran
    outcome: str = ""
    changed: bool = True  # False when the wake was ignored: there is nothing to write
    exposures: list[Dealt] = field(default_factory=list)  # arms dealt by random steps split by an experiment


def advance(
    compiled: CompiledJourney,
    instance: Instance,
    profile: Profile | None,
    wake: Wake,
    now: datetime,
    *,
    default_timezone: str = "UTC",
    max_steps: int = 50,
    arms: Callable[[str, str], Dealt | None] | None = None,
) -> Progress:
    """Handle one wake: check the goals, resume a wait if the wake ends it, then run steps until
    a wait, an exit or `max_steps` (which exits with reason "step limit"). `arms(experiment id,
    profile id)` deals a person an arm for a random step split by an experiment (None: the
    experiment does not exist).

    The same (instance, wake) always yields the same result, ids included.
    """
    if compiled.id != instance.journey_id:
        raise ValueError(f"instance of {instance.journey_id!r} advanced with journey {compiled.id!r}")
    if max_steps < 1:
        raise ValueError("max_steps is at least 1")
    clock = now
    if wake.kind == "timer" and wake.due:
        # The sweep may run late, and this container's clock may lag the scheduler's.
        try:
            clock = max(now, parse_iso(wake.due))
        except ValueError:
            clock = now
    if instance.status in ENDED:
        return _ignored(instance, f"ignored: the instance is {instance.status}")
    event = slim_event(wake.event) if wake.kind == "event" and wake.event is not None else None
    stepper = _Stepper(compiled, instance, profile, clock, default_timezone)
    stepper.arms = arms

    if event is not None and _received_before_entry(instance, event):
        # The write that let the person in may carry older events (an imported history, a batch
        # sent at once) that reach the runner after the entry: none of them answers this run.
        return _ignored(instance, f"ignored: {event_name(event)!r} was received before the run began")
    if event is not None:
        goal = _goal_reached(compiled, profile, event, clock)
        if goal is not None:
            stepper.last_event = event
            stepper.end("exited", f"goal: {goal}", log_step=instance.step)
            return stepper.progress(f"exited: goal: {goal}")

    if instance.status == "active":
        if wake.kind == "timer":
            return _ignored(instance, "stale timer ignored")
        if wake.kind != "enter":
            return _ignored(instance, "ignored: the instance has not started; only its enter wake runs it")
        return stepper.run(instance.step, max_steps)

    wait = instance.wait
    if wait is None:
        return _ignored(instance, "ignored: the instance is waiting but has no wait")
    step = compiled.steps.get(wait["step"])
    if wake.kind == "timer":
        if wake.timer_id != wait["timer_id"]:
            return _ignored(instance, "stale timer ignored")
        timed_out = wait["kind"] == "event"
        target = _wait_exit(step, "on_timeout" if timed_out else "next")
        outcome = "timed out" if timed_out else "timer fired"
    elif wake.kind == "event" and event is not None:
        name = event_name(event)
        if wait["kind"] != "event" or name != wait["event"]:
            return _ignored(instance, f"ignored: {name!r} does not end the wait at {wait['step']}")
        where = compiled.wait_where.get(wait["step"])
        if where is not None and not where.test(Facts(profile, event, clock)):
            return _ignored(instance, f"ignored: {name!r} does not match the wait's where at {wait['step']}")
        if not _caused_by_run(step, instance, event):
            return _ignored(instance, f"ignored: {name!r} is about a message this run did not send")
        target = _wait_exit(step, "on_event")
        outcome = f"event: {name}"
        stepper.last_event = event
    else:
        return _ignored(instance, f"ignored: already waiting at {wait['step']}")
    stepper.log(wait["step"], outcome)
    if target is None:
        stepper.end("exited", f"step {wait['step']!r} is not a wait of this kind in version {compiled.version}")
        return stepper.progress(f"exited: {stepper.exit_reason}")
    return stepper.run(target, max_steps)


def _ignored(instance: Instance, outcome: str) -> Progress:
    # A copy all the way down: whatever the caller does with the result cannot reach the input.
    return Progress(instance=Instance.from_doc(instance.to_doc()), outcome=outcome, changed=False)


def _wait_exit(step: Step | None, pointer: str) -> str | None:
    if not isinstance(step, WaitStep):
        return None
    target = getattr(step, pointer)
    return target if isinstance(target, str) else None


def _caused_by_run(step: Step | None, instance: Instance, event: Mapping[str, Any]) -> bool:
    """Whether an awaited event may end the wait by its cause: an event a message causes counts
    when that message is one this run sent, unless the wait says any message's counts. A run
    begun before the sent messages were kept (`sent` None) counts any, as it always did."""
    if event_name(event) not in MESSAGE_EVENTS or instance.sent is None:
        return True
    until = step.until_event if isinstance(step, WaitStep) else None
    if until is not None and until.caused_by == "any":
        return True
    properties = event.get("properties")
    message_id = properties.get("messageId") if isinstance(properties, Mapping) else None
    return isinstance(message_id, str) and message_id in instance.sent


def _received_before_entry(instance: Instance, event: Mapping[str, Any]) -> bool:
    """Whether `event` came before this run began, by the platform's own receipt time (not the
    sender's clock; an event without one, such as a platform event, is never before).

    A run an event let in begins with that event: what the platform received before it is
    before; what came in the same request (the same receipt time) is before only if it happened
    earlier (an abandoned cart and its order sent in one batch: the order ends the run). A run a
    segment or a date let in begins when it was entered: the write that let the person in may
    carry older events (an imported history) that reach the runner later, and none of them is
    about this run."""
    received = event.get("receivedAt")
    if not isinstance(received, str):
        return False
    try:
        at = parse_iso(received)
        if instance.entry_received_at:
            trigger = parse_iso(instance.entry_received_at)
            if at != trigger:
                return at < trigger
            happened, began = event.get("timestamp"), instance.entry_timestamp
            return isinstance(happened, str) and bool(began) and parse_iso(happened) < parse_iso(began)
        return bool(instance.entered_at) and at < parse_iso(instance.entered_at)
    except ValueError:
        return False


def _goal_reached(
    compiled: CompiledJourney, profile: Profile | None, event: Mapping[str, Any], clock: datetime
) -> str | None:
    name = event_name(event)
    for goal in compiled.goals:
        if goal.event == name and (goal.where is None or goal.where.test(Facts(profile, event, clock))):
            return goal.event
    return None


class _Stepper:
    """The state of one advance; it turns into a new Instance at the end."""

    def __init__(
        self,
        compiled: CompiledJourney,
        instance: Instance,
        profile: Profile | None,
        clock: datetime,
        default_timezone: str,
    ) -> None:
        self.compiled = compiled
        self.instance = instance = Instance.from_doc(instance.to_doc())  # nothing returned shares the input
        # Updated locally by update_profile steps, so a later condition in the same advance sees them.
        self.profile = profile
        self.clock = clock
        self.stamp = iso(clock)
        self.default_timezone = default_timezone
        self.status: InstanceStatus = "active"
        self.step = instance.step
        self.seq = instance.seq
        self.path = [list(entry) for entry in instance.path]
        self.wait: WaitState | None = None
        self.ended_at: str | None = None
        self.exit_reason: str | None = None
        self.last_event = instance.last_event
        self.sent = list(instance.sent) if instance.sent is not None else None
        self.offers = {var: dict(ref) for var, ref in instance.offers.items()}
        self.messages: list[MessageRequest] = []
        self.events: list[dict[str, Any]] = []
        self.timers: list[Timer] = []
        self.steps_run = 0
        self.arms: Callable[[str, str], Dealt | None] | None = None
        self.exposures: list[Dealt] = []

    def log(self, step_id: str, outcome: str) -> None:
        self.path.append([step_id, self.stamp, outcome])

    def end(self, status: InstanceStatus, reason: str | None, *, log_step: str | None = None) -> None:
        self.status, self.exit_reason, self.ended_at, self.wait = status, reason, self.stamp, None
        if log_step is not None:
            self.log(log_step, f"{status}: {reason}")

    def progress(self, outcome: str) -> Progress:
        instance = replace(
            self.instance,
            journey_version=self.compiled.version,
            status=self.status,
            step=self.step,
            seq=self.seq,
            updated_at=self.stamp,
            ended_at=self.ended_at,
            exit_reason=self.exit_reason,
            wait=self.wait,
            path=self.path[-MAX_PATH:],
            last_event=self.last_event,
            sent=self.sent,
            offers=self.offers,
        )
        return Progress(
            instance, self.messages, self.events, self.timers, self.steps_run, outcome, exposures=self.exposures
        )

    def run(self, start: str, max_steps: int) -> Progress:
        current = start
        while True:
            self.step = current
            if self.steps_run >= max_steps:
                self.end("exited", "step limit")  # not logged: the path's tail is the steps that ran
                return self.progress("exited: step limit")
            step = self.compiled.steps.get(current)
            if step is None:
                self.end("exited", f"step {current!r} is not in version {self.compiled.version}")
                return self.progress(f"exited: {self.exit_reason}")
            self.seq += 1
            self.steps_run += 1
            if isinstance(step, ExitStep):
                self.end("completed", f"exit: {current}")
                self.log(current, "completed")
                return self.progress("completed")
            if isinstance(step, WaitStep):
                until = self.start_wait(current, step)
                self.log(current, f"waiting until {until}")
                detail = f" for {step.until_event.event!r}" if step.until_event is not None else ""
                return self.progress(f"waiting at {current}{detail} until {until}")
            current, outcome = self.act(current, step)
            self.log(self.step, outcome)

    def act(self, step_id: str, step: Step) -> tuple[str, str]:
        """Run a step that does not stop the instance; the next step id and what happened."""
        if isinstance(step, ConditionStep):
            facts = Facts(self.profile, self.last_event, self.clock)
            matched = self.compiled.step_conditions[step_id].test(facts)
            return (step.yes, "yes") if matched else (step.no, "no")
        if isinstance(step, RandomStep) and step.experiment is not None:
            return self.split_by_experiment(step, step.experiment)
        if isinstance(step, RandomStep):
            index = _branch(self.instance.instance_id, step_id, [b.percent for b in step.branches])
            return step.branches[index].next, f"branch {index}"
        key = self.key(step_id)
        if isinstance(step, IssueOfferStep):
            # Named here, issued at delivery: the cause is this run's step, so however often the
            # step or a send after it is redelivered, the person is given one code for it.
            self.offers = {**self.offers, step.var: {"offer": step.offer, "cause": key}}
            return step.next, f"offer {step.offer} named as vars.{step.var}"
        if isinstance(step, (SendStep, WebhookStep)) and self.sent is not None:
            self.sent = [*self.sent, message_id_for(key)][-MAX_SENT:]
        if isinstance(step, SendStep):
            self.messages.append(
                MessageRequest(
                    key=key,
                    origin=self.origin(step_id),
                    profile_id=self.instance.profile_id,
                    channels=list(step.channels),
                    category=step.category,
                    template=step.template,
                    vars=step.vars,
                    offers={var: OfferRef.model_validate(ref) for var, ref in self.offers.items()},
                    event=self.last_event,
                    requested_at=self.stamp,
                    experiment=step.experiment,
                )
            )
            return step.next, "message requested"
        if isinstance(step, WebhookStep):
            self.messages.append(
                MessageRequest(
                    key=key,
                    origin=self.origin(step_id),
                    profile_id=self.instance.profile_id,
                    channels=["webhook"],
                    category="transactional",
                    event=self.last_event,
                    webhook_url=str(step.url),
                    webhook_include=list(step.include),
                    requested_at=self.stamp,
                )
            )
            return step.next, "webhook requested"
        assert isinstance(step, UpdateProfileStep)
        return step.next, self.update_profile(key, step)

    def update_profile(self, key: str, step: UpdateProfileStep) -> str:
        person = internal_events.addressed_to(self.profile) if self.profile is not None else None
        if person is None or self.profile is None:
            return "skipped: the profile has no user or anonymous id"
        journey_id = self.instance.journey_id
        if step.set_traits:
            self.events.append(
                internal_events.identify(
                    person,
                    step.set_traits,
                    message_id=internal_events.internal_id(key, "traits"),
                    timestamp=self.stamp,
                    depth=1,
                )
            )
        for name, tags in (("Tag Added", step.add_tags), ("Tag Removed", step.remove_tags)):
            for tag in tags:
                self.events.append(
                    internal_events.track(
                        person,
                        name,
                        {"tag": tag, "journey": journey_id},
                        message_id=internal_events.internal_id(key, name, tag),
                        timestamp=self.stamp,
                        depth=1,
                    )
                )
        kept = (set(self.profile.tags) | set(step.add_tags)) - set(step.remove_tags)
        self.profile = replace(self.profile, traits={**self.profile.traits, **step.set_traits}, tags=sorted(kept))
        return "profile update requested"

    def start_wait(self, step_id: str, step: WaitStep) -> str:
        timer_id = f"{self.instance.instance_id}:{self.seq}"
        clock_time = self.compiled.wait_clocks.get(step_id)
        if clock_time is not None:
            zone = zone_of(self.profile or NOBODY, self.default_timezone)
            at = next_local_time(self.clock, zone, clock_time.strftime("%H:%M"))
        else:
            at = self.clock + self.compiled.wait_lengths[step_id]
        until = iso(at)
        awaited = step.until_event.event if step.until_event is not None else None
        self.status = "waiting"
        self.wait = WaitState(
            kind="event" if awaited is not None else "timer",
            step=step_id,
            until=until,
            timer_id=timer_id,
            event=awaited,
        )
        payload = {
            "journeyId": self.instance.journey_id,
            "profileId": self.instance.profile_id,
            "run": self.instance.run,
            "timerId": timer_id,
        }
        self.timers.append(Timer(at=at.astimezone(UTC), timer_id=timer_id, payload=payload))
        return until

    def split_by_experiment(self, step: RandomStep, experiment_id: str) -> tuple[str, str]:
        """The branch of the person's arm (exposed while the experiment runs); the control arm's
        while it does not; the first branch when it cannot be read or the arm has no branch."""
        dealt = self.arms(experiment_id, self.instance.profile_id) if self.arms is not None else None
        if dealt is None:
            return step.branches[0].next, f"experiment {experiment_id} not found: first branch"
        branch = next((b for b in step.branches if b.arm == dealt.arm), None)
        if branch is None:
            return step.branches[0].next, f"arm {dealt.arm} of {experiment_id} has no branch: first branch"
        if dealt.phase:
            self.exposures.append(dealt)
        return branch.next, f"arm {dealt.arm} of {experiment_id}" + ("" if dealt.phase else " (not running)")

    def key(self, step_id: str) -> str:
        i = self.instance
        return f"journey:{i.journey_id}:{i.ids_from or i.profile_id}:{i.run}:{step_id}:{self.seq}"

    def origin(self, step_id: str) -> Origin:
        return Origin(kind="journey", id=self.instance.journey_id, version=self.compiled.version, step=step_id)


def _branch(instance_id: str, step_id: str, percents: list[float]) -> int:
    """A stable draw: the same instance always takes the same branch of a step."""
    bucket = int.from_bytes(hashlib.sha256(f"{instance_id}:{step_id}".encode()).digest()[:8], "big") % 10_000
    edge = 0
    for index, percent in enumerate(percents):
        edge += round(percent * 100)
        if bucket < edge:
            return index
    return len(percents) - 1


def next_local_time(now: datetime, zone: ZoneInfo, hh_mm: str) -> datetime:
    """The next moment strictly after `now` when the clock in `zone` shows hh_mm, in UTC.

    When clocks go forward and hh_mm does not exist that day, it moves forward by the gap
    (02:30 becomes 03:30); when they go back and it occurs twice, the first occurrence counts,
    and once that has passed the next is the following day's.
    """
    wanted = time.fromisoformat(hh_mm)
    local_day = now.astimezone(zone).date()
    for offset in range(3):
        moment = datetime.combine(local_day + timedelta(days=offset), wanted, tzinfo=zone).astimezone(UTC)
        if moment > now:
            return moment
    raise AssertionError("a local time of day recurs within two days")  # pragma: no cover
