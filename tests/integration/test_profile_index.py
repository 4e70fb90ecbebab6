"""The sparse index of live profiles (template.yaml `LiveProfiles`): scans of every profile read
it once every live profile is in it, and the whole table until then, tagging what was written
before the index existed. Through the real refresh functions on moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from midstage import keys
from midstage.adapters.automation_store import RefreshJobs
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from midstage.models.profile import Profile, WritePlan
from tests.integration.conftest import Context, Stack
from tests.integration.test_handlers import drain

T0 = datetime(2026, 11, 23, tzinfo=UTC)
CREATED = "2026-11-01T00:00:00.000Z"


def store_of(stack: Stack) -> ProfileStore:
    return ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())


def people(stack: Stack, count: int, *, legacy: int = 0, merged: int = 0) -> set[str]:
    """`count` live profiles, the first `legacy` of them as written before the index existed (no
    index attribute), and `merged` tombstones of people merged into the first. Their ids."""
    store = store_of(stack)
    live = {f"p{n:03d}" for n in range(count)}
    for profile_id in sorted(live):
        store.save(WritePlan(Profile(id=profile_id, created_at=CREATED)))
    for n in range(merged):
        loser = Profile(id=f"gone{n}", created_at=CREATED)
        store.save(WritePlan(loser))
        stored = store.profile(loser.id)
        assert stored is not None
        stored.merged_into = "p000"
        store.save(
            WritePlan(survivor=store.profile("p000") or Profile(id="p000", created_at=CREATED), tombstones=[stored])
        )
    for profile_id in sorted(live)[:legacy]:
        stack.clients.dynamodb().update_item(
            TableName=store.table,
            Key={"pk": {"S": keys.profile_pk(profile_id)}, "sk": {"S": keys.PROFILE_SK}},
            UpdateExpression="REMOVE #live",
            ExpressionAttributeNames={"#live": keys.LIVE_ATTRIBUTE},
        )
    return live


def read_all(store: ProfileStore, parts: int, *, started: datetime | None = None, limit: int = 3) -> list[str]:
    """Every profile id the scan's parts return, a small page at a time."""
    found: list[str] = []
    for part in range(parts):
        cursor: dict[str, Any] | None = None
        while True:
            page, cursor = store.scan_page(part, parts, cursor, limit, started=started)
            found += [p.id for p in page]
            if cursor is None:
                break
    return found


def index_keys(stack: Stack) -> set[str]:
    answer = stack.clients.dynamodb().scan(TableName=stack.output("DataTableName"), IndexName=keys.LIVE_PROFILES_INDEX)
    return {item[keys.LIVE_ATTRIBUTE]["S"] for item in answer["Items"]}


def test_the_table_scan_tags_profiles_written_before_the_index_and_the_index_then_reads_the_same(
    stack: Stack,
) -> None:
    # Given 12 live profiles, 4 written before the index existed, and 2 merged away
    live = people(stack, 12, legacy=4, merged=2)
    assert index_keys(stack) == live - {"p000", "p001", "p002", "p003"}  # no tombstone, no legacy item
    # When the profiles are scanned before the index is known complete
    table = store_of(stack)
    assert table.index_ready_since() is None
    by_table = read_all(table, parts=3)
    # Then every live profile is read once, and the legacy ones are put into the index
    assert sorted(by_table) == sorted(live) and table.tagged == 4
    assert index_keys(stack) == live
    # When the index is known complete, a scan reads it: the same people, each once, no tombstone
    indexed = store_of(stack)
    indexed.mark_index_ready(T0 - timedelta(hours=2))
    first, cursor = indexed.scan_page(0, 1, None, 5)
    # the cursor holds the index's key: it read the index
    assert len(first) == 5 and cursor is not None and keys.LIVE_ATTRIBUTE in cursor
    assert sorted(read_all(indexed, parts=4, started=T0)) == sorted(live)
    assert indexed.tagged == 0


def test_a_sweep_that_tags_nothing_makes_the_index_ready_and_only_later_jobs_read_it(stack: Stack) -> None:
    live = people(stack, 5, legacy=2)
    jobs = RefreshJobs(stack.output("DataTableName"), client=stack.clients.dynamodb())

    def sweep(at: datetime) -> dict[str, Any]:
        started = stack.load("LifecycleSweepFunction", fixed(at)).lambda_handler(
            {"parts": 2, "scheduledTime": at.isoformat()}, Context()
        )
        records = drain(stack, "RefreshQueue")
        assert {json.loads(r["body"])["startedAt"] for r in records} == {
            at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        }
        refresh = stack.load("RefreshSegmentsFunction", fixed(at + timedelta(minutes=5)))
        assert refresh.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}
        job = jobs.get(started["jobId"])
        assert job is not None and job["state"] == "done"
        return job

    # Given an upgraded deployment: its first sweep finds the two profiles written before the index
    assert sweep(T0)["tagged"] == 2
    assert store_of(stack).index_ready_since() is None
    # When the next sweep finds none to tag
    assert sweep(T0 + timedelta(hours=1))["tagged"] == 0
    # Then scans read the index from an hour after it found so
    ready = store_of(stack).index_ready_since()
    assert ready == T0 + timedelta(hours=1, minutes=5) + timedelta(hours=1)
    # And a job begun before that time keeps reading the table, one begun after reads the index
    before = store_of(stack).scan_page(0, 1, None, 2, started=ready - timedelta(seconds=1))[1]
    after = store_of(stack).scan_page(0, 1, None, 2, started=ready)[1]
    assert before is not None and keys.LIVE_ATTRIBUTE not in before
    assert after is not None and keys.LIVE_ATTRIBUTE in after
    # And a sweep then reads the index, every profile still once
    assert sweep(ready + timedelta(minutes=1))["scanned"] == len(live)
    assert store_of(stack).index_ready_since() == ready  # the first record stands
