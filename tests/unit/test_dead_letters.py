"""Dead letters of each kind: why they failed, and where a redrive sends them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from midstage.errors import NotFound
from midstage.services.dead_letters import MANUAL_REPLAY, DeadLetters, DeadLetterSpec, parse_specs

DOMAIN_EVENT = {
    "version": "0",
    "id": "e-1",
    "detail-type": "event.tracked",
    "source": "midstage",
    "detail": {"profileId": "p1", "event": {"type": "track", "event": "Order Completed"}},
}


class FakeQueue:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.sent: list[tuple[str, str]] = []
        self.released: list[str] = []

    def depth(self) -> int:
        return len(self.messages)

    def receive(self, limit: int) -> list[dict[str, Any]]:
        return [dict(m, ReceiptHandle=f"rh-{m['MessageId']}") for m in self.messages[:limit]]

    def release(self, messages: Sequence[dict[str, Any]]) -> None:
        self.released.extend(m["MessageId"] for m in messages)

    def delete(self, message: dict[str, Any]) -> None:
        self.messages = [m for m in self.messages if m["MessageId"] != message["MessageId"]]

    def send_to(self, queue_url: str, message: dict[str, Any]) -> None:
        self.sent.append((queue_url, message["Body"]))


class FakeBus:
    def __init__(self) -> None:
        self.put_events: list[tuple[str, str, dict[str, Any]]] = []

    def put(self, source: str, detail_type: str, detail: str) -> None:
        self.put_events.append((source, detail_type, json.loads(detail)))


class Failures:
    def __init__(self, recorded: dict[str, dict[str, Any]]) -> None:
        self.recorded = recorded

    def many(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: self.recorded[i] for i in ids if i in self.recorded}


def letters(spec: DeadLetterSpec, queue: FakeQueue, bus: FakeBus, failures: Failures | None = None) -> DeadLetters:
    return DeadLetters([spec], lambda url: queue, failures or Failures({}), bus)


def message(message_id: str, body: Any, attributes: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "MessageId": message_id,
        "Body": json.dumps(body),
        "Attributes": {"SentTimestamp": "1795341600000", "ApproximateReceiveCount": "6"},
        "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()},
    }


def test_the_setting_names_each_queue_its_kind_and_its_source() -> None:
    specs = parse_specs(
        json.dumps({"ingest": ["u1", "u0"], "evaluate-rules": ["u2", "bus"], "x-failed": ["u3", "invocation"]})
    )
    assert specs == [
        DeadLetterSpec("ingest", "u1", "queue", "u0"),
        DeadLetterSpec("evaluate-rules", "u2", "bus"),
        DeadLetterSpec("x-failed", "u3", "invocation"),
    ]


def test_a_queue_dead_letter_shows_what_its_consumer_recorded_and_goes_back_to_its_source() -> None:
    queue = FakeQueue([message("m1", {"v": 1, "events": []})])
    failure = {"function": "profile-updater", "errorType": "ValueError", "errorMessage": "bad"}
    service = letters(DeadLetterSpec("ingest", "dlq", "queue", "src"), queue, FakeBus(), Failures({"m1": failure}))
    listed = service.messages("ingest", 10)
    assert listed["messages"][0]["error"] == failure
    assert listed["messages"][0]["sentAt"] == "2026-11-22T10:00:00+00:00"
    assert queue.released == ["m1"]  # listing takes nothing away
    assert service.redrive("ingest", 100, None)["redriven"] == 1
    assert queue.sent == [("src", json.dumps({"v": 1, "events": []}))]
    assert queue.messages == []


def test_a_bus_dead_letter_shows_eventbridges_error_and_goes_back_on_the_bus() -> None:
    attributes = {
        "ERROR_CODE": "SDK_CLIENT_ERROR",
        "ERROR_MESSAGE": "throttled",
        "RULE_ARN": "arn:r",
        "RETRY_ATTEMPTS": "20",
    }
    queue, bus = FakeQueue([message("m1", DOMAIN_EVENT, attributes)]), FakeBus()
    service = letters(DeadLetterSpec("evaluate-rules", "dlq", "bus"), queue, bus)
    error = service.messages("evaluate-rules", 10)["messages"][0]["error"]
    assert (error["errorType"], error["errorMessage"], error["retries"]) == ("SDK_CLIENT_ERROR", "throttled", "20")
    assert service.redrive("evaluate-rules", 10, None)["redriven"] == 1
    assert bus.put_events == [("midstage", "event.tracked", DOMAIN_EVENT["detail"])]


def test_a_failed_invocation_of_a_bus_event_goes_back_on_the_bus_and_a_schedules_is_left_for_a_person() -> None:
    record = {
        "timestamp": "2026-11-22T10:00:00.000Z",
        "requestContext": {"functionArn": "arn:f", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": DOMAIN_EVENT,
        "responsePayload": {"errorType": "RuntimeError", "errorMessage": "store down"},
    }
    scheduled = {**record, "requestPayload": {"campaignId": "c1", "scheduledTime": "2026-11-22T10:00:00Z"}}
    queue, bus = FakeQueue([message("m1", record), message("m2", scheduled)]), FakeBus()
    service = letters(DeadLetterSpec("x-failed", "dlq", "invocation"), queue, bus)
    error = service.messages("x-failed", 10)["messages"][0]["error"]
    assert (error["errorType"], error["errorMessage"], error["attempts"]) == ("RuntimeError", "store down", 3)
    answer = service.redrive("x-failed", 10, None)
    assert (answer["redriven"], answer["skipped"]) == (1, [{"id": "m2", "reason": MANUAL_REPLAY}])
    assert bus.put_events == [("midstage", "event.tracked", DOMAIN_EVENT["detail"])]
    assert [m["MessageId"] for m in queue.messages] == ["m2"]


def test_a_redrive_can_name_the_messages_it_moves() -> None:
    queue = FakeQueue([message("m1", {"v": 1}), message("m2", {"v": 1})])
    service = letters(DeadLetterSpec("ingest", "dlq", "queue", "src"), queue, FakeBus())
    assert service.redrive("ingest", 100, ["m2"])["redriven"] == 1
    assert [m["MessageId"] for m in queue.messages] == ["m1"]


def test_an_unknown_queue_is_not_found() -> None:
    service = letters(DeadLetterSpec("ingest", "dlq", "queue", "src"), FakeQueue([]), FakeBus())
    with pytest.raises(NotFound):
        service.messages("nope", 10)
