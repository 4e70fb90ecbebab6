"""The profile updater's time budget, through the real handler on moto: the events it has no
time for go back to the ingest queue as a new message (or, if the queue refuses, the record as
a partial batch failure), and what it applied is never applied twice."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from midstage.adapters.profile_store import ProfileStore
from tests.integration.conftest import Context, Stack


def each_piece_takes_a_second(monkeypatch: pytest.MonkeyPatch, updater: Any) -> None:
    """The handler's clock, made to read one second later at the end of each piece than at its start."""
    ticks = iter(range(10_000))
    monkeypatch.setattr(updater, "time", SimpleNamespace(monotonic=lambda: next(ticks) * 0.5))


class SteppingContext(Context):
    """A Lambda context whose remaining time drops by `step_ms` each time it is read: the
    invocation's clock, advanced by the handler's own reads, with no real waiting."""

    def __init__(self, start_ms: int, step_ms: int) -> None:
        self.left = start_ms
        self.step = step_ms

    def get_remaining_time_in_millis(self) -> int:
        now, self.left = self.left, self.left - self.step
        return now


def events(user: str, count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": user,
            "messageId": f"{tag}-{user}-{i}",
            "sourceId": "src_localdemo",
            "timestamp": "2026-11-01T10:00:00.000Z",
            "receivedAt": "2026-11-01T10:00:00.000Z",
        }
        for i in range(count)
    ]


def record(message_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


def views(stack: Stack, user: str) -> tuple[int, int]:
    """(Product Viewed count on the profile, events on the timeline)."""
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    owner = store.identity_owners([("user_id", user)])[("user_id", user)]
    profile = store.profile(owner)
    assert profile is not None
    timeline, _ = store.timeline([owner], limit=200, before=None)
    return profile.event_counts.get("Product Viewed", 0), len(timeline)


def queued(stack: Stack) -> list[dict[str, Any]]:
    """The ingest queue's messages, taken off it, as the updater's mapping would receive them."""
    url = stack.queue_urls[next(q.arn for q in stack.model.queues if q.logical_id == "IngestQueue")]
    sqs = stack.clients.sqs()
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            found.append(record(message["MessageId"], json.loads(message["Body"])))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_events_past_the_budget_go_back_to_the_queue_and_are_applied_once_later(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three people's units, a container that has measured nothing, pieces that take a
    # second each, and an invocation whose remaining time drops by 10 s at every look
    updater = stack.load("ProfileUpdaterFunction")
    each_piece_takes_a_second(monkeypatch, updater)
    records = [record(f"m{n}", {"v": 1, "events": events(f"p{n}", 50, "a")}) for n in range(3)]

    # When the updater is invoked with all three
    first = updater.lambda_handler({"Records": records}, SteppingContext(start_ms=30_000, step_ms=10_000))

    # Then it applied a probe piece of the first, and sent the rest back as new messages: no
    # record failed, so none of them counts a receive towards the dead-letter queue
    assert first == {"batchItemFailures": []}
    assert views(stack, "p0") == (10, 10)
    handed_back = queued(stack)
    assert sorted(len(json.loads(r["body"])["events"]) for r in handed_back) == [40, 50, 50]

    # And those messages, given time, are applied, the probe piece's events only once
    assert updater.lambda_handler({"Records": handed_back}, Context()) == {"batchItemFailures": []}
    assert [views(stack, f"p{n}") for n in range(3)] == [(50, 50)] * 3


def test_when_the_queue_refuses_the_rest_the_record_goes_back_as_a_failure(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an updater whose ingest queue cannot be reached
    updater = stack.load("ProfileUpdaterFunction")
    monkeypatch.setenv("INGEST_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue")
    each_piece_takes_a_second(monkeypatch, updater)
    message = record("big", {"v": 1, "events": events("busy", 250, "b")})

    # When it runs out of time after its first piece of a message of 250 events
    first = updater.lambda_handler({"Records": [message]}, SteppingContext(start_ms=30_000, step_ms=10_000))

    # Then the record goes back as a partial batch failure, nothing is dead-lettered as an error
    # of its own, and its redelivery applies the rest without counting the first piece twice
    assert first == {"batchItemFailures": [{"itemIdentifier": "big"}]}
    assert views(stack, "busy")[0] == 10
    assert updater.lambda_handler({"Records": [message]}, Context()) == {"batchItemFailures": []}
    assert views(stack, "busy")[0] == 250
    assert updater.lambda_handler({"Records": [message]}, Context()) == {"batchItemFailures": []}
    assert views(stack, "busy")[0] == 250
