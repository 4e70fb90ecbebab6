"""How fast journeys move people along, and what each move writes to DynamoDB.

The journeys are the shipped library (`shared/midstage/library/journeys/*.yaml`, enabled as an
operator would) plus one typical graph defined here (enter → wait 1h; wake → condition → send →
tag → wait 2d; wake → condition → send → exit), so the figures do not depend on library edits.
Each scenario takes a person from the entry through every wait to the end: timers fire when
due (a wait for an event times out, the longer path), except two scenarios where an event ends
it: an "Email Opened" ends the welcome series' wait, an order is the abandoned cart's goal. A
move is one wake (an entry, a timer, an event); its steps are the steps it ran.

1. `logic.journeys.advance` alone (pure): moves and steps per second on one core, the inputs
   of every move prepared beforehand.
2. `JourneyRunner.handle` end to end with in-memory ports: fakes implementing the same
   Protocols (instances packed as the store packs them, with its revision condition; profiles
   as stored items decoded with `_profile_from_item`; entry caps, counters and timers on
   dicts; the real `MessageQueue` and `SqsHandoff` with a stub SQS client).
3. The same with the real stores (`ProfileStore`, `JourneyInstances`, `TimerStore`,
   `EntryCaps`, `Counters`) on moto in-process: NOT AWS, moto's Python emulation of DynamoDB.
4. Write units per move, from item sizes as DynamoDB bills them: every write the runner makes
   on moto is sized (`profile_store.item_size`) before and after, 1 WCU per started KB of the
   larger; reads likewise (4 KB units, halved when eventually consistent).

Medians of several timed repeats, spread (min-max) beside them, in CPU time of the process
(`time.process_time`): on a shared machine the wall clock also counts the wait for a core.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import yaml
from botocore.exceptions import ClientError

import midstage
from bench.bench_audience import DroppedBatches, make_profile
from bench.bench_profile_updater import data_table_definition, enriched, local_cloud
from midstage import keys
from midstage.adapters.automation_store import EntryCaps, JourneyInstances, Stale
from midstage.adapters.counters import Counters, shard_of
from midstage.adapters.documents import pack, unpack
from midstage.adapters.dynamo import item_size
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore, _profile_from_item, _profile_item
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.logic.journeys import (
    CompiledJourney,
    Instance,
    Wake,
    advance,
    compile_journey,
    date_entry_key,
    entry_key_for,
    start_instance,
)
from midstage.logic.profile import slim_event
from midstage.logic.timefmt import iso
from midstage.models.journeys import DateEntry, EventEntry, Journey, SegmentEntry
from midstage.models.profile import Profile
from midstage.services import journeys as service
from midstage.services.journeys import JourneyCatalog, JourneyRunner

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00 in Paris: the birthday's 10:00 is ahead
LIBRARY = Path(midstage.__file__).resolve().parent / "library" / "journeys"
REPEATS = 5
PURE_SECONDS = 0.15  # per scenario and repeat
PEOPLE = 60  # per scenario and in-memory repeat
MOTO_PEOPLE = 4
MOTO_REPEATS = 3
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/bench"
# CPU time of this process, not wall time: the machine is shared, and under load the wall clock
# measures the wait for a core as much as the work.
cpu_time = time.process_time

TYPICAL = Journey.model_validate(
    {
        "id": "typical",
        "name": "Typical graph",
        "entry": {"type": "event", "event": "Product Viewed"},
        "entry_conditions": {"path": "identities.email", "op": "exists", "value": True},
        "start": "wait-1h",
        "steps": {
            "wait-1h": {"type": "wait", "duration": "1h", "next": "subscribed"},
            "subscribed": {
                "type": "condition",
                "condition": {"path": "traits.newsletter", "op": "eq", "value": True},
                "yes": "send-picks",
                "no": "done",
            },
            "send-picks": {
                "type": "send",
                "channels": ["email"],
                "template": "picks-email",
                "vars": {"shop_url": "https://shop.example.com/", "coupon_code": "PICKS10"},
                "next": "tag-nudged",
            },
            "tag-nudged": {"type": "update_profile", "add_tags": ["nudged"], "next": "wait-2d"},
            "wait-2d": {"type": "wait", "duration": "2d", "next": "still-browsing"},
            "still-browsing": {
                "type": "condition",
                "condition": {"path": "computed.orders", "op": "gte", "value": 1},
                "yes": "send-reminder",
                "no": "done",
            },
            "send-reminder": {
                "type": "send",
                "channels": ["email"],
                "template": "picks-reminder-email",
                "vars": {"shop_url": "https://shop.example.com/"},
                "next": "done",
            },
            "done": {"type": "exit"},
        },
        "exit_when": [{"event": "Order Completed"}],
        "reentry": {"mode": "cooldown", "days": 7},
        "daily_cap": 50_000,
    }
)


# ------------------------------------------------------------------------------ people and journeys
def journey_profile() -> Profile:
    """A reachable customer who ordered 40 days ago, is in silent-customers and has a birthday
    three days after T0 in Paris: every library journey lets them in and takes its long path."""
    profile = make_profile(random.Random(7), 1, T0)
    birthday = (T0 + timedelta(days=3)).strftime("1988-%m-%d")
    profile.traits = {**profile.traits, "birthday": birthday, "newsletter": True}
    profile.orders = max(profile.orders, 2)
    profile.revenue = "184.50"
    profile.last_order_at = iso(T0 - timedelta(days=40))
    profile.timezone = "Europe/Paris"
    profile.segments = {"silent-customers": iso(T0 - timedelta(days=1)), "high-value": iso(T0 - timedelta(days=90))}
    profile.computed = {**profile.computed, "orders": profile.orders}
    return profile


def person(base: Profile, profile_id: str) -> Profile:
    return replace(
        base,
        id=profile_id,
        identities={**base.identities, "user_id": [f"u-{profile_id}"], "email": [f"{profile_id}@example.com"]},
        traits={**base.traits, "email": f"{profile_id}@example.com"},
    )


def library_journeys() -> tuple[list[Journey], list[str]]:
    """The shipped journeys, enabled; and what could not be read (the library may be mid-edit)."""
    found: list[Journey] = []
    problems: list[str] = []
    for path in sorted(LIBRARY.glob("*.yaml")) if LIBRARY.is_dir() else []:
        try:
            journey = Journey.model_validate({**yaml.safe_load(path.read_text()), "enabled": True})
            compile_journey(journey)
        except Exception as error:  # a file being edited: measured without it, and said so
            problems.append(f"{path.name}: {str(error).splitlines()[0][:100]}")
            continue
        found.append(journey)
    return found, problems


def track(profile: Profile, name: str, at: datetime, **properties: Any) -> dict[str, Any]:
    """A person's track event as the updater publishes it on the bus (slim)."""
    user = profile.identities["user_id"][0]
    return slim_event(
        enriched("track", user_id=user, anonymous_id=f"anon-{user}", at=at, event=name, properties=properties)
    )


