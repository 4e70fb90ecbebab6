"""The journey runner against moto: real instance, cap, counter and timer items in the DataTable,
messages read back from the delivery queue, profile changes from the ingest queue, and timer
wakes released by the sweep onto the bus and read back from a queue subscribed to it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from midstage import keys
from midstage.adapters.automation_store import EntryCaps, JourneyInstances
from midstage.adapters.bus import EventPublisher
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters, shard_of
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.logic.timefmt import iso, minute_of
from midstage.models.journeys import Journey
from midstage.models.messages import DomainEvent
from midstage.models.messaging import MessageRequest, message_id_for
from midstage.models.profile import Profile, WritePlan
from midstage.services.journeys import JourneyCatalog, JourneyRunner, Summary, date_entries
from midstage.services.timers import sweep
from tests.integration.conftest import Stack
from tests.support.concurrency import race
from tests.support.dying import DiesAtWrite, WorkerDied
from tests.support.fakes import MemoryArchive

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
AFTER_THE_HOUR = NOW + timedelta(hours=1, minutes=1, seconds=5)  # the sweep that releases a 1h wait

CART: dict[str, Any] = {
    "id": "cart",
    "name": "Cart reminder",
    "entry": {"type": "event", "event": "Cart Abandoned"},
    "start": "remind",
    "steps": {
        "remind": {"type": "send", "channels": ["email"], "template": "cart-reminder", "next": "wait"},
        "wait": {"type": "wait", "duration": "1h", "next": "nudge"},
        "nudge": {"type": "send", "channels": ["email"], "template": "cart-nudge", "next": "mark"},
        "mark": {"type": "update_profile", "add_tags": ["cart-nudged"], "next": "done"},
        "done": {"type": "exit"},
    },
    "exit_when": [{"event": "Order Completed"}],
}
WELCOME: dict[str, Any] = {
    "id": "welcome",
    "name": "Welcome",
    "entry": {"type": "event", "event": "Signed Up"},
    "start": "hello",
    "steps": {
        "hello": {"type": "send", "channels": ["email"], "template": "welcome-email", "next": "wait-open"},
        "wait-open": {
            "type": "wait",
            "until_event": {"event": "Email Opened"},
            "timeout": "2d",
            "on_event": "thanks",
            "on_timeout": "done",
        },
        "thanks": {"type": "send", "channels": ["email"], "template": "thanks-email", "next": "done"},
        "done": {"type": "exit"},
    },
    "reentry": {"mode": "never"},
}
VIP: dict[str, Any] = {
    "id": "vip-welcome",
    "name": "VIP welcome",
    "entry": {"type": "segment_entered", "segment": "vip"},
    "start": "greet",
    "steps": {
        "greet": {"type": "send", "channels": ["email"], "template": "vip-email", "next": "done"},
        "done": {"type": "exit"},
    },
}
BIRTHDAY: dict[str, Any] = {
    "id": "birthday",
    "name": "Birthday",
    "entry": {"type": "date", "trait": "birthday"},
    "start": "card",
    "steps": {
        "card": {"type": "send", "channels": ["email"], "template": "birthday-email", "next": "done"},
        "done": {"type": "exit"},
    },
}


# ------------------------------------------------------------------------------ the rig
class FailingOnce(MessageQueue):
    """The delivery queue, refusing its first send: the container dies after the state write."""

    def __init__(self, real: MessageQueue) -> None:
        super().__init__(real.queue_url, client=real.client)
        self.failed = False

    def send(self, requests: Sequence[MessageRequest], delay_seconds: int = 0) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the container died before the effects left")
        super().send(requests, delay_seconds)


@dataclass
class Rig:
    stack: Stack
    config: ConfigStore
    profiles: ProfileStore
    instances: JourneyInstances
    caps: EntryCaps
    counters: Counters
    timers: TimerStore
    queue: MessageQueue
    handoff: SqsHandoff
    bus: EventPublisher
    wakes_url: str

    def runner(self, messages: MessageQueue | None = None, archive: MemoryArchive | None = None) -> JourneyRunner:
        """A runner as one container builds it (a fresh catalog each: containers share nothing)."""
        return JourneyRunner(
            JourneyCatalog(self.config),
            self.profiles,
            self.instances,
            messages or self.queue,
            self.handoff,
            self.timers,
            self.caps,
            self.counters,
            archive=archive,
        )

    def dying_runner(self, client: DiesAtWrite) -> JourneyRunner:
        """A runner whose DataTable writes go through `client` (a container that dies mid-move)."""
        table, counters = self.instances.table, Counters(self.instances.table, client=client)  # type: ignore[arg-type]
        return JourneyRunner(
            JourneyCatalog(self.config),
            self.profiles,
            JourneyInstances(table, client=client, counters=counters),  # type: ignore[arg-type]
            self.queue,
            self.handoff,
            TimerStore(table, client=client),  # type: ignore[arg-type]
            EntryCaps(table, client=client),  # type: ignore[arg-type]
            counters,
        )

    def define(self, body: dict[str, Any], **changes: Any) -> Journey:
        current = self.config.find_document(keys.JOURNEY_PK, body["id"], Journey)
        version = current.version + 1 if current else 1
        return self.config.save_document(
            keys.JOURNEY_PK, Journey.model_validate({**body, **changes, "version": version})
        )

    def person(self, profile_id: str, **traits: Any) -> str:
        profile = Profile(
            id=profile_id, created_at=iso(NOW), identities={"user_id": [f"u-{profile_id}"]}, traits=traits
        )
        self.profiles.save(WritePlan(profile))
        return profile_id

    def merge(self, merged_away: str, survivor: str) -> None:
        """Merge one profile into another as the profile updater commits it: the survivor names
        the merged-away profile in `merged_from`, which becomes a tombstone pointing at it."""
        loaded = self.profiles.profiles([merged_away, survivor])
        kept, gone = loaded[survivor], loaded[merged_away]
        kept.merged_from = sorted({*kept.merged_from, merged_away, *gone.merged_from})
        tombstone = Profile(id=gone.id, created_at=gone.created_at, version=gone.version, merged_into=survivor)
        self.profiles.save(WritePlan(kept, [tombstone]))

    def drain(self, url: str) -> list[dict[str, Any]]:
        sqs = self.stack.clients.sqs()
        bodies: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def delivered(self) -> list[dict[str, Any]]:
        return self.drain(self.queue.queue_url)

    def handed_off(self) -> list[dict[str, Any]]:
        return [event for body in self.drain(self.handoff.queue_url) for event in body["events"]]

    def sweep(self, at: datetime) -> list[dict[str, Any]]:
        """The timer sweep at `at`, and the journey.wake details it put on the bus."""
        sweep(self.timers, self.queue, at, self.bus)
        envelopes = self.drain(self.wakes_url)
        assert {e["detail-type"] for e in envelopes} <= {"journey.wake"}
        return [DomainEvent.from_bus(e).detail for e in envelopes]  # as the journey runner reads them

    def instance(self, profile_id: str, journey_id: str) -> dict[str, Any]:
        doc = self.instances.get(profile_id, journey_id)
        assert doc is not None
        return doc

    def totals(self, journey_id: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.counters.totals("journey", journey_id, "all").get("all", {}).items()}


@pytest.fixture
def rig(stack: Stack) -> Rig:
    table, dynamodb = stack.output("DataTableName"), stack.clients.dynamodb()
    sqs, events = stack.clients.sqs(), stack.clients.events()
    wakes_url = sqs.create_queue(QueueName="journey-wakes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=wakes_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.output("EventBusName")
    pattern = {"source": ["midstage"], "detail-type": ["journey.wake"]}
    events.put_rule(Name="journey-wakes", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="journey-wakes", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return Rig(
        stack=stack,
        config=ConfigStore(stack.output("ConfigTableName"), cache_seconds=0, client=dynamodb),
        profiles=ProfileStore(table, client=dynamodb),
        instances=JourneyInstances(table, client=dynamodb, counters=Counters(table, client=dynamodb)),
        caps=EntryCaps(table, client=dynamodb),
        counters=Counters(table, client=dynamodb),
        timers=TimerStore(table, client=dynamodb),
        queue=MessageQueue(stack.output("DeliveryQueueUrl"), client=sqs),
        handoff=SqsHandoff(stack.output("IngestQueueUrl"), client=sqs),
        bus=EventPublisher(bus, client=events),
        wakes_url=wakes_url,
    )


def tracked(profile_id: str, name: str, message_id: str, at: datetime = NOW, **properties: Any) -> dict[str, Any]:
    """An `event.tracked` detail as the profile updater publishes it."""
    event: dict[str, Any] = {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "timestamp": iso(at),
        "sourceId": "src",
        "userId": f"u-{profile_id}",
    }
    if properties:
        event["properties"] = properties
    return {"profileId": profile_id, "event": event}


def opened(profile_id: str, event_id: str, at: datetime = NOW, key: str = "") -> dict[str, Any]:
    """The `Email Opened` the engagement function tracks when the welcome journey's first email
    (or the message with `key`) is opened: its properties name the message."""
    opened_key = key or f"journey:welcome:{profile_id}:1:hello:1"
    return tracked(profile_id, "Email Opened", event_id, at, messageId=message_id_for(opened_key))


def handle_nth(rig: Rig, contenders: Sequence[tuple[str, dict[str, Any]]], now: datetime, n: int) -> Summary:
    """Contender `n` handled by a container of its own."""
    detail_type, detail = contenders[n]
    return rig.runner().handle(detail_type, detail, now)


def keys_of(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(m["key"] for m in messages)


def cart_key(profile_id: str, step: str, seq: int, run: int = 1) -> str:
    return f"journey:cart:{profile_id}:{run}:{step}:{seq}"


# ============================================================================== entries
def test_given_an_event_journey_when_its_event_is_tracked_then_the_person_enters_and_the_first_message_leaves(
    rig: Rig,
) -> None:
    rig.define(CART)
    ann = rig.person("ann")

    summary = rig.runner().handle("event.tracked", tracked(ann, "Cart Abandoned", "m1"), NOW)

    assert summary.entered == ["cart"]
    [message] = rig.delivered()
    assert message["key"] == cart_key(ann, "remind", 1)
    assert message["origin"] == {"kind": "journey", "id": "cart", "version": 1, "step": "remind"}
    assert (message["profile_id"], message["template"], message["event"]["messageId"]) == (ann, "cart-reminder", "m1")
    doc = rig.instance(ann, "cart")
    assert (doc["status"], doc["step"], doc["entry_key"], doc["wait"]["step"]) == (
        "waiting",
        "wait",
        "event:m1",
        "wait",
    )
    assert "outbox" not in doc
    due = rig.timers.due(minute_of(NOW + timedelta(hours=1, minutes=1)))
    assert [(t["id"], t["kind"], t["payload"]["timerId"]) for t in due] == [
        (f"cart:{ann}:1:2", "journey", f"cart:{ann}:1:2")
    ]


def test_given_a_segment_journey_when_the_person_enters_the_segment_then_they_enter_once_per_occurrence(
    rig: Rig,
) -> None:
    rig.define(VIP)
    bea = rig.person("bea")
    entered = {"profileId": bea, "segmentId": "vip", "at": iso(NOW), "occurrence": iso(NOW)}

    first = rig.runner().handle("segment.entered", entered, NOW)
    redelivered = rig.runner().handle("segment.entered", entered, NOW)
    other_segment = rig.runner().handle("segment.entered", {**entered, "segmentId": "other"}, NOW)

    assert first.entered == ["vip-welcome"]
    assert redelivered.entered == [] and redelivered.refused == {"vip-welcome": "already entered for this trigger"}
    assert other_segment == Summary()
    assert keys_of(rig.delivered()) == [f"journey:vip-welcome:{bea}:1:greet:1"]
    assert rig.instance(bea, "vip-welcome")["status"] == "completed"


def test_given_a_date_journey_when_the_sweep_finds_the_day_then_the_person_enters_once_that_day(rig: Rig) -> None:
    rig.define(BIRTHDAY)
    cal = rig.person("cal", birthday="1990-11-22")
    dan = rig.person("dan", birthday="1990-11-23")
    runner = rig.runner()
    dated = runner.catalog.current().dated()

    found = {
        pid: date_entries(dated, profile, NOW, "UTC")
        for pid in (cal, dan)
        if (profile := rig.profiles.profile(pid)) is not None
    }
    assert found == {
        cal: [
            ("journey.date", {"profileId": cal, "journeyId": "birthday", "entryKey": "date:2026-11-22", "at": iso(NOW)})
        ],
        dan: [],
    }
    [(detail_type, detail)] = found[cal]
    first = runner.handle(detail_type, detail, NOW)
    an_hour_later = runner.handle(detail_type, detail, NOW + timedelta(hours=1))  # the next hourly sweep

    assert first.entered == ["birthday"]
    assert an_hour_later.refused == {"birthday": "already entered for this trigger"}
    assert keys_of(rig.delivered()) == [f"journey:birthday:{cal}:1:card:1"]


def test_given_a_person_waiting_for_an_open_when_a_campaigns_email_is_opened_then_only_the_journeys_own_ends_it(
    rig: Rig,
) -> None:
    """Given Ivy waiting in the welcome journey for "Email Opened", when she opens a campaign's
    email, then she keeps waiting (nothing sent, nothing counted); when she opens the welcome
    email, then the journey thanks her and completes."""
    rig.define(WELCOME)
    ivy = rig.person("ivy")
    rig.runner().handle("event.tracked", tracked(ivy, "Signed Up", "s1"), NOW)
    rig.delivered()

    campaign_open = opened(ivy, "o-campaign", NOW + timedelta(hours=1), key=f"campaign:spring:run1:{ivy}")
    other = rig.runner().handle("event.tracked", campaign_open, NOW + timedelta(hours=1))
    assert other.moved == [] and rig.delivered() == []
    assert rig.instance(ivy, "welcome")["status"] == "waiting"

    own = rig.runner().handle(
        "event.tracked", opened(ivy, "o-welcome", NOW + timedelta(hours=2)), NOW + timedelta(hours=2)
    )
    assert own.moved == ["welcome"]
    assert keys_of(rig.delivered()) == [f"journey:welcome:{ivy}:1:thanks:3"]
    assert rig.instance(ivy, "welcome")["status"] == "completed"


# ---------------------------------------------------------------------------- merges
def test_given_a_merged_away_profile_waiting_for_an_open_when_the_survivor_opens_it_then_the_run_goes_on(
    rig: Rig,
) -> None:
    """Given Lea (an anonymous visitor) waiting in the welcome journey for her welcome email to be
    opened, when she is merged into Max and Max's profile opens that email, then her run is
    brought over to Max (its ids unchanged, its revision going on) and thanks him."""
    rig.define(WELCOME)
    lea, max_ = rig.person("lea"), rig.person("max")
    rig.runner().handle("event.tracked", tracked(lea, "Signed Up", "s1"), NOW)
    rig.delivered()
    before = rig.instance(lea, "welcome")
    rig.merge(lea, max_)

    open_event = opened(max_, "o1", NOW + timedelta(hours=1), key=f"journey:welcome:{lea}:1:hello:1")
    summary = rig.runner().handle("event.tracked", open_event, NOW + timedelta(hours=1))

    [thanks] = rig.delivered()
    assert (thanks["key"], thanks["profile_id"]) == (f"journey:welcome:{lea}:1:thanks:3", max_)
    assert summary.adopted == [f"welcome:{lea}"] and summary.moved == ["welcome"]
    assert rig.instances.of_person(lea) == []
    moved = rig.instance(max_, "welcome")
    assert (moved["status"], moved["profile_id"], moved["ids_from"]) == ("completed", max_, lea)
    assert moved["rev"] > before["rev"]
    assert moved["path"][2][2] == f"merged from profile {lea}"
    # The same event again (a redelivery) changes nothing.
    assert rig.runner().handle("event.tracked", open_event, NOW + timedelta(hours=1)).moved == []


def test_given_a_merged_away_profile_in_a_timed_wait_when_its_timer_comes_due_then_the_survivor_gets_the_rest(
    rig: Rig,
) -> None:
    """Given Tom in the cart journey's 1h wait, when he is merged into Uma and the timer (set for
    Tom) comes due, then the run is brought over to Uma and nudges her: the message goes to Uma
    with the key the run had, and the tag is added to Uma."""
    rig.define(CART)
    tom, uma = rig.person("tom"), rig.person("uma")
    rig.runner().handle("event.tracked", tracked(tom, "Cart Abandoned", "m1"), NOW)
    rig.delivered()
    rig.merge(tom, uma)

    [wake] = rig.sweep(AFTER_THE_HOUR)
    assert wake["profileId"] == tom
    summary = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR)

    [nudge] = rig.delivered()
    assert (nudge["key"], nudge["profile_id"]) == (cart_key(tom, "nudge", 3), uma)
    assert summary.adopted == [f"cart:{tom}"] and summary.moved == ["cart"]
    [tag_event] = rig.handed_off()
    assert (tag_event["event"], tag_event["userId"]) == ("Tag Added", f"u-{uma}")
    assert rig.instance(uma, "cart")["status"] == "completed"
    assert rig.instances.of_person(tom) == []


def test_given_both_profiles_in_the_same_journey_when_merged_then_the_run_in_progress_wins(rig: Rig) -> None:
    """Given Ada and Bea both waiting in the cart journey, when Ada is merged into Bea, then Bea's
    own run goes on and Ada's ends (counted as exited by merge); given Cy's run in progress and
    Di's ended, when Cy is merged into Di, then Cy's run is brought over, and Di's next run is
    numbered after both (its messages keyed apart from every earlier run's)."""
    rig.define(CART, reentry={"mode": "after_exit"})
    ada, bea, cy, di = rig.person("ada"), rig.person("bea"), rig.person("cy"), rig.person("di")
    runner = rig.runner()
    for who in (ada, bea):
        runner.handle("event.tracked", tracked(who, "Cart Abandoned", f"m-{who}"), NOW)
    rig.merge(ada, bea)
    summary = rig.runner().handle("event.tracked", tracked(bea, "Order Completed", "o1"), NOW + timedelta(minutes=6))
    assert rig.instances.of_person(ada) == []
    assert summary.adopted == [f"cart:{ada}"]
    assert rig.instance(bea, "cart")["exit_reason"] == "goal: Order Completed"
    assert rig.totals("cart")["merged"] == 1

    # Di ran the journey twice already; Cy is in his first run.
    for n, at in enumerate((NOW, NOW + timedelta(hours=1))):
        runner.handle("event.tracked", tracked(di, "Cart Abandoned", f"d{n}", at), at)
        runner.handle("event.tracked", tracked(di, "Order Completed", f"do{n}", at), at)
    assert rig.instance(di, "cart")["run"] == 2
    runner.handle("event.tracked", tracked(cy, "Cart Abandoned", "c1"), NOW + timedelta(hours=2))
    rig.delivered()
    rig.merge(cy, di)
    later = NOW + timedelta(hours=2, minutes=30)
    rig.runner().handle("event.tracked", tracked(di, "Order Completed", "o2", later), later)
    kept = rig.instance(di, "cart")
    assert (kept["ids_from"], kept["run"], kept["run_floor"], kept["exit_reason"]) == (
        cy,
        1,
        2,
        "goal: Order Completed",
    )
    again = NOW + timedelta(hours=3)
    rig.runner().handle("event.tracked", tracked(di, "Cart Abandoned", "d9", again), again)
    assert keys_of(rig.delivered()) == [cart_key(di, "remind", 1, run=3)]


def test_given_reentry_never_when_the_person_triggers_again_then_they_are_refused_even_after_the_end(
    rig: Rig,
) -> None:
    rig.define(WELCOME)
    eve = rig.person("eve")
    runner = rig.runner()
    runner.handle("event.tracked", tracked(eve, "Signed Up", "s1"), NOW)
    runner.handle("event.tracked", opened(eve, "o1"), NOW + timedelta(minutes=5))
    assert rig.instance(eve, "welcome")["status"] == "completed"

    again = runner.handle("event.tracked", tracked(eve, "Signed Up", "s2"), NOW + timedelta(days=1))

    assert again.entered == []
    assert "reentry: never" in again.refused["welcome"]
    assert keys_of(rig.delivered()) == [f"journey:welcome:{eve}:1:hello:1", f"journey:welcome:{eve}:1:thanks:3"]


def test_given_reentry_after_exit_when_the_person_triggers_while_in_it_then_refused_and_after_it_a_new_run(
    rig: Rig,
) -> None:
    rig.define(CART)
    fay = rig.person("fay")
    runner = rig.runner()
    runner.handle("event.tracked", tracked(fay, "Cart Abandoned", "c1"), NOW)

    while_in = runner.handle("event.tracked", tracked(fay, "Cart Abandoned", "c2"), NOW + timedelta(minutes=1))
    runner.handle("event.tracked", tracked(fay, "Order Completed", "o1"), NOW + timedelta(minutes=2))
    after = runner.handle("event.tracked", tracked(fay, "Cart Abandoned", "c3"), NOW + timedelta(minutes=3))

    assert while_in.refused["cart"].startswith("still in the journey (run 1, waiting at wait)")
    assert after.entered == ["cart"]
    doc = rig.instance(fay, "cart")
    assert (doc["run"], doc["status"], doc["entry_key"]) == (2, "waiting", "event:c3")
    assert keys_of(rig.delivered()) == [cart_key(fay, "remind", 1, run=1), cart_key(fay, "remind", 1, run=2)]


def test_given_a_cart_and_its_order_sent_in_one_batch_when_both_reach_the_runner_then_the_order_ends_the_run(
    rig: Rig,
) -> None:
    rig.define(CART)
    gus, batch_received = rig.person("gus"), iso(NOW - timedelta(seconds=2))
    cart, order = (
        tracked(gus, "Cart Abandoned", "c1", NOW - timedelta(minutes=3)),
        tracked(gus, "Order Completed", "o1"),
    )
    for detail in (cart, order):
        detail["event"]["receivedAt"] = batch_received  # one request: one receipt time
    runner = rig.runner()
    assert runner.handle("event.tracked", cart, NOW).entered == ["cart"]
    runner.handle("event.tracked", order, NOW + timedelta(seconds=1))
    doc = rig.instance(gus, "cart")
    assert (doc["status"], doc["exit_reason"]) == ("exited", "goal: Order Completed")


def test_given_a_daily_cap_of_3_when_12_people_enter_at_once_then_exactly_3_enter(rig: Rig) -> None:
    rig.define(CART, daily_cap=3)
    people = [rig.person(f"cap{n:02d}") for n in range(12)]

    summaries = race(12, lambda n: rig.runner().handle("event.tracked", tracked(people[n], "Cart Abandoned", "m"), NOW))

    entered = [people[n] for n, s in enumerate(summaries) if s.entered == ["cart"]]
    refused = [people[n] for n, s in enumerate(summaries) if s.refused == {"cart": "daily cap of 3 entries reached"}]
    assert len(entered) == 3 and sorted(entered + refused) == people
    assert rig.caps.taken("cart", NOW.strftime("%Y%m%d")) == 3
    assert keys_of(rig.delivered()) == sorted(cart_key(p, "remind", 1) for p in entered)
    assert sorted(p for p in people if rig.instances.get(p, "cart") is not None) == sorted(entered)
    totals = rig.totals("cart")
    assert (totals["entered"], totals["capped"], totals["step:remind"]) == (3, 9, 3)
    # A refused trigger delivered again is refused again, and not counted again
    for person in refused:
        again = rig.runner().handle("event.tracked", tracked(person, "Cart Abandoned", "m"), NOW)
        assert again.refused == {"cart": "daily cap of 3 entries reached"}
    assert rig.totals("cart")["capped"] == 9
    # The next day has a cap of its own.
    tomorrow = rig.runner().handle(
        "event.tracked", tracked(refused[0], "Cart Abandoned", "m2"), NOW + timedelta(days=1)
    )
    assert tomorrow.entered == ["cart"]


# ============================================================================== a full walk
def test_given_a_person_in_a_wait_when_the_sweep_releases_the_timer_then_the_journey_runs_to_its_end(
    rig: Rig,
) -> None:
    rig.define(CART)
    gus = rig.person("gus")
    rig.runner().handle("event.tracked", tracked(gus, "Cart Abandoned", "m1"), NOW)
    assert rig.sweep(NOW + timedelta(minutes=59)) == []  # not due yet

    [wake] = rig.sweep(AFTER_THE_HOUR)
    summary = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR)

    due = iso(NOW + timedelta(hours=1))
    assert wake == {"journeyId": "cart", "profileId": gus, "run": 1, "timerId": f"cart:{gus}:1:2", "dueAt": due}
    assert (summary.moved, summary.messages, summary.events, summary.steps) == (["cart"], 1, 1, 3)
    assert keys_of(rig.delivered()) == [cart_key(gus, "nudge", 3), cart_key(gus, "remind", 1)]
    [tag_event] = rig.handed_off()
    assert (tag_event["event"], tag_event["properties"], tag_event["userId"]) == (
        "Tag Added",
        {"tag": "cart-nudged", "journey": "cart"},
        f"u-{gus}",
    )
    doc = rig.instance(gus, "cart")
    assert (doc["status"], doc["exit_reason"], doc["seq"], doc["wait"], doc["rev"]) == (
        "completed",
        "exit: done",
        5,
        None,
        4,  # two moves, each a write with its outbox and the write that clears it
    )
    stamp = iso(NOW)
    assert doc["path"] == [
        ["remind", stamp, "message requested"],
        ["wait", stamp, f"waiting until {due}"],
        ["wait", iso(AFTER_THE_HOUR), "timer fired"],
        ["nudge", iso(AFTER_THE_HOUR), "message requested"],
        ["mark", iso(AFTER_THE_HOUR), "profile update requested"],
        ["done", iso(AFTER_THE_HOUR), "completed"],
    ]
    assert rig.totals("cart") == {
        "entered": 1,
        "step:remind": 1,
        "step:wait": 1,
        "step:nudge": 1,
        "step:mark": 1,
        "step:done": 1,
        "completed": 1,
    }
    assert rig.sweep(AFTER_THE_HOUR + timedelta(minutes=5)) == []  # released once


