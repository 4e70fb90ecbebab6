"""Destination throughput: events per second forwarded to a real HTTP server on this machine.

The forwarder's whole path (services/destinations.py: filter, projection, numbering, queueing,
the lease, signed batches over HTTP through the guarded opener, the queue's bookkeeping) on one
core, a feed message of 10 events of one person at a time, as the FIFO queue hands them over:

1. with the queue in memory (tests/support/fakes.py): what the forwarder and HTTP cost;
2. with the queue in DynamoDB (adapters/destination_store.py) on moto in-process, 200 events:
   the same plus the store's calls (per feed message and destination: one counter update, one
   batch write, and per drain a lease, a state read, queue reads, deletes and a figures update).
   moto's cost per call is not DynamoDB's (a few ms over the network on AWS, against moto's
   in-process Python): read it as the store's share, not as an AWS figure.

Figures are events per second (median of three runs) for webhook batches of 1, 20 and 100.

3. to a Kinesis Data Stream on moto in-process (PutRecords, batch 500, queue in memory): a feed
   message at a time (10 events of one person: ten calls, since a call holds one record per
   person), and a backlog of the same events from 50 people drained at once (calls of 50).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from midstage.adapters.destination_senders import DestinationSender
from midstage.logic.timefmt import iso
from midstage.models.destinations import Destination
from midstage.models.messages import AppliedEvents
from midstage.observability import metrics
from midstage.services.destinations import DestinationQueue, Forwarder
from tests.support.fakes import MemoryDefinitions, MemoryDestinationQueue
from tests.support.http_sink import Sink

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EVENTS = 2000
MOTO_EVENTS = 200  # moto's DynamoDB costs milliseconds a call in Python: fewer events, same shape
KINESIS_EVENTS = 1000
PER_MESSAGE = 10
RUNS = 3


def messages(count: int) -> list[AppliedEvents]:
    made = []
    for start in range(0, count, PER_MESSAGE):
        person = f"p{start // PER_MESSAGE % 50}"
        events = [
            {
                "type": "track",
                "event": "Order Completed",
                "messageId": f"m{start + i}",
                "userId": person,
                "timestamp": iso(NOW),
                "properties": {"order_id": f"o{start + i}", "revenue": 42.5, "products": [{"sku": "A", "price": 42.5}]},
                "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0", "library": {"name": "analytics.js"}},
            }
            for i in range(PER_MESSAGE)
        ]
        made.append(AppliedEvents(profileId=person, events=events))
    return made


def destination(url: str, batch_size: int) -> Destination:
    return Destination(
        id="dst_bench0000000",
        name="bench",
        kind="webhook",
        url=url,
        secret="dsec_bench-secret-0123456789",
        batch_size=batch_size,
        filter={"path": "event.name", "op": "eq", "value": "Order Completed"},
        transform="{order: properties.order_id, revenue: properties.revenue, person: userId}",
        created_at=iso(NOW),
        updated_at=iso(NOW),
    )


def forward(queue: DestinationQueue, target: Destination, feed: list[AppliedEvents]) -> float:
    """Seconds to accept and deliver `feed`, a message at a time, as the feed triggers do."""
    definitions = MemoryDefinitions()
    definitions.save_document("DESTINATION", target)
    forwarder = Forwarder(definitions, queue, DestinationSender(allow_local=True), lambda: NOW)
    started = time.perf_counter()
    for message in feed:
        for touched in forwarder.accept([message]):
            forwarder.drain(touched, lambda: 60.0)
        metrics.clear_metrics()  # a function flushes them per invocation; here they would pile up
    return time.perf_counter() - started


def rate(run: Callable[[], float], events: int) -> tuple[float, float]:
    rates = [events / run() for _ in range(RUNS)]
    return statistics.median(rates), max(rates) - min(rates)


def moto_queue() -> tuple[Any, Callable[[], DestinationQueue]]:
    """A DynamoDB table shaped as the DataTable, on moto in-process; a fresh store per run."""
    from moto import mock_aws

    from midstage.adapters import aws
    from midstage.adapters.destination_store import DestinationStore

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    mocked = mock_aws()
    mocked.start()
    aws._client.cache_clear()
    tables = iter(range(100))

    def fresh() -> DestinationQueue:
        name = f"bench-data-{next(tables)}"
        aws.dynamodb().create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        return DestinationStore(name)

    return mocked, fresh


def kinesis_destination(stream_arn: str) -> Destination:
    return Destination(
        id="dst_bench0000kinesis",
        name="bench",
        kind="kinesis",
        stream_arn=stream_arn,
        batch_size=500,
        filter={"path": "event.name", "op": "eq", "value": "Order Completed"},
        created_at=iso(NOW),
        updated_at=iso(NOW),
    )


def backlog(target: Destination, feed: list[AppliedEvents]) -> float:
    """Seconds to accept all of `feed`, then drain it in one go (a destination back from an outage)."""
    definitions = MemoryDefinitions()
    definitions.save_document("DESTINATION", target)
    forwarder = Forwarder(definitions, MemoryDestinationQueue(), DestinationSender(), lambda: NOW)
    started = time.perf_counter()
    for message in feed:
        forwarder.accept([message])
        metrics.clear_metrics()
    assert forwarder.drain(target, lambda: 600.0) == "emptied"
    metrics.clear_metrics()
    return time.perf_counter() - started


def kinesis_figures(feed: list[AppliedEvents]) -> None:
    """Kinesis on moto in-process, the queue in memory: what the forwarder's Kinesis path costs."""
    from midstage.adapters import aws

    mocked, _ = moto_queue()
    try:
        streams = iter(range(100))

        def stream() -> str:
            name = f"bench-{next(streams)}"
            aws.kinesis("us-east-1").create_stream(StreamName=name, ShardCount=4)
            summary = aws.kinesis("us-east-1").describe_stream_summary(StreamName=name)
            return str(summary["StreamDescriptionSummary"]["StreamARN"])

        few = feed[: KINESIS_EVENTS // PER_MESSAGE]
        events = len(few) * PER_MESSAGE
        one_by_one = rate(lambda: forward(MemoryDestinationQueue(), kinesis_destination(stream()), few), events)
        at_once = rate(lambda: backlog(kinesis_destination(stream()), few), events)
        print(f"{KINESIS_EVENTS} events to a Kinesis stream on moto in-process, queue in memory, batch 500 (events/s)")
        print(f"  a feed message at a time: {one_by_one[0]:>8,.0f}  (spread {one_by_one[1]:,.0f})")
        print(f"  a backlog drained at once: {at_once[0]:>7,.0f}  (spread {at_once[1]:,.0f})")
    finally:
        mocked.stop()


def main() -> None:
    feed = messages(EVENTS)
    with Sink(keep_bodies=False) as sink:
        url = sink.url + "/hook"
        print(f"{EVENTS} events in messages of {PER_MESSAGE}, filtered and reshaped, to a local HTTP sink (events/s)")
        for batch in (1, 20, 100):
            median, spread = rate(lambda b=batch: forward(MemoryDestinationQueue(), destination(url, b), feed), EVENTS)
            print(f"  queue in memory,        batch {batch:>3}: {median:>8,.0f}  (spread {spread:,.0f})")
        mocked, fresh = moto_queue()
        try:
            few = feed[: MOTO_EVENTS // PER_MESSAGE]
            for batch in (20, 100):
                median, spread = rate(lambda b=batch: forward(fresh(), destination(url, b), few), MOTO_EVENTS)
                print(f"  queue in DynamoDB/moto, batch {batch:>3}: {median:>8,.0f}  (spread {spread:,.0f})")
        finally:
            mocked.stop()
        requests = len(sink.received)
    print(f"  requests answered by the sink: {requests:,}")
    kinesis_figures(feed)


if __name__ == "__main__":
    main()