@dataclass(frozen=True)
class Scenario:
    label: str
    compiled: CompiledJourney
    wakes: tuple[str | None, ...]  # after the entry, in order: None = the pending timer, else an event name

    def entry(self, profile: Profile, now: datetime) -> tuple[str, dict[str, Any]]:
        """The domain event that lets the person in at `now`."""
        entry = self.compiled.journey.entry
        if isinstance(entry, EventEntry):
            properties = {"order_id": "ord_000042", "revenue": 119.97, "currency": "EUR"}
            event = track(profile, entry.event, now - timedelta(seconds=5), **properties)
            return "event.tracked", {"profileId": profile.id, "event": event}
        if isinstance(entry, SegmentEntry):
            at = iso(now - timedelta(seconds=5))
            return "segment.entered", {"profileId": profile.id, "segmentId": entry.segment, "at": at, "occurrence": at}
        assert isinstance(entry, DateEntry)
        key = date_entry_key(self.compiled, profile, now, "UTC")
        assert key is not None, f"{self.label}: the date entry does not let the bench person in"
        return "journey.date", {"profileId": profile.id, "journeyId": self.compiled.id, "entryKey": key}


def scenarios(journeys: Sequence[Journey], profile: Profile) -> list[Scenario]:
    found: list[Scenario] = []
    for journey in [*journeys, TYPICAL]:
        compiled = compile_journey(journey)
        walked = pure_moves(Scenario(journey.id, compiled, ()), profile, follow_timers=True)
        found.append(Scenario(journey.id, compiled, (None,) * (len(walked) - 1)))
    by_id = {s.label: s for s in found}
    if "welcome-series" in by_id:
        found.append(Scenario("welcome-series, opened", by_id["welcome-series"].compiled, ("Email Opened",)))
    if "abandoned-cart" in by_id:
        found.append(Scenario("abandoned-cart, ordered", by_id["abandoned-cart"].compiled, ("Order Completed",)))
    return found