def test_given_a_wait_for_an_event_when_it_times_out_then_the_timeout_branch_runs(rig: Rig) -> None:
    rig.define(WELCOME)
    hal = rig.person("hal")
    rig.runner().handle("event.tracked", tracked(hal, "Signed Up", "s1"), NOW)

    [wake] = rig.sweep(NOW + timedelta(days=2, minutes=1, seconds=1))
    rig.runner().handle("journey.wake", wake, NOW + timedelta(days=2, minutes=1, seconds=1))
    late_open = rig.runner().handle("event.tracked", opened(hal, "o1"), NOW + timedelta(days=3))

    assert [p[2] for p in rig.instance(hal, "welcome")["path"]][-2:] == ["timed out", "completed"]
    assert late_open == Summary()
    assert keys_of(rig.delivered()) == [f"journey:welcome:{hal}:1:hello:1"]


def test_given_a_person_waiting_when_the_goal_event_arrives_then_they_exit_and_later_timers_are_ignored(
    rig: Rig,
) -> None:
    rig.define(CART)
    ida = rig.person("ida")
    rig.runner().handle("event.tracked", tracked(ida, "Cart Abandoned", "m1"), NOW)

    goal = rig.runner().handle("event.tracked", tracked(ida, "Order Completed", "o1"), NOW + timedelta(minutes=30))
    [wake] = rig.sweep(AFTER_THE_HOUR)
    late = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR)

    assert goal.moved == ["cart"]
    assert late == Summary()
    doc = rig.instance(ida, "cart")
    assert (doc["status"], doc["exit_reason"], doc["rev"]) == ("exited", "goal: Order Completed", 3)
    assert doc["path"][-1] == ["wait", iso(NOW + timedelta(minutes=30)), "exited: goal: Order Completed"]
    assert keys_of(rig.delivered()) == [cart_key(ida, "remind", 1)]
    assert rig.handed_off() == []
    assert rig.totals("cart") == {"entered": 1, "step:remind": 1, "step:wait": 1, "exited": 1, "goal": 1}


