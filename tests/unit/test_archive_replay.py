"""Replaying the archive: an archived event row back into the event the profile updater applies
(the same record when archived again, the same dedupe marker and trait stamps), malformed rows
refused with the column named, and the replay service's order, batches, filters and counts over
an in-memory archive and queue."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from midstage.adapters import parquet
from midstage.errors import HandoffFailed
from midstage.logic import profile as profile_logic
from midstage.logic.archive import records
from midstage.logic.archive.replay import MalformedRow, replayed_event
from midstage.logic.ingest import marker_id
from midstage.models.archive import EventRecord
from midstage.models.messages import ProfileEvents, parse_body, profile_events_body
from midstage.models.profile import Profile
from midstage.services.replay import ReplaySummary, replay_events

ARCHIVED = datetime(2026, 4, 1, 0, 5, tzinfo=UTC)
LATER = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _event(kind: str = "track", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": kind,
        "messageId": "m-1",
        "userId": "ann",
        "anonymousId": "anon-1",
        "timestamp": "2026-03-05T10:00:00.123Z",
        "receivedAt": "2026-03-05T10:00:01.000Z",
        "sourceId": "src_web",
        "context": {
            "campaign": {"source": "google", "medium": "cpc", "name": "spring", "term": "shoes"},
            "page": {"path": "/checkout", "referrer": "https://search.example/"},
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
            "ip": "203.0.113.9",
            "userAgent": "Mozilla/5.0",
        },
    }
    body.update(fields)
    return body


CASES: dict[str, dict[str, Any]] = {
    "an order with its revenue and UTM": _event(
        event="Order Completed", properties={"revenue": 99.5, "currency": "EUR", "items": [{"sku": "a", "n": 2}]}
    ),
    "an order valued by its total": _event(event="Order Completed", properties={"total": "30.00"}),
    "a track call without properties": _event(event="Signed Up", context={}),
    "an identify call's traits": _event("identify", traits={"email": "ann@example.com", "plan": "pro", "vip": True}),
    "a named page view": _event("page", name="Pricing", properties={"path": "/pricing"}),
    "an unnamed screen": _event("screen", properties={"title": "Home"}),
    "a group call's traits": _event("group", groupId="acme", traits={"name": "Acme", "seats": 12}),
    "an anonymous visitor": _event(event="Product Viewed", userId=None, properties={"sku": "x"}),
    "a known user only": _event(event="Product Viewed", anonymousId=None, properties={"price": 1.25}),
    "non-ASCII text": _event(event="Produit consulté", properties={"nom": "Écharpe ✓", "note": "naïve"}),
}


def _row(record: EventRecord) -> dict[str, Any]:
    """The record as a Parquet reader gives it back (through a real file)."""
    (row,) = parquet.decode(parquet.encode([record]))
    return row


# ------------------------------------------------------------------ the round trip
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_archived_event_replayed_and_archived_again_is_the_same_record(case: str) -> None:
    # Given an enriched event as the profile updater applied it, archived and read back from Parquet
    original = records.event_record(CASES[case], "prof-ann", ARCHIVED)
    # When the row is replayed and the replayed event is archived again, later
    again = records.event_record(replayed_event(_row(original)), "prof-ann", LATER)
    # Then the record is the same in every column but the archive time
    assert again.model_dump(exclude={"archived_at"}) == original.model_dump(exclude={"archived_at"})
    assert again.record_id == original.record_id


def test_a_replayed_event_keeps_its_dedupe_marker_and_its_trait_stamp() -> None:
    # Given an identify call archived
    original = CASES["an identify call's traits"]
    replayed = replayed_event(_row(records.event_record(original, "prof-ann", ARCHIVED)))
    # Then the profile updater knows it by the same marker and orders its traits by the same stamp
    assert marker_id(replayed) == marker_id(original) == "src_web|m-1"
    assert profile_logic.stamp_of(replayed) == profile_logic.stamp_of(original)
    assert replayed["timestamp"] == original["timestamp"]


def test_a_replayed_event_is_the_spec_event_with_what_the_archive_keeps() -> None:
    # Given a page view archived (its device context is not kept)
    row = _row(records.event_record(CASES["a named page view"], "prof-ann", ARCHIVED))
    # When it is replayed
    replayed = replayed_event(row)
    # Then it is a page call with its name, properties and the kept context; receivedAt is the archive time
    assert replayed == {
        "type": "page",
        "name": "Pricing",
        "messageId": "m-1",
        "userId": "ann",
        "anonymousId": "anon-1",
        "timestamp": "2026-03-05T10:00:00.123Z",
        "receivedAt": "2026-04-01T00:05:00.000Z",
        "sourceId": "src_web",
        "properties": {"path": "/pricing"},
        "context": {
            "campaign": {"source": "google", "medium": "cpc", "name": "spring", "term": "shoes"},
            "page": {"path": "/checkout", "referrer": "https://search.example/"},
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
        },
    }


def test_a_replayed_event_counts_on_a_profile_as_the_original_did() -> None:
    # Given two empty profiles, one fed the original events, one the replayed ones
    originals = [CASES[c] for c in sorted(CASES) if CASES[c]["type"] != "group"]
    originals = [{**e, "messageId": f"m-{i}"} for i, e in enumerate(originals)]
    replayed = [replayed_event(_row(records.event_record(e, "prof-ann", ARCHIVED))) for e in originals]
    first, second = Profile(id="p1", created_at="2026-01-01T00:00:00.000Z"), Profile(id="p2", created_at="")
    for event in originals:
        profile_logic.apply_event(first, event)
    for event in replayed:
        profile_logic.apply_event(second, event)
    # Then counters, orders, revenue, traits, last UTM and activity times agree
    for name in ("event_counts", "daily_counts", "orders", "revenue", "traits", "trait_stamps", "last_utm"):
        assert getattr(second, name) == getattr(first, name), name
    assert (second.first_seen, second.last_seen, second.locale) == (first.first_seen, first.last_seen, first.locale)


def test_replayed_events_make_a_hand_off_body_the_profile_updater_parses() -> None:
    events = [replayed_event(_row(records.event_record(e, "prof-ann", ARCHIVED))) for e in CASES.values()]
    parsed = parse_body(ProfileEvents, profile_events_body(events))
    assert parsed.events == events


# ------------------------------------------------------------------ malformed rows
def _good_row() -> dict[str, Any]:
    return _row(records.event_record(CASES["an order with its revenue and UTM"], "prof-ann", ARCHIVED))


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("message_id", None, "message_id: missing"),
        ("message_id", "", "message_id: missing"),
        ("source_id", None, "source_id: missing"),
        ("event_type", "purchase", "event_type: 'purchase' is not one of"),
        ("event_type", None, "event_type: None"),
        ("occurred_at", None, "occurred_at: missing"),
        ("occurred_at", "yesterday", "occurred_at: 'yesterday' is not an ISO 8601 time"),
        ("occurred_at", 1772704800, "occurred_at: 1772704800 is not a time"),
        ("event", None, "event: a track event needs a name"),
        ("event", "  ", "event: a track event needs a name"),
        ("properties", "{not json", "properties: not JSON"),
        ("properties", "[1, 2]", "properties: JSON list, not an object"),
        ("context", "42", "context: JSON int, not an object"),
        ("user_id", 7, "user_id: 7 is not text"),
        ("message_id", "m" * 513, "message_id: longer than 512"),
    ],
)
def test_a_row_that_cannot_be_an_event_again_is_refused_with_its_column_named(
    column: str, value: Any, said: str
) -> None:
    row = {**_good_row(), column: value}
    with pytest.raises(MalformedRow) as refused:
        replayed_event(row)
    assert said in str(refused.value)


def test_a_row_without_any_identifier_is_refused() -> None:
    row = {**_good_row(), "user_id": None, "anonymous_id": ""}
    with pytest.raises(MalformedRow, match="user_id and anonymous_id: both missing"):
        replayed_event(row)


def test_timestamps_given_as_text_or_with_an_offset_are_read_as_utc() -> None:
    row = {**_good_row(), "occurred_at": "2026-03-05T11:00:00.123+01:00", "archived_at": None}
    replayed = replayed_event(row)
    assert replayed["timestamp"] == replayed["receivedAt"] == "2026-03-05T10:00:00.123Z"


# ------------------------------------------------------------------ the service
def _archived(person: str, n: int, day: int, hour: int, *, source: str = "src_web") -> dict[str, Any]:
    event = _event(
        event="Viewed",
        messageId=f"m-{n}",
        userId=person,
        anonymousId=None,
        sourceId=source,
        timestamp=f"2026-03-{day:02d}T{hour:02d}:00:00.000Z",
        context={},
    )
    return _row(records.event_record(event, f"prof-{person}", ARCHIVED))


class FakeArchive:
    def __init__(self, days: Mapping[date, list[dict[str, Any]]], skipped: Iterable[str] = ()) -> None:
        self.days = days
        self.asked: list[date] = []
        self.skipped_files = list(skipped)

    def rows(self, day: date) -> Iterable[Mapping[str, Any]]:
        self.asked.append(day)
        return iter(self.days.get(day, []))


class FakeQueue:
    def __init__(self, refuse_after: int | None = None) -> None:
        self.sent: list[dict[str, list[dict[str, Any]]]] = []
        self.refuse_after = refuse_after

    def send(self, groups: Mapping[str, Any]) -> int:
        if self.refuse_after is not None and len(self.sent) >= self.refuse_after:
            raise HandoffFailed("queue unavailable")
        self.sent.append({k: list(v) for k, v in groups.items()})
        return len(groups)

    def events(self) -> list[str]:
        return [e["messageId"] for groups in self.sent for events in groups.values() for e in events]


MARCH = {
    date(2026, 3, 2): [_archived("ann", 1, 2, 9), _archived("bob", 2, 2, 10), _archived("ann", 3, 2, 11)],
    date(2026, 3, 4): [_archived("bob", 4, 4, 8)],
    date(2026, 3, 6): [_archived("cat", 5, 6, 7), _archived("ann", 6, 6, 9)],
}


def test_days_are_read_oldest_first_and_every_event_is_handed_once_in_order() -> None:
    # Given three days of events and a queue
    archive, queue = FakeArchive(MARCH), FakeQueue()
    # When March 1-7 is replayed one event per batch
    summary = replay_events(archive, queue, date(2026, 3, 1), date(2026, 3, 7), batch_events=1)
    # Then every day was asked for in order, and the events went out in time order
    assert archive.asked == [date(2026, 3, d) for d in range(1, 8)]
    assert queue.events() == ["m-1", "m-2", "m-3", "m-4", "m-5", "m-6"]
    assert (summary.days, summary.read, summary.replayable, summary.handed, summary.messages) == (7, 6, 6, 6, 6)


def test_a_batch_groups_its_events_by_person_as_collect_does() -> None:
    queue = FakeQueue()
    summary = replay_events(FakeArchive(MARCH), queue, date(2026, 3, 2), date(2026, 3, 6), batch_events=4)
    # The first batch (m-1..m-4) and the rest (m-5, m-6), each a group per person, in time order
    assert [{k: [e["messageId"] for e in v] for k, v in sent.items()} for sent in queue.sent] == [
        {"u:ann": ["m-1", "m-3"], "u:bob": ["m-2", "m-4"]},
        {"u:cat": ["m-5"], "u:ann": ["m-6"]},
    ]
    assert (summary.handed, summary.messages) == (6, 4)


def test_malformed_rows_are_counted_and_skipped_and_the_rest_still_goes() -> None:
    # Given a day with a row missing its message id and another with an unknown type
    broken = {
        date(2026, 3, 2): [
            {**_archived("ann", 1, 2, 9), "message_id": None},
            _archived("bob", 2, 2, 10),
            {**_archived("cat", 3, 2, 11), "event_type": "purchase"},
        ]
    }
    queue = FakeQueue()
    summary = replay_events(FakeArchive(broken), queue, date(2026, 3, 2), date(2026, 3, 2))
    assert queue.events() == ["m-2"]
    assert (summary.read, summary.skipped_malformed, summary.handed) == (3, 2, 1)
    assert len(summary.problems) == 2 and "message_id: missing" in summary.problems[0]
    assert summary.problems[0].startswith("2026-03-02 record ")


def test_only_the_sources_asked_for_are_replayed() -> None:
    day = {date(2026, 3, 2): [_archived("ann", 1, 2, 9), _archived("ann", 2, 2, 10, source="midstage")]}
    queue = FakeQueue()
    summary = replay_events(FakeArchive(day), queue, date(2026, 3, 2), date(2026, 3, 2), source_ids=["src_web"])
    assert queue.events() == ["m-1"]
    assert (summary.skipped_other_sources, summary.handed) == (1, 1)


def test_an_event_archived_twice_is_replayed_once() -> None:
    twice = _archived("ann", 1, 2, 9)
    queue = FakeQueue()
    summary = replay_events(
        FakeArchive({date(2026, 3, 2): [twice, dict(twice)]}), queue, date(2026, 3, 2), date(2026, 3, 2)
    )
    assert queue.events() == ["m-1"]
    assert (summary.read, summary.duplicates, summary.handed) == (2, 1, 1)


def test_a_dry_run_counts_and_sends_nothing() -> None:
    queue = FakeQueue()
    summary = replay_events(FakeArchive(MARCH), queue, date(2026, 3, 1), date(2026, 3, 31), dry_run=True)
    assert queue.sent == []
    assert (summary.read, summary.replayable, summary.handed, summary.dry_run) == (6, 6, 0, True)


def test_a_refused_batch_stops_the_run_and_says_where_to_start_again() -> None:
    # Given a queue that takes one batch, then refuses
    queue = FakeQueue(refuse_after=1)
    summary = replay_events(FakeArchive(MARCH), queue, date(2026, 3, 1), date(2026, 3, 31), batch_events=3)
    # Then the first batch counts as handed and the run stops at the day of the refused batch's first event
    assert sorted(queue.events()) == ["m-1", "m-2", "m-3"]
    assert summary.handed == 3
    assert summary.stopped is not None and "run again from 2026-03-04" in summary.stopped
    assert summary.days == 5  # Mar 1-5 read through; the refused batch ended the run on Mar 6


def test_files_the_reader_skipped_are_reported_and_each_day_is_echoed() -> None:
    lines: list[str] = []
    summary = replay_events(
        FakeArchive(MARCH, skipped=["kind=event/dt=2026-03-04/bad.parquet"]),
        FakeQueue(),
        date(2026, 3, 2),
        date(2026, 3, 4),
        echo=lines.append,
    )
    assert summary.skipped_files == ["kind=event/dt=2026-03-04/bad.parquet"]
    assert lines == [
        "2026-03-02: read 3, replayable 3, skipped malformed 0",
        "2026-03-03: read 0, replayable 0, skipped malformed 0",
        "2026-03-04: read 1, replayable 1, skipped malformed 0",
    ]


def test_the_summary_reads_as_json() -> None:
    summary = replace(ReplaySummary(date(2026, 3, 1), date(2026, 3, 2), False), read=2, handed=2)
    body = json.loads(json.dumps(summary.to_body()))
    assert (body["from"], body["to"], body["read"], body["handed"], body["stopped"]) == (
        "2026-03-01",
        "2026-03-02",
        2,
        2,
        None,
    )


@pytest.mark.parametrize(("start", "end", "batch"), [(date(2026, 3, 2), date(2026, 3, 1), 10), (None, None, 0)])
def test_an_empty_span_or_batch_is_refused(start: date | None, end: date | None, batch: int) -> None:
    with pytest.raises(ValueError, match=r"before the first|at least one"):
        replay_events(FakeArchive({}), None, start or date(2026, 3, 1), end or date(2026, 3, 1), batch_events=batch)
