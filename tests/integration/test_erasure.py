"""Erasure (DELETE_ONLY, SUPPRESS_WITH_DELETE) on moto: Ann, built through the real services
(tracked events, a merge of a second device, a delivered email, a journey waiting on a timer, an
offer code, a campaign touch, a quarantined event, archived rows), is gone from every store after
her erasure, while Bob, beside her in every store, is untouched; after SUPPRESS_WITH_DELETE her
re-ingested events are dropped and counted."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.adapters.archive_engines import S3Archive
from midstage.adapters.automation_store import EntryCaps, JourneyInstances, Touches
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.adapters.destination_store import DestinationStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.config import ImportSettings
from midstage.logic.destinations import Entry
from midstage.logic.timefmt import iso
from midstage.models.archive import EventRecord
from midstage.models.journeys import Journey
from midstage.privacy_wiring import privacy_worker
from midstage.services.journeys import JourneyCatalog, JourneyRunner
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_admin_messaging import ROLES, Api
from tests.integration.test_privacy_requests import approved_template, send_and_deliver, updater_event, work_requests
from tests.unit.test_openapi import schema_validator

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ANN_VALUES = ("ann@example.com", "+14155550100", "5b6c0c1e-3c5d-4b8e-9d3b-8e2f6a1b2c3d", "Ann Lee", "dev-two")
CART = {
    "id": "cart",
    "name": "Cart reminder",
    "entry": {"type": "event", "event": "Cart Abandoned"},
    "start": "wait",
    "steps": {
        "wait": {"type": "wait", "duration": "1h", "next": "done"},
        "done": {"type": "exit"},
    },
}


@pytest.fixture
def api(stack: Stack) -> Api:
    """The admin API with a key per role, and Ann (userId, email, phone, device) from the sample."""
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    stack.load("ProfileUpdaterFunction").lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    return Api(stack, stack.load("AdminFunction"))


def merge_a_second_device(api: Api) -> None:
    """A device seen first on its own, then with Ann's userId: two profiles, merged into one."""
    updater = api.stack.load("ProfileUpdaterFunction")
    updater.lambda_handler(updater_event("dev2-alone", anonymousId="dev-two"), Context())
    updater.lambda_handler(updater_event("dev2-as-ann", anonymousId="dev-two", userId="ann"), Context())


def bob(api: Api) -> str:
    updater = api.stack.load("ProfileUpdaterFunction")
    identify = {"type": "identify", "traits": {"email": "bob@example.com", "name": "Bob Ray"}}
    updater.lambda_handler(updater_event("bob-identify", userId="bob", **identify), Context())
    return api.profiles().identity_owners([("user_id", "bob")])[("user_id", "bob")]


def enter_journey(api: Api, profile_id: str) -> None:
    stack, table, dynamodb = api.stack, api.data_table, api.stack.clients.dynamodb()
    config = ConfigStore(stack.output("ConfigTableName"), cache_seconds=0, client=dynamodb)
    if config.find_document("JOURNEY", "cart", Journey) is None:
        config.save_document("JOURNEY", Journey.model_validate({**CART, "version": 1}))
    counters = Counters(table, client=dynamodb)
    runner = JourneyRunner(
        JourneyCatalog(config),
        api.profiles(),
        JourneyInstances(table, client=dynamodb, counters=counters),
        MessageQueue(stack.output("DeliveryQueueUrl"), client=stack.clients.sqs()),
        SqsHandoff(stack.output("IngestQueueUrl"), client=stack.clients.sqs()),
        TimerStore(table, client=dynamodb),
        EntryCaps(table, client=dynamodb),
        counters,
    )
    event = {"type": "track", "event": "Cart Abandoned", "messageId": f"cart-{profile_id}", "timestamp": iso(NOW)}
    summary = runner.handle("event.tracked", {"profileId": profile_id, "event": {**event, "sourceId": "s"}}, NOW)
    assert summary.entered == ["cart"]


def hold_a_code(api: Api, profile: str) -> None:
    if api.get("/v1/offers/vip", role="marketer").status == 404:
        api.post("/v1/offers", {"id": "vip", "name": "VIP", "kind": "percentage", "value": 20}, role="marketer")
        api.call("POST", "/v1/offers/vip/codes", raw="code\nVIP-A1\nVIP-A2\n", headers={"content-type": "text/csv"})
    issued = api.post("/v1/offers/vip/issue", {"profile": profile, "cause": "manual-1"}, role="marketer")
    assert issued["outcome"] == "issued", issued.body