# ------------------------------------------------------------------------------ 1. advance alone
@dataclass
class Move:
    instance: Instance
    wake: Wake
    now: datetime
    steps: int = 0
    messages: int = 0


def pure_moves(scenario: Scenario, profile: Profile, *, follow_timers: bool = False) -> list[Move]:
    """Every move of one person through the scenario: (instance, wake, now), as the runner
    would hand them to `advance`. Checks that the person reaches the end."""
    compiled = scenario.compiled
    detail_type, detail = scenario.entry(profile, T0)
    if detail_type == "journey.date":
        key = str(detail["entryKey"])
    else:
        found = entry_key_for(compiled, detail_type, detail, profile, now=T0)
        assert found is not None, f"{scenario.label}: the entry does not let the bench person in"
        key = found
    instance = start_instance(compiled, profile.id, None, key, detail.get("event"), T0)
    moves = [Move(instance, Wake.enter(), T0)]
    progress = advance(compiled, instance, profile, moves[0].wake, T0)
    wakes: list[str | None] = list(scenario.wakes)
    now = T0
    while True:
        moves[-1].steps, moves[-1].messages = progress.steps_run, len(progress.messages)
        if wakes:
            wanted = wakes.pop(0)
        elif follow_timers and progress.instance.status == "waiting":
            wanted = None
        else:
            break
        if wanted is None:
            [timer] = progress.timers
            wake, now = Wake.timer(timer.timer_id, iso(timer.at)), timer.at
        else:
            now = now + timedelta(minutes=10)
            # An event a message causes names it: the run's own last message (an open of it).
            sent = progress.instance.sent or []
            about = {"messageId": sent[-1]} if sent and wanted.startswith("Email ") else {}
            wake = Wake.on_event(track(profile, wanted, now - timedelta(seconds=5), **about))
        moves.append(Move(progress.instance, wake, now))
        progress = advance(compiled, progress.instance, profile, wake, now)
    if progress.instance.status not in ("completed", "exited"):
        raise AssertionError(f"{scenario.label}: ended {progress.instance.status} at {progress.instance.step}")
    return moves


def rate_line(moves: int, steps: int, samples: list[float]) -> str:
    """samples: seconds per repeat of `moves` moves making `steps` steps."""
    median = statistics.median(samples)
    return (
        f"{moves / median:>8,.0f} moves/s ({moves / max(samples):,.0f}-{moves / min(samples):,.0f})"
        f"  {steps / median:>8,.0f} steps/s  {median / moves * 1e6:7.1f} µs/move"
    )


def pure_advance(plays: list[Scenario], profile: Profile) -> dict[str, float]:
    print(
        f"   1. advance (pure), one core, CPU time; median of {REPEATS} repeats of ~{PURE_SECONDS} s "
        "per scenario (min-max)"
    )
    per_move: dict[str, float] = {}
    all_moves = all_steps = 0
    all_seconds: list[float] = [0.0] * REPEATS  # one person through every scenario
    for scenario in plays:
        moves = pure_moves(scenario, profile)
        compiled = scenario.compiled

        def once(moves: list[Move] = moves, compiled: CompiledJourney = compiled) -> int:
            steps = 0
            for move in moves:
                progress = advance(compiled, move.instance, profile, move.wake, move.now)
                steps += progress.steps_run
            return steps

        started = cpu_time()
        steps_per_pass = once()
        rounds = max(1, round(PURE_SECONDS / max(cpu_time() - started, 1e-6)))
        assert steps_per_pass == sum(m.steps for m in moves), "advance is not deterministic"
        samples = []
        for repeat in range(REPEATS):
            started = cpu_time()
            for _ in range(rounds):
                once()
            samples.append(cpu_time() - started)
            all_seconds[repeat] += samples[-1] / rounds
        per_move[scenario.label] = statistics.median(samples) / (rounds * len(moves))
        all_moves += len(moves)
        all_steps += steps_per_pass
        path = " | ".join(str(m.steps) for m in moves)
        label = f"{scenario.label} ({len(moves)} moves, steps {path})"
        print(f"      {label:<52} {rate_line(rounds * len(moves), rounds * steps_per_pass, samples)}")
    label = f"all: one person through each ({all_steps / all_moves:.2f} steps/move)"
    print(f"      {label:<52} {rate_line(all_moves, all_steps, all_seconds)}")
    return per_move


