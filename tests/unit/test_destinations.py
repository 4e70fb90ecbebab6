"""Destinations: which events go, in what shape, signed how, and what a failing destination does
to its queue (logic/destinations.py, services/destinations.py, services/admin/destinations.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from midstage.adapters.destination_senders import DestinationSender
from midstage.errors import InvalidInput, IssuesError, NotFound
from midstage.logic import destinations as logic
from midstage.logic.destinations import DeliveryFailed, Entry
from midstage.models.destinations import Destination, DestinationCreate, DestinationUpdate
from midstage.models.messages import AppliedEvents
from midstage.services.admin.destinations import DestinationAdmin
from midstage.services.destinations import Forwarder, forward_records
from tests.support.fakes import MemoryDefinitions, MemoryDestinationQueue

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SECRET = "dsec_unit-test-secret-0123456789"


def destination(**fields: Any) -> Destination:
    base: dict[str, Any] = {
        "id": "dst_unit0000test",
        "name": "hook",
        "kind": "webhook",
        "url": "https://hooks.example.com/in",
        "secret": SECRET,
        "created_at": "2026-12-07T08:00:00.000Z",
        "updated_at": "2026-12-07T08:00:00.000Z",
    }
    base.update(fields)
    return Destination.model_validate(base)


def track(message_id: str, name: str = "Order Completed", **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "userId": "ann",
        "timestamp": "2026-12-07T08:59:00.000Z",
        "properties": {"order_id": "o-1", "revenue": 42.5},
        "context": {"ip": "203.0.113.9"},
        **fields,
    }


def route(**fields: Any) -> logic.Route:
    return logic.compile_route(destination(**fields), max_window_days=90)


def entry(seq: int, message_id: str, profile_id: str = "p1") -> Entry:
    return Entry(logic.seq_of(seq), profile_id, message_id, {"messageId": message_id}, "2026-12-07T09:00:00.000Z")


# ------------------------------------------------------------------------------ filter and shape
def test_a_filter_forwards_only_the_events_it_matches() -> None:
    # Given a destination that takes only completed orders
    orders = route(filter={"path": "event.name", "op": "eq", "value": "Order Completed"})
    # When an order and a page view are shaped for it
    order = logic.shape(orders, track("m1"), NOW)
    page = logic.shape(orders, {"type": "page", "name": "Home", "messageId": "m2", "userId": "ann"}, NOW)
    # Then the order goes whole and the page view is filtered out
    assert order.payload == track("m1")
    assert page.filtered and page.payload is None and page.refused is None


def test_a_projection_reshapes_the_event_and_a_null_result_drops_it() -> None:
    # Given a projection that keeps an order's id and revenue, and only for orders
    shaped = route(transform="event == 'Order Completed' && {order: properties.order_id, revenue: properties.revenue}")
    # When an order and a signup are shaped
    order = logic.shape(shaped, track("m1"), NOW)
    signup = logic.shape(shaped, track("m2", name="Signed Up"), NOW)
    # Then the order is the projection, and the signup (a false result) is refused as no object
    assert order.payload == {"order": "o-1", "revenue": 42.5}
    assert signup.refused == "transform gave bool, not an object"
    # And a projection that yields null drops the event quietly
    dropped = logic.shape(route(transform="properties.missing"), track("m3"), NOW)
    assert dropped.filtered


def test_a_projection_that_fails_on_a_value_refuses_the_event_with_why() -> None:
    # Given a projection applying a numeric function to a text field
    failing = route(transform="{total: sum(properties.order_id)}")
    # When an event is shaped
    shaped = logic.shape(failing, track("m1"), NOW)
    # Then it is refused with the reason, not raised
    assert shaped.payload is None
    assert shaped.refused is not None and shaped.refused.startswith("transform failed:")


def test_a_segment_destination_keeps_what_segment_needs_whatever_the_projection() -> None:
    # Given a Segment destination whose projection keeps only the properties
    segment = route(kind="segment", url="https://api.segment.io", write_key="wk", transform="{properties: properties}")
    # When an event is shaped
    shaped = logic.shape(segment, track("m1"), NOW)
    # Then type, messageId, userId and timestamp survive, so Segment can accept and dedupe it
    assert shaped.payload == {
        "properties": {"order_id": "o-1", "revenue": 42.5},
        "type": "track",
        "messageId": "m1",
        "userId": "ann",
        "timestamp": "2026-12-07T08:59:00.000Z",
    }


def test_a_transform_that_is_not_jmespath_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        route(transform="properties.")
    assert refused.value.code == "invalid_destination"


def test_entries_are_numbered_from_the_counter_in_the_order_given() -> None:
    # Given three shaped events of two people, the second refused by its projection
    ok, bad = logic.Shaped(payload={"a": 1}), logic.Shaped(refused="transform gave int, not an object")
    kept = [("p1", track("m1"), ok), ("p2", track("m2"), bad), ("p1", track("m3"), ok)]
    # When they are numbered from 41
    taken, refused = logic.entries_for(kept, 41, NOW)
    # Then each keeps its place in the order, zero-padded so that text order is number order
    assert [(e.seq, e.profile_id, e.message_id) for e in taken] == [
        ("00000000000000000041", "p1", "m1"),
        ("00000000000000000043", "p1", "m3"),
    ]
    assert [(e.seq, why) for e, why in refused] == [("00000000000000000042", "transform gave int, not an object")]
    assert logic.seq_of(9) < logic.seq_of(10)


# ------------------------------------------------------------------------------ wire shapes
def test_a_segment_delivery_is_segments_batch_shape_with_the_write_key_as_basic_user() -> None:
    # Given two entries for a Segment-compatible destination
    entries = [
        Entry(logic.seq_of(1), "p1", "m1", {"type": "track", "event": "A", "messageId": "m1"}, "x"),
        Entry(logic.seq_of(2), "p1", "m2", {"type": "identify", "traits": {"plan": "pro"}, "messageId": "m2"}, "x"),
    ]
    # When the body and the authorization are made
    body = json.loads(logic.segment_body(entries, NOW))
    # Then the body is {"batch": [calls...], "sentAt"} and the write key is Basic's user, no password
    assert body == {
        "batch": [
            {"type": "track", "event": "A", "messageId": "m1"},
            {"type": "identify", "traits": {"plan": "pro"}, "messageId": "m2"},
        ],
        "sentAt": "2026-12-07T09:00:00.000Z",
    }
    assert logic.basic_auth("wk_abc") == "Basic " + base64.b64encode(b"wk_abc:").decode()
    assert logic.segment_url("https://api.example.com/") == "https://api.example.com/v1/batch"


def test_a_webhook_body_carries_each_events_message_id_person_and_shape() -> None:
    body = json.loads(logic.webhook_body([entry(1, "m1")], "dst_x", NOW))
    assert body == {
        "sentAt": "2026-12-07T09:00:00.000Z",
        "batch": [{"messageId": "m1", "profileId": "p1", "destinationId": "dst_x", "event": {"messageId": "m1"}}],
    }


def test_the_signature_is_hex_hmac_sha256_over_timestamp_dot_body_and_verifies() -> None:
    # Given a body signed at a moment
    body, stamp = b'{"batch":[]}', 1_796_000_000
    header = logic.sign(SECRET, body, stamp)
    # Then it is the documented recipe, computed here independently
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={stamp},v1={expected}"
    # And the reference check accepts it within five minutes, and nothing else
    assert logic.verify(header, body, SECRET, stamp + 299)
    assert not logic.verify(header, body, SECRET, stamp + 301)
    assert not logic.verify(header, body + b" ", SECRET, stamp)
    assert not logic.verify(header, body, SECRET + "x", stamp)
    assert not logic.verify("v1=" + expected, body, SECRET, stamp)


def test_the_idempotency_key_is_the_message_id_alone_and_a_stable_digest_for_a_batch() -> None:
    assert logic.idempotency_key([entry(1, "m1")]) == "m1"
    batch = [entry(1, "m1"), entry(2, "m2")]
    key = logic.idempotency_key(batch)
    assert key == logic.idempotency_key(list(batch)) and key.startswith("batch-")
    assert key != logic.idempotency_key([entry(1, "m1"), entry(2, "m3")])


def test_an_eventbridge_entry_is_one_event_on_the_named_bus() -> None:
    bus = "arn:aws:events:eu-west-1:123456789012:event-bus/lake"
    target = destination(kind="eventbridge", url=None, secret=None, bus_arn=bus, batch_size=10)
    (put,) = logic.eventbridge_entries([entry(1, "m1")], target)
    assert (put["EventBusName"], put["Source"], put["DetailType"]) == (bus, "midstage.destinations", "event")
    assert json.loads(put["Detail"])["messageId"] == "m1"


def test_the_retry_pause_doubles_from_thirty_seconds_and_stops_at_ten_minutes() -> None:
    assert [logic.retry_delay(n, 0.999999) for n in (1, 2, 3)] == pytest.approx([30, 60, 120], rel=1e-5)
    assert logic.retry_delay(1, 0.0) == 15
    assert logic.retry_delay(30, 0.999999) == pytest.approx(600, rel=1e-5)


# ------------------------------------------------------------------------------ the forwarder
class Receiver:
    """A destination that fails while `failing` says so, recording what it was given."""

    def __init__(self) -> None:
        self.failing: str | None = None  # None, "retryable" or "permanent"
        self.received: list[tuple[str, str]] = []  # (destination id, message id)
        self.calls = 0

    def deliver(self, target: Destination, entries: Sequence[Entry], now: datetime) -> None:
        self.calls += 1
        if self.failing:
            raise DeliveryFailed(self.failing, f"answered {self.failing}")
        self.received += [(target.id, e.message_id) for e in entries]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def forwarder(*targets: Destination) -> tuple[Forwarder, MemoryDestinationQueue, Receiver, Clock]:
    definitions = MemoryDefinitions()
    for target in targets:
        definitions.save_document("DESTINATION", target)
    queue, receiver, clock = MemoryDestinationQueue(), Receiver(), Clock()
    tokens = iter(range(1_000_000))
    made = Forwarder(definitions, queue, receiver, clock, new_token=lambda: str(next(tokens)), draw=lambda: 0.5)
    return made, queue, receiver, clock


def feed(profile_id: str, *message_ids: str) -> AppliedEvents:
    return AppliedEvents(profileId=profile_id, events=[track(m) for m in message_ids])


def plenty() -> float:
    return 60.0


def test_a_failing_destination_keeps_everything_and_delivers_it_in_order_once_it_recovers() -> None:
    # Given a destination answering with retryable failures
    run, queue, receiver, clock = forwarder(destination(batch_size=2))
    receiver.failing = "retryable"
    # When two people's events arrive, in three messages, while it fails
    for message in (feed("p1", "a1", "a2"), feed("p2", "b1"), feed("p1", "a3")):
        for touched in run.accept([message]):
            run.drain(touched, plenty)
    # Then nothing was delivered, nothing lost, and the destination waits out a backoff
    assert receiver.received == []
    stats = queue.stats("dst_unit0000test")
    assert (stats.pending, stats.attempts, stats.last_error) == (4, 1, "answered retryable")
    assert run.sweep(plenty) == {"dst_unit0000test": "backing_off"}
    calls_while_backing_off = receiver.calls
    # When it recovers and the backoff is over
    receiver.failing = None
    clock.now += timedelta(minutes=1)
    assert run.sweep(plenty) == {"dst_unit0000test": "emptied"}
    # Then everything arrives once, each person's events in order
    assert receiver.calls == calls_while_backing_off + 2
    assert [m for _, m in receiver.received] == ["a1", "a2", "b1", "a3"]
    stats = queue.stats("dst_unit0000test")
    assert (stats.delivered, stats.pending, stats.attempts, stats.retried) == (4, 0, 0, 2)


def test_a_permanent_refusal_moves_its_batch_to_the_failed_records_and_the_rest_goes_on() -> None:
    # Given a destination that refuses the first batch it is given, then accepts
    run, queue, receiver, _ = forwarder(destination(batch_size=1))
    refusals = iter([True])

    def deliver(target: Destination, entries: Sequence[Entry], now: datetime) -> None:
        if next(refusals, False):
            raise DeliveryFailed("permanent", "answered HTTP 422")
        receiver.received += [(target.id, e.message_id) for e in entries]

    run.sender = type("Sender", (), {"deliver": staticmethod(deliver)})()
    # When three events are forwarded
    (touched,) = run.accept([feed("p1", "m1", "m2", "m3")])
    assert run.drain(touched, plenty) == "emptied"
    # Then the first is a failed record with why, and the others were delivered
    assert [m for _, m in receiver.received] == ["m2", "m3"]
    assert [(e.message_id, why) for e, why in queue.failed["dst_unit0000test"].values()] == [
        ("m1", "answered HTTP 422")
    ]
    # And a redrive puts it back, to be delivered on the next drain
    assert queue.redrive("dst_unit0000test", 10, NOW) == 1
    assert run.drain(touched, plenty) == "emptied"
    assert [m for _, m in receiver.received] == ["m2", "m3", "m1"]


def test_a_paused_destination_keeps_queueing_and_delivers_nothing_until_enabled() -> None:
    run, queue, receiver, _ = forwarder(destination(enabled=False))
    run.accept([feed("p1", "m1")])
    assert run.sweep(plenty) == {"dst_unit0000test": "paused"}
    assert receiver.calls == 0 and queue.stats("dst_unit0000test").pending == 1


def test_an_event_that_waited_past_the_retry_window_goes_to_the_failed_records() -> None:
    # Given an event queued while the destination failed
    run, queue, receiver, clock = forwarder(destination())
    receiver.failing = "retryable"
    run.accept([feed("p1", "m1")])
    # When the destination recovers 73 hours later (the window is 72)
    receiver.failing = None
    clock.now += timedelta(hours=73)
    run.sweep(plenty)
    # Then the event is a failed record saying why, and was not delivered
    assert receiver.received == []
    ((_, why),) = queue.failed["dst_unit0000test"].values()
    assert why == "not delivered within 72 h of retries"


def test_one_failing_destination_does_not_hold_another() -> None:
    run, _, receiver, _ = forwarder(destination(), destination(id="dst_unit0000other", url="https://other.example"))

    def deliver(target: Destination, entries: Sequence[Entry], now: datetime) -> None:
        if target.id == "dst_unit0000test":
            raise DeliveryFailed("retryable", "answered HTTP 503")
        receiver.received += [(target.id, e.message_id) for e in entries]

    run.sender = type("Sender", (), {"deliver": staticmethod(deliver)})()
    forward_records(run, [{"messageId": "q1", "body": feed("p1", "m1").body()}], plenty)
    assert receiver.received == [("dst_unit0000other", "m1")]


def test_a_drain_that_finds_the_lease_taken_leaves_the_queue_to_its_holder() -> None:
    run, queue, receiver, clock = forwarder(destination())
    (touched,) = run.accept([feed("p1", "m1")])
    assert queue.acquire("dst_unit0000test", "someone-else", clock(), timedelta(minutes=2))
    assert run.drain(touched, plenty) == "busy"
    assert receiver.calls == 0 and queue.stats("dst_unit0000test").pending == 1


def test_a_record_that_is_not_a_feed_message_fails_with_every_record_after_it() -> None:
    # Given a FIFO batch whose second record is not a feed message
    run, queue, _, _ = forwarder(destination())
    records = [
        {"messageId": "q1", "body": feed("p1", "m1").body()},
        {"messageId": "q2", "body": '{"kind": "something.else"}'},
        {"messageId": "q3", "body": feed("p1", "m3").body()},
    ]
    # When it is forwarded
    why: list[tuple[str, str]] = []
    answer = forward_records(run, records, plenty, lambda record, error: why.append((record["messageId"], str(error))))
    # Then the first is delivered, and the second and the third go back (a group may not skip ahead)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "q2"}, {"itemIdentifier": "q3"}]}
    assert queue.stats("dst_unit0000test").delivered == 1
    # And why the second failed is kept for its dead letter; the third only waits behind it
    assert why == [("q2", "not a destinations feed message: profileId: Field required")]


def test_filtered_events_are_counted_and_never_queued() -> None:
    run, queue, _, _ = forwarder(destination(filter={"path": "event.name", "op": "eq", "value": "Nope"}))
    assert run.accept([feed("p1", "m1", "m2")]) == []
    stats = queue.stats("dst_unit0000test")
    assert (stats.filtered, stats.pending) == (2, 0)


# ------------------------------------------------------------------------------ addresses refused
@pytest.mark.parametrize(
    ("url", "allow_local", "why"),
    [
        ("http://hooks.example.com/in", False, "must use https"),
        ("http://127.0.0.1:8080/in", False, "must use https"),
        ("https://10.1.2.3/in", False, "private, loopback or reserved"),
        ("https://169.254.169.254/latest", True, "private, loopback or reserved"),
        ("https://127.0.0.1/in", False, "private, loopback or reserved"),
    ],
)
def test_a_delivery_to_a_private_address_is_refused_for_good(url: str, allow_local: bool, why: str) -> None:
    # Given a webhook destination pointing at an address deliveries must never reach
    target = destination(url=url)
    # When a delivery is attempted (the address is refused before any connection)
    with pytest.raises(DeliveryFailed) as refused:
        DestinationSender(allow_local=allow_local).deliver(target, [entry(1, "m1")], NOW)
    # Then it is a permanent failure saying why: the events go to the failed records, not round and round
    assert refused.value.permanent and why in refused.value.reason


# ------------------------------------------------------------------------------ the admin service
def admin(allow_local: bool = False) -> tuple[DestinationAdmin, MemoryDefinitions, MemoryDestinationQueue]:
    definitions, queue = MemoryDefinitions(), MemoryDestinationQueue()
    made = DestinationAdmin(
        definitions,
        queue,
        DestinationSender(allow_local=allow_local).check_url,
        max_window_days=90,
        clock=lambda: NOW,
        new_id=lambda: "dst_made0000test",
        new_secret=lambda: "dsec_drawn-secret-0123456789",
    )
    return made, definitions, queue


def test_a_webhook_destination_gets_a_secret_shown_once_and_never_again() -> None:
    service, _, _ = admin()
    created = service.create_destination(DestinationCreate(name="n", kind="webhook", url="https://h.example.com/x"))
    assert created["secret"] == "dsec_drawn-secret-0123456789" and created["secret_set"] is True
    shown = service.get_destination("dst_made0000test")
    assert "secret" not in shown and shown["secret_set"] is True
    assert "secret" not in json.dumps(service.list_destinations()).replace("secret_set", "")


def test_a_segment_destinations_write_key_is_never_answered() -> None:
    service, _, _ = admin()
    body = DestinationCreate(name="n", kind="segment", url="https://api.segment.io", write_key="wk_very_private")
    created = service.create_destination(body)
    assert "wk_very_private" not in json.dumps(created) and created["write_key_set"] is True


def test_a_destination_whose_filter_does_not_compile_is_refused_with_where() -> None:
    service, definitions, _ = admin()
    bigger = {"path": "event.name", "op": "bigger", "value": 1}
    body = DestinationCreate(name="n", kind="webhook", url="https://h.example.com/x", filter=bigger)
    with pytest.raises(IssuesError) as refused:
        service.create_destination(body)
    assert refused.value.code == "invalid_destination"
    assert [i["location"] for i in refused.value.issues] == ["/filter/op"]
    assert definitions.docs == {}


def test_plain_http_is_refused_unless_local_development_allows_localhost() -> None:
    local = DestinationCreate(name="n", kind="webhook", url="http://localhost:9000/hook")
    with pytest.raises(IssuesError) as refused:
        admin(allow_local=False)[0].create_destination(local)
    assert refused.value.issues[0]["location"] == "/url"
    assert admin(allow_local=True)[0].create_destination(local)["url"] == "http://localhost:9000/hook"


def test_a_kind_without_its_target_is_a_body_error() -> None:
    with pytest.raises(ValueError, match="a segment destination needs write_key"):
        DestinationCreate.model_validate({"name": "n", "kind": "segment", "url": "https://api.segment.io"})
    with pytest.raises(ValueError, match="batch_size is at most 10"):
        DestinationCreate.model_validate(
            {"name": "n", "kind": "eventbridge", "bus_arn": "arn:aws:events:us-east-1:123456789012:event-bus/b"}
        )


def test_a_change_makes_a_new_version_and_null_clears_the_filter() -> None:
    service, _, _ = admin()
    typed = {"path": "event.type", "op": "exists", "value": True}
    service.create_destination(DestinationCreate(name="n", kind="webhook", url="https://h.example.com/x", filter=typed))
    changed = service.update_destination("dst_made0000test", DestinationUpdate.model_validate({"filter": None}))
    assert (changed["version"], changed["filter"]) == (2, None)
    with pytest.raises(InvalidInput):
        service.update_destination("dst_made0000test", DestinationUpdate.model_validate({"url": None}))


def test_deleting_a_destination_drops_its_queue_and_failed_records() -> None:
    service, _, queue = admin()
    service.create_destination(DestinationCreate(name="n", kind="webhook", url="https://h.example.com/x"))
    queue.append("dst_made0000test", [entry(1, "m1")])
    service.delete_destination("dst_made0000test")
    assert "dst_made0000test" not in queue.queued
    with pytest.raises(NotFound):
        service.stats("dst_made0000test")


def test_stats_report_the_lag_of_the_oldest_waiting_event() -> None:
    service, _, queue = admin()
    service.create_destination(DestinationCreate(name="n", kind="webhook", url="https://h.example.com/x"))
    queue.append("dst_made0000test", [Entry(logic.seq_of(1), "p1", "m1", {}, "2026-12-07T08:58:30.000Z")])
    stats = service.stats("dst_made0000test")
    assert (stats["pending"], stats["lag_seconds"], stats["oldest_pending_at"]) == (1, 90.0, "2026-12-07T08:58:30.000Z")


def test_a_scheduled_run_counts_a_retry_due_by_its_scheduled_time() -> None:
    # Given a destination backing off after a failure
    run, _, receiver, clock = forwarder(destination())
    receiver.failing = "retryable"
    run.accept([feed("p1", "m1")])
    run.sweep(plenty)
    receiver.failing = None
    assert run.sweep(plenty) == {"dst_unit0000test": "backing_off"}
    # When a run scheduled a minute later starts while this invocation's clock still reads earlier
    drained = run.sweep(plenty, scheduled=clock.now + timedelta(minutes=1))
    # Then the retry is due, and the event goes
    assert drained == {"dst_unit0000test": "emptied"}
    assert receiver.received == [("dst_unit0000test", "m1")]


def test_the_documented_verification_recipe_accepts_a_real_signature_and_nothing_else() -> None:
    # Given the recipe docs/integrations.md gives receivers, as written
    text = (Path(__file__).resolve().parents[2] / "docs" / "integrations.md").read_text()
    section = text.split("## Verifying a webhook destination's signature", 1)[1]
    recipe = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(recipe, "integrations.md", "exec"), scope)  # noqa: S102 - the documentation's own code
    verified = scope["verified"]
    # When a body is signed as the forwarder signs it, now (the recipe reads the receiver's clock)
    body = logic.webhook_body([entry(1, "m1")], "dst_x", NOW)
    header = logic.sign(SECRET, body, int(time.time()))
    # Then the recipe accepts it, and refuses a changed body, another secret and an old signature
    assert verified(header, body, SECRET)
    assert not verified(header, body.replace(b"m1", b"m2"), SECRET)
    assert not verified(header, body, SECRET + "x")
    assert not verified(logic.sign(SECRET, body, int(time.time()) - 600), body, SECRET)


class _Catalog:
    def __init__(self, answer: list[Any] | Exception) -> None:
        self.answer = answer

    def documents(self, kind: str, model: type[Any]) -> list[Any]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_feed_sends_nothing_without_a_destination_and_feeds_when_the_catalog_cannot_be_read() -> None:
    from midstage.adapters.destination_feed import DestinationFeed, destination_feed

    def feed(answer: list[Any] | Exception) -> DestinationFeed:
        made = destination_feed("https://sqs.example/q.fifo", catalog=cast(Any, _Catalog(answer)))
        assert isinstance(made, DestinationFeed) and made.wanted is not None
        return made

    assert feed([]).wanted() is False  # type: ignore[misc]
    assert feed([object()]).wanted() is True  # type: ignore[misc]
    # A document this version cannot parse must not fail the profile updater's units: feed
    assert feed(ValueError("destination doc does not validate")).wanted() is True  # type: ignore[misc]