# ============================================================================== at least once
def test_given_the_same_wake_handled_twice_in_turn_then_its_effects_happen_once(rig: Rig) -> None:
    rig.define(CART)
    jon = rig.person("jon")
    rig.runner().handle("event.tracked", tracked(jon, "Cart Abandoned", "m1"), NOW)
    [wake] = rig.sweep(AFTER_THE_HOUR)

    first = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR)
    second = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR + timedelta(seconds=30))

    assert first.moved == ["cart"] and second == Summary()
    assert keys_of(rig.delivered()) == [cart_key(jon, "nudge", 3), cart_key(jon, "remind", 1)]
    assert len(rig.handed_off()) == 1
    assert rig.instance(jon, "cart")["rev"] == 4
    assert rig.totals("cart")["step:nudge"] == 1


def test_given_the_same_wake_handled_by_six_containers_at_once_then_one_move_commits_and_repeats_are_identical(
    rig: Rig,
) -> None:
    rig.define(CART)
    kim = rig.person("kim")
    rig.runner().handle("event.tracked", tracked(kim, "Cart Abandoned", "m1"), NOW)
    [wake] = rig.sweep(AFTER_THE_HOUR)
    rig.delivered()

    summaries = race(6, lambda n: rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR))

    assert sum(s.moved == ["cart"] for s in summaries) == 1
    messages = rig.delivered()
    # A container that lost the race may send the winner's outbox again before it is cleared:
    # the same request, which the ledger sends once.
    assert {m["key"] for m in messages} == {cart_key(kim, "nudge", 3)}
    assert all(m == messages[0] for m in messages)
    tag_events = rig.handed_off()
    assert {e["messageId"] for e in tag_events} == {tag_events[0]["messageId"]}
    doc = rig.instance(kim, "cart")
    assert (doc["status"], doc["rev"], doc["seq"]) == ("completed", 4, 5)
    assert "outbox" not in doc
    assert rig.totals("cart") == {
        "entered": 1,
        "step:remind": 1,
        "step:wait": 1,
        "step:nudge": 1,
        "step:mark": 1,
        "step:done": 1,
        "completed": 1,
    }


