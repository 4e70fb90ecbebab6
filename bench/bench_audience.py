"""How fast a campaign worker resolves its audience: profiles per second per worker.

The worker's hot path with the AWS calls taken out. Every profile is a DynamoDB item packed
exactly as `ProfileStore.save` writes it (1-3 KB: traits with their stamps, computed traits,
daily counters for 3-90 active days, consent, pending ids and 0-4 segment memberships). A
page of items goes through `_profile_from_item` (what `scan_page` does with each item),
`CampaignWorker._page` (`plan_recipient` for each person: an audience of 2 segments minus 1
excluded, a 10% holdout and 2 variants) and `MessageQueue.send` (each request encoded as SQS
receives it; the SQS client is a stub that drops the batch). Stages, one core, a page of 500
items at a time, each page's results held in a list as `scan_page` returns them (holding a
page costs more than decoding item by item: fresh memory, and the collector's passes over it):

- floor: `json.loads(zlib.decompress(...))` of the same items, the least any reader pays;
- decode: `_profile_from_item` alone;
- decode + plan: `_profile_from_item` and `CampaignWorker._page`;
- whole part: `CampaignWorker.work` over one part, with in-memory ports (a scan over the items
  in pages of 500, run and part bookkeeping, touches for the held out, pacing computed but not
  waited), so everything a worker does between AWS calls is counted;
- of which encoding: `MessageQueue.send` alone over the requests a plan produced.

Then scaling: the same 40,000-profile run (80 pages of 500) split into N parts, one worker
process each (N = 1, 2, 4, 8, forked, started together), aggregate profiles/s and efficiency
against N times the single worker. The items are 5,000 distinct profiles read eight times each:
every read decodes the bytes afresh, as a scan would. Last, the real `ProfileStore.scan_page`
on moto in-process over 5,000 stored profiles (NOT AWS: moto's Python emulation of DynamoDB),
to show the store's share.

Medians of several timed repeats, spread (min-max) beside them. Single-process figures are CPU
time (`time.process_time`): on a shared machine the wall clock also counts the wait for a core.
The scaling figures are wall time, as they must be; each worker's CPU time is printed beside.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import statistics
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from typing import Any, cast

from bench.bench_profile_updater import data_table_definition, local_cloud
from midstage import keys
from midstage.adapters.automation_store import Stale
from midstage.adapters.documents import pack
from midstage.adapters.dynamo import item_size
from midstage.adapters.profile_store import ProfileStore, _profile_from_item, _profile_item
from midstage.adapters.queues import MessageQueue
from midstage.config import ComputedTraitSettings
from midstage.logic.campaigns import run_id_for
from midstage.logic.profile import compute
from midstage.logic.timefmt import iso
from midstage.models.campaigns import Audience, Campaign, CampaignMessage, OnceSchedule, Variant
from midstage.models.profile import Profile
from midstage.services.campaigns import PAGE_ITEMS, CampaignWorker
from midstage.services.ports import ProfilePages

SEED = 2026
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
RUN_ID = run_id_for(NOW)
BASE_PROFILES = 200  # fully built profiles; the pool varies them (id, identities, segments)
POOL = 5_000  # distinct profile items
STAGE_PROFILES = 2_000  # per single-core repeat
REPEATS = 5
SCALE_PROFILES = 40_000  # 200,000 takes minutes on 2 shared cores; 80 pages of 500 suffice
WORKER_COUNTS = (1, 2, 4, 8)
MOTO_PROFILES = 5_000
# CPU time of this process, not wall time: the machine is shared, and under load the wall clock
# measures the wait for a core as much as the work (the scaling figures are wall time).
cpu_time = time.process_time
MOTO_REPEATS = 3
SEGMENTS = (
    "high-value",
    "new-customers",
    "churn-risk",
    "newsletter-readers",
    "cart-abandoners",
    "vip-at-risk",
    "silent-customers",
)
EVENT_NAMES = ("Order Completed", "Product Viewed", "Product Added", "Checkout Started", "$page", "$identify")

CAMPAIGN = Campaign(
    id="black-friday",
    name="Black Friday",
    version=3,
    status="running",
    audience=Audience(segments=["high-value", "new-customers"], exclude=["churn-risk"]),
    message=CampaignMessage(
        channels=["email"],
        template="black-friday-email",
        vars={"coupon_code": "BF20", "discount": "20%", "shop_url": "https://shop.example.com/black-friday"},
    ),
    variants=[
        Variant(id="subject-a", percent=50.0),
        Variant(id="subject-b", percent=50.0, template="black-friday-email-b", vars={"discount": "25%"}),
    ],
    holdout_percent=10.0,
    schedule=OnceSchedule(type="once", at=iso(NOW)),
    send_rate=10_000,
)


# ------------------------------------------------------------------------------ profiles
def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_profile(rng: random.Random, index: int, now: datetime = NOW) -> Profile:
    """A stored customer profile as the updater leaves it: ~4-6 KB of JSON, 1-3 KB packed."""
    days_active = rng.choice([3, 10, 20, 40, 60, 90])
    orders = rng.randint(0, 12)
    profile = Profile(
        id=f"prof_{index:07d}",
        created_at=stamp(now - timedelta(days=400)),
        version=rng.randint(3, 200),
        updated_at=stamp(now - timedelta(hours=rng.randint(1, 500))),
        identities={
            "user_id": [f"user_{index:07d}"],
            "email": [f"person{index}@example.com"],
            "anonymous_id": [f"anon-{rng.getrandbits(64):016x}"],
        },
        traits={
            "email": f"person{index}@example.com",
            "first_name": rng.choice(["Ada", "Bob", "Chen", "Dee"]),
            "last_name": rng.choice(["Lovelace", "Martin", "Wu", "Okafor"]),
            "plan": rng.choice(["free", "pro", "team"]),
            "country": rng.choice(["FR", "DE", "US", "GB"]),
            "city": rng.choice(["Lyon", "Berlin", "Austin", "Leeds"]),
            "newsletter": rng.random() < 0.7,
            "signup_source": rng.choice(["organic", "newsletter", "partner_ads"]),
            "birthday": f"{rng.randint(1960, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        },
        first_seen=stamp(now - timedelta(days=400)),
        last_seen=stamp(now - timedelta(hours=rng.randint(1, 2000))),
        orders=orders,
        revenue=str(Decimal(rng.randint(0, 300_000)) / 100) if orders else "0",
        first_order_at=stamp(now - timedelta(days=300)) if orders else None,
        last_order_at=stamp(now - timedelta(days=rng.randint(1, 200))) if orders else None,
        tags=sorted(rng.sample(["vip", "beta", "wholesale", "newsletter", "gift-buyer"], rng.randint(0, 2))),
        consent={
            "email:marketing": {
                "granted": True,
                "stamp": f"{stamp(now - timedelta(days=100))}|m-{index}|src_shop",
                "source": "src_shop",
            }
        },
        timezone=rng.choice(["Europe/Paris", "Europe/London", "America/New_York", None]),
        locale="en",
    )
    profile.trait_stamps = {
        name: f"{stamp(now - timedelta(days=rng.randint(1, 300)))}|ajs-{rng.getrandbits(64):016x}|src_shop"
        for name in profile.traits
    }
    for name in EVENT_NAMES:
        days = {
            (now - timedelta(days=d)).strftime("%Y%m%d"): rng.randint(1, 4) for d in rng.sample(range(90), days_active)
        }
        profile.daily_counts[name] = days
        profile.event_counts[name] = sum(days.values()) + rng.randint(0, 30)
    profile.events_applied = sum(profile.event_counts.values())
    profile.computed = compute(profile, now, ComputedTraitSettings())
    profile.segments = {
        s: stamp(now - timedelta(days=rng.randint(1, 200))) for s in rng.sample(SEGMENTS, rng.randint(0, 4))
    }
    profile.pending = {
        f"src_shop|ajs-{rng.getrandbits(64):016x}": int(now.timestamp()) for _ in range(rng.randint(0, 3))
    }
    return profile


def profile_items(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """`count` distinct profile items: BASE_PROFILES full profiles, each varied in id,
    identities and segment memberships (building every profile from scratch takes milliseconds
    each). Items are laid out as `_profile_item` lays them out; a sample is checked byte for byte."""
    rng = random.Random(seed)
    bases = [make_profile(rng, n) for n in range(min(count, BASE_PROFILES))]
    docs = [base.to_doc() for base in bases]
    items: list[dict[str, Any]] = []
    for index in range(count):
        doc = dict(docs[index % len(docs)])
        profile_id = f"prof_{index:07d}"
        email = f"person{index}@example.com"
        doc["id"] = profile_id
        doc["identities"] = {**doc["identities"], "user_id": [f"user_{index:07d}"], "email": [email]}
        doc["traits"] = {**doc["traits"], "email": email}
        doc["segments"] = {
            s: stamp(NOW - timedelta(days=rng.randint(1, 200))) for s in rng.sample(SEGMENTS, rng.randint(0, 4))
        }
        version = int(doc["version"])
        doc["version"] = version + 1
        items.append(
            {
                "pk": {"S": keys.profile_key(profile_id)["pk"]},
                "sk": {"S": keys.profile_key(profile_id)["sk"]},
                "version": {"N": str(version + 1)},
                "doc": {"B": pack(doc)},
            }
        )
    for item in items[:: max(1, count // 25)]:
        profile = _profile_from_item(item)
        profile.version -= 1  # the stored version is the one after the write
        if _profile_item(profile) != item:
            raise AssertionError(f"item of {profile.id} is not laid out as ProfileStore.save writes it")
    return items


# ------------------------------------------------------------------------------ in-memory ports
class OneCampaign:
    """The config store's documents, holding the one campaign."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign

    def find_document(self, kind: str, doc_id: str, model: type[Campaign]) -> Campaign | None:
        return self.campaign if kind == keys.CAMPAIGN_PK and doc_id == self.campaign.id else None

    def save_document(self, kind: str, document: Campaign) -> Campaign:
        self.campaign = document
        return document


