"""Kinesis destinations through the real functions on moto: tracked events go through collect and
the profile updater onto the destinations feed, and the forwarder writes them to a real (moto)
Kinesis Data Stream, read back here shard by shard with GetShardIterator and GetRecords."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from midstage.adapters import aws
from midstage.models.destinations import DestinationCreate
from tests.integration.conftest import Context, Stack
from tests.integration.test_collect_retries import post
from tests.integration.test_destinations import PEOPLE, T0, Platform
from tests.integration.test_handlers import drain

STREAM = "clicks"


def make_stream(stack: Stack, shards: int = 2) -> str:
    kinesis = stack.clients.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=shards)
    arn: str = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    return arn


def read_stream(stack: Stack, arn: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of the stream, shard by shard in sequence order: its data parsed (one JSON
    line each) with its partition key."""
    kinesis = stack.clients.client("kinesis")
    found: dict[str, list[dict[str, Any]]] = {}
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=100, StreamARN=arn)
            for record in page["Records"]:
                data = record["Data"]
                assert data.endswith(b"\n") and data.count(b"\n") == 1, "one JSON line a record"
                records.append({**json.loads(data), "partitionKey": record["PartitionKey"]})
            iterator = page.get("NextShardIterator") if page["Records"] else None
        found[shard["ShardId"]] = records
    return found


