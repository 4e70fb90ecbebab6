"""Bulk imports through the real handlers on moto: the admin API starts an import, the run-imports
function plans it and runs its parts off the import queue, the profile updater applies what the
parts handed off, and the progress is read back over the admin API."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from midstage.adapters.config_store import ConfigStore
from midstage.clock import fixed
from midstage.services import bulk_import
from tests.integration.conftest import Context, Stack
from tests.integration.test_admin_messaging import Api
from tests.integration.test_handlers import drain

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
# Small enough for the profile updater on moto, large enough for several parts of several rounds.
PEOPLE = 4
ORDERS_EACH = 20


def setup(stack: Stack, monkeypatch: pytest.MonkeyPatch, part_bytes: int) -> tuple[Api, ModuleType, str]:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    config.create_api_key("admin", "admin", "msk_admin", now=NOW)
    api = Api(stack, stack.load("AdminFunction", fixed(NOW)))
    runner = stack.load("RunImportsFunction", fixed(NOW))
    monkeypatch.setenv("IMPORT_PART_BYTES", str(part_bytes))  # read at the runner's first task
    # Several intake rounds per part, so that a part can fail between two of them.
    monkeypatch.setattr(bulk_import, "BATCH_ROWS", 10)
    created = api.call("POST", "/v1/sources", {"name": "warehouse"})
    assert created.status == 201, created.body
    return api, runner, created.body["id"]


def orders_csv() -> tuple[bytes, dict[str, float], list[int], Counter[str]]:
    """Orders of PEOPLE people, with a few bad rows; the revenue and the orders each email should
    end with, and the lines of the bad rows."""
    lines = ["email,order,amount,currency,placed_at"]
    revenue: dict[str, float] = {}
    orders: Counter[str] = Counter()
    bad: list[int] = []
    for n in range(PEOPLE * ORDERS_EACH):
        person = n % PEOPLE
        email = f"buyer{person}@example.com"
        amount = f"{10 + n % 7}.25"
        if n % 29 == 13:
            lines.append(f"{email},o-{n},about ten,USD,2026-11-0{1 + n % 9}T10:00:00Z")
            bad.append(len(lines))
            continue
        lines.append(f"{email},o-{n},{amount},USD,2026-11-0{1 + n % 9}T10:00:00Z")
        revenue[email] = revenue.get(email, 0.0) + float(amount)
        orders[email] += 1
    return ("\r\n".join(lines)).encode(), revenue, bad, orders


MAPPING = {"email": "email", "order_id": "order", "revenue": "amount", "currency": "currency", "timestamp": "placed_at"}


def run_tasks(stack: Stack, runner: ModuleType) -> list[dict[str, Any]]:
    """Run the import queue's tasks until it is empty; the records whose task failed."""
    failed: list[dict[str, Any]] = []
    while records := drain(stack, "ImportQueue"):
        for record in records:
            try:
                runner.lambda_handler({"Records": [record]}, Context())
            except BatchProcessingError:  # a batch of one whose one record failed: redelivered
                failed.append(record)
    return failed


def apply(stack: Stack) -> list[dict[str, Any]]:
    """Hand the ingest queue to the profile updater; the events it carried."""
    records = drain(stack)
    if records:
        updater = stack.load("ProfileUpdaterFunction")
        assert updater.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}
    return [event for record in records for event in json.loads(record["body"])["events"]]


