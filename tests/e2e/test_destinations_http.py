"""Destinations in the local cloud: events tracked over HTTP reach a real HTTP server on this
machine, as a destination made through the admin API, signed with the secret it answered; a
receiver that fails first gets them on the scheduled retry."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from midstage.logic import destinations as logic
from tests.e2e.conftest import Platform
from tests.support.http_sink import Sink


def test_tracked_events_reach_a_webhook_destination_signed_after_it_recovers(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    with Sink(status=503) as sink:
        # Given a webhook destination, made over the admin API, for this run's events only
        created = platform.admin(
            "POST",
            "/v1/destinations",
            {
                "name": f"warehouse-{run}",
                "kind": "webhook",
                "url": f"{sink.url}/hook",
                "filter": {"path": "event.properties.run", "op": "eq", "value": run},
                "batch_size": 10,
            },
        )
        assert created.status == 201, created.body
        destination_id, secret = created.body["id"], created.body["secret"]
        assert created.body["secret_set"] is True
        assert "secret" not in platform.admin("GET", f"/v1/destinations/{destination_id}").body
        # And a receiver that answers 503 for now
        # When two people are tracked
        batch = [
            {"type": "track", "event": f"Step {i}", "userId": f"{person}-{run}", "messageId": f"{person}-{run}-{i}"}
            | {"properties": {"run": run}, "timestamp": f"2026-11-22T09:0{i}:00Z"}
            for person in ("ann", "bob")
            for i in range(3)
        ]
        assert platform.track("/v1/batch", {"batch": batch}).status == 200
        platform.settle()
        # Then the destination was tried, refused, and keeps the events
        assert sink.received and sink.accepted() == []
        waiting = platform.admin("GET", f"/v1/destinations/{destination_id}/stats").body
        assert (waiting["pending"], waiting["delivered"], waiting["attempts"]) == (6, 0, 1)
        assert waiting["last_error"] == "destination answered HTTP 503 [503]"
        # When the receiver recovers and the minute schedule runs past the backoff
        sink.status = 200
        # (a minute at a time, up to the longest backoff: the retry comes when its backoff is over)
        for _ in range(12):
            platform.cloud.clock.advance(timedelta(minutes=1))
            platform.settle()
            if sink.accepted():
                break
        # Then every event arrived once, each person's in order, signed with the destination's secret
        accepted = sink.accepted()
        assert accepted, platform.admin("GET", f"/v1/destinations/{destination_id}/stats").body
        items = [item for request in accepted for item in json.loads(request.body)["batch"]]
        for person in ("ann", "bob"):
            mine = [i["messageId"] for i in items if i["event"]["userId"] == f"{person}-{run}"]
            assert mine == [f"{person}-{run}-{i}" for i in range(3)]
        assert len(items) == 6
        now = int(platform.cloud.clock.now().timestamp())
        for request in accepted:
            assert request.path == "/hook"
            assert logic.verify(request.headers["midstage-signature"], request.body, secret, now)
            assert not logic.verify(request.headers["midstage-signature"], request.body, secret + "x", now)
        # And the figures say so
        stats = platform.admin("GET", f"/v1/destinations/{destination_id}/stats").body
        assert (stats["delivered"], stats["pending"], stats["attempts"], stats["lag_seconds"]) == (6, 0, 0, 0)
        # When the destination is deleted, it is gone
        assert platform.admin("DELETE", f"/v1/destinations/{destination_id}").status == 204
        assert platform.admin("GET", f"/v1/destinations/{destination_id}").status == 404


def test_tracked_events_land_on_a_kinesis_stream_in_order_per_person(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    # Given a stream in the local cloud and a Kinesis destination on it, for this run's events only
    kinesis = platform.cloud.client("kinesis")
    kinesis.create_stream(StreamName=f"clicks-{run}", ShardCount=2)
    arn = kinesis.describe_stream_summary(StreamName=f"clicks-{run}")["StreamDescriptionSummary"]["StreamARN"]
    created = platform.admin(
        "POST",
        "/v1/destinations",
        {
            "name": f"clicks-{run}",
            "kind": "kinesis",
            "stream_arn": arn,
            "filter": {"path": "event.properties.run", "op": "eq", "value": run},
            "batch_size": 500,
        },
    )
    assert created.status == 201, created.body
    # When two people are tracked over HTTP
    batch = [
        {"type": "track", "event": f"Step {i}", "userId": f"{person}-{run}", "messageId": f"{person}-{run}-{i}"}
        | {"properties": {"run": run}, "timestamp": f"2026-11-22T09:0{i}:00Z"}
        for person in ("ann", "bob")
        for i in range(3)
    ]
    assert platform.track("/v1/batch", {"batch": batch}).status == 200
    platform.settle()
    # Then each event is one JSON line on the stream, once, each person's in order on one shard
    found: dict[str, list[str]] = {}
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in kinesis.get_records(ShardIterator=iterator, Limit=100, StreamARN=arn)["Records"]:
            assert record["Data"].endswith(b"\n")
            item = json.loads(record["Data"])
            assert record["PartitionKey"] == item["profileId"]
            found.setdefault(item["event"]["userId"], []).append(item["messageId"])
    assert found == {f"{p}-{run}": [f"{p}-{run}-{i}" for i in range(3)] for p in ("ann", "bob")}
    stats = platform.admin("GET", f"/v1/destinations/{created.body['id']}/stats").body
    assert (stats["delivered"], stats["pending"], stats["failed"]) == (6, 0, 0)
    assert platform.admin("DELETE", f"/v1/destinations/{created.body['id']}").status == 204
