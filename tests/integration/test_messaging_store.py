"""The messaging stores against moto's DynamoDB (the DataTable template.yaml declares), with
their real conditional writes: the send ledger, cap reservations, suppressions, rule fire
records, timers and the timer sweep."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from infra.localcloud.fidelity import make_dynamodb_atomic
from midstage import keys
from midstage.adapters.messaging_store import CapStore, FireRecords, MessageLedger, SuppressionStore
from midstage.adapters.timer_store import TimerStore
from midstage.config import FrequencyCap
from midstage.logic.delivery import DEFERRED, DUPLICATE, IN_FLIGHT, NOT_DUE, SENT, Policy
from midstage.logic.rules import FireRecord
from midstage.logic.sharding import shard_of
from midstage.logic.timefmt import iso, minute_of, parse_iso
from midstage.models.messaging import MessageRequest, Origin
from midstage.models.profile import Profile
from midstage.services.admin.rules import _ORIGIN_CURSOR
from midstage.services.delivery import Ports, deliver
from midstage.services.timers import sweep
from tests.integration.conftest import Stack
from tests.support.concurrency import race
from tests.support.dying import DiesAtWrite, WorkerDied
from tests.support.fakes import ApprovedEmail, MemoryProfiles, RecordingProvider

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LEASE = 120


def table(stack: Stack) -> str:
    return stack.output("DataTableName")


def request(key: str = "k1", profile_id: str = "p1", origin: str = "r1", **fields: Any) -> MessageRequest:
    body: dict[str, Any] = {
        "key": key,
        "origin": Origin(kind="rule", id=origin, version=1, step="action-0"),
        "profile_id": profile_id,
        "channels": ["email"],
        "template": "promo",
        "requested_at": iso(NOW),
    }
    body.update(fields)
    return MessageRequest(**body)


@pytest.fixture
def ledger(stack: Stack) -> MessageLedger:
    return MessageLedger(table(stack), client=stack.clients.dynamodb())


# ============================================================================== the ledger's claim state machine
def test_given_a_new_message_when_claimed_then_it_is_sending_with_a_lease_and_one_attempt(
    ledger: MessageLedger,
) -> None:
    message = request()
    claim = ledger.claim(message, NOW, LEASE)
    assert claim.state == "claimed"
    record = ledger.get(message.message_id)
    assert record is not None
    assert (record["status"], record["leaseUntil"], record["attempts"]) == ("sending", int(NOW.timestamp()) + LEASE, 1)
    assert (record["profileId"], record["origin"], record["category"]) == ("p1", "rule#r1", "marketing")
    assert MessageRequest.model_validate_json(record["request"]) == message
    assert [h["status"] for h in record["history"]] == ["sending"]


def test_given_a_message_being_sent_when_claimed_again_then_it_is_in_flight_until_the_lease_runs_out(
    ledger: MessageLedger,
) -> None:
    message = request()
    ledger.claim(message, NOW, LEASE)
    assert ledger.claim(message, NOW + timedelta(seconds=1), LEASE).state == IN_FLIGHT
    assert ledger.claim(message, NOW + timedelta(seconds=LEASE), LEASE).state == IN_FLIGHT  # leaseUntil < now is strict
    takeover = ledger.claim(message, NOW + timedelta(seconds=LEASE + 1), LEASE)
    assert takeover.state == "claimed" and takeover.record["attempts"] == 2
    assert takeover.record["leaseUntil"] == int(NOW.timestamp()) + 2 * LEASE + 1


@pytest.mark.parametrize("final", ["sent", "blocked", "failed"])
def test_given_a_finished_message_when_claimed_then_it_is_a_duplicate_carrying_the_record(
    ledger: MessageLedger, final: str
) -> None:
    message = request()
    ledger.claim(message, NOW, LEASE)
    ledger.finish(message.message_id, final, f"{final} for a reason", NOW, channel="email", providerId="prov-1")
    claim = ledger.claim(message, NOW + timedelta(days=1), LEASE)
    assert claim.state == DUPLICATE
    assert (claim.record["status"], claim.record["reason"], claim.record["providerId"]) == (
        final,
        f"{final} for a reason",
        "prov-1",
    )
    assert "leaseUntil" not in claim.record


def test_given_a_deferred_message_when_claimed_then_it_is_not_due_before_and_claimed_from_its_time(
    ledger: MessageLedger,
) -> None:
    message = request()
    until = NOW + timedelta(hours=9)
    ledger.claim(message, NOW, LEASE)
    ledger.note(message.message_id, NOW, capReserved=True)
    ledger.defer(message.message_id, until, "quiet_hours", NOW)
    early = ledger.claim(message, until - timedelta(seconds=1), LEASE)
    assert (early.state, early.record["status"]) == (NOT_DUE, "deferred")
    due = ledger.claim(message, until, LEASE)
    assert due.state == "claimed" and due.cap_reserved
    assert [h["status"] for h in due.record["history"]] == ["sending", "deferred", "sending"]


def test_given_a_released_message_when_claimed_then_it_can_be_claimed_again_at_once(ledger: MessageLedger) -> None:
    message = request()
    ledger.claim(message, NOW, LEASE)
    ledger.release(message.message_id, "retrying: throttled", NOW)
    record = ledger.get(message.message_id)
    assert record is not None and record["status"] == "queued" and "leaseUntil" not in record
    again = ledger.claim(message, NOW + timedelta(seconds=1), LEASE)
    assert again.state == "claimed" and again.record["attempts"] == 2
    assert ledger.claim(message, NOW + timedelta(seconds=2), LEASE).state == IN_FLIGHT


def test_given_concurrent_claims_of_one_message_when_raced_then_exactly_one_wins(stack: Stack) -> None:
    make_dynamodb_atomic()  # see the cap test below for why
    ledger = MessageLedger(table(stack), client=stack.clients.dynamodb())
    message = request()
    states = [claim.state for claim in race(12, lambda _: ledger.claim(message, NOW, LEASE))]
    assert sorted(states) == ["claimed"] + [IN_FLIGHT] * 11


# ============================================================================== listing
def claim_listed_messages(ledger: MessageLedger) -> list[MessageRequest]:
    """Seven messages of p1 (from rules r1 and r2) claimed a minute apart, one of p2."""
    mine = [request(f"mine-{n}", origin="r1" if n % 2 else "r2") for n in range(7)]
    for n, message in enumerate(mine):
        ledger.claim(message, NOW + timedelta(minutes=n), LEASE)
    ledger.claim(mine[0], NOW + timedelta(hours=1), LEASE)  # a second claim (lease expired) adds no reference
    ledger.claim(request("theirs", profile_id="p2", origin="r9"), NOW, LEASE)
    return mine


def pages(ledger: MessageLedger, pk: str, prefix: str, limit: int) -> list[list[str]]:
    found, cursor = [], None
    while True:
        ids, cursor = ledger.list_for(pk, prefix, limit, cursor)
        found.append(ids)
        if cursor is None:
            return found


def test_given_messages_when_listed_by_person_then_pages_cover_each_once_newest_first(ledger: MessageLedger) -> None:
    mine = claim_listed_messages(ledger)
    by_person = pages(ledger, keys.profile_pk("p1"), keys.MESSAGE_REF_PREFIX, 3)
    assert [i for page in by_person for i in page] == [m.message_id for m in reversed(mine)]
    assert all(len(page) <= 3 for page in by_person)
    assert ledger.list_for(keys.profile_pk("nobody"), keys.MESSAGE_REF_PREFIX, 10, None) == ([], None)
    assert [r["id"] for r in ledger.many([mine[3].message_id, "msg_missing", mine[1].message_id])] == [
        mine[3].message_id,
        mine[1].message_id,
    ]


def origin_pages(ledger: MessageLedger, origin_id: str, limit: int) -> tuple[list[list[str]], list[str | None]]:
    found, cursors, cursor = [], [], None
    while True:
        ids, cursor = ledger.list_origin("rule", origin_id, "2", limit, cursor)
        found.append(ids)
        cursors.append(cursor)
        if cursor is None:
            return found, cursors


def test_given_messages_when_listed_by_origin_as_the_admin_api_asks_then_pages_cover_each_once_newest_first(
    ledger: MessageLedger,
) -> None:
    mine = claim_listed_messages(ledger)
    by_rule, _ = origin_pages(ledger, "r1", 2)
    assert [i for page in by_rule for i in page] == [m.message_id for m in reversed(mine) if m.origin.id == "r1"]


def test_given_a_campaigns_references_when_written_then_they_spread_over_the_shards_of_its_origin(
    stack: Stack, ledger: MessageLedger
) -> None:
    # Given 120 messages of one rule, claimed a second apart
    sent = [request(f"spread-{n}", profile_id=f"p{n}", origin="big") for n in range(120)]
    for n, message in enumerate(sent):
        ledger.claim(message, NOW + timedelta(seconds=n), LEASE)

    # Then each reference is under the shard its message id gives, none under the unsharded key
    client = stack.clients.dynamodb()
    by_shard = {
        pk: [
            i["messageId"]["S"]
            for i in client.query(
                TableName=table(stack),
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
            )["Items"]
        ]
        for pk in keys.origin_pks("rule", "big", ledger.origin_shards)
    }
    assert by_shard.pop(keys.origin_pk("rule", "big")) == []
    for message in sent:
        shard = shard_of(message.message_id, ledger.origin_shards)
        assert message.message_id in by_shard[keys.origin_shard_pk("rule", "big", shard)]
    assert sum(len(ids) for ids in by_shard.values()) == 120
    assert sum(1 for ids in by_shard.values() if ids) > ledger.origin_shards // 2  # spread, not piled up

    # And listing pages through every shard in time order, each message once, whatever the page size
    newest_first = [m.message_id for m in reversed(sent)]
    for limit in (13, 120, 500):
        found, cursors = origin_pages(ledger, "big", limit)
        assert [i for page in found for i in page] == newest_first, limit
        assert all(len(page) <= limit for page in found)
        assert all(c is None or _ORIGIN_CURSOR.fullmatch(c) for c in cursors)  # opaque to callers, one shape


def test_given_references_written_before_sharding_when_listed_then_they_are_merged_in_time_order(
    stack: Stack, ledger: MessageLedger
) -> None:
    # Given references under the unsharded key, as releases before sharding wrote them, interleaved
    # in time with messages claimed since
    old = [request(f"old-{n}", origin="mixed") for n in range(5)]
    client = stack.clients.dynamodb()
    for n, message in enumerate(old):
        client.put_item(
            TableName=table(stack),
            Item={
                "pk": {"S": keys.origin_pk("rule", "mixed")},
                "sk": {"S": f"{iso(NOW + timedelta(minutes=2 * n))}#{message.message_id}"},
                "messageId": {"S": message.message_id},
            },
        )
    new = [request(f"new-{n}", origin="mixed") for n in range(5)]
    for n, message in enumerate(new):
        ledger.claim(message, NOW + timedelta(minutes=2 * n + 1), LEASE)

    # Then the listing holds both, newest first, page by page
    both = [m.message_id for pair in zip(old, new, strict=True) for m in pair]
    for limit in (1, 3, 10):
        found, _ = origin_pages(ledger, "mixed", limit)
        assert [i for page in found for i in page] == list(reversed(both)), limit


def test_given_a_cursor_from_a_ledger_with_fewer_shards_when_paging_on_then_nothing_is_lost(stack: Stack) -> None:
    # The cursor is a position in time order, not in any shard: raising the shard count between
    # two pages (a redeploy with a higher OriginPeakSendsPerSecond) loses and repeats nothing.
    small = MessageLedger(table(stack), client=stack.clients.dynamodb(), origin_shards=2)
    sent = [request(f"grow-{n}", origin="grow") for n in range(6)]
    for n, message in enumerate(sent[:3]):
        small.claim(message, NOW + timedelta(minutes=n), LEASE)
    large = MessageLedger(table(stack), client=stack.clients.dynamodb(), origin_shards=40)
    for n, message in enumerate(sent[3:], start=3):
        large.claim(message, NOW + timedelta(minutes=n), LEASE)

    first, cursor = large.list_origin("rule", "grow", "2", 4, None)
    rest, end = large.list_origin("rule", "grow", "2", 4, cursor)

    assert first + rest == [m.message_id for m in reversed(sent)]
    assert end is None


# ============================================================================== caps
EMAIL_3 = (FrequencyCap(channel="email", category="marketing", limit=3, days=7),)


def test_given_20_deliverers_racing_for_one_person_when_the_cap_is_3_then_exactly_3_pass(stack: Stack) -> None:
    # DynamoDB applies a conditional write atomically: no other write lands between the check of
    # `version = :v` and the put. moto's backend takes no lock, so two threads can both pass the
    # check and both write, and more than three reservations would "pass" on moto only. The local
    # cloud serialises moto's item operations for exactly this reason; so do we (the `stack`
    # fixture applies it too: it is idempotent and process-wide).
    make_dynamodb_atomic()
    caps = CapStore(table(stack), client=stack.clients.dynamodb())
    for round_number in range(4):
        person = f"racer-{round_number}"

        def reserve(n: int, person: str = person) -> FrequencyCap | None:
            return caps.reserve(person, f"msg-{n}", "email", "marketing", EMAIL_3, NOW)

        results = race(20, reserve)
        assert sum(1 for r in results if r is None) == 3, (round_number, results)
        assert all(r == EMAIL_3[0] for r in results if r is not None)
        stored = stack.clients.dynamodb().get_item(TableName=table(stack), Key=_item_key(keys.caps_key(person)))
        assert stored["Item"]["sends"]["S"].count('"id"') == 3


def test_given_the_same_message_reserved_twice_when_counted_then_it_counts_once(stack: Stack) -> None:
    caps = CapStore(table(stack), client=stack.clients.dynamodb())
    one = (FrequencyCap(channel="email", category="marketing", limit=1, days=7),)
    assert caps.reserve("p1", "msg-a", "email", "marketing", one, NOW) is None
    assert caps.reserve("p1", "msg-a", "email", "marketing", one, NOW + timedelta(minutes=5)) is None
    assert caps.reserve("p1", "msg-b", "email", "marketing", one, NOW + timedelta(minutes=6)) == one[0]
    # Other channels, categories and people are not this cap's business.
    assert caps.reserve("p1", "msg-c", "sms", "marketing", one, NOW) is None
    assert caps.reserve("p1", "msg-d", "email", "transactional", one, NOW) is None
    assert caps.reserve("p2", "msg-e", "email", "marketing", one, NOW) is None
    # After the window, a slot is free and the old send is pruned from the item.
    assert caps.reserve("p1", "msg-f", "email", "marketing", one, NOW + timedelta(days=7, seconds=1)) is None


def test_given_sends_to_a_profile_merged_away_then_they_count_toward_the_survivors_cap(stack: Stack) -> None:
    # Given two marketing emails this week to an anonymous visitor's profile, since merged into a customer's
    caps = CapStore(table(stack), client=stack.clients.dynamodb())
    two = (FrequencyCap(channel="email", category="marketing", limit=2, days=7),)
    assert caps.reserve("visitor", "m-1", "email", "marketing", two, NOW - timedelta(days=2)) is None
    assert caps.reserve("visitor", "m-2", "email", "marketing", two, NOW - timedelta(days=1)) is None
    # When the customer's profile is sent a third
    refused = caps.reserve("customer", "m-3", "email", "marketing", two, NOW, merged_from=["visitor", "gone"])
    # Then the cap holds for the person, not per profile; and a week later there is room again
    assert refused == two[0]
    assert (
        caps.reserve("customer", "m-4", "email", "marketing", two, NOW + timedelta(days=6), merged_from=["visitor"])
        is None
    )


def test_given_the_same_message_reserved_by_racing_retries_when_counted_then_it_counts_once(stack: Stack) -> None:
    make_dynamodb_atomic()
    caps = CapStore(table(stack), client=stack.clients.dynamodb())
    one = (FrequencyCap(channel="email", category="marketing", limit=1, days=7),)
    results = race(8, lambda _: caps.reserve("p1", "msg-same", "email", "marketing", one, NOW))
    assert results == [None] * 8
    assert caps.reserve("p1", "msg-other", "email", "marketing", one, NOW) == one[0]


def _item_key(key: Mapping[str, str]) -> dict[str, Any]:
    return {k: {"S": v} for k, v in key.items()}


# ============================================================================== suppressions
def test_given_a_suppression_for_all_when_a_narrower_one_follows_then_the_scope_stays_all(stack: Stack) -> None:
    store = SuppressionStore(table(stack), client=stack.clients.dynamodb())
    store.suppress("email", "a@example.com", "hard_bounce", "all", NOW, "550 no such user")
    store.suppress("email", "a@example.com", "unsubscribe", "marketing", NOW + timedelta(days=1))
    kept = store.suppression("email", "a@example.com")
    assert kept is not None and (kept["scope"], kept["reason"], kept["detail"]) == (
        "all",
        "hard_bounce",
        "550 no such user",
    )


def test_given_a_marketing_suppression_when_a_wider_one_follows_then_it_widens(stack: Stack) -> None:
    store = SuppressionStore(table(stack), client=stack.clients.dynamodb())
    store.suppress("email", "b@example.com", "unsubscribe", "marketing", NOW)
    store.suppress("email", "b@example.com", "unsubscribe", "marketing", NOW + timedelta(hours=1))
    store.suppress("email", "b@example.com", "complaint", "all", NOW + timedelta(hours=2))
    kept = store.suppression("email", "b@example.com")
    assert kept is not None and (kept["scope"], kept["reason"]) == ("all", "complaint")
    assert store.suppression("sms", "b@example.com") is None
    assert store.lift("email", "b@example.com") is True
    assert store.suppression("email", "b@example.com") is None
    assert store.lift("email", "b@example.com") is False


# ============================================================================== rule fire records
def test_given_no_record_when_two_evaluators_fire_then_only_the_first_records(stack: Stack) -> None:
    fires = FireRecords(table(stack), client=stack.clients.dynamodb())
    assert fires.get("p1", "r1") is None
    assert fires.record("p1", "r1", "event:Signed Up:m1", NOW, None) is True
    assert fires.record("p1", "r1", "event:Signed Up:m2", NOW, None) is False  # it read "none" too
    assert fires.get("p1", "r1") == FireRecord(iso(NOW), "event:Signed Up:m1", 1)


def test_given_a_record_when_fired_again_then_only_a_caller_who_read_the_latest_or_the_same_occurrence_writes(
    stack: Stack,
) -> None:
    fires = FireRecords(table(stack), client=stack.clients.dynamodb())
    fires.record("p1", "r1", "occ-1", NOW, None)
    first = fires.get("p1", "r1")
    assert first is not None
    later = NOW + timedelta(days=8)
    assert fires.record("p1", "r1", "occ-2", later, first) is True
    # Another evaluator that also read occ-1 and wants occ-3 lost the race.
    assert fires.record("p1", "r1", "occ-3", later, first) is False
    # A redelivery of occ-2 with that stale read may finish (the occurrence is the one recorded).
    assert fires.record("p1", "r1", "occ-2", later + timedelta(minutes=1), first) is True
    assert fires.get("p1", "r1") == FireRecord(iso(later + timedelta(minutes=1)), "occ-2", 3)
    # Records are per person and rule.
    assert fires.get("p2", "r1") is None and fires.get("p1", "r2") is None


def test_given_records_of_several_profiles_when_read_together_then_each_found_one_comes_back(stack: Stack) -> None:
    fires = FireRecords(table(stack), client=stack.clients.dynamodb())
    fires.record("m-a", "r9", "occ-a", NOW, None)
    fires.record("m-b", "r9", "occ-b", NOW + timedelta(hours=1), None)
    fires.record("m-b", "r8", "occ-other-rule", NOW, None)
    found = fires.get_many(["m-a", "m-b", "m-none"], "r9")
    assert sorted(found, key=lambda r: r.last_occurrence) == [
        FireRecord(iso(NOW), "occ-a", 1),
        FireRecord(iso(NOW + timedelta(hours=1)), "occ-b", 1),
    ]
    assert fires.get_many([], "r9") == []


# ============================================================================== timers and the sweep
class Queue:
    def __init__(self) -> None:
        self.sent: list[MessageRequest] = []

    def send(self, requests: Sequence[MessageRequest], delay_seconds: int = 0) -> None:
        self.sent.extend(requests)


def timer_payload(key: str) -> dict[str, Any]:
    return request(key).model_dump(mode="json")


def spread_ids(count: int) -> list[str]:
    """Timer ids that land on every shard."""
    ids = [f"timer-{n}" for n in range(count)]
    assert {sum(i.encode()) % keys.TIMER_SHARDS for i in ids} == set(range(keys.TIMER_SHARDS))
    return ids


def test_given_timers_in_several_minutes_and_shards_when_swept_then_each_is_released_once(stack: Stack) -> None:
    timers, queue = TimerStore(table(stack), client=stack.clients.dynamodb()), Queue()
    due_at: dict[str, datetime] = {}
    for n, timer_id in enumerate(spread_ids(12)):
        at = NOW + timedelta(minutes=n % 4, seconds=7 * n % 60)  # 12:00 to 12:03
        timers.schedule(at, timer_id, timer_payload(timer_id))
        due_at[request(timer_id).message_id] = at
    later = TimerStore(table(stack), client=stack.clients.dynamodb())
    later.schedule(NOW + timedelta(minutes=10), "timer-late", timer_payload("timer-late"))

    # A timer is filed under the minute after the one it falls due in: the sweep of minute M
    # releases the timers due in M - 1.
    sweep_now = NOW + timedelta(minutes=1, seconds=30)
    assert sweep(timers, queue, sweep_now) == 3  # due in 12:00, looked back at with no cursor
    assert sorted(r.key for r in queue.sent) == ["timer-0", "timer-4", "timer-8"]
    assert timers.cursor() == "202611221201"
    assert sweep(timers, queue, sweep_now + timedelta(seconds=10)) == 0  # same minute: nothing new
    # timer-1 is due at 12:01:07, already past at 12:01:40, but its bucket (12:02) is not swept yet.
    assert "timer-1" not in {r.key for r in queue.sent}
    assert sweep(timers, queue, NOW + timedelta(minutes=3, seconds=5)) == 6  # due in 12:01 and 12:02
    assert timers.cursor() == "202611221203"
    assert sweep(timers, queue, NOW + timedelta(minutes=4, seconds=1)) == 3  # due in 12:03
    assert timers.cursor() == "202611221204"
    released = {r.message_id: r for r in queue.sent}
    assert len(released) == len(queue.sent) == 12 and set(released) == set(due_at)
    # Released with the sweep's time, which is never before the timer fell due.
    assert all(
        message.released_at is not None and parse_iso(message.released_at) > due_at[message_id]
        for message_id, message in released.items()
    )
    assert released[request("timer-1").message_id].released_at == iso(NOW + timedelta(minutes=3, seconds=5))
    assert all(timers.due(minute_of(NOW + timedelta(minutes=m))) == [] for m in range(1, 5))
    assert sweep(timers, queue, NOW + timedelta(minutes=10, seconds=30)) == 0  # timer-late is due 12:10:00
    assert sweep(timers, queue, NOW + timedelta(minutes=11)) == 1
    assert queue.sent[-1].key == "timer-late"


def test_given_a_timer_due_later_in_a_minute_when_swept_then_the_next_minutes_sweep_releases_it(
    stack: Stack,
) -> None:
    timers, queue = TimerStore(table(stack), client=stack.clients.dynamodb()), Queue()
    due = NOW + timedelta(seconds=45)
    timers.schedule(due, "t", timer_payload("t"))
    assert sweep(timers, queue, NOW + timedelta(seconds=5)) == 0  # the 12:00 sweep: not due yet
    assert sweep(timers, queue, NOW + timedelta(seconds=50)) == 0  # due now, but 12:00 is not its bucket
    assert timers.cursor() == minute_of(NOW)
    assert sweep(timers, queue, NOW + timedelta(minutes=1, seconds=2)) == 1  # the 12:01 sweep
    assert [r.released_at for r in queue.sent] == [iso(NOW + timedelta(minutes=1, seconds=2))]
    assert sweep(timers, queue, NOW + timedelta(minutes=2)) == 0  # released once


def test_given_a_cursor_when_advanced_then_it_only_moves_forward(stack: Stack) -> None:
    timers, queue = TimerStore(table(stack), client=stack.clients.dynamodb()), Queue()
    assert timers.cursor() is None
    timers.advance("202611221210")
    timers.advance("202611221205")  # an older sweep finishing late
    assert timers.cursor() == "202611221210"
    timers.schedule(NOW + timedelta(minutes=3), "old", timer_payload("old"))  # in a minute already swept
    assert sweep(timers, queue, NOW + timedelta(minutes=8)) == 0  # a sweep with a lagging clock does nothing
    assert timers.cursor() == "202611221210"
    timers.advance("202611221211")
    assert timers.cursor() == "202611221211"


def test_given_a_timer_due_before_the_cursor_when_written_then_the_next_sweep_still_releases_it(stack: Stack) -> None:
    """A journey step whose clock lags the scheduler's can ask for a time already swept: the
    timer goes in the first minute still to come, late rather than never."""
    timers, queue = TimerStore(table(stack), client=stack.clients.dynamodb()), Queue()
    timers.advance("202611221210")
    timers.schedule(NOW + timedelta(minutes=3), "behind", timer_payload("behind"))  # due 12:03, swept up to 12:10
    assert timers.due("202611221211") != []
    assert sweep(timers, queue, NOW + timedelta(minutes=11, seconds=5)) == 1
    assert [r.key for r in queue.sent] == ["behind"]


def test_given_a_gap_since_the_last_sweep_when_swept_then_every_minute_in_between_is_caught_up(stack: Stack) -> None:
    timers, queue = TimerStore(table(stack), client=stack.clients.dynamodb()), Queue()
    timers.advance(minute_of(NOW))
    ids = spread_ids(8)
    for n, timer_id in enumerate(ids):
        timers.schedule(NOW + timedelta(minutes=15 * (n + 1)), timer_id, timer_payload(timer_id))  # up to 14:00
    assert sweep(timers, queue, NOW + timedelta(hours=3)) == 8
    assert sorted(r.key for r in queue.sent) == sorted(ids)
    assert timers.cursor() == minute_of(NOW + timedelta(hours=3))


def test_given_a_timer_due_in_a_minute_just_swept_when_the_next_sweep_runs_then_it_is_released(
    stack: Stack,
) -> None:
    """A deliverer whose clock read 07:59:59.9 defers to 08:00:00 and writes just after the 08:00
    sweep: filed under 08:01, the timer is still ahead of the cursor."""
    timers, queue = TimerStore(table(stack), client=stack.clients.dynamodb()), Queue()
    eight = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    timers.advance(minute_of(eight - timedelta(minutes=1)))
    assert sweep(timers, queue, eight + timedelta(milliseconds=500)) == 0  # the 08:00 sweep finds nothing
    assert timers.cursor() == minute_of(eight)
    timers.schedule(eight, "late-writer", timer_payload("late-writer"))  # the deferral lands a moment later
    assert timers.due(minute_of(eight)) == []  # not in the bucket just swept
    assert sweep(timers, queue, eight + timedelta(minutes=1)) == 1
    assert sweep(timers, queue, eight + timedelta(minutes=2)) == 0
    assert [r.key for r in queue.sent] == ["late-writer"]


class WriterBetweenReadAndAdvance:
    """The sweep's store, with a writer that lands right after the sweep has read a minute's
    buckets and before it moves on: the interleaving that used to lose a timer."""

    def __init__(self, store: TimerStore, minute: str, write: Any) -> None:
        self.store, self.minute, self.write = store, minute, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def due(self, minute: str) -> list[dict[str, Any]]:
        found = self.store.due(minute)
        if minute == self.minute and self.write is not None:
            self.write()
            self.write = None
        return found


def test_given_a_timer_written_while_its_minute_is_being_swept_when_later_sweeps_run_then_it_is_released(
    stack: Stack,
) -> None:
    """Given the cursor at 08:59 and a sweep of 09:00 that has read 09:00's buckets (empty), when
    a writer whose clock lags (it reads 08:59:10) files a timer due now before that sweep moves
    on, then a later sweep releases it: it is never stranded in a minute already swept."""
    client, name = stack.clients.dynamodb(), table(stack)
    nine = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    store, writer, queue = TimerStore(name, client=client), TimerStore(name, client=client), Queue()
    store.advance(minute_of(nine - timedelta(minutes=1)))

    def lagging_write() -> None:
        writer.schedule(nine - timedelta(seconds=50), "raced", timer_payload("raced"))

    racing = WriterBetweenReadAndAdvance(store, minute_of(nine), lagging_write)
    assert sweep(racing, queue, nine + timedelta(seconds=1)) == 0  # the 09:00 sweep, raced by the writer
    assert racing.write is None  # the writer did land inside the sweep
    for minutes in range(1, 4):
        sweep(store, queue, nine + timedelta(minutes=minutes, seconds=1))
    assert [r.key for r in queue.sent] == ["raced"]


class DiesReading:
    """The sweep's store, failing the first read of one minute (a sweep killed after closing it)."""

    def __init__(self, store: TimerStore, minute: str) -> None:
        self.store, self.minute = store, minute

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def due(self, minute: str) -> list[dict[str, Any]]:
        if minute == self.minute:
            raise TimeoutError("the sweep's worker died")
        return self.store.due(minute)


