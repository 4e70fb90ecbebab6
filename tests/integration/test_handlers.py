"""The real handlers in-process against moto, with the sample events under events/."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from midstage.adapters.automation_store import RefreshJobs
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.clock import fixed
from midstage.models.admin import Source, stamp
from midstage.models.profile import Profile, WritePlan
from tests.integration.conftest import SAMPLES_SENT_AT, Context, Stack, sample


def demo_source(stack: Stack) -> None:
    store = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    store.create_source(
        Source(id="src_localdemo", name="demo", write_key="wk_local_demo", created_at=stamp(SAMPLES_SENT_AT))
    )
    store.create_api_key("admin", "admin", "msk_local_admin", now=SAMPLES_SENT_AT)


def drain(stack: Stack, queue: str = "IngestQueue") -> list[dict[str, Any]]:
    url = stack.queue_urls[next(q.arn for q in stack.model.queues if q.logical_id == queue)]
    records = []
    while messages := stack.clients.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                    "awsRegion": "us-east-1",
                }
            )
            stack.clients.sqs().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return records


def test_tables_are_built_from_the_template(stack: Stack) -> None:
    table = stack.clients.dynamodb().describe_table(TableName=stack.output("DataTableName"))["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    ttl = stack.clients.dynamodb().describe_time_to_live(TableName=stack.output("DataTableName"))
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiresAt"


def test_collect_sample_events_give_their_documented_answers(stack: Stack) -> None:
    demo_source(stack)
    collect = stack.load("CollectFunction")
    answers = {
        case: collect.lambda_handler(sample("collect", case), Context())
        for case in ("track", "identify", "batch-gzip", "bad-key", "malformed")
    }
    assert answers["track"]["statusCode"] == 200
    assert answers["identify"]["statusCode"] == 200
    batch = json.loads(answers["batch-gzip"]["body"])
    assert (answers["batch-gzip"]["statusCode"], batch["accepted"]) == (200, 3)
    assert batch["rejected"][0]["code"] == "missing_identifier"
    assert answers["bad-key"]["statusCode"] == 401
    assert json.loads(answers["malformed"]["body"])["code"] == "invalid_json"
    assert len(drain(stack)) >= 3


def test_updater_applies_queued_events_and_reports_only_the_poison_record(stack: Stack) -> None:
    demo_source(stack)
    collect = stack.load("CollectFunction")
    collect.lambda_handler(sample("collect", "batch-gzip"), Context())
    records = drain(stack)
    poison = {**records[0], "messageId": "poison", "body": "{not json"}
    updater = stack.load("ProfileUpdaterFunction")
    answer = updater.lambda_handler({"Records": [*records, poison]}, Context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "poison"}]}
    again = updater.lambda_handler({"Records": records}, Context())  # redelivery changes nothing
    assert again == {"batchItemFailures": []}

    admin = stack.load("AdminFunction")
    shown = admin.lambda_handler(sample("admin", "get-profile"), Context())
    profile = json.loads(shown["body"])
    assert shown["statusCode"] == 200, profile
    assert profile["identities"]["email"] == ["ann@example.com"]
    assert profile["computed"]["orders"] == 1
    assert profile["computed"]["event_counts"]["$page"]["total"] == 1
    assert profile["computed"]["last_utm"] == {"source": "newsletter", "medium": "email", "name": "autumn"}
    assert profile["devices"][0]["token"] == "apns-token-abc"


def test_updater_sample_event_reports_its_malformed_record(stack: Stack) -> None:
    updater = stack.load("ProfileUpdaterFunction")
    answer = updater.lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}]}


def test_lifecycle_sweep_moves_profiles_as_time_passes(stack: Stack) -> None:
    # Given Ann's profile, built when the sample events were sent (an order on 2026-11-22)
    updater = stack.load("ProfileUpdaterFunction", clock=fixed(SAMPLES_SENT_AT + timedelta(seconds=5)))
    updater.lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    sweep, refresh = stack.load("LifecycleSweepFunction"), stack.load("RefreshSegmentsFunction")
    jobs = RefreshJobs(stack.output("DataTableName"), client=stack.clients.dynamodb())

    def sweep_at(when: str) -> dict[str, Any]:
        started = sweep.lambda_handler({"parts": 2, "scheduledTime": when}, Context())
        assert started["started"]
        assert not sweep.lambda_handler({"parts": 2, "scheduledTime": when}, Context())["started"]  # fired twice
        records = drain(stack, "RefreshQueue")
        assert [json.loads(r["body"])["part"] for r in records] == [0, 1]
        assert refresh.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}
        job = jobs.get(started["jobId"])
        assert job is not None
        return job

    # When the hourly sweep runs the next day, nothing has changed; when it runs 54 days later
    assert sweep_at("2026-11-23T00:00:00Z")["changed"] == 0
    later = sweep_at("2027-01-15T00:00:00Z")
    # Then she has gone silent
    assert (later["state"], later["parts_done"], later["changed"]) == ("done", 2, 1)
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    owners = store.identity_owners([("user_id", "ann")])
    assert store.profile(owners[("user_id", "ann")]).computed["lifecycle_stage"] == "silent"  # type: ignore[union-attr]


def test_conditional_profile_writes_are_atomic_under_concurrency(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many writers read version 1 and race: exactly one may win (DynamoDB's guarantee).

    moto's check-then-write window is widened on purpose, so that without the local cloud's
    atomicity fix (infra/localcloud/fidelity.py) several writers would pass the condition.
    """
    from moto.dynamodb.models import table as moto_table

    build_condition = moto_table.get_filter_expression

    def slow_condition(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.005)
        return build_condition(*args, **kwargs)

    monkeypatch.setattr(moto_table, "get_filter_expression", slow_condition)
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    store.save(WritePlan(Profile(id="race", created_at="2026-01-01T00:00:00.000Z")))
    wins: list[int] = []
    start = threading.Barrier(8)

    def writer(n: int) -> None:
        profile = Profile(id="race", created_at="2026-01-01T00:00:00.000Z", version=1, traits={"n": n})
        start.wait()
        try:
            store.save(WritePlan(profile))
            wins.append(n)
        except ConcurrentWrite:
            pass

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert store.profile("race").traits == {"n": wins[0]}  # type: ignore[union-attr]


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_admin_masks_contact_data_for_low_roles(stack: Stack, role: str) -> None:
    demo_source(stack)
    ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb()).create_api_key(
        "x", role, f"msk_{role}", now=SAMPLES_SENT_AT
    )
    stack.load("ProfileUpdaterFunction").lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    event = sample("admin", "get-profile")
    event["headers"]["authorization"] = f"Bearer msk_{role}"
    body = json.loads(stack.load("AdminFunction").lambda_handler(event, Context())["body"])
    assert body["identities"]["email"] == ["a***@example.com"]
    assert body["masked"] is True


def test_rate_limit_holds_from_the_first_request_of_each_second(stack: Stack) -> None:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    assert store.take_rate("src", 100, 3, limit=2) is False
    assert store.take_rate("src", 100, 2, limit=2) is True
    assert store.take_rate("src", 100, 1, limit=2) is False
    assert store.take_rate("src", 101, 1, limit=2) is True