def test_given_a_crash_after_the_state_write_when_the_entry_is_redelivered_then_the_outbox_is_sent(
    rig: Rig,
) -> None:
    rig.define(CART)
    lea = rig.person("lea")
    entry = tracked(lea, "Cart Abandoned", "m1")

    with pytest.raises(ConnectionError):
        rig.runner(messages=FailingOnce(rig.queue)).handle("event.tracked", entry, NOW)

    stranded = rig.instance(lea, "cart")
    assert stranded["status"] == "waiting"
    assert [m["key"] for m in stranded["outbox"]["messages"]] == [cart_key(lea, "remind", 1)]
    assert rig.delivered() == []
    assert rig.timers.due(minute_of(NOW + timedelta(hours=1, minutes=1))) == []  # the timer was in the outbox too

    retried = rig.runner().handle("event.tracked", entry, NOW + timedelta(seconds=20))

    assert retried.refused == {"cart": "already entered for this trigger"}
    assert keys_of(rig.delivered()) == [cart_key(lea, "remind", 1)]
    assert "outbox" not in rig.instance(lea, "cart")
    [wake] = rig.sweep(AFTER_THE_HOUR)
    assert rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR).moved == ["cart"]
    assert keys_of(rig.delivered()) == [cart_key(lea, "nudge", 3)]
    assert rig.totals("cart") == {
        "entered": 1,
        "step:remind": 1,
        "step:wait": 1,
        "step:nudge": 1,
        "step:mark": 1,
        "step:done": 1,
        "completed": 1,
    }


