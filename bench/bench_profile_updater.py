"""What the profile updater writes per event, in DynamoDB write units, and how fast it runs.

`services.ingest.process_unit` runs against the real adapters (`ProfileStore`, `EventPublisher`)
over moto, in-process: a DataTable created from template.yaml's declaration (pk/sk strings, on
demand) and an EventBridge bus. Write units are the store's own count (`store.usage`, from item sizes by
DynamoDB's rules), so they are what AWS would bill, whatever moto does.

Cases, each on a fresh table:
  (i)   track events of a known person, one event per unit (one hand-off message per event);
  (ii)  the same with ten events per unit (an SDK batch usually holds several events per person);
  (iii) a new person's first identify;
  (iv)  an identify that merges two existing profiles (an anonymous browser and a known user).
Target: at most 2 write units per track event of a known person, amortised.

Events per second include moto's in-process emulation of DynamoDB and EventBridge, which takes
about nine tenths of the time here. In Lambda the same eight calls per unit are sequential network
round trips instead, so these rates are no forecast of Lambda throughput in either direction.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto import mock_aws

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters import profile_store as store_module
from midstage.adapters.bus import EventPublisher
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.config import ComputedTraitSettings, IdentitySettings
from midstage.logic import profile as profile_logic
from midstage.logic.ingest import IngestSettings
from midstage.models.profile import Profile, WritePlan
from midstage.services.ingest import process_unit

REGION = "us-east-1"
TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
TABLE = "DataTable"
BUS = "midstage-bench"
SOURCE_ID = "src_bench"
TRACK_EVENTS = 200  # per case and run, for (i) and (ii)
RUNS = 3
TARGET_UNITS_PER_TRACK = 2.0
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SETTINGS = IngestSettings(identity=IdentitySettings(), traits=ComputedTraitSettings())
# A browsing session's mix: most events are not orders.
TRACK_NAMES = ("Product Viewed", "Product Viewed", "Product Added", "Checkout Started", "Order Completed")


class MeteredStore(ProfileStore):
    """The real store, with its write units also tallied by kind of write."""

    def __init__(self, table: str, client: Any) -> None:
        super().__init__(table, client=client)
        self.by_kind: dict[str, float] = defaultdict(float)

    def _metered(self, kind: str, write: Callable[[], None]) -> None:
        before = self.usage.write_units
        write()
        self.by_kind[kind] += self.usage.write_units - before

    def save(self, plan: WritePlan) -> None:
        transactional = bool(plan.tombstones or plan.new_identities or plan.merge_records)
        self._metered("profile (transaction)" if transactional else "profile", lambda: ProfileStore.save(self, plan))

    def put_timeline_page(self, profile_id: str, events: Sequence[dict[str, Any]], expires_at: int) -> None:
        self._metered("timeline", lambda: ProfileStore.put_timeline_page(self, profile_id, events, expires_at))

    def put_markers(self, marker_ids: Any, profile_id: str, expires_at: int) -> None:
        self._metered("markers", lambda: ProfileStore.put_markers(self, marker_ids, profile_id, expires_at))

    def repoint_identities(self, identifiers: Any, old_id: str, new_id: str) -> None:
        self._metered("repoint", lambda: ProfileStore.repoint_identities(self, identifiers, old_id, new_id))

    def put_merge_record(self, record: dict[str, Any]) -> None:
        self._metered("merge record", lambda: ProfileStore.put_merge_record(self, record))

    def profile_item_bytes(self, profile_id: str) -> int:
        item = self.client.get_item(TableName=self.table, Key=ddb.key(keys.profile_key(profile_id)))["Item"]
        return ddb.item_size(item)


@dataclass
class Measured:
    events: int
    write_units: float
    requests: int  # write calls: a transaction counts once
    seconds: float
    by_kind: dict[str, float]
    profile_bytes: int
    merges: int

    @property
    def units_per_event(self) -> float:
        return self.write_units / self.events


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enriched(kind: str, *, user_id: str | None, anonymous_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """An event as the collect function hands it off (logic.collect.enrich's output)."""
    return {
        "type": kind,
        "messageId": f"ajs-{uuid.uuid4()}",
        "userId": user_id,
        "anonymousId": anonymous_id,
        "timestamp": stamp(at),
        "receivedAt": stamp(at + timedelta(milliseconds=350)),
        "sourceId": SOURCE_ID,
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15",
            "page": {"path": "/products/trail-runner", "url": "https://shop.example.com/products/trail-runner"},
            "campaign": {"source": "newsletter", "medium": "email", "name": "bf-2026"},
        },
        **fields,
    }