def put_file(stack: Stack, key: str, body: bytes) -> str:
    answer = stack.clients.s3().put_object(Bucket=stack.output("ArchiveBucketName"), Key=key, Body=body)
    return str(answer["ETag"]).strip('"')


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_an_order_file_in_parts_lands_every_order_once_with_exact_counts(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, packed: bool
) -> None:
    # Given a source, and an orders CSV in the bucket under its prefix (gzip'd or not)
    api, runner, source_id = setup(stack, monkeypatch, part_bytes=1024)
    data, revenue, bad, _ = orders_csv()
    key = f"imports/{source_id}/orders.csv" + (".gz" if packed else "")
    put_file(stack, key, gzip.compress(data) if packed else data)
    # When the import is started over the admin API and its tasks run
    started = api.call(
        "POST",
        "/v1/imports",
        {"sourceId": source_id, "kind": "orders", "format": "csv", "mapping": MAPPING, "s3Key": key},
    )
    assert started.status == 202, started.body
    assert started.body["status"] == "planning"
    assert run_tasks(stack, runner) == []
    # Then it read every row once, in several parts, and says which lines it refused and why
    progress = api.get(f"/v1/imports/{started.body['importId']}").body
    assert progress["status"] == "done"
    assert progress["parts"] > 3 and progress["partsDone"] == progress["parts"]
    assert (progress["rowsRead"], progress["accepted"], progress["rejected"]) == (
        PEOPLE * ORDERS_EACH,
        PEOPLE * ORDERS_EACH - len(bad),
        len(bad),
    )
    assert [(e["line"], e["code"]) for e in progress["errors"]] == [(line, "invalid_row") for line in bad]
    assert progress["errors"][0]["message"] == "column 'amount' (revenue) is not a number"
    if packed:  # the same calls as from the plain file: what they do is shown once, below
        handed_off = [e for r in drain(stack) for e in json.loads(r["body"])["events"]]
        assert len({e["messageId"] for e in handed_off}) == PEOPLE * ORDERS_EACH - len(bad)
        return
    # And every person holds the revenue of their good orders, found by their email
    events = apply(stack)
    assert len(events) == len({e["messageId"] for e in events}) == PEOPLE * ORDERS_EACH - len(bad)
    for email in revenue:
        person = api.get(f"/v1/profiles/email:{email}").body
        assert person["computed"]["revenue"] == pytest.approx(revenue[email])
    # And the refused rows wait in the source's quarantine with their reason
    quarantined = api.get(f"/v1/sources/{source_id}/quarantine").body["entries"]
    assert sorted(q["index"] for q in quarantined) == bad


def test_a_part_that_fails_midway_runs_again_and_counts_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an import whose second part fails after handing off its first rows
    api, runner, source_id = setup(stack, monkeypatch, part_bytes=1024)
    data, revenue, bad, orders = orders_csv()
    key = f"imports/{source_id}/orders.csv"
    put_file(stack, key, data)
    started = api.call(
        "POST",
        "/v1/imports",
        {"sourceId": source_id, "kind": "orders", "format": "csv", "mapping": MAPPING, "s3Key": key},
    )
    imports = runner._imports()
    real = imports.handoff
    sends: list[int] = []

    class FailsOnce:
        def send(self, groups: dict[str, list[dict[str, Any]]]) -> int:
            sends.append(1)
            if len(sends) == 4:  # the second part's second intake round (2 rounds to a part)
                raise RuntimeError("the queue went away")
            return real.send(groups)

    imports.handoff = FailsOnce()
    # When the tasks run: that part fails, its message stays for redelivery, the others finish
    failed = run_tasks(stack, runner)
    assert len(failed) == 1
    midway = api.get(f"/v1/imports/{started.body['importId']}").body
    assert midway["status"] == "running"
    assert midway["partsDone"] == midway["parts"] - 1
    # When the queue redelivers it (and the plan is re-run too, as after a crash of everything)
    again = runner.lambda_handler({"Records": failed}, Context())  # it does not fail again
    replan = bulk_import.ImportTask(kind="import.plan", import_id=started.body["importId"]).body()
    stack.clients.sqs().send_message(QueueUrl=stack.queue_urls[_import_queue_arn(stack)], MessageBody=replan)
    assert run_tasks(stack, runner) == []
    # Then the import finished with exact counts: the failed part counted once
    assert again == {"batchItemFailures": []}
    progress = api.get(f"/v1/imports/{started.body['importId']}").body
    assert progress["status"] == "done"
    assert (progress["rowsRead"], progress["accepted"], progress["rejected"]) == (
        PEOPLE * ORDERS_EACH,
        PEOPLE * ORDERS_EACH - len(bad),
        len(bad),
    )
    # And the rows the failed run had handed off were handed off again with the same messageIds,
    # which the profile updater applies once: every person's revenue is exact
    events = apply(stack)
    repeated = [m for m, n in Counter(e["messageId"] for e in events).items() if n > 1]
    assert 0 < len(repeated) <= 10
    assert len({e["messageId"] for e in events}) == PEOPLE * ORDERS_EACH - len(bad)
    for email, total in revenue.items():
        person = api.get(f"/v1/profiles/email:{email}").body
        assert person["computed"]["revenue"] == pytest.approx(total), email
        assert person["computed"]["orders"] == orders[email], email


def _import_queue_arn(stack: Stack) -> str:
    return next(q.arn for q in stack.model.queues if q.logical_id == "ImportQueue")


