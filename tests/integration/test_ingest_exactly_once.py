"""Exactly-once effects of the profile updater under redelivery, races and idle periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.adapters.bus import EventPublisher
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic.ingest import IngestSettings
from midstage.services.ingest import process_unit
from tests.integration.conftest import Stack

SETTINGS = IngestSettings(IdentitySettings(), ComputedTraitSettings())
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def unit(tag: str, n: int = 1, user: str = "ann") -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Viewed",
            "userId": user,
            "messageId": f"{tag}-{i}",
            "sourceId": "src",
            "timestamp": "2026-11-01T10:00:00.000Z",
            "receivedAt": "2026-11-01T10:00:00.000Z",
        }
        for i in range(n)
    ]


def parts(stack: Stack) -> tuple[ProfileStore, EventPublisher]:
    return (
        ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb()),
        EventPublisher(stack.output("EventBusName"), client=stack.clients.events()),
    )


def count(store: ProfileStore) -> int:
    profile = store.profile(store.identity_owners([("user_id", "ann")])[("user_id", "ann")])
    assert profile is not None
    return profile.event_counts["Viewed"]


class StaleFirstLook(ProfileStore):
    """A second container that looked for markers before the first container wrote them."""

    def __init__(self, real: ProfileStore) -> None:
        super().__init__(real.table, client=real.client)
        self.first_look = True

    def existing_markers(self, marker_ids: Any) -> dict[str, int]:
        if self.first_look:
            self.first_look = False
            return {}
        return super().existing_markers(marker_ids)


def test_a_duplicate_delivery_racing_a_later_write_is_not_counted_twice(stack: Stack) -> None:
    store, bus = parts(stack)
    process_unit(unit("U"), store, bus, SETTINGS, T0, conflict=ConcurrentWrite)  # container A
    process_unit(unit("V"), store, bus, SETTINGS, T0, conflict=ConcurrentWrite)  # confirms U's marker
    # Container B got U too, and checked markers before A wrote them.
    outcome = process_unit(unit("U"), StaleFirstLook(store), bus, SETTINGS, T0, conflict=ConcurrentWrite)
    assert outcome.applied == 0
    assert outcome.duplicates == 1
    assert count(store) == 2


def test_pending_ids_drain_for_people_seen_less_often_than_the_dedupe_window(stack: Stack) -> None:
    store, bus = parts(stack)
    for visit in range(6):
        process_unit(
            unit(f"visit{visit}", 20), store, bus, SETTINGS, T0 + timedelta(days=2 * visit), conflict=ConcurrentWrite
        )
    profile = store.profile(store.identity_owners([("user_id", "ann")])[("user_id", "ann")])
    assert profile is not None
    assert sorted(profile.pending) == sorted(f"src|visit5-{i}" for i in range(20))
    assert profile.event_counts["Viewed"] == 120


def test_redelivering_a_unit_after_a_crash_before_its_markers_counts_it_once(stack: Stack) -> None:
    store, bus = parts(stack)

    class CrashBeforeMarkers(ProfileStore):
        def put_markers(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("the container died")

    crashing = CrashBeforeMarkers(store.table, client=store.client)
    with pytest.raises(ConnectionError):
        process_unit(unit("C", 3), crashing, bus, SETTINGS, T0, conflict=ConcurrentWrite)
    again = process_unit(unit("C", 3), store, bus, SETTINGS, T0, conflict=ConcurrentWrite)
    assert again.applied == 0
    assert count(store) == 3
    assert sorted(store.existing_markers([f"src|C-{i}" for i in range(3)])) == [f"src|C-{i}" for i in range(3)]


def test_a_duplicate_is_dropped_within_the_window_and_applied_after_it(stack: Stack) -> None:
    store, bus = parts(stack)
    process_unit(unit("W"), store, bus, SETTINGS, T0, conflict=ConcurrentWrite)
    process_unit(unit("X"), store, bus, SETTINGS, T0 + timedelta(hours=1), conflict=ConcurrentWrite)
    within = process_unit(unit("W"), store, bus, SETTINGS, T0 + timedelta(hours=23), conflict=ConcurrentWrite)
    assert (within.applied, within.duplicates) == (0, 1)
    after = process_unit(unit("W"), store, bus, SETTINGS, T0 + timedelta(hours=25), conflict=ConcurrentWrite)
    assert after.applied == 1  # the window (24 h by default) is the promise, and its limit
    assert count(store) == 3