def track(user_id: str | None, anonymous_id: str, index: int) -> dict[str, Any]:
    name = TRACK_NAMES[index % len(TRACK_NAMES)]
    properties: dict[str, Any] = {"product_id": "sku_1042", "price": 89.99, "currency": "USD"}
    if name == "Order Completed":
        properties = {
            "order_id": f"ord_{index:06d}",
            "revenue": 119.97,
            "currency": "USD",
            "products": [
                {"product_id": "sku_1042", "price": 89.99, "quantity": 1},
                {"product_id": "sku_2210", "price": 14.99, "quantity": 2},
            ],
        }
    # Spread over the last two weeks so daily counters grow as they would.
    at = NOW - timedelta(days=14) + timedelta(minutes=97 * index)
    return enriched("track", user_id=user_id, anonymous_id=anonymous_id, at=at, event=name, properties=properties)


def identify(user_id: str | None, anonymous_id: str, email: str, at: datetime) -> dict[str, Any]:
    traits = {"email": email, "first_name": "Ada", "last_name": "Lovelace", "plan": "pro", "country": "GB"}
    return enriched("identify", user_id=user_id, anonymous_id=anonymous_id, at=at, traits=traits)


# ------------------------------------------------------------------------ the local cloud
@contextmanager
def local_cloud() -> Iterator[tuple[Any, Any]]:
    """moto's DynamoDB and EventBridge, with clients that can never reach AWS."""
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            yield boto3.client("dynamodb", region_name=REGION), boto3.client("events", region_name=REGION)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml; intrinsic functions (!Ref, !Sub, ...) are not needed here."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@cache
def data_table_definition() -> dict[str, Any]:
    """DataTable's keys, indexes and billing mode as template.yaml declares them."""
    template = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    properties = template["Resources"]["DataTable"]["Properties"]
    wanted = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
    return {name: properties[name] for name in wanted if name in properties}


def fresh_wiring(dynamodb: Any, events: Any) -> tuple[MeteredStore, EventPublisher]:
    """A new DataTable and bus, so cases never share profiles."""
    table = f"{TABLE}-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=table, **data_table_definition())
    bus = f"{BUS}-{uuid.uuid4().hex[:8]}"
    events.create_event_bus(Name=bus)
    return MeteredStore(table, dynamodb), EventPublisher(bus, client=events)


def apply(units: list[list[dict[str, Any]]], store: MeteredStore, publisher: EventPublisher) -> Measured:
    units_before, writes_before, kinds_before = store.usage.write_units, store.usage.writes, dict(store.by_kind)
    started = time.perf_counter()
    profile_id, merges = "", 0
    for unit in units:
        outcome = process_unit(unit, store, publisher, SETTINGS, NOW, conflict=ConcurrentWrite)
        assert outcome.applied == len(unit), outcome
        profile_id = outcome.profile_id or profile_id
        merges += len(outcome.merged)
    seconds = time.perf_counter() - started
    return Measured(
        sum(map(len, units)),
        store.usage.write_units - units_before,
        store.usage.writes - writes_before,
        seconds,
        {kind: units - kinds_before.get(kind, 0.0) for kind, units in store.by_kind.items()},
        store.profile_item_bytes(profile_id),
        merges,
    )


def known_person_tracks(dynamodb: Any, events: Any, per_unit: int) -> Measured:
    store, publisher = fresh_wiring(dynamodb, events)
    user, anonymous = "user_00042", str(uuid.uuid4())
    apply([[identify(user, anonymous, "ada@example.com", NOW - timedelta(days=15))]], store, publisher)
    tracks = [track(user, anonymous, i) for i in range(TRACK_EVENTS)]
    return apply([tracks[i : i + per_unit] for i in range(0, len(tracks), per_unit)], store, publisher)


def first_identifies(dynamodb: Any, events: Any, people: int = 20) -> Measured:
    store, publisher = fresh_wiring(dynamodb, events)
    units = [
        [identify(f"user_{n:05d}", str(uuid.uuid4()), f"person{n}@example.com", NOW - timedelta(minutes=n))]
        for n in range(people)
    ]
    return apply(units, store, publisher)


def merging_identifies(dynamodb: Any, events: Any, people: int = 20) -> Measured:
    """Each person browsed anonymously (one profile) and is known elsewhere (another profile);
    an identify carrying both the userId and that anonymousId merges the two."""
    store, publisher = fresh_wiring(dynamodb, events)
    merges: list[list[dict[str, Any]]] = []
    for n in range(people):
        user, browser, phone_anonymous = f"user_{n:05d}", str(uuid.uuid4()), str(uuid.uuid4())
        apply([[track(None, browser, n)]], store, publisher)
        apply([[identify(user, phone_anonymous, f"person{n}@example.com", NOW - timedelta(days=1))]], store, publisher)
        merges.append([identify(user, browser, f"person{n}@example.com", NOW - timedelta(minutes=n))])
    measured = apply(merges, store, publisher)
    assert measured.merges == people, f"{measured.merges} of {people} identifies merged"
    return measured


