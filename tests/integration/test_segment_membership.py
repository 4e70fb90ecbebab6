"""Segment memberships against moto: kept current by every profile write (logic/ingest.py), moved
by time only through the sweep (services/segments.py), and estimated by sampling the scan.

The profile updater's segment events are captured by a recording publisher that forwards them to
the real bus and tags each batch with the profile version its write committed, so each person's
transitions can be read in commit order even when writers race.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import MutableSequence, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.adapters.automation_store import RefreshJobs
from midstage.adapters.bus import EventPublisher
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic.ingest import IngestSettings
from midstage.logic.segments import SegmentSet
from midstage.logic.timefmt import iso
from midstage.models.profile import Profile, WritePlan
from midstage.models.segments import Segment
from midstage.services.ingest import process_unit
from midstage.services.segments import estimate_condition, refresh_part
from tests.integration.conftest import Stack
from tests.support.concurrency import race

TRAITS = ComputedTraitSettings()
SETTINGS = IngestSettings(IdentitySettings(), TRAITS)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PLATFORM = "midstage"  # the sourceId of the platform's own events: only it may add to a static segment

DEFINITIONS = [
    Segment(id="pro", name="Pro plan", condition={"path": "traits.plan", "op": "eq", "value": "pro"}),
    Segment(
        id="spenders",
        name="Spenders",
        condition={
            "any": [
                {"path": "computed.revenue", "op": "gte", "value": 100},
                {"path": "computed.orders", "op": "gte", "value": 3},
            ]
        },
    ),
    Segment(id="vip", name="Tagged VIP", condition={"path": "tags", "op": "contains", "value": "vip"}),
    Segment(id="browsers", name="Browsing lately", condition={"did": "Viewed", "at_least": 2, "within": "4d"}),
    Segment(id="imported", name="Imported list", kind="static"),
    Segment(
        id="pro-spenders",
        name="Pro and spending (or imported)",
        condition={
            "all": [
                {"path": "segments", "op": "contains", "value": "pro"},
                {
                    "any": [
                        {"path": "segments", "op": "contains", "value": "spenders"},
                        {"path": "segments", "op": "contains", "value": "imported"},
                    ]
                },
            ]
        },
    ),
]
LAPSED = Segment(
    id="lapsed",
    name="No order in 30 days",
    condition={
        "all": [
            {"path": "profile.orders", "op": "gte", "value": 1},
            {"path": "computed.days_since_last_order", "op": "gte", "value": 30},
        ]
    },
)


# ------------------------------------------------------------------------------ recording
class Recorder:
    """The domain events published, each with the profile version the write before it committed
    in the same thread (None for a publish with no write, such as a sweep's)."""

    def __init__(self, forward: EventPublisher | None = None) -> None:
        self.forward = forward
        self.published: list[tuple[str, dict[str, Any], int | None]] = []
        self.local = threading.local()
        self._lock = threading.Lock()

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        version = getattr(self.local, "version", None)
        self.local.version = None
        with self._lock:
            # As a consumer does: an event republished from an outbox is the same event.
            seen = {detail.get("eventId") for _, detail, _ in self.published} - {None}
            self.published.extend((k, d, version) for k, d in events if d.get("eventId") not in seen)
        if self.forward is not None:
            self.forward.publish(events)

    def segment_events(self) -> list[tuple[str, dict[str, Any], int | None]]:
        return [e for e in self.published if e[0] in ("segment.entered", "segment.exited")]


class RecordingStore(ProfileStore):
    """The real profile store, noting in the recorder the version each successful write made."""

    def __init__(self, real: ProfileStore, recorder: Recorder) -> None:
        super().__init__(real.table, client=real.client)
        self.recorder = recorder

    def save(self, plan: WritePlan) -> None:
        super().save(plan)
        self.recorder.local.version = plan.survivor.version + 1


def profile_store(stack: Stack) -> ProfileStore:
    return ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())


