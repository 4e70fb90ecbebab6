"""Integration tier: the real handlers, called in-process, against moto's AWS (no network).

Resources come from template.yaml through the local cloud's own template reader, so key
schemas and names cannot drift from what is deployed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest
from moto import mock_aws

from infra.localcloud.deploy import AwsClients, deploy
from infra.localcloud.fidelity import LOCAL_SES_MAX_SEND_RATE, make_dynamodb_atomic, set_ses_send_rate
from infra.localcloud.model import CloudModel
from infra.localcloud.template import load_model
from midstage.clock import Clock

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# When the sample events under events/ were sent (their requestContext.time and sentAt).
SAMPLES_SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class Context:
    function_name = "test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class Loader(Protocol):
    def __call__(self, function_id: str, clock: Clock | None = None) -> ModuleType: ...


@dataclass
class Stack:
    model: CloudModel
    clients: AwsClients
    queue_urls: dict[str, str]
    load: Loader

    def output(self, name: str) -> str:
        return self.model.outputs[name]


def sample(function: str, case: str) -> dict[str, Any]:
    """A checked-in sample event (the same files `sam local invoke -e` uses)."""
    return json.loads((ROOT / "events" / function / f"{case}.json").read_text())  # type: ignore[no-any-return]


@cache
def _model() -> CloudModel:
    """The template translated once per session (it takes seconds); deploying it is per test."""
    return load_model(TEMPLATE)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    make_dynamodb_atomic()
    set_ses_send_rate(LOCAL_SES_MAX_SEND_RATE)  # a production account's, as the local cloud answers
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Midstage",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    model = _model()
    loaded: list[str] = []
    with mock_aws():
        from midstage.adapters import aws

        aws._client.cache_clear()
        clients = AwsClients(None, model.region)  # type: ignore[arg-type]
        deployment = deploy(model, clients)

        def load(function_id: str, clock: Clock | None = None) -> ModuleType:
            """A fresh copy of the function's handler with its environment; with `clock`, its
            wiring's clock is that one (the function then goes by that time, not the host's)."""
            spec = model.functions[function_id]
            for name, value in spec.environment.items():
                monkeypatch.setenv(name, value)
            module_name = f"handler_{function_id}"
            module_spec = importlib.util.spec_from_file_location(module_name, spec.code_dir / "handler.py")
            assert module_spec and module_spec.loader
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
            loaded.append(module_name)
            if clock is not None:
                assert hasattr(module, "_clock"), f"{function_id} reads no clock"
                module._clock = lambda: clock  # type: ignore[attr-defined]
            return module

        yield Stack(model, clients, deployment.queue_urls, load)
        aws._client.cache_clear()
    for name in loaded:
        sys.modules.pop(name, None)


def apply_ingest_queue(stack: Stack, updater: Any) -> int:
    """Everything on the stack's ingest queue applied by `updater` (a loaded ProfileUpdaterFunction),
    ten messages an invocation, until the queue is empty; the number of messages applied."""
    url = stack.output("IngestQueueUrl")
    client = stack.clients.sqs()
    applied = 0
    while messages := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }
        assert updater.lambda_handler(event, Context()) == {"batchItemFailures": []}
        for m in messages:
            client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        applied += len(messages)
    return applied
