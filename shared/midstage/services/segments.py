"""Segment memberships over stored profiles: the scheduled sweep, backfills and estimates.

The profile updater keeps memberships current on every write (logic/ingest.py). What no event
can notice is time passing ("no order in 30 days"), a definition that changed, or a segment
that is new: a refresh re-evaluates stored profiles, writes the ones whose memberships or
time-dependent computed traits moved, and publishes what changed. A refresh loses quietly to a
concurrent event write, which re-evaluates the same person anyway.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from midstage import keys
from midstage.config import ComputedTraitSettings
from midstage.logic import profile as profile_logic
from midstage.logic.conditions import Facts, compile_condition
from midstage.logic.ingest import segment_events
from midstage.logic.segments import TIME_DEPENDENT_COMPUTED, SegmentSet, estimate
from midstage.logic.timefmt import iso
from midstage.models.messages import RefreshKind, RefreshPart
from midstage.models.profile import Profile
from midstage.models.segments import Segment
from midstage.services.compiled import CompiledCache
from midstage.services.ports import Documents, PartQueue, ProfilePages, Publisher

# Computed traits that move with time alone; the sweep recomputes them.
TIME_DEPENDENT = tuple(sorted(TIME_DEPENDENT_COMPUTED))
ESTIMATE_PARTS = 64


class RefreshableProfiles(ProfilePages, Protocol):
    """Pages of profiles, each written back only if nothing changed it meanwhile, and the markers
    that confirm a write's domain events went out. `tagged` counts the profiles a scan of the
    whole table put into the index of live profiles; once a sweep finds none, scans read the index."""

    tagged: int

    def put_profile_if_unchanged(self, profile: Profile) -> bool: ...
    def existing_markers(self, marker_ids: Iterable[str]) -> dict[str, int]: ...
    def put_marker_owners(self, owners: Mapping[str, str], expires_at: int) -> None: ...
    def index_ready_since(self) -> datetime | None: ...
    def mark_index_ready(self, found_at: datetime) -> datetime: ...


class SegmentCatalog:
    """The segment definitions in force, compiled once per set of versions and container."""

    def __init__(self, config: Documents, *, max_window_days: int = 90) -> None:
        self.config = config
        self.max_window_days = max_window_days
        # A segment's condition may name other segments, so the set compiles them together.
        self._compiled: CompiledCache[Segment, Segment, SegmentSet] = CompiledCache(
            "segment", lambda segment: segment, lambda segments: SegmentSet(segments, max_window_days=max_window_days)
        )

    def current(self) -> SegmentSet:
        return self._compiled.get(self.config.documents(keys.SEGMENT_PK, Segment))

    def evaluate(self, profile: Profile, now: datetime) -> dict[str, str]:
        return self.current().evaluate(profile, now)


# ------------------------------------------------------------------------------ refresh
@dataclass
class Refreshed:
    changed: bool
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def refresh(profile: Profile, segments: SegmentSet, now: datetime, traits: ComputedTraitSettings) -> Refreshed:
    """Bring one stored profile up to date with time: its time-dependent computed traits and its
    memberships. Mutates `profile`; the caller writes it when `changed`."""
    before_computed, before_segments = profile.computed, dict(profile.segments)
    after = profile_logic.compute(profile, now, traits)
    # Judged on the computed traits as of `now`: "30 days since the last order" is decided by
    # the days_since_last_order computed here, not by the one stored at the last write.
    profile.computed = after
    memberships = segments.evaluate(profile, now)
    moved = {k: before_computed.get(k) for k in TIME_DEPENDENT} != {k: after.get(k) for k in TIME_DEPENDENT}
    if not moved and memberships == before_segments:
        return Refreshed(False)
    profile.segments = memberships
    stamp = iso(now)
    profile.updated_at = stamp
    events: list[tuple[str, dict[str, Any]]] = []
    if before_computed.get("lifecycle_stage") != after.get("lifecycle_stage"):
        events.append(
            (
                "profile.updated",
                {
                    "profileId": profile.id,
                    "version": profile.version + 1,
                    "changes": {"computed": {"lifecycle_stage": after.get("lifecycle_stage")}},
                },
            )
        )
    events.extend(segment_events(profile.id, before_segments, memberships, stamp, profile.version + 1))
    return Refreshed(True, stage_sweep_outbox(profile, events, now))


@dataclass
class PartResult:
    scanned: int = 0
    changed: int = 0
    tagged: int = 0  # profiles put into the index of live profiles (a scan of the whole table)
    cursor: dict[str, Any] | None = None
    finished: bool = False


def refresh_part(
    store: RefreshableProfiles,
    publisher: Publisher,
    segments: SegmentSet,
    traits: ComputedTraitSettings,
    part: int,
    total: int,
    now: datetime,
    *,
    cursor: dict[str, Any] | None = None,
    deadline: float | None = None,
    on_profile: Callable[[Profile], Iterable[tuple[str, dict[str, Any]]]] | None = None,
    on_page: Callable[[PartResult], None] | None = None,
    started: datetime | None = None,
) -> PartResult:
    """Refresh one slice of a parallel scan, page by page, until done or `deadline` (monotonic
    seconds) passes; the result's cursor resumes it. `on_profile` adds domain events per person
    (journeys' date entries); `on_page` reports progress after each page."""
    result = PartResult(cursor=cursor)
    while True:
        tagged_before = store.tagged
        profiles, next_cursor = store.scan_page(part, total, result.cursor, started=started)
        page = PartResult(tagged=store.tagged - tagged_before)
        # A write's events are published after it, then confirmed by a marker: a crash between
        # the two leaves them in the profile's outbox, and this scan (or the person's next event
        # write) publishes them again, under the same ids.
        published, confirm = _unconfirmed(store, profiles)
        for profile in profiles:
            page.scanned += 1
            outcome = refresh(profile, segments, now, traits)
            if outcome.changed and store.put_profile_if_unchanged(profile):
                page.changed += 1
                published.extend(outcome.events)
                confirm.update({m: profile.id for m in sweep_markers(profile) if m not in confirm})
            if on_profile is not None:
                published.extend(on_profile(profile))
        if published:
            publisher.publish(published)
        if confirm:
            store.put_marker_owners(confirm, int(now.timestamp()) + SWEEP_MARKER_KEEP_S)
        result.scanned += page.scanned
        result.changed += page.changed
        result.tagged += page.tagged
        result.cursor = next_cursor
        result.finished = next_cursor is None
        if on_page is not None:
            page.cursor, page.finished = next_cursor, result.finished
            on_page(page)
        if result.finished or (deadline is not None and time.monotonic() > deadline):
            return result


class JobProgress(Protocol):
    def progress(
        self, job_id: str, *, part: int, scanned: int, changed: int, part_done: bool, now: datetime, tagged: int = 0
    ) -> dict[str, Any]:
        """Add a page's figures; answers the job as it now stands."""
        ...


def record_progress(
    jobs: JobProgress,
    store: RefreshableProfiles,
    job_id: str,
    part: int,
    page: PartResult,
    now: datetime,
    *,
    found_at: datetime,
) -> dict[str, Any]:
    """Add a page's figures to its job. After a sweep's last part: a sweep that read the whole
    table and had no profile to tag proves every live profile is in the index (a fresh
    deployment's first sweep; an upgraded one's second, the first having tagged what was written
    before), so scans read the index from an hour after `found_at` on."""
    job = jobs.progress(
        job_id,
        part=part,
        scanned=page.scanned,
        changed=page.changed,
        tagged=page.tagged,
        part_done=page.finished,
        now=now,
    )
    swept_clean = job.get("kind") == "sweep" and job.get("state") == "done" and job.get("tagged", 0) == 0
    if swept_clean and store.index_ready_since() is None:
        store.mark_index_ready(found_at)
    return job


SWEEP_SOURCE = "$sweep"  # the marker namespace of the sweep's writes ("$" is no source id's)
SWEEP_MARKER_KEEP_S = 7 * 86_400


def stage_sweep_outbox(
    profile: Profile, events: list[tuple[str, dict[str, Any]]], now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """Name the events of the sweep's write of `profile` and keep them in its outbox under one
    pending marker, as the profile updater keeps its own (logic/ingest.stage_outbox): the entries
    leave once the marker exists, which is written only after they were published. Entries of
    earlier sweep writes already confirmed are dropped (`_unconfirmed` found them)."""
    if not events:
        return []
    version = profile.version + 1
    marker = f"{SWEEP_SOURCE}|{profile.id}:{version}"
    named: list[tuple[str, dict[str, Any]]] = []
    for index, (kind, detail) in enumerate(events):
        event_id = hashlib.sha256(f"sweep|{profile.id}|{version}|{index}".encode()).hexdigest()[:32]
        entry = {**detail, "eventId": event_id}
        profile.outbox[event_id] = {"kind": kind, "detail": entry, "markers": [marker]}
        named.append((kind, entry))
    profile.pending[marker] = int(now.timestamp())
    return named


def sweep_markers(profile: Profile) -> list[str]:
    return [m for m in profile.pending if m.startswith(SWEEP_SOURCE + "|")]


def _unconfirmed(
    store: RefreshableProfiles, profiles: list[Profile]
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """The events of earlier sweep writes on this page that were never confirmed (to publish
    again, and confirm), after dropping from each profile those that were (so a write of it now
    carries them no more). One batch read, only for pages with such profiles."""
    owners = {m: p.id for p in profiles for m in sweep_markers(p)}
    if not owners:
        return [], {}
    confirmed = set(store.existing_markers(sorted(owners)))
    again: list[tuple[str, dict[str, Any]]] = []
    for profile in profiles:
        for event_id, entry in list(profile.outbox.items()):
            markers = [m for m in entry.get("markers", []) if m.startswith(SWEEP_SOURCE + "|")]
            if not markers:
                continue
            if all(m in confirmed for m in markers):
                del profile.outbox[event_id]
            else:
                again.append((entry["kind"], entry["detail"]))
        for marker in confirmed & set(sweep_markers(profile)):
            del profile.pending[marker]
    return again, {m: owner for m, owner in owners.items() if m not in confirmed}


# ------------------------------------------------------------------------------ refresh jobs
class Jobs(Protocol):
    def create(self, job_id: str, doc: Mapping[str, Any], parts: int, now: datetime) -> bool:
        """False when the job exists already."""
        ...


def start_refresh(
    jobs: Jobs,
    queue: PartQueue,
    job_id: str,
    doc: Mapping[str, Any],
    parts: int,
    now: datetime,
    *,
    as_of: datetime | None = None,
) -> bool:
    """Start a refresh over every profile: a job with progress, one queue message per part of
    the scan (the refresh_segments function works them). `as_of` fixes the time the parts judge
    by (a sweep's schedule time); without it each part uses its own clock. False when the job
    exists already: a schedule that fires twice starts one sweep."""
    if not jobs.create(job_id, doc, parts, now):
        return False
    # The job's kind says what its parts do: a sweep also enters people into dated journeys.
    kind: RefreshKind = "refresh.sweep" if doc.get("kind") == "sweep" else "refresh.segment"
    at = iso(as_of) if as_of is not None else None
    queue.send_bodies(
        [
            RefreshPart(kind=kind, job_id=job_id, part=p, total=parts, as_of=at, started_at=iso(now)).body()
            for p in range(parts)
        ]
    )
    return True


# ------------------------------------------------------------------------------ estimate
def estimate_condition(
    store: ProfilePages,
    condition: Mapping[str, Any],
    now: datetime,
    *,
    budget_s: float = 3.0,
    sample_size: int = 10,
    max_window_days: int = 90,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """How many profiles a condition matches: random slices of the key space are scanned until
    the time budget runs out, then the count is extrapolated (exact when every slice was read)."""
    compiled = compile_condition(dict(condition), max_window_days=max_window_days)
    order = list(range(ESTIMATE_PARTS))
    (rng or random.Random()).shuffle(order)
    deadline = time.monotonic() + budget_s
    scanned = matched = parts = 0
    sample: list[dict[str, Any]] = []
    for part in order:
        cursor: dict[str, Any] | None = None
        while True:
            profiles, cursor = store.scan_page(part, ESTIMATE_PARTS, cursor, limit=1000, started=now)
            for profile in profiles:
                scanned += 1
                if compiled.test(Facts(profile=profile, event=None, now=now)):
                    matched += 1
                    if len(sample) < sample_size:
                        sample.append({"id": profile.id, "lifecycle_stage": profile.computed.get("lifecycle_stage")})
            if cursor is None:
                break
        parts += 1
        if time.monotonic() > deadline:
            break
    return {**estimate(matched, scanned, parts, ESTIMATE_PARTS), "sample": sample}
