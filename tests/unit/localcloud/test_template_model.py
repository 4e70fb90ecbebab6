"""template.yaml -> CloudModel: translation, intrinsic functions, names, and what is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from infra.localcloud.model import AsyncInvokeConfig, HttpRoute
from infra.localcloud.template import TemplateError, UnsupportedConstructsError, load_model

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "template.yaml"
ECHO = REPO / "tests" / "fixtures" / "functions" / "echo"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body).replace("{ECHO}", str(ECHO)), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- the real template


def test_functions_get_their_code_directory_and_resolved_environment() -> None:
    model = load_model(TEMPLATE)

    collect = model.functions["CollectFunction"]
    assert collect.name == "midstage-local-CollectFunction"
    assert collect.code_dir == REPO / "functions" / "collect"
    assert collect.handler == "handler.lambda_handler"
    assert collect.environment["DATA_TABLE"] == "midstage-local-DataTable"
    assert collect.environment["STAGE"] == "dev"
    assert collect.environment["INGEST_QUEUE_URL"] == (
        "https://sqs.us-east-1.amazonaws.com/123456789012/midstage-local-IngestQueue"
    )
    assert collect.log_group == "midstage-local-CollectLogs"
    assert collect.log_format == "JSON"


def test_every_http_api_event_of_the_template_becomes_a_route_to_its_function() -> None:
    document = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    declared = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"], logical_id)
        for logical_id, resource in document["Resources"].items()
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if event["Type"] == "HttpApi"
    }

    (api,) = load_model(TEMPLATE).http_apis

    assert {(route.method, route.path, route.function_id) for route in api.routes} == declared
    assert HttpRoute("GET", "/v1/sources/{sourceId}", "AdminFunction") in api.routes
    assert {route.payload_format for route in api.routes} == {"2.0"}
    assert api.stage == "$default"


def test_throttling_comes_from_the_stage_parameters_and_cors_is_left_to_the_functions() -> None:
    (api,) = load_model(TEMPLATE, parameters={"ApiThrottleRate": "50", "ApiThrottleBurst": "80"}).http_apis

    assert api.throttle_rate == 50.0
    assert api.throttle_burst == 80
    # No CorsConfiguration: preflights and unrouted paths reach the collect function's $default route.
    assert api.cors is None
    assert HttpRoute("ANY", "$default", "CollectFunction") in api.routes


def test_a_cors_configuration_is_read_from_the_api(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Api:
            Type: AWS::Serverless::HttpApi
            Properties:
              CorsConfiguration:
                AllowOrigins: ["https://app.example.com"]
                AllowHeaders: [authorization, content-encoding]
                AllowCredentials: true
                MaxAge: 600
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {ECHO}
              Handler: handler.lambda_handler
              Runtime: python3.12
              Events:
                Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /a}}
        """,
    )

    (api,) = load_model(template).http_apis

    assert api.cors is not None
    assert api.cors.allow_origins == ("https://app.example.com",)
    assert "content-encoding" in api.cors.allow_headers
    assert api.cors.allow_credentials is True
    assert api.cors.max_age == 600