def archive_rows(api: Api, people: dict[str, tuple[str, str]]) -> None:
    """Events archived as the profile updater files them: one object holding both people's rows."""
    records = [
        EventRecord(
            record_id=f"{profile_id}-{n}",
            occurred_at=NOW,
            archived_at=NOW,
            profile_id=profile_id,
            user_id=user_id,
            source_id="src_localdemo",
            event_type="track",
            event="Page Viewed",
            message_id=f"{profile_id}-{n}",
            context=json.dumps({"traits": {"email": email}}),
        )
        for profile_id, (user_id, email) in people.items()
        for n in range(3)
    ]
    archive = S3Archive(api.stack.output("ArchiveBucketName"), "archive/", "/tmp/midstage-erasure-test")
    archive._client = api.stack.clients.s3()  # the test's moto client
    archive.write(records, "batch-1")


def build_people(api: Api) -> tuple[str, str]:
    """Ann in every store, and Bob beside her in most of them."""
    approved_template(api)
    merge_a_second_device(api)
    ann_id, bob_id = api.ann_id(), bob(api)
    assert send_and_deliver(api, "erase-me")["status"] == "sent"
    enter_journey(api, ann_id)
    enter_journey(api, bob_id)
    hold_a_code(api, "user_id:ann")
    hold_a_code(api, "user_id:bob")
    touches = Touches(api.data_table, client=api.stack.clients.dynamodb())
    touches.add(ann_id, NOW, "campaign", "winter", "run-1", "sent")
    touches.add(bob_id, NOW, "campaign", "winter", "run-1", "sent")
    source = api.post("/v1/sources", {"name": "web"}, role="admin")
    assert source.status == 201, source.body
    quarantined = {"id": "q1", "source_id": source["id"], "received_at": iso(NOW), "reason": "too big"}
    api.profiles().quarantine([{**quarantined, "event": {"userId": "ann", "traits": {"email": "ann@example.com"}}}], 0)
    api.profiles().quarantine([{**quarantined, "id": "q2", "event": {"userId": "bob"}}], 0)
    archive_rows(api, {ann_id: ("ann", "ann@example.com"), bob_id: ("bob", "bob@example.com")})
    waiting_for_a_destination(api, {ann_id: "ann", bob_id: "bob"})
    return ann_id, bob_id


def waiting_for_a_destination(api: Api, people: dict[str, str]) -> None:
    """Each person's event waiting for a webhook destination, as the feed queues it."""
    made = api.post("/v1/destinations", {"name": "wh", "kind": "webhook", "url": "https://hooks.example.com/in"})
    destination_id = made["id"] if made.status == 201 else api.get("/v1/destinations")["destinations"][0]["id"]
    store = DestinationStore(api.data_table, client=api.stack.clients.dynamodb())
    entries = [
        Entry(f"{n:020d}", profile_id, f"{user_id}-dq", {"userId": user_id, "event": "Browsed"}, iso(NOW))
        for n, (profile_id, user_id) in enumerate(sorted(people.items()))
    ]
    store.append(destination_id, entries)


