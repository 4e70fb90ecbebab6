"""The fault injector: killed workers, failed and throttled AWS calls, duplicated deliveries,
schedules fired twice, each really happening in a running local cloud and counted.

The steps fixture function adds 1 to a counter per step (four DynamoDB writes per item), so what
a killed worker did before it died can be read back from the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.faults import FUNCTION_HEADER, Faults
from tests.e2e.localcloud.conftest import RECORD_TABLE, drain, write_template

pytestmark = pytest.mark.timeout(180)

STEPS = 4
RESOURCES = (
    RECORD_TABLE
    + """
Steps:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/steps/
    Environment: {Variables: {RECORD_TABLE: !Ref RecordTable}}
    EventInvokeConfig:
      MaximumRetryAttempts: 2
      DestinationConfig:
        OnFailure: {Type: SQS, Destination: !GetAtt AsyncFailures.Arn}
    Events:
      Work:
        Type: SQS
        Properties:
          Queue: !GetAtt WorkQueue.Arn
          BatchSize: 1
      Bus:
        Type: EventBridgeRule
        Properties:
          Pattern: {source: [test.steps]}
      Hourly:
        Type: ScheduleV2
        Properties:
          ScheduleExpression: rate(1 hour)
          Input: '{"id": "<aws.scheduler.scheduled-time>"}'
WorkQueue:
  Type: AWS::SQS::Queue
  Properties:
    RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDeadLetters.Arn, maxReceiveCount: 20}
