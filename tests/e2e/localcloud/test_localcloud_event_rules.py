"""EventBridge rules: events put through moto reach the targets of matching rules only.

Function targets are invoked asynchronously, as on AWS: a failing function is retried by Lambda
(EventInvokeConfig MaximumRetryAttempts) and the event then goes to the function's dead-letter queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.localcloud.cloud import LocalCloud
from tests.e2e.localcloud.conftest import RECORD_TABLE, drain, recorded_events, write_template

pytestmark = pytest.mark.timeout(120)

RESOURCES = (
    RECORD_TABLE
    + """
Orders: {Type: AWS::Events::EventBus}
Recorder:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/recorder/
    Environment: {Variables: {RECORD_TABLE: !Ref RecordTable}}
    DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt RecorderDeadLetters.Arn}
    EventInvokeConfig:
      MaximumRetryAttempts: 1
      DestinationConfig:
        OnFailure: {Type: SQS, Destination: !GetAtt RecorderFailures.Arn}
    Events:
      Placed:
        Type: EventBridgeRule
        Properties:
          EventBusName: !Ref Orders
          Pattern: {source: [shop], detail-type: [OrderPlaced]}
          InputPath: $.detail
RecorderDeadLetters: {Type: AWS::SQS::Queue}
RecorderFailures: {Type: AWS::SQS::Queue}
BigOrders:
  Type: AWS::Events::Rule
  Properties:
    EventBusName: !Ref Orders
    EventPattern: {source: [shop], detail: {amount: [{numeric: [">", 100]}]}}
    Targets:
      - Id: constant
        Arn: !GetAtt Recorder.Arn
        Input: '{"big": true}'
      - Id: transformed
        Arn: !GetAtt Recorder.Arn
        InputTransformer:
          InputPathsMap: {id: $.detail.id, amount: $.detail.amount}
          InputTemplate: '{"order": <id>, "text": "order <id> of <amount>", "rule": "<aws.events.rule-name>"}'
Audit:
  Type: AWS::Events::Rule
  Properties:
    EventBusName: !Ref Orders
    EventPattern: {source: [shop], detail-type: [OrderCancelled]}
    Targets:
      - {Id: queue, Arn: !GetAtt AuditQueue.Arn}
AuditQueue: {Type: AWS::SQS::Queue}
Fragile:
  Type: AWS::Events::Rule
  Properties:
    EventBusName: !Ref Orders
    EventPattern: {source: [shop], detail-type: [OrderRefunded]}
    Targets:
      - Id: fragile
        Arn: !GetAtt FragileQueue.Arn
        RetryPolicy: {MaximumRetryAttempts: 1}
        DeadLetterConfig: {Arn: !GetAtt FragileDeadLetters.Arn}
FragileQueue: {Type: AWS::SQS::Queue}
FragileDeadLetters: {Type: AWS::SQS::Queue}
"""
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    template = write_template(tmp_path_factory.mktemp("rules"), RESOURCES)
    with LocalCloud(template, stack_name="rules", retry_delay_s=0) as started:
        yield started


def put(cloud: LocalCloud, detail_type: str, detail: dict[str, Any], source: str = "shop") -> None:
    answer = cloud.client("events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": cloud.physical_name("Orders"),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0


def records_about(cloud: LocalCloud, tag: str) -> list[Any]:
    return [event for event in recorded_events(cloud) if tag in json.dumps(event)]


def test_rules_deliver_matching_events_only_with_their_input(cloud: LocalCloud) -> None:
    small, big, cancelled, foreign = (f"{kind}-{uuid.uuid4().hex}" for kind in ("small", "big", "cancel", "foreign"))

    put(cloud, "OrderPlaced", {"id": small, "amount": 50})
    put(cloud, "OrderPlaced", {"id": big, "amount": 150})
    put(cloud, "OrderCancelled", {"id": cancelled, "amount": 5})
    put(cloud, "OrderPlaced", {"id": foreign, "amount": 500}, source="elsewhere")
    cloud.wait_idle()

    assert records_about(cloud, small) == [{"id": small, "amount": 50}]
    placed, transformed = sorted(records_about(cloud, big), key=lambda event: "order" in event)
    assert placed == {"id": big, "amount": 150}
    assert transformed == {"order": big, "text": f"order {big} of 150", "rule": cloud.physical_name("BigOrders")}
    assert records_about(cloud, cancelled) == []
    assert records_about(cloud, foreign) == []


def test_a_constant_input_replaces_the_event(cloud: LocalCloud) -> None:
    before = recorded_events(cloud).count({"big": True})

    put(cloud, "OrderPlaced", {"id": uuid.uuid4().hex, "amount": 101})
    cloud.wait_idle()

    assert recorded_events(cloud).count({"big": True}) == before + 1


def test_a_queue_target_receives_the_whole_event(cloud: LocalCloud) -> None:
    order = uuid.uuid4().hex

    put(cloud, "OrderCancelled", {"id": order})
    cloud.wait_idle()

    (message,) = [m for m in drain(cloud, "AuditQueue") if order in m["Body"]]
    event = json.loads(message["Body"])
    assert event["source"] == "shop"
    assert event["detail-type"] == "OrderCancelled"
    assert event["detail"] == {"id": order}
    assert event["account"] == cloud.model.account_id
    assert event["region"] == "us-east-1"
    assert set(event) >= {"version", "id", "time", "resources"}


def test_a_failing_function_is_retried_then_its_event_goes_to_the_dead_letter_queue(cloud: LocalCloud) -> None:
    order = uuid.uuid4().hex

    put(cloud, "OrderPlaced", {"id": order, "amount": 10, "fail": True})
    cloud.wait_idle()

    # One attempt plus MaximumRetryAttempts: 1, each recorded before the function raised.
    assert records_about(cloud, order) == [{"id": order, "amount": 10, "fail": True}] * 2
    (dead,) = [m for m in drain(cloud, "RecorderDeadLetters") if order in m["Body"]]
    assert json.loads(dead["Body"]) == {"id": order, "amount": 10, "fail": True}
    assert dead["MessageAttributes"]["ErrorMessage"]["StringValue"] == "asked to fail"
    assert "RequestID" in dead["MessageAttributes"]
    (failure,) = [json.loads(m["Body"]) for m in drain(cloud, "RecorderFailures") if order in m["Body"]]
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["requestPayload"] == {"id": order, "amount": 10, "fail": True}
    assert failure["responsePayload"]["errorMessage"] == "asked to fail"


def test_an_undeliverable_event_goes_to_the_target_dead_letter_queue(cloud: LocalCloud) -> None:
    order = uuid.uuid4().hex
    sqs = cloud.client("sqs")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=cloud.physical_name("FragileQueue"))["QueueUrl"])

    put(cloud, "OrderRefunded", {"id": order})
    cloud.wait_idle()

    (dead,) = [m for m in drain(cloud, "FragileDeadLetters") if order in m["Body"]]
    assert json.loads(dead["Body"])["detail"] == {"id": order}
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["RULE_ARN"].endswith(":rule/rules-Orders/rules-Fragile")
    assert attributes["TARGET_ARN"].endswith(":rules-FragileQueue")
    assert attributes["ERROR_CODE"] == "AWS.SimpleQueueService.NonExistentQueue"
