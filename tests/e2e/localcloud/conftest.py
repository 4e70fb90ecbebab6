"""Helpers for the local cloud's own end-to-end tests: fixture templates and polling."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from infra.localcloud.cloud import LocalCloud

REPO = Path(__file__).resolve().parents[3]
FIXTURE_FUNCTIONS = REPO / "tests" / "fixtures" / "functions"

# Prepended to every fixture template; {FUNCTIONS} becomes the fixture functions' folder.
HEADER = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Handler: handler.lambda_handler
    Timeout: 20
"""

# A DynamoDB table the recorder fixture function writes every event it receives to.
RECORD_TABLE = """
RecordTable:
  Type: AWS::DynamoDB::Table
  Properties:
    BillingMode: PAY_PER_REQUEST
    AttributeDefinitions:
      - {AttributeName: pk, AttributeType: S}
      - {AttributeName: sk, AttributeType: S}
    KeySchema:
      - {AttributeName: pk, KeyType: HASH}
      - {AttributeName: sk, KeyType: RANGE}
"""

T = TypeVar("T")


def write_template(directory: Path, resources: str, *, extra: str = "") -> Path:
    """A template made of HEADER, `extra` top-level sections and a Resources section."""
    body = HEADER + textwrap.dedent(extra) + "Resources:\n" + textwrap.indent(textwrap.dedent(resources), "  ")
    path = directory / "template.yaml"
    path.write_text(body.replace("{FUNCTIONS}", str(FIXTURE_FUNCTIONS)), encoding="utf-8")
    return path


def poll(condition: Callable[[], T], *, timeout: float = 30.0, what: str = "the condition") -> T:
    """Call `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


def recorded_events(cloud: LocalCloud, table: str = "RecordTable") -> list[Any]:
    """Every event the recorder fixture function stored, in no particular order."""
    dynamodb = cloud.client("dynamodb")
    items = dynamodb.scan(TableName=cloud.physical_name(table))["Items"]
    return [json.loads(item["event"]["S"]) for item in items]


def drain(cloud: LocalCloud, queue_logical_id: str) -> list[dict[str, Any]]:
    """Receive (and delete) every message of a queue the local cloud does not poll."""
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=cloud.physical_name(queue_logical_id))["QueueUrl"]
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", []):
        messages += batch
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)]
        )
    return messages
