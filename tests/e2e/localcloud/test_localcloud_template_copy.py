"""A route, a rule and a schedule added only to a copy of template.yaml are served by the local cloud.

This is the promise that the local wiring cannot drift from the template: nothing here tells the
local cloud about the additions except the copied template itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from samtranslator.yaml_helper import yaml_parse

from infra.localcloud.cloud import LocalCloud
from tests.e2e.localcloud.conftest import FIXTURE_FUNCTIONS, REPO, recorded_events

pytestmark = pytest.mark.timeout(180)

START = datetime(2030, 1, 1, tzinfo=UTC)


def copy_of_template_with_additions(directory: Path) -> Path:
    document = yaml_parse((REPO / "template.yaml").read_text(encoding="utf-8"))
    resources = document["Resources"]
    for resource in resources.values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = str(REPO / properties[key])
    resources["EchoFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": str(FIXTURE_FUNCTIONS / "echo"),
            "Handler": "handler.lambda_handler",
            "Events": {
                "Echo": {
                    "Type": "HttpApi",
                    "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/v1/echo/{word}"},
                }
            },
        },
    }
    resources["RecordTable"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        },
    }
    resources["RecorderFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": str(FIXTURE_FUNCTIONS / "recorder"),
            "Handler": "handler.lambda_handler",
            "Environment": {"Variables": {"RECORD_TABLE": {"Ref": "RecordTable"}}},
            "Events": {
                "DomainEvents": {
                    "Type": "EventBridgeRule",
                    "Properties": {
                        "EventBusName": {"Ref": "EventBus"},
                        "Pattern": {"source": ["midstage.test"]},
                        "InputPath": "$.detail",
                    },
                },
                "Tick": {
                    "Type": "ScheduleV2",
                    "Properties": {
                        "ScheduleExpression": "rate(5 minutes)",
                        "Input": '{"tick": "<aws.scheduler.scheduled-time>"}',
                    },
                },
            },
        },
    }
    path = directory / "template.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    template = copy_of_template_with_additions(tmp_path_factory.mktemp("copy"))
    with LocalCloud(
        template, stack_name="copy", parameters={"Stage": "copy"}, manual_clock=True, start_time=START
    ) as started:
        yield started


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def test_a_route_added_to_the_copy_is_served(cloud: LocalCloud) -> None:
    status, answer = get(f"{cloud.api_url}/v1/echo/hello?twice=yes")

    assert status == 200
    assert answer["event"]["routeKey"] == "GET /v1/echo/{word}"
    assert answer["event"]["pathParameters"] == {"word": "hello"}
    assert answer["event"]["queryStringParameters"] == {"twice": "yes"}
    assert answer["context"]["function_name"] == "copy-EchoFunction"
    assert answer["environment"]["STAGE"] == "copy"


def test_a_rule_added_to_the_copy_delivers_matching_events(cloud: LocalCloud) -> None:
    tag = uuid.uuid4().hex
    events = cloud.client("events")
    bus = cloud.outputs["EventBusName"]

    events.put_events(
        Entries=[
            {"Source": "midstage.test", "DetailType": "x", "Detail": json.dumps({"tag": tag}), "EventBusName": bus},
            {"Source": "other", "DetailType": "x", "Detail": json.dumps({"tag": tag, "n": 2}), "EventBusName": bus},
        ]
    )
    cloud.wait_idle(timeout=60)

    assert [event for event in recorded_events(cloud) if event.get("tag") == tag] == [{"tag": tag}]


def test_a_schedule_added_to_the_copy_fires_as_the_clock_advances(cloud: LocalCloud) -> None:
    now = cloud.clock.now()

    cloud.clock.advance(timedelta(minutes=5))

    # A rate schedule first fires when it is created (the cloud's start), then every period.
    ticks = sorted(event["tick"] for event in recorded_events(cloud) if "tick" in event)
    assert now == START
    assert ticks == ["2030-01-01T00:00:00Z", "2030-01-01T00:05:00Z"]


def test_outputs_point_at_the_local_cloud(cloud: LocalCloud) -> None:
    status, outputs = get(f"{cloud.api_url}/_localcloud/outputs")

    assert status == 200
    assert outputs == cloud.outputs
    assert outputs["ApiUrl"] == cloud.api_url
    assert outputs["EventBusName"] == "midstage-copy"
    assert outputs["DataTableName"] == cloud.physical_name("DataTable") == "copy-DataTable"


def test_control_endpoints_report_health_and_invocations(cloud: LocalCloud) -> None:
    get(f"{cloud.api_url}/v1/echo/control")

    health_status, health = get(f"{cloud.api_url}/_localcloud/health")
    history_status, history = get(f"{cloud.api_url}/_localcloud/invocations?function=EchoFunction")
    idle_status, idle = post(f"{cloud.api_url}/_localcloud/wait-idle", {"timeout": 60})
    missing_status, _ = get(f"{cloud.api_url}/_localcloud/nothing-here")

    assert (health_status, health["status"], health["awsEndpointUrl"]) == (200, "ok", cloud.aws_endpoint_url)
    assert "EchoFunction" in health["functions"]
    assert history_status == 200
    assert history["invocations"][-1]["event"]["pathParameters"] == {"word": "control"}
    assert (idle_status, idle) == (200, {"idle": True})
    assert missing_status == 404