# ------------------------------------------------------------------------------ in-memory ports
class LibraryDocuments:
    def __init__(self, journeys: Sequence[Journey]) -> None:
        self.journeys = list(journeys)

    def documents(self, kind: str, model: type[Journey]) -> list[Journey]:
        return list(self.journeys) if kind == keys.JOURNEY_PK else []


class StoredProfiles:
    """Profiles kept as their DynamoDB items and decoded per read, as ProfileStore.profile does."""

    def __init__(self, profiles: Sequence[Profile]) -> None:
        self.items = {p.id: _profile_item(p) for p in profiles}

    def profile(self, profile_id: str) -> Profile | None:
        item = self.items.get(profile_id)
        return _profile_from_item(item) if item else None


class MemoryInstances:
    """JourneyInstances on a dict: documents packed as the store packs them, written only over
    the revision read (Stale otherwise), with the move's counts."""

    def get(self, profile_id: str, journey_id: str) -> dict[str, Any] | None:
        found = self.items.get((profile_id, journey_id))
        return {**unpack(found[0]), "rev": found[1]} if found else None

    def of_person(self, profile_id: str) -> list[dict[str, Any]]:
        return [
            {**unpack(blob), "rev": rev}
            for (person_id, _), (blob, rev) in sorted(self.items.items())
            if person_id == profile_id
        ]

    def __init__(self, counters: MemoryCounters) -> None:
        self.items: dict[tuple[str, str], tuple[bytes, int]] = {}
        self.counters = counters

    def save(self, doc: Mapping[str, Any], expected_rev: int | None, counts: Mapping[str, int] | None = None) -> int:
        key = (str(doc["profile_id"]), str(doc["journey_id"]))
        current = self.items.get(key)
        if (expected_rev is None and current is not None) or (
            expected_rev is not None and (current is None or current[1] != expected_rev)
        ):
            raise Stale(f"journey instance {key} moved on")
        rev = (expected_rev or 0) + 1
        self.items[key] = (pack({**doc, "rev": rev}), rev)
        if counts:
            self.counters.add("journey", key[1], "all", key[0], counts)
        return rev


class MemoryTimers:
    def __init__(self) -> None:
        self.timers: dict[str, tuple[datetime, dict[str, Any], str]] = {}

    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any], kind: str = "deliver") -> None:
        self.timers[timer_id] = (at, dict(payload), kind)


class MemoryEntryCaps:
    def __init__(self) -> None:
        self.entries: Counter[tuple[str, str]] = Counter()

    def take(self, journey_id: str, day: str, cap: int, now: datetime) -> bool:
        if self.entries[journey_id, day] >= cap:
            return False
        self.entries[journey_id, day] += 1
        return True


class MemoryCounters:
    def __init__(self) -> None:
        self.shards: dict[tuple[str, str, str, int], Counter[str]] = {}
        self.markers: set[tuple[str, str]] = set()

    def add(self, kind: str, origin_id: str, run: str, subject: str, counts: Mapping[str, Any]) -> None:
        shard = self.shards.setdefault((kind, origin_id, run, shard_of(subject)), Counter())
        shard.update({name: amount for name, amount in counts.items() if amount})

    def add_once(
        self,
        kind: str,
        origin_id: str,
        run: str,
        subject: str,
        counts: Mapping[str, Any],
        *,
        once: tuple[str, str],
        now: datetime,
        keep: timedelta,
    ) -> bool:
        if once in self.markers:
            return False
        self.markers.add(once)
        self.add(kind, origin_id, run, subject, counts)
        return True


class TimerLog:
    """Passes each timer on to the store and remembers each person's latest, so the bench can
    deliver it when due, as the timer sweep would."""

    def __init__(self, store: service.Timers) -> None:
        self.store = store
        self.latest: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}

    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any], kind: str = "deliver") -> None:
        self.latest[str(payload["journeyId"]), str(payload["profileId"])] = (at, dict(payload))
        self.store.schedule(at, timer_id, payload, kind)