def test_given_a_sweep_that_died_after_closing_a_minute_when_the_next_sweep_runs_then_that_minute_is_released(
    stack: Stack,
) -> None:
    """Given a timer due 09:00:30 (filed under 09:01) and a sweep at 09:01 that closes 09:01 and
    dies before releasing it, when the next sweep runs, then it starts again from the first
    minute not released, and a timer written meanwhile is filed after the closed minute."""
    client, name = stack.clients.dynamodb(), table(stack)
    nine = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    store, queue = TimerStore(name, client=client), Queue()
    store.advance(minute_of(nine))
    store.schedule(nine + timedelta(seconds=30), "first", timer_payload("first"))
    with pytest.raises(TimeoutError):
        sweep(DiesReading(store, minute_of(nine + timedelta(minutes=1))), queue, nine + timedelta(minutes=1))
    assert (store.cursor(), store.swept()) == (minute_of(nine + timedelta(minutes=1)), minute_of(nine))
    store.schedule(nine + timedelta(seconds=40), "second", timer_payload("second"))  # a lagging writer
    assert [t["id"] for t in store.due(minute_of(nine + timedelta(minutes=2)))] == ["second"]  # past the close
    sweep(store, queue, nine + timedelta(minutes=2))
    # The copy "second" first landed in (09:01, closed but unread) is released too: the ledger
    # absorbs the repeat.
    assert {r.key for r in queue.sent} == {"first", "second"}
    assert store.swept() == minute_of(nine + timedelta(minutes=2))


