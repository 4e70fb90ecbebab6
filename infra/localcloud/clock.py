"""Time for the local cloud's schedules: wall time, or a manual clock that tests advance.

In real mode a background thread fires due schedules every second. In manual mode time moves
only in `advance`, which fires every due schedule in time order and waits for each firing's
first delivery (for a function: its first invocation) before firing the next, so a test can
assert right after `advance` returns. Only schedules see this clock: handlers read wall time, and
learn an occurrence's time from their input (`<aws.scheduler.scheduled-time>`, a rule's "time").

Every occurrence fires, as on AWS: advancing three days past a rate(1 minute) schedule invokes
its target 4320 times (measured: about 0.15 ms of local overhead per firing besides the
function's own run). `advance` refuses, before firing anything, a step with more than
`max_firings` occurrences, so that a mistyped advance does not run for an hour.

Jobs also come from sources that change while the cloud runs (schedules created through the
Scheduler API, see runtime_schedules.py): the clock lets each source bring its jobs up to date
before every step — each firing of an advance, each tick of the real clock — so that a schedule a
function creates while it runs fires later in the same advance, in time order with the others.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from infra.localcloud.faults import FaultInjector
from infra.localcloud.model import CloudModel, EventRuleSpec, ScheduleSpec
from infra.localcloud.pollers import Delivery, TargetDispatcher, rule_delivery
from midstage.logic.schedules import ScheduleError, read_schedule

LOG = logging.getLogger("infra.localcloud")

Fire = Callable[[datetime], list["Future[Any]"]]
# Brings a source's jobs up to date as of the given clock time (adds, replaces and removes them).
Source = Callable[[datetime], None]
_TICK_S = 1.0
DEFAULT_MAX_FIRINGS = 20_000  # two weeks of a one-minute schedule
_JUST_BEFORE = timedelta(microseconds=1)


class Timetable(Protocol):
    """When a job fires: a schedule read by midstage.logic.schedules (the product's own parser), or
    a stand-in (a one-time schedule already due, one that cannot fire)."""

    def next_after(self, moment: datetime) -> datetime | None: ...


class TooManyFirings(ValueError):
    """An advance of the manual clock would fire more occurrences than allowed."""


@dataclass
class ScheduledJob:
    name: str  # the schedule's or rule's logical id; "<group>/<name>" for a schedule created at runtime
    expression: str
    schedule: Timetable
    fire: Fire
    end: datetime | None = None
    next_due: datetime | None = None
    fired: list[datetime] = field(default_factory=list)
    origin: str = "template"  # or "runtime": created through the Scheduler API while the cloud runs
    note: str | None = None  # why it does not fire, or fires without delivering

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "name": self.name,
            "expression": self.expression,
            "next": None if self.next_due is None else _iso(self.next_due),
            "fired": len(self.fired),
            "origin": self.origin,
        }
        if self.note is not None:
            answer["note"] = self.note
        return answer


class Clock:
    def __init__(self, *, manual: bool, start: datetime | None = None, faults: FaultInjector | None = None) -> None:
        """`faults`: fires some occurrences twice (faults.py)."""
        if start is not None and not manual:
            raise ValueError("a start time only makes sense with the manual clock")
        self.manual = manual
        self.faults = faults if faults is not None and faults.enabled else None
        self.started_at = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self._now = self.started_at
        self._jobs: list[ScheduledJob] = []
        self._sources: list[Source] = []
        self._lock = threading.Lock()
        self._advancing = threading.Lock()  # firings, and the sources' updates, happen one at a time, in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> datetime:
        if self.manual:
            with self._lock:
                return self._now
        return datetime.now(UTC)

    def add(self, job: ScheduledJob, *, not_before: datetime | None = None, after: datetime | None = None) -> None:
        """Register a job; it first fires at its first time on or after max(start, not_before), and
        strictly after `after` (an occurrence a previous version of the job already fired)."""
        floor = max(self.started_at, not_before) if not_before else self.started_at
        first = job.schedule.next_after(floor - _JUST_BEFORE)
        if first is not None and after is not None and first <= after:
            first = job.schedule.next_after(after)
        with self._lock:
            job.next_due = self._bounded(job, first)
            self._jobs.append(job)

    def remove(self, job: ScheduledJob) -> None:
        """Unregister a job (a schedule deleted or replaced); it fires no more."""
        with self._lock:
            self._jobs = [registered for registered in self._jobs if registered is not job]

    def add_source(self, source: Source) -> None:
        """Call `source` with the clock's time before every step, so that its jobs are current."""
        self._sources.append(source)

    def refresh(self) -> None:
        """Bring the sources' jobs up to date now, unless an advance or a tick is doing it already."""
        if not self._advancing.acquire(blocking=False):
            return
        try:
            self._sync_sources()
        finally:
            self._advancing.release()

    def jobs(self) -> list[ScheduledJob]:
        with self._lock:
            return list(self._jobs)

    def start(self) -> None:
        if not self.manual:
            self._thread = threading.Thread(target=self._tick, name="clock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def advance(
        self, by: float | timedelta, *, max_firings: int | None = DEFAULT_MAX_FIRINGS
    ) -> list[tuple[str, datetime]]:
        """Move the manual clock forward, firing what falls due; return (job, time) per firing.

        Raises TooManyFirings, having fired nothing, if more than `max_firings` occurrences fall due
        (None: no limit).
        """
        if not self.manual:
            raise RuntimeError("the clock follows wall time; start the local cloud with manual_clock=True")
        delta = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if delta < timedelta(0):
            raise ValueError("the clock cannot go back")
        with self._advancing:
            self._sync_sources()
            with self._lock:
                target = self._now + delta
                if max_firings is not None:
                    self._check_firings(target, max_firings)
            fired = self._fire_due(until=target, wait=True)
            with self._lock:
                self._now = target
        return fired

    def _check_firings(self, until: datetime, limit: int) -> None:
        counts: dict[str, int] = {}
        total = 0
        for job in self._jobs:
            due = job.next_due
            while due is not None and due <= until and total <= limit:
                counts[job.name] = counts.get(job.name, 0) + 1
                total += 1
                due = self._bounded(job, job.schedule.next_after(due))
        if total > limit:
            listed = ", ".join(f"{name}: {count}" for name, count in counts.items())
            raise TooManyFirings(
                f"advancing to {_iso(until)} fires more than {limit} schedule occurrences ({listed}...); each one "
                'runs its target, as on AWS. Advance less, or pass max_firings=None (HTTP: "maxFirings": null)'
            )

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            with self._advancing:
                self._fire_due(until=datetime.now(UTC), wait=False)

    def _sync_sources(self) -> None:
        """Called with `_advancing` held: sources never run concurrently, nor during a firing."""
        if not self._sources:
            return
        now = self.now()
        for source in self._sources:
            try:
                source(now)
            except Exception:
                # A source that fails (moto's state unreadable, a bug) must not stop the clock: the
                # template's schedules keep firing, and the next step tries the source again.
                LOG.exception("bringing the clock's schedules up to date failed")

    def _fire_due(self, *, until: datetime, wait: bool) -> list[tuple[str, datetime]]:
        fired: list[tuple[str, datetime]] = []
        while not self._stop.is_set():
            # The previous firing may have created, changed or deleted schedules (a function that
            # calls the Scheduler API): they count from this moment, the clock's current time.
            self._sync_sources()
            with self._lock:
                due_jobs = [job for job in self._jobs if job.next_due is not None and job.next_due <= until]
                if not due_jobs:
                    break
                job = min(due_jobs, key=lambda j: j.next_due or until)  # first registered wins ties
                due = job.next_due or until
                job.next_due = self._bounded(job, job.schedule.next_after(due))
                job.fired.append(due)
                if self.manual:
                    self._now = due
            fired.append((job.name, due))
            self._fire(job, due, wait=wait)
        return fired

    def _fire(self, job: ScheduledJob, due: datetime, *, wait: bool) -> None:
        try:
            futures = job.fire(due)
            if self.faults is not None and self.faults.schedule_twice(job.name, _iso(due)):
                futures = [*futures, *job.fire(due)]
        except RuntimeError as error:  # the cloud is stopping
            LOG.info("schedule %s not fired at %s: %s", job.name, _iso(due), error)
            return
        if not wait:
            return
        for future in futures:
            try:
                future.result()
            except Exception as error:
                LOG.warning("schedule %s at %s: delivery failed: %s", job.name, _iso(due), error)

    @staticmethod
    def _bounded(job: ScheduledJob, due: datetime | None) -> datetime | None:
        return None if due is None or (job.end is not None and due > job.end) else due


# ---------------------------------------------------------------------------------- template schedules


def schedule_problems(model: CloudModel) -> list[str]:
    """Expressions, time zones and dates AWS would reject."""
    problems: list[str] = []
    for spec in model.schedules:
        try:
            read_schedule(spec.expression, spec.timezone)
            for moment in (spec.start_date, spec.end_date):
                if moment is not None:
                    _parse_date(moment)
        except (ScheduleError, ValueError) as error:
            problems.append(f"{spec.logical_id}: {error}")
    for rule in model.rules:
        if rule.schedule_expression is not None:
            problem = rule_schedule_problem(rule.schedule_expression)
            if problem is not None:
                problems.append(f"{rule.logical_id}: {problem}")
    return problems


def rule_schedule_problem(expression: str) -> str | None:
    """Why EventBridge would refuse a rule's ScheduleExpression (read in UTC; cron() or rate()
    only, at() being Scheduler's), or None."""
    if expression.startswith("at("):
        return f"{expression[:80]!r}: a rule's ScheduleExpression takes cron(...) or rate(...); at() is Scheduler's"
    try:
        read_schedule(expression)
    except ScheduleError as error:
        return str(error)
    return None


def install_schedules(clock: Clock, model: CloudModel, dispatcher: TargetDispatcher) -> None:
    """Register every enabled Scheduler schedule and scheduled rule of the model on `clock`."""
    for spec in model.schedules:
        if not spec.enabled:
            continue
        start = _parse_date(spec.start_date) if spec.start_date else None
        # Without a StartDate a schedule counts from its creation, i.e. the local cloud's start.
        schedule = read_schedule(spec.expression, spec.timezone, start or clock.started_at)
        job = ScheduledJob(
            name=spec.logical_id,
            expression=spec.expression,
            schedule=schedule,
            fire=scheduler_target(spec, dispatcher),
            end=_parse_date(spec.end_date) if spec.end_date else None,
        )
        clock.add(job, not_before=start)
    for rule in model.rules:
        if rule.enabled and rule.schedule_expression is not None:
            job = ScheduledJob(
                name=rule.logical_id,
                expression=rule.schedule_expression,
                schedule=read_schedule(rule.schedule_expression, "UTC", clock.started_at),
                fire=_rule_targets(rule, model, dispatcher),
            )
            clock.add(job)


def scheduler_target(spec: ScheduleSpec, dispatcher: TargetDispatcher) -> Fire:
    """What Scheduler does at each occurrence of `spec`: its Input, context attributes substituted,
    delivered to its target. The time given is the occurrence's `<aws.scheduler.scheduled-time>`."""

    def fire(due: datetime) -> list[Future[Any]]:
        execution_id = str(uuid.uuid4())
        # Scheduler substitutes its context attributes as plain text wherever they appear.
        payload = spec.input if spec.input is not None else "{}"
        for name, value in (
            ("scheduled-time", _iso(due)),
            ("execution-id", execution_id),
            ("attempt-number", "1"),
            ("schedule-arn", spec.arn or spec.name),
        ):
            payload = payload.replace(f"<aws.scheduler.{name}>", value)
        delivery = Delivery(
            origin_arn=spec.arn or spec.name,
            target_arn=spec.target_arn,
            payload=payload,
            max_retry_attempts=spec.max_retry_attempts,
            dead_letter_arn=spec.dead_letter_arn,
            message_group_id=spec.message_group_id,
            deduplication_id=execution_id,
            from_scheduler=True,
        )
        return [dispatcher.deliver(delivery)]

    return fire


def _rule_targets(rule: EventRuleSpec, model: CloudModel, dispatcher: TargetDispatcher) -> Fire:
    def fire(due: datetime) -> list[Future[Any]]:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": model.account_id,
            "time": _iso(due),
            "region": model.region,
            "resources": [rule.arn or rule.name],
            "detail": {},
        }
        return [dispatcher.deliver(rule_delivery(rule, target, event)) for target in rule.targets]

    return fire


def _parse_date(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_state(clock: Clock) -> dict[str, Any]:
    """The clock's time and every job, the template's and those created at runtime."""
    clock.refresh()
    return {
        "now": _iso(clock.now()),
        "manual": clock.manual,
        "startedAt": _iso(clock.started_at),
        "schedules": [job.to_json() for job in clock.jobs()],
    }