@dataclass
class Wired:
    runner: JourneyRunner
    timers: TimerLog
    instances: service.Instances
    sqs: DroppedBatches


def wire(
    journeys: Sequence[Journey],
    profiles: service.Profiles,
    instances: service.Instances,
    timers: service.Timers,
    caps: service.EntryCaps,
    counters: service.CountsOnce,
) -> Wired:
    sqs = DroppedBatches()
    log = TimerLog(timers)
    runner = JourneyRunner(
        JourneyCatalog(LibraryDocuments(journeys)),
        profiles,
        instances,
        MessageQueue(QUEUE_URL, client=cast(Any, sqs)),
        SqsHandoff(QUEUE_URL, client=cast(Any, sqs)),
        log,
        caps,
        counters,
    )
    return Wired(runner, log, instances, sqs)


def in_memory(journeys: Sequence[Journey], people: Sequence[Profile]) -> Wired:
    counters = MemoryCounters()
    return wire(
        journeys, StoredProfiles(people), MemoryInstances(counters), MemoryTimers(), MemoryEntryCaps(), counters
    )


# ------------------------------------------------------------------------------ 2. the runner
@dataclass
class Played:
    moves: int = 0
    steps: int = 0
    seconds: float = 0.0


def play(
    scenario: Scenario,
    wired: Wired,
    people: Sequence[Profile],
    on_move: Callable[[int, str, int], None] | None = None,
) -> Played:
    """Every person through the scenario, a stage at a time (all entries, then every first
    timer, ...), as the runner would see them; only `handle` is timed."""
    played = Played()
    journey_id = scenario.compiled.id
    runner = wired.runner
    now_of = {p.id: T0 for p in people}
    for stage in range(len(scenario.wakes) + 1):
        for profile in people:
            if stage == 0:
                detail_type, detail = scenario.entry(profile, T0)
                now = T0
            elif scenario.wakes[stage - 1] is None:
                at, payload = wired.timers.latest[journey_id, profile.id]
                detail_type, detail = "journey.wake", {**payload, "dueAt": iso(at)}
                now = at + timedelta(seconds=20)  # the sweep runs once a minute
            else:
                now = now_of[profile.id] + timedelta(minutes=10)
                name = str(scenario.wakes[stage - 1])
                doc = wired.instances.get(profile.id, journey_id) or {}
                sent = doc.get("sent") or []
                about = {"messageId": sent[-1]} if sent and name.startswith("Email ") else {}
                event = track(profile, name, now, **about)
                detail_type, detail = "event.tracked", {"profileId": profile.id, "event": event}
            now_of[profile.id] = now
            started = cpu_time()
            summary = runner.handle(detail_type, detail, now)
            played.seconds += cpu_time() - started
            if not (summary.entered or summary.moved):
                raise AssertionError(f"{scenario.label}: stage {stage} did not move {profile.id}: {summary}")
            played.moves += 1
            played.steps += summary.steps
            if on_move is not None:
                on_move(stage, profile.id, summary.steps)
    for profile in people:
        doc = wired.instances.get(profile.id, journey_id)
        if doc is None or doc["status"] not in ("completed", "exited"):
            raise AssertionError(f"{scenario.label}: {profile.id} did not finish: {doc and doc['status']}")
    return played


def cast_of(base: Profile, scenario: Scenario, tag: str, count: int) -> list[Profile]:
    slug = scenario.label.replace(", ", "-").replace(" ", "-")
    return [person(base, f"{slug}-{tag}-{n:04d}") for n in range(count)]