# ============================================================================== deliver on the real stores
def test_given_a_message_deferred_by_quiet_hours_when_the_sweep_releases_it_then_it_is_sent_once(stack: Stack) -> None:
    client, name = stack.clients.dynamodb(), table(stack)
    consent = {"email:marketing": {"granted": True, "stamp": "2026-11-01T00:00:00.000Z|m|s", "source": "s"}}
    ann = Profile(
        id="p1",
        created_at=iso(NOW),
        traits={"email": "ann@example.com"},
        consent=consent,
        timezone="Europe/Paris",
    )
    provider, timers = RecordingProvider(), TimerStore(name, client=client)
    ledger = MessageLedger(name, client=client)
    ports = Ports(
        ledger=ledger,
        profiles=MemoryProfiles(ann),
        suppressions=SuppressionStore(name, client=client),
        caps=CapStore(name, client=client),
        templates=ApprovedEmail(),
        timers=timers,
        channels=provider,
    )
    policy = Policy(caps=EMAIL_3)
    message = request("night-owl")
    night = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    morning = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 08:00 in Paris
    timers.advance(minute_of(morning - timedelta(minutes=3)))  # the sweep has kept up through the night
    assert deliver(message, ports, policy, night).status == DEFERRED
    assert deliver(message, ports, policy, night + timedelta(hours=1)).status == NOT_DUE

    queue = Queue()
    # Due at 07:00:00, the timer is filed under 07:01: the 07:01 sweep releases it.
    assert sweep(timers, queue, morning - timedelta(minutes=1)) == 0
    assert sweep(timers, queue, morning + timedelta(seconds=2)) == 0
    assert sweep(timers, queue, morning + timedelta(minutes=1, seconds=2)) == 1
    assert sweep(timers, queue, morning + timedelta(minutes=1, seconds=40)) == 0  # released once
    (released,) = queue.sent
    assert released.released_at == iso(morning + timedelta(minutes=1, seconds=2))
    assert deliver(released, ports, policy, morning - timedelta(seconds=1)).status == SENT  # lagging clock
    assert deliver(released, ports, policy, morning + timedelta(minutes=2)).status == DUPLICATE
    assert provider.calls == [message.message_id]
    record = ledger.get(message.message_id)
    assert record is not None
    assert [h["status"] for h in record["history"]] == ["sending", "deferred", "sending", SENT]
    assert record["capReserved"] is True


