"""Schedules created at runtime through the Scheduler API fire like the template's.

The tests create, update and delete schedules with boto3 against the cloud's moto (as the admin
function does), or through a fixture function that calls the Scheduler API, then advance the
manual clock: `advance` waits for each firing's invocation, so the recorder's table and the queue
are checked right after it.
"""

from __future__ import annotations

import json
import logging
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.localcloud.__main__ import _banner
from infra.localcloud.clock import TooManyFirings
from infra.localcloud.cloud import LocalCloud
from tests.e2e.localcloud.conftest import REPO, drain, poll, recorded_events

pytestmark = pytest.mark.timeout(120)

TEMPLATE = REPO / "tests" / "fixtures" / "localcloud_runtime_schedules.yaml"
START = datetime(2030, 1, 1, tzinfo=UTC)
ROLE = "arn:aws:iam::123456789012:role/scheduler"


def start_cloud(**options: Any) -> LocalCloud:
    stack = f"runtime-schedules-{uuid.uuid4().hex[:8]}"
    return LocalCloud(TEMPLATE, stack_name=stack, **options)


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    # One cloud per test: each starts its clock at START, so expectations are absolute times.
    with start_cloud(manual_clock=True, start_time=START) as started:
        yield started


def request(
    cloud: LocalCloud, name: str, expression: str, payload: dict[str, Any], *, target: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A CreateSchedule / UpdateSchedule request; the target defaults to the Recorder function."""
    return {
        "Name": name,
        "ScheduleExpression": expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": target or cloud.function("Recorder").arn, "RoleArn": ROLE, "Input": json.dumps(payload)},
        **extra,
    }


def create(cloud: LocalCloud, name: str, expression: str, kind: str, **extra: Any) -> str:
    """Create a schedule whose input records `kind` and the occurrence's time; return its ARN."""
    payload = {"kind": kind, "at": "<aws.scheduler.scheduled-time>"}
    answer = cloud.client("scheduler").create_schedule(**request(cloud, name, expression, payload, **extra))
    return str(answer["ScheduleArn"])


def recorded(cloud: LocalCloud, kind: str) -> list[str]:
    """The occurrence times the Recorder received for `kind`, in order."""
    return sorted(event["at"] for event in recorded_events(cloud) if event.get("kind") == kind)


def exists(cloud: LocalCloud, name: str) -> bool:
    """Whether GetSchedule finds the schedule (any other error than "not found" fails the test)."""
    try:
        cloud.client("scheduler").get_schedule(Name=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return False
    return True


def clock_json(cloud: LocalCloud) -> dict[str, Any]:
    with urllib.request.urlopen(f"{cloud.api_url}/_localcloud/clock", timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


# ---------------------------------------------------------------------------------- one-time schedules


def test_a_one_time_schedule_fires_once_at_its_local_time_then_is_deleted(cloud: LocalCloud) -> None:
    create(
        cloud,
        "launch",
        "at(2030-01-01T13:30:00)",
        "once",
        ScheduleExpressionTimezone="Europe/Paris",
        ActionAfterCompletion="DELETE",
    )

    # 13:30 in Paris is 12:30 UTC in January.
    assert cloud.clock.advance(timedelta(hours=12, minutes=29, seconds=59)) == []
    assert recorded(cloud, "once") == []
    assert exists(cloud, "launch")

    fired = cloud.clock.advance(timedelta(seconds=1))

    assert fired == [("default/launch", START + timedelta(hours=12, minutes=30))]
    assert recorded(cloud, "once") == ["2030-01-01T12:30:00Z"]
    assert not exists(cloud, "launch")
    assert cloud.clock.advance(timedelta(days=2)) == []


def test_a_schedule_in_its_own_group_fires_and_is_deleted_from_that_group(cloud: LocalCloud) -> None:
    scheduler = cloud.client("scheduler")
    scheduler.create_schedule_group(Name="campaigns")
    create(
        cloud,
        "spring-sale",
        "at(2030-01-01T10:00:00)",
        "grouped",
        GroupName="campaigns",
        ActionAfterCompletion="DELETE",
    )

    fired = cloud.clock.advance(timedelta(hours=11))

    assert fired == [("campaigns/spring-sale", START + timedelta(hours=10))]
    assert recorded(cloud, "grouped") == ["2030-01-01T10:00:00Z"]
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        scheduler.get_schedule(Name="spring-sale", GroupName="campaigns")


def test_a_one_time_schedule_kept_after_completion_does_not_fire_again(cloud: LocalCloud) -> None:
    create(cloud, "kept", "at(2030-01-01T06:00:00)", "kept", ActionAfterCompletion="NONE")

    first = cloud.clock.advance(timedelta(days=1))
    later = cloud.clock.advance(timedelta(days=1))

    assert first == [("default/kept", START + timedelta(hours=6))]
    assert later == []
    assert recorded(cloud, "kept") == ["2030-01-01T06:00:00Z"]
    assert exists(cloud, "kept")


def test_a_one_time_schedule_whose_time_has_passed_fires_at_once_for_its_own_time(cloud: LocalCloud) -> None:
    cloud.clock.advance(timedelta(hours=2))
    create(cloud, "late", "at(2030-01-01T01:00:00)", "late", ActionAfterCompletion="DELETE")

    fired = cloud.clock.advance(timedelta(0))

    assert fired == [("default/late", START + timedelta(hours=2))]
    assert recorded(cloud, "late") == ["2030-01-01T01:00:00Z"]
    assert not exists(cloud, "late")


# ---------------------------------------------------------------------------------- recurring schedules


def test_rate_and_cron_schedules_fire_every_occurrence_across_advances(cloud: LocalCloud) -> None:
    create(cloud, "every-six-hours", "rate(6 hours)", "rate")
    create(cloud, "paris-morning", "cron(0 10 * * ? *)", "cron", ScheduleExpressionTimezone="Europe/Paris")

    fired = cloud.clock.advance(timedelta(hours=20)) + cloud.clock.advance(timedelta(hours=28))

    # A rate fires first at its creation (the clock's time when the local cloud first sees it).
    assert recorded(cloud, "rate") == [
        "2030-01-01T00:00:00Z",
        "2030-01-01T06:00:00Z",
        "2030-01-01T12:00:00Z",
        "2030-01-01T18:00:00Z",
        "2030-01-02T00:00:00Z",
        "2030-01-02T06:00:00Z",
        "2030-01-02T12:00:00Z",
        "2030-01-02T18:00:00Z",
        "2030-01-03T00:00:00Z",
    ]
    # 10:00 in Paris is 09:00 UTC in January.
    assert recorded(cloud, "cron") == ["2030-01-01T09:00:00Z", "2030-01-02T09:00:00Z"]
    times = [when for _, when in fired]
    assert times == sorted(times)
    assert len(fired) == 9 + 2


def test_start_and_end_dates_bound_a_recurring_schedule_deleted_after_its_last_occurrence(cloud: LocalCloud) -> None:
    create(
        cloud,
        "window",
        "rate(1 hour)",
        "window",
        StartDate=START + timedelta(hours=2),
        EndDate=START + timedelta(hours=4, minutes=30),
        ActionAfterCompletion="DELETE",
    )

    cloud.clock.advance(timedelta(hours=3, minutes=59))
    assert exists(cloud, "window")
    cloud.clock.advance(timedelta(hours=4))

    assert recorded(cloud, "window") == ["2030-01-01T02:00:00Z", "2030-01-01T03:00:00Z", "2030-01-01T04:00:00Z"]
    assert not exists(cloud, "window")


def test_an_advance_counts_runtime_schedules_against_max_firings(cloud: LocalCloud) -> None:
    create(cloud, "minutely", "rate(1 minute)", "minutely")

    with pytest.raises(TooManyFirings, match=r"default/minutely: 101"):
        cloud.clock.advance(timedelta(hours=2), max_firings=100)

    assert cloud.clock.now() == START
    assert recorded(cloud, "minutely") == []


# ---------------------------------------------------------------------------------- changes


def test_an_update_replaces_the_definition_and_the_next_firing_follows_it(cloud: LocalCloud) -> None:
    scheduler = cloud.client("scheduler")
    create(cloud, "digest", "rate(1 day)", "before")
    cloud.clock.advance(timedelta(hours=1))

    payload = {"kind": "after", "at": "<aws.scheduler.scheduled-time>"}
    scheduler.update_schedule(**request(cloud, "digest", "cron(30 6 * * ? *)", payload))
    fired = cloud.clock.advance(timedelta(days=1))

    assert recorded(cloud, "before") == ["2030-01-01T00:00:00Z"]
    assert recorded(cloud, "after") == ["2030-01-01T06:30:00Z"]
    assert fired == [("default/digest", START + timedelta(hours=6, minutes=30))]


def test_an_update_that_keeps_the_schedule_does_not_fire_an_occurrence_again(cloud: LocalCloud) -> None:
    scheduler = cloud.client("scheduler")
    create(cloud, "noon", "cron(0 12 * * ? *)", "noon")
    cloud.clock.advance(timedelta(hours=12))

    # The same expression with another input, saved right after the noon occurrence fired.
    payload = {"kind": "noon", "at": "<aws.scheduler.scheduled-time>", "edited": True}
    scheduler.update_schedule(**request(cloud, "noon", "cron(0 12 * * ? *)", payload))
    cloud.clock.advance(timedelta(days=1))

    assert recorded(cloud, "noon") == ["2030-01-01T12:00:00Z", "2030-01-02T12:00:00Z"]


def test_disabled_and_deleted_schedules_do_not_fire(cloud: LocalCloud) -> None:
    scheduler = cloud.client("scheduler")
    create(cloud, "paused", "rate(1 hour)", "paused", State="DISABLED")
    create(cloud, "dropped", "rate(1 hour)", "dropped")
    cloud.clock.advance(timedelta(minutes=30))
    scheduler.delete_schedule(Name="dropped")

    cloud.clock.advance(timedelta(hours=3))

    assert recorded(cloud, "dropped") == ["2030-01-01T00:00:00Z"]
    assert recorded(cloud, "paused") == []
    (paused,) = [job for job in clock_json(cloud)["schedules"] if job["name"] == "default/paused"]
    assert paused["next"] is None
    assert paused["note"] == "DISABLED"

    # Enabling it counts as a new definition from now: a rate without a StartDate starts at once.
    payload = {"kind": "paused", "at": "<aws.scheduler.scheduled-time>"}
    scheduler.update_schedule(**request(cloud, "paused", "rate(1 hour)", payload, State="ENABLED"))
    cloud.clock.advance(timedelta(hours=1))

    assert recorded(cloud, "paused") == ["2030-01-01T03:30:00Z", "2030-01-01T04:30:00Z"]


# ---------------------------------------------------------------------------------- what the targets receive


def test_the_input_carries_the_scheduler_context_attributes(cloud: LocalCloud) -> None:
    payload = {
        "at": "<aws.scheduler.scheduled-time>",
        "execution": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
        "schedule": "<aws.scheduler.schedule-arn>",
    }
    arn = cloud.client("scheduler").create_schedule(**request(cloud, "context", "rate(1 hour)", payload))["ScheduleArn"]

    cloud.clock.advance(timedelta(hours=1))

    events = sorted(recorded_events(cloud), key=lambda event: event["at"])
    assert [event["at"] for event in events] == ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"]
    assert {event["schedule"] for event in events} == {arn}
    assert {event["attempt"] for event in events} == {"1"}
    assert len({uuid.UUID(event["execution"]) for event in events}) == 2


def test_a_queue_target_receives_the_input_as_the_message_body(cloud: LocalCloud) -> None:
    queue_arn = next(queue.arn for queue in cloud.model.queues if queue.logical_id == "ScheduledQueue")
    create(cloud, "to-queue", "at(2030-01-01T08:00:00)", "queued", target=queue_arn)

    cloud.clock.advance(timedelta(hours=9))

    assert [json.loads(message["Body"]) for message in drain(cloud, "ScheduledQueue")] == [
        {"kind": "queued", "at": "2030-01-01T08:00:00Z"}
    ]


def test_a_target_that_cannot_be_resolved_is_logged_and_the_clock_goes_on(
    cloud: LocalCloud, caplog: pytest.LogCaptureFixture
) -> None:
    missing = "arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
    create(cloud, "ghost", "rate(1 hour)", "ghost", target=missing)
    create(cloud, "garbled", "rate(0 hours)", "garbled")
    create(cloud, "healthy", "rate(1 hour)", "healthy")

    with caplog.at_level(logging.WARNING, logger="infra.localcloud"):
        fired = cloud.clock.advance(timedelta(hours=1))

    assert [name for name, _ in fired].count("default/ghost") == 2
    assert "default/garbled" not in [name for name, _ in fired]
    assert recorded(cloud, "healthy") == ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"]
    assert recorded(cloud, "ghost") == []
    messages = [record.getMessage() for record in caplog.records]
    assert f"schedule default/ghost at 2030-01-01T01:00:00Z: delivery failed: target {missing} is not a" in "\n".join(
        messages
    )
    # AWS refuses rate(0 hours) when it is created; moto does not, so the local cloud says it once.
    assert len([message for message in messages if message.startswith("schedule default/garbled cannot fire")]) == 1


# ---------------------------------------------------------------------------------- created by functions


def test_a_schedule_a_function_creates_fires_on_a_later_advance(cloud: LocalCloud) -> None:
    payload = {"kind": "by-function", "at": "<aws.scheduler.scheduled-time>"}
    schedule = request(cloud, "by-function", "at(2030-01-01T05:00:00)", payload, ActionAfterCompletion="DELETE")
    del schedule["Target"]["Arn"]  # the function fills in its RECORDER_ARN

    result = cloud.invoke("Scheduling", {"create_schedule": schedule})
    fired = cloud.clock.advance(timedelta(hours=6))

    assert result.ok, result.error
    assert fired == [("default/by-function", START + timedelta(hours=5))]
    assert recorded(cloud, "by-function") == ["2030-01-01T05:00:00Z"]
    assert not exists(cloud, "by-function")


def test_a_schedule_created_while_an_advance_runs_fires_later_in_that_advance() -> None:
    with start_cloud(manual_clock=True, start_time=START, parameters={"KickoffState": "ENABLED"}) as cloud:
        fired = cloud.clock.advance(timedelta(hours=3))

        # The template's schedule runs the function at 01:00; the schedule it creates fires at 02:00.
        assert fired == [
            ("SchedulingKickoff", START + timedelta(hours=1)),
            ("default/from-kickoff", START + timedelta(hours=2)),
        ]
        assert [event for event in recorded_events(cloud) if event.get("kind") == "kickoff"] == [{"kind": "kickoff"}]
        assert not exists(cloud, "from-kickoff")


def test_runtime_schedules_fire_with_the_real_clock() -> None:
    with start_cloud() as cloud:
        create(cloud, "real-time", "rate(1 minute)", "real-time")

        # A rate without a StartDate fires first when it is created: on the clock's next tick.
        (first, *_) = poll(lambda: recorded(cloud, "real-time"), what="the first occurrence")

        assert datetime.fromisoformat(first) <= datetime.now(UTC)


# ---------------------------------------------------------------------------------- listings


def test_the_clock_state_and_the_banner_list_runtime_schedules(cloud: LocalCloud) -> None:
    create(cloud, "listed", "cron(0 9 * * ? *)", "listed", ScheduleExpressionTimezone="Europe/Paris")

    schedules = {job["name"]: job for job in clock_json(cloud)["schedules"]}

    assert schedules["default/listed"] == {
        "name": "default/listed",
        "expression": "cron(0 9 * * ? *)",
        "next": "2030-01-01T08:00:00Z",
        "fired": 0,
        "origin": "runtime",
    }
    assert "  schedule default/listed cron(0 9 * * ? *) (created at runtime)" in _banner(cloud).splitlines()