def texts(value: Any) -> list[str]:
    """Every string in a stored item, packed documents unpacked."""
    if isinstance(value, dict):
        if set(value) == {"B"}:
            try:
                return texts(json.loads(zlib.decompress(value["B"])))
            except (zlib.error, ValueError):
                return [value["B"].decode("latin-1")]
        return [t for k, v in value.items() for t in (k, *texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return [str(value)]


def holds(found: list[str], profile_ids: list[str]) -> list[str]:
    wanted = (*ANN_VALUES, *profile_ids)
    return [t for t in found if t == "ann" or any(w in t for w in wanted)]


def data_items(api: Api) -> list[dict[str, Any]]:
    return list(api.stack.clients.dynamodb().scan(TableName=api.data_table)["Items"])


def bobs(api: Api, bob_id: str) -> list[dict[str, Any]]:
    found = [i for i in data_items(api) if bob_id in json.dumps(texts(i))]
    return sorted(found, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def archived(api: Api) -> list[dict[str, Any]]:
    from midstage.adapters.parquet import decode

    s3, bucket = api.stack.clients.s3(), api.stack.output("ArchiveBucketName")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="archive/").get("Contents", [])
    return [row for o in listed for row in decode(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())]


def test_delete_only_erases_the_person_from_every_store_and_leaves_another_untouched(api: Api) -> None:
    ann_id, bob_id = build_people(api)
    ann = api.profiles().profile(ann_id)
    assert ann is not None
    ann_profiles = [*ann.merged_from, ann_id]
    assert len(ann_profiles) == 2  # the second device's profile, merged into hers
    assert holds([t for i in data_items(api) for t in texts(i)], ann_profiles)
    bob_before = bobs(api, bob_id)
    bob_rows = [r for r in archived(api) if r["profile_id"] == bob_id]

    created = api.post(
        "/v1/regulations", {"regulationType": "DELETE_ONLY", "subjectType": "EMAIL", "subjectIds": ["ann@example.com"]}
    )
    assert created.status == 202, created.body
    work_requests(api)

    shown = api.get(f"/v1/regulations/{created['regulateId']}")
    assert shown["status"] == "FINISHED", shown.body
    errors = list(schema_validator({"$ref": "#/components/schemas/Regulation"}).iter_errors(shown.body))
    assert not errors, [e.message for e in errors[:3]]
    stores = {e["store"]: e for e in shown["report"]}
    assert stores["profiles"]["people"] == 1
    assert stores["profile_items"]["status"] == "done" and stores["profile_items"]["items"] >= 2
    for store in ("timeline", "dedupe_markers", "messages", "journeys", "offer_codes", "campaign_touches"):
        assert stores[store] == {"store": store, "status": "done", "items": stores[store]["items"]}
        assert stores[store]["items"] >= 1, store
    assert stores["identities"]["items"] >= 5 and stores["quarantine"]["items"] == 1
    assert stores["destination_queues"]["items"] == 1
    assert stores["archive"]["items"] == 3
    # Nothing of Ann is left in the table, the request included (it forgot its subjects)
    assert holds([t for i in data_items(api) for t in texts(i)], ann_profiles) == []
    assert shown["subjectCount"] == 1
    # Bob is as he was, in the table and in the archive
    assert bobs(api, bob_id) == bob_before
    rows = archived(api)
    assert [r for r in rows if r["profile_id"] == bob_id] == bob_rows
    assert not [r for r in rows if r["profile_id"] in ann_profiles or r["user_id"] == "ann"]
    # Her code stays issued, to nobody: it is never handed to anyone else
    codes = api.get("/v1/offers/vip/codes", query={"state": "issued"}, role="data_operator")["codes"]
    assert sorted(c["coupon"] for c in codes) == ["VIP-A1", "VIP-A2"]
    # Every store's pass is in the audit log, with no personal data
    entries = api.get("/v1/audit", query={"limit": "200"}, role="admin")["entries"]
    erased = [e for e in entries if e["action"].startswith("ERASE ")]
    assert {e["action"][6:] for e in erased} == set(stores) - {"profiles"}
    assert all(e["requestId"] == created["regulateId"] for e in erased)
    assert api.get("/v1/audit/verify", role="admin")["valid"] is True


def test_an_erasure_done_again_finds_nothing_more_and_finishes(api: Api) -> None:
    ann_id, _ = build_people(api)
    body = {"regulationType": "DELETE_ONLY", "subjectType": "PROFILE_ID", "subjectIds": [ann_id]}
    first = api.post("/v1/regulations", body)["regulateId"]
    work_requests(api)
    again = api.post("/v1/regulations", body)
    assert again.status == 202 and again["regulateId"] != first
    work_requests(api)
    shown = api.get(f"/v1/regulations/{again['regulateId']}")
    assert shown["status"] == "FINISHED"
    assert {e["store"]: e for e in shown["report"]}["profile_items"]["items"] == 0


def test_suppress_with_delete_erases_and_drops_her_events_when_they_come_again(api: Api) -> None:
    ann_id, bob_id = build_people(api)
    created = api.post(
        "/v1/regulations",
        {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": ["ann"]},
    )
    work_requests(api)
    shown = api.get(f"/v1/regulations/{created['regulateId']}")
    assert shown["status"] == "FINISHED", shown.body
    stores = {e["store"]: e for e in shown["report"]}
    assert stores["suppressions"]["identifiersSuppressed"] >= 6
    assert stores["profile_items"]["status"] == "done"
    assert api.profiles().profile(ann_id) is None

    # When her email comes again in an event, and her device's id in another
    updater = api.stack.load("ProfileUpdaterFunction")
    again = {"type": "identify", "userId": "someone", "traits": {"email": "ann@example.com"}}
    updater.lambda_handler(updater_event("again-1", **again), Context())
    updater.lambda_handler(updater_event("again-2", anonymousId="dev-two"), Context())

    # Then both are dropped and counted on the request, and nobody is made of them
    assert api.get(f"/v1/regulations/{created['regulateId']}")["droppedEvents"] == 2
    owners = api.profiles().identity_owners([("email", "ann@example.com"), ("anonymous_id", "dev-two")])
    assert owners == {}
    # while Bob's events still land
    updater.lambda_handler(updater_event("bob-again", userId="bob"), Context())
    bob_now = api.profiles().profile(bob_id)
    assert bob_now is not None and bob_now.event_counts.get("Page Viewed") == 1


def test_two_workers_on_one_request_work_it_once(api: Api) -> None:
    build_people(api)
    created = api.post(
        "/v1/regulations", {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["ann"]}
    )["regulateId"]
    api.queue("ImportQueue")
    api.stack.load("RunImportsFunction")  # its environment
    first, second = (privacy_worker.__wrapped__(ImportSettings.from_env(), lambda: NOW) for _ in range(2))
    # Given one worker holds the request (it claimed it and stopped mid-way)
    assert first.regulations.claim(created, "first", NOW, NOW + timedelta(seconds=900))
    # When a second task for it comes, within the first's lease: it is left alone
    assert second.run(created) == "claimed"
    assert api.get(f"/v1/regulations/{created}")["status"] == "RUNNING"
    # After the lease, the second worker takes it over and finishes it
    second.clock = lambda: NOW + timedelta(seconds=901)
    assert second.run(created) == "FINISHED"
    assert second.run(created) == "FINISHED"  # and a redelivery after the end leaves it as it is


def test_the_reports_copy_of_a_rewritten_archive_object_is_fetched_again(api: Api, tmp_path: Any) -> None:
    from datetime import date

    from midstage.adapters.erasure_store import ArchiveRewriter
    from midstage.adapters.parquet import decode

    # Given an object holding Ann's and Bob's rows, copied into a report's cache
    archive_rows(api, {"p-ann": ("ann", "ann@example.com"), "p-bob": ("bob", "bob@example.com")})
    bucket, s3 = api.stack.output("ArchiveBucketName"), api.stack.clients.s3()
    cache = S3Archive(bucket, "archive/", tmp_path)
    cache._client = s3
    assert cache.sync(["event"], date(2026, 11, 22), date(2026, 11, 22)) > 0

    # When Ann's rows are erased from it
    assert ArchiveRewriter(bucket, "archive/", client=s3).erase({"profile_id": ["p-ann"]}) == (1, 3)

    # Then the next sync replaces the copy: the report reads Bob's rows only
    cache.sync(["event"], date(2026, 11, 22), date(2026, 11, 22))
    [copy] = list(tmp_path.rglob("*.parquet"))
    assert {row["profile_id"] for row in decode(copy.read_bytes())} == {"p-bob"}


def test_a_store_failing_mid_way_leaves_the_request_running_and_the_retry_finishes_it(api: Api) -> None:
    ann_id, bob_id = build_people(api)
    created = api.post(
        "/v1/regulations", {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["ann"]}
    )["regulateId"]
    api.stack.load("RunImportsFunction")  # its environment
    worker = privacy_worker.__wrapped__(ImportSettings.from_env(), lambda: NOW)
    assert worker.erasure is not None
    stores = worker.erasure.stores

    def unreachable(people: Any) -> int:
        raise ConnectionError("DynamoDB unreachable")

    # Given the last store fails on the first try, after her identities are gone
    stores.profile_items = unreachable  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        worker.run(created)
    shown = api.get(f"/v1/regulations/{created}")
    assert shown["status"] == "RUNNING"
    report = {e["store"]: e for e in shown["report"]}
    assert report["identities"]["status"] == "done" and report["profile_items"]["status"] == "failed"
    assert api.profiles().identity_owners([("user_id", "ann")]) == {}
    assert api.profiles().profiles([ann_id])  # her profile item is still there

    # When the queue offers it again, the next try finds her by what the first one remembered
    del stores.profile_items
    assert worker.run(created) == "FINISHED"
    shown = api.get(f"/v1/regulations/{created}")
    assert all(e["status"] == "done" for e in shown["report"] if "status" in e)
    assert {e["store"]: e for e in shown["report"]}["profile_items"]["items"] >= 2
    assert api.profiles().profiles([ann_id]) == {} and api.profiles().profile(bob_id) is not None