def test_given_a_container_killed_at_each_write_of_a_move_when_retried_then_every_counter_counts_it_once(
    rig: Rig,
) -> None:
    """Given the cart journey, when the container running a move (the entry, then the timer's
    wake) is killed before or after each of its DataTable writes and the bus redelivers the
    event, then the journey's counters equal a recount of the people's paths: the move's counts
    commit with the move, so no crash loses them and no retry adds them twice."""
    rig.define(CART)
    people = 0
    for phase in ("enter", "wake"):
        for at in range(1, 10):
            for after in (False, True):
                person = rig.person(f"{phase}-{at}-{int(after)}")
                entry = tracked(person, "Cart Abandoned", f"m-{person}")
                # Each person's wait ends after the last sweep's minute: that sweep releases it.
                woken = AFTER_THE_HOUR + timedelta(minutes=people)
                dying = DiesAtWrite(rig.stack.clients.dynamodb(), at, after=after)
                if phase == "enter":
                    try:
                        rig.dying_runner(dying).handle("event.tracked", entry, NOW)
                    except WorkerDied:
                        rig.runner().handle("event.tracked", entry, NOW + timedelta(seconds=20))  # redelivered
                else:
                    rig.runner().handle("event.tracked", entry, NOW)
                [wake] = rig.sweep(woken)
                if phase == "wake":
                    try:
                        rig.dying_runner(dying).handle("journey.wake", wake, woken)
                    except WorkerDied:
                        rig.runner().handle("journey.wake", wake, woken + timedelta(seconds=20))
                else:
                    rig.runner().handle("journey.wake", wake, woken)
                assert rig.instance(person, "cart")["status"] == "completed", (phase, at, after)
                people += 1
            if not dying.died:
                break  # past the move's last write: every write has been a crash point
        assert at > 2, f"the {phase} move made only {at - 1} writes"  # the walk covered something

    assert rig.totals("cart") == {
        "entered": people,
        "step:remind": people,
        "step:wait": people,
        "step:nudge": people,
        "step:mark": people,
        "step:done": people,
        "completed": people,
    }
    delivered = keys_of(rig.delivered())
    assert len(set(delivered)) == 2 * people  # each message queued (the ledger sends a repeat once)