def profile_write_after(days: int, events_per_day: int = 5, pending: int = 10) -> tuple[int, float]:
    """Bytes and write units of the profile item for a person active every day for `days` days.

    The profile grows with history (a daily counter per event name, kept for the longest count
    window) and carries the last unit's message ids in `pending`; this is computed in memory with
    the same logic and item layout the updater uses.
    """
    profile = Profile(id=uuid.uuid4().hex, created_at=stamp(NOW - timedelta(days=days)))
    profile_logic.apply_event(profile, identify("user_00042", str(uuid.uuid4()), "ada@example.com", NOW))
    for day in range(days):
        for n in range(events_per_day):
            event = track("user_00042", "a", n) | {"timestamp": stamp(NOW - timedelta(days=day, minutes=n))}
            profile_logic.apply_event(profile, event)
    profile_logic.prune_daily_counts(profile, NOW, SETTINGS.traits)
    profile.computed = profile_logic.compute(profile, NOW, SETTINGS.traits)
    profile.pending = [f"{SOURCE_ID}|ajs-{uuid.uuid4()}" for _ in range(pending)]
    item = store_module._profile_item(profile)
    return ddb.item_size(item), ddb.write_units(item)


def moto_consumed_capacity(dynamodb: Any) -> tuple[float | None, float]:
    """moto's ConsumedCapacity for one profile-sized put, next to the store's own count."""
    store, _ = fresh_wiring(dynamodb, boto3.client("events", region_name=REGION))

    # Random hex barely compresses, so the packed document stays about 3 KB.
    profile = Profile(id=uuid.uuid4().hex, created_at=stamp(NOW), traits={"bio": os.urandom(1800).hex()})
    item = store_module._profile_item(profile)  # the exact item a profile write stores
    answer = dynamodb.put_item(TableName=store.table, Item=item, ReturnConsumedCapacity="TOTAL")
    theirs = answer.get("ConsumedCapacity", {}).get("CapacityUnits")
    return theirs, ddb.write_units(item)


def main() -> None:
    print(f"   moto in-process (DynamoDB + EventBridge); {RUNS} runs per case, every figure per run")
    cases = {
        "(i)   known person, track, 1 event/unit": lambda d, e: known_person_tracks(d, e, 1),
        "(ii)  known person, track, 10 events/unit": lambda d, e: known_person_tracks(d, e, 10),
        "(iii) new person, first identify": first_identifies,
        "(iv)  identify merging two profiles": merging_identifies,
    }
    with local_cloud() as (dynamodb, events):
        for label, case in cases.items():
            results = [case(dynamodb, events) for _ in range(RUNS)]
            units = [r.units_per_event for r in results]
            rates = [r.events / r.seconds for r in results]
            line = (
                f"   {label:<42} {statistics.median(units):5.2f} WU/event ({min(units):.2f}-{max(units):.2f})"
                f"   {statistics.median(rates):5,.0f} events/s with moto ({min(rates):,.0f}-{max(rates):,.0f})"
            )
            if label.startswith(("(i) ", "(ii)")):
                verdict = "meets" if statistics.median(units) <= TARGET_UNITS_PER_TRACK else "MISSES"
                line += f"   {verdict} the <= {TARGET_UNITS_PER_TRACK:g} WU target"
            print(line)
            first = results[0]
            kinds = ", ".join(f"{kind} {units / first.events:.2f}" for kind, units in first.by_kind.items() if units)
            print(
                f"   {'':<42} per event: {kinds}; {first.requests / first.events:.1f} write calls;"
                f" profile item {first.profile_bytes:,} B at the end"
            )
        theirs, ours = moto_consumed_capacity(dynamodb)
    if theirs is None:
        print(f"   cross-check: moto returns no ConsumedCapacity for a put_item; ours for a 3 KB profile: {ours:g} WU")
    else:
        sizes = "sizes items" if theirs == ours else "does not size items (a flat figure)"
        print(f"   cross-check, one ~3 KB profile put: moto says {theirs:g} WU, ours {ours:g} WU: moto {sizes}")
    sizes = ", ".join(
        f"{days} d: {size:,} B = {units:g} WU" for days in (14, 30, 90) for size, units in [profile_write_after(days)]
    )
    print(f"   profile item for a person active daily (5 events/day, 10 pending ids), by history: {sizes}")
    print("   events/s include moto's in-process emulation (most of the time here): no forecast of Lambda throughput")
