"""Journeys: validating a definition, deciding entries, and the stepper that runs an instance.

Everything here is pure. The service loads the instance and profile, calls `advance` with what
woke the instance, and writes back what it returns: the new instance, messages to deliver,
events for the profile updater and timers to schedule. Every effect is named by (journey,
person, run, step, seq), so a wake handled twice yields the same ids, and the ledger and the
updater's dedupe absorb the repeat; timers are named the same way, so a stale one (a wait that
already ended) is recognised and ignored.

Instances run the definition they are given: an instance whose current step is missing from it
(the journey was edited) exits with the reason saying so.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypedDict
from zoneinfo import ZoneInfo

from midstage.logic import internal_events
from midstage.logic.conditions import Condition, ConditionError, Facts, Issue, compile_condition
from midstage.logic.delivery import zone_of
from midstage.logic.profile import slim_event
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.journeys import (
    ConditionStep,
    DateEntry,
    EventEntry,
    ExitStep,
    Journey,
    JourneyBody,
    RandomStep,
    SegmentEntry,
    SendStep,
    Step,
    UpdateProfileStep,
    WaitStep,
    WebhookStep,
    duration_of,
)
from midstage.models.messaging import MessageRequest, Origin
from midstage.models.profile import Profile

__all__ = [
    "MAX_PATH",
    "CompiledGoal",
    "CompiledJourney",
    "Instance",
    "Progress",
    "Timer",
    "WaitState",
    "Wake",
    "advance",
    "compile_journey",
    "date_entry_key",
    "duration_of",
    "entry_key_for",
    "may_enter",
    "next_local_time",
    "start_instance",
    "validate_journey",
]

MAX_PATH = 50
_LISTED_IDS = 12  # unknown-step messages list the known ids when there are at most this many
_TRAIT_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_TRAIT_SEGMENTS = 8
# Traits the platform reads for something else: a zone or a language is never a date.
_RESERVED_TRAITS = {"timezone": "the person's time zone", "locale": "the person's language"}
_FULL_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTH_DAY = re.compile(r"([0-9]{2})-([0-9]{2})")

_NOBODY = Profile(id="", created_at="")  # a missing profile has no zone of its own: the default applies

InstanceStatus = Literal["active", "waiting", "completed", "exited"]
_ENDED = ("completed", "exited")


# ============================================================================== compiled definition
@dataclass(frozen=True)
class CompiledGoal:
    event: str
    where: Condition | None


@dataclass(frozen=True)
class CompiledJourney:
    """A journey with its conditions compiled and its waits measured, so the stepper never parses."""

    journey: Journey
    entry_where: Condition | None
    entry_conditions: Condition | None
    step_conditions: Mapping[str, Condition]  # condition steps
    wait_where: Mapping[str, Condition]  # until_event waits with a `where`
    goals: tuple[CompiledGoal, ...]
    wait_lengths: Mapping[str, timedelta]  # a wait's duration, or its timeout for until_event
    wait_clocks: Mapping[str, time]  # until_time waits

    @property
    def id(self) -> str:
        return self.journey.id

    @property
    def version(self) -> int:
        return self.journey.version

    @property
    def steps(self) -> Mapping[str, Step]:
        return self.journey.steps


def validate_journey(body: JourneyBody, *, max_window_days: int = 90) -> list[Issue]:
    """Everything wrong with how a definition fits together, each with a JSON-pointer location,
    or [] when it can run. The model has already checked each part's own shape."""
    return _check(body, max_window_days)[0]