def test_given_a_crash_and_no_redelivery_when_the_person_comes_back_after_the_wait_then_its_timer_still_fires(
    rig: Rig,
) -> None:
    rig.define(CART)
    ron = rig.person("ron")
    with pytest.raises(ConnectionError):
        rig.runner(messages=FailingOnce(rig.queue)).handle("event.tracked", tracked(ron, "Cart Abandoned", "m1"), NOW)
    assert rig.sweep(AFTER_THE_HOUR) == []  # the retries were lost; the sweep moved past the wait's minute

    back = NOW + timedelta(hours=2)
    rig.runner().handle("event.tracked", tracked(ron, "Cart Abandoned", "m2"), back)
    [wake] = rig.sweep(back + timedelta(minutes=1, seconds=5))
    rig.runner().handle("journey.wake", wake, back + timedelta(minutes=1, seconds=5))

    assert keys_of(rig.delivered()) == [cart_key(ron, "nudge", 3), cart_key(ron, "remind", 1)]
    assert rig.instance(ron, "cart")["status"] == "completed"


def test_given_a_crash_on_the_move_that_ends_an_instance_when_the_event_is_redelivered_then_the_outbox_is_sent(
    rig: Rig,
) -> None:
    rig.define(WELCOME)
    max_ = rig.person("max")
    rig.runner().handle("event.tracked", tracked(max_, "Signed Up", "s1"), NOW)
    rig.delivered()
    open_event = opened(max_, "o1", NOW + timedelta(hours=3))

    with pytest.raises(ConnectionError):
        rig.runner(messages=FailingOnce(rig.queue)).handle("event.tracked", open_event, NOW + timedelta(hours=3))
    assert rig.instance(max_, "welcome")["status"] == "completed"
    assert rig.delivered() == []

    rig.runner().handle("event.tracked", open_event, NOW + timedelta(hours=3, seconds=20))

    assert keys_of(rig.delivered()) == [f"journey:welcome:{max_}:1:thanks:3"]
    assert "outbox" not in rig.instance(max_, "welcome")


