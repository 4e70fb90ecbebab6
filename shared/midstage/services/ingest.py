"""The profile updater's use case: read what one unit of events touches, let logic/ingest.py
decide the write, commit it conditioned on the versions read, and retry from a fresh read when
another writer got there first. The ids, the pause between attempts and its jitter come from the
caller's wiring (defaults: random ids, a real sleep)."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from midstage.logic.archive.records import unit_records as archived_unit
from midstage.logic.identity import Identifier, identifiers_of, lookup_only
from midstage.logic.ingest import (
    MAX_ATTEMPTS,
    IdFactory,
    IngestSettings,
    Segments,
    UnitOutcome,
    WorkBudget,
    backoff_seconds,
    kept_long,
    merge_group,
    not_yet_seen,
    pending_markers,
    plan_write,
    refusal_records,
    repoints,
    unique_events,
    unit_identifiers,
)
from midstage.logic.profile import stamp_of
from midstage.models.profile import Profile, WritePlan
from midstage.observability import count, logger
from midstage.services.ports import ArchiveSink, PersonSuppressionLookup, Publisher


class Store(Protocol):
    def identity_owners(self, identifiers: Sequence[Identifier]) -> dict[Identifier, str]: ...
    def live_profiles(self, profile_ids: Sequence[str]) -> tuple[dict[str, Profile], dict[str, str]]: ...
    def existing_markers(self, marker_ids: Sequence[str]) -> dict[str, int]: ...
    def save(self, plan: WritePlan) -> None: ...
    def repoint_identities(self, identifiers: Sequence[Identifier], old_id: str, new_id: str) -> None: ...
    def put_markers(self, marker_ids: Sequence[str], profile_id: str, expires_at: int) -> None: ...
    def put_timeline_page(self, profile_id: str, events: Sequence[dict[str, Any]], expires_at: int) -> None: ...
    def put_merge_record(self, record: dict[str, Any]) -> None: ...


class Suppressed(PersonSuppressionLookup, Protocol):
    """Privacy requests' suppressions (adapters/privacy_store.py PersonSuppressions)."""

    def count_dropped(self, regulate_id: str, events: int) -> None: ...


class AppliedFeed(Protocol):
    """The destinations feed: one person's applied events, in the order applied (at least once)."""

    def put(self, profile_id: str, events: Sequence[dict[str, Any]]) -> None: ...


def random_id() -> str:
    return uuid.uuid4().hex


