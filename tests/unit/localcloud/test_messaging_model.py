"""Messaging constructs in the model: SNS subscriptions, SES resources, control-path collisions, and the
manual clock's bound on firings."""

from __future__ import annotations

import textwrap
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.localcloud.clock import Clock, ScheduledJob, TooManyFirings
from infra.localcloud.gateway import control_path_collisions
from infra.localcloud.model import HttpApiSpec, HttpRoute, SesEventDestinationSpec, SubscriptionSpec
from infra.localcloud.template import UnsupportedConstructsError, load_model
from midstage.logic.schedules import read_schedule

REPO = Path(__file__).resolve().parents[3]
ECHO = REPO / "tests" / "fixtures" / "functions" / "echo"
FIXTURE = REPO / "tests" / "fixtures" / "localcloud_messaging.yaml"


def write(tmp_path: Path, resources: str) -> Path:
    path = tmp_path / "template.yaml"
    body = "Transform: AWS::Serverless-2016-10-31\nResources:\n" + textwrap.indent(textwrap.dedent(resources), "  ")
    path.write_text(body.replace("{ECHO}", str(ECHO)), encoding="utf-8")
    return path


def test_the_fixture_s_subscriptions_and_ses_resources_are_read() -> None:
    model = load_model(FIXTURE, stack_name="stack")

    topic = "arn:aws:sns:us-east-1:123456789012:stack-NotificationsTopic"
    raw = next(s for s in model.subscriptions if s.logical_id == "RawSubscription")
    assert raw == SubscriptionSpec(
        logical_id="RawSubscription",
        topic_arn=topic,
        protocol="sqs",
        endpoint="arn:aws:sqs:us-east-1:123456789012:stack-RawQueue",
        raw_message_delivery=True,
        filter_policy={"kind": ["keep"]},
    )
    envelope = next(s for s in model.subscriptions if s.logical_id == "EnvelopeSubscription")
    assert (envelope.raw_message_delivery, envelope.filter_policy) == (False, None)
    assert [spec.name for spec in model.ses_configuration_sets] == ["stack-mail", "stack-NewsConfigurationSet"]
    assert {(i.identity, i.configuration_set) for i in model.ses_identities} == {
        ("example.com", None),
        ("news@example.org", "stack-NewsConfigurationSet"),
    }
    assert (
        SesEventDestinationSpec(
            logical_id="NewsBounces",
            name="NewsBounces",
            configuration_set="stack-NewsConfigurationSet",
            topic_arn="arn:aws:sns:us-east-1:123456789012:stack-FeedbackTopic",
            matching_event_types=("bounce",),
            enabled=True,
        )
        in model.ses_event_destinations
    )
    mail = next(d for d in model.ses_event_destinations if d.logical_id == "MailEvents")
    assert "renderingfailure" in mail.matching_event_types
    assert model.outputs["ConfigurationSetName"] == "stack-mail"
    assert model.ignored["FanInQueuePolicy"] == "AWS::SQS::QueuePolicy"