def test_given_a_goal_and_a_timer_racing_then_a_goal_exit_never_sends_the_step_after_the_wait(rig: Rig) -> None:
    rig.define(CART)
    people = [rig.person(f"race{n}") for n in range(8)]
    for pid in people:
        rig.runner().handle("event.tracked", tracked(pid, "Cart Abandoned", "m1"), NOW)
    rig.delivered()
    wakes = {w["profileId"]: w for w in rig.sweep(AFTER_THE_HOUR)}
    assert sorted(wakes) == people

    for pid in people:
        contenders = [
            ("event.tracked", tracked(pid, "Order Completed", "o1", AFTER_THE_HOUR)),
            ("journey.wake", wakes[pid]),
        ]
        race(2, partial(handle_nth, rig, contenders, AFTER_THE_HOUR))

    sent = {m["key"] for m in rig.delivered()}
    outcomes = {}
    for pid in people:
        doc = rig.instance(pid, "cart")
        outcomes[pid] = doc["exit_reason"]
        if doc["exit_reason"] == "goal: Order Completed":
            assert cart_key(pid, "nudge", 3) not in sent
            assert doc["path"][-1][0] == "wait"
        else:
            assert doc["exit_reason"] == "exit: done"
            assert cart_key(pid, "nudge", 3) in sent
    totals = rig.totals("cart")
    goals = sum(reason.startswith("goal") for reason in outcomes.values())
    assert (totals.get("goal", 0), totals.get("completed", 0)) == (goals, len(people) - goals)


# ============================================================================== hostile input
MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("event.tracked", {}),
    ("event.tracked", {"profileId": "nia"}),
    ("event.tracked", {"profileId": "nia", "event": "Cart Abandoned"}),
    ("event.tracked", {"profileId": "nia", "event": ["Cart Abandoned"]}),
    ("event.tracked", {"profileId": "nia", "event": {"type": "track", "event": "Cart Abandoned"}}),  # no messageId
    ("event.tracked", {"profileId": ["nia"], "event": {"type": "track", "event": "Cart Abandoned", "messageId": "m"}}),
    ("segment.entered", {"profileId": "nia"}),
    ("segment.entered", {"profileId": "nia", "segmentId": "vip"}),  # no time: no entry key
    ("journey.date", {"profileId": "nia"}),
    ("journey.date", {"profileId": "nia", "journeyId": "birthday"}),
    ("journey.date", {"profileId": "nia", "journeyId": "birthday", "entryKey": 7}),
    ("journey.date", {"profileId": "nia", "journeyId": "birthday", "entryKey": ""}),
    ("journey.date", {"profileId": "nia", "journeyId": "cart", "entryKey": "date:2026-11-22"}),
    ("journey.date", {"profileId": "nia", "journeyId": "vip-welcome", "entryKey": "date:2026-11-22"}),
    ("journey.date", {"profileId": "nia", "journeyId": "birthday", "entryKey": 7, "at": "2026-11-22T12:00:00Z"}),
    ("journey.wake", {}),
    ("journey.wake", {"journeyId": "cart"}),
    ("journey.wake", {"journeyId": "cart", "profileId": "nia"}),
    ("journey.wake", {"journeyId": "cart", "profileId": "nia", "timerId": "cart:nia:1:9", "dueAt": "soon"}),
    ("journey.wake", {"journeyId": "cart", "profileId": "nia", "timerId": "x", "dueAt": "2026-11-22T13:00"}),
    ("journey.wake", {"journeyId": "cart", "profileId": "nia", "timerId": "x", "dueAt": ["2026"]}),
    ("profile.updated", {"profileId": "nia", "changes": {}}),
]


def test_given_details_missing_or_malformed_fields_when_handled_then_nothing_happens(rig: Rig) -> None:
    for body in (CART, VIP, BIRTHDAY):
        rig.define(body)
    nia = rig.person("nia", birthday="1990-11-22")  # today is her day: only a well-formed date entry lets her in
    runner = rig.runner()

    for detail_type, detail in MALFORMED:
        summary = runner.handle(detail_type, detail, NOW)

        assert summary == Summary(), (detail_type, detail)
        assert rig.instances.of_person(nia) == [], (detail_type, detail)
    assert rig.delivered() == []
    for at in ("yesterday", ["2026"], "2026-11-22T12:30"):  # the sweep's time is a hint; a zoneless one is UTC
        well_formed = {"profileId": nia, "journeyId": "birthday", "entryKey": f"date:2026-11-22#{at}", "at": at}
        assert runner.handle("journey.date", well_formed, NOW).entered == ["birthday"], at
    assert rig.instance(nia, "birthday")["entered_at"] == iso(NOW + timedelta(minutes=30))