def process_unit(
    events: Sequence[dict[str, Any]],
    store: Store,
    publisher: Publisher,
    settings: IngestSettings,
    now: datetime,
    *,
    conflict: type[Exception],
    segments: Segments | None = None,
    archive: ArchiveSink | None = None,
    feed: AppliedFeed | None = None,
    suppressed: Suppressed | None = None,
    new_id: IdFactory = random_id,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> UnitOutcome:
    """Apply one unit of events exactly once. `conflict` is the store's retryable error.
    With `segments`, every write also brings the person's segment memberships up to date; with
    `archive`, the events applied, merges and segment transitions are archived after the commit;
    with `feed`, the events applied go to the destinations feed, as the bus gets them (at least once);
    with `suppressed`, events naming a person a privacy request suppressed are dropped and counted."""
    unique = unique_events(events)
    outcome = UnitOutcome(duplicates=len(events) - len(unique))
    fresh = not_yet_seen(unique, store.existing_markers(list(unique)), now)
    outcome.duplicates += len(unique) - len(fresh)
    if suppressed is not None and fresh:
        fresh = drop_suppressed(fresh, suppressed, settings, outcome)
    if not fresh:
        return outcome
    identifiers, lookups = unit_identifiers(fresh, settings.identity)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        outcome.attempts = attempt
        try:
            return _attempt(
                fresh, identifiers, lookups, store, publisher, settings, now, outcome, segments, archive, feed, new_id
            )
        except conflict:
            # Back off with jitter so two writers on one person stop colliding.
            sleep(backoff_seconds(attempt, draw()))
    raise RuntimeError(f"gave up after {MAX_ATTEMPTS} conflicting writes on one person")


def _attempt(
    fresh: dict[str, dict[str, Any]],
    identifiers: list[Identifier],
    lookups: list[Identifier],
    store: Store,
    publisher: Publisher,
    settings: IngestSettings,
    now: datetime,
    outcome: UnitOutcome,
    segments: Segments | None,
    archive: ArchiveSink | None,
    feed: AppliedFeed | None,
    new_id: IdFactory,
) -> UnitOutcome:
    owners = store.identity_owners(identifiers + [i for i in lookups if i not in identifiers])
    live, resolved = store.live_profiles(sorted(set(owners.values())))
    merge = merge_group(identifiers, lookups, owners, live, resolved, settings.identity, now, new_id)
    # Markers are read after the profiles (see plan_write).
    pending = pending_markers(merge.survivor, now, settings)
    markers = store.existing_markers(sorted(set(fresh) | set(pending)))
    write = plan_write(merge, fresh, pending, markers, settings, now, new_id, segments)
    if write.changed:
        store.save(write.plan)
    merge.survivor.version = write.version_after

    # After the commit: everything below is idempotent and safe to repeat on redelivery.
    for identifiers_moved, old_id, new_profile_id in repoints(merge):
        store.repoint_identities(identifiers_moved, old_id, new_profile_id)
    for record in refusal_records(merge, fresh, now):
        store.put_merge_record(record)
    # The outbox's entries and this unit's events: published before the markers are written,
    # which is what lets the next write drop them from the outbox (stage_outbox).
    publisher.publish(write.publish)
    if archive is not None:
        batch = archived_unit(merge.survivor.id, write.applied + write.recovered, write.publish, now)
        archive.put(batch.records)
        outcome.unarchived = batch.refused
    if feed is not None:
        # Before the markers, as the bus: a crash before them recovers the events and feeds them again.
        feed.put(merge.survivor.id, sorted(write.applied + write.recovered, key=stamp_of))
    store.put_timeline_page(merge.survivor.id, write.timeline, write.timeline_expires)
    written = sorted(merge.survivor.pending)
    store.put_markers([m for m in written if not kept_long(m)], merge.survivor.id, write.markers_expire)
    imported = [m for m in written if kept_long(m)]
    if imported:
        store.put_markers(imported, merge.survivor.id, write.imported_markers_expire)

    outcome.profile_id = merge.survivor.id
    outcome.applied = len(write.applied)
    outcome.duplicates += write.duplicates
    outcome.merged = [loser.id for loser in merge.losers]
    outcome.refused = [r["reason"] for r in merge.refusals]
    return outcome


def drop_suppressed(
    fresh: dict[str, dict[str, Any]], suppressed: Suppressed, settings: IngestSettings, outcome: UnitOutcome
) -> dict[str, dict[str, Any]]:
    """The events that name no suppressed identifier; the others are counted on the request that
    suppressed them and kept nowhere (no profile, timeline, bus, archive or marker)."""
    named = {
        marker: identifiers_of(event, settings.identity) + lookup_only(event, settings.identity)
        for marker, event in fresh.items()
    }
    held = suppressed.matching({i for identifiers in named.values() for i in identifiers})
    if not held:
        return fresh
    dropped: Counter[str] = Counter()
    for identifiers in named.values():
        by = sorted(held[i] for i in identifiers if i in held)
        if by:
            dropped[by[0]] += 1
    for regulate_id, events in sorted(dropped.items()):
        suppressed.count_dropped(regulate_id, events)
    outcome.suppressed = sum(dropped.values())
    return {m: e for m, e in fresh.items() if not any(i in held for i in named[m])}


def apply_within_budget(
    events: list[dict[str, Any]],
    budget: WorkBudget,
    remaining_s: Callable[[], float],
    timer: Callable[[], float],
    apply: Callable[[list[dict[str, Any]]], UnitOutcome],
    applied: Callable[[UnitOutcome], None],
) -> list[dict[str, Any]]:
    """Applies `events` in pieces as large as the invocation's time left allows (`budget` learns
    each piece's cost from `timer`); returns the events there was no time for, to hand back."""
    left = events
    while left:
        size = budget.next_piece(remaining_s(), len(left))
        if size == 0:
            return left
        piece, left = left[:size], left[size:]
        started = timer()
        outcome = apply(piece)
        budget.spent(len(piece), timer() - started)
        applied(outcome)
    return []


def count_applied(outcome: UnitOutcome) -> None:
    """A unit's figures as metrics and one log line."""
    count(EventsApplied=outcome.applied, DuplicateEvents=outcome.duplicates, ProfilesMerged=len(outcome.merged))
    count(MergesRefused=len(outcome.refused), WriteConflicts=outcome.attempts - 1, Unarchived=len(outcome.unarchived))
    count(SuppressedEventsDropped=outcome.suppressed)
    if outcome.unarchived:
        logger.warning("facts not archived", profile_id=outcome.profile_id, reasons=outcome.unarchived[:5])
    logger.info("events applied", profile_id=outcome.profile_id, applied=outcome.applied, duplicates=outcome.duplicates)