def test_queue_mapping_and_redrive_policy_reference_real_queues() -> None:
    model = load_model(TEMPLATE)

    queues = {queue.logical_id: queue for queue in model.queues}
    # The template grows (delivery, feedback...): pick the ingest queue's mapping rather than count them.
    (mapping,) = [m for m in model.queue_mappings if m.queue_arn == queues["IngestQueue"].arn]
    assert mapping.function_id == "ProfileUpdaterFunction"
    assert (mapping.batch_size, mapping.batching_window_s) == (10, 1.0)
    assert mapping.report_batch_item_failures
    assert mapping.maximum_concurrency == 4
    redrive = queues["IngestQueue"].properties["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == queues["IngestDeadLetterQueue"].arn
    assert int(redrive["maxReceiveCount"]) == 5


def test_stage_parameter_flows_into_names_schedules_and_outputs() -> None:
    model = load_model(TEMPLATE, parameters={"Stage": "qa"})

    (bus,) = model.buses
    assert bus.name == "midstage-qa"
    assert model.outputs["EventBusName"] == "midstage-qa"
    assert model.functions["ProfileUpdaterFunction"].environment["EVENT_BUS_NAME"] == "midstage-qa"
    (sweep,) = [s for s in model.schedules if s.target_arn == model.functions["LifecycleSweepFunction"].arn]
    assert sweep.expression == "rate(1 hour)"
    api_id = model.http_apis[0].api_id
    assert model.outputs["ApiUrl"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com"


def test_resources_without_local_behaviour_are_listed_as_ignored() -> None:
    ignored = load_model(TEMPLATE).ignored

    assert ignored["CollectFunctionRole"] == "AWS::IAM::Role"
    assert ignored["CollectLogs"] == "AWS::Logs::LogGroup"
    assert ignored["HttpApiApiGatewayDefaultStage"] == "AWS::ApiGatewayV2::Stage"
    assert "AWS::Lambda::LayerVersion" in ignored.values()
    assert "AWS::Lambda::Permission" in ignored.values()


# ---------------------------------------------------------------------------------- resolution


def test_intrinsic_functions_resolve_with_conditions_and_mappings(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Stage: {Type: String, Default: dev}
          Zones: {Type: CommaDelimitedList, Default: "a,b,c"}
        Mappings:
          Sizes: {dev: {memory: 256}, prod: {memory: 1024}}
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
          IsNotProd: !Not [!Condition IsProd]
          Both: !And [!Condition IsNotProd, !Or [!Equals [a, a], !Condition IsProd]]
        Resources:
          Queue:
            Type: AWS::SQS::Queue
            Properties:
              VisibilityTimeout: !If [IsProd, 300, !Ref AWS::NoValue]
          ProdOnly:
            Type: AWS::SQS::Queue
            Condition: IsProd
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {ECHO}
              Handler: handler.lambda_handler
              Runtime: python3.12
              MemorySize: !FindInMap [Sizes, !Ref Stage, memory]
              Environment:
                Variables:
                  SUB_SHORT: !Sub "${AWS::StackName}/${Queue.QueueName}/${AWS::Region}/${!Literal}"
                  SUB_LONG: !Sub ["${Url}#${Stage}", {Url: !GetAtt Queue.QueueUrl}]
                  JOINED: !Join ["-", [!Ref Stage, !Select [1, !Ref Zones]]]
                  SPLIT: !Select [3, !Split [":", !GetAtt Queue.Arn]]
                  BOTH: !If [Both, "yes", "no"]
                  ACCOUNT: !Ref AWS::AccountId
        Outputs:
          QueueUrl: {Value: !Ref Queue}
          ProdQueue: {Condition: IsProd, Value: !Ref ProdOnly}
        """,
    )

    model = load_model(template, stack_name="tpl")

    environment = model.functions["Fn"].environment
    assert environment["SUB_SHORT"] == "tpl/tpl-Queue/us-east-1/${Literal}"
    assert environment["SUB_LONG"] == "https://sqs.us-east-1.amazonaws.com/123456789012/tpl-Queue#dev"
    assert environment["JOINED"] == "dev-b"
    assert environment["SPLIT"] == "us-east-1"
    assert environment["BOTH"] == "yes"
    assert environment["ACCOUNT"] == "123456789012"
    assert model.functions["Fn"].memory_mb == 256
    assert [queue.logical_id for queue in model.queues] == ["Queue"]
    assert "VisibilityTimeout" not in model.queues[0].properties
    assert model.outputs == {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/tpl-Queue"}


def test_physical_names_are_stack_and_logical_id_unless_the_template_names_them(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Resources:
          Jobs: {Type: AWS::SQS::Queue, Properties: {FifoQueue: true}}
          Named: {Type: AWS::SQS::Queue, Properties: {QueueName: my-queue}}
          Uploads: {Type: AWS::S3::Bucket}
          Table:
            Type: AWS::DynamoDB::Table
            Properties:
              BillingMode: PAY_PER_REQUEST
              AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
              KeySchema: [{AttributeName: pk, KeyType: HASH}]
        """,
    )

    model = load_model(template, stack_name="Shop")

    assert [queue.name for queue in model.queues] == ["Shop-Jobs.fifo", "my-queue"]
    assert model.buckets[0].name == "shop-uploads"
    assert model.tables[0].name == "Shop-Table"


def test_rule_targets_and_asynchronous_settings_are_read(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Bus: {Type: AWS::Events::EventBus, Properties: {Name: orders}}
          Failures: {Type: AWS::SQS::Queue}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {ECHO}
              Handler: handler.lambda_handler
              Runtime: python3.12
              DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt Failures.Arn}
              EventInvokeConfig: {MaximumRetryAttempts: 1}
              Events:
                Placed:
                  Type: EventBridgeRule
                  Properties:
                    EventBusName: !Ref Bus
                    Pattern: {source: [shop], detail-type: [OrderPlaced]}
                    InputPath: $.detail
                    RetryPolicy: {MaximumRetryAttempts: 3}
        """,
    )

    model = load_model(template, stack_name="s")

    (rule,) = model.rules
    assert rule.bus_name == "orders"
    assert rule.event_pattern == {"source": ["shop"], "detail-type": ["OrderPlaced"]}
    (target,) = rule.targets
    assert target.arn == model.functions["Fn"].arn
    assert (target.input_path, target.max_retry_attempts) == ("$.detail", 3)
    assert model.async_configs["Fn"] == AsyncInvokeConfig(max_retry_attempts=1, dead_letter_arn=model.queues[0].arn)


# ---------------------------------------------------------------------------------- refusals


def test_every_unsupported_construct_is_reported_at_once_with_a_pointer_to_the_docs(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Transform: AWS::Serverless-2016-10-31
        Resources:
          Clicks: {Type: AWS::Kinesis::Stream, Properties: {ShardCount: 1}}
          Api:
            Type: AWS::Serverless::HttpApi
            Properties:
              Auth:
                Authorizers:
                  Jwt:
                    IdentitySource: $request.header.Authorization
                    JwtConfiguration: {issuer: "https://issuer.example.com", audience: [midstage]}
                DefaultAuthorizer: Jwt
          Table:
            Type: AWS::DynamoDB::Table
            Properties:
              BillingMode: PAY_PER_REQUEST
              AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
              KeySchema: [{AttributeName: pk, KeyType: HASH}]
              StreamSpecification: {StreamViewType: NEW_IMAGE}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {ECHO}
              Handler: handler.lambda_handler
              Runtime: python3.12
              Events:
                FromStream:
                  Type: Kinesis
                  Properties: {Stream: !GetAtt Clicks.Arn, StartingPosition: LATEST}
                FromTable:
                  Type: DynamoDB
                  Properties: {Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST}
                Private:
                  Type: HttpApi
                  Properties: {ApiId: !Ref Api, Method: GET, Path: /private}
        """,
    )

    with pytest.raises(UnsupportedConstructsError) as raised:
        load_model(template)

    message = str(raised.value)
    assert "Clicks: resource type AWS::Kinesis::Stream" in message
    assert "FnFromStream: event-source mapping from a Kinesis stream" in message
    assert "FnFromTable: event-source mapping from a DynamoDB stream" in message
    assert "Api: HttpApi authorizers (Jwt)" in message
    assert "route GET /private uses authorizer Jwt" in message
    assert "docs/local-cloud.md" in message
    assert len(raised.value.problems) == 5


def test_unknown_properties_of_emulated_types_are_refused(tmp_path: Path) -> None:
    template = write(
        tmp_path,
        """
        Resources:
          Uploads:
            Type: AWS::S3::Bucket
            Properties:
              NotificationConfiguration: {QueueConfigurations: []}
        """,
    )

    with pytest.raises(
        UnsupportedConstructsError, match=r"Uploads: property NotificationConfiguration\.QueueConfigurations"
    ):
        load_model(template)


@pytest.mark.parametrize(
    ("parameters", "complaint"),
    [
        ({"Nope": "x"}, "declares no parameter"),
        ({"LogLevel": "LOUD"}, "AllowedValues"),
        ({"Stage": "Not Valid"}, "AllowedPattern"),
        ({"DedupeWindowHours": "500"}, "MaxValue"),
    ],
)
def test_parameter_values_are_checked_like_cloudformation_does(parameters: dict[str, str], complaint: str) -> None:
    with pytest.raises(TemplateError, match=complaint):
        load_model(TEMPLATE, parameters=parameters)