def by_person(shards: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {p: [r["messageId"] for rs in shards.values() for r in rs if r["event"]["userId"] == p] for p in PEOPLE}


class Throttling:
    """The real (moto) Kinesis client, but records whose messageId is in `refused` are not passed
    on and come back with ProvisionedThroughputExceededException, as Kinesis answers a partly
    failed PutRecords: the others are written, in their order."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refused: set[str] = set()
        self.tried: list[str] = []  # every messageId a call carried

    def __call__(self, region: str) -> Throttling:
        assert region == "us-east-1", "a client of the stream's region"
        return self

    def put_records(self, *, StreamARN: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [json.loads(r["Data"])["messageId"] for r in Records]
        self.tried += ids
        passed = [r for r, m in zip(Records, ids, strict=True) if m not in self.refused]
        written = iter(self.real.put_records(StreamARN=StreamARN, Records=passed)["Records"] if passed else [])
        results: list[dict[str, Any]] = []
        for message_id in ids:
            if message_id in self.refused:
                error = "ProvisionedThroughputExceededException"
                results.append({"ErrorCode": error, "ErrorMessage": "Rate exceeded for shard shardId-000000000001"})
            else:
                results.append(next(written))
        return {"FailedRecordCount": sum(1 for r in results if "ErrorCode" in r), "Records": results}

    def sent_of(self, person: str) -> set[str]:
        return {m for m in self.tried if m.startswith(f"{person}-")}


def test_each_persons_events_land_in_order_on_one_shard_as_json_lines(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    # Given a Kinesis destination on a stream of two shards
    arn = make_stream(stack)
    created = platform.admin.create_destination(
        DestinationCreate(name="clickstream", kind="kinesis", stream_arn=arn, batch_size=500)
    )
    assert created["stream_arn"] == arn and "secret" not in created
    # When people are tracked twice
    platform.track(0)
    platform.clock.now += timedelta(minutes=1)
    platform.track(1)
    # Then each event is a record once, each person's in the order tracked, keyed by their profile
    shards = read_stream(stack, arn)
    records = [r for rs in shards.values() for r in rs]
    assert Counter(r["messageId"] for r in records) == Counter(e["messageId"] for e in platform.sent)
    assert by_person(shards) == platform.sent_by_person()
    assert all(r["partitionKey"] == r["profileId"] and r["destinationId"] == created["id"] for r in records)
    for person in PEOPLE:  # one shard a person: Kinesis keeps a shard's order
        assert len({shard for shard, rs in shards.items() for r in rs if r["event"]["userId"] == person}) == 1
    stats = platform.stats(created["id"])
    assert (stats.delivered, stats.pending, stats.failed) == (12, 0, 0)


def test_a_stream_that_throttles_a_person_for_an_hour_gets_every_event_once_in_order_after(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    arn = make_stream(stack)
    # Given a stream whose writes of bob's events are refused (his shard is throttled)
    throttling = Throttling(stack.clients.client("kinesis"))
    monkeypatch.setattr(aws, "kinesis", throttling)
    created = platform.admin.create_destination(
        DestinationCreate(name="clickstream", kind="kinesis", stream_arn=arn, batch_size=500)
    )
    throttling.refused = {f"bob-{r}-{i}" for r in range(5) for i in range(2)}
    # When people keep being tracked for an hour, the scheduled run going every minute
    platform.track(0)
    for minute in range(1, 61):
        platform.clock.now = T0 + timedelta(minutes=minute)
        if minute % 15 == 0:
            platform.track(minute // 15)
        platform.sweep()
    # Then none of bob's events is on the stream; the others' went on meanwhile, in their order,
    # a record of each a try (the drain stops at the call that partly failed)
    during, sent = by_person(read_stream(stack, arn)), platform.sent_by_person()
    assert during["bob"] == []
    for person in ("ann", "cy"):
        assert 2 <= len(during[person]) < 10 and during[person] == sent[person][: len(during[person])]
    failing = platform.stats(created["id"])
    assert failing.pending == 30 - len(during["ann"]) - len(during["cy"]) and failing.failed == 0
    assert failing.last_error is not None and "ProvisionedThroughputExceededException" in failing.last_error
    assert failing.attempts >= 4 and failing.lag_seconds == 3600
    # And only his first event was ever sent: nothing of his overtook it
    assert throttling.sent_of("bob") == {"bob-0-0"}
    # When the shard takes writes again and the scheduled run keeps going
    throttling.refused = set()
    minute = 60
    while platform.stats(created["id"]).pending and minute < 90:
        minute += 1
        platform.clock.now = T0 + timedelta(minutes=minute)
        platform.sweep()
    # Then every event is on the stream exactly once, each person's in the order tracked
    shards = read_stream(stack, arn)
    records = [r for rs in shards.values() for r in rs]
    assert Counter(r["messageId"] for r in records) == Counter(e["messageId"] for e in platform.sent)
    assert by_person(shards) == platform.sent_by_person()
    recovered = platform.stats(created["id"])
    assert (recovered.delivered, recovered.pending, recovered.failed, recovered.attempts) == (30, 0, 0, 0)


def test_a_missing_stream_keeps_the_events_until_it_is_made(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    platform = Platform(stack, monkeypatch)
    # Given a destination naming a stream that does not exist yet
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/" + STREAM
    created = platform.admin.create_destination(DestinationCreate(name="later", kind="kinesis", stream_arn=arn))
    # When people are tracked
    platform.track(0)
    # Then the events wait (a misconfiguration, not the events' fault), saying why
    waiting = platform.stats(created["id"])
    assert (waiting.pending, waiting.failed_records) == (6, 0)
    assert waiting.last_error is not None and "[ResourceNotFoundException]" in waiting.last_error
    # When the stream is made and the backoff is over
    make_stream(stack)
    platform.clock.now += timedelta(minutes=1)
    platform.sweep()
    # Then they are written, in order per person
    assert by_person(read_stream(stack, arn)) == platform.sent_by_person()


def test_an_event_shaped_past_one_mib_is_a_failed_record_and_the_others_go(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    arn = make_stream(stack, shards=1)
    # Given a projection that repeats the event 40 times
    copies = ", ".join(f"c{i}: @" for i in range(40))
    created = platform.admin.create_destination(
        DestinationCreate(name="fat", kind="kinesis", stream_arn=arn, transform="{" + copies + "}")
    )
    # When a 30 KB event (1.2 MB once projected) and a small one are tracked
    note = "x" * 30_000
    for message_id, properties in (("big", {"note": note}), ("small", {})):
        event = {"type": "track", "event": "Noted", "userId": "ann", "messageId": message_id, "properties": properties}
        post(stack, "/v1/track", event, T0)
    updater = stack.load("ProfileUpdaterFunction", platform.clock)  # type: ignore[arg-type]
    assert updater.lambda_handler({"Records": drain(stack)}, Context()) == {"batchItemFailures": []}
    platform.forward()
    # Then the big one is a failed record saying why, and the small one is on the stream
    stats = platform.stats(created["id"])
    assert (stats.failed_records, stats.delivered, stats.pending) == (1, 1, 0)
    assert stats.last_error is not None and stats.last_error.endswith("Kinesis takes at most 1 MiB (1,048,576 bytes)")
    ((record,),) = read_stream(stack, arn).values()
    assert record["messageId"] == "small" and record["event"]["c39"]["messageId"] == "small"
