"""Kinesis destinations: the records, their batches (by count, by bytes, one per person), what a
call that partly fails does to the queue, and how Kinesis's errors are read
(logic/destinations.py, adapters/destination_senders.py, services/destinations.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pydantic import ValidationError

from midstage.adapters.destination_senders import DestinationSender
from midstage.logic import destinations as logic
from midstage.logic.destinations import DeliveryFailed, Entry
from midstage.models.destinations import Destination, DestinationCreate, DestinationUpdate
from midstage.models.messages import AppliedEvents
from midstage.services.destinations import Forwarder
from tests.support.fakes import MemoryDefinitions, MemoryDestinationQueue

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks"
DEST = "dst_kinesis0000unit"


def kinesis(**fields: Any) -> Destination:
    base: dict[str, Any] = {
        "id": DEST,
        "name": "clicks",
        "kind": "kinesis",
        "stream_arn": STREAM,
        "batch_size": 500,
        "created_at": "2026-12-07T08:00:00.000Z",
        "updated_at": "2026-12-07T08:00:00.000Z",
    }
    base.update(fields)
    return Destination.model_validate(base)


def entry(seq: int, message_id: str, profile_id: str, payload: dict[str, Any] | None = None) -> Entry:
    body = payload if payload is not None else {"messageId": message_id}
    return Entry(logic.seq_of(seq), profile_id, message_id, body, "2026-12-07T09:00:00.000Z")


def people(batches: Sequence[Sequence[Entry]]) -> list[list[str]]:
    return [[e.message_id for e in batch] for batch in batches]


# ------------------------------------------------------------------------------ the definition
def test_a_kinesis_destination_needs_a_stream_arn_of_a_real_shape() -> None:
    with pytest.raises(ValidationError, match="a kinesis destination needs stream_arn"):
        DestinationCreate.model_validate({"name": "n", "kind": "kinesis"})
    for wrong in (
        "arn:aws:kinesis:eu-west-1:12345678901:stream/clicks",  # an 11-digit account
        "arn:aws:kinesis:europe:123456789012:stream/clicks",  # no region
        "arn:aws:firehose:eu-west-1:123456789012:deliverystream/clicks",
        "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks/consumer/c:1",
    ):
        with pytest.raises(ValidationError, match="stream_arn"):
            DestinationCreate.model_validate({"name": "n", "kind": "kinesis", "stream_arn": wrong})
    # A region of another partition is refused: no client of ours would ever reach it
    with pytest.raises(ValidationError, match="region cn-north-1 is not in partition aws"):
        DestinationCreate.model_validate(
            {"name": "n", "kind": "kinesis", "stream_arn": "arn:aws:kinesis:cn-north-1:123456789012:stream/s"}
        )
    china = "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/s"
    assert DestinationCreate.model_validate({"name": "n", "kind": "kinesis", "stream_arn": china}).stream_arn == china
    with pytest.raises(ValidationError, match="stream_arn"):
        DestinationUpdate.model_validate({"stream_arn": "arn:aws:kinesis:eu-west-1:1:stream/s"})


def test_a_kinesis_batch_is_up_to_500_records_and_the_others_keep_theirs() -> None:
    assert DestinationCreate(name="n", kind="kinesis", stream_arn=STREAM, batch_size=500).batch_size == 500
    with pytest.raises(ValidationError, match="batch_size"):
        DestinationCreate(name="n", kind="kinesis", stream_arn=STREAM, batch_size=501)
    with pytest.raises(ValidationError, match="a webhook destination's batch_size is at most 100"):
        DestinationCreate(name="n", kind="webhook", url="https://h.example.com/x", batch_size=101)


# ------------------------------------------------------------------------------ the records
def test_a_record_is_the_envelope_as_one_json_line_keyed_by_the_person() -> None:
    # Given an event queued for a person
    queued = entry(1, "m1", "p-ann", {"type": "track", "event": "Order Completed", "messageId": "m1"})
    # When it becomes a Kinesis record
    record = logic.kinesis_record(queued, DEST)
    # Then its data is the webhook's batch item, one JSON object ending in a newline
    assert record["Data"].endswith(b"\n") and record["Data"].count(b"\n") == 1
    assert json.loads(record["Data"]) == {
        "messageId": "m1",
        "profileId": "p-ann",
        "destinationId": DEST,
        "event": {"type": "track", "event": "Order Completed", "messageId": "m1"},
    }
    # And its partition key is the person, so their records share a shard and its order
    assert record["PartitionKey"] == "p-ann"
    assert logic.record_size(record) == len(record["Data"]) + len("p-ann")


def test_a_profile_id_past_256_characters_is_keyed_by_its_digest() -> None:
    long_id = "p" * 300
    assert logic.partition_key(long_id) == hashlib.sha256(long_id.encode()).hexdigest()
    assert logic.partition_key("p" * 256) == "p" * 256


# ------------------------------------------------------------------------------ the batches
def test_batches_hold_at_most_the_batch_size() -> None:
    entries = [entry(i, f"m{i}", f"p{i}") for i in range(7)]
    assert people(list(logic.kinesis_batches(entries, DEST, 3))) == [["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"]]


def test_batches_hold_at_most_five_mib() -> None:
    # Given six people's events of about 900 KB each (a record is at most 1 MiB, a call 5 MiB)
    big = "x" * 900_000
    entries = [entry(i, f"m{i}", f"p{i}", {"blob": big}) for i in range(6)]
    # When they are batched for a destination taking 500 a call
    made = list(logic.batches_for(kinesis(), entries))
    # Then five fit in a call, and the sixth goes in the next
    assert people(made) == [["m0", "m1", "m2", "m3", "m4"], ["m5"]]
    assert all(sum(logic.record_size(logic.kinesis_record(e, DEST)) for e in b) <= 5 * 1024 * 1024 for b in made)


def test_a_call_holds_one_record_per_person_and_each_persons_order_holds_across_calls() -> None:
    # Given ann's three events, bob's and cy's, in queue order
    entries = [
        entry(1, "ann-1", "ann"),
        entry(2, "ann-2", "ann"),
        entry(3, "bob-1", "bob"),
        entry(4, "ann-3", "ann"),
        entry(5, "cy-1", "cy"),
    ]
    # When they are batched
    made = people(list(logic.kinesis_batches(entries, DEST, 500)))
    # Then each call has ann once, and her events go in her order, one call after another
    assert made == [["ann-1", "bob-1", "cy-1"], ["ann-2"], ["ann-3"]]
    # And with two a call, people fill the room the others leave, never ahead of themselves
    assert people(list(logic.kinesis_batches(entries, DEST, 2))) == [["ann-1", "bob-1"], ["ann-2", "cy-1"], ["ann-3"]]


def test_a_person_whose_record_does_not_fit_waits_with_everything_after_it() -> None:
    # Given ann's big event, then her small one, then bob's small one, with room for one big record
    small = logic.record_size(logic.kinesis_record(entry(9, "x", "ann"), DEST))
    entries = [
        entry(1, "bob-0", "bob"),
        entry(2, "ann-big", "ann", {"blob": "x" * 500}),
        entry(3, "ann-small", "ann"),
        entry(4, "cy-1", "cy"),
    ]
    # When a call takes at most about three small records' bytes
    made = people(list(logic.kinesis_batches(entries, DEST, 500, max_bytes=3 * small + 10)))
    # Then ann's small event does not overtake her big one; cy's fills the room
    assert made == [["bob-0", "cy-1"], ["ann-big"], ["ann-small"]]


def test_other_kinds_batch_by_count_alone() -> None:
    hook = Destination.model_validate(
        {
            "id": DEST,
            "name": "h",
            "kind": "webhook",
            "url": "https://h.example.com/x",
            "secret": "dsec_unit-test-secret-0123456789",
            "batch_size": 2,
            "created_at": "2026-12-07T08:00:00.000Z",
            "updated_at": "2026-12-07T08:00:00.000Z",
        }
    )
    entries = [entry(1, "a1", "ann"), entry(2, "a2", "ann"), entry(3, "a3", "ann")]
    assert people(list(logic.batches_for(hook, entries))) == [["a1", "a2"], ["a3"]]


# ------------------------------------------------------------------------------ the sender
class FakeKinesis:
    """PutRecords as Kinesis answers it: per record, written (a sequence number) or refused with
    ErrorCode; `refuse` names the messageIds refused and how many calls each is refused for."""

    def __init__(self) -> None:
        self.refuse: dict[str, tuple[str, int]] = {}  # messageId -> (ErrorCode, calls left)
        self.errors: dict[int, Exception] = {}  # call number (from 1) -> what it raises
        self.calls: list[list[str]] = []
        self.stream: list[tuple[str, str]] = []  # (partition key, messageId) in the order written
        self.regions: list[str] = []

    def __call__(self, region: str) -> FakeKinesis:
        self.regions.append(region)
        return self

    def put_records(self, *, StreamARN: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        assert StreamARN == STREAM
        ids = [json.loads(r["Data"])["messageId"] for r in Records]
        self.calls.append(ids)
        if len(self.calls) in self.errors:
            raise self.errors[len(self.calls)]
        results: list[dict[str, Any]] = []
        for record, message_id in zip(Records, ids, strict=True):
            code, left = self.refuse.get(message_id, ("", 0))
            if left > 0:
                self.refuse[message_id] = (code, left - 1)
                results.append({"ErrorCode": code, "ErrorMessage": f"Rate exceeded for shard of {message_id}"})
            else:
                self.stream.append((record["PartitionKey"], message_id))
                results.append({"SequenceNumber": str(len(self.stream)), "ShardId": "shardId-000000000000"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "said"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutRecords"
    )


def sender(fake: FakeKinesis, pauses: list[float] | None = None) -> DestinationSender:
    return DestinationSender(kinesis_client=fake, pause=(pauses if pauses is not None else []).append)


def test_records_go_to_the_streams_region_in_one_call() -> None:
    fake = FakeKinesis()
    sender(fake).deliver(kinesis(), [entry(1, "a1", "ann"), entry(2, "b1", "bob")], NOW)
    assert fake.regions == ["eu-west-1"]
    assert fake.stream == [("ann", "a1"), ("bob", "b1")]


def test_records_a_call_refused_are_tried_again_alone_after_a_short_pause() -> None:
    # Given a stream that throttles bob's record once
    fake, pauses = FakeKinesis(), []
    fake.refuse = {"b1": ("ProvisionedThroughputExceededException", 1)}
    # When a batch of three people is delivered
    sender(fake, pauses).deliver(kinesis(), [entry(1, "a1", "ann"), entry(2, "b1", "bob"), entry(3, "c1", "cy")], NOW)
    # Then the second call carries bob's record alone, and every record is written once
    assert fake.calls == [["a1", "b1", "c1"], ["b1"]]
    assert sorted(m for _, m in fake.stream) == ["a1", "b1", "c1"]
    assert pauses == [0.1]


def test_a_record_still_refused_fails_the_delivery_reporting_what_was_written() -> None:
    # Given a stream that keeps throttling bob's record
    fake, pauses = FakeKinesis(), []
    fake.refuse = {"b1": ("ProvisionedThroughputExceededException", 99)}
    batch = [entry(1, "a1", "ann"), entry(2, "b1", "bob"), entry(3, "c1", "cy")]
    # When the batch is delivered
    with pytest.raises(DeliveryFailed) as failed:
        sender(fake, pauses).deliver(kinesis(), batch, NOW)
    # Then it was tried three times in all, then failed retryably, saying which code, and what was written
    assert fake.calls == [["a1", "b1", "c1"], ["b1"], ["b1"]] and pauses == [0.1, 0.2]
    assert failed.value.kind == "retryable"
    assert failed.value.reason.startswith("Kinesis refused 1 of 3 records (ProvisionedThroughputExceededException:")
    assert [e.message_id for e in failed.value.delivered] == ["a1", "c1"]


def test_a_batch_with_a_person_twice_is_never_split_on_a_partial_failure() -> None:
    # Given a batch the forwarder never makes: ann twice, her first record refused
    fake = FakeKinesis()
    fake.refuse = {"a1": ("InternalFailure", 99)}
    with pytest.raises(DeliveryFailed) as failed:
        sender(fake).deliver(kinesis(), [entry(1, "a1", "ann"), entry(2, "a2", "ann")], NOW)
    # Then it is not tried again alone and nothing counts as written: the whole batch comes again
    assert fake.calls == [["a1", "a2"]]
    assert failed.value.delivered == () and failed.value.kind == "retryable"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("ResourceNotFoundException"), "configuration"),
        (client_error("AccessDeniedException"), "configuration"),
        (client_error("KMSAccessDeniedException"), "configuration"),
        (client_error("ProvisionedThroughputExceededException"), "retryable"),
        (client_error("KMSThrottlingException"), "retryable"),
        (client_error("InternalFailure", 500), "retryable"),
        (client_error("ValidationException"), "permanent"),
        (EndpointConnectionError(endpoint_url="https://kinesis.eu-west-1.amazonaws.com"), "retryable"),
    ],
)
def test_a_calls_error_says_whether_to_retry(error: Exception, kind: str) -> None:
    fake = FakeKinesis()
    fake.errors = {1: error}
    with pytest.raises(DeliveryFailed) as failed:
        sender(fake).deliver(kinesis(), [entry(1, "a1", "ann")], NOW)
    assert failed.value.kind == kind and failed.value.delivered == ()


def test_an_error_after_a_partial_write_still_reports_what_was_written() -> None:
    # Given a call that writes ann's record and not bob's, then a network failure trying bob's again
    fake = FakeKinesis()
    fake.refuse = {"b1": ("ProvisionedThroughputExceededException", 1)}
    fake.errors = {2: EndpointConnectionError(endpoint_url="https://kinesis.eu-west-1.amazonaws.com")}
    # When the batch is delivered
    with pytest.raises(DeliveryFailed) as failed:
        sender(fake).deliver(kinesis(), [entry(1, "a1", "ann"), entry(2, "b1", "bob")], NOW)
    # Then the failure is retryable and ann's record counts as written: it is not sent again
    assert fake.calls == [["a1", "b1"], ["b1"]]
    assert failed.value.kind == "retryable"
    assert [e.message_id for e in failed.value.delivered] == ["a1"]


# ------------------------------------------------------------------------------ the forwarder
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Clicked",
        "messageId": message_id,
        "timestamp": "2026-12-07T08:59:00.000Z",
        **fields,
    }


def forwarder(target: Destination, fake: FakeKinesis) -> tuple[Forwarder, MemoryDestinationQueue, Clock]:
    definitions, queue, clock = MemoryDefinitions(), MemoryDestinationQueue(), Clock()
    definitions.save_document("DESTINATION", target)
    tokens = iter(range(1_000_000))
    run = Forwarder(definitions, queue, sender(fake), clock, new_token=lambda: str(next(tokens)), draw=lambda: 0.5)
    return run, queue, clock


def plenty() -> float:
    return 60.0


def test_a_partly_failed_call_keeps_the_failed_record_first_and_nothing_of_its_person_overtakes_it() -> None:
    # Given a stream that keeps throttling ann's first event, and ann's and bob's events queued
    fake = FakeKinesis()
    fake.refuse = {"ann-1": ("ProvisionedThroughputExceededException", 3)}
    run, queue, clock = forwarder(kinesis(), fake)
    for message in (
        AppliedEvents(profileId="ann", events=[track("ann-1"), track("ann-2")]),
        AppliedEvents(profileId="bob", events=[track("bob-1"), track("bob-2")]),
    ):
        run.accept([message])
    # When the destination is drained
    assert run.sweep(plenty) == {DEST: "backing_off"}
    # Then bob's first event is written, ann's waits at the head with everything after it,
    # and ann's second was never sent
    assert fake.stream == [("bob", "bob-1")]
    assert [e.message_id for e in queue.waiting(DEST, 10)] == ["ann-1", "ann-2", "bob-2"]
    stats = queue.stats(DEST)
    assert (stats.delivered, stats.retried, stats.attempts) == (1, 1, 1)
    assert stats.last_error is not None and "ProvisionedThroughputExceededException" in stats.last_error
    # When the backoff is over and the stream takes everything
    clock.now += timedelta(minutes=1)
    assert run.sweep(plenty) == {DEST: "emptied"}
    # Then every event was written once, each person's in order
    assert [m for _, m in fake.stream] == ["bob-1", "ann-1", "bob-2", "ann-2"]
    assert [m for k, m in fake.stream if k == "ann"] == ["ann-1", "ann-2"]
    assert (queue.stats(DEST).delivered, queue.stats(DEST).pending) == (4, 0)


def test_a_missing_stream_keeps_the_events_queued_until_it_exists() -> None:
    fake = FakeKinesis()
    fake.errors = {1: client_error("ResourceNotFoundException")}
    run, queue, clock = forwarder(kinesis(), fake)
    run.accept([AppliedEvents(profileId="ann", events=[track("ann-1")])])
    assert run.sweep(plenty) == {DEST: "backing_off"}
    assert queue.stats(DEST).pending == 1 and queue.failed == {}
    clock.now += timedelta(minutes=1)
    assert run.sweep(plenty) == {DEST: "emptied"}
    assert fake.stream == [("ann", "ann-1")]


def test_an_event_shaped_past_one_mib_is_a_failed_record_with_why() -> None:
    # Given a projection that repeats a 30 KB event 40 times (1.2 MB), and an event it fits
    copies = ", ".join(f"c{i}: @" for i in range(40))
    fake = FakeKinesis()
    run, queue, _ = forwarder(kinesis(transform="{" + copies + "}"), fake)
    big, small = track("big", properties={"note": "x" * 30_000}), track("small")
    # When both are accepted: the big one is refused when queued, as it came
    run.accept([AppliedEvents(profileId="ann", events=[big])])
    ((failed, why),) = queue.failed[DEST].values()
    assert failed.message_id == "big" and failed.payload == big
    assert why.startswith("the Kinesis record is ") and why.endswith("Kinesis takes at most 1 MiB (1,048,576 bytes)")
    assert queue.stats(DEST).pending == 0
    # And the small one goes, its projection whole
    run.accept([AppliedEvents(profileId="ann", events=[small])])
    run.sweep(plenty)
    assert fake.stream == [("ann", "small")]


def test_any_kind_refuses_an_event_shaped_past_what_its_queue_holds() -> None:
    # Given a webhook destination whose projection repeats a 30 KB event 15 times (450 KB)
    copies = ", ".join(f"c{i}: @" for i in range(15))
    hook = kinesis(kind="webhook", stream_arn=None, url="https://h.example.com/x", secret="s" * 16, batch_size=10)
    run, queue, _ = forwarder(hook.model_copy(update={"transform": "{" + copies + "}"}), FakeKinesis())
    run.accept([AppliedEvents(profileId="ann", events=[track("big", properties={"note": "x" * 30_000})])])
    ((_, why),) = queue.failed[DEST].values()
    assert why.startswith("the shaped event is ") and why.endswith("a destination's queue holds at most 350,000")