def runner_in_memory(plays: list[Scenario], base: Profile, pure: dict[str, float]) -> dict[str, float]:
    print(
        f"   2. JourneyRunner.handle, in-memory ports, one core, CPU time; {PEOPLE} people per scenario, "
        f"median of {REPEATS} repeats (min-max)"
    )
    per_move: dict[str, float] = {}
    all_seconds: list[float] = [0.0] * REPEATS  # every person through every scenario
    all_moves = all_steps = 0
    for scenario in plays:
        samples: list[float] = []
        played = Played()
        for repeat in range(REPEATS + 1):
            people = cast_of(base, scenario, f"m{repeat}", PEOPLE)
            played = play(scenario, in_memory([scenario.compiled.journey], people), people)
            if repeat:  # the first is a warm-up
                samples.append(played.seconds)
                all_seconds[repeat - 1] += played.seconds
        per_move[scenario.label] = statistics.median(samples) / played.moves
        all_moves += played.moves
        all_steps += played.steps
        overhead = per_move[scenario.label] / pure[scenario.label]
        print(
            f"      {scenario.label:<52} {rate_line(played.moves, played.steps, samples)}   x{overhead:.1f} of advance"
        )
    pure_all = sum(pure[s.label] * (len(s.wakes) + 1) for s in plays) / sum(len(s.wakes) + 1 for s in plays)
    overall = statistics.median(all_seconds) / all_moves
    print(
        f"      {'all scenarios':<52} {rate_line(all_moves, all_steps, all_seconds)}   "
        f"x{overall / pure_all:.1f} of advance"
    )
    return per_move


# ------------------------------------------------------------------------------ 3./4. moto
@dataclass
class Write:
    kind: str
    units: int
    before: int
    after: int


@dataclass
class Metered:
    writes: list[Write] = field(default_factory=list)
    read_units: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