def compile_journey(journey: Journey, *, max_window_days: int = 90) -> CompiledJourney:
    """Validate and compile once per definition; raise ConditionError listing every issue."""
    issues, conditions = _check(journey, max_window_days)
    if issues:
        raise ConditionError(issues)
    lengths: dict[str, timedelta] = {}
    clocks: dict[str, time] = {}
    for step_id, step in journey.steps.items():
        if isinstance(step, WaitStep):
            if step.until_time is not None:
                clocks[step_id] = time.fromisoformat(step.until_time)
            else:
                lengths[step_id] = duration_of(step.duration or step.timeout or "")
    return CompiledJourney(
        journey=journey,
        entry_where=conditions.get("/entry/where"),
        entry_conditions=conditions.get("/entry_conditions"),
        step_conditions={
            step_id: conditions[f"/steps/{step_id}/condition"]
            for step_id, step in journey.steps.items()
            if isinstance(step, ConditionStep)
        },
        wait_where={
            step_id: conditions[f"/steps/{step_id}/until_event/where"]
            for step_id in journey.steps
            if f"/steps/{step_id}/until_event/where" in conditions
        },
        goals=tuple(
            CompiledGoal(goal.event, conditions.get(f"/exit_when/{index}/where"))
            for index, goal in enumerate(journey.exit_when)
        ),
        wait_lengths=lengths,
        wait_clocks=clocks,
    )


def _check(body: JourneyBody, max_window_days: int) -> tuple[list[Issue], dict[str, Condition]]:
    """One walk for validate and compile, so they cannot disagree: the issues, and each compiled
    condition by its location."""
    issues: list[Issue] = []
    conditions: dict[str, Condition] = {}

    def condition(spec: dict[str, Any] | None, location: str) -> None:
        if spec is None:
            return
        try:
            conditions[location] = compile_condition(spec, max_window_days=max_window_days)
        except ConditionError as error:
            issues.extend(Issue(location + i.location, i.message) for i in error.issues)

    entry = body.entry
    if isinstance(entry, EventEntry):
        condition(entry.where, "/entry/where")
    elif isinstance(entry, DateEntry):
        problem = _trait_path_problem(entry.trait)
        if problem:
            issues.append(Issue("/entry/trait", problem))
    condition(body.entry_conditions, "/entry_conditions")

    known = list(body.steps)
    if body.start not in body.steps:
        issues.append(Issue("/start", _unknown_step(body.start, known)))
    for step_id, step in body.steps.items():
        here = f"/steps/{step_id}"
        for pointer, target in _pointers(step):
            if target not in body.steps:
                issues.append(Issue(f"{here}/{pointer}", _unknown_step(target, known)))
        if isinstance(step, ConditionStep):
            condition(step.condition, f"{here}/condition")
        elif isinstance(step, WaitStep) and step.until_event is not None:
            condition(step.until_event.where, f"{here}/until_event/where")
        elif isinstance(step, RandomStep):
            hundredths = sum(round(branch.percent * 100) for branch in step.branches)
            if hundredths != 10_000:
                issues.append(
                    Issue(f"{here}/branches", f"the percents add up to {hundredths / 100:g}; they must add up to 100")
                )
    for index, goal in enumerate(body.exit_when):
        condition(goal.where, f"/exit_when/{index}/where")

    issues.extend(_graph_issues(body))
    return issues, conditions


def _pointers(step: Step) -> list[tuple[str, str]]:
    """The step ids a step leads to, each with its location inside the step."""
    if isinstance(step, ExitStep):
        return []
    if isinstance(step, ConditionStep):
        return [("yes", step.yes), ("no", step.no)]
    if isinstance(step, RandomStep):
        return [(f"branches/{index}/next", branch.next) for index, branch in enumerate(step.branches)]
    if isinstance(step, WaitStep) and step.until_event is not None:
        assert step.on_event is not None
        assert step.on_timeout is not None
        return [("on_event", step.on_event), ("on_timeout", step.on_timeout)]
    assert step.next is not None  # the model requires it on every other step
    return [("next", step.next)]


