"""Schedules created at runtime through the EventBridge Scheduler API fire like the template's.

The functions create, update and delete schedules with boto3 (`scheduler.create_schedule`...)
against moto, which stores them and never fires them. `RuntimeSchedules` is a source of the clock
(see clock.py): before every step of the clock — each firing of an advance, each tick of the real
clock — it reads moto's schedules and keeps one clock job per schedule, so they fire in time order
with the template's, through the same dispatcher, with the same context attributes.

What a step sees of a schedule (`RuntimeSchedule`, GetSchedule's fields) is its version: a job is
replaced only when that changes, so re-reading an unchanged schedule never fires an occurrence
twice. A schedule counts from the clock time at which a step first sees it (its creation, for the
local cloud), and an update counts as a new definition from the update's time.

EventBridge Scheduler's semantics (user guide "Schedule types", "Deleting a schedule", and the
API's StartDate/EndDate fields):

* at(): fires once at that wall-clock time in ScheduleExpressionTimezone; StartDate and EndDate
  are ignored. ActionAfterCompletion=DELETE deletes the schedule after that one invocation.
* rate()/cron(): StartDate (else the creation) to EndDate; a rate fires first at its start. DELETE
  deletes it after the last occurrence on or before its EndDate; without an EndDate it never
  completes and is not deleted.
* An at() whose time has already passed when the schedule is created: neither the guide nor the
  API reference says what happens, and moto accepts it. The local cloud fires it at once, its
  `<aws.scheduler.scheduled-time>` still the at() time, rather than never.
* DISABLED schedules do not fire; a deleted schedule fires no more.

A schedule whose target is not a function, queue or topic of the template, or whose expression
or time zone AWS would have refused (moto accepts any), never delivers: each occurrence of the
first kind is logged as a failed delivery, the second is logged once. Neither stops the clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from infra.localcloud.clock import Clock, ScheduledJob, Timetable, scheduler_target
from infra.localcloud.model import CloudModel, ScheduleSpec
from midstage.logic.schedules import ScheduleError, read_schedule

if TYPE_CHECKING:
    from concurrent.futures import Future

    from infra.localcloud.deploy import AwsClients
    from infra.localcloud.pollers import TargetDispatcher

LOG = logging.getLogger("infra.localcloud")

ORIGIN = "runtime"
_DEFAULT_RETRY_ATTEMPTS = 185  # Scheduler's default RetryPolicy.MaximumRetryAttempts


@dataclass(frozen=True)
class RuntimeSchedule:
    """A schedule as the Scheduler API describes it: the fields that decide when and what it fires."""

    group: str
    name: str
    arn: str
    expression: str
    timezone: str
    enabled: bool
    start_date: datetime | None
    end_date: datetime | None
    target_arn: str
    input: str | None
    max_retry_attempts: int
    dead_letter_arn: str | None
    message_group_id: str | None
    delete_after_completion: bool

    @property
    def key(self) -> str:
        """The clock job's name: schedule names are unique within a group."""
        return f"{self.group}/{self.name}"

    @classmethod
    def from_api(cls, document: Mapping[str, Any]) -> RuntimeSchedule:
        """Read a GetSchedule-shaped document (moto's, or boto3's answer); ValueError if it cannot be."""
        target = document.get("Target") or {}
        group = str(document.get("GroupName") or "default")
        name = str(document["Name"])
        return cls(
            group=group,
            name=name,
            arn=str(document.get("Arn") or name),
            expression=str(document["ScheduleExpression"]),
            timezone=str(document.get("ScheduleExpressionTimezone") or "UTC"),
            # UpdateSchedule replaces the whole definition and State defaults to ENABLED; moto keeps
            # the None it received.
            enabled=(document.get("State") or "ENABLED") == "ENABLED",
            start_date=_moment(document.get("StartDate"), "StartDate"),
            end_date=_moment(document.get("EndDate"), "EndDate"),
            target_arn=str(target.get("Arn") or ""),
            input=None if target.get("Input") is None else str(target["Input"]),
            max_retry_attempts=int(
                (target.get("RetryPolicy") or {}).get("MaximumRetryAttempts", _DEFAULT_RETRY_ATTEMPTS)
            ),
            dead_letter_arn=(target.get("DeadLetterConfig") or {}).get("Arn"),
            message_group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"),
            delete_after_completion=document.get("ActionAfterCompletion") == "DELETE",
        )

    def spec(self) -> ScheduleSpec:
        """The same description the template's schedules have, for the same delivery."""
        return ScheduleSpec(
            logical_id=self.key,
            name=self.name,
            expression=self.expression,
            timezone=self.timezone,
            target_arn=self.target_arn,
            input=self.input,
            enabled=self.enabled,
            arn=self.arn,
            max_retry_attempts=self.max_retry_attempts,
            dead_letter_arn=self.dead_letter_arn,
            message_group_id=self.message_group_id,
        )