def live_profiles(store: ProfileStore) -> list[Profile]:
    return list(store.scan_profiles(0, 1))


def from_scratch(segments: SegmentSet, profile: Profile, now: datetime) -> set[str]:
    """The memberships the definitions give this stored profile, ignoring what it has stored."""
    fresh = Profile.from_doc(profile.to_doc())
    fresh.segments = {}
    return set(segments.evaluate(fresh, now))


def transitions_by_member(recorder: Recorder) -> dict[tuple[str, str], list[tuple[int | None, str]]]:
    """Each (profile, segment)'s transitions in commit order."""
    found: dict[tuple[str, str], list[tuple[int | None, str]]] = {}
    for kind, detail, version in recorder.segment_events():
        # The version the transition names (a republication may come after a later write's).
        found.setdefault((detail["profileId"], detail["segmentId"]), []).append((detail.get("version", version), kind))
    for history in found.values():
        history.sort(key=lambda entry: -1 if entry[0] is None else entry[0])
    return found


def assert_alternating(history: list[tuple[int | None, str]]) -> None:
    kinds = [kind for _, kind in history]
    assert kinds == ["segment.entered", "segment.exited"] * (len(kinds) // 2) + ["segment.entered"] * (len(kinds) % 2)
    versions = [version for version, _ in history]
    assert len(set(versions)) == len(versions)  # one transition per write


# ------------------------------------------------------------------------------ the stream
def event(seed: int, n: int, rng: random.Random, kind: str, person: dict[str, str], **fields: Any) -> dict[str, Any]:
    at = NOW - timedelta(minutes=rng.randrange(5 * 24 * 60))
    return {
        "type": kind,
        "messageId": f"s{seed}-m{n}",
        "sourceId": "src",
        "timestamp": iso(at),
        "receivedAt": iso(at),
        **person,
        **fields,
    }


def stream(seed: int, events: int = 70, people: int = 3) -> list[list[dict[str, Any]]]:
    """Units (one person-key's events) of a random stream over a few people, each known by a
    userId and up to three anonymous ids that identify calls merge; shuffled, with redeliveries."""
    rng = random.Random(seed)
    units: list[list[dict[str, Any]]] = []
    for n in range(events):
        human = rng.randrange(people)
        user = {"userId": f"s{seed}-user{human}"}
        anonymous = {"anonymousId": f"s{seed}-anon{human}-{rng.randrange(3)}"}
        who = rng.choice([user, anonymous])
        roll = rng.random()
        if roll < 0.3:
            made = event(seed, n, rng, "track", who, event="Viewed")
        elif roll < 0.42:
            revenue = rng.choice([10, 35, "60.50", 120])
            made = event(seed, n, rng, "track", who, event="Order Completed", properties={"revenue": revenue})
        elif roll < 0.55:
            plan = rng.choice(["pro", "free"])
            made = event(seed, n, rng, "identify", {**user, **anonymous}, traits={"plan": plan})
        elif roll < 0.7:
            name = rng.choice(["Tag Added", "Tag Removed"])
            made = event(seed, n, rng, "track", who, event=name, properties={"tag": "vip"})
        elif roll < 0.8:
            name = rng.choice(["Segment Added", "Segment Removed"])
            made = event(seed, n, rng, "track", who, event=name, properties={"segment": "imported"})
            made["sourceId"] = PLATFORM
        elif roll < 0.9:
            made = event(seed, n, rng, "identify", user, traits={"plan": rng.choice(["pro", "free", "team"])})
        else:
            made = event(seed, n, rng, "track", who, event="Segment Added", properties={"segment": "imported"})
            # From a client: an ordinary event, which must not put anyone in the static segment.
        if units and rng.random() < 0.2 and _key(units[-1][0]) == _key(made):
            units[-1].append(made)  # one request carried two of this person's events
        else:
            units.append([made])
    redelivered = [list(unit) for unit in rng.sample(units, k=len(units) // 4)]
    units += redelivered
    rng.shuffle(units)
    return units


def _key(event: dict[str, Any]) -> str:
    return f"u:{event['userId']}" if event.get("userId") else f"a:{event['anonymousId']}"


def process_from_threads(
    units: list[list[dict[str, Any]]], store: ProfileStore, recorder: Recorder, segments: SegmentSet, threads: int
) -> None:
    work: queue.Queue[list[dict[str, Any]]] = queue.Queue()
    for unit in units:
        work.put(unit)

    def worker(_: int) -> None:
        mine = RecordingStore(store, recorder)  # a container of its own
        while True:
            try:
                unit = work.get_nowait()
            except queue.Empty:
                return
            process_unit(unit, mine, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments)

    race(threads, worker)  # the first error a worker met is raised once every worker has stopped


# ============================================================================== the required property
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_given_a_random_stream_from_several_threads_then_memberships_match_a_fresh_evaluation_and_events_net_to_them(
    stack: Stack, seed: int
) -> None:
    store = profile_store(stack)
    recorder = Recorder(EventPublisher(stack.output("EventBusName"), client=stack.clients.events()))
    segments = SegmentSet(DEFINITIONS)
    assert segments.skipped == {}

    units = stream(seed)

    process_from_threads(units, store, recorder, segments, threads=4)

    profiles = live_profiles(store)
    assert profiles, "the stream made people"
    distinct = {e["messageId"]: e for unit in units for e in unit}.values()  # redeliveries count once
    assert sum(p.orders for p in profiles) == sum(e.get("event") == "Order Completed" for e in distinct)
    for profile in profiles:
        assert set(profile.segments) == from_scratch(segments, profile, NOW), profile.id
    histories = transitions_by_member(recorder)
    for history in histories.values():
        assert_alternating(history)
    for profile in profiles:
        netted = {segment for (pid, segment), history in histories.items() if pid == profile.id and len(history) % 2}
        assert netted == set(profile.segments), profile.id
    assert all(version is not None for *_, version in recorder.segment_events())
    # Something happened to test: people were merged, and every kind of segment was entered.
    assert any(p.merged_from for p in profiles)
    entered = {segment for (_, segment), history in histories.items() if history}
    assert entered == {s.id for s in DEFINITIONS}


def test_given_a_client_sending_segment_added_then_it_does_not_join_the_static_segment(stack: Stack) -> None:
    store, recorder, segments = profile_store(stack), Recorder(), SegmentSet(DEFINITIONS)
    from_client = {
        "type": "track",
        "event": "Segment Added",
        "properties": {"segment": "imported"},
        "userId": "ann",
        "messageId": "c1",
        "sourceId": "src",
        "timestamp": iso(NOW),
    }
    from_platform = {**from_client, "messageId": "p1", "sourceId": PLATFORM}

    outcome = process_unit([from_client], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments)
    after_client = store.profile(str(outcome.profile_id))
    process_unit([from_platform], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments)
    after_platform = store.profile(str(outcome.profile_id))

    assert after_client is not None and after_platform is not None
    assert "imported" not in after_client.segments
    assert "imported" in after_platform.segments
    assert [(k, d["segmentId"]) for k, d, _ in recorder.segment_events()] == [("segment.entered", "imported")]


def test_given_a_member_merged_into_another_profile_then_its_memberships_are_exited(stack: Stack) -> None:
    store, recorder, segments = profile_store(stack), Recorder(), SegmentSet(DEFINITIONS)
    views = [
        {
            "type": "track",
            "event": "Viewed",
            "anonymousId": "browser-1",
            "messageId": f"v{n}",
            "sourceId": "src",
            "timestamp": iso(NOW - timedelta(hours=n)),
        }
        for n in range(2)
    ]
    anonymous = process_unit(views, store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments)
    signup = {"type": "identify", "userId": "ann", "messageId": "i0", "sourceId": "src", "timestamp": iso(NOW)}
    known = process_unit([signup], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments)
    login = {**signup, "messageId": "i1", "anonymousId": "browser-1"}

    merged = process_unit([login], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments)

    assert merged.merged == [anonymous.profile_id] and merged.profile_id == known.profile_id
    survivor = store.profile(str(known.profile_id))
    assert survivor is not None and "browsers" in survivor.segments
    history = transitions_by_member(recorder)
    assert [kind for _, kind in history[(str(anonymous.profile_id), "browsers")]] == [
        "segment.entered",
        "segment.exited",
    ]


# ============================================================================== time passing
def order(user: str, message_id: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "properties": {"revenue": 40},
        "userId": user,
        "messageId": message_id,
        "sourceId": "src",
        "timestamp": iso(at),
    }


def viewed(user: str, message_id: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Viewed",
        "userId": user,
        "messageId": message_id,
        "sourceId": "src",
        "timestamp": iso(at),
    }


def test_given_a_no_order_in_30_days_segment_when_only_time_passes_then_the_sweep_moves_people_and_says_so(
    stack: Stack,
) -> None:
    store, recorder, segments = profile_store(stack), Recorder(), SegmentSet([LAPSED])
    assert segments.time_dependent == {"lapsed"}
    first = process_unit(
        [order("ann", "o1", NOW)], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments
    )
    ann = str(first.profile_id)
    day_20 = NOW + timedelta(days=20)
    process_unit(
        [viewed("ann", "v1", day_20)], store, recorder, SETTINGS, day_20, conflict=ConcurrentWrite, segments=segments
    )

    early = refresh_part(store, recorder, segments, TRAITS, 0, 1, NOW + timedelta(days=29))
    still_out = store.profile(ann)
    day_31 = NOW + timedelta(days=31)
    late = refresh_part(store, recorder, segments, TRAITS, 0, 1, day_31)
    now_in = store.profile(ann)
    again = refresh_part(store, recorder, segments, TRAITS, 0, 1, day_31 + timedelta(hours=1))

    assert still_out is not None and still_out.segments == {}
    assert (early.scanned, late.scanned, late.changed, again.changed) == (1, 1, 1, 0)
    assert now_in is not None and now_in.segments == {"lapsed": iso(day_31)}
    assert now_in.computed["days_since_last_order"] == 31
    assert all(d["eventId"] for _, d, _ in recorder.segment_events())  # named, as consumers dedupe on it
    assert [(k, {n: v for n, v in d.items() if n != "eventId"}) for k, d, _ in recorder.segment_events()] == [
        (
            "segment.entered",
            {
                "profileId": ann,
                "segmentId": "lapsed",
                "at": iso(day_31),
                "occurrence": iso(day_31),
                "version": now_in.version,
            },
        )
    ]

    day_32 = NOW + timedelta(days=32)
    process_unit(
        [order("ann", "o2", day_32)], store, recorder, SETTINGS, day_32, conflict=ConcurrentWrite, segments=segments
    )

    back = store.profile(ann)
    assert back is not None and back.segments == {}
    assert [k for k, _, _ in recorder.segment_events()] == ["segment.entered", "segment.exited"]


class DiesPublishing:
    """The sweep's publisher, killed on its first publish: after the page's writes, before the bus."""

    def __init__(self, real: Recorder) -> None:
        self.real, self.died = real, False

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if not self.died:
            self.died = True
            raise ConnectionError("the sweep's worker died before its events left")
        self.real.publish(events)


def test_given_a_sweep_killed_between_its_writes_and_its_publish_when_the_part_runs_again_then_each_event_goes_once(
    stack: Stack,
) -> None:
    """Given two people whose last order turns 31 days old, when the sweep part that moves them
    into `lapsed` dies after writing their profiles and before publishing, then the part's
    redelivery (which finds nothing left to change) publishes both `segment.entered` events,
    under the ids the first attempt gave them; a later sweep publishes nothing, and drops the
    confirmed entries from the profile's outbox when it next writes it."""
    store, recorder, segments = profile_store(stack), Recorder(), SegmentSet([LAPSED])
    for user in ("dee", "eve"):
        process_unit(
            [order(user, f"o-{user}", NOW)], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments
        )
    recorder.published.clear()
    day_31 = NOW + timedelta(days=31)

    with pytest.raises(ConnectionError):
        refresh_part(store, DiesPublishing(recorder), segments, TRAITS, 0, 1, day_31)
    assert recorder.published == []
    assert all(set(p.segments) == {"lapsed"} for p in live_profiles(store))  # written, not told

    again = refresh_part(store, recorder, segments, TRAITS, 0, 1, day_31 + timedelta(minutes=5))

    assert again.changed == 0
    entered = sorted((d["profileId"], d["segmentId"]) for _, d, _ in recorder.segment_events())
    assert entered == sorted((p.id, "lapsed") for p in live_profiles(store))
    assert all(len(d["eventId"]) == 32 for _, d, _ in recorder.segment_events())
    raw = [(k, d) for k, d, _ in recorder.published]
    refresh_part(store, recorder, segments, TRAITS, 0, 1, day_31 + timedelta(hours=1))
    assert [(k, d) for k, d, _ in recorder.published] == raw  # confirmed: nothing republished

    # The next change the sweep writes carries the confirmed entries no more.
    day_95 = NOW + timedelta(days=95)
    refresh_part(store, recorder, segments, TRAITS, 0, 1, day_95)
    for profile in live_profiles(store):
        swept = [e["markers"] for e in profile.outbox.values() if e["markers"][0].startswith("$sweep|")]
        assert swept and all(m == [f"$sweep|{profile.id}:{profile.version}"] for m in swept), profile.outbox


class EventWriteDuringTheSweep(ProfileStore):
    """The real store; right after the sweep reads a page, an event for `user` is written (once)."""

    def __init__(self, real: ProfileStore, recorder: Recorder, segments: SegmentSet, user: str, now: datetime) -> None:
        super().__init__(real.table, client=real.client)
        self.recorder, self.segments, self.user, self.now = recorder, segments, user, now
        self.done = False

    def scan_page(
        self,
        segment: int,
        total_segments: int,
        cursor: dict[str, Any] | None,
        limit: int = 500,
        *,
        started: datetime | None = None,
    ) -> tuple[list[Profile], dict[str, Any] | None]:
        page = super().scan_page(segment, total_segments, cursor, limit, started=started)
        if not self.done:
            self.done = True
            writer = RecordingStore(ProfileStore(self.table, client=self.client), self.recorder)
            event = viewed(self.user, "during-sweep", self.now)
            process_unit(
                [event], writer, self.recorder, SETTINGS, self.now, conflict=ConcurrentWrite, segments=self.segments
            )
        return page


def test_given_an_event_written_while_the_sweep_works_then_the_event_write_wins_and_memberships_stay_consistent(
    stack: Stack,
) -> None:
    store, recorder, segments = profile_store(stack), Recorder(), SegmentSet([LAPSED, *DEFINITIONS])
    for user in ("bea", "cal"):
        process_unit(
            [order(user, f"o-{user}", NOW)], store, recorder, SETTINGS, NOW, conflict=ConcurrentWrite, segments=segments
        )
    recorder.published.clear()
    day_31 = NOW + timedelta(days=31)

    result = refresh_part(
        EventWriteDuringTheSweep(store, recorder, segments, "bea", day_31), recorder, segments, TRAITS, 0, 1, day_31
    )

    assert (result.scanned, result.changed) == (2, 1)  # bea's write by the sweep lost to the event's
    people = {p.identities["user_id"][0]: p for p in live_profiles(store)}
    for profile in people.values():
        assert set(profile.segments) == from_scratch(segments, profile, day_31) == {"lapsed"}
    assert people["bea"].event_counts["Viewed"] == 1
    entered = sorted((d["profileId"], d["segmentId"], v is not None) for k, d, v in recorder.segment_events())
    # bea entered through the event write (which has a version), cal through the sweep (none).
    assert entered == sorted([(people["bea"].id, "lapsed", True), (people["cal"].id, "lapsed", False)])


# ============================================================================== estimates
TIER_GOLD = {"path": "traits.tier", "op": "eq", "value": "gold"}


@pytest.fixture
def five_hundred(stack: Stack) -> ProfileStore:
    store = profile_store(stack)
    for n in range(500):
        tier = "gold" if n % 3 == 0 else "silver"
        store.save(WritePlan(Profile(id=f"person-{n:03d}", created_at=iso(NOW), traits={"tier": tier})))
    return store


class FirstPart(random.Random):
    """Shuffles the scan's parts so that `part` is read first: a budget of 0 then reads it alone."""

    def __init__(self, part: int) -> None:
        super().__init__(part)
        self.part = part

    def shuffle(self, x: MutableSequence[Any]) -> None:
        rotated = [*x[self.part :], *x[: self.part]]
        x[:] = rotated


def test_given_500_profiles_when_estimated_then_exact_if_every_part_is_read_and_bounded_around_the_truth_if_one(
    five_hundred: ProfileStore,
) -> None:
    truth = 167  # every third of person-000 .. person-499

    full = estimate_condition(five_hundred, TIER_GOLD, NOW, budget_s=600, rng=random.Random(7))
    single = [estimate_condition(five_hundred, TIER_GOLD, NOW, budget_s=0, rng=FirstPart(p)) for p in range(64)]

    assert {k: full[k] for k in ("exact", "scanned", "matched", "estimated", "low", "high")} == {
        "exact": True,
        "scanned": 500,
        "matched": truth,
        "estimated": truth,
        "low": truth,
        "high": truth,
    }
    assert len(full["sample"]) == 10
    assert {
        five_hundred.profiles([s["id"] for s in full["sample"]])[s["id"]].traits["tier"] for s in full["sample"]
    } == {"gold"}
    for answer in single:
        assert answer["exact"] is False and 0 < answer["scanned"] < 500
        assert answer["matched"] <= answer["low"] <= answer["estimated"] <= answer["high"]
    assert sum(a["scanned"] for a in single) == 500  # the parts are a partition: each read alone once
    assert sum(a["estimated"] for a in single) == 64 * truth  # one part scaled up is unbiased
    # A 95 % interval may miss the truth for an unlucky slice, not for many (59 of the 64 hold it).
    assert sum(a["low"] <= truth <= a["high"] for a in single) >= 56


# ============================================================================== backfill progress
def test_given_a_backfill_when_a_finished_part_is_redelivered_then_the_job_is_not_done_early(stack: Stack) -> None:
    jobs = RefreshJobs(stack.output("DataTableName"), client=stack.clients.dynamodb())
    jobs.create("rf_1", {"segment_id": "buyers", "version": 1}, parts=3, now=NOW)

    jobs.progress("rf_1", part=0, scanned=10, changed=2, part_done=True, now=NOW)
    again = jobs.progress("rf_1", part=0, scanned=0, changed=0, part_done=True, now=NOW)  # redelivered
    assert (again["parts_done"], again["state"]) == (1, "running")

    jobs.progress("rf_1", part=1, scanned=5, changed=0, part_done=False, now=NOW)  # a page, not the end
    jobs.progress("rf_1", part=1, scanned=5, changed=1, part_done=True, now=NOW)
    done = jobs.progress("rf_1", part=2, scanned=1, changed=0, part_done=True, now=NOW)
    assert (done["parts_done"], done["state"], done["scanned"], done["changed"]) == (3, "done", 21, 3)
    assert jobs.get("rf_1") == done