class MemoryRuns:
    """CampaignRuns' run and part items on dicts, with the same conditions: a lease to hold a
    part, a checkpoint only over the sequence number read."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.part_items: dict[tuple[str, str, int], dict[str, Any]] = {}

    def create_run(self, campaign_id: str, run_id: str, doc: Mapping[str, Any], now: datetime) -> bool:
        if (campaign_id, run_id) in self.runs:
            return False
        self.runs[campaign_id, run_id] = {**doc, "done_parts": set(), "reserved": 0, "held": {}}
        return True

    def run(self, campaign_id: str, run_id: str) -> dict[str, Any] | None:
        found = self.runs.get((campaign_id, run_id))
        if found is None:
            return None
        fields = {k: v for k, v in found.items() if k not in ("done_parts", "held")}
        return {**fields, "parts_done": len(found["done_parts"])}

    def put_part(self, campaign_id: str, run_id: str, part: int, total: int, now: datetime) -> None:
        self.part_items.setdefault(
            (campaign_id, run_id, part),
            {"part": part, "total": total, "state": "pending", "seq": 0, "holder": None, "lease_until": None},
        )
        self.part_items[campaign_id, run_id, part].setdefault("cursor", None)
        self.part_items[campaign_id, run_id, part].setdefault("counts", {})

    def part(self, campaign_id: str, run_id: str, part: int) -> dict[str, Any] | None:
        found = self.part_items.get((campaign_id, run_id, part))
        return dict(found) if found else None

    def parts(self, campaign_id: str, run_id: str) -> list[dict[str, Any]]:
        return [dict(p) for (c, r, _), p in sorted(self.part_items.items()) if (c, r) == (campaign_id, run_id)]

    def claim_part(self, campaign_id: str, run_id: str, part: int, holder: str, now: datetime, lease_s: int) -> bool:
        item = self.part_items.get((campaign_id, run_id, part))
        at = int(now.timestamp())
        if item is None or not (
            item["state"] in ("pending", "paused")
            or (item["state"] == "running" and (item["holder"] == holder or (item["lease_until"] or 0) < at))
        ):
            return False
        item.update(state="running", holder=holder, lease_until=at + lease_s)
        return True

    def checkpoint(
        self,
        campaign_id: str,
        run_id: str,
        part: int,
        *,
        seq: int,
        holder: str,
        cursor: Mapping[str, Any] | None,
        counts: Mapping[str, int],
        state: str,
        now: datetime,
        lease_s: int,
    ) -> None:
        item = self.part_items[campaign_id, run_id, part]
        if item["seq"] != seq or item["holder"] != holder or item["state"] != "running":
            raise Stale(f"campaign part {campaign_id}/{run_id}/{part} moved on")
        # Stored as the adapter stores them: the cursor and counts as JSON text.
        item.update(
            state=state,
            seq=seq + 1,
            cursor=json.loads(json.dumps(cursor)) if cursor else None,
            counts=json.loads(json.dumps(dict(counts), sort_keys=True)),
            lease_until=int(now.timestamp()) + lease_s,
        )

    def part_finished(self, campaign_id: str, run_id: str, part: int) -> int:
        done: set[int] = self.runs[campaign_id, run_id]["done_parts"]
        done.add(part)
        return len(done)

    def reserve(self, campaign_id: str, run_id: str, wanted: int, limit: int, *, part: int, already: int) -> int:
        run = self.runs[campaign_id, run_id]
        mine = max(run["held"].get(part, 0), already)  # beyond `already`: reserved by a page worked again
        grant = max(0, min(wanted, mine - already + limit - run["reserved"]))
        run["reserved"] += already + grant - mine
        run["held"][part] = already + grant
        return grant

    def set_part_state(self, campaign_id: str, run_id: str, part: int, state: str, only_from: Sequence[str]) -> bool:
        item = self.part_items.get((campaign_id, run_id, part))
        if item is None or item["state"] not in only_from:
            return False
        item["state"] = state
        return True

    def prepare(self, campaign: Campaign, run_id: str, total: int) -> None:
        """What CampaignRunner.start leaves: the run and its parts, pending."""
        self.create_run(campaign.id, run_id, {"scheduled_at": iso(NOW), "parts": total}, NOW)
        for part in range(total):
            self.put_part(campaign.id, run_id, part, total, NOW)


class ItemScan:
    """A parallel scan over `count` stored profile items (item i is pool[i % len(pool)]): each
    segment is a contiguous slice, read a page at a time and decoded as `scan_page` decodes."""

    def __init__(self, pool: Sequence[dict[str, Any]], count: int) -> None:
        self.pool = pool
        self.count = count

    def scan_page(
        self,
        segment: int,
        total_segments: int,
        cursor: dict[str, Any] | None,
        limit: int = 500,
        *,
        started: datetime | None = None,
    ) -> tuple[list[Profile], dict[str, Any] | None]:
        start = cursor["next"] if cursor else segment * self.count // total_segments
        stop = (segment + 1) * self.count // total_segments
        end = min(stop, start + limit)
        pool, size = self.pool, len(self.pool)
        profiles = [p for p in (_profile_from_item(pool[i % size]) for i in range(start, end)) if not p.merged_into]
        return profiles, ({"next": end} if end < stop else None)


class DroppedBatches:
    """SQS's send_message_batch with the network call taken out: counts what would have gone."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send_message_batch(self, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        self.messages += len(Entries)
        self.bytes += sum(len(entry["MessageBody"]) for entry in Entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


class NoTimers:
    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any], kind: str = "deliver") -> None:
        raise AssertionError("a campaign sent at once schedules nothing")


