"""The journey runner: domain events and due timers in, journey instances moved and their effects
queued out.

Each move of an instance is committed before its effects leave, through an outbox on the
instance item: (1) the new state and the effects it implies are written together, conditioned
on the revision read; (2) the effects are sent (messages to the delivery queue, profile changes
to the ingest queue, wait timers to the timer table); (3) the outbox is cleared. A crash
between (1) and (3) leaves the outbox, which the next touch of the instance sends again: every
effect has an id derived from (instance, step, sequence), so the ledger and the updater's
dedupe absorb the repeat. Two wakes racing on one person (a goal event and a timer) cannot
both commit: the second re-reads and decides again, so nothing is sent for a state that lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from midstage import keys
from midstage.logic import internal_events
from midstage.logic.archive import records
from midstage.logic.experiments.messages import Dealt, dealt_arm
from midstage.logic.journeys import (
    CompiledJourney,
    Instance,
    Progress,
    Wake,
    adopted,
    advance,
    compile_journey,
    date_entry_key,
    entry_key_for,
    may_enter,
    start_instance,
)
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.journeys import Journey
from midstage.models.messaging import MessageRequest
from midstage.models.profile import Profile
from midstage.observability import count, logger
from midstage.services.compiled import CompiledCache
from midstage.services.ports import (
    ArchiveSink,
    CountsOnce,
    Documents,
    EventSink,
    ExperimentLookup,
    MessageSink,
    Profiles,
    Stale,
    Timers,
)

MAX_RETRIES = 6
# How long a refused entry's `capped` count remembers it: beyond the cap's day and any redelivery.
CAPPED_KEEP = timedelta(days=2)


class Instances(Protocol):
    def get(self, profile_id: str, journey_id: str) -> dict[str, Any] | None: ...
    def of_person(self, profile_id: str) -> list[dict[str, Any]]: ...
    def save(self, doc: Mapping[str, Any], expected_rev: int | None, counts: Mapping[str, int] | None = None) -> int:
        """Write the instance over `expected_rev`, with the move's `counts` in the same write."""

    def move(self, doc: Mapping[str, Any], from_profile: str, from_rev: int, replaces_rev: int | None) -> int: ...
    def drop(
        self, profile_id: str, journey_id: str, expected_rev: int, counts: Mapping[str, int] | None = None
    ) -> None: ...


class EntryCaps(Protocol):
    def take(self, journey_id: str, day: str, cap: int, now: datetime) -> bool: ...


# ------------------------------------------------------------------------------ catalog
class JourneyIndex:
    """The enabled journeys, compiled, indexed by what can start or wake them."""

    def __init__(self, journeys: Sequence[CompiledJourney]) -> None:
        self.by_id = {c.journey.id: c for c in journeys}
        self._by_event: dict[str, list[CompiledJourney]] = {}
        self._by_segment: dict[str, list[CompiledJourney]] = {}
        self._dated: list[CompiledJourney] = []
        self._interest: set[str] = set()
        for compiled in journeys:
            entry = compiled.journey.entry
            if entry.type == "event":
                self._by_event.setdefault(entry.event, []).append(compiled)
            elif entry.type == "segment_entered":
                self._by_segment.setdefault(entry.segment, []).append(compiled)
            else:
                self._dated.append(compiled)
            self._interest.update(goal.event for goal in compiled.journey.exit_when)
            for step in compiled.journey.steps.values():
                until = getattr(step, "until_event", None)
                if until is not None:
                    self._interest.add(until.event)

    def entered_by_event(self, name: str) -> list[CompiledJourney]:
        return self._by_event.get(name, [])

    def entered_by_segment(self, segment_id: str) -> list[CompiledJourney]:
        return self._by_segment.get(segment_id, [])

    def dated(self) -> list[CompiledJourney]:
        return self._dated

    def wakes_on(self, name: str) -> bool:
        """Whether an event of this name can end or move an instance (goals, waits for events)."""
        return name in self._interest