def test_given_a_person_waiting_when_a_wake_with_a_garbled_due_time_comes_then_it_is_ignored_unless_it_is_theirs(
    rig: Rig,
) -> None:
    rig.define(CART)
    oli = rig.person("oli")
    rig.runner().handle("event.tracked", tracked(oli, "Cart Abandoned", "m1"), NOW)
    rig.delivered()
    wake = {"journeyId": "cart", "profileId": oli, "run": 1, "timerId": f"cart:{oli}:1:2"}

    for due in ("soon", "2026-11-22T13:00:00", 12):
        assert rig.runner().handle("journey.wake", {**wake, "timerId": "cart:oli:1:7", "dueAt": due}, NOW) == Summary()
    assert rig.instance(oli, "cart")["status"] == "waiting"
    # Its own timer with an unreadable due time still ends the wait, on this container's clock.
    assert rig.runner().handle("journey.wake", {**wake, "dueAt": "soon"}, AFTER_THE_HOUR).moved == ["cart"]
    assert rig.instance(oli, "cart")["path"][2] == ["wait", iso(AFTER_THE_HOUR), "timer fired"]


def test_given_unknown_journeys_and_people_when_handled_then_nothing_is_written(rig: Rig) -> None:
    rig.define(CART)
    rig.define(VIP)
    pia = rig.person("pia")
    runner = rig.runner()

    outcomes = [
        runner.handle("journey.wake", {"journeyId": "gone", "profileId": pia, "timerId": "gone:pia:1:2"}, NOW),
        runner.handle("journey.date", {"journeyId": "gone", "profileId": pia, "entryKey": "date:2026-11-22"}, NOW),
        runner.handle("event.tracked", tracked("ghost", "Cart Abandoned", "m1"), NOW),
        runner.handle("segment.entered", {"profileId": "ghost", "segmentId": "vip", "at": iso(NOW)}, NOW),
        runner.handle("journey.wake", {"journeyId": "cart", "profileId": "ghost", "timerId": "cart:ghost:1:2"}, NOW),
    ]

    assert outcomes == [Summary()] * 5
    assert rig.instances.of_person(pia) == [] and rig.instances.of_person("ghost") == []
    assert rig.delivered() == []
    assert rig.counters.totals("journey", "cart") == {}


def test_given_a_journey_disabled_mid_flight_when_its_timer_wakes_then_the_instance_exits_saying_so(rig: Rig) -> None:
    rig.define(CART)
    quin = rig.person("quin")
    rig.runner().handle("event.tracked", tracked(quin, "Cart Abandoned", "m1"), NOW)
    rig.delivered()

    rig.define(CART, enabled=False)
    [wake] = rig.sweep(AFTER_THE_HOUR)
    ended = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR)
    again = rig.runner().handle("journey.wake", wake, AFTER_THE_HOUR)  # the same timer redelivered
    goal = rig.runner().handle("event.tracked", tracked(quin, "Order Completed", "o1"), AFTER_THE_HOUR)
    entry = rig.runner().handle("event.tracked", tracked(quin, "Cart Abandoned", "m2"), AFTER_THE_HOUR)

    assert ended.moved == ["cart"] and again == goal == entry == Summary()
    instance = rig.instance(quin, "cart")
    assert (instance["status"], instance["exit_reason"], instance["wait"]) == ("exited", "journey disabled", None)
    assert rig.delivered() == []  # nothing is sent for a disabled journey
    assert rig.totals("cart") == {"entered": 1, "step:remind": 1, "step:wait": 1, "exited": 1, "disabled": 1}


def test_given_twenty_people_through_a_journey_when_counted_then_every_shard_is_summed(rig: Rig) -> None:
    rig.define(VIP)
    people = [rig.person(f"many{n:02d}") for n in range(20)]
    assert len({shard_of(pid) for pid in people}) > 1
    for pid in people:
        rig.runner().handle("segment.entered", {"profileId": pid, "segmentId": "vip", "at": iso(NOW)}, NOW)

    totals = rig.counters.totals("journey", "vip-welcome")

    assert totals == {
        "all": {"entered": Decimal(20), "step:greet": Decimal(20), "step:done": Decimal(20), "completed": Decimal(20)}
    }
    assert len(rig.delivered()) == 20


# ============================================================================== the archive
def test_given_a_journey_run_when_archived_then_entry_each_step_and_the_end_are_moves_in_order(rig: Rig) -> None:
    rig.define(CART)
    ann = rig.person("ann")
    archive = MemoryArchive()

    # When Ann enters (a send, then the wait), the hour passes (the nudge, the tag, the exit)
    rig.runner(archive=archive).handle("event.tracked", tracked(ann, "Cart Abandoned", "m1"), NOW)
    [wake] = rig.sweep(AFTER_THE_HOUR)
    rig.runner(archive=archive).handle("journey.wake", wake, AFTER_THE_HOUR)

    # Then the archive holds each move once, numbered as the instance counts its steps
    moves = [(r.transition, r.origin_step, r.previous_step, r.detail) for r in archive.records]
    assert [m[:3] for m in moves] == [
        ("entered", None, None),
        ("moved", "remind", None),
        ("moved", "wait", "remind"),
        ("moved", "nudge", "wait"),
        ("moved", "mark", "nudge"),
        ("moved", "done", "mark"),
        ("exited", None, "done"),
    ]
    assert [json.loads(m[3])["seq"] for m in moves] == [0, 1, 2, 3, 4, 5, 5]
    assert {(r.kind, r.profile_id, r.origin_id, r.origin_version) for r in archive.records} == {
        ("journey_move", ann, "cart", 1)
    }
    assert len({r.record_id for r in archive.records}) == 7
    doc = rig.instance(ann, "cart")
    assert (doc["status"], archive.records[-1].reason) == ("completed", doc["exit_reason"])


def test_given_an_unreachable_archive_when_a_journey_moves_then_the_move_still_commits(rig: Rig) -> None:
    rig.define(CART)
    ann = rig.person("ann")
    archive = MemoryArchive()
    archive.fail = 1

    summary = rig.runner(archive=archive).handle("event.tracked", tracked(ann, "Cart Abandoned", "m1"), NOW)

    assert summary.entered == ["cart"] and len(rig.delivered()) == 1
    assert rig.instance(ann, "cart")["status"] == "waiting" and archive.records == []
