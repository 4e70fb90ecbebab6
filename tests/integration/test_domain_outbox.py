"""Domain events are published at least once, each under one id, whatever crashes in between.

The profile updater commits what only its write can tell (a merge, the profile's change, a
segment transition) in the profile's outbox, publishes after the commit, and drops an entry once
its unit's markers are written. These tests crash the updater between the commit and the bus and
check that nothing the write told is lost, and that a republished event keeps its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic.ingest import IngestSettings
from midstage.logic.segments import SegmentSet
from midstage.models.segments import Segment
from midstage.services.ingest import process_unit
from tests.integration.conftest import Stack

SETTINGS = IngestSettings(IdentitySettings(), ComputedTraitSettings())
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PRO = Segment(id="pro", name="Pro plan", condition={"path": "traits.plan", "op": "eq", "value": "pro"})
SEGMENTS = SegmentSet([PRO])


class Crash(Exception):
    """The function's process died here."""


class Bus:
    """Records what reaches the bus; `crash_next` makes the next publish die before sending."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.crash_next = False
        self.crash_after_next = False

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if self.crash_next:
            self.crash_next = False
            raise Crash("died between the profile write and PutEvents")
        self.sent.extend(events)
        if self.crash_after_next:
            self.crash_after_next = False
            raise Crash("died after PutEvents, before the markers were written")

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.sent]

    def distinct(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {detail["eventId"]: (kind, detail) for kind, detail in self.sent}


def event(kind: str, mid: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": mid, "sourceId": "src", "timestamp": "2026-11-22T10:00:00.000Z", **fields}


def apply(units: list[dict[str, Any]], store: ProfileStore, bus: Bus, at: datetime = NOW) -> None:
    process_unit(units, store, bus, SETTINGS, at, conflict=ConcurrentWrite, segments=SEGMENTS)


def merging_identify() -> list[dict[str, Any]]:
    """An identify that merges an anonymous visitor into a known person and puts them in `pro`."""
    return [event("identify", "m-merge", anonymousId="a1", userId="u1", traits={"plan": "pro"})]


@pytest.fixture
def store(stack: Stack) -> ProfileStore:
    return ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())


def seed_two_people(store: ProfileStore, bus: Bus) -> None:
    apply([event("track", "m-anon", anonymousId="a1", event="Viewed")], store, bus)
    apply([event("identify", "m-known", userId="u1", traits={"name": "Ann"})], store, bus)
    bus.sent.clear()


def crashed_merge(store: ProfileStore, *, after_put_events: bool = False) -> Bus:
    """Two people's profiles, then the merging write, with the function dying before (or just
    after) PutEvents; the bus that saw it."""
    bus = Bus()
    seed_two_people(store, bus)
    bus.crash_after_next, bus.crash_next = after_put_events, not after_put_events
    with pytest.raises(Crash):
        apply(merging_identify(), store, bus)
    return bus


def test_given_a_crash_after_the_write_when_the_unit_is_redelivered_then_every_event_it_told_is_published(
    store: ProfileStore,
) -> None:
    # Given a person's write that merges two profiles and enters a segment, and a crash before PutEvents
    bus = crashed_merge(store)
    assert bus.sent == []

    # When the queue redelivers the unit
    apply(merging_identify(), store, bus)

    # Then the merge, the profile's change and the segment entry are published, as well as the event
    kinds = sorted(kind for kind, _ in bus.distinct().values())
    assert kinds == sorted(["event.tracked", "identity.merged", "profile.updated", "segment.entered"])


def test_given_a_crash_after_the_write_when_another_unit_of_the_person_comes_first_then_it_publishes_the_left_over(
    store: ProfileStore,
) -> None:
    # Given a crash after the merging write, whose unit is not redelivered yet
    bus = crashed_merge(store)

    # When another unit of the same person is applied
    apply([event("track", "m-later", userId="u1", event="Viewed")], store, bus)

    # Then the crashed write's merge, change and entry go out with it
    assert {"identity.merged", "profile.updated", "segment.entered"} <= set(bus.kinds())


def test_given_a_republished_event_then_it_keeps_its_id_and_leaves_the_outbox_once_its_markers_are_written(
    store: ProfileStore,
) -> None:
    # Given a merging write whose events were published just before a crash, and its redelivery
    bus = crashed_merge(store, after_put_events=True)
    apply(merging_identify(), store, bus)

    # Then the merge went out twice, the second copy the same event under the same id
    merged = [detail for kind, detail in bus.sent if kind == "identity.merged"]
    assert len(merged) == 2
    assert len({detail["eventId"] for detail in merged}) == 1
    assert all(detail == merged[0] for detail in merged)

    # And when the person's next write comes, the confirmed entries leave the outbox and are not sent again
    bus.sent.clear()
    apply([event("track", "m-next", userId="u1", event="Viewed")], store, bus, NOW + timedelta(minutes=1))
    owner = store.identity_owners([("user_id", "u1")])[("user_id", "u1")]
    profile = store.profile(owner)
    assert profile is not None
    assert bus.kinds() == ["event.tracked"]
    assert profile.outbox == {}


def test_given_a_redelivered_event_then_its_event_tracked_has_the_same_id(store: ProfileStore) -> None:
    # Given an event applied, with a crash before the publish
    bus = Bus()
    bus.crash_next = True
    with pytest.raises(Crash):
        apply([event("track", "m-1", userId="u9", event="Viewed")], store, bus)
    # When it is redelivered twice (the second time its marker is written and it is a duplicate)
    apply([event("track", "m-1", userId="u9", event="Viewed")], store, bus)
    apply([event("track", "m-1", userId="u9", event="Viewed")], store, bus)
    # Then event.tracked went out once, under an id derived from the event's own
    tracked = [detail for kind, detail in bus.sent if kind == "event.tracked"]
    assert len(tracked) == 1
    again = Bus()
    apply([event("track", "m-1", userId="u10", event="Viewed")], store, again)
    assert again.sent == []  # same source and messageId: a duplicate, whichever person it names
