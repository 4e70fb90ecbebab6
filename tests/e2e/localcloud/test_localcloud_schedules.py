"""Schedules fire as the manual clock advances: Scheduler schedules and scheduled rules.

`advance` waits for each firing's invocation, so the recorder's table is checked right after it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.localcloud.clock import TooManyFirings
from infra.localcloud.cloud import LocalCloud
from tests.e2e.localcloud.conftest import RECORD_TABLE, recorded_events, write_template

pytestmark = pytest.mark.timeout(120)

START = datetime(2030, 1, 1, tzinfo=UTC)
RESOURCES = (
    RECORD_TABLE
    + """
Recorder:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/recorder/
    Environment: {Variables: {RECORD_TABLE: !Ref RecordTable}}
    Events:
      Hourly:
        Type: ScheduleV2
        Properties:
          ScheduleExpression: rate(1 hour)
          Input: >-
            {"kind": "rate", "at": "<aws.scheduler.scheduled-time>",
             "execution": "<aws.scheduler.execution-id>", "attempt": "<aws.scheduler.attempt-number>",
             "schedule": "<aws.scheduler.schedule-arn>"}
      ParisMorning:
        Type: ScheduleV2
        Properties:
          ScheduleExpression: cron(0 9 * * ? *)
          ScheduleExpressionTimezone: Europe/Paris
          Input: '{"kind": "cron", "at": "<aws.scheduler.scheduled-time>"}'
      OneShot:
        Type: ScheduleV2
        Properties:
          ScheduleExpression: at(2030-01-01T13:30:00)
          ScheduleExpressionTimezone: Europe/Paris
          Input: '{"kind": "once", "at": "<aws.scheduler.scheduled-time>"}'
      QuarterPast:
        Type: Schedule
        Properties:
          Schedule: cron(15 * * * ? *)
"""
)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    # One cloud per test: each starts its clock at START, so expectations are absolute times.
    template = write_template(tmp_path, RESOURCES)
    stack = f"schedules-{uuid.uuid4().hex[:8]}"
    with LocalCloud(template, stack_name=stack, manual_clock=True, start_time=START) as started:
        yield started


def recorded(cloud: LocalCloud, kind: str) -> list[dict[str, Any]]:
    return sorted(
        (event for event in recorded_events(cloud) if event.get("kind") == kind),
        key=lambda event: event["at"],
    )


def test_a_rate_schedule_fires_at_creation_then_every_period_with_its_context_attributes(
    cloud: LocalCloud,
) -> None:
    cloud.clock.advance(timedelta(hours=2))

    events = recorded(cloud, "rate")
    assert [event["at"] for event in events] == ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z", "2030-01-01T02:00:00Z"]
    schedule_arn = next(s.arn for s in cloud.model.schedules if s.logical_id == "RecorderHourly")
    assert {event["schedule"] for event in events} == {schedule_arn}
    assert {event["attempt"] for event in events} == {"1"}
    assert len({uuid.UUID(event["execution"]) for event in events}) == 3


def test_a_cron_schedule_follows_its_time_zone(cloud: LocalCloud) -> None:
    cloud.clock.advance(timedelta(days=2))

    # 09:00 in Paris is 08:00 UTC in January.
    assert [event["at"] for event in recorded(cloud, "cron")] == ["2030-01-01T08:00:00Z", "2030-01-02T08:00:00Z"]


def test_a_one_time_schedule_fires_once(cloud: LocalCloud) -> None:
    cloud.clock.advance(timedelta(days=3))

    assert [event["at"] for event in recorded(cloud, "once")] == ["2030-01-01T12:30:00Z"]


def test_a_scheduled_rule_sends_a_scheduled_event(cloud: LocalCloud) -> None:
    cloud.clock.advance(timedelta(minutes=30))

    (event,) = [event for event in recorded_events(cloud) if event.get("detail-type") == "Scheduled Event"]
    rule_arn = next(rule.arn for rule in cloud.model.rules if rule.logical_id == "RecorderQuarterPast")
    assert event["source"] == "aws.events"
    assert event["time"] == "2030-01-01T00:15:00Z"
    assert event["resources"] == [rule_arn]
    assert event["detail"] == {}
    assert event["account"] == cloud.model.account_id


def test_advance_fires_due_schedules_in_time_order_and_moves_the_clock(cloud: LocalCloud) -> None:
    fired = cloud.clock.advance(timedelta(hours=10))

    times = [when for _, when in fired]
    assert times == sorted(times)
    assert ("RecorderQuarterPast", START + timedelta(minutes=15)) in fired
    assert ("RecorderParisMorning", START + timedelta(hours=8)) in fired
    assert cloud.clock.now() == START + timedelta(hours=10)
    assert len(recorded_events(cloud)) == len(fired)


def test_the_control_api_advances_the_clock(cloud: LocalCloud) -> None:
    request = urllib.request.Request(
        f"{cloud.api_url}/_localcloud/clock/advance", data=json.dumps({"seconds": 900}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())

    assert answer["now"] == "2030-01-01T00:15:00Z"
    assert [entry["schedule"] for entry in answer["fired"]] == ["RecorderHourly", "RecorderQuarterPast"]


# ---------------------------------------------------------------------------------- one-minute rates

MINUTELY = """
Minutely:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
    Events:
      Sweep:
        Type: ScheduleV2
        Properties:
          ScheduleExpression: rate(1 minute)
          State: MINUTELY_STATE
          Input: '{"at": "<aws.scheduler.scheduled-time>"}'