class DiesInTheCall(RecordingProvider):
    """The provider takes the message, then the worker is killed before it hears the answer."""

    def send(self, *args: Any, **kwargs: Any) -> str:
        super().send(*args, **kwargs)
        raise WorkerDied("killed during the provider call")


def test_given_a_deliverer_killed_at_each_write_or_in_the_provider_call_when_redelivered_then_no_one_gets_it_twice(
    stack: Stack,
) -> None:
    """Walks a kill over every DynamoDB write of a marketing delivery (before and after each) and
    over the provider call itself, then redelivers after the dead attempt's lease: the provider is
    never asked twice. A kill between the mark of the call and its answer leaves the outcome
    unknown: the message ends `failed` (outcome_unknown) rather than risk a second email, and the
    provider's feedback still lands on it with the provider's id."""
    client, name = stack.clients.dynamodb(), table(stack)
    consent = {"email:marketing": {"granted": True, "stamp": "2026-11-01T00:00:00.000Z|m|s", "source": "s"}}
    ann = Profile(id="p1", created_at=iso(NOW), traits={"email": "ann@example.com"}, consent=consent)

    def ports(dynamodb: Any, provider: RecordingProvider) -> Ports:
        return Ports(
            ledger=MessageLedger(name, client=dynamodb),
            profiles=MemoryProfiles(ann),
            suppressions=SuppressionStore(name, client=dynamodb),
            caps=CapStore(name, client=dynamodb),
            templates=ApprovedEmail(),
            timers=TimerStore(name, client=dynamodb),
            channels=provider,
        )

    policy, later = Policy(lease_seconds=LEASE), NOW + timedelta(seconds=LEASE + 1)
    ledger = MessageLedger(name, client=client)
    endings: dict[str, int] = {}
    for at in range(1, 12):
        for after in (False, True):
            message = request(f"walk-{at}-{int(after)}", profile_id="p1")
            provider, dying = RecordingProvider(), DiesAtWrite(client, at, after=after)
            try:
                deliver(message, ports(dying, provider), policy, NOW)
            except WorkerDied:
                deliver(message, ports(client, provider), policy, later)
            assert len(provider.calls) <= 1, (at, after)
            record = ledger.get(message.message_id)
            assert record is not None
            if record["status"] == SENT:
                assert len(provider.calls) == 1 and record["providerId"] == "ses-1", (at, after)
            else:
                assert (record["status"], record["reason"][:16]) == ("failed", "outcome_unknown:"), (at, after)
            ending = f"{record['status']} after {len(provider.calls)} call(s)"
            endings[ending] = endings.get(ending, 0) + 1
        if not dying.died:
            break
    # Unknown twice: killed just after the mark (no call made) and just before the answer's
    # write (the call made); every other kill ends in one send.
    assert endings.pop("failed after 0 call(s)") == 1 and endings.pop("failed after 1 call(s)") == 1
    assert list(endings) == ["sent after 1 call(s)"] and endings["sent after 1 call(s)"] > 4

    message, provider = request("killed-in-the-call", profile_id="p1"), DiesInTheCall()
    with pytest.raises(WorkerDied):
        deliver(message, ports(client, provider), policy, NOW)
    assert deliver(message, ports(client, provider), policy, later).status == "failed"
    assert provider.calls == [message.message_id]
    # SES's delivery notice for it tells the ledger what happened, and the provider's id
    assert ledger.update_status(
        message.message_id, "delivered", "delivered", later, final_only=True, provider_id="ses-1"
    )
    record = ledger.get(message.message_id)
    assert record is not None and (record["status"], record["providerId"]) == ("delivered", "ses-1")
    assert ledger.update_status(message.message_id, "opened", "opened", later, final_only=False, provider_id="other")
    assert (ledger.get(message.message_id) or {})["providerId"] == "ses-1"  # kept, not replaced


