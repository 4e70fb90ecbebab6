"""SQS event-source mappings: batches, partial batch responses, redelivery and dead-letter queues.

The batch fixture function fails records by body: "fail..." is reported in batchItemFailures,
"bogus..." reports an id that is not in the batch, "crash-first..." raises on first delivery.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from infra.localcloud.cloud import LocalCloud
from tests.e2e.localcloud.conftest import drain, write_template

pytestmark = pytest.mark.timeout(120)

RESOURCES = """
Batch:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/batch/
    Events:
      Reported:
        Type: SQS
        Properties:
          Queue: !GetAtt ReportedQueue.Arn
          BatchSize: 10
          FunctionResponseTypes: [ReportBatchItemFailures]
      Whole:
        Type: SQS
        Properties:
          Queue: !GetAtt WholeQueue.Arn
          BatchSize: 10
          MaximumBatchingWindowInSeconds: 1
      Bogus:
        Type: SQS
        Properties:
          Queue: !GetAtt BogusQueue.Arn
          FunctionResponseTypes: [ReportBatchItemFailures]
      Filtered:
        Type: SQS
        Properties:
          Queue: !GetAtt FilteredQueue.Arn
          FilterCriteria:
            Filters:
              - Pattern: '{"body": {"kind": ["keep"]}}'
ReportedQueue:
  Type: AWS::SQS::Queue
  Properties:
    RedrivePolicy: {deadLetterTargetArn: !GetAtt ReportedDeadLetters.Arn, maxReceiveCount: 3}
ReportedDeadLetters: {Type: AWS::SQS::Queue}
WholeQueue:
  Type: AWS::SQS::Queue
  Properties:
    RedrivePolicy: {deadLetterTargetArn: !GetAtt WholeDeadLetters.Arn, maxReceiveCount: 3}
WholeDeadLetters: {Type: AWS::SQS::Queue}
BogusQueue:
  Type: AWS::SQS::Queue
  Properties:
    RedrivePolicy: {deadLetterTargetArn: !GetAtt BogusDeadLetters.Arn, maxReceiveCount: 2}
BogusDeadLetters: {Type: AWS::SQS::Queue}
FilteredQueue: {Type: AWS::SQS::Queue}
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    template = write_template(tmp_path_factory.mktemp("queues"), RESOURCES)
    # A zero retry delay makes failed messages visible again at once, so redelivery is quick.
    with LocalCloud(template, stack_name="queues", retry_delay_s=0) as started:
        yield started


def send(cloud: LocalCloud, queue: str, *bodies: str, **attributes: Any) -> None:
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=cloud.physical_name(queue))["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)


def deliveries(cloud: LocalCloud, queue: str) -> dict[str, list[int]]:
    """Body -> the ApproximateReceiveCount of each delivery of that message to the function."""
    queue_arn = next(q.arn for q in cloud.model.queues if q.logical_id == queue)
    seen: dict[str, list[int]] = defaultdict(list)
    for invocation in cloud.invocations("Batch"):
        for record in invocation.event["Records"]:
            if record["eventSourceARN"] == queue_arn:
                seen[record["body"]].append(int(record["attributes"]["ApproximateReceiveCount"]))
    return seen


def test_only_the_reported_items_are_redelivered(cloud: LocalCloud) -> None:
    tag = uuid.uuid4().hex
    ok_one, ok_two, failing = f"ok-1-{tag}", f"ok-2-{tag}", f"fail-{tag}"

    send(cloud, "ReportedQueue", ok_one, failing, ok_two)
    cloud.wait_idle()

    seen = deliveries(cloud, "ReportedQueue")
    assert seen[ok_one] == [1]
    assert seen[ok_two] == [1]
    assert seen[failing] == [1, 2, 3]


def test_a_record_that_always_fails_lands_in_the_dead_letter_queue_after_max_receive_count(
    cloud: LocalCloud,
) -> None:
    failing = f"fail-{uuid.uuid4().hex}"

    send(cloud, "ReportedQueue", failing)
    cloud.wait_idle()

    assert len(deliveries(cloud, "ReportedQueue")[failing]) == 3
    assert [message["Body"] for message in drain(cloud, "ReportedDeadLetters")].count(failing) == 1


def test_a_function_error_redelivers_the_whole_batch(cloud: LocalCloud) -> None:
    tag = uuid.uuid4().hex
    crashing, bystander = f"crash-first-{tag}", f"ok-{tag}"
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=cloud.physical_name("WholeQueue"))["QueueUrl"]

    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": "1", "MessageBody": crashing}, {"Id": "2", "MessageBody": bystander}]
    )
    cloud.wait_idle()

    failed = [
        invocation
        for invocation in cloud.invocations("Batch")
        if invocation.error is not None and any(r["body"] == crashing for r in invocation.event["Records"])
    ]
    assert len(failed) == 1
    assert failed[0].error is not None
    assert failed[0].error["errorType"] == "RuntimeError"
    seen = deliveries(cloud, "WholeQueue")
    for record in failed[0].event["Records"]:
        assert seen[record["body"]] == [1, 2], "every record of the failed batch comes back once"
    assert not [m for m in drain(cloud, "WholeDeadLetters") if m["Body"] in (crashing, bystander)]


def test_an_unknown_item_identifier_fails_the_whole_batch(cloud: LocalCloud) -> None:
    bogus = f"bogus-{uuid.uuid4().hex}"

    send(cloud, "BogusQueue", bogus)
    cloud.wait_idle()

    assert deliveries(cloud, "BogusQueue")[bogus] == [1, 2]
    assert [message["Body"] for message in drain(cloud, "BogusDeadLetters")].count(bogus) == 1


def test_records_have_the_shape_lambda_gives_them(cloud: LocalCloud) -> None:
    body = f"ok-shape-{uuid.uuid4().hex}"

    send(
        cloud,
        "ReportedQueue",
        body,
        source={"DataType": "String", "StringValue": "web"},
        blob={"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    )
    cloud.wait_idle()

    (record,) = [
        record
        for invocation in cloud.invocations("Batch")
        for record in invocation.event["Records"]
        if record["body"] == body
    ]
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":queues-ReportedQueue")
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()  # noqa: S324 - SQS's checksum
    assert set(record["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["messageAttributes"]["source"] == {
        "stringValue": "web",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    assert record["messageAttributes"]["blob"]["dataType"] == "Binary"


def test_filter_criteria_drop_the_messages_they_do_not_match(cloud: LocalCloud) -> None:
    tag = uuid.uuid4().hex
    kept, dropped = json.dumps({"kind": "keep", "tag": tag}), json.dumps({"kind": "drop", "tag": tag})

    send(cloud, "FilteredQueue", kept, dropped, f"plain text {tag}")
    cloud.wait_idle()

    seen = deliveries(cloud, "FilteredQueue")
    assert seen == {kept: [1]}