WorkDeadLetters: {Type: AWS::SQS::Queue}
AsyncFailures: {Type: AWS::SQS::Queue}
"""
)
START = datetime(2030, 1, 1, tzinfo=UTC)
FAULTS_DUPLICATE = Faults(duplicate=0.5, seed=5)


def faulty_cloud(tmp_path: Path, faults: Faults | None) -> LocalCloud:
    template = write_template(tmp_path, RESOURCES)
    stack = f"faults-{uuid.uuid4().hex[:8]}"
    return LocalCloud(template, stack_name=stack, manual_clock=True, start_time=START, retry_delay_s=0, faults=faults)


@pytest.fixture
def make_cloud(tmp_path: Path) -> Iterator[Any]:
    clouds: list[LocalCloud] = []

    def make(faults: Faults | None) -> LocalCloud:
        cloud = faulty_cloud(tmp_path, faults).start()
        clouds.append(cloud)
        # The hourly schedule's first firing, at the clock's start, out of the way.
        cloud.clock.advance(0)
        cloud.wait_idle(timeout=180)
        return cloud

    yield make
    for cloud in clouds:
        cloud.stop()


def step_counts(cloud: LocalCloud) -> dict[str, list[int]]:
    """Item id -> how many times each step ran, in step order."""
    items = cloud.client("dynamodb").scan(TableName=cloud.physical_name("RecordTable"))["Items"]
    counts: dict[str, list[int]] = {}
    for item in items:
        steps = counts.setdefault(item["pk"]["S"], [0] * STEPS)
        steps[int(item["sk"]["S"].removeprefix("step")) - 1] = int(item["n"]["N"])
    return counts


def send_work(cloud: LocalCloud, ids: list[str]) -> None:
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=cloud.physical_name("WorkQueue"))["QueueUrl"]
    for item_id in ids:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": item_id}))


def test_without_faults_nothing_is_injected_and_every_item_runs_each_step_once(make_cloud: Any) -> None:
    # Given a cloud started without a fault setting
    cloud = make_cloud(None)
    ids = [f"calm-{n}" for n in range(10)]

    # When work flows through its queue
    send_work(cloud, ids)
    cloud.wait_idle(timeout=180)

    # Then nothing was injected and each step ran once per item
    assert not cloud.faults.enabled
    assert cloud.faults.total() == 0
    assert {kind: counts for kind, counts in cloud.faults.counts().items() if counts} == {}
    counts = step_counts(cloud)
    assert {item: counts[item] for item in ids} == {item: [1] * STEPS for item in ids}


def test_a_killed_worker_stops_between_two_writes_and_its_message_is_redelivered_until_done(
    make_cloud: Any,
) -> None:
    # Given a cloud that kills a third of the invocations
    cloud = make_cloud(Faults(kill=0.3, seed=11))
    ids = [f"kill-{n}" for n in range(30)]

    # When work flows through the queue
    send_work(cloud, ids)
    cloud.wait_idle(timeout=180)

    # Then workers were killed, each kill seen by Lambda's poller as a Runtime.ExitError
    kills = cloud.faults.counts()["kill"].get("Steps", 0)
    assert kills > 0
    exits = [i for i in cloud.invocations("Steps") if i.error and i.error["errorType"] == "Runtime.ExitError"]
    assert len(exits) == kills
    assert all("signal: 9" in str(i.error["errorMessage"]) for i in exits if i.error)
    # and every item got through all its steps in the end (the message came back each time)
    counts = step_counts(cloud)
    assert all(counts[item][STEPS - 1] >= 1 for item in ids), counts
    # and some kill fell between two writes: an earlier step ran more often than a later one
    assert any(counts[item][0] > counts[item][STEPS - 1] for item in ids), counts
    # and nothing reached the dead-letter queue
    assert drain(cloud, "WorkDeadLetters") == []


def test_a_killed_asynchronous_invocation_is_retried_then_sent_to_its_failure_destination(
    make_cloud: Any,
) -> None:
    # Given a cloud that kills every invocation
    cloud = make_cloud(Faults(kill=1.0, seed=3))
    before = cloud.faults.total("kill")  # the schedule's first firing, at start, was killed too
    drain(cloud, "AsyncFailures")

    # When an event reaches the function through an EventBridge rule
    cloud.client("events").put_events(
        Entries=[{"Source": "test.steps", "DetailType": "work", "Detail": json.dumps({"id": "async-1"})}]
    )
    cloud.wait_idle(timeout=180)

    # Then Lambda tried it three times (the first attempt and two retries), each attempt killed
    assert cloud.faults.total("kill") - before == 3
    attempts = [i for i in cloud.invocations("Steps") if i.event.get("source") == "test.steps"]
    assert [i.error["errorType"] for i in attempts if i.error] == ["Runtime.ExitError"] * 3
    # and the invocation record went to the on-failure destination
    [record] = [json.loads(message["Body"]) for message in drain(cloud, "AsyncFailures")]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3


def test_a_duplicated_delivery_hands_the_same_message_to_the_function_again(make_cloud: Any) -> None:
    # Given a cloud that duplicates half of the deliveries
    cloud = make_cloud(FAULTS_DUPLICATE)
    ids = [f"dup-{n}" for n in range(20)]

    # When work flows through the queue
    send_work(cloud, ids)
    cloud.wait_idle(timeout=180)

    # Then every extra run of an item is one counted duplicate
    counts = step_counts(cloud)
    extra_runs = sum(counts[item][0] - 1 for item in ids)
    duplicates = cloud.faults.counts()["duplicate"].get("Steps", 0)
    assert duplicates > 0
    assert extra_runs == duplicates
    assert all(len(set(counts[item])) == 1 for item in ids)  # no kills: each run did every step
    # and a duplicate carries the same message id, with a higher receive count
    seen: dict[str, list[int]] = {}
    for invocation in cloud.invocations("Steps"):
        for record in invocation.event.get("Records", []):
            seen.setdefault(record["messageId"], []).append(int(record["attributes"]["ApproximateReceiveCount"]))
    assert any(receives == [1, 2] for receives in seen.values()), seen
    # and the control endpoint shows the same counts
    with urllib.request.urlopen(cloud.api_url + "/_localcloud/faults", timeout=10) as answer:
        shown = json.loads(answer.read())
    assert shown == {"settings": FAULTS_DUPLICATE.to_json(), "counts": cloud.faults.counts()}


def test_a_schedule_fired_twice_delivers_each_occurrence_twice(make_cloud: Any) -> None:
    # Given a cloud that fires every schedule occurrence twice
    cloud = make_cloud(Faults(schedule_twice=1.0, seed=1))
    before = cloud.faults.total("schedule_twice")

    # When the clock passes three occurrences of the hourly schedule
    cloud.clock.advance(timedelta(hours=3))
    cloud.wait_idle(timeout=180)

    # Then each occurrence ran twice, and each second firing was counted
    hours = [(START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in (1, 2, 3)]
    counts = step_counts(cloud)
    assert [counts[hour] for hour in hours] == [[2] * STEPS] * 3
    assert cloud.faults.total("schedule_twice") - before == 3
    [schedule] = cloud.faults.counts()["schedule_twice"]
    assert "Hourly" in schedule


def test_a_failed_aws_call_reaches_the_function_as_the_services_error(make_cloud: Any) -> None:
    # Given a cloud that fails every AWS call of a function with a 500
    cloud = make_cloud(Faults(aws_error=1.0, seed=2))
    before = cloud.faults.total("aws_error")  # the schedule's first firing failed too

    # When the function is invoked (its client does not retry)
    result = cloud.invoke("Steps", {"id": "failing"})

    # Then it saw DynamoDB's InternalServerError, before moto did anything
    assert result.error is not None
    assert result.error["errorType"] == "InternalServerError", result.error
    assert "failing" not in step_counts(cloud)
    assert cloud.faults.total("aws_error") - before == 1
    assert list(cloud.faults.counts()["aws_error"]) == ["Steps"]


def _marked_client(cloud: LocalCloud, service: str) -> Any:
    """A client whose calls carry a function's mark, as a worker's calls do under faults."""
    client = boto3.client(
        service,
        endpoint_url=cloud.aws_endpoint_url,
        region_name=cloud.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )

    def mark(request: Any, **_: Any) -> None:
        request.headers[FUNCTION_HEADER] = "Marked"

    client.meta.events.register("before-send.*.*", mark)
    return client


@pytest.fixture(scope="module")
def throttling_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with faulty_cloud(tmp_path_factory.mktemp("throttling"), Faults(throttle=1.0, seed=9)) as cloud:
        yield cloud


@pytest.mark.parametrize(
    ("service", "call", "throttle_code", "throttle_status"),
    [
        ("dynamodb", lambda c: c.list_tables(), "ProvisionedThroughputExceededException", 400),
        ("sqs", lambda c: c.list_queues(), "ThrottlingException", 400),
        ("sns", lambda c: c.list_topics(), "ThrottlingException", 400),
        ("s3", lambda c: c.list_buckets(), "SlowDown", 503),
        ("sesv2", lambda c: c.list_email_identities(), "TooManyRequestsException", 429),
        ("events", lambda c: c.list_rules(), "ThrottlingException", 400),
        ("scheduler", lambda c: c.list_schedules(), "ThrottlingException", 400),
    ],
)
def test_injected_errors_are_read_by_botocore_in_each_services_protocol(
    throttling_cloud: LocalCloud, service: str, call: Any, throttle_code: str, throttle_status: int
) -> None:
    # Given a cloud that throttles every call of a function
    cloud = throttling_cloud
    before = cloud.faults.counts()["throttle"].get("Marked", 0)

    # When a call marked as the function's is made
    with pytest.raises(ClientError) as raised:
        call(_marked_client(cloud, service))

    # Then botocore reads the service's throttling code and status
    assert raised.value.response["Error"]["Code"] == throttle_code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == throttle_status
    # and the same call unmarked (the local cloud's own, a test's) is not touched
    call(cloud.client(service))
    assert cloud.faults.counts()["throttle"]["Marked"] == before + 1


@pytest.mark.parametrize(
    ("arguments", "environment"),
    [(["--faults", "kill=2"], {}), ([], {"MIDSTAGE_FAULTS": "kill=2"})],
    ids=["option", "environment"],
)
def test_run_refuses_an_unreadable_fault_setting_before_starting(
    tmp_path: Path, arguments: list[str], environment: dict[str, str]
) -> None:
    # Given a fault setting with a rate above 1, on the command line or in MIDSTAGE_FAULTS
    template = write_template(tmp_path, RESOURCES)

    # When the cloud is asked to run with it
    finished = subprocess.run(
        [sys.executable, "-m", "infra.localcloud", "run", "--template", str(template), "--port", "0", *arguments],
        cwd=tmp_path,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    # Then it stops at once, saying why
    assert finished.returncode == 2, finished
    assert "cannot read the fault setting: the rate of kill must be a number from 0 to 1" in finished.stderr
