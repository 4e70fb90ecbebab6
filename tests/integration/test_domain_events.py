"""The profile updater's domain events, read back from a queue subscribed to the bus."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.adapters.bus import EventPublisher
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic.ingest import IngestSettings
from midstage.services.ingest import process_unit
from tests.integration.conftest import Stack
from tests.support.fakes import MemoryArchive

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def subscribe(stack: Stack) -> str:
    sqs, events = stack.clients.sqs(), stack.clients.events()
    url = sqs.create_queue(QueueName="bus-listener")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.output("EventBusName")
    events.put_rule(Name="everything", EventBusName=bus, EventPattern=json.dumps({"source": ["midstage"]}))
    events.put_targets(Rule="everything", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return url


def received(stack: Stack, url: str) -> list[dict[str, Any]]:
    seen = []
    while messages := stack.clients.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            seen.append(json.loads(message["Body"]))
            stack.clients.sqs().delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return seen


def event(kind: str, mid: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "sourceId": "src", "timestamp": "2026-11-22T10:00:00.000Z", **fields}


def test_tracked_updated_and_merged_events_reach_the_bus(stack: Stack) -> None:
    url = subscribe(stack)
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    bus = EventPublisher(stack.output("EventBusName"), client=stack.clients.events())
    settings = IngestSettings(IdentitySettings(), ComputedTraitSettings())

    process_unit(
        [event("track", "m1", anonymousId="a1", event="Viewed")], store, bus, settings, NOW, conflict=ConcurrentWrite
    )
    process_unit(
        [event("identify", "m2", userId="u1", traits={"plan": "pro"})],
        store,
        bus,
        settings,
        NOW,
        conflict=ConcurrentWrite,
    )
    process_unit(
        [event("identify", "m3", userId="u1", anonymousId="a1")], store, bus, settings, NOW, conflict=ConcurrentWrite
    )

    by_type: dict[str, list[dict[str, Any]]] = {}
    for envelope in received(stack, url):
        assert envelope["source"] == "midstage"
        by_type.setdefault(envelope["detail-type"], []).append(envelope["detail"])
    assert [d["event"]["messageId"] for d in by_type["event.tracked"]] == ["m1", "m2", "m3"]
    merged = by_type["identity.merged"]
    assert len(merged) == 1
    assert merged[0]["trigger_message_id"] == "m3"
    assert "anonymous_id:a1" in merged[0]["identifiers"]
    changes = [d["changes"] for d in by_type["profile.updated"]]
    assert {"plan": "pro"} in [c.get("traits") for c in changes]
    assert any("anonymous_id:a1" in c.get("identities_added", []) for c in changes)


def test_applied_events_and_merges_are_archived_on_the_survivor(stack: Stack) -> None:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    bus = EventPublisher(stack.output("EventBusName"), client=stack.clients.events())
    settings = IngestSettings(IdentitySettings(), ComputedTraitSettings())
    archive = MemoryArchive()

    for unit in (
        [event("track", "m1", anonymousId="a2", event="Viewed")],
        [event("identify", "m2", userId="u2", traits={"plan": "pro"})],
        [event("identify", "m3", userId="u2", anonymousId="a2")],
    ):
        process_unit(unit, store, bus, settings, NOW, conflict=ConcurrentWrite, archive=archive)

    assert [r.kind for r in archive.records] == ["event", "event", "event", "identity_merged"]
    merged = archive.records[-1]
    assert merged.merged_profile_id != merged.profile_id  # type: ignore[attr-defined]
    assert archive.records[2].profile_id == merged.profile_id  # the merging event lands on the survivor


def test_an_event_whose_archive_put_failed_is_archived_when_its_unit_is_redelivered(stack: Stack) -> None:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    bus = EventPublisher(stack.output("EventBusName"), client=stack.clients.events())
    settings = IngestSettings(IdentitySettings(), ComputedTraitSettings())
    archive = MemoryArchive()
    unit = [event("track", "m9", userId="u9", event="Viewed"), event("track", "m10", userId="u9", event="Added")]

    # When the archive is unreachable, the unit fails after its commit
    archive.fail = 1
    with pytest.raises(ConnectionError):
        process_unit(unit, store, bus, settings, NOW, conflict=ConcurrentWrite, archive=archive)
    # Then its redelivery finds the events applied but not finished, and archives them
    process_unit(unit, store, bus, settings, NOW, conflict=ConcurrentWrite, archive=archive)
    # and a plain duplicate afterwards archives nothing more
    process_unit(unit, store, bus, settings, NOW, conflict=ConcurrentWrite, archive=archive)

    assert sorted((r.kind, r.message_id) for r in archive.records) == [("event", "m10"), ("event", "m9")]  # type: ignore[attr-defined]
