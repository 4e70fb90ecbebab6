"""Optional tier: the same handlers against LocalStack, through AWS_ENDPOINT_URL only.

Runs when a LocalStack answers at LOCALSTACK_ENDPOINT (default http://localhost:4566); skipped
otherwise, with the reason. Proves that no code change is needed to switch endpoints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType

import localstack_client.session
import pytest

from infra.localcloud.deploy import AwsClients, deploy
from infra.localcloud.template import load_model
from tests.integration.conftest import Context

ROOT = Path(__file__).resolve().parents[3]
ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "http://localhost:4566")


def _reachable() -> str | None:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=2) as answer:
            services = json.loads(answer.read()).get("services", {})
    except (OSError, ValueError) as error:
        return f"no LocalStack at {ENDPOINT} ({error.__class__.__name__}); set LOCALSTACK_ENDPOINT to run this tier"
    missing = [s for s in ("dynamodb", "sqs", "events") if services.get(s) not in ("available", "running")]
    return f"LocalStack at {ENDPOINT} lacks {missing}" if missing else None


pytestmark = [pytest.mark.localstack]
_why = _reachable()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_collect_and_update_a_profile_on_localstack(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = f"midstage-ls-{uuid.uuid4().hex[:6]}"
    model = load_model(ROOT / "template.yaml", stack_name=stack)
    session = localstack_client.session.Session(localstack_host=ENDPOINT.split("//", 1)[1].split(":")[0])
    assert session.client("sts").get_caller_identity()["Account"]
    deploy(model, AwsClients(ENDPOINT, model.region))
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", model.region)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    for function in ("CollectFunction", "ProfileUpdaterFunction"):
        for key, value in model.functions[function].environment.items():
            monkeypatch.setenv(key, value)

    from midstage.adapters import aws
    from midstage.adapters.config_store import ConfigStore
    from midstage.adapters.profile_store import ProfileStore
    from midstage.models.admin import Source

    aws._client.cache_clear()
    ConfigStore(model.outputs["ConfigTableName"]).create_source(
        Source(id="src_localdemo", name="ls", write_key="wk_local_demo", created_at="2026-11-22T10:00:00+00:00")
    )
    collect = _load(ROOT / "functions/collect/handler.py", "ls_collect")
    sample = json.loads((ROOT / "events/collect/identify.json").read_text())
    answer = collect.lambda_handler(sample, Context())
    assert answer["statusCode"] == 200, answer

    sqs = aws.sqs()
    messages = sqs.receive_message(QueueUrl=model.outputs["IngestQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=2)
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn",
            "awsRegion": model.region,
        }
        for m in messages["Messages"]
    ]
    updater = _load(ROOT / "functions/profile_updater/handler.py", "ls_updater")
    assert updater.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}
    store = ProfileStore(model.outputs["DataTableName"])
    assert store.identity_owners([("email", "ann@example.com")])
