"""The profile updater's decisions: one person's events in, one consistent profile write out.

A "unit" is the events of one hand-off message: one person-key's events from one request.
Correctness rests on three rules:
  * identity changes and the profile write commit together, conditioned on the versions read,
    and are retried from a fresh read on conflict (no lost updates, no two profiles per id);
  * an event counts once: its dedupe marker is checked before, and until the marker is known
    written its id stays in the profile's `pending` list, written atomically with its effect;
  * applying and merging are commutative (logic/profile.py), so order never matters;
  * a domain event is published at least once: what only the write can tell (merges, the
    profile's change, segment transitions) is committed with it in the profile's outbox and
    published after it until the unit's markers are known written (stage_outbox); every domain
    event carries an `eventId` that names it, so a consumer can tell a republication apart.

Everything here is pure: the reads, the write and the retries are services/ingest.py's, and ids
come from the factory the caller passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic import internal_events
from midstage.logic import profile as profile_logic
from midstage.logic.identity import Identifier, identifiers_of, limit_breach, lookup_only, priority_of
from midstage.logic.timefmt import iso
from midstage.models.profile import Profile, WritePlan

MAX_ATTEMPTS = 12
# How long an imported record's dedupe marker is kept (internal_events.imported_id): a migration
# exports and imports its records again weeks or months apart, and what was imported already
# must not count twice.
IMPORT_MARKER_DAYS = 400
# DynamoDB allows 100 items in a transaction; keep room for the survivor and the records.
MAX_TRANSACTION_ITEMS = 90

IdFactory = Callable[[], str]
DomainEvent = tuple[str, dict[str, Any]]


class Segments(Protocol):
    """The segment definitions in force (logic/segments.py SegmentSet)."""

    def evaluate(self, profile: Profile, now: datetime) -> dict[str, str]: ...


@dataclass(frozen=True)
class IngestSettings:
    identity: IdentitySettings
    traits: ComputedTraitSettings
    dedupe_window: timedelta = timedelta(hours=24)
    timeline_retention: timedelta = timedelta(days=90)


@dataclass
class UnitOutcome:
    profile_id: str | None = None
    applied: int = 0
    duplicates: int = 0
    merged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    attempts: int = 0
    unarchived: list[str] = field(default_factory=list)  # facts whose archive record could not be made
    suppressed: int = 0  # events dropped: they name a person a privacy request suppressed


def marker_id(event: Mapping[str, Any]) -> str:
    return f"{event['sourceId']}|{event['messageId']}"


def kept_long(marker: str) -> bool:
    """Whether a marker is an imported record's, kept IMPORT_MARKER_DAYS rather than the window."""
    return marker.startswith(f"{internal_events.SOURCE_ID}|{internal_events.IMPORTED_PREFIX}")


