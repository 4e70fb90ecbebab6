"""Campaign runs against moto: the runner and its workers on the real run, part, profile, timer,
touch and counter items of the DataTable, with part messages and message requests read back from
their real SQS queues. Every expectation is a brute-force plan of the same profiles by
`plan_recipient`, so a count is exact or the test fails."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend
from pydantic import BaseModel

from infra.localcloud.template import load_model
from midstage import keys
from midstage.adapters.automation_store import CampaignRuns, Touches
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.adapters.messaging_store import CapStore, MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.config import FrequencyCap
from midstage.logic.campaigns import first_fire_for_local_time, plan_recipient, run_id_for, stats_view, variant_for
from midstage.logic.delivery import DUPLICATE, SENT, Policy
from midstage.logic.timefmt import iso, minute_of, parse_iso
from midstage.models.campaigns import Campaign
from midstage.models.messages import CampaignPart, Delivery, parse_body
from midstage.models.messaging import MessageRequest, Template
from midstage.models.profile import Profile, WritePlan
from midstage.services import campaigns as service
from midstage.services.campaigns import CampaignRunner, CampaignWorker, ConversionTracker, PartOutcome, count_outcome
from midstage.services.delivery import Ports, deliver
from midstage.services.timers import sweep
from tests.integration import conftest
from tests.integration.conftest import Context, Stack
from tests.support.concurrency import race
from tests.support.dying import DiesAtWrite, WorkerDied
from tests.support.fakes import ApprovedEmail, MemoryArchive, RecordingProvider

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the occurrence the schedule fires for
RUN = run_id_for(NOW)
ENTERED = "2026-11-01T00:00:00.000Z"
CONSENT = {"email:marketing": {"granted": True, "stamp": "2026-11-01T00:00:00.000Z|m|s", "source": "s"}}
VARIANTS: list[dict[str, Any]] = [
    {"id": "a", "percent": 50},
    {"id": "b", "percent": 30, "template": "winter-b", "vars": {"discount": 15}},
    {"id": "c", "percent": 20, "vars": {"season": "late winter"}},
]
# Memberships people are drawn from: targeted (vip, newsletter), excluded (churned), neither.
MIXES: tuple[tuple[str, ...], ...] = (
    ("vip",),
    ("newsletter",),
    ("vip", "newsletter"),
    ("vip", "churned"),
    ("newsletter", "churned"),
    ("churned",),
    ("other",),
    (),
)
D = TypeVar("D", bound=BaseModel)


# ------------------------------------------------------------------------------ builders
def campaign(campaign_id: str = "winter-sale", **fields: Any) -> Campaign:
    body: dict[str, Any] = {
        "id": campaign_id,
        "name": "Winter sale",
        "audience": {"segments": ["vip", "newsletter"], "exclude": ["churned"]},
        "message": {"channels": ["email"], "template": "winter", "vars": {"discount": 10, "season": "winter"}},
        "variants": VARIANTS,
        "holdout_percent": 10,
        "schedule": {"type": "once", "at": iso(NOW)},
        "status": "scheduled",
    }
    body.update(fields)
    return Campaign.model_validate(body)


def population(count: int, zones: Sequence[str] = ("UTC",), mixes: Sequence[tuple[str, ...]] = MIXES) -> list[Profile]:
    """`count` people with memberships drawn from `mixes` (the same draw every time); every 50th
    was merged away (a tombstone the scan passes over)."""
    draw = random.Random(7)
    people = []
    for n in range(count):
        profile_id = f"p{n:04d}"
        people.append(
            Profile(
                id=profile_id,
                created_at=ENTERED,
                traits={"email": f"{profile_id}@example.com"},
                consent=CONSENT,
                timezone=zones[n % len(zones)],
                segments=dict.fromkeys(draw.choice(mixes), ENTERED),
                merged_into="p0000" if n % 50 == 49 else None,
            )
        )
    return people


@dataclass
class Plan:
    """What a run must do with `people`, worked out one person at a time."""

    counts: Counter[str] = field(default_factory=Counter)
    now: dict[str, MessageRequest] = field(default_factory=dict)  # by key: queued at once
    later: dict[str, tuple[datetime, MessageRequest]] = field(default_factory=dict)  # by key: a timer
    held_out: set[str] = field(default_factory=set)


def plan(target: Campaign, people: Iterable[Profile], fired_at: datetime = NOW, now: datetime = NOW) -> Plan:
    expected = Plan()
    for person in people:
        if person.merged_into:
            continue  # not a live profile: the scan does not return it
        expected.counts["scanned"] += 1
        recipient = plan_recipient(target, person, run_id_for(fired_at), fired_at)
        if recipient.decision == "not_in_audience":
            continue
        expected.counts["targeted"] += 1
        if recipient.decision != "send":
            expected.counts[recipient.decision] += 1
            if recipient.decision == "held_out":
                expected.held_out.add(person.id)
            continue
        assert recipient.request is not None
        expected.counts["queued"] += 1
        if recipient.send_at is not None and recipient.send_at > now:
            expected.counts["scheduled"] += 1
            expected.later[recipient.request.key] = (recipient.send_at, recipient.request)
        else:
            expected.now[recipient.request.key] = recipient.request
    return expected


def nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: amount for name, amount in counts.items() if amount}


class VirtualClock:
    """A worker's monotonic clock that moves only when the worker sleeps: pacing is exact and no
    test waits for it."""

    def __init__(self) -> None:
        self.began = self.at = 1_000.0

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.at += seconds


# ------------------------------------------------------------------------------ the rig
@dataclass
class Rig:
    stack: Stack
    config: ConfigStore
    runs: CampaignRuns
    profiles: ProfileStore
    deliveries: MessageQueue
    parts_queue: MessageQueue
    timers: TimerStore
    touches: Touches
    counters: Counters
    ledger: MessageLedger

    def define(self, target: Campaign) -> Campaign:
        return self.config.save_document(keys.CAMPAIGN_PK, target)

    def campaign(self, campaign_id: str) -> Campaign:
        found = self.config.find_document(keys.CAMPAIGN_PK, campaign_id, Campaign)
        assert found is not None
        return found

    def set_status(self, campaign_id: str, status: str) -> None:
        """What the admin API's pause, resume and cancel write: the next version of the campaign."""
        current = self.campaign(campaign_id)
        self.define(current.model_copy(update={"status": status, "version": current.version + 1}))

    def store(self, people: Iterable[Profile]) -> None:
        for person in people:
            self.profiles.save(WritePlan(person))

    def runner(self, parts: int = 4, config: service.Documents | None = None) -> CampaignRunner:
        return CampaignRunner(config or self.config, self.runs, self.parts_queue, parts=parts)

    def worker(
        self,
        clock: VirtualClock | None = None,
        *,
        runs: service.Runs | None = None,
        profiles: service.Profiles | None = None,
        messages: service.MessageSink | None = None,
        config: service.Documents | None = None,
        archive: MemoryArchive | None = None,
    ) -> CampaignWorker:
        clock = clock or VirtualClock()
        return CampaignWorker(
            config or self.config,
            runs or self.runs,
            profiles or self.profiles,
            messages or self.deliveries,
            self.timers,
            self.touches,
            self.parts_queue,
            sleep=clock.sleep,
            clock=clock.now,
            archive=archive,
        )

    def drain(self, url: str) -> list[str]:
        sqs = self.stack.clients.sqs()
        bodies: list[str] = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            bodies.extend(message["Body"] for message in messages)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
        return bodies

    def delivered(self) -> list[MessageRequest]:
        return [parse_body(Delivery, body).request for body in self.drain(self.deliveries.queue_url)]

    def part_messages(self) -> list[dict[str, Any]]:
        """The queued parts' fields, each body read as the worker reads it (a current campaign.part)."""
        parts = [parse_body(CampaignPart, body) for body in self.drain(self.parts_queue.queue_url)]
        assert {(part.version, part.kind) for part in parts} <= {(1, "campaign.part")}
        fields = (part.model_dump(by_alias=True, exclude={"version", "kind"}, exclude_none=True) for part in parts)
        return sorted(fields, key=lambda m: m["part"])

    def work(self, message: Mapping[str, Any], worker: CampaignWorker | None = None, at: datetime = NOW) -> PartOutcome:
        """One worker invocation for a part message, as functions/send_campaign makes it."""
        return (worker or self.worker()).work(
            message["campaignId"], message["runId"], message["part"], message["total"], lambda: at, 900.0
        )

    def touched(self, touch: str) -> set[str]:
        """Everyone with a touch of this kind (one scan, rather than a query per person)."""
        found: set[str] = set()
        kwargs: dict[str, Any] = {
            "TableName": self.profiles.table,
            "FilterExpression": "begins_with(sk, :touch) AND #touch = :kind",
            "ExpressionAttributeNames": {"#touch": "touch"},
            "ExpressionAttributeValues": {":touch": {"S": keys.TOUCH_PREFIX}, ":kind": {"S": touch}},
        }
        while True:
            answer = self.stack.clients.dynamodb().scan(**kwargs)
            found.update(item["pk"]["S"].removeprefix("P#") for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def totals(self, campaign_id: str, run_id: str = RUN) -> dict[str, int]:
        """A run's worker counters, summed over its parts."""
        summed: Counter[str] = Counter()
        for part in self.runs.parts(campaign_id, run_id):
            summed.update(part["counts"])
        return nonzero(summed)


def _retained(backend: SQSBackend, queue_name: str, message: Any) -> bool:
    queue: Any = backend.get_queue(queue_name)  # moto sets each queue attribute as a snake_case field
    return bool(int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time())


@pytest.fixture(scope="module", autouse=True)
def template_read_once() -> Iterator[None]:
    """Reading template.yaml (through SAM's translator) is most of what building a stack costs,
    and the model it gives is immutable: every test of this module deploys the same one."""
    model = load_model(conftest.TEMPLATE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conftest, "load_model", lambda _: model)
        yield


@pytest.fixture
def rig(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return make_rig(stack, monkeypatch)


def make_rig(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Rig:
    # moto's receive reads every queue attribute (counting all messages) for each message it
    # returns, so draining a queue of n messages costs n squared; the same retention check, cheaply.
    monkeypatch.setattr(SQSBackend, "is_message_valid_based_on_retention_period", _retained)
    # Pages of 25 items give every part several pages (and checkpoints) out of a few hundred people.
    monkeypatch.setattr(service, "PAGE_ITEMS", 25)
    table, dynamodb, sqs = stack.output("DataTableName"), stack.clients.dynamodb(), stack.clients.sqs()
    return Rig(
        stack=stack,
        config=ConfigStore(stack.output("ConfigTableName"), cache_seconds=0, client=dynamodb),
        runs=CampaignRuns(table, client=dynamodb),
        profiles=ProfileStore(table, client=dynamodb),
        deliveries=MessageQueue(stack.output("DeliveryQueueUrl"), client=sqs),
        parts_queue=MessageQueue(stack.output("CampaignQueueUrl"), client=sqs),
        timers=TimerStore(table, client=dynamodb),
        touches=Touches(table, client=dynamodb),
        counters=Counters(table, client=dynamodb),
        ledger=MessageLedger(table, client=dynamodb),
    )


# ============================================================================== a whole run
def test_given_1000_people_in_four_parts_when_the_run_is_worked_then_counts_and_messages_match_a_brute_force_plan(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PAGE_ITEMS", 100)
    winter = rig.define(campaign())
    people = population(1000)
    rig.store(people)
    expected = plan(winter, people)
    assert expected.counts["held_out"] > 0 and expected.counts["queued"] > 300  # the mix exercises every decision

    started = rig.runner(parts=4).start("winter-sale", NOW, NOW)
    assert (started.run_id, started.created, started.parts_queued, started.skipped) == (RUN, True, 4, "")
    running = rig.campaign("winter-sale")  # the version the workers read (starting it made a new one)
    assert running.status == "running"
    messages = rig.part_messages()
    assert messages == [{"campaignId": "winter-sale", "runId": RUN, "part": p, "total": 4} for p in range(4)]

    outcomes = [rig.work(message) for message in messages]

    assert [o.state for o in outcomes] == ["done"] * 4
    assert sum(o.pages for o in outcomes) > 4  # several pages (and checkpoints) per part
    sent = rig.delivered()
    assert len({r.key for r in sent}) == len(sent)  # every message queued once
    assert {r.key: r for r in sent} == plan(running, people).now  # the same people, variants, templates and vars
    assert rig.totals("winter-sale") == nonzero(expected.counts)
    # The parts slice the profiles: their scans add up to every live profile, each once.
    live = [p for p in people if not p.merged_into]
    assert sum(p["counts"]["scanned"] for p in rig.runs.parts("winter-sale", RUN)) == len(live) < len(people)
    by_id = {p.id: p for p in people}
    assert not any("churned" in by_id[r.profile_id].segments for r in sent)
    variants = {r.profile_id: variant_for("winter-sale", r.profile_id, winter.variants) for r in sent}
    assert {r.profile_id: r.origin.step for r in sent} == {p: v.id for p, v in variants.items() if v is not None}
    assert set(Counter(r.origin.step for r in sent)) == {"a", "b", "c"}
    # The held-out people were touched (for the control group's conversions), and only they.
    assert rig.touched("held_out") == expected.held_out
    run = rig.runs.run("winter-sale", RUN)
    assert run is not None and run["parts_done"] == 4
    assert rig.campaign("winter-sale").status == "completed"


# ============================================================================== double fires and racing workers
def test_given_a_schedule_that_fires_twice_when_started_again_then_one_run_and_only_parts_still_waiting_are_queued(
    rig: Rig,
) -> None:
    rig.define(campaign())
    people = population(120)
    rig.store(people)
    first = rig.runner().start("winter-sale", NOW, NOW)
    running = rig.campaign("winter-sale")
    messages = rig.part_messages()
    assert (first.created, first.parts_queued, len(messages)) == (True, 4, 4)
    assert rig.work(messages[0]).state == "done"  # part 0 was taken up before the second fire

    again = rig.runner().start("winter-sale", NOW + timedelta(seconds=20), NOW + timedelta(seconds=20))

    assert (again.run_id, again.created, again.parts_queued, again.skipped) == (RUN, False, 3, "")
    requeued = rig.part_messages()
    assert [m["part"] for m in requeued] == [1, 2, 3]
    assert [r["run_id"] for r in rig.runs.runs("winter-sale")] == [RUN]
    outcomes = [rig.work(m) for m in messages[1:] + requeued]
    # The re-queued parts are done already: their messages only confirm the count, scanning nothing.
    assert [(o.state, o.pages > 0) for o in outcomes] == [("done", True)] * 3 + [("done", False)] * 3
    expected = plan(running, people)
    sent = [r.key for r in rig.delivered()]
    assert sorted(sent) == sorted(expected.now)  # each once
    assert rig.totals("winter-sale") == nonzero(expected.counts)
    # A third fire after the run ended: the campaign has completed, nothing starts.
    late = rig.runner().start("winter-sale", NOW, NOW + timedelta(minutes=1))
    assert (late.created, late.parts_queued, late.skipped) == (False, 0, "the campaign is completed")
    assert rig.part_messages() == []


def test_given_two_runners_fired_at_once_when_raced_then_exactly_one_creates_the_run(rig: Rig) -> None:
    rig.define(campaign())
    rig.store(population(40))

    started = race(2, lambda n: rig.runner().start("winter-sale", NOW + timedelta(seconds=n), NOW))

    assert sorted(s.created for s in started) == [False, True]
    assert {s.run_id for s in started} == {RUN}
    assert len(rig.runs.runs("winter-sale")) == 1
    assert [p["part"] for p in rig.runs.parts("winter-sale", RUN)] == [0, 1, 2, 3]
    # Both may have seen every part waiting; a part queued twice is held by one worker only.
    messages = rig.part_messages()
    assert 4 <= len(messages) <= 8 and {m["part"] for m in messages} == {0, 1, 2, 3}
    outcomes = [rig.work(m) for m in messages]
    assert Counter((o.state, o.pages > 0) for o in outcomes) == {("done", True): 4, ("done", False): len(messages) - 4}


def test_given_two_workers_on_each_part_at_once_when_raced_then_one_holds_it_and_nothing_is_queued_twice(
    rig: Rig,
) -> None:
    rig.define(campaign())
    people = population(200)
    rig.store(people)
    rig.runner().start("winter-sale", NOW, NOW)
    running = rig.campaign("winter-sale")
    messages = rig.part_messages()

    outcomes = race(8, lambda n: rig.work(messages[n // 2]))

    for part in range(4):
        # One worker scans the part; the other finds it held, or already done if it came late.
        pair = sorted((o.state, o.pages > 0) for o in outcomes[2 * part : 2 * part + 2])
        assert pair in ([("done", False), ("done", True)], [("done", True), ("held_elsewhere", False)])
    expected = plan(running, people)
    sent = [r.key for r in rig.delivered()]
    duplicates = sorted(key for key, times in Counter(sent).items() if times > 1)
    assert duplicates == []
    assert set(sent) == set(expected.now)
    assert rig.totals("winter-sale") == nonzero(expected.counts)


# ============================================================================== crashes
class Crash(Exception):
    """The container died."""


class DiesBeforeCheckpoint(CampaignRuns):
    """The part store as a worker sees it whose container dies after queuing the page numbered
    `page` (from 0) but before checkpointing it."""

    def __init__(self, real: CampaignRuns, page: int) -> None:
        super().__init__(real.table, client=real.client)
        self.page = page

    def checkpoint(self, campaign_id: str, run_id: str, part: int, *, seq: int, **fields: Any) -> None:
        if seq == self.page:
            raise Crash(f"died before checkpointing page {seq}")
        super().checkpoint(campaign_id, run_id, part, seq=seq, **fields)


class StallsBeforeCheckpoint(CampaignRuns):
    """The part store as a worker sees it that stalls before checkpointing page `page` until its
    lease has run out and `meanwhile` has happened (another worker taking the part over)."""

    def __init__(self, real: CampaignRuns, page: int, meanwhile: Callable[[], None]) -> None:
        super().__init__(real.table, client=real.client)
        self.page = page
        self.meanwhile = meanwhile

    def checkpoint(self, campaign_id: str, run_id: str, part: int, *, seq: int, **fields: Any) -> None:
        if seq == self.page:
            self.meanwhile()
        super().checkpoint(campaign_id, run_id, part, seq=seq, **fields)


def test_given_a_worker_dead_between_queuing_a_page_and_its_checkpoint_when_restarted_then_each_message_goes_once(
    rig: Rig,
) -> None:
    rig.define(campaign())
    people = population(160)
    rig.store(people)
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    running = rig.campaign("winter-sale")
    messages = rig.part_messages()

    with pytest.raises(Crash):
        rig.work(messages[0], rig.worker(runs=DiesBeforeCheckpoint(rig.runs, page=2)))
    at_crash = rig.runs.part("winter-sale", RUN, 0)
    assert at_crash is not None and (at_crash["state"], at_crash["seq"]) == ("running", 2)
    before = rig.delivered()  # pages 0 to 2; only 0 and 1 are checkpointed
    # The queue brings the part message back: within the dead worker's lease nobody may take it.
    assert rig.work(messages[0], at=NOW + timedelta(minutes=1)).state == "held_elsewhere"
    restarted = rig.work(messages[0], at=NOW + timedelta(minutes=10))
    assert restarted.state == "done"
    rig.work(messages[1])
    after = rig.delivered()

    expected = plan(running, people)
    every = before + after
    assert {r.key for r in every} == set(expected.now)
    twice = {key for key, times in Counter(r.key for r in every).items() if times > 1}
    # Exactly the page queued but not checkpointed went out again.
    assert len(twice) == len(before) - at_crash["counts"]["queued"] > 0
    assert twice <= {r.key for r in before}
    assert rig.totals("winter-sale") == nonzero(expected.counts)

    # Delivering everything queued, duplicates and all: the ledger sends each message once.
    dynamodb, table = rig.stack.clients.dynamodb(), rig.profiles.table
    provider = RecordingProvider()
    ports = Ports(
        ledger=rig.ledger,
        profiles=rig.profiles,
        suppressions=SuppressionStore(table, client=dynamodb),
        caps=CapStore(table, client=dynamodb),
        templates=ApprovedEmail("Winter", "<p>Winter</p>"),
        timers=rig.timers,
        channels=provider,
    )
    policy = Policy(caps=(), quiet_hours=None)
    statuses = Counter(deliver(r, ports, policy, NOW + timedelta(hours=1)).status for r in every)
    assert statuses == {SENT: len(expected.now), DUPLICATE: len(twice)}
    assert sorted(provider.calls) == sorted(r.message_id for r in expected.now.values())
    for request in expected.now.values():
        record = rig.ledger.get(request.message_id)
        assert record is not None and [h["status"] for h in record["history"]] == ["sending", SENT]


def test_given_a_worker_stalled_past_its_lease_when_another_took_the_part_over_then_its_late_page_is_not_counted(
    rig: Rig,
) -> None:
    rig.define(campaign())
    people = population(120)
    rig.store(people)
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    running = rig.campaign("winter-sale")
    messages = rig.part_messages()
    takeover: list[PartOutcome] = []

    stalled = rig.worker(
        runs=StallsBeforeCheckpoint(
            rig.runs, page=1, meanwhile=lambda: takeover.append(rig.work(messages[0], at=NOW + timedelta(minutes=10)))
        )
    )
    outcome = rig.work(messages[0], stalled)

    assert outcome.state == "held_elsewhere"  # its checkpoint found the part moved on
    assert [o.state for o in takeover] == ["done"]
    rig.work(messages[1])
    expected = plan(running, people)
    sent = [r.key for r in rig.delivered()]
    assert set(sent) == set(expected.now)
    assert rig.totals("winter-sale") == nonzero(expected.counts)  # the stalled page counted once, by the taker


class DiesBeforeCountingItsPartDone(CampaignRuns):
    """The part store as a worker sees it whose container dies between the checkpoint of its
    part's last page and counting the part finished."""

    def part_finished(self, campaign_id: str, run_id: str, part: int) -> int:
        raise Crash("died before counting the part finished")


def test_given_a_worker_that_dies_before_counting_its_part_finished_when_redelivered_then_the_campaign_completes(
    rig: Rig,
) -> None:
    rig.define(campaign())
    rig.store(population(40))
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    [message] = rig.part_messages()
    dying = DiesBeforeCountingItsPartDone(rig.runs.table, client=rig.runs.client)
    with pytest.raises(Crash):
        rig.work(message, rig.worker(runs=dying))

    rig.work(message, at=NOW + timedelta(minutes=20))  # the queue brings the part message back

    run = rig.runs.run("winter-sale", RUN)
    assert run is not None and run["parts_done"] == 1
    assert rig.campaign("winter-sale").status == "completed"


# ============================================================================== pause, resume, cancel
class AfterPages:
    """The profile scan, doing `then` once after serving `pages` pages: between two pages."""

    def __init__(self, real: ProfileStore, pages: int, then: Callable[[], None]) -> None:
        self.real = real
        self.pages = pages
        self.then = then
        self.served = 0

    def scan_page(
        self,
        segment: int,
        total_segments: int,
        cursor: dict[str, Any] | None,
        limit: int = 500,
        *,
        started: datetime | None = None,
    ) -> tuple[list[Profile], dict[str, Any] | None]:
        found = self.real.scan_page(segment, total_segments, cursor, limit, started=started)
        self.served += 1
        if self.served == self.pages:
            self.then()
        return found


def test_given_a_campaign_paused_between_pages_when_resumed_then_the_run_continues_to_exact_totals(rig: Rig) -> None:
    rig.define(campaign())
    people = population(160)
    rig.store(people)
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    messages = rig.part_messages()

    pausing = AfterPages(rig.profiles, 2, lambda: rig.set_status("winter-sale", "paused"))
    outcome = rig.work(messages[0], rig.worker(profiles=pausing))

    assert (outcome.state, outcome.pages) == ("paused", 2)
    part = rig.runs.part("winter-sale", RUN, 0)
    assert part is not None and (part["state"], part["seq"]) == ("paused", 3) and part["cursor"] is not None
    assert part["counts"] == outcome.counts
    first = [r.key for r in rig.delivered()]
    assert len(first) == part["counts"]["queued"]
    # The other part's worker, while paused, stops before its first page.
    other = rig.work(messages[1])
    assert (other.state, other.pages) == ("paused", 0)
    assert rig.delivered() == []

    rig.set_status("winter-sale", "running")  # resumed: the admin API queues the paused parts again
    resumed = [rig.work(m) for m in messages]

    assert [o.state for o in resumed] == ["done", "done"]
    rest = [r.key for r in rig.delivered()]
    assert sorted(first + rest) == sorted(expected.now)  # nobody twice, nobody missed
    assert rig.totals("winter-sale") == nonzero(expected.counts)
    assert rig.campaign("winter-sale").status == "completed"


def test_given_a_campaign_cancelled_between_pages_when_worked_then_its_parts_stop_for_good(rig: Rig) -> None:
    rig.define(campaign())
    rig.store(population(100))
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    messages = rig.part_messages()

    cancelling = AfterPages(rig.profiles, 1, lambda: rig.set_status("winter-sale", "cancelled"))
    outcome = rig.work(messages[0], rig.worker(profiles=cancelling))

    assert (outcome.state, outcome.pages) == ("cancelled", 1)
    assert outcome.counts is not None
    sent = rig.delivered()
    assert len(sent) == outcome.counts["queued"]  # the page in hand went; nothing after it
    other = rig.work(messages[1])
    assert (other.state, other.pages) == ("cancelled", 0)
    assert [p["state"] for p in rig.runs.parts("winter-sale", RUN)] == ["cancelled", "cancelled"]
    # A redelivered part message, long after: a cancelled part is never taken up again.
    assert [rig.work(m, at=NOW + timedelta(hours=1)).state for m in messages] == ["held_elsewhere"] * 2
    assert rig.delivered() == []
    assert rig.totals("winter-sale") == nonzero(outcome.counts)
    assert rig.campaign("winter-sale").status == "cancelled"


def test_given_a_campaign_deleted_mid_run_when_worked_then_the_worker_stops_as_if_cancelled(rig: Rig) -> None:
    rig.define(campaign())
    rig.store(population(120))
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    messages = rig.part_messages()
    rig.config.delete_document(keys.CAMPAIGN_PK, "winter-sale")

    outcomes = [rig.work(m) for m in messages]

    assert [(o.state, o.pages) for o in outcomes] == [("cancelled", 0), ("cancelled", 0)]
    assert rig.delivered() == []


# ============================================================================== message caps
def test_given_a_cap_on_messages_when_four_parts_race_then_exactly_that_many_are_queued_and_the_rest_capped(
    rig: Rig,
) -> None:
    rig.define(campaign(max_messages=25))
    people = population(240)
    rig.store(people)
    rig.runner(parts=4).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    assert expected.counts["queued"] > 50
    messages = rig.part_messages()

    outcomes = race(4, lambda n: rig.work(messages[n]))

    assert [o.state for o in outcomes] == ["done"] * 4
    sent = [r.key for r in rig.delivered()]
    assert len(sent) == len(set(sent)) == 25
    assert set(sent) <= set(expected.now)
    capped = expected.counts["queued"] - 25
    assert rig.totals("winter-sale") == nonzero({**expected.counts, "queued": 25, "capped": capped})


def test_given_a_cap_on_messages_when_a_worker_dies_before_its_checkpoint_then_the_run_still_queues_the_cap(
    rig: Rig,
) -> None:
    rig.define(campaign(max_messages=25))
    people = population(240)
    rig.store(people)
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    messages = rig.part_messages()

    with pytest.raises(Crash):
        rig.work(messages[0], rig.worker(runs=DiesBeforeCheckpoint(rig.runs, page=1)))
    rig.work(messages[0], at=NOW + timedelta(minutes=10))
    rig.work(messages[1])

    sent = {r.key for r in rig.delivered()}
    assert len(sent) == 25  # the page queued twice reserved its messages once
    capped = expected.counts["queued"] - 25
    assert rig.totals("winter-sale") == nonzero({**expected.counts, "queued": 25, "capped": capped})


# ============================================================================== local time
def test_given_a_local_time_campaign_when_worked_then_people_ahead_wait_on_timers_until_their_own_ten(rig: Rig) -> None:
    zones = (
        "Pacific/Kiritimati",
        "Asia/Tokyo",
        "Asia/Kolkata",
        "Europe/Paris",
        "America/New_York",
        "Pacific/Pago_Pago",
    )
    local = campaign("local-ten", schedule={"type": "local_time", "date": "2026-12-01", "time": "10:00"}, variants=None)
    rig.define(local)
    people = population(120, zones=zones)
    rig.store(people)
    # Fired nine hours after ten first struck (in Kiritimati): missed there, just past in Tokyo and
    # Kolkata (sent at once), still ahead in Paris, New York and Pago Pago.
    fired = first_fire_for_local_time(date(2026, 12, 1), time(10)) + timedelta(hours=9)
    run_id = run_id_for(fired)

    rig.runner(parts=2).start("local-ten", fired, fired)
    running = rig.campaign("local-ten")
    outcomes = [rig.work(m, at=fired) for m in rig.part_messages()]

    assert [o.state for o in outcomes] == ["done", "done"]
    expected = plan(running, people, fired_at=fired, now=fired)
    assert expected.counts["missed"] and expected.counts["scheduled"] and expected.now
    assert {r.key: r for r in rig.delivered()} == expected.now
    assert rig.totals("local-ten", run_id) == nonzero(expected.counts)
    timers: dict[str, tuple[str, MessageRequest]] = {}
    for minute in sorted({minute_of(at + timedelta(minutes=1)) for at, _ in expected.later.values()}):
        for timer in rig.timers.due(minute):
            timers[timer["id"]] = (timer["dueAt"], MessageRequest.model_validate(timer["payload"]))
    assert timers == {r.message_id: (iso(at), r) for at, r in expected.later.values()}
    by_zone = Counter(iso(at) for at, _ in expected.later.values())
    assert set(by_zone) == {"2026-12-01T09:00:00.000Z", "2026-12-01T15:00:00.000Z", "2026-12-01T21:00:00.000Z"}


# ============================================================================== the runner's own races
class WorkedAtOnce:
    """The part queue with workers that take every part up the moment it is queued, so that the
    whole run ends before the runner's next step."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.outcomes: list[PartOutcome] = []

    def send_bodies(self, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        self.outcomes.extend(self.rig.work(json.loads(body)) for body in bodies)


def test_given_workers_that_finish_the_run_before_the_runner_returns_when_started_then_the_campaign_completes(
    rig: Rig,
) -> None:
    rig.define(campaign())
    rig.store(population(60))
    fast = WorkedAtOnce(rig)

    started = CampaignRunner(rig.config, rig.runs, fast, parts=2).start("winter-sale", NOW, NOW)

    assert (started.created, [o.state for o in fast.outcomes]) == (True, ["done", "done"])
    assert rig.campaign("winter-sale").status == "completed"


class PausedMeanwhile(ConfigStore):
    """The campaign store as the runner reads it while a marketer pauses the campaign just after
    the runner's first read."""

    def __init__(self, rig: Rig) -> None:
        super().__init__(rig.config.table, cache_seconds=0, client=rig.config.client)
        self.rig = rig
        self.reads = 0

    def find_document(self, kind: str, doc_id: str, model: type[D]) -> D | None:
        self.reads += 1
        if self.reads == 2:
            self.rig.set_status(doc_id, "paused")
        return super().find_document(kind, doc_id, model)


def test_given_a_pause_while_the_runner_starts_the_run_when_it_marks_the_campaign_running_then_the_pause_stands(
    rig: Rig,
) -> None:
    rig.define(campaign())
    rig.store(population(40))

    started = rig.runner(parts=2, config=PausedMeanwhile(rig)).start("winter-sale", NOW, NOW)

    assert started.created
    assert rig.campaign("winter-sale").status == "paused"
    assert [rig.work(m).state for m in rig.part_messages()] == ["paused", "paused"]
    assert rig.delivered() == []


# ============================================================================== pacing and time
class Recorded:
    """The delivery queue, noting the worker's clock and how many messages it had queued before
    each batch it sends."""

    def __init__(self, real: MessageQueue, clock: VirtualClock) -> None:
        self.real = real
        self.clock = clock
        self.batches: list[tuple[float, int]] = []
        self.queued = 0

    def send(self, requests: Sequence[MessageRequest], delay_seconds: int = 0) -> None:
        self.batches.append((self.clock.now(), self.queued))
        self.queued += len(requests)
        self.real.send(requests, delay_seconds)


class Timed(CampaignRuns):
    """The part store, noting the worker's clock at each checkpoint."""

    def __init__(self, real: CampaignRuns, clock: VirtualClock) -> None:
        super().__init__(real.table, client=real.client)
        self.clock = clock
        self.at: list[float] = []

    def checkpoint(self, campaign_id: str, run_id: str, part: int, *, seq: int, **fields: Any) -> None:
        self.at.append(self.clock.now())
        super().checkpoint(campaign_id, run_id, part, seq=seq, **fields)


@pytest.mark.parametrize(("send_rate", "parts"), [(50, 2), (1, 10)])
def test_given_a_share_of_the_send_rate_when_a_worker_queues_then_batches_go_when_due_and_pages_end_within_the_reserve(
    rig: Rig, send_rate: int, parts: int
) -> None:
    """Message n of a worker is due n / rate seconds after it started, never sooner. And a page is
    counted only at its checkpoint: one that took longer to pace out than the time a worker keeps
    in reserve would outlive the invocation, and every retry would start it over."""
    rig.define(campaign(send_rate=send_rate, holdout_percent=0, variants=None))
    people = population(20 * parts, mixes=(("vip",),))
    rig.store(people)
    rig.runner(parts=parts).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    sinks = [Recorded(rig.deliveries, VirtualClock()) for _ in range(parts)]
    stores = [Timed(rig.runs, sink.clock) for sink in sinks]

    outcomes = [
        rig.work(m, rig.worker(sink.clock, messages=sink, runs=store))
        for m, sink, store in zip(rig.part_messages(), sinks, stores, strict=True)
    ]

    assert [o.state for o in outcomes] == ["done"] * parts
    assert [sink.queued for sink in sinks] == [(o.counts or {}).get("queued", 0) for o in outcomes]
    assert max(sink.queued for sink in sinks) > 10  # some worker queued several batches
    rate = send_rate / parts
    for sink, store in zip(sinks, stores, strict=True):
        started = sink.clock.began
        # The worker's clock moves only when it sleeps: each batch goes exactly when it is due.
        assert [at - started for at, _ in sink.batches] == pytest.approx([n / rate for _, n in sink.batches])
        steps = [later - earlier for earlier, later in itertools.pairwise([started, *store.at])]
        assert max(steps) <= service.RESERVE_S, steps
    assert sorted(r.key for r in rig.delivered()) == sorted(expected.now)
    assert rig.totals("winter-sale") == nonzero(expected.counts)


def test_given_a_worker_short_of_time_when_it_hands_its_part_on_page_by_page_then_the_part_ends_with_exact_counts(
    rig: Rig,
) -> None:
    rig.define(campaign())
    people = population(160)
    rig.store(people)
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    [message] = rig.part_messages()
    invocations: list[PartOutcome] = []

    # Less time left than the reserve: every invocation does one page, then hands the part on.
    while True:
        outcome = rig.worker().work(message["campaignId"], message["runId"], 0, 1, lambda: NOW, service.RESERVE_S - 1)
        invocations.append(outcome)
        handed_on = rig.part_messages()
        if outcome.state == "done":
            break
        assert (outcome.state, outcome.pages, handed_on) == ("continued", 1, [message])

    assert len(invocations) > 2
    assert sorted(r.key for r in rig.delivered()) == sorted(expected.now)
    assert rig.totals("winter-sale") == nonzero(expected.counts)


# ============================================================================== delivery outcomes
def zone_at(hour: int) -> str:
    """A fixed-offset zone whose clock reads `hour` o'clock now (the deliver function reads the
    real clock for quiet hours). POSIX signs: Etc/GMT-5 is five hours ahead of UTC."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def sqs_event(bodies: Sequence[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{n}",
                "receiptHandle": f"rh-{n}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def test_given_a_run_delivered_by_the_deliver_function_when_outcomes_are_counted_then_each_counts_once(
    rig: Rig,
) -> None:
    """Counted as functions/deliver counts: the run's counters by outcome and reason, once per
    message however often the queue redelivers it."""
    rig.stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")
    winter = Template(
        id="winter",
        name="Winter",
        channel="email",
        locales={"en": {"subject": "Winter sale", "html": "<p>Ten percent off</p>"}},
        status="approved",
    )
    rig.config.save_template(winter, winter)
    rig.define(campaign(variants=None, holdout_percent=0))
    day, night = zone_at(12), zone_at(2)
    dynamodb, table = rig.stack.clients.dynamodb(), rig.profiles.table
    kinds: dict[str, tuple[dict[str, Any], str]] = {  # the outcome each person is set up for: consent, zone
        "sent": (CONSENT, day),
        "no_consent": ({}, day),
        "suppressed": (CONSENT, day),
        "frequency_cap": (CONSENT, day),
        "deferred": (CONSENT, night),
    }
    people = [
        Profile(
            id=f"{kind}-{n}",
            created_at=ENTERED,
            traits={"email": f"{kind}-{n}@example.org"},
            consent=consent,
            timezone=zone,
            segments={"vip": ENTERED},
        )
        for kind, (consent, zone) in kinds.items()
        for n in range(3 if kind == "sent" else 2)
    ]
    rig.store(people)
    suppressions = SuppressionStore(table, client=dynamodb)
    for n in range(2):
        suppressions.suppress("email", f"suppressed-{n}@example.org", "hard_bounce", "all", datetime.now(UTC))
    caps = CapStore(table, client=dynamodb)
    weekly = (FrequencyCap(channel="email", category="marketing", limit=3, days=7),)  # the template's default
    for n, earlier in itertools.product(range(2), range(3)):
        taken = caps.reserve(f"frequency_cap-{n}", f"e-{earlier}", "email", "marketing", weekly, datetime.now(UTC))
        assert taken is None
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    running = rig.campaign("winter-sale")
    [part] = rig.part_messages()
    rig.work(part)
    queued = rig.drain(rig.deliveries.queue_url)
    # And one person deleted after the run queued them.
    ghost = plan_recipient(running, Profile(id="gone", created_at=ENTERED, segments={"vip": ENTERED}), RUN, NOW)
    assert ghost.request is not None
    bodies = [*queued, ghost.request.model_dump_json()]
    deliverer = rig.stack.load("DeliverFunction")

    first = deliverer.lambda_handler(sqs_event(bodies), Context())
    again = deliverer.lambda_handler(sqs_event(bodies), Context())  # the queue redelivers the lot

    assert first == again == {"batchItemFailures": []}
    counted = rig.counters.totals("campaign", "winter-sale")
    assert {run: {name: int(amount) for name, amount in counts.items()} for run, counts in counted.items()} == {
        RUN: {
            "sent": 3,
            "blocked:no_consent": 2,
            "blocked:suppressed": 2,
            "blocked:frequency_cap": 2,
            "deferred": 2,
            "blocked:no_profile": 1,
        }
    }
    stats = stats_view(counted[RUN])
    assert (stats["sent"], stats["deferred"], stats["blocked"]["no_consent"], stats["blocked"]["other"]) == (3, 2, 2, 0)
    assert rig.touched("sent") == {"sent-0", "sent-1", "sent-2"}  # for attributing conversions


def delivery_ports(rig: Rig) -> Ports:
    """What the deliver function works with, on the rig's stores, sending through a recorder."""
    dynamodb, table = rig.stack.clients.dynamodb(), rig.profiles.table
    return Ports(
        ledger=rig.ledger,
        profiles=rig.profiles,
        suppressions=SuppressionStore(table, client=dynamodb),
        caps=CapStore(table, client=dynamodb),
        templates=ApprovedEmail("Winter", "<p>Winter</p>"),
        timers=rig.timers,
        channels=RecordingProvider(),
    )


def test_given_a_deliverer_killed_around_counting_an_outcome_when_the_request_is_redelivered_then_it_counts_once(
    rig: Rig,
) -> None:
    """Given campaign messages sent, when the deliverer dies after the ledger recorded the send
    (before counting it, or just after the count's write) and the queue redelivers the request,
    then `sent` says exactly how many were sent: the redelivery finds the ledger's outcome and
    counts it unless the first attempt did."""
    rig.define(campaign(variants=None, holdout_percent=0))
    people = [
        Profile(
            id=f"p{n}",
            created_at=ENTERED,
            traits={"email": f"p{n}@example.org"},
            consent=CONSENT,
            timezone=zone_at(12),
            segments={"vip": ENTERED},
        )
        for n in range(3)
    ]
    rig.store(people)
    ports = delivery_ports(rig)
    policy = Policy(caps=(), quiet_hours=None)
    requests = [plan_recipient(rig.campaign("winter-sale"), p, RUN, NOW).request for p in people]
    for request, dies in zip(requests, ("before counting", "after counting", "not at all"), strict=True):
        assert request is not None
        outcome = deliver(request, ports, policy, NOW)
        assert outcome.status == SENT
        if dies == "after counting":
            dying = DiesAtWrite(rig.stack.clients.dynamodb(), 1, after=True)
            dying_counters = Counters(rig.profiles.table, client=dying)  # type: ignore[arg-type]
            with pytest.raises(WorkerDied):
                count_outcome(request, outcome, dying_counters, rig.touches, NOW)
        elif dies == "not at all":
            assert count_outcome(request, outcome, rig.counters, rig.touches, NOW)
        # The queue delivers the request again: a duplicate, carrying the ledger's outcome.
        again = deliver(request, ports, policy, NOW + timedelta(seconds=30))
        assert (again.status, again.recorded) == ("duplicate", (SENT, "sent by email"))
        counted_now = count_outcome(request, again, rig.counters, rig.touches, NOW + timedelta(seconds=30))
        assert counted_now is (dies == "before counting")

    totals = rig.counters.totals("campaign", "winter-sale", RUN)[RUN]
    assert {name: int(amount) for name, amount in totals.items()} == {"sent": 3}


def test_given_a_message_deferred_by_quiet_hours_when_it_is_released_and_sent_then_it_is_no_longer_counted_deferred(
    rig: Rig,
) -> None:
    rig.define(campaign(variants=None, holdout_percent=0))
    ann = Profile(
        id="ann",
        created_at=ENTERED,
        traits={"email": "ann@example.org"},
        consent=CONSENT,
        timezone="Europe/Paris",
        segments={"vip": ENTERED},
    )
    rig.store([ann])
    request = plan_recipient(rig.campaign("winter-sale"), ann, RUN, NOW).request
    assert request is not None
    ports = delivery_ports(rig)
    policy = Policy(caps=(), quiet_hours=(time(21), time(8)))
    night, morning = datetime(2026, 12, 1, 22, 30, tzinfo=UTC), datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    rig.timers.advance(minute_of(morning - timedelta(minutes=3)))

    def delivered_and_counted(message: MessageRequest, at: datetime) -> str:
        """What functions/deliver does with one request: deliver it, then count its outcome."""
        outcome = deliver(message, ports, policy, at)
        count_outcome(message, outcome, rig.counters, rig.touches, at)
        return outcome.status

    assert delivered_and_counted(request, night) == "deferred"
    sweep(rig.timers, rig.deliveries, morning + timedelta(minutes=1, seconds=2))
    [released] = rig.delivered()
    assert delivered_and_counted(released, morning + timedelta(minutes=2)) == SENT

    totals = rig.counters.totals("campaign", "winter-sale", RUN)[RUN]
    assert stats_view(totals)["sent"] == 1
    assert stats_view(totals)["deferred"] == 0


# ============================================================================== conversions
def order(
    profile_id: str, message_id: str, at: datetime, revenue: Any = "49.90", name: str = "Order Completed"
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": profile_id,
        "messageId": message_id,
        "timestamp": iso(at),
        "properties": {"revenue": revenue},
    }


def test_given_people_messaged_and_held_out_when_they_order_then_each_converts_once_per_run_and_each_order_adds_once(
    rig: Rig,
) -> None:
    goal = campaign(variants=None, holdout_percent=30, conversion={"event": "Order Completed", "window": "3d"})
    rig.define(goal)
    people = population(60, mixes=(("vip",),))
    rig.store(people)
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    running = rig.campaign("winter-sale")
    [part] = rig.part_messages()
    rig.work(part)  # the held-out people are touched by the worker
    sent_at = NOW + timedelta(minutes=5)
    sent = sorted(r.profile_id for r in rig.delivered())
    for profile_id in sent:  # what functions/deliver records on each send
        rig.touches.add(profile_id, sent_at, "campaign", "winter-sale", RUN, "sent")
    held = sorted(plan(running, people).held_out)
    assert len(sent) >= 3 and len(held) >= 3
    tracker = ConversionTracker(lambda: [running], rig.touches, rig.counters)

    def track(event: dict[str, Any]) -> int:
        return tracker.handle(event["userId"], event, parse_iso(event["timestamp"]) + timedelta(seconds=30))

    buyer, second_buyer, late_buyer = sent[:3]
    early = NOW + timedelta(hours=2)
    attributed = [
        track(order(buyer, "o-1", early)),
        track(order(buyer, "o-1", early)),  # the same event again (a redelivery)
        track(order(buyer, "o-2", NOW + timedelta(days=2), revenue=10)),  # a second order: revenue, not a person
        track(order(second_buyer, "o-3", NOW + timedelta(days=1), revenue="100")),
        track(order(late_buyer, "o-4", sent_at + timedelta(days=3, seconds=1))),  # after the window
        track(order(second_buyer, "o-5", early, name="Page Viewed")),  # not the goal
        track(order(held[0], "o-6", early, revenue=20)),
        track(order(held[0], "o-6", early, revenue=20)),
        track(order(held[1], "o-7", NOW - timedelta(minutes=1))),  # before they were held out
        track(order("p-stranger", "o-8", early)),  # never touched
    ]

    assert attributed == [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    totals = rig.counters.totals("campaign", "winter-sale", RUN)
    assert totals == {
        RUN: {
            "converted": Decimal(2),
            "revenue": Decimal("159.90"),
            "holdout_converted": Decimal(1),
            "holdout_revenue": Decimal(20),
        }
    }


# ============================================================================== hostile input
def test_given_a_campaign_that_does_not_exist_or_is_a_draft_when_started_then_no_run_begins(rig: Rig) -> None:
    rig.define(campaign("draft-sale", status="draft"))

    unknown = rig.runner().start("no-such-campaign", NOW, NOW)
    draft = rig.runner().start("draft-sale", NOW, NOW)

    assert (unknown.created, unknown.parts_queued, unknown.skipped) == (False, 0, "the campaign no longer exists")
    assert (draft.created, draft.parts_queued, draft.skipped) == (False, 0, "the campaign is draft")
    assert rig.runs.runs("no-such-campaign") == [] and rig.runs.runs("draft-sale") == []
    assert rig.part_messages() == []
    assert rig.campaign("draft-sale").status == "draft"


def test_given_a_part_that_does_not_exist_when_worked_then_nothing_is_written_or_queued(rig: Rig) -> None:
    rig.define(campaign())
    rig.store(population(40))
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    rig.part_messages()

    outcomes = [
        rig.work({"campaignId": "winter-sale", "runId": RUN, "part": 7, "total": 2}),  # no such part
        rig.work({"campaignId": "winter-sale", "runId": "r20991231T2359Z", "part": 0, "total": 2}),  # no such run
        rig.work({"campaignId": "nobody", "runId": RUN, "part": 0, "total": 2}),
    ]

    assert [(o.state, o.pages) for o in outcomes] == [("gone", 0)] * 3
    assert rig.runs.part("winter-sale", RUN, 7) is None
    assert rig.runs.part("winter-sale", "r20991231T2359Z", 0) is None
    assert [p["state"] for p in rig.runs.parts("winter-sale", RUN)] == ["pending", "pending"]
    assert rig.delivered() == [] and rig.part_messages() == []


def test_given_a_part_message_with_a_forged_total_when_worked_then_the_part_is_scanned_as_the_run_split_it(
    rig: Rig,
) -> None:
    rig.define(campaign())
    people = population(200)
    rig.store(people)
    rig.runner(parts=4).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    messages = rig.part_messages()

    forged = rig.work({**messages[0], "total": 2})  # a slice of two would cover half the people
    rest = [rig.work(m) for m in messages]

    assert forged.state == "done"
    assert [(o.state, o.pages > 0) for o in rest] == [("done", False)] + [("done", True)] * 3
    sent = [r.key for r in rig.delivered()]
    assert sorted(sent) == sorted(expected.now)
    assert rig.totals("winter-sale") == nonzero(expected.counts)


class Unhurried(Context):
    """An invocation with the function's whole timeout ahead of it."""

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


MALFORMED = {
    "a list": "[]",
    "null": "null",
    "no run": '{"campaignId": "winter-sale"}',
    "a part that is not a number": json.dumps({"campaignId": "winter-sale", "runId": RUN, "part": "first", "total": 1}),
}


def test_given_malformed_part_messages_in_a_batch_when_handled_then_each_fails_alone_saying_why(rig: Rig) -> None:
    rig.define(campaign(send_rate=10_000))
    people = population(30)
    rig.store(people)
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    expected = plan(rig.campaign("winter-sale"), people)
    [good] = rig.drain(rig.parts_queue.queue_url)
    worker = rig.stack.load("SendCampaignFunction")

    answer = worker.lambda_handler(sqs_event([*MALFORMED.values(), good]), Unhurried())

    assert answer == {"batchItemFailures": [{"itemIdentifier": f"m-{n}"} for n in range(len(MALFORMED))]}
    reasons = [str(info[1]) for info in worker.processor.exceptions]
    assert len(reasons) == len(MALFORMED)
    assert all(reason.startswith("not a campaign part: ") for reason in reasons), reasons
    part = rig.runs.part("winter-sale", RUN, 0)
    assert part is not None and part["state"] == "done"
    assert sorted(r.key for r in rig.delivered()) == sorted(expected.now)


def test_given_a_part_message_that_is_not_json_when_handled_then_it_fails_saying_it_is_not_a_campaign_part(
    rig: Rig,
) -> None:
    worker = rig.stack.load("SendCampaignFunction")
    [record] = sqs_event(["{not json"])["Records"]

    with pytest.raises(ValueError) as refused:
        worker.record_handler(SQSRecord(record))

    assert str(refused.value).startswith("not a campaign part: ")


# ============================================================================== the archive
def test_given_a_campaign_with_a_holdout_and_variants_when_worked_then_each_person_s_exposure_is_archived_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PAGE_ITEMS", 50)
    rig.define(campaign())
    people = population(300)
    rig.store(people)
    rig.runner(parts=2).start("winter-sale", NOW, NOW)
    archive = MemoryArchive()
    archive.fail = 1  # the first page's put fails: the page is not checkpointed and runs again

    messages = rig.part_messages()
    with pytest.raises(ConnectionError):
        rig.work(messages[0], rig.worker(archive=archive))
    assert rig.work(messages[0], rig.worker(archive=archive), at=NOW + timedelta(minutes=10)).state == "done"
    assert rig.work(messages[1], rig.worker(archive=archive)).state == "done"

    # Then the archive holds one exposure per person reached: the variant sent, or the holdout
    sent = {r.profile_id: r for r in rig.delivered()}
    exposures = {(r.profile_id, r.variant, r.message_id) for r in archive.records}
    assert {r.kind for r in archive.records} == {"experiment_exposure"}
    expected = {(p, r.origin.step, r.message_id) for p, r in sent.items()}
    expected |= {(p, "holdout", None) for p in rig.touched("held_out")}
    assert exposures == expected
    assert len({r.record_id for r in archive.records}) == len(expected)
    assert {(r.experiment_id, r.origin_kind, r.origin_id) for r in archive.records} == {
        ("winter-sale", "campaign", "winter-sale")
    }


def test_given_a_campaign_without_a_split_when_worked_then_nothing_is_archived_as_an_exposure(rig: Rig) -> None:
    rig.define(campaign(variants=None, holdout_percent=0))
    rig.store(population(40))
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    archive = MemoryArchive()
    [message] = rig.part_messages()
    assert rig.work(message, rig.worker(archive=archive)).state == "done"
    assert rig.delivered() and archive.records == []
