"""Integration tier: the real handlers, called in-process, against moto's AWS (no network).

Resources come from template.yaml through the local cloud's own template reader, so key
schemas and names cannot drift from what is deployed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

from infra.localcloud.deploy import AwsClients, deploy
from infra.localcloud.fidelity import make_dynamodb_atomic
from infra.localcloud.model import CloudModel
from infra.localcloud.template import load_model

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


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


@dataclass
class Stack:
    model: CloudModel
    clients: AwsClients
    queue_urls: dict[str, str]
    load: Callable[[str], ModuleType]

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

        def load(function_id: str) -> ModuleType:
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
            return module

        yield Stack(model, clients, deployment.queue_urls, load)
        aws._client.cache_clear()
    for name in loaded:
        sys.modules.pop(name, None)
