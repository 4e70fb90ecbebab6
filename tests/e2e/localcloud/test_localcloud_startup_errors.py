"""What the local cloud cannot run is refused at start-up, clearly, and nothing is left running."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from infra.localcloud.cloud import LocalCloud, LocalCloudError
from infra.localcloud.template import TemplateError, UnsupportedConstructsError
from tests.e2e.localcloud.conftest import write_template

pytestmark = pytest.mark.timeout(60)

ECHO = """
Echo:
  Type: AWS::Serverless::Function
  Properties:
    CodeUri: {FUNCTIONS}/echo/
"""


def test_a_kinesis_stream_and_its_mapping_are_refused_with_a_pointer_to_the_docs(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        """
        Clicks: {Type: AWS::Kinesis::Stream, Properties: {ShardCount: 1}}
        Consumer:
          Type: AWS::Serverless::Function
          Properties:
            CodeUri: {FUNCTIONS}/echo/
            Events:
              Clicks:
                Type: Kinesis
                Properties: {Stream: !GetAtt Clicks.Arn, StartingPosition: LATEST, BatchSize: 100}
        """,
    )
    threads_before = threading.active_count()

    with pytest.raises(UnsupportedConstructsError) as raised:
        LocalCloud(template, stack_name="refused").start()

    assert raised.value.problems == [
        "Clicks: resource type AWS::Kinesis::Stream",
        "ConsumerClicks: event-source mapping from a Kinesis stream (only template SQS queues are polled)",
    ]
    assert "docs/local-cloud.md" in str(raised.value)
    assert threading.active_count() == threads_before


def test_an_http_api_authorizer_is_refused(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        """
        Api:
          Type: AWS::Serverless::HttpApi
          Properties:
            Auth:
              Authorizers:
                Keys:
                  FunctionArn: !GetAtt Echo.Arn
                  AuthorizerPayloadFormatVersion: "2.0"
                  EnableSimpleResponses: true
              DefaultAuthorizer: Keys
        Echo:
          Type: AWS::Serverless::Function
          Properties:
            CodeUri: {FUNCTIONS}/echo/
            Events:
              Get:
                Type: HttpApi
                Properties: {ApiId: !Ref Api, Method: GET, Path: /things}
        """,
    )

    with pytest.raises(UnsupportedConstructsError, match=r"Api: HttpApi authorizers \(Keys\)"):
        LocalCloud(template, stack_name="refused").start()


def test_an_invalid_event_pattern_is_a_start_up_error(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        ECHO
        + """
Broken:
  Type: AWS::Events::Rule
  Properties:
    EventPattern: {detail: {amount: [{numeric: [">>", 1]}]}}
    Targets: [{Id: echo, Arn: !GetAtt Echo.Arn}]
""",
    )

    with pytest.raises(TemplateError, match="Broken: invalid EventPattern"):
        LocalCloud(template, stack_name="refused").start()


def test_an_invalid_schedule_expression_is_a_start_up_error(tmp_path: Path) -> None:
    template = write_template(
        tmp_path,
        ECHO
        + """
Nightly:
  Type: AWS::Scheduler::Schedule
  Properties:
    ScheduleExpression: cron(0 25 * * ? *)
    FlexibleTimeWindow: {Mode: "OFF"}
    Target: {Arn: !GetAtt Echo.Arn, RoleArn: arn:aws:iam::123456789012:role/scheduler}
""",
    )

    with pytest.raises(TemplateError, match="Nightly: "):
        LocalCloud(template, stack_name="refused").start()


def test_two_clouds_with_one_stack_name_cannot_share_a_process(tmp_path: Path) -> None:
    template = write_template(tmp_path, ECHO)

    with LocalCloud(template, stack_name="twice"), pytest.raises(LocalCloudError, match="already running"):
        LocalCloud(template, stack_name="twice").start()