def test_given_feedback_on_campaign_messages_when_recorded_then_each_status_counts_once_per_message(
    stack: Stack,
) -> None:
    from midstage.adapters.counters import Counters
    from midstage.services.campaigns import StatusCounter

    client = stack.clients.dynamodb()
    counters = Counters(table(stack), client=client)
    ledger = MessageLedger(table(stack), client=client, on_status=StatusCounter(counters))
    campaign = request("campaign:spring:r20261122T1200Z:p1").model_copy(
        update={"origin": Origin(kind="campaign", id="spring", step="main")}
    )
    other = request("campaign:spring:r20261122T1200Z:p2", profile_id="p2").model_copy(
        update={"origin": Origin(kind="campaign", id="spring", step="main")}
    )
    rule = request("rule:welcome:0:once:p3", profile_id="p3")
    for sent in (campaign, other, rule):
        ledger.claim(sent, NOW, 60)
        ledger.finish(sent.message_id, "sent", "sent by email", NOW, channel="email")

    for status in ("delivered", "opened", "opened", "clicked", "delivered"):  # a second open, a resent notice
        assert ledger.update_status(campaign.message_id, status, "feedback", NOW, final_only=status == "delivered")
    ledger.update_status(other.message_id, "bounced", "hard bounce", NOW, final_only=True)
    ledger.update_status(rule.message_id, "opened", "the open pixel loaded", NOW, final_only=False)
    assert not ledger.update_status(request("never-sent").message_id, "opened", "pixel", NOW, final_only=False)

    totals = counters.totals("campaign", "spring")
    assert {name: int(n) for name, n in totals["r20261122T1200Z"].items()} == {
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
        "bounced": 1,
    }
    assert counters.totals("rule", "r1") == {}


