"""The profile updater's time budget, through the real handler on moto: work it does not start
goes back to the queue as partial batch failures, and what it applied is never applied twice."""

from __future__ import annotations

import json
from typing import Any

from midstage.adapters.profile_store import ProfileStore
from tests.integration.conftest import Context, Stack


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


def test_records_past_the_budget_go_back_to_the_queue_and_are_applied_once_later(stack: Stack) -> None:
    # Given three people's units in one batch, and an invocation whose time runs out after the first
    updater = stack.load("ProfileUpdaterFunction")
    records = [record(f"m{n}", {"v": 1, "events": events(f"p{n}", 50, "a")}) for n in range(3)]
    tight = SteppingContext(start_ms=30_000, step_ms=10_000)

    # When the updater is invoked with all three
    first = updater.lambda_handler({"Records": records}, tight)

    # Then it applied the first and handed the others back, and their redelivery applies them
    assert first == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert views(stack, "p0") == (50, 50)
    again = updater.lambda_handler({"Records": records[1:]}, Context())
    assert again == {"batchItemFailures": []}
    assert [views(stack, f"p{n}") for n in range(3)] == [(50, 50)] * 3


def test_a_message_larger_than_a_unit_is_applied_in_pieces_across_invocations(stack: Stack) -> None:
    # Given a message of 250 events for one person (as written before units were bounded)
    updater = stack.load("ProfileUpdaterFunction")
    message = record("big", {"v": 1, "events": events("busy", 250, "b")})

    # When the first invocation runs out of time after one piece
    first = updater.lambda_handler({"Records": [message]}, SteppingContext(start_ms=30_000, step_ms=10_000))
    assert first == {"batchItemFailures": [{"itemIdentifier": "big"}]}
    assert views(stack, "busy")[0] == 100

    # Then the redelivered message applies the rest, and the first piece does not count twice
    assert updater.lambda_handler({"Records": [message]}, Context()) == {"batchItemFailures": []}
    assert views(stack, "busy")[0] == 250
    assert updater.lambda_handler({"Records": [message]}, Context()) == {"batchItemFailures": []}
    assert views(stack, "busy")[0] == 250
