"""Destinations through the real functions on moto: tracked events go through collect and the
profile updater, onto the destinations feed (the FIFO queue from template.yaml), and the
forwarder delivers them to a real HTTP server in this test, an EventBridge bus or a
Segment-compatible endpoint."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.destination_senders import DestinationSender
from midstage.adapters.destination_store import DestinationStore
from midstage.logic import destinations as logic
from midstage.logic.timefmt import iso
from midstage.models.destinations import DestinationCreate, DestinationStats
from midstage.services.admin.destinations import DestinationAdmin
from tests.integration.conftest import Context, Stack
from tests.integration.test_collect_retries import post
from tests.integration.test_handlers import demo_source, drain
from tests.support.http_sink import Received, Sink

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PEOPLE = ("ann", "bob", "cy")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Platform:
    """The stack with the tracking API, the profile updater and the forwarder, on one clock."""

    def __init__(self, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("WEBHOOK_ALLOW_LOCAL", "true")  # the sink is on 127.0.0.1
        demo_source(stack)
        self.stack = stack
        self.clock = Clock(T0)
        self.forwarder: ModuleType = stack.load("ForwardDestinationsFunction", self.clock)  # type: ignore[arg-type]
        dynamodb = stack.clients.dynamodb()
        self.state = DestinationStore(stack.output("DataTableName"), client=dynamodb)
        self.admin = DestinationAdmin(
            ConfigStore(stack.output("ConfigTableName"), cache_seconds=0, client=dynamodb),
            self.state,
            DestinationSender(allow_local=True).check_url,
            max_window_days=90,
            clock=self.clock,
        )
        self.sent: list[dict[str, Any]] = []

    def track(self, round_: int) -> None:
        """Two events per person, interleaved in one batch, through collect and the profile updater."""
        at = self.clock.now
        events = [
            {
                "type": "track",
                "event": "Order Completed" if i == 1 else "Product Viewed",
                "userId": person,
                "messageId": f"{person}-{round_}-{i}",
                "timestamp": iso(at - timedelta(seconds=10 - i)),
                "properties": {"round": round_, "step": i},
            }
            for i in range(2)
            for person in PEOPLE
        ]
        post(self.stack, "/v1/batch", {"batch": events, "sentAt": iso(at)}, at)
        updater = self.stack.load("ProfileUpdaterFunction", self.clock)  # type: ignore[arg-type]
        assert updater.lambda_handler({"Records": drain(self.stack)}, Context()) == {"batchItemFailures": []}
        self.sent += events
        self.forward()

    def forward(self) -> None:
        records = drain(self.stack, "DestinationsQueue")
        assert records, "the profile updater fed nothing to the destinations queue"
        assert self.forwarder.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}

    def sweep(self) -> dict[str, str]:
        answer = self.forwarder.lambda_handler({"scheduledTime": iso(self.clock.now)}, Context())
        drained: dict[str, str] = answer["drained"]
        return drained

    def stats(self, destination_id: str) -> DestinationStats:
        """The figures as the admin API answers them (lag included)."""
        answer = self.admin.stats(destination_id)
        assert answer.pop("destinationId") == destination_id
        return DestinationStats.model_validate(answer)

    def sent_by_person(self) -> dict[str, list[str]]:
        return {p: [e["messageId"] for e in self.sent if e["userId"] == p] for p in PEOPLE}


def delivered(requests: list[Received]) -> list[dict[str, Any]]:
    """The events of every accepted webhook request, in the order received."""
    return [item for r in requests for item in json.loads(r.body)["batch"]]


def by_person(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {p: [i["messageId"] for i in items if i["event"]["userId"] == p] for p in PEOPLE}


def test_without_a_destination_the_updater_feeds_nothing_and_the_first_one_is_fed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    updater = stack.load("ProfileUpdaterFunction", platform.clock)  # type: ignore[arg-type]
    post(stack, "/v1/track", {"type": "track", "event": "Product Viewed", "userId": "ann", "messageId": "m-1"}, T0)
    # Given no destination, when the updater applies an event
    assert updater.lambda_handler({"Records": drain(stack)}, Context()) == {"batchItemFailures": []}
    # Then the feed costs nothing: no message on the destinations queue
    assert drain(stack, "DestinationsQueue") == []
    # When a destination is made and the next event is applied
    with Sink() as sink:
        platform.admin.create_destination(DestinationCreate(name="wh", kind="webhook", url=sink.url + "/hook"))
        post(stack, "/v1/track", {"type": "track", "event": "Product Viewed", "userId": "ann", "messageId": "m-2"}, T0)
        updater = stack.load("ProfileUpdaterFunction", platform.clock)  # type: ignore[arg-type]  # its catalog, read now
        assert updater.lambda_handler({"Records": drain(stack)}, Context()) == {"batchItemFailures": []}
        # Then it is fed and forwarded
        platform.forward()
        assert [i["messageId"] for i in delivered(sink.accepted())] == ["m-2"]


def test_a_webhook_that_fails_for_an_hour_receives_every_event_once_in_order_per_person_after(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    with Sink(status=500) as sink:
        # Given a signed webhook destination that answers 500
        created = platform.admin.create_destination(
            DestinationCreate(name="warehouse", kind="webhook", url=sink.url + "/hook", batch_size=4)
        )
        destination_id, secret = created["id"], created["secret"]
        # When people keep being tracked for an hour, the scheduled run going every minute
        platform.track(0)
        for minute in range(1, 61):
            platform.clock.now = T0 + timedelta(minutes=minute)
            if minute % 15 == 0:
                platform.track(minute // 15)
            platform.sweep()
        # Then nothing was accepted, every event waits, and the tries backed off
        assert sink.accepted() == []
        failing = platform.stats(destination_id)
        assert failing.pending == len(platform.sent) == 30
        assert failing.last_error == "destination answered HTTP 500 [500]"
        assert failing.attempts >= 4 and failing.retried > 0 and failing.lag_seconds == 3600
        tries_during_outage = len(sink.received)
        assert 4 <= tries_during_outage < 30  # with backoff, far fewer than the 65 runs
        # When the destination recovers and the scheduled run keeps going
        sink.status = 200
        minute = 60
        while platform.stats(destination_id).pending and minute < 90:
            minute += 1
            platform.clock.now = T0 + timedelta(minutes=minute)
            platform.sweep()
        # Then every event arrived exactly once, each person's in the order tracked
        items = delivered(sink.accepted())
        assert Counter(i["messageId"] for i in items) == Counter(e["messageId"] for e in platform.sent)
        assert by_person(items) == platform.sent_by_person()
        # And every request was signed with the destination's secret and keyed by its events
        for request in sink.received:
            stamp = int(request.headers["midstage-signature"].split(",")[0][2:])
            assert logic.verify(request.headers["midstage-signature"], request.body, secret, stamp)
            ids = [i["messageId"] for i in json.loads(request.body)["batch"]]
            entries = [logic.Entry("", "", m, {}, "") for m in ids]
            assert request.headers["midstage-idempotency-key"] == logic.idempotency_key(entries)
        # And the figures say so
        recovered = platform.stats(destination_id)
        assert (recovered.delivered, recovered.pending, recovered.failed, recovered.attempts) == (30, 0, 0, 0)
        assert recovered.lag_seconds == 0


def test_a_refused_batch_becomes_failed_records_that_a_redrive_delivers(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    with Sink(status=422) as sink:
        # Given a destination that refuses what it is sent (a 4xx: the events, not the endpoint)
        created = platform.admin.create_destination(
            DestinationCreate(name="crm", kind="webhook", url=sink.url + "/hook", batch_size=10)
        )
        # When people are tracked
        platform.track(0)
        # Then the events are failed records at once, with why, and nothing waits
        stats = platform.stats(created["id"])
        assert (stats.failed_records, stats.pending, stats.failed) == (6, 0, 6)
        assert stats.last_error == "destination answered HTTP 422 [422]"
        # When the receiver is fixed and the failed records are redriven
        sink.status = 200
        assert platform.admin.redrive(created["id"], 1000) == {"destinationId": created["id"], "redriven": 6}
        platform.clock.now += timedelta(minutes=1)
        platform.sweep()
        # Then they arrive, once each, in their order
        items = delivered(sink.accepted())
        assert [i["messageId"] for i in items] == [e["messageId"] for e in sorted_as_applied(platform.sent)]
        assert platform.stats(created["id"]).failed_records == 0


def sorted_as_applied(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One batch's events as the profile updater feeds them: person by person, each by time."""
    return [e for person in PEOPLE for e in sorted(events, key=lambda e: e["timestamp"]) if e["userId"] == person]