def test_what_the_local_cloud_cannot_deliver_or_publish_is_refused_at_once(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Topic:
          Type: AWS::SNS::Topic
        Fifo:
          Type: AWS::SQS::Queue
          Properties: {FifoQueue: true}
        ToLambda:
          Type: AWS::SNS::Subscription
          Properties: {TopicArn: !Ref Topic, Protocol: lambda, Endpoint: arn:aws:lambda:us-east-1:1:function:x}
        ToElsewhere:
          Type: AWS::SNS::Subscription
          Properties: {TopicArn: !Ref Topic, Protocol: sqs, Endpoint: arn:aws:sqs:us-east-1:1:elsewhere}
        FifoToStandard:
          Type: AWS::SNS::Subscription
          Properties: {TopicArn: !Ref Topic, Protocol: sqs, Endpoint: !GetAtt Fifo.Arn}
        Set:
          Type: AWS::SES::ConfigurationSet
        ToFirehose:
          Type: AWS::SES::ConfigurationSetEventDestination
          Properties:
            ConfigurationSetName: !Ref Set
            EventDestination:
              MatchingEventTypes: [bounce, explosion]
              KinesisFirehoseDestination: {DeliveryStreamARN: arn:x, IAMRoleARN: arn:y}
        ToOtherSet:
          Type: AWS::SES::ConfigurationSetEventDestination
          Properties:
            ConfigurationSetName: not-in-the-template
            EventDestination:
              MatchingEventTypes: [bounce]
              SnsDestination: {TopicARN: arn:aws:sns:us-east-1:123456789012:elsewhere}
        Identity:
          Type: AWS::SES::EmailIdentity
          Properties:
            EmailIdentity: example.com
            ConfigurationSetAttributes: {ConfigurationSetName: missing-set}
        """,
    )

    with pytest.raises(UnsupportedConstructsError) as refused:
        load_model(template, stack_name="stack")

    problems = "\n".join(refused.value.problems)
    assert "ToLambda: SNS subscription with protocol lambda" in problems
    assert "ToElsewhere: subscription of queue arn:aws:sqs:us-east-1:1:elsewhere" in problems
    assert "FifoToStandard: a FIFO queue cannot subscribe to the standard topic" in problems
    assert "ToFirehose: event destination property KinesisFirehoseDestination" in problems
    assert "ToFirehose: unknown MatchingEventTypes value explosion" in problems
    assert "ToOtherSet: event destination of configuration set not-in-the-template" in problems
    assert "ToOtherSet: SNS destination arn:aws:sns:us-east-1:123456789012:elsewhere" in problems
    assert "Identity: default configuration set missing-set" in problems


def test_a_configuration_set_without_a_name_is_named_after_the_stack_and_ref_gives_it(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Set:
          Type: AWS::SES::ConfigurationSet
        Echo:
          Type: AWS::Serverless::Function
          Properties:
            CodeUri: {ECHO}
            Handler: handler.lambda_handler
            Runtime: python3.12
            Environment: {Variables: {SET: !Ref Set}}
        """,
    )

    model = load_model(template, stack_name="stack")

    assert model.functions["Echo"].environment["SET"] == "stack-Set"


# ---------------------------------------------------------------------------------- control paths


def api(*paths: str, stage: str = "$default") -> HttpApiSpec:
    routes = tuple(HttpRoute("GET", path, "Fn") for path in paths)
    return HttpApiSpec("Api", "abc", stage, routes, None, None, None)


def test_only_routes_naming_the_control_prefix_collide_with_it() -> None:
    assert control_path_collisions(api("/_localcloud/outbox", "/_localcloud", "/v1/{proxy+}", "/{proxy+}")) == [
        "Api: route GET /_localcloud/outbox is hidden by the local cloud's control endpoints /_localcloud/",
        "Api: route GET /_localcloud is hidden by the local cloud's control endpoints /_localcloud/",
    ]
    assert control_path_collisions(api("/_localcloudish", "$default")) == []
    assert control_path_collisions(api("/x", stage="_localcloud")) != []


# ---------------------------------------------------------------------------------- the manual clock's bound


def minute_clock() -> tuple[Clock, list[datetime]]:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = Clock(manual=True, start=start)
    fired: list[datetime] = []

    def fire(due: datetime) -> list[Future[Any]]:
        fired.append(due)
        return []

    clock.add(ScheduledJob("Sweep", "rate(1 minute)", read_schedule("rate(1 minute)", "UTC", start), fire))
    return clock, fired


def test_an_advance_past_the_bound_fires_nothing_and_leaves_the_clock() -> None:
    clock, fired = minute_clock()

    with pytest.raises(TooManyFirings, match=r"more than 100 schedule occurrences \(Sweep: 101"):
        clock.advance(timedelta(hours=2), max_firings=100)

    assert fired == []
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)


def test_an_advance_within_the_bound_or_unbounded_fires_every_occurrence() -> None:
    clock, fired = minute_clock()

    assert len(clock.advance(timedelta(minutes=99), max_firings=100)) == 100
    assert len(clock.advance(timedelta(days=30), max_firings=None)) == 30 * 24 * 60
    assert fired == [datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=n) for n in range(99 + 30 * 24 * 60 + 1)]