def unique_events(events: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The unit's events by marker id, the first of each kept."""
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        unique.setdefault(marker_id(event), event)
    return unique


def not_yet_seen(
    unique: Mapping[str, dict[str, Any]], seen: Mapping[str, int], now: datetime
) -> dict[str, dict[str, Any]]:
    """A cheap first filter for plain redeliveries: markers still in force are dropped. The
    authoritative check is plan_write's, against markers read after the profiles."""
    now_epoch = int(now.timestamp())
    return {m: e for m, e in unique.items() if seen.get(m, 0) <= now_epoch}


def unit_identifiers(
    fresh: Mapping[str, dict[str, Any]], settings: IdentitySettings
) -> tuple[list[Identifier], list[Identifier]]:
    """The identifiers the unit's events carry (to attach or merge by), and those only looked up."""
    identifiers: list[Identifier] = []
    lookups: list[Identifier] = []
    for event in fresh.values():
        for ident in identifiers_of(event, settings):
            if ident not in identifiers:
                identifiers.append(ident)
        lookups.extend(i for i in lookup_only(event, settings) if i not in lookups)
    return identifiers, lookups


def backoff_seconds(attempt: int, draw: float) -> float:
    """How long to wait before attempt+1 after a conflicting write: `draw` in [0, 1) spreads two
    writers on one person apart (jitter), the bound doubles per attempt up to a ceiling."""
    return draw * 0.005 * 2 ** min(attempt, 6)


def _rank(profile: Profile, settings: IdentitySettings) -> tuple[int, str, str]:
    """Who survives a merge: the best identifier, then the earliest activity (event time)."""
    best = min((priority_of(t, settings) for t, values in profile.identities.items() if values), default=99)
    return (best, profile.first_seen or profile.created_at, profile.id)


@dataclass
class _Resolution:
    survivor: Profile
    losers: list[Profile]
    attach: list[Identifier]
    refusals: list[dict[str, Any]]


def _resolve(
    identifiers: list[Identifier],
    lookups: list[Identifier],
    owner_of: dict[Identifier, str],
    live: dict[str, Profile],
    settings: IdentitySettings,
    stamp: str,
    new_id: IdFactory,
) -> _Resolution:
    """Walk identifiers from the highest priority down, growing one group of profiles and new
    identifiers while the group stays within every per-type limit and one transaction's size.
    A lower-priority identifier never displaces a higher one: what would break a limit is
    refused and recorded."""
    lookup_set = set(lookups) - set(identifiers)
    walk = sorted(set(identifiers) | lookup_set, key=lambda i: (priority_of(i[0], settings), i))
    held: dict[str, list[str]] = {}
    group: list[Profile] = []
    attach: list[Identifier] = []
    refusals: list[dict[str, Any]] = []
    items = 1  # the survivor's own write
    for ident in walk:
        label = f"{ident[0]}:{ident[1]}"
        owner = owner_of.get(ident)
        if owner is not None:
            joining = live[owner]
            if any(p.id == joining.id for p in group):
                continue
            breach = limit_breach(held, joining.identities, settings)
            reason = breach.reason() if breach else _over_budget(items + 2)
            if reason:
                refusals.append({"other": joining.id, "identifier": label, "reason": reason})
                continue
            group.append(joining)
            items += 2 if len(group) > 1 else 0  # a tombstone and a merge record
            for id_type, values in joining.identities.items():
                held[id_type] = sorted(set(held.get(id_type, [])) | set(values))
        elif ident not in lookup_set:
            breach = limit_breach(held, {ident[0]: [ident[1]]}, settings)
            reason = breach.reason() if breach else _over_budget(items + 1)
            if reason:
                refusals.append({"identifier": label, "reason": reason})
                continue
            held.setdefault(ident[0], []).append(ident[1])
            attach.append(ident)
            items += 1
    group.sort(key=lambda p: _rank(p, settings))
    survivor = group[0] if group else Profile(id=new_id(), created_at=stamp)
    return _Resolution(survivor, group[1:], attach, refusals)


def _over_budget(items: int) -> str | None:
    if items > MAX_TRANSACTION_ITEMS:
        return f"more than {MAX_TRANSACTION_ITEMS} identity changes in one write"
    return None


@dataclass
class Merge:
    """Who the unit's person is: the surviving profile with the others merged into it and the new
    identifiers attached, and what it was before (None: a new person)."""

    survivor: Profile
    losers: list[Profile]
    attach: list[Identifier]
    refusals: list[dict[str, Any]]
    before: Profile | None
    before_version: int
    loser_identities: dict[str, list[Identifier]]
    stale: dict[Identifier, tuple[str, str]]  # identifier -> (the tombstone it names, its survivor)


def merge_group(
    identifiers: list[Identifier],
    lookups: list[Identifier],
    owners: Mapping[Identifier, str],
    live: dict[str, Profile],
    resolved: Mapping[str, str],
    settings: IdentitySettings,
    now: datetime,
    new_id: IdFactory,
) -> Merge:
    """From the identity owners and live profiles read, the one profile the unit writes to."""
    unresolved = sorted({pid for pid in owners.values() if pid not in resolved})
    if unresolved:
        raise RuntimeError(f"identity items point at profiles that do not resolve: {unresolved}")
    owner_of = {ident: resolved[pid] for ident, pid in owners.items()}
    stale = {ident: (pid, resolved[pid]) for ident, pid in owners.items() if resolved[pid] != pid}

    plan = _resolve(identifiers, lookups, owner_of, live, settings, iso(now), new_id)
    survivor, losers = plan.survivor, plan.losers
    # What changes() compares, and no more: traits and identities are only ever reassigned per
    # key and `computed` is replaced whole, so shallow copies are an exact snapshot.
    before = (
        Profile(
            id=survivor.id,
            created_at=survivor.created_at,
            traits=dict(survivor.traits),
            identities=dict(survivor.identities),
            computed=survivor.computed,
            tags=list(survivor.tags),
            consent=dict(survivor.consent),
            segments=dict(survivor.segments),
        )
        if survivor.version
        else None
    )
    before_version = survivor.version
    loser_identities = {loser.id: sorted(loser.identifier_set()) for loser in losers}
    for loser in losers:
        profile_logic.merge_into(survivor, loser)
    for id_type, value in plan.attach:
        survivor.identities[id_type] = sorted(set(survivor.identities.get(id_type, [])) | {value})
    return Merge(survivor, losers, plan.attach, plan.refusals, before, before_version, loser_identities, stale)


def pending_markers(survivor: Profile, now: datetime, settings: IngestSettings) -> dict[str, int]:
    """The survivor's pending event ids still inside the dedupe window."""
    horizon = int(now.timestamp()) - _window(settings)
    return {m: added for m, added in survivor.pending.items() if added > horizon}


@dataclass
class UnitWrite:
    """What one attempt writes, decided from the merge and the markers read after it."""

    plan: WritePlan
    changed: bool
    version_after: int
    applied: list[dict[str, Any]]
    recovered: list[dict[str, Any]]
    duplicates: int
    timeline: list[dict[str, Any]]
    timeline_expires: int
    markers_expire: int
    imported_markers_expire: int  # the markers kept_long says are an imported record's
    publish: list[DomainEvent] = field(default_factory=list)  # set by stage_outbox


def plan_write(
    merge: Merge,
    fresh: Mapping[str, dict[str, Any]],
    pending: Mapping[str, int],
    markers: Mapping[str, int],
    settings: IngestSettings,
    now: datetime,
    new_id: IdFactory,
    segments: Segments | None = None,
) -> UnitWrite:
    """Apply the unit's events to the survivor. `markers` were read after the profiles: an event
    applied by a concurrent writer is then either in `pending` of what was read, or its marker is
    visible now, or the write's version condition fails and the attempt starts again.
    With `segments`, the write also brings the person's segment memberships up to date."""
    survivor, losers = merge.survivor, merge.losers
    stamp = iso(now)
    now_epoch = int(now.timestamp())
    confirmed = {m for m in pending if m in markers}
    duplicates = {m for m in fresh if m not in pending and markers.get(m, 0) > now_epoch}
    to_apply = [e for m, e in fresh.items() if m not in pending and m not in duplicates]
    recovered = [e for m, e in fresh.items() if m in pending]
    for event in sorted(to_apply, key=profile_logic.stamp_of):
        profile_logic.apply_event(survivor, event)
    survivor.pending = {m: added for m, added in pending.items() if m not in confirmed}
    survivor.pending.update({marker_id(e): now_epoch for e in to_apply})
    profile_logic.prune_daily_counts(survivor, now, settings.traits)
    survivor.computed = profile_logic.compute(survivor, now, settings.traits)
    if segments is not None:
        # Kept current by the write that changes the profile: audiences never wait for a rebuild.
        survivor.segments = segments.evaluate(survivor, now)
    survivor.updated_at = stamp

    trigger = next(iter(fresh.values()))
    merge_records = [
        {
            "id": new_id(),
            "kind": "merged",
            "profile_id": survivor.id,
            "merged_profile_id": loser.id,
            "identifiers": [f"{t}:{v}" for t, v in merge.loser_identities[loser.id]],
            "trigger_message_id": trigger["messageId"],
            "trigger_source_id": trigger["sourceId"],
            "at": stamp,
        }
        for loser in losers
    ]
    tombstones = [
        Profile(
            id=loser.id, created_at=loser.created_at, version=loser.version, merged_into=survivor.id, updated_at=stamp
        )
        for loser in losers
    ]
    changed = bool(to_apply or losers or merge.attach or survivor.version == 0 or confirmed)
    write = UnitWrite(
        plan=WritePlan(survivor, tombstones, merge.attach, merge_records),
        changed=changed,
        version_after=merge.before_version + 1 if changed else merge.before_version,
        applied=to_apply,
        recovered=recovered,
        duplicates=len(duplicates),
        timeline=[profile_logic.slim_event(e) for e in to_apply + recovered],
        timeline_expires=int((now + settings.timeline_retention).timestamp()),
        markers_expire=int((now + settings.dedupe_window).timestamp()),
        imported_markers_expire=int((now + timedelta(days=IMPORT_MARKER_DAYS)).timestamp()),
    )
    write.publish = stage_outbox(survivor, domain_events(merge, write, now), write.version_after, fresh)
    return write


def tracked_event_id(marker: str) -> str:
    """The id of an event's `event.tracked`: the same however often the event is recovered."""
    return _event_id("tracked", marker)


def stage_outbox(
    survivor: Profile, domain: Sequence[DomainEvent], version: int, fresh: Mapping[str, Any]
) -> list[DomainEvent]:
    """Name each domain event and commit what cannot be derived again to the survivor's outbox;
    returns everything to publish after the commit: the outbox entries still unconfirmed (a crash
    after an earlier commit left them) and this unit's events.

    An entry leaves the outbox once none of its unit's markers is pending: the markers are written
    only after a publish of the whole outbox, so a confirmed marker means the entry went out.
    `event.tracked` is not kept: a recovered event derives it again, with the same id."""
    unit_markers = sorted(m for m in fresh if m in survivor.pending)
    survivor.outbox = {
        event_id: entry
        for event_id, entry in survivor.outbox.items()
        if any(m in survivor.pending for m in entry["markers"])
    }
    publish: list[DomainEvent] = [(e["kind"], e["detail"]) for e in survivor.outbox.values()]
    for index, (kind, detail) in enumerate(domain):
        if kind == "event.tracked":
            named = {**detail, "eventId": tracked_event_id(marker_id(detail["event"]))}
        else:
            # A version is committed once (the write is conditioned on the one read before it).
            event_id = _event_id(kind, survivor.id, str(version), str(index))
            named = {**detail, "eventId": event_id}
            if unit_markers:
                survivor.outbox[event_id] = {"kind": kind, "detail": named, "markers": unit_markers}
        publish.append((kind, named))
    return publish


def _event_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def repoints(merge: Merge) -> list[tuple[list[Identifier], str, str]]:
    """Identifier items to point at their current profile after the commit (safe to repeat):
    the merged-away profiles' identifiers, and those still naming a tombstone, repointed when
    we pass by."""
    moves: list[tuple[list[Identifier], str, str]] = [
        (merge.loser_identities[loser.id], loser.id, merge.survivor.id) for loser in merge.losers
    ]
    merged_away = {p.id for p in merge.losers}
    for ident, (old, current) in merge.stale.items():
        moves.append(([ident], old, merge.survivor.id if current in merged_away else current))
    return moves


def refusal_records(merge: Merge, fresh: Mapping[str, dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    trigger = next(iter(fresh.values()))
    return [_refusal_record(merge.survivor.id, refusal, trigger, iso(now)) for refusal in merge.refusals]


def domain_events(merge: Merge, write: UnitWrite, now: datetime) -> list[DomainEvent]:
    """What the committed write tells the bus: each event tracked (but replayed history), each merge, the profile's
    change and the segment memberships that moved, `profile.updated` naming the version written."""
    survivor, losers, before = merge.survivor, merge.losers, merge.before
    stamp = iso(now)
    domain: list[DomainEvent] = []
    for event in sorted(write.applied + write.recovered, key=profile_logic.stamp_of):
        # Replayed history (a Pinpoint event stream) is the person's past: no rule, journey,
        # conversion or redemption reacts to it. This is the one place that decides it.
        if not profile_logic.is_replayed(event):
            domain.append(("event.tracked", {"profileId": survivor.id, "event": profile_logic.slim_event(event)}))
    for record in write.plan.merge_records:
        domain.append(("identity.merged", {k: v for k, v in record.items() if k != "id"}))
    difference = profile_logic.changes(before, survivor) if write.changed else {}
    if difference:
        update: dict[str, Any] = {"profileId": survivor.id, "version": write.version_after, "changes": difference}
        # How many rule hops caused this change: rules reacting to it stop at a bound, as they
        # do for events, so two rules cannot toggle a tag forever.
        depth = max((internal_events.depth_of(e) for e in write.applied), default=0)
        if depth:
            update["depth"] = depth
        domain.append(("profile.updated", update))
    if write.changed:
        before_segments = before.segments if before else {}
        domain.extend(segment_events(survivor.id, before_segments, survivor.segments, stamp, write.version_after))
        for loser in losers:
            # A merged-away profile's memberships end with it: their entries are balanced by exits,
            # and the survivor enters in its own right.
            domain.extend(segment_events(loser.id, loser.segments, {}, stamp, loser.version + 1))
    return domain


def segment_events(
    profile_id: str, before: Mapping[str, str], after: Mapping[str, str], stamp: str, version: int
) -> list[tuple[str, dict[str, Any]]]:
    """segment.entered / segment.exited for each membership that changed, naming the profile
    version written with the change (their order, however often they are republished). Their
    occurrence is the entry time, so a person who leaves and comes back is a new occurrence."""
    events: list[tuple[str, dict[str, Any]]] = []
    base = {"profileId": profile_id, "at": stamp, "version": version}
    for segment_id in sorted(set(after) - set(before)):
        events.append(("segment.entered", {**base, "segmentId": segment_id, "occurrence": after[segment_id]}))
    for segment_id in sorted(set(before) - set(after)):
        events.append(("segment.exited", {**base, "segmentId": segment_id, "occurrence": f"exit:{stamp}"}))
    return events


def _window(settings: IngestSettings) -> int:
    return int(settings.dedupe_window.total_seconds())


def _refusal_record(profile_id: str, refusal: dict[str, Any], trigger: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    # The same refusal seen again (another event from that browser, a redelivery) is one record.
    key = "|".join([profile_id, refusal.get("other", ""), refusal["identifier"], refusal["reason"]])
    return {
        "id": hashlib.sha256(key.encode()).hexdigest()[:20],
        "kind": "refused",
        "profile_id": profile_id,
        **refusal,
        "trigger_message_id": trigger["messageId"],
        "trigger_source_id": trigger["sourceId"],
        "at": stamp,
    }


# ------------------------------------------------------------------------------ work per invocation
# What the updater may start in one invocation is bounded by measured cost, so that an
# invocation ends well inside its timeout: a timeout fails the whole batch, units already
# applied included, and a batch that times out every time ends in the dead-letter queue.
UNIT_EVENTS = 100  # events applied by one write at most: a hand-off message is at most this many
PROBE_EVENTS = 10  # the first piece a container applies, before it has measured anything
RESERVE_FRACTION = 0.5  # of the time an invocation starts with, never spent on starting work
SAFETY = 2.0  # a piece is expected to cost up to this many times its estimate


@dataclass
class CostModel:
    """Seconds per event as measured in this container: the slower of the latest piece and a
    moving average, so that a burst of slow writes is believed at once and forgotten slowly.
    A piece's fixed costs (the profile write, its reads) are counted per event too, which errs
    on the slow side for larger pieces."""

    seconds_per_event: float | None = None  # None: nothing measured yet

    def observe(self, events: int, seconds: float) -> None:
        observed = seconds / max(events, 1)
        known = self.seconds_per_event
        self.seconds_per_event = observed if known is None else max(observed, 0.8 * known + 0.2 * observed)


@dataclass
class WorkBudget:
    """One invocation's budget, handing out work piece by piece. A piece is as many events as
    the time left above the reserve allows at the measured cost (at most UNIT_EVENTS; a small
    probe while nothing is measured); none when nothing fits, except that an invocation's first
    piece always gets at least one event, so every invocation makes progress. The caller
    measures each piece with its own clock and reports it."""

    reserve_s: float
    cost: CostModel
    started: int = 0

    @classmethod
    def for_invocation(cls, remaining_s: float, cost: CostModel) -> WorkBudget:
        return cls(reserve_s=remaining_s * RESERVE_FRACTION, cost=cost)

    def next_piece(self, remaining_s: float, left: int) -> int:
        """How many of the `left` events to apply next; 0: hand the rest back."""
        per_event = self.cost.seconds_per_event
        if per_event is None:
            fits = PROBE_EVENTS
        else:
            fits = int((remaining_s - self.reserve_s) / (per_event * SAFETY)) if per_event > 0 else UNIT_EVENTS
        size = min(left, UNIT_EVENTS, fits)
        return max(size, 1) if self.started == 0 else max(size, 0)

    def spent(self, events: int, seconds: float) -> None:
        self.started += 1
        self.cost.observe(events, seconds)
