"""What a scan of every profile reads: the whole DataTable, or the sparse index of live profiles.

Sweeps, backfills, estimates and campaign runs read every live profile. Before the index they
scanned the whole table (timeline pages, identities, dedupe markers, merges: `Limit` counts them
all); with it they scan the `LiveProfiles` index (keys only) and read the profiles by key.

A population is built by the real profile updater (`services.ingest.process_unit`) over moto
in-process, from template.yaml's table declaration: PEOPLE people, each identified and then
tracked in UNITS units of EVENTS_PER_UNIT events. Read units follow DynamoDB's rules from the
stored items' sizes (eventually consistent, 0.5 per 4 KB): a scan is billed on the bytes it reads
in total, a BatchGetItem per item rounded up to 4 KB, and an index item is its keys plus the
table's keys. Then both ways are timed on moto, and the read units are scaled to 10 M profiles.
Figures: docs/benchmarks.md and docs/capacity.md.
"""

from __future__ import annotations

import math
import statistics
import time
from datetime import timedelta
from typing import Any

from bench.bench_profile_updater import NOW, SETTINGS, fresh_wiring, identify, local_cloud, track
from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.services.ingest import process_unit

PEOPLE = 400
UNITS = 6  # hand-off units per person after the identify (each one timeline page)
EVENTS_PER_UNIT = 5
RUNS = 3
SCALE_TO = 10_000_000


def build(store: ProfileStore, publisher: Any) -> None:
    for person in range(PEOPLE):
        user, anonymous = f"user-{person:05d}", f"anon-{person:05d}"
        process_unit(
            [identify(user, anonymous, f"{user}@example.com", NOW)],
            store,
            publisher,
            SETTINGS,
            NOW,
            conflict=ConcurrentWrite,
        )
        for unit in range(UNITS):
            events = [track(user, anonymous, unit * EVENTS_PER_UNIT + n) for n in range(EVENTS_PER_UNIT)]
            at = NOW + timedelta(minutes=unit + 1)
            process_unit(events, store, publisher, SETTINGS, at, conflict=ConcurrentWrite)


def every_item(store: ProfileStore) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": store.table}
    while True:
        answer = store.client.scan(**kwargs)
        items += answer["Items"]
        if "LastEvaluatedKey" not in answer:
            return items
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def read_all(store: ProfileStore, *, started: Any = None) -> int:
    count, cursor = 0, None
    while True:
        page, cursor = store.scan_page(0, 1, cursor, 500, started=started)
        count += len(page)
        if cursor is None:
            return count


def timed(store: ProfileStore, *, index: bool) -> tuple[float, int]:
    samples, found = [], 0
    for _ in range(RUNS):
        reader = ProfileStore(store.table, client=store.client)
        if index:
            reader.mark_index_ready(NOW - timedelta(days=1))
        started = time.perf_counter()
        found = read_all(reader, started=NOW if index else None)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), found


def main() -> None:
    with local_cloud() as (dynamodb, events):
        store, publisher = fresh_wiring(dynamodb, events)
        build(store, publisher)
        items = every_item(store)
        profiles = [i for i in items if i["sk"]["S"] == keys.PROFILE_SK and keys.LIVE_ATTRIBUTE in i]
        table_bytes = sum(ddb.item_size(i) for i in items)
        profile_bytes = [ddb.item_size(i) for i in profiles]
        index_bytes = sum(ddb.item_size({k: i[k] for k in ("pk", "sk", keys.LIVE_ATTRIBUTE)}) for i in profiles)
        table_rru = table_bytes / 4096 * 0.5
        index_rru = index_bytes / 4096 * 0.5 + sum(math.ceil(b / 4096) * 0.5 for b in profile_bytes)
        # Timing: table first (it reads without the index record); then the index.
        table_s, by_table = timed(store, index=False)
        index_s, by_index = timed(store, index=True)
    assert by_table == by_index == len(profiles) == PEOPLE, (by_table, by_index, len(profiles))
    per_profile = SCALE_TO / PEOPLE
    print(
        f"   population: {PEOPLE} people x (1 identify + {UNITS} units of {EVENTS_PER_UNIT} tracks), "
        f"{len(items):,} items, {table_bytes / 1024:,.0f} KB; profiles {sum(profile_bytes) / 1024:,.0f} KB "
        f"(median {statistics.median(profile_bytes):,.0f} B): the table is "
        f"{table_bytes / sum(profile_bytes):.1f}x its profile bytes"
    )
    print(f"   {'read units per pass':<34} {'here':>10} {'at 10 M profiles':>18} {'$ per pass':>11}")
    for name, rru in (("whole-table scan", table_rru), ("LiveProfiles index + BatchGet", index_rru)):
        scaled = rru * per_profile
        print(f"   {name:<34} {rru:>10,.1f} {scaled / 1e6:>16,.2f} M {scaled / 1e6 * 0.25:>10,.2f}")
    print(f"   index / table read units: {index_rru / table_rru:.2f}")
    print(
        f"   time on moto in-process (median of {RUNS}): table {table_s * 1000:,.0f} ms, "
        f"index {index_s * 1000:,.0f} ms, ratio {index_s / table_s:.2f} (moto, NOT AWS)"
    )


if __name__ == "__main__":
    main()