def _moment(value: Any, field_name: str) -> datetime | None:
    """A Scheduler timestamp: epoch seconds (what boto3 sends and moto keeps), a datetime or ISO text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = str(value)
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field_name} {text!r} is not a timestamp") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SchedulerState(Protocol):
    """Where the schedules live: moto's Scheduler, read as GetSchedule documents."""

    def schedules(self) -> list[Mapping[str, Any]]: ...

    def delete(self, group: str, name: str) -> None: ...


class MotoScheduler:
    """moto's EventBridge Scheduler, read in-process; deletions go through the API, as Scheduler's own.

    Reading moto's backend costs microseconds where ListSchedules + GetSchedule per schedule would
    cost milliseconds at every firing of an advance. moto's request threads add and remove
    schedules meanwhile: each dict is copied in one call, which the GIL keeps whole.
    """

    def __init__(self, account_id: str, region: str, clients: AwsClients) -> None:
        self._account_id = account_id
        self._region = region
        self._clients = clients

    def schedules(self) -> list[Mapping[str, Any]]:
        from moto.scheduler.models import scheduler_backends

        # Looked up every time: resetting moto replaces its backends.
        backend = scheduler_backends[self._account_id][self._region]
        groups = list(backend.schedule_groups.values())
        return [schedule.to_dict() for group in groups for schedule in list(group.schedules.values())]

    def delete(self, group: str, name: str) -> None:
        self._clients.client("scheduler").delete_schedule(Name=name, GroupName=group)


class _Never:
    """A schedule that does not fire: disabled, or not one AWS would have accepted."""

    def next_after(self, moment: datetime) -> datetime | None:
        return None


@dataclass(frozen=True)
class _Once:
    """A one-time schedule firing at `at` (its own time, or now when that has passed)."""

    at: datetime

    def next_after(self, moment: datetime) -> datetime | None:
        return self.at if self.at > moment else None


