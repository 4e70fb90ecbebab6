"""The profile updater's decisions are pure (logic/ingest.py) and its use case takes its ids, its
pause between attempts and the jitter from its wiring (services/ingest.py): given the same
inputs, the same profile, records and domain events come out."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic.identity import Identifier
from midstage.logic.ingest import (
    IMPORT_MARKER_DAYS,
    MAX_ATTEMPTS,
    IngestSettings,
    backoff_seconds,
    domain_events,
    marker_id,
    merge_group,
    pending_markers,
    plan_write,
    unit_identifiers,
)
from midstage.logic.internal_events import SOURCE_ID, imported_id
from midstage.models.profile import Profile, WritePlan
from midstage.services.ingest import process_unit

SETTINGS = IngestSettings(IdentitySettings(), ComputedTraitSettings())
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def track(message_id: str, user: str = "ann") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Viewed",
        "userId": user,
        "messageId": message_id,
        "sourceId": "src",
        "timestamp": "2026-11-01T10:00:00.000Z",
        "receivedAt": "2026-11-01T10:00:00.000Z",
    }


def ids(prefix: str) -> Any:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


class Conflict(Exception):
    pass


class MemoryStore:
    """Just enough of the profile store for one person: `conflicts` saves fail first."""

    def __init__(self, conflicts: int = 0) -> None:
        self.conflicts = conflicts
        self.owners: dict[Identifier, str] = {}
        self.profiles: dict[str, Profile] = {}
        self.markers: dict[str, int] = {}
        self.saved: list[WritePlan] = []

    def identity_owners(self, identifiers: Sequence[Identifier]) -> dict[Identifier, str]:
        return {i: self.owners[i] for i in identifiers if i in self.owners}

    def live_profiles(self, profile_ids: Sequence[str]) -> tuple[dict[str, Profile], dict[str, str]]:
        return {p: self.profiles[p] for p in profile_ids}, {p: p for p in profile_ids}

    def existing_markers(self, marker_ids: Sequence[str]) -> dict[str, int]:
        return {m: self.markers[m] for m in marker_ids if m in self.markers}

    def save(self, plan: WritePlan) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict
        self.saved.append(plan)
        self.profiles[plan.survivor.id] = plan.survivor
        for ident in plan.new_identities:
            self.owners[ident] = plan.survivor.id

    def repoint_identities(self, identifiers: Sequence[Identifier], old_id: str, new_id: str) -> None:
        pass

    def put_markers(self, marker_ids: Sequence[str], profile_id: str, expires_at: int) -> None:
        self.markers.update(dict.fromkeys(marker_ids, expires_at))

    def put_timeline_page(self, profile_id: str, events: Sequence[dict[str, Any]], expires_at: int) -> None:
        pass

    def put_merge_record(self, record: dict[str, Any]) -> None:
        pass


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.events.extend(events)


def test_a_new_person_gets_the_id_the_factory_gives_and_the_same_inputs_decide_the_same_write() -> None:
    # Given one event from a person nobody has seen, and an id factory
    fresh = {"src|m1": track("m1")}
    identifiers, lookups = unit_identifiers(fresh, SETTINGS.identity)

    def decide() -> tuple[Any, Any, Any]:
        merge = merge_group(identifiers, lookups, {}, {}, {}, SETTINGS.identity, NOW, ids("p"))
        pending = pending_markers(merge.survivor, NOW, SETTINGS)
        write = plan_write(merge, fresh, pending, {}, SETTINGS, NOW, ids("r"))
        merge.survivor.version = write.version_after
        return merge, write, domain_events(merge, write, NOW)

    # When the write is decided twice
    first, second = decide(), decide()
    # Then the survivor is the factory's id, the event is applied once, and both decisions agree
    merge, write, events = first
    assert merge.survivor.id == "p1"
    assert write.changed and write.version_after == 1 and len(write.applied) == 1
    assert [kind for kind, _ in events] == ["event.tracked", "profile.updated"]
    assert events == second[2]
    assert merge.survivor.to_doc() == second[0].survivor.to_doc()


def test_an_event_whose_marker_is_already_written_is_a_duplicate_not_applied() -> None:
    # Given a marker for the event, still in force
    fresh = {"src|m1": track("m1")}
    identifiers, lookups = unit_identifiers(fresh, SETTINGS.identity)
    merge = merge_group(identifiers, lookups, {}, {}, {}, SETTINGS.identity, NOW, ids("p"))
    markers = {"src|m1": int(NOW.timestamp()) + 60}
    # When the write is decided
    write = plan_write(merge, fresh, {}, markers, SETTINGS, NOW, ids("r"))
    # Then nothing is applied and the event counts as a duplicate
    assert write.applied == [] and write.duplicates == 1


def test_backoff_grows_with_the_attempt_and_stays_under_its_ceiling() -> None:
    assert backoff_seconds(1, 0.0) == 0.0
    assert backoff_seconds(1, 0.5) < backoff_seconds(3, 0.5) < backoff_seconds(6, 0.5)
    assert backoff_seconds(6, 0.99) == backoff_seconds(40, 0.99)


def test_conflicting_writes_wait_through_the_injected_sleep_and_retry_from_a_fresh_read() -> None:
    # Given a store whose first two saves lose to another writer
    store, bus, slept = MemoryStore(conflicts=2), Bus(), []
    # When a unit is processed with an injected sleep and jitter
    outcome = process_unit(
        [track("m1")],
        store,
        bus,
        SETTINGS,
        NOW,
        conflict=Conflict,
        new_id=ids("p"),
        sleep=slept.append,
        draw=lambda: 0.5,
    )
    # Then it waited twice, as the backoff says, and the third attempt committed
    assert slept == [backoff_seconds(1, 0.5), backoff_seconds(2, 0.5)]
    assert outcome.attempts == 3 and outcome.applied == 1
    assert len(store.saved) == 1 and outcome.profile_id == store.saved[0].survivor.id
    assert [kind for kind, _ in bus.events] == ["event.tracked", "profile.updated"]


def test_a_person_who_always_conflicts_is_given_up_after_the_attempt_limit() -> None:
    store, slept = MemoryStore(conflicts=MAX_ATTEMPTS), []
    with pytest.raises(RuntimeError, match="gave up"):
        process_unit(
            [track("m1")], store, Bus(), SETTINGS, NOW, conflict=Conflict, sleep=slept.append, draw=lambda: 0.0
        )
    assert len(slept) == MAX_ATTEMPTS and store.saved == []


def test_an_imported_records_marker_outlives_the_dedupe_window() -> None:
    # Given an event standing for a migrated record, and an ordinary one, both applied
    imported = {**track(imported_id("pinpoint", "userId", "ann", "device", "ep-1")), "sourceId": SOURCE_ID}
    ordinary = track("m1")
    store = MemoryStore()
    for event in (imported, ordinary):
        process_unit([event], store, Bus(), SETTINGS, NOW, conflict=Conflict, new_id=ids("p"))
    # When both come again a month later (a second export job, a replayed call)
    later = NOW + timedelta(days=30)
    again = [
        process_unit([event], store, Bus(), SETTINGS, later, conflict=Conflict, new_id=ids("q"))
        for event in (imported, ordinary)
    ]
    # Then the imported record is still known, while the ordinary event's window has passed
    assert (again[0].applied, again[0].duplicates) == (0, 1)
    assert again[1].applied == 1
    assert store.markers[marker_id(imported)] == int((NOW + timedelta(days=IMPORT_MARKER_DAYS)).timestamp())


def test_replayed_history_sets_first_and_last_seen_but_publishes_no_event_tracked() -> None:
    # Given a person's Pinpoint history replayed: a record from 2019 and one dated after the
    # replay (a device's wrong clock), and an event the platform emits on its own
    from midstage.logic.imports.pinpoint_events import plan_record
    from tests.support import pinpoint_stream as fx

    replay_time = "2026-11-01T12:00:00.000Z"
    old = plan_record(fx.EMAIL_SEND, replay_time).events[0]
    future = plan_record({**fx.EMAIL_DELIVERED, "event_timestamp": 1893456000000}, replay_time).events[0]  # 2030
    fresh = {f"{e['sourceId']}|{e['messageId']}": e for e in (old, future)}
    identifiers, lookups = unit_identifiers(fresh, SETTINGS.identity)
    merge = merge_group(identifiers, lookups, {}, {}, {}, SETTINGS.identity, NOW, ids("p"))

    # When the profile updater decides the write
    write = plan_write(merge, fresh, pending_markers(merge.survivor, NOW, SETTINGS), {}, SETTINGS, NOW, ids("r"))
    events = domain_events(merge, write, NOW)

    # Then both are applied and date the person's activity: firstSeen the oldest record, lastSeen
    # no later than the replay
    assert len(write.applied) == 2
    assert merge.survivor.first_seen == old["timestamp"] == "2019-08-01T00:17:01.380Z"
    assert merge.survivor.last_seen == replay_time
    # And no event.tracked goes to the bus, so no rule, journey or conversion reacts to them
    assert [kind for kind, _ in events] == ["profile.updated"]


def test_a_platform_event_that_is_not_replayed_still_moves_no_last_seen_and_is_published() -> None:
    from midstage.logic.internal_events import track as internal_track

    tagged = internal_track({"userId": "ann"}, "Tag Added", {"tag": "vip"}, message_id="ms-int-1", timestamp=iso_now())
    fresh = {f"{SOURCE_ID}|ms-int-1": tagged}
    identifiers, lookups = unit_identifiers(fresh, SETTINGS.identity)
    merge = merge_group(identifiers, lookups, {}, {}, {}, SETTINGS.identity, NOW, ids("p"))
    write = plan_write(merge, fresh, {}, {}, SETTINGS, NOW, ids("r"))
    assert merge.survivor.last_seen is None
    assert "event.tracked" in [kind for kind, _ in domain_events(merge, write, NOW)]


def test_a_client_cannot_mark_its_own_event_replayed() -> None:
    from midstage.logic.profile import is_replayed

    forged = {**track("m1"), "context": {"midstage": {"replayed": True}}}
    assert not is_replayed(forged)


def iso_now() -> str:
    return NOW.isoformat().replace("+00:00", "Z")