class MeteredClient:
    """The moto DynamoDB client, with every call counted and every write sized as DynamoDB
    bills it: the larger of the item before and after, 1 WCU per started KB; reads in 4 KB
    units, halved when eventually consistent. The sizing reads go around the meter."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.metered = Metered()

    def _item(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return found

    def _write(self, operation: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        self.metered.calls[operation] += 1
        table = kwargs["TableName"]
        key = kwargs.get("Key") or {"pk": kwargs["Item"]["pk"], "sk": kwargs["Item"]["sk"]}
        before = self._item(table, key)
        try:
            answer = call(**kwargs)
        except ClientError:
            self.metered.writes.append(Write("refused (" + kind_of(key, before, None) + ")", 1, 0, 0))
            raise
        after = self._item(table, key)
        sizes = (item_size(before) if before else 0, item_size(after) if after else 0)
        self.metered.writes.append(Write(kind_of(key, before, after), _units(max(sizes), 1024), *sizes))
        return answer

    def put_item(self, **kwargs: Any) -> Any:
        return self._write("PutItem", self.client.put_item, **kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        return self._write("UpdateItem", self.client.update_item, **kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        """Each item of a transaction billed twice its size, as DynamoDB bills transactional writes."""
        self.metered.calls["TransactWriteItems"] += 1
        targets = []
        for action in kwargs["TransactItems"]:
            ((_, spec),) = action.items()
            key = spec.get("Key") or {"pk": spec["Item"]["pk"], "sk": spec["Item"]["sk"]}
            targets.append((spec["TableName"], key, self._item(spec["TableName"], key)))
        try:
            answer = self.client.transact_write_items(**kwargs)
        except ClientError:
            for _, key, before in targets:
                self.metered.writes.append(Write("refused (" + kind_of(key, before, None) + ")", 2, 0, 0))
            raise
        for table, key, before in targets:
            after = self._item(table, key)
            sizes = (item_size(before) if before else 0, item_size(after) if after else 0)
            self.metered.writes.append(Write(kind_of(key, before, after), 2 * _units(max(sizes), 1024), *sizes))
        return answer

    def get_item(self, **kwargs: Any) -> Any:
        self.metered.calls["GetItem"] += 1
        answer = self.client.get_item(**kwargs)
        size = item_size(answer["Item"]) if "Item" in answer else 0
        self.metered.read_units += _units(size, 4096) * (1.0 if kwargs.get("ConsistentRead") else 0.5)
        return answer

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.metered.calls["BatchGetItem"] += 1
        answer = self.client.batch_get_item(**kwargs)
        for table, items in answer["Responses"].items():
            factor = 1.0 if kwargs["RequestItems"][table].get("ConsistentRead") else 0.5
            self.metered.read_units += sum(_units(item_size(item), 4096) * factor for item in items)
        return answer

    def query(self, **kwargs: Any) -> Any:
        self.metered.calls["Query"] += 1
        answer = self.client.query(**kwargs)
        size = sum(item_size(item) for item in answer.get("Items", []))
        self.metered.read_units += _units(size, 4096) * (1.0 if kwargs.get("ConsistentRead") else 0.5)
        return answer


def kind_of(key: Mapping[str, Any], before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    pk, sk = key["pk"]["S"], key["sk"]["S"]
    if sk.startswith(keys.JOURNEY_PREFIX):
        if after is not None and "outbox" in unpack(after["doc"]["B"]):
            return "instance + outbox"
        if before is not None and "outbox" in unpack(before["doc"]["B"]):
            return "outbox clear"
        return "instance"
    for prefix, kind in (("STATS#", "counters"), ("TIMER#", "timer"), ("JENTRIES#", "entry cap")):
        if pk.startswith(prefix):
            return kind
    return pk.split("#", 1)[0]


def moto_wiring(dynamodb: Any, journeys: Sequence[Journey], people: Sequence[Profile], client: Any) -> Wired:
    table = f"DataTable-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=table, **data_table_definition())
    items = [_profile_item(p) for p in people]
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        )
    counters = Counters(table, client=client)
    return wire(
        journeys,
        ProfileStore(table, client=client),
        JourneyInstances(table, client=client, counters=counters),
        TimerStore(table, client=client),
        EntryCaps(table, client=client),
        counters,
    )


KINDS = ("instance + outbox", "outbox clear", "instance", "counters", "timer", "entry cap")
HEADINGS = ("inst.+outbox", "outbox clear", "instance", "counters", "timer", "entry cap")
CELL = 15


def on_moto(plays: list[Scenario], base: Profile, in_memory_per_move: dict[str, float]) -> None:
    with local_cloud() as (dynamodb, _events):
        print(
            f"   3. JourneyRunner.handle with the real stores on moto in-process, NOT AWS (DynamoDB emulated in "
            f"Python); {MOTO_PEOPLE} people per scenario, all scenarios together, median of {MOTO_REPEATS}"
        )
        moves = steps = 0
        memory = 0.0
        samples: list[float] = []
        for repeat in range(MOTO_REPEATS + 1):
            seconds, moves, steps, memory = 0.0, 0, 0, 0.0
            for scenario in plays:
                people = cast_of(base, scenario, f"moto{repeat}", MOTO_PEOPLE)
                wired = moto_wiring(dynamodb, [scenario.compiled.journey], people, dynamodb)
                played = play(scenario, wired, people)
                seconds += played.seconds
                moves += played.moves
                steps += played.steps
                memory += in_memory_per_move[scenario.label] * played.moves
            if repeat:  # the first is a warm-up
                samples.append(seconds)
        print(f"      {'all scenarios, stores on moto':<52} {rate_line(moves, steps, samples)}")
        print(
            f"      moto's emulation adds {(statistics.median(samples) - memory) / moves * 1e3:,.1f} ms per move to "
            f"the {memory / moves * 1e6:,.0f} µs of the same moves in memory; on AWS each call is a network round "
            "trip instead"
        )
        write_units(dynamodb, plays, base)


@dataclass
class MoveCost:
    stage: int
    profile_id: str
    steps: int
    writes: list[Write]
    read_units: float
    calls: Counter[str]


class MoveMeter:
    """What each move cost: the meter's writes, reads and calls since the previous move."""

    def __init__(self, meter: MeteredClient) -> None:
        self.meter = meter
        self.costs: list[MoveCost] = []
        self._writes, self._reads, self._calls = 0, 0.0, Counter[str]()

    def __call__(self, stage: int, profile_id: str, steps: int) -> None:
        metered = self.meter.metered
        self.costs.append(
            MoveCost(
                stage,
                profile_id,
                steps,
                metered.writes[self._writes :],
                metered.read_units - self._reads,
                metered.calls - self._calls,
            )
        )
        self._writes, self._reads, self._calls = len(metered.writes), metered.read_units, Counter(metered.calls)