def _unknown_step(target: str, known: list[str]) -> str:
    message = f"no step {target!r}"
    close = difflib.get_close_matches(target, known, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if len(known) <= _LISTED_IDS:
        message += f" (steps: {', '.join(known)})"
    return message


def _graph_issues(body: JourneyBody) -> list[Issue]:
    steps = body.steps
    order = {step_id: index for index, step_id in enumerate(steps)}
    successors = {
        step_id: list(dict.fromkeys(t for _, t in _pointers(step) if t in steps)) for step_id, step in steps.items()
    }
    issues: list[Issue] = []

    reachable = _reach([body.start] if body.start in steps else [], successors)
    if body.start in steps:
        issues.extend(Issue(f"/steps/{s}", "unreachable from start") for s in steps if s not in reachable)

    for members in _strongly_connected(steps, successors, skip=lambda s: isinstance(steps[s], WaitStep)):
        first = min(members, key=order.__getitem__)
        cycle = _shortest_cycle(first, members, successors)
        issues.append(
            Issue(
                f"/steps/{first}",
                f"a cycle without a wait: {' → '.join(cycle)}; a loop must pass through a wait step",
            )
        )

    exits = [s for s, step in steps.items() if isinstance(step, ExitStep)]
    if not exits:
        issues.append(Issue("/steps", 'no exit step: add one ({"type": "exit"}) so instances can complete'))
    else:
        # A step with an unknown reference is already reported; counting it as able to exit keeps
        # one mistake from being reported again at every step before it.
        dangling = [s for s, step in steps.items() if any(t not in steps for _, t in _pointers(step))]
        predecessors: dict[str, list[str]] = {s: [] for s in steps}
        for source, targets in successors.items():
            for target in targets:
                predecessors[target].append(source)
        can_exit = _reach(exits + dangling, predecessors)
        issues.extend(
            Issue(f"/steps/{s}", "no exit step can be reached from here: every path from it loops forever")
            for s in steps
            if s in reachable and s not in can_exit
        )
    return issues


def _reach(starts: Iterable[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(starts)
    queue = deque(seen)
    while queue:
        for target in edges[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _strongly_connected(nodes: Iterable[str], successors: Mapping[str, list[str]], *, skip: Any) -> list[set[str]]:
    """The cycles among nodes not skipped, as strongly connected components (Tarjan's, without
    recursion); a single node counts only with an edge to itself."""
    kept = [n for n in nodes if not skip(n)]
    allowed = set(kept)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    counter = 0
    for root in kept:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [t for t in successors[node] if t in allowed]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:  # the parent takes the lowest link of the child it just finished
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1 or node in successors[node]:
                    found.append(members)
    return found


def _shortest_cycle(first: str, members: set[str], successors: Mapping[str, list[str]]) -> list[str]:
    """The shortest walk first → ... → first inside a strongly connected component."""
    came_from: dict[str, str] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for target in successors[node]:
            if target == first:
                path = [node]
                while path[-1] != first:
                    path.append(came_from[path[-1]])
                return [*reversed(path), first]
            if target in members and target not in came_from:
                came_from[target] = node
                queue.append(target)
    return [first, first]  # unreachable for a real component; keeps the type honest


def _trait_path_problem(trait: str) -> str | None:
    segments = trait.split(".")
    if segments[0] == "traits" and len(segments) > 1:
        return f"name the trait without the traits. prefix, like {'.'.join(segments[1:])!r}"
    if len(segments) > _MAX_TRAIT_SEGMENTS:
        return f"a trait path has at most {_MAX_TRAIT_SEGMENTS} segments"
    for segment in segments:
        if segment.startswith("$"):
            return f"{trait!r} is reserved: traits starting with $ are the platform's own bookkeeping"
        if not _TRAIT_SEGMENT.fullmatch(segment):
            return f"bad trait path {trait!r}: dot-separated names of 1 to 64 of A-Z a-z 0-9 _ -"
    if trait in _RESERVED_TRAITS:
        return f"{trait!r} is reserved: it holds {_RESERVED_TRAITS[trait]}, not a date"
    return None


# ============================================================================== instances
class WaitState(TypedDict):
    kind: Literal["timer", "event"]
    step: str
    until: str
    timer_id: str
    event: str | None


@dataclass
class Instance:
    """One person's run through a journey. Stored as a document; `rev` is the store's (it may set
    it after a write). `advance` never changes the instance it is given."""

    journey_id: str
    journey_version: int
    profile_id: str
    run: int  # 1 on the first entry, +1 per re-entry
    status: InstanceStatus
    step: str  # where it is: the step to run next, or the wait it is in
    seq: int  # steps executed so far; a step's effects carry its number
    entered_at: str
    updated_at: str
    ended_at: str | None = None
    exit_reason: str | None = None
    wait: WaitState | None = None
    path: list[list[str]] = field(default_factory=list)  # the last MAX_PATH [step, at, outcome]
    entry_key: str = ""
    last_event: dict[str, Any] | None = None  # the slim event that entered or last woke it
    rev: int = 0

    @property
    def instance_id(self) -> str:
        return f"{self.journey_id}:{self.profile_id}:{self.run}"

    @property
    def in_progress(self) -> bool:
        return self.status in ("active", "waiting")

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Instance:
        known = cls.__dataclass_fields__
        fields = {k: v for k, v in doc.items() if k in known}
        fields["path"] = [list(entry) for entry in fields.get("path") or []]
        if fields.get("wait") is not None:
            fields["wait"] = dict(fields["wait"])
        for number in ("journey_version", "run", "seq", "rev"):  # DynamoDB reads numbers as Decimal
            if number in fields:
                fields[number] = int(fields[number])
        return cls(**fields)


# ============================================================================== entry
def entry_key_for(
    compiled: CompiledJourney,
    detail_type: str,
    detail: Mapping[str, Any],
    profile: Profile | None,
    *,
    now: datetime,
) -> str | None:
    """The entry key when a domain event lets this person into the journey, else None.

    Event entries take "event.tracked" (key "event:<messageId>"); segment entries take
    "segment.entered" (key "segment:<segmentId>:<at>"). The entry conditions are checked on the
    person (with the triggering event for event entries) at `now`.
    """
    entry = compiled.journey.entry
    event: Mapping[str, Any] | None = None
    if isinstance(entry, EventEntry):
        event = detail.get("event") if detail_type == "event.tracked" else None
        if not isinstance(event, Mapping) or _event_name(event) != entry.event or not event.get("messageId"):
            return None
        if compiled.entry_where is not None and not compiled.entry_where.test(Facts(profile, event, now)):
            return None
        key = f"event:{event['messageId']}"
    elif isinstance(entry, SegmentEntry):
        if detail_type != "segment.entered" or detail.get("segmentId") != entry.segment or not detail.get("at"):
            return None
        key = f"segment:{entry.segment}:{detail['at']}"
    else:
        return None  # date entries come from the daily sweep: date_entry_key
    if compiled.entry_conditions is not None and not compiled.entry_conditions.test(Facts(profile, event, now)):
        return None
    return key


def date_entry_key(compiled: CompiledJourney, profile: Profile, now: datetime, default_timezone: str) -> str | None:
    """For a date entry: "date:<YYYY-MM-DD>" when today in the person's zone is the trait's
    anniversary plus offset_days (and the person meets the entry conditions), else None.

    A full date counts from its own year on, so a renewal date next year is not celebrated this
    year. The date of an ISO datetime is the one written, not converted to the person's zone.
    """
    entry = compiled.journey.entry
    if not isinstance(entry, DateEntry):
        return None
    source = _date_parts(_dig(profile.traits, entry.trait.split(".")))
    if source is None:
        return None
    year, month, day = source
    today = now.astimezone(zone_of(profile, default_timezone)).date()
    try:
        target = today - timedelta(days=entry.offset_days)
    except OverflowError:
        return None
    if (year is not None and target.year < year) or _anniversary(month, day, target.year) != target:
        return None
    conditions = compiled.entry_conditions
    if conditions is not None and not conditions.test(Facts(profile, None, now)):
        return None
    return f"date:{today.isoformat()}"


def _date_parts(value: Any) -> tuple[int | None, int, int] | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    month_day = _MONTH_DAY.fullmatch(value)
    if month_day is not None:
        month, day = int(month_day.group(1)), int(month_day.group(2))
        try:
            date(2000, month, day)  # a leap year: 02-29 is a real birthday
        except ValueError:
            return None
        return None, month, day
    full = _FULL_DATE.match(value)
    if full is None:
        return None
    try:
        parsed = date.fromisoformat(value) if len(value) == 10 else parse_iso(value).date()
    except ValueError:
        return None
    return parsed.year, parsed.month, parsed.day


def _anniversary(month: int, day: int, year: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:  # Feb 29 in a common year
        return date(year, 2, 28)


def _dig(traits: Mapping[str, Any], keys: list[str]) -> Any:
    current: Any = traits
    for key in keys:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def may_enter(
    journey: Journey | CompiledJourney, previous: Instance | None, entry_key: str, now: datetime
) -> tuple[bool, str]:
    """Whether the person may start a run now, given their latest run (None if never), and why."""
    definition = journey.journey if isinstance(journey, CompiledJourney) else journey
    if not definition.enabled:
        return False, "the journey is disabled"
    if previous is None:
        return True, "first entry"
    if previous.entry_key == entry_key:
        return False, "already entered for this trigger"
    reentry = definition.reentry
    if reentry.mode == "never":
        return False, f"already entered at {previous.entered_at} (reentry: never)"
    if previous.in_progress:
        return False, f"still in the journey (run {previous.run}, {previous.status} at {previous.step})"
    if reentry.mode == "cooldown":
        assert reentry.days is not None
        due = parse_iso(previous.entered_at) + timedelta(days=reentry.days)
        if now < due:
            return False, f"entered at {previous.entered_at}; may enter again from {iso(due)} (cooldown)"
    return True, "re-entry allowed"


def start_instance(
    journey: Journey | CompiledJourney,
    profile_id: str,
    previous: Instance | None,
    entry_key: str,
    event: Mapping[str, Any] | None,
    now: datetime,
) -> Instance:
    """A new run at the start step, not yet advanced: the service then wakes it with Wake.enter()."""
    definition = journey.journey if isinstance(journey, CompiledJourney) else journey
    stamp = iso(now)
    return Instance(
        journey_id=definition.id,
        journey_version=definition.version,
        profile_id=profile_id,
        run=previous.run + 1 if previous is not None else 1,
        status="active",
        step=definition.start,
        seq=0,
        entered_at=stamp,
        updated_at=stamp,
        entry_key=entry_key,
        last_event=slim_event(event) if event else None,
    )


# ============================================================================== the stepper
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


def advance(
    compiled: CompiledJourney,
    instance: Instance,
    profile: Profile | None,
    wake: Wake,
    now: datetime,
    *,
    default_timezone: str = "UTC",
    max_steps: int = 50,
) -> Progress:
    """Handle one wake: check the goals, resume a wait if the wake ends it, then run steps until
    a wait, an exit or `max_steps` (which exits with reason "step limit").

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
    if instance.status in _ENDED:
        return _ignored(instance, f"ignored: the instance is {instance.status}")
    event = slim_event(wake.event) if wake.kind == "event" and wake.event is not None else None
    stepper = _Stepper(compiled, instance, profile, clock, default_timezone)

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
        name = _event_name(event)
        if wait["kind"] != "event" or name != wait["event"]:
            return _ignored(instance, f"ignored: {name!r} does not end the wait at {wait['step']}")
        where = compiled.wait_where.get(wait["step"])
        if where is not None and not where.test(Facts(profile, event, clock)):
            return _ignored(instance, f"ignored: {name!r} does not match the wait's where at {wait['step']}")
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


def _goal_reached(
    compiled: CompiledJourney, profile: Profile | None, event: Mapping[str, Any], clock: datetime
) -> str | None:
    name = _event_name(event)
    for goal in compiled.goals:
        if goal.event == name and (goal.where is None or goal.where.test(Facts(profile, event, clock))):
            return goal.event
    return None


def _event_name(event: Mapping[str, Any]) -> str | None:
    # As in rules: a track call's name is `event`; page and screen calls have `name`.
    name = event.get("event") if event.get("type", "track") == "track" else event.get("name")
    return name if isinstance(name, str) else None


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
        self.messages: list[MessageRequest] = []
        self.events: list[dict[str, Any]] = []
        self.timers: list[Timer] = []
        self.steps_run = 0

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
        )
        return Progress(instance, self.messages, self.events, self.timers, self.steps_run, outcome)

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
        if isinstance(step, RandomStep):
            index = _branch(self.instance.instance_id, step_id, [b.percent for b in step.branches])
            return step.branches[index].next, f"branch {index}"
        key = self.key(step_id)
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
                    event=self.last_event,
                    requested_at=self.stamp,
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
            zone = zone_of(self.profile or _NOBODY, self.default_timezone)
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

    def key(self, step_id: str) -> str:
        i = self.instance
        return f"journey:{i.journey_id}:{i.profile_id}:{i.run}:{step_id}:{self.seq}"

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
