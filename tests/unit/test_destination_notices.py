"""Privacy notices to destinations (logic/destination_notices.py): their shape, their stable
messageId, and which destinations take one."""

from __future__ import annotations

from datetime import UTC, datetime

from midstage.logic import destinations as logic
from midstage.logic.destination_notices import notice, notice_message_id, supports, why_not
from midstage.models.destinations import Destination

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
REQUEST = {"regulateId": "reg_1", "regulationType": "SUPPRESS_ONLY", "receivedAt": "2026-11-22T09:00:00.000Z"}
STAMPS = {"created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z"}


def destination(kind: str, **fields: object) -> Destination:
    return Destination.model_validate({"id": "dst_abcdefgh", "name": kind, "kind": kind, **STAMPS, **fields})


def test_a_suppression_becomes_a_suppress_call_naming_everything_the_person_was_known_by() -> None:
    identities = {"user_id": ["u-2", "u-1"], "email": ["ann@example.com"], "anonymous_id": ["a-1"], "device": ["d"]}
    call = notice(REQUEST, "p-1", ["p-0"], identities, "dst_abcdefgh", NOW)
    assert (call["type"], call["userId"], call["timestamp"]) == ("suppress", "u-1", "2026-11-22T10:00:00.000Z")
    assert call["context"]["identifiers"] == {
        "profileIds": ["p-0", "p-1"],
        "userIds": ["u-1", "u-2"],
        "anonymousIds": ["a-1"],
        "emails": ["ann@example.com"],
        "phones": [],
    }
    assert call["context"]["regulation"]["regulateId"] == "reg_1"


def test_an_erasure_is_a_delete_call_and_a_person_without_user_id_is_named_by_anonymous_id() -> None:
    call = notice({**REQUEST, "regulationType": "DELETE_ONLY"}, "p-1", [], {"anonymous_id": ["a-1"]}, "dst_x", NOW)
    assert (call["type"], call["anonymousId"]) == ("delete", "a-1")
    assert "userId" not in call


def test_the_message_id_is_the_same_for_the_same_request_person_and_destination_only() -> None:
    first = notice_message_id("reg_1", "p-1", "dst_a")
    assert first == notice_message_id("reg_1", "p-1", "dst_a")
    assert len({first, notice_message_id("reg_2", "p-1", "dst_a"), notice_message_id("reg_1", "p-1", "dst_b")}) == 3


def test_webhooks_buses_and_streams_are_told_a_segment_endpoint_is_not_with_why() -> None:
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
    assert supports(destination("webhook", url="https://example.com", secret="s" * 16))
    assert supports(destination("kinesis", stream_arn=arn))
    segment = destination("segment", url="https://api.example.com", write_key="wk")
    assert not supports(segment)
    assert "Regulations API" in why_not(segment)


def test_an_eventbridge_destination_gets_the_notice_under_its_own_detail_type() -> None:
    bus = destination("eventbridge", bus_arn="arn:aws:events:us-east-1:123456789012:event-bus/b", batch_size=10)
    call = notice(REQUEST, "p-1", [], {"user_id": ["u-1"]}, bus.id, NOW)
    entry = logic.Entry("1", "p-1", call["messageId"], call, "2026-11-22T10:00:00.000Z")
    assert logic.eventbridge_entries([entry], bus)[0]["DetailType"] == "suppress"