class RuntimeSchedules:
    """Keeps the clock's jobs in step with the schedules created through the Scheduler API."""

    def __init__(
        self, clock: Clock, model: CloudModel, dispatcher: TargetDispatcher, scheduler: SchedulerState
    ) -> None:
        self._clock = clock
        self._model = model
        self._dispatcher = dispatcher
        self._scheduler = scheduler
        # Template schedules are the template's jobs already, should moto ever hold them too.
        self._template_arns = {spec.arn for spec in model.schedules if spec.arn}
        self._lock = threading.Lock()
        self._versions: dict[str, RuntimeSchedule] = {}
        self._jobs: dict[str, ScheduledJob] = {}
        # The last occurrence fired under each name, whatever the version: an update never fires it again.
        self._last_fired: dict[str, datetime] = {}
        self._unreadable: dict[str, str] = {}

    def sync(self, now: datetime) -> None:
        """Add, replace and remove jobs so that they match the Scheduler's schedules as of `now`."""
        current: dict[str, RuntimeSchedule] = {}
        unreadable: dict[str, str] = {}
        for document in self._scheduler.schedules():
            try:
                version = RuntimeSchedule.from_api(document)
            except (KeyError, TypeError, ValueError) as error:
                where = f"{document.get('GroupName') or 'default'}/{document.get('Name')}"
                unreadable[where] = str(error)
                continue
            if version.arn not in self._template_arns:
                current[version.key] = version
        with self._lock:
            self._report_unreadable(unreadable)
            for key in [key for key in self._versions if key not in current]:
                LOG.info("schedule %s was deleted: it fires no more", key)
                self._clock.remove(self._jobs.pop(key))
                del self._versions[key]
                self._last_fired.pop(key, None)
            for key, version in current.items():
                known = self._versions.get(key)
                if known == version:
                    continue
                previous = self._jobs.pop(key, None)
                if previous is not None:
                    self._clock.remove(previous)
                self._versions[key] = version
                self._jobs[key] = self._register(version, now, fired=previous.fired if previous else [])

    def _report_unreadable(self, unreadable: dict[str, str]) -> None:
        for where, problem in unreadable.items():
            if self._unreadable.get(where) != problem:
                LOG.warning("schedule %s cannot fire: %s", where, problem)
        self._unreadable = unreadable

    def _register(self, version: RuntimeSchedule, now: datetime, *, fired: list[datetime]) -> ScheduledJob:
        key = version.key
        last = self._last_fired.get(key)
        try:
            # A rate counts its periods from the StartDate, else from the schedule's creation: now.
            schedule = read_schedule(version.expression, version.timezone, version.start_date or now)
        except ScheduleError as error:
            LOG.warning("schedule %s cannot fire: %s (AWS refuses it when it is created)", key, error)
            return self._idle(version, fired, f"invalid: {error}")
        if not version.enabled:
            return self._idle(version, fired, "DISABLED")
        problem = self._target_problem(version.target_arn)
        occurrence = schedule.once_at
        if occurrence is not None:
            if last is not None and occurrence <= last:
                return self._idle(version, fired, "completed")
            # A time already past fires at once; the target still learns the time it was set for.
            firing = _Once(max(occurrence, now))
            job = self._job(version, firing, fired, problem, end=None, occurrence=occurrence)
            self._clock.add(job, not_before=now)
            return job
        job = self._job(version, schedule, fired, problem, end=version.end_date, occurrence=None)
        starts = max(now, version.start_date) if version.start_date else now
        self._clock.add(job, not_before=starts, after=last)
        return job

    def _idle(self, version: RuntimeSchedule, fired: list[datetime], note: str) -> ScheduledJob:
        """Listed with the clock's jobs, so that GET /_localcloud/clock says why it does not fire."""
        job = ScheduledJob(
            name=version.key,
            expression=version.expression,
            schedule=_Never(),
            fire=lambda due: [],
            fired=list(fired),
            origin=ORIGIN,
            note=note,
        )
        self._clock.add(job)
        return job

    def _job(
        self,
        version: RuntimeSchedule,
        schedule: Timetable,
        fired: list[datetime],
        problem: str | None,
        *,
        end: datetime | None,
        occurrence: datetime | None,
    ) -> ScheduledJob:
        deliver = scheduler_target(version.spec(), self._dispatcher)

        def fire(due: datetime) -> list[Future[Any]]:
            scheduled = occurrence or due
            with self._lock:
                self._last_fired[version.key] = scheduled
            if problem is not None:
                LOG.warning("schedule %s at %s: delivery failed: %s", version.key, _iso(scheduled), problem)
                futures: list[Future[Any]] = []
            else:
                futures = deliver(scheduled)
            if version.delete_after_completion and _completed(schedule, end, due, one_time=occurrence is not None):
                self._delete_completed(version)
            return futures

        return ScheduledJob(
            name=version.key,
            expression=version.expression,
            schedule=schedule,
            fire=fire,
            end=end,
            fired=list(fired),
            origin=ORIGIN,
            note=problem,
        )

    def _target_problem(self, arn: str) -> str | None:
        model = self._model
        if (
            model.function_by_arn(arn) is not None
            or any(queue.arn == arn for queue in model.queues)
            or any(topic.arn == arn for topic in model.topics)
        ):
            return None
        return f"target {arn or '(none)'} is not a function, queue or topic of the template; nothing is delivered"

    def _delete_completed(self, version: RuntimeSchedule) -> None:
        """ActionAfterCompletion=DELETE, unless the schedule was changed since this version fired."""
        try:
            current = [RuntimeSchedule.from_api(document) for document in self._scheduler.schedules()]
        except (KeyError, TypeError, ValueError):
            current = []
        if version not in current:
            return
        try:
            self._scheduler.delete(version.group, version.name)
        except (BotoCoreError, ClientError) as error:
            LOG.warning("schedule %s completed but could not be deleted: %s", version.key, error)
            return
        LOG.info("schedule %s completed and was deleted (ActionAfterCompletion=DELETE)", version.key)


def _completed(schedule: Timetable, end: datetime | None, due: datetime, *, one_time: bool) -> bool:
    """After `due`, does the schedule invoke its target no more? A recurring one needs an EndDate."""
    if one_time:
        return True
    if end is None:
        return False
    following = schedule.next_after(due)
    return following is None or following > end


def install_runtime_schedules(
    clock: Clock, model: CloudModel, dispatcher: TargetDispatcher, clients: AwsClients
) -> RuntimeSchedules:
    """Make the schedules the functions create through the Scheduler API fire on `clock`."""
    runtime = RuntimeSchedules(clock, model, dispatcher, MotoScheduler(model.account_id, model.region, clients))
    clock.add_source(runtime.sync)
    return runtime


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