def test_a_dropped_file_with_a_sidecar_imports_profiles_and_a_second_notice_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a source whose profiles mapping lies beside its files, and a JSON lines file dropped
    api, runner, source_id = setup(stack, monkeypatch, part_bytes=1024)
    sidecar = {"kind": "profiles", "mapping": {"userId": "id", "email": "contact.email", "traits": {"plan": "plan"}}}
    put_file(stack, f"imports/{source_id}/_mapping.json", json.dumps(sidecar).encode())
    rows = [
        json.dumps({"id": f"crm-{n}", "contact": {"email": f"p{n}@example.com"}, "plan": "gold"}) for n in range(30)
    ]
    key = f"imports/{source_id}/people.jsonl"
    etag = put_file(stack, key, "\n".join(rows).encode())
    # When S3's "Object Created" event reaches the function, twice (EventBridge may deliver twice)
    event = _object_created(stack, key, etag)
    runner.lambda_handler(event, Context())
    runner.lambda_handler(event, Context())
    assert run_tasks(stack, runner) == []
    # Then there is one import of 30 people, and every one has the trait and the email
    events = apply(stack)
    assert len(events) == 30
    person = api.get("/v1/profiles/user_id:crm-7").body
    assert person["traits"]["plan"] == "gold"
    assert person["identities"]["email"] == ["p7@example.com"]
    # And a file dropped for a source without any mapping is an import that failed and says why
    other = api.call("POST", "/v1/sources", {"name": "unmapped"}).body["id"]
    assert runner.lambda_handler(_object_created(stack, f"imports/{other}/orphan.csv", "e1"), Context()) == {}
    # (a dropped file's import is named by its key and ETag)
    import_id = "bimp_" + hashlib.sha256(f"imports/{other}/orphan.csv\ne1".encode()).hexdigest()[:20]
    failed = api.get(f"/v1/imports/{import_id}").body
    assert failed["status"] == "failed"
    assert failed["error"].startswith("no mapping for this file")


def _object_created(stack: Stack, key: str, etag: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-22T10:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{stack.output('ArchiveBucketName')}"],
        "detail": {
            "version": "0",
            "bucket": {"name": stack.output("ArchiveBucketName")},
            "object": {"key": key, "size": 1, "eTag": etag, "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject",
        },
    }


def test_an_inline_file_and_bad_requests_over_the_admin_api(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    api, runner, source_id = setup(stack, monkeypatch, part_bytes=1024)
    body = {"sourceId": source_id, "kind": "conversions", "format": "csv"}
    mapping = {"userId": "uid", "event_name": "Store Visit", "timestamp": "at", "properties": ["store"]}
    # When a small file comes inline, gzip'd and base64'd
    raw = b"uid,at,store\nu-1,2026-11-20T09:00:00Z,Leeds\nu-2,2026-11-20T09:30:00+01:00,York\n"
    started = api.call(
        "POST",
        "/v1/imports",
        {**body, "mapping": mapping, "data_base64": base64.b64encode(gzip.compress(raw)).decode()},
    )
    assert started.status == 202, started.body
    assert run_tasks(stack, runner) == []
    # Then both visits land as track calls
    progress = api.get(f"/v1/imports/{started.body['importId']}").body
    assert (progress["status"], progress["accepted"], progress["rejected"]) == ("done", 2, 0)
    events = apply(stack)
    assert sorted((e["userId"], e["event"], e["properties"]["store"]) for e in events) == [
        ("u-1", "Store Visit", "Leeds"),
        ("u-2", "Store Visit", "York"),
    ]
    # And a missing file, an unknown source, an incomplete mapping and an unknown import are refused
    missing = api.call("POST", "/v1/imports", {**body, "mapping": mapping, "s3Key": f"imports/{source_id}/none.csv"})
    unknown = api.call("POST", "/v1/imports", {**body, "sourceId": "src_nobody", "mapping": mapping, "data": "uid\n"})
    incomplete = api.call("POST", "/v1/imports", {**body, "mapping": {"userId": "uid"}, "data": "uid\n"})
    nothing = api.get("/v1/imports/bimp_00000000000000000000")
    assert (missing.status, missing.body["code"]) == (404, "import_file_not_found")
    assert (unknown.status, unknown.body["code"]) == (404, "unknown_source")
    assert (incomplete.status, incomplete.body["code"]) == (400, "invalid_body")
    assert (nothing.status, nothing.body["code"]) == (404, "not_found")
    # And a header that lacks a mapped column is refused at once, naming the column and the header
    lacking = api.call(
        "POST", "/v1/imports", {**body, "mapping": {**mapping, "timestamp": "when"}, "data": raw.decode()}
    )
    assert (lacking.status, lacking.body["code"]) == (400, "unknown_columns")
    assert lacking.body["message"] == (
        "the mapping names columns the file's header lacks: 'when' (the header has 'uid', 'at', 'store')"
    )
    assert run_tasks(stack, runner) == []