Failing:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
    Events:
      Sweep:
        Type: ScheduleV2
        Properties:
          ScheduleExpression: rate(1 minute)
          State: FAILING_STATE
          Input: '{"raise": "<aws.scheduler.scheduled-time>"}'
"""


def minutely_cloud(tmp_path: Path, *, failing: bool = False) -> LocalCloud:
    """A cloud whose Minutely (or, if `failing`, Failing) function a rate(1 minute) schedule fires."""
    states = ("DISABLED", "ENABLED") if failing else ("ENABLED", "DISABLED")
    resources = MINUTELY.replace("MINUTELY_STATE", states[0]).replace("FAILING_STATE", states[1])
    template = write_template(tmp_path, resources)
    return LocalCloud(template, stack_name=f"minutely-{uuid.uuid4().hex[:8]}", manual_clock=True, start_time=START)


def test_a_one_minute_schedule_fires_every_occurrence_of_a_three_day_advance_at_its_own_time(
    tmp_path: Path,
) -> None:
    with minutely_cloud(tmp_path) as cloud:
        fired = cloud.clock.advance(timedelta(days=3))

        # As on AWS, every occurrence runs: the one at creation, then one a minute for 3 days.
        assert len(fired) == 3 * 24 * 60 + 1
        assert cloud.clock.now() == START + timedelta(days=3)
        history = cloud.invocations("Minutely")
        expected = [START + timedelta(days=3) - timedelta(minutes=n) for n in reversed(range(len(history)))]
        # Each invocation learns its occurrence's time from its input, not from the clock.
        assert [record.event["at"] for record in history] == [f"{moment:%Y-%m-%dT%H:%M:%SZ}" for moment in expected]
        assert all(record.error is None for record in history)


def test_an_advance_over_max_firings_fires_nothing_and_says_why(tmp_path: Path) -> None:
    with minutely_cloud(tmp_path) as cloud:
        with pytest.raises(TooManyFirings, match=r"more than 20000 schedule occurrences \(MinutelySweep: 20001"):
            cloud.clock.advance(timedelta(days=30))

        assert cloud.clock.now() == START
        assert cloud.invocations("Minutely") == []
        request = urllib.request.Request(
            f"{cloud.api_url}/_localcloud/clock/advance",
            data=json.dumps({"seconds": 3600, "maxFirings": 10}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400
        assert len(cloud.clock.advance(timedelta(hours=1), max_firings=None)) == 61


def test_retries_of_a_failing_minute_schedule_do_not_hold_up_the_advance(tmp_path: Path) -> None:
    with minutely_cloud(tmp_path, failing=True) as cloud:
        started = time.monotonic()
        fired = cloud.clock.advance(timedelta(hours=1))
        elapsed = time.monotonic() - started
        cloud.wait_idle(60)

        assert len(fired) == 61
        # Each failed event waits for its retries (1 s apart) without holding a worker; when the
        # wait held one, 16 waiting events filled the pool and these firings took about 6 s.
        assert elapsed < 3, f"advancing took {elapsed:.1f} s"
        history = cloud.invocations("Failing")
        assert len(history) == 61 * 3  # the first attempt and Lambda's 2 retries, each
        assert all(record.error is not None for record in history)