def write_units(dynamodb: Any, plays: list[Scenario], base: Profile) -> None:
    print(
        "   4. DynamoDB writes per move, from item sizes (moto's own capacity figures are not used): WCU per write "
        "= started KB of the larger of the item before and after; [bytes of that item]"
    )
    header = "".join(f"{heading:>{CELL}}" for heading in HEADINGS)
    print(f"      {'scenario: move':<42}{'steps':>6}{header}{'WCU':>5}{'RRU':>5}  DynamoDB calls")
    totals: list[tuple[str, int, int, int, int, int]] = []
    for scenario in plays:
        meter = MeteredClient(dynamodb)
        people = cast_of(base, scenario, "units", 2)
        moves = MoveMeter(meter)
        wired = moto_wiring(dynamodb, [scenario.compiled.journey], people, meter)
        play(scenario, wired, people, on_move=moves)
        instance_writes = [w for w in meter.metered.writes if w.kind in KINDS[:3]]
        assert isinstance(wired.instances, JourneyInstances)
        if wired.instances.last_item_bytes != instance_writes[-1].after:
            raise AssertionError(
                f"JourneyInstances sized its last item {wired.instances.last_item_bytes} B, the meter "
                f"{instance_writes[-1].after} B"
            )
        first: dict[int, list[tuple[str, int]]] = {}
        units = steps = timers = timer_units = 0
        for cost in moves.costs:
            line = describe(cost.writes)
            units_by_kind = [(w.kind, w.units) for w in cost.writes]
            if cost.profile_id != people[0].id:
                if first.get(cost.stage) != units_by_kind:
                    print(f"      (another person's move {cost.stage + 1} cost differently:{line})")
                continue
            first[cost.stage] = units_by_kind
            move_units = sum(w.units for w in cost.writes)
            units += move_units
            steps += cost.steps
            fired = [w for w in cost.writes if w.kind == "timer"]
            timers += len(fired)
            timer_units += sum(_units(w.after, 1024) for w in fired)  # the sweep deletes what was written
            calls = " ".join(f"{name} {count}" for name, count in sorted(cost.calls.items()))
            label = f"{scenario.label}: {cost.stage + 1}. {wake_name(scenario, cost.stage)}"
            print(f"      {label:<42}{cost.steps:>6}{line}{move_units:>5}{cost.read_units:>5.1f}  {calls}")
        sends = sum(m.messages for m in pure_moves(scenario, people[0]))
        totals.append((scenario.label, len(first), steps, units, sends, timer_units))
    print("      (JourneyInstances.last_item_bytes agrees with the meter on every scenario's last instance write)")
    print("      per person through the scenario; +sweep: the timer sweep deletes each timer it fires (by its size)")
    print(
        f"      {'scenario':<42}{'moves':>6}{'steps':>6}{'WCU':>6}{'+sweep':>7}{'per step':>9}{'sends':>6}"
        f"{'per send':>9}"
    )
    for label, moves_made, steps, units, sends, deletes in totals:
        per_send = f"{(units + deletes) / sends:9.1f}" if sends else f"{'-':>9}"
        print(
            f"      {label:<42}{moves_made:>6}{steps:>6}{units:>6}{deletes:>7}{(units + deletes) / steps:>9.2f}"
            f"{sends:>6}{per_send}"
        )


def wake_name(scenario: Scenario, stage: int) -> str:
    if stage == 0:
        return "enter"
    wake = scenario.wakes[stage - 1]
    return "timer" if wake is None else wake


def describe(writes: Sequence[Write]) -> str:
    by_kind: dict[str, list[Write]] = {}
    for write in writes:
        by_kind.setdefault(write.kind, []).append(write)
    cells = []
    for kind in KINDS:
        found = by_kind.pop(kind, [])
        if not found:
            cells.append(f"{'-':>{CELL}}")
            continue
        units = sum(w.units for w in found)
        sizes = "+".join(f"{max(w.before, w.after):,}" for w in found)
        cells.append(f"{f'{units} [{sizes}]':>{CELL}}")
    if by_kind:
        cells.append(" other: " + ", ".join(f"{k} {sum(w.units for w in v)}" for k, v in by_kind.items()))
    return "".join(cells)


def main() -> None:
    journeys, problems = library_journeys()
    for problem in problems:
        print(f"   library journey left out: {problem}")
    base = journey_profile()
    plays = scenarios(journeys, base)
    print(
        f"   {len(journeys)} library journeys ({', '.join(j.id for j in journeys) or 'none found'}) + the typical "
        f"graph; {len(plays)} scenarios; profile item {item_size(_profile_item(base)):,} B"
    )
    pure = pure_advance(plays, base)
    memory = runner_in_memory(plays, base, pure)
    on_moto(plays, base, memory)