def test_a_filtered_reshaped_segment_destination_gets_segments_batch_with_basic_auth(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    with Sink() as sink:
        # Given a Segment-compatible destination for completed orders, keeping only the step
        created = platform.admin.create_destination(
            DestinationCreate(
                name="other workspace",
                kind="segment",
                url=sink.url,
                write_key="wk_other_workspace",
                filter={"path": "event.name", "op": "eq", "value": "Order Completed"},
                transform="{event: event, properties: {step: properties.step}}",
            )
        )
        # When people are tracked
        platform.track(0)
        # Then one POST /v1/batch, authenticated with the write key, holds the three orders only
        (request,) = sink.accepted()
        assert request.path == "/v1/batch"
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"wk_other_workspace:").decode()
        body = json.loads(request.body)
        assert set(body) == {"batch", "sentAt"}
        assert body["batch"] == [
            {
                "event": "Order Completed",
                "properties": {"step": 1},
                "type": "track",
                "messageId": f"{person}-0-1",
                "userId": person,
                "timestamp": iso(T0 - timedelta(seconds=9)),
            }
            for person in PEOPLE
        ]
        stats = platform.stats(created["id"])
        assert (stats.delivered, stats.filtered) == (3, 3)


def test_an_eventbridge_destination_puts_each_event_on_the_other_bus(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(stack, monkeypatch)
    # Given another bus whose rule sends everything from Midstage's destinations to a queue
    events, sqs = stack.clients.client("events"), stack.clients.sqs()
    bus_arn = events.create_event_bus(Name="partner")["EventBusArn"]
    inbox = sqs.create_queue(QueueName="partner-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="partner", EventPattern=json.dumps({"source": ["midstage.destinations"]}))
    events.put_targets(Rule="all", EventBusName="partner", Targets=[{"Id": "inbox", "Arn": inbox_arn}])
    created = platform.admin.create_destination(
        DestinationCreate(name="lake", kind="eventbridge", bus_arn=bus_arn, batch_size=10)
    )
    # When people are tracked
    platform.track(0)
    # Then each event is on the other bus, once, with its messageId and person
    received = []
    while messages := sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(r["detail"]["messageId"] for r in received) == sorted(e["messageId"] for e in platform.sent)
    assert {(r["source"], r["detail-type"], r["detail"]["destinationId"]) for r in received} == {
        ("midstage.destinations", "track", created["id"])
    }
    assert platform.stats(created["id"]).delivered == 6