class JourneyCatalog:
    def __init__(self, config: Documents, *, max_window_days: int = 90) -> None:
        self.config = config
        self.max_window_days = max_window_days
        self._compiled: CompiledCache[Journey, CompiledJourney, JourneyIndex] = CompiledCache(
            "journey", lambda journey: compile_journey(journey, max_window_days=self.max_window_days), JourneyIndex
        )

    def current(self) -> JourneyIndex:
        return self._compiled.get([j for j in self.config.documents(keys.JOURNEY_PK, Journey) if j.enabled])


def date_entries(
    dated: Sequence[CompiledJourney], profile: Profile, now: datetime, default_timezone: str
) -> list[tuple[str, dict[str, Any]]]:
    """`journey.date` events for the date-triggered journeys whose day has come for this person
    (the sweep runs hourly; entering twice on one day is refused by the entry key)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for compiled in dated:
        entry_key = date_entry_key(compiled, profile, now, default_timezone)
        if entry_key:
            found.append(
                (
                    "journey.date",
                    {"profileId": profile.id, "journeyId": compiled.journey.id, "entryKey": entry_key, "at": iso(now)},
                )
            )
    return found


# ------------------------------------------------------------------------------ runner
@dataclass
class Summary:
    entered: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # "<journey>:<merged-away profile>" brought over
    messages: int = 0
    events: int = 0
    timers: int = 0
    steps: int = 0


class JourneyRunner:
    def __init__(
        self,
        catalog: JourneyCatalog,
        profiles: Profiles,
        instances: Instances,
        messages: MessageSink,
        events: EventSink,
        timers: Timers,
        caps: EntryCaps,
        counters: CountsOnce,
        *,
        default_timezone: str = "UTC",
        archive: ArchiveSink | None = None,
        experiments: ExperimentLookup | None = None,
    ) -> None:
        self.archive = archive
        self.experiments = experiments
        self.catalog = catalog
        self.profiles = profiles
        self.instances = instances
        self.messages = messages
        self.events = events
        self.timers = timers
        self.caps = caps
        self.counters = counters
        self.default_timezone = default_timezone

    def handle(self, detail_type: str, detail: Mapping[str, Any], now: datetime) -> Summary:
        summary = Summary()
        index = self.catalog.current()
        profile_id = str(detail.get("profileId", ""))
        if detail_type == "journey.wake":
            self._on_timer(index, detail, now, summary)
            return summary
        if detail_type == "event.tracked":
            event = detail.get("event")
            if not isinstance(event, Mapping):
                return summary
            name = str(event.get("event") if event.get("type") == "track" else event.get("name") or "")
            entering = index.entered_by_event(name)
            if not entering and not index.wakes_on(name):
                return summary
            profile = self.profiles.profile(profile_id)
            if profile is None:
                return summary
            self._adopt(profile, profile.merged_from, now, summary)
            if index.wakes_on(name):
                for doc in self.instances.of_person(profile.id):
                    compiled = index.by_id.get(doc["journey_id"])
                    # An ended instance with an outbox crashed on its last move: this may be the
                    # redelivery of the event that ended it, the only touch it will ever get.
                    if compiled is not None and (doc.get("status") in ("active", "waiting") or doc.get("outbox")):
                        self._move(compiled, profile, Wake(kind="event", event=dict(event)), now, summary)
            for compiled in entering:
                entry_key = entry_key_for(compiled, detail_type, detail, profile, now=now)
                if entry_key:
                    self._enter(compiled, profile, entry_key, dict(event), now, summary)
            return summary
        if detail_type == "segment.entered":
            entering = index.entered_by_segment(str(detail.get("segmentId", "")))
            profile = self.profiles.profile(profile_id) if entering else None
            if profile is not None:
                self._adopt(profile, profile.merged_from, now, summary)
            for compiled in entering if profile is not None else []:
                assert profile is not None
                entry_key = entry_key_for(compiled, detail_type, detail, profile, now=now)
                if entry_key:
                    self._enter(compiled, profile, entry_key, None, now, summary)
            return summary
        if detail_type == "journey.date":
            # The sweep's time (the scheduler's): waits like "until 10:00 local" count from it.
            now = max(now, _moment(detail.get("at")) or now)
            compiled = index.by_id.get(str(detail.get("journeyId", "")))
            entry_key = detail.get("entryKey")
            # Only a date journey enters this way, and only with the sweep's key for the day: the
            # key is what refuses a second entry that day.
            if compiled is None or compiled.journey.entry.type != "date":
                return summary
            if not isinstance(entry_key, str) or not entry_key.startswith("date:"):
                return summary
            profile = self.profiles.profile(profile_id)
            if profile is not None:
                self._enter(compiled, profile, entry_key, None, now, summary)
        return summary

    # ------------------------------------------------------------------ entering
    def _enter(
        self,
        compiled: CompiledJourney,
        profile: Profile,
        entry_key: str,
        event: dict[str, Any] | None,
        now: datetime,
        summary: Summary,
    ) -> None:
        journey = compiled.journey
        doc = self.instances.get(profile.id, journey.id)
        previous = self._settled(doc) if doc else None
        allowed, reason = may_enter(journey, previous, entry_key, now)
        if not allowed:
            summary.refused[journey.id] = reason
            return
        if journey.daily_cap is not None and not self.caps.take(
            journey.id, now.strftime("%Y%m%d"), journey.daily_cap, now
        ):
            summary.refused[journey.id] = f"daily cap of {journey.daily_cap} entries reached"
            # Once per refused entry (the entry's key): a redelivered trigger is not counted again.
            once = (f"journey-capped#{journey.id}", f"{profile.id}#{entry_key}")
            self.counters.add_once(
                "journey", journey.id, "all", profile.id, {"capped": 1}, once=once, now=now, keep=CAPPED_KEEP
            )
            return
        instance = start_instance(journey, profile.id, previous, entry_key, event, now)
        progress = advance(
            compiled, instance, profile, Wake(kind="enter"), now, default_timezone=self.default_timezone, arms=self._arm
        )
        try:
            self._commit(progress, previous.rev if previous else None, summary, entered=True)
        except Stale:
            summary.refused[journey.id] = "entered concurrently"
            return
        summary.entered.append(journey.id)

    # ------------------------------------------------------------------ waking
    def _on_timer(self, index: JourneyIndex, detail: Mapping[str, Any], now: datetime, summary: Summary) -> None:
        compiled = index.by_id.get(str(detail.get("journeyId", "")))
        if compiled is None:
            # Disabled or deleted: the instance ends at its wait's end (its timer is spent), with
            # a reason, instead of waiting for good; the person may enter again once re-enabled.
            self._end_orphan(str(detail.get("profileId", "")), str(detail.get("journeyId", "")), detail, now, summary)
            return
        named = str(detail.get("profileId", ""))
        profile = self.profiles.profile(named)
        if profile is None:
            return
        if profile.id != named:
            # A timer of a profile merged away since it was set: its instance comes over first.
            self._adopt(profile, [named], now, summary)
        due = max(now, _moment(detail.get("dueAt")) or now)
        wake = Wake(kind="timer", timer_id=str(detail.get("timerId", "")), due=iso(due))
        self._move(compiled, profile, wake, due, summary)

    def _end_orphan(
        self, profile_id: str, journey_id: str, detail: Mapping[str, Any], now: datetime, summary: Summary
    ) -> None:
        doc = self.instances.get(profile_id, journey_id) if profile_id and journey_id else None
        if doc is None and profile_id and journey_id:
            # Merged away since the timer was set: the run may have come over to the survivor.
            survivor = self.profiles.profile(profile_id)
            doc = self.instances.get(survivor.id, journey_id) if survivor and survivor.id != profile_id else None
            profile_id = survivor.id if doc is not None and survivor is not None else profile_id
        if doc is None or doc.get("status") not in ("active", "waiting"):
            return
        wait = doc.get("wait") or {}
        if wait.get("timer_id") != detail.get("timerId"):
            return  # a stale timer of an instance that has moved on
        stamp = iso(now)
        ended = {k: v for k, v in doc.items() if k not in ("rev", "outbox")}
        ended.update(status="exited", exit_reason="journey disabled", ended_at=stamp, updated_at=stamp, wait=None)
        ended["path"] = [*list(doc.get("path") or []), [doc.get("step"), stamp, "exited: journey disabled"]][-50:]
        with suppress(Stale):
            self.instances.save(ended, doc["rev"], counts={"exited": 1, "disabled": 1})
            summary.moved.append(journey_id)

    def _move(self, compiled: CompiledJourney, profile: Profile, wake: Wake, now: datetime, summary: Summary) -> None:
        for _ in range(MAX_RETRIES):
            doc = self.instances.get(profile.id, compiled.journey.id)
            if doc is None:
                return
            instance = self._settled(doc)
            progress = advance(
                compiled, instance, profile, wake, now, default_timezone=self.default_timezone, arms=self._arm
            )
            if not progress.changed:
                return  # nothing moved (a stale timer, an event it is not waiting for)
            try:
                self._commit(progress, instance.rev, summary, entered=False)
            except Stale:
                continue
            summary.moved.append(compiled.journey.id)
            return
        logger.warning("journey instance kept moving under us", journey=compiled.journey.id, profile=profile.id)

    # ------------------------------------------------------------------ merges
    def _adopt(self, profile: Profile, merged_away: Sequence[str], now: datetime, summary: Summary) -> None:
        """Bring the journey instances of profiles merged into this one over to it, so events and
        timers for the survivor reach them. Each is moved in one conditional transaction; until
        it is, it stays where it was, and the next event or timer for the person tries again.

        Costs one query per merged-away id for each event that can enter or wake a journey of a
        person with merges behind them (nothing for everyone else)."""
        for merged_id in merged_away:
            if merged_id == profile.id:
                continue
            for doc in self.instances.of_person(merged_id):
                self._adopt_one(doc, profile, now, summary)

    def _adopt_one(self, doc: dict[str, Any], profile: Profile, now: datetime, summary: Summary) -> None:
        merged_id, journey_id = str(doc["profile_id"]), str(doc["journey_id"])
        for _ in range(MAX_RETRIES):
            theirs = self._settled(doc)
            mine_doc = self.instances.get(profile.id, journey_id)
            mine = self._settled(mine_doc) if mine_doc else None
            kept = adopted(theirs, mine, profile.id, now)
            try:
                if kept is None:
                    # The survivor's own run goes on; this one ends here, counted like any exit.
                    ended = {"exited": 1, "merged": 1} if theirs.in_progress else None
                    self.instances.drop(merged_id, journey_id, theirs.rev, counts=ended)
                else:
                    state = {k: v for k, v in kept.to_doc().items() if k not in ("rev", "outbox")}
                    self.instances.move(state, merged_id, theirs.rev, mine.rev if mine is not None else None)
            except Stale:
                found = self.instances.get(merged_id, journey_id)
                if found is None:
                    return  # another worker brought it over
                doc = found
                continue
            summary.adopted.append(f"{journey_id}:{merged_id}")
            return
        logger.warning("journey instance kept moving while brought over", journey=journey_id, profile=merged_id)

    # ------------------------------------------------------------------ committing
    def _settled(self, doc: dict[str, Any]) -> Instance:
        """The stored instance, with any effects a crashed commit left in its outbox sent now."""
        outbox = doc.get("outbox")
        instance = Instance.from_doc(doc)
        if outbox:
            self._send(outbox)
            rest = {k: v for k, v in doc.items() if k not in ("outbox", "rev")}
            with suppress(Stale):  # someone else settled it; the caller's own write will find out
                instance.rev = self.instances.save(rest, doc["rev"])
        return instance

    def _commit(self, progress: Progress, expected_rev: int | None, summary: Summary, *, entered: bool) -> None:
        outbox = {
            "messages": [m.model_dump(mode="json", exclude_none=True) for m in progress.messages],
            "events": progress.events,
            "timers": [{"at": iso(t.at), "timer_id": t.timer_id, "payload": t.payload} for t in progress.timers],
        }
        state = {k: v for k, v in progress.instance.to_doc().items() if k not in ("rev", "outbox")}
        has_effects = bool(progress.messages or progress.events or progress.timers)
        # Counted in the write that commits the move: a crash while sending leaves the outbox to
        # the next touch, which sends it but does not run (or count) the move again.
        counts = _move_counts(progress, entered=entered)
        rev = self.instances.save({**state, "outbox": outbox} if has_effects else state, expected_rev, counts=counts)
        self._tally(progress, summary)
        self._archive(progress, entered=entered)
        if has_effects:
            self._send(outbox)
            with suppress(Stale):  # a later move replaced the outbox already
                self.instances.save(state, rev)

    def _arm(self, experiment_id: str, profile_id: str) -> Dealt | None:
        experiment = self.experiments.find_experiment(experiment_id) if self.experiments is not None else None
        return dealt_arm(experiment, profile_id) if experiment is not None else None

    def _archive(self, progress: Progress, *, entered: bool) -> None:
        """The committed move into the analytics archive. Logged, never raised: the move is done,
        and a redelivered wake would not run (or archive) it again."""
        if self.archive is None:
            return
        instance = progress.instance
        batch = records.journey_records(
            journey_id=instance.journey_id,
            journey_version=instance.journey_version,
            profile_id=instance.profile_id,
            run=instance.run,
            seq=instance.seq,
            path=instance.path,
            steps_run=progress.steps_run,
            entered_at=instance.entered_at if entered else None,
            ended_at=instance.ended_at,
            status=instance.status,
            exit_reason=instance.exit_reason,
            archived_at=parse_iso(instance.updated_at),
        )
        exposures = [
            records.exposure(
                experiment_id=dealt.experiment_id,
                variant=dealt.arm,
                profile_id=instance.profile_id,
                at=parse_iso(instance.updated_at),
                archived_at=parse_iso(instance.updated_at),
                origin_kind="journey",
                origin_id=instance.journey_id,
                phase=dealt.phase,
            )
            for dealt in progress.exposures
        ]
        try:
            self.archive.put([*batch.records, *exposures])
        except Exception:
            logger.exception("journey move not archived", journey_id=instance.journey_id)
            count(ArchiveFailures=1)
        count(Unarchived=len(batch.refused))

    @staticmethod
    def _tally(progress: Progress, summary: Summary) -> None:
        summary.messages += len(progress.messages)
        summary.events += len(progress.events)
        summary.timers += len(progress.timers)
        summary.steps += progress.steps_run

    def _send(self, outbox: Mapping[str, Any]) -> None:
        if outbox.get("messages"):
            self.messages.send([MessageRequest.model_validate(m) for m in outbox["messages"]])
        if outbox.get("events"):
            groups: dict[str, list[dict[str, Any]]] = {}
            for event in outbox["events"]:
                groups.setdefault(internal_events.person_key(event), []).append(event)
            self.events.send(groups)
        for timer in outbox.get("timers") or []:
            self.timers.schedule(parse_iso(timer["at"]), timer["timer_id"], timer["payload"], kind="journey")


def _moment(value: Any) -> datetime | None:
    """A time from a bus event (a timer's due time, the sweep's time), or None when it is not an
    ISO timestamp; one without a zone is UTC."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_iso(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _move_counts(progress: Progress, *, entered: bool) -> dict[str, int]:
    """A move's journey counters: the steps it ran, and whether it entered, completed or exited."""
    counts: dict[str, int] = {f"step:{step}": 1 for step in _steps_run(progress)}
    if entered:
        counts["entered"] = 1
    if progress.instance.status == "completed":
        counts["completed"] = 1
    elif progress.instance.status == "exited":
        counts["exited"] = 1
        if (progress.instance.exit_reason or "").startswith("goal"):
            counts["goal"] = 1
    return counts


def _steps_run(progress: Progress) -> list[str]:
    """The steps this move executed (the tail of the path it added)."""
    path = progress.instance.path
    return [entry[0] for entry in path[len(path) - progress.steps_run :]] if progress.steps_run else []