def test_given_a_worker_killed_at_each_write_of_recording_feedback_when_redelivered_then_it_counts_once(
    stack: Stack,
) -> None:
    """Given a campaign message sent, when the worker recording its `delivered` notice is killed
    before or after each DynamoDB write and the notice is redelivered, then the counter says 1:
    the once-marker and the addition commit together."""
    from midstage.adapters.counters import Counters
    from midstage.services.campaigns import StatusCounter

    client, name = stack.clients.dynamodb(), table(stack)
    counters = Counters(name, client=client)
    healthy = MessageLedger(name, client=client, on_status=StatusCounter(counters))
    cases = 0
    for at in range(1, 10):
        for after in (False, True):
            sent = request(f"campaign:spring:r{at}{int(after)}:p1").model_copy(
                update={"origin": Origin(kind="campaign", id="spring", step="main")}
            )
            healthy.claim(sent, NOW, 60)
            healthy.finish(sent.message_id, "sent", "sent by email", NOW, channel="email")
            dying = DiesAtWrite(client, at, after=after)
            worker = MessageLedger(name, client=dying, on_status=StatusCounter(Counters(name, client=dying)))  # type: ignore[arg-type]
            try:
                worker.update_status(sent.message_id, "delivered", "delivery notice", NOW, final_only=True)
            except WorkerDied:
                healthy.update_status(
                    sent.message_id, "delivered", "delivery notice (redelivered)", NOW, final_only=True
                )
            cases += 1
            assert counters.totals("campaign", "spring", f"r{at}{int(after)}") == {
                f"r{at}{int(after)}": {"delivered": Decimal(1)}
            }, (at, after)
        if not dying.died:
            break
    assert cases > 4  # at least the ledger's write and the counter's were crash points