class KeptTouches:
    def __init__(self) -> None:
        self.touches: list[tuple[str, datetime, str, str, str, str]] = []

    def add_many(self, touches: Sequence[tuple[str, datetime, str, str, str, str]]) -> None:
        self.touches.extend(touches)

    def since(self, profile_id: str, since: datetime) -> list[dict[str, str]]:
        return []


class NoContinuations:
    def send_bodies(self, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        raise AssertionError("a part finishes in one invocation here")


class SkippedWaits:
    """The worker's clock and sleep with the waits skipped: a sleep moves the clock forward at
    once, so pacing is computed but costs no time (these figures are the worker's CPU, not the
    campaign's send rate)."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def clock(self) -> float:
        return time.monotonic() + self.skipped

    def sleep(self, seconds: float) -> None:
        self.skipped += seconds


class Wiring:
    def __init__(self, profiles: ProfilePages, total: int = 1) -> None:
        self.runs = MemoryRuns()
        self.runs.prepare(CAMPAIGN, RUN_ID, total)
        self.sqs = DroppedBatches()
        self.queue = MessageQueue(
            "https://sqs.us-east-1.amazonaws.com/123456789012/delivery", client=cast(Any, self.sqs)
        )
        self.touches = KeptTouches()
        self.waits = SkippedWaits()
        self.worker = CampaignWorker(
            OneCampaign(CAMPAIGN),
            self.runs,
            profiles,
            self.queue,
            NoTimers(),
            self.touches,
            NoContinuations(),
            sleep=self.waits.sleep,
            clock=self.waits.clock,
        )

    def work(self, part: int = 0, total: int = 1) -> dict[str, int]:
        outcome = self.worker.work(CAMPAIGN.id, RUN_ID, part, total, lambda: NOW, time_left=1e9)
        if outcome.state != "done" or outcome.counts is None:
            raise AssertionError(f"the part ended {outcome.state}")
        return outcome.counts


# ------------------------------------------------------------------------------ single core
def per_profile(run: Callable[[], None], profiles: int, repeats: int = REPEATS, *, warm: bool = True) -> list[float]:
    if warm:
        run()
    samples = []
    for _ in range(repeats):
        started = cpu_time()
        run()
        samples.append((cpu_time() - started) / profiles)
    return samples


def rate(samples: list[float]) -> str:
    median = statistics.median(samples)
    return (
        f"{1 / median:>8,.0f} profiles/s  ({1 / max(samples):,.0f}-{1 / min(samples):,.0f})"
        f"  {median * 1e6:6.1f} µs/profile"
    )


def pages(items: Sequence[dict[str, Any]]) -> list[Sequence[dict[str, Any]]]:
    return [items[i : i + PAGE_ITEMS] for i in range(0, len(items), PAGE_ITEMS)]


def single_core(pool: list[dict[str, Any]]) -> None:
    items = pool[:STAGE_PROFILES]
    blobs = [item["doc"]["B"] for item in items]
    planner = Wiring(ItemScan(items, len(items))).worker

    def floor() -> None:
        for start in range(0, len(blobs), PAGE_ITEMS):
            held = [json.loads(zlib.decompress(blob)) for blob in blobs[start : start + PAGE_ITEMS]]
            assert len(held) == len(blobs[start : start + PAGE_ITEMS])

    def decode() -> None:
        for page in pages(items):
            held = [p for p in map(_profile_from_item, page) if not p.merged_into]  # as scan_page returns it
            assert len(held) == len(page)

    def decode_and_plan() -> None:
        for page in pages(items):
            profiles = [p for p in map(_profile_from_item, page) if not p.merged_into]
            planner._page(CAMPAIGN, RUN_ID, profiles, NOW, NOW)

    counts: dict[str, int] = {}

    def whole_part() -> None:
        counts.clear()
        counts.update(Wiring(ItemScan(items, len(items))).work())

    planned = [
        request
        for page in pages(items)
        for request in planner._page(CAMPAIGN, RUN_ID, list(map(_profile_from_item, page)), NOW, NOW).now
    ]
    encoder = Wiring(ItemScan(items, len(items)))

    def encode() -> None:
        for start in range(0, len(planned), 10):
            encoder.queue.send(planned[start : start + 10])

    print(
        f"   1. one core, CPU time; {STAGE_PROFILES:,} profiles per repeat in pages of {PAGE_ITEMS}, "
        f"median of {REPEATS} (min-max)"
    )
    base = per_profile(floor, len(items))
    print(f"      {'floor: zlib + json decode of the items':<44} {rate(base)}")  # pages of 500, held
    stages = [
        ("decode: _profile_from_item", decode),
        ("decode + plan: + CampaignWorker._page", decode_and_plan),
        ("whole part: CampaignWorker.work, in memory", whole_part),
    ]
    for label, run in stages:
        samples = per_profile(run, len(items))
        ratio = statistics.median(samples) / statistics.median(base)
        print(f"      {label:<44} {rate(samples)}   x{ratio:.1f} of the floor")
    encoding = per_profile(encode, len(items))
    per_message = statistics.median(encoding) * len(items) / len(planned)
    print(
        f"      {'of which MessageQueue.send encoding':<44} {statistics.median(encoding) * 1e6:6.1f} µs/profile "
        f"({min(encoding) * 1e6:.1f}-{max(encoding) * 1e6:.1f}), {per_message * 1e6:.1f} µs per message; "
        f"{encoder.sqs.bytes / max(1, encoder.sqs.messages):,.0f} B per SQS message"
    )
    decisions = ", ".join(f"{name} {value:,}" for name, value in sorted(counts.items()))
    print(f"      decisions per {len(items):,}: {decisions}")


# ------------------------------------------------------------------------------ scaling
_SHARED_POOL: list[dict[str, Any]] = []  # filled before forking: children read it copy-on-write


def _part_process(part: int, total: int, barrier: Barrier, results: Any) -> None:
    wiring = Wiring(ItemScan(_SHARED_POOL, SCALE_PROFILES), total)
    barrier.wait()
    started, cpu_started = time.perf_counter(), cpu_time()
    counts = wiring.work(part, total)
    results.put((part, started, time.perf_counter(), cpu_time() - cpu_started, counts))


def scaled(workers: int) -> tuple[float, list[float], float, dict[str, int]]:
    """`workers` processes each working one part: the aggregate profiles/s (wall clock, first
    start to last finish), each process's own rate, the CPU seconds per profile over all of
    them, and the summed counts."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [context.Process(target=_part_process, args=(p, workers, barrier, results)) for p in range(workers)]
    for process in processes:
        process.start()
    finished = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise AssertionError(f"a worker process failed ({process.exitcode})")
    counts: dict[str, int] = {}
    own: list[float] = []
    for part, started, ended, _, part_counts in finished:
        share = (part + 1) * SCALE_PROFILES // workers - part * SCALE_PROFILES // workers
        own.append(share / (ended - started))
        for name, value in part_counts.items():
            counts[name] = counts.get(name, 0) + value
    wall = max(f[2] for f in finished) - min(f[1] for f in finished)
    return SCALE_PROFILES / wall, own, sum(f[3] for f in finished) / SCALE_PROFILES, counts


def scaling(pool: list[dict[str, Any]]) -> None:
    _SHARED_POOL[:] = pool
    print(
        f"   2. {SCALE_PROFILES:,} profiles ({len(pool):,} distinct items, each read {SCALE_PROFILES // len(pool)}x) "
        f"split into N parts, one forked worker process each; {multiprocessing.cpu_count()} CPUs here, "
        f"load average {os.getloadavg()[0]:.1f} before"
    )
    single = 0.0
    expected: dict[str, int] | None = None
    for workers in WORKER_COUNTS:
        aggregate, own, cpu, counts = scaled(workers)
        if expected is None:
            single, expected = aggregate, counts
        elif counts != expected:
            raise AssertionError(f"{workers} workers counted {counts}, one worker {expected}")
        efficiency = aggregate / (workers * single)
        print(
            f"      N={workers}: {aggregate:>8,.0f} profiles/s in all  (per process {min(own):,.0f}-{max(own):,.0f})"
            f"   x{aggregate / single:.2f} of N=1, efficiency {efficiency:.0%}; CPU {cpu * 1e6:.0f} µs/profile"
        )
    print(
        "      the machine has 2 cores: past N=2 the processes share them, so the aggregate flattens; "
        "on Lambda each worker is its own function instance"
    )
    assert expected is not None
    print(f"      every N counted the same: {', '.join(f'{k} {v:,}' for k, v in sorted(expected.items()))}")


# ------------------------------------------------------------------------------ moto
def scan_read_units(items: Sequence[dict[str, Any]]) -> float:
    """A scan's read units: per page, the items' sizes summed, in 4 KB units, halved (eventually
    consistent). Pages as a 500-item Limit cuts them (smaller pages when 1 MB comes first)."""
    units = 0.0
    for page in pages(items):
        units += math.ceil(sum(item_size(item) for item in page) / 4096) * 0.5
    return units


def on_moto(pool: list[dict[str, Any]]) -> None:
    items = pool[:MOTO_PROFILES]
    expected: dict[str, int] = {}

    def in_memory() -> None:
        expected.clear()
        expected.update(Wiring(ItemScan(items, len(items))).work())

    memory = per_profile(in_memory, len(items), MOTO_REPEATS, warm=False)
    with local_cloud() as (dynamodb, _events):
        table = f"DataTable-{uuid.uuid4().hex[:8]}"
        dynamodb.create_table(TableName=table, **data_table_definition())
        for start in range(0, len(items), 25):
            dynamodb.batch_write_item(
                RequestItems={table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            )
        store = ProfileStore(table, client=dynamodb)

        def moto_scan() -> None:
            counts = Wiring(store).work()
            if counts != expected:
                raise AssertionError(f"on moto {counts}, in memory {expected}")

        samples = per_profile(moto_scan, len(items), MOTO_REPEATS, warm=False)
    print(
        f"   3. moto in-process, NOT AWS: CampaignWorker.work with the real ProfileStore.scan_page over "
        f"{len(items):,} stored profiles, the other ports in memory; median of {MOTO_REPEATS}"
    )
    print(f"      {'the same part, in memory':<44} {rate(memory)}")
    print(f"      {'scan_page on moto + plan + encode':<44} {rate(samples)}")
    moto, local = statistics.median(samples), statistics.median(memory)
    print(
        f"      moto's scan takes {1 - local / moto:.0%} of the time (+{(moto - local) * 1e6:,.0f} µs/profile); "
        "on AWS a page of 500 items is one Scan round trip instead"
    )
    units = scan_read_units(items)
    sizes = [item_size(item) for item in items]
    print(
        f"      reading the profiles costs {units / len(items) * 1000:,.1f} RRU per 1,000 profiles "
        f"(items {min(sizes):,}-{max(sizes):,} B, median {statistics.median(sizes):,.0f} B, eventually consistent "
        "scan); a table holding other items besides profiles pays for reading those too"
    )


def main() -> None:
    started = time.perf_counter()
    pool = profile_items(POOL)
    sizes = [item_size(item) for item in pool]
    raw = [len(zlib.decompress(item["doc"]["B"])) for item in pool[:2000]]
    print(
        f"   {len(pool):,} profile items of {min(sizes):,}-{max(sizes):,} B (median {statistics.median(sizes):,.0f} B, "
        f"{statistics.median(raw):,.0f} B of JSON), built in {time.perf_counter() - started:.1f} s; audience "
        f"{' | '.join(CAMPAIGN.audience.segments)} minus {' | '.join(CAMPAIGN.audience.exclude)}, "
        f"{CAMPAIGN.holdout_percent:g}% holdout, {len(CAMPAIGN.variants or [])} variants, email now"
    )
    single_core(pool)
    scaling(pool)
    on_moto(pool)
