"""Erasure's pure parts (logic/erasure.py): who a person is for the deleters, the keys the items
under a profile point at, what in a shared store is theirs, and when a request is done."""

from __future__ import annotations

from midstage import keys
from midstage.logic import erasure, sharding
from midstage.logic.erasure import Person


def test_a_person_is_every_profile_and_every_identifier_without_the_profile_ids_as_identifiers() -> None:
    found = erasure.person("p1", ["p0"], {"email": ["ann@example.com"], "user_id": ["ann"]})
    assert found.profile_ids == ("p0", "p1")
    assert found.identifiers == (("email", "ann@example.com"), ("user_id", "ann"))
    assert found.values == {"p0", "p1", "ann@example.com", "ann"}
    assert Person.from_record(found.as_record()) == found


def test_people_found_again_are_merged_with_those_an_earlier_try_remembered() -> None:
    remembered = [Person(("p0", "p1"), (("email", "ann@example.com"),))]
    # The retry finds only the live profile (the merged one is gone), with a new device
    found = [Person(("p1",), (("anonymous_id", "d2"),)), Person(("p9",), (("user_id", "bob"),))]
    assert erasure.merged(found, remembered) == [
        Person(("p0", "p1"), (("anonymous_id", "d2"), ("email", "ann@example.com"))),
        Person(("p9",), (("user_id", "bob"),)),
    ]


def test_timeline_events_name_their_dedupe_markers_once_each() -> None:
    events = [
        {"sourceId": "web", "messageId": "m1"},
        {"sourceId": "web", "messageId": "m1"},
        {"sourceId": "app", "messageId": "m2"},
        {"sourceId": "app"},
    ]
    assert erasure.marker_keys(events) == [keys.marker_key("app", "m2"), keys.marker_key("web", "m1")]


def test_a_waiting_journey_instance_names_its_timer_where_the_timer_store_files_it() -> None:
    instance = {"wait": {"timer_id": "cart:p1:1:2", "until": "2026-11-22T13:00:30.000Z"}}
    shard = sum(b"cart:p1:1:2") % keys.TIMER_SHARDS
    assert erasure.journey_timer(instance) == {"pk": keys.timer_pk("202611221301", shard), "sk": "cart:p1:1:2"}
    assert erasure.journey_timer({"wait": None}) is None
    assert erasure.journey_timer({"status": "completed"}) is None


def test_a_message_names_its_ledger_record_its_origin_references_and_its_deferral_timer() -> None:
    message = {"id": "msg_1", "origin": "rule#welcome", "createdAt": "2026-11-22T10:00:00.000Z"}
    shard = sharding.shard_of("msg_1", 8)
    found = erasure.message_keys(message, 8)
    assert found == [
        keys.message_key("msg_1"),
        {"pk": keys.origin_shard_pk("rule", "welcome", shard), "sk": "2026-11-22T10:00:00.000Z#msg_1"},
        {"pk": keys.origin_pk("rule", "welcome"), "sk": "2026-11-22T10:00:00.000Z#msg_1"},
    ]
    deferred = erasure.message_keys({"id": "msg_2", "notBefore": 1795334400}, 8)  # 2026-11-22T08:00:00Z
    assert deferred[1] == {"pk": keys.timer_pk("202611220801", sum(b"msg_2") % keys.TIMER_SHARDS), "sk": "msg_2"}


def test_conversions_are_found_from_the_campaign_runs_that_touched_the_person() -> None:
    touches = [
        {"kind": "campaign", "origin_id": "winter", "run": "r1"},
        {"kind": "campaign", "origin_id": "winter", "run": "r1"},
        {"kind": "journey", "origin_id": "cart", "run": "1"},
    ]
    assert erasure.conversion_markers(touches, ["p1", "p0"]) == [
        keys.once_key("conv:winter:r1", "p0"),
        keys.once_key("conv:winter:r1", "p1"),
    ]


def test_a_quarantined_entry_is_theirs_when_any_string_in_it_names_them() -> None:
    wanted = frozenset({"ann@example.com", "p1"})
    assert erasure.mentions({"event": {"traits": {"email": " ANN@example.com "}}}, wanted)
    assert erasure.mentions({"event": {"batch": [{"profileId": "p1"}]}}, wanted)
    assert not erasure.mentions({"event": {"userId": "bob", "n": 1, "note": "ann@example.com.au"}}, wanted)


def test_archive_rows_are_theirs_by_profile_merged_profile_user_or_anonymous_id_not_by_email() -> None:
    people = [Person(("p0", "p1"), (("anonymous_id", "d1"), ("email", "ann@example.com"), ("user_id", "ann")))]
    wanted = erasure.archive_filter(people)
    assert wanted == {
        "profile_id": ["p0", "p1"],
        "merged_profile_id": ["p0", "p1"],
        "user_id": ["ann"],
        "anonymous_id": ["d1"],
    }


def test_a_request_is_finished_only_when_every_store_reported_done() -> None:
    stores = ["timeline", "archive"]
    assert erasure.finished([erasure.store_report("timeline", 3), erasure.store_report("archive", 0)], stores)
    assert not erasure.finished([erasure.store_report("timeline", 3)], stores)
    failed = erasure.store_report("archive", 0, erasure.FAILED)
    assert not erasure.finished([erasure.store_report("timeline", 3), failed], stores)
    assert erasure.store_report("inbox", 2) == {"store": "inbox", "status": "done", "items": 2}