# ============================================================================== sharded counters
def test_given_counts_on_many_shards_and_from_before_sharding_when_totalled_then_every_one_is_added(
    stack: Stack,
) -> None:
    from decimal import Decimal

    from midstage.adapters.counters import Counters

    client = stack.clients.dynamodb()
    counters = Counters(table(stack), client=client)
    # Given counts written before counters were sharded by partition key (16 sort-key shards of
    # one partition key), for two runs
    for shard, (run, sent) in enumerate([("r1", 3), ("r1", 4), ("r2", 5)]):
        client.put_item(
            TableName=table(stack),
            Item={**_item_key(keys.stats_key("campaign", "spring", run, shard)), "sent": {"N": str(sent)}},
        )
    # And 200 messages of run r1 counted since, spread over the partition-key shards
    subjects = [f"msg_{n:024x}" for n in range(200)]
    for subject in subjects:
        counters.add("campaign", "spring", "r1", subject, {"sent": 1, "delivered": 1})

    # Then the totals add both layouts, per run and for one run
    assert counters.totals("campaign", "spring") == {
        "r1": {"sent": Decimal(207), "delivered": Decimal(200)},
        "r2": {"sent": Decimal(5)},
    }
    assert counters.totals("campaign", "spring", "r2") == {"r2": {"sent": Decimal(5)}}
    shards_used = {shard_of(s, counters.shards) for s in subjects}
    assert counters.shards == 80 and len(shards_used) > 60  # spread over partition keys, not one
    one = keys.stats_shard_key("campaign", "spring", "r1", next(iter(shards_used)))
    assert one["pk"].startswith("STATS#campaign#spring#") and one["sk"] == "r1"
    assert "Item" in client.get_item(TableName=table(stack), Key=_item_key(one))
