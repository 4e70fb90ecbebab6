"""Privacy requests (/v1/regulations) through the real admin handler, the import queue's worker,
the deliverer and the profile updater, on moto: a suppressed person gets no message however soon
it is sent, their new events are dropped and counted, UNSUPPRESS restores sending, and EXPORT's
bundle holds the profile with a manifest whose hashes match its files."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.privacy_store import SALT_SECRET
from midstage.logic.timefmt import parse_iso
from midstage.models.messaging import Template
from midstage.models.profile import Profile
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_admin_messaging import ANN, ROLES, Api, email_template
from tests.integration.test_campaign_runs import (  # noqa: F401 - the fixture is used by name
    CONSENT,
    ENTERED,
    NOW,
    Rig,
    campaign,
    rig,
    sqs_event,
    zone_at,
)

# 5,000 ids of 505 random characters: far over what a request's item holds once compressed.
LONG_IDS = [f"{n:05d}" + secrets.token_hex(250) for n in range(5000)]
SUPPRESS_ANN = {"regulationType": "SUPPRESS_ONLY", "subjectType": "EMAIL", "subjectIds": ["Ann@Example.com"]}


@pytest.fixture
def api(stack: Stack) -> Api:
    """The admin API with a key per role, and Ann (userId, email, phone, device) from the sample."""
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    stack.load("ProfileUpdaterFunction").lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    return Api(stack, stack.load("AdminFunction"))


def approved_template(api: Api) -> None:
    """A welcome email that renders for Ann (the sample gives her a name, no first_name)."""
    plain = {"en": {"subject": "Welcome {{ person.name }}", "text": "Hi {{ person.name }}"}}
    assert api.post("/v1/templates", email_template(locales=plain)).status == 201
    assert api.post("/v1/templates/welcome-email/approve", {"version": 1}).status == 200
    api.stack.clients.sesv2().create_email_identity(EmailIdentity="example.com")  # the sender's domain


def sent_to(address: str) -> int:
    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return sum(1 for message in backend.sent_messages if address in set(message.destinations))


def work_requests(api: Api) -> list[str]:
    """The import queue's tasks, run by its function as SQS would hand them over."""
    bodies = [m["Body"] for m in api.queue("ImportQueue")]
    worker = api.stack.load("RunImportsFunction")
    assert worker.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}
    return bodies


def send_and_deliver(api: Api, key: str) -> dict[str, Any]:
    """A transactional email to Ann through the API, delivered at once; its ledger record."""
    answer = api.post(
        "/v1/messages",
        {
            "profile": ANN,
            "channels": ["email"],
            "template": "welcome-email",
            "category": "transactional",
            "idempotencyKey": key,
        },
    )
    assert answer.status == 202, answer.body
    bodies = [m["Body"] for m in api.queue("DeliveryQueue")]
    deliverer = api.stack.load("DeliverFunction")
    assert deliverer.lambda_handler(sqs_event(bodies), Context()) == {"batchItemFailures": []}
    record = api.ledger().get(answer["messageId"])
    assert record is not None
    return record


def updater_event(message_id: str, **fields: Any) -> dict[str, Any]:
    event = {
        "type": "track",
        "event": "Page Viewed",
        "messageId": message_id,
        "timestamp": "2026-11-22T10:05:00.000Z",
        "receivedAt": "2026-11-22T10:05:00.100Z",
        "sourceId": "src_localdemo",
        **fields,
    }
    return sqs_event([json.dumps({"version": 1, "kind": "profile.events", "events": [event]})])


# ====================================================================================== suppression
def test_a_person_suppressed_by_email_gets_no_send_right_after_and_their_events_are_dropped_and_counted(
    api: Api,
) -> None:
    approved_template(api)
    assert send_and_deliver(api, "before")["status"] == "sent"
    before = sent_to("ann@example.com")

    # When a data operator suppresses Ann by her email, and a message goes to her at once
    created = api.post("/v1/regulations", SUPPRESS_ANN, role="data_operator")
    assert created.status == 202, created.body
    regulate_id = created["regulateId"]
    blocked = send_and_deliver(api, "right-after")

    # Then nothing reaches her, before the worker has even run (the POST suppressed what it named)
    assert blocked["status"] == "blocked"
    assert regulate_id in blocked["reason"]
    assert sent_to("ann@example.com") == before
    assert api.get(f"/v1/regulations/{regulate_id}", role="data_operator")["status"] == "INITIALIZED"

    # When the worker runs it, the whole person is suppressed: her userId and phone too
    work_requests(api)
    shown = api.get(f"/v1/regulations/{regulate_id}", role="data_operator")
    assert shown["status"] == "FINISHED", shown.body
    stores = {entry["store"]: entry for entry in shown["report"]}
    assert stores["profiles"]["people"] == 1
    assert stores["suppressions"]["state"] == "FINISHED"
    assert stores["suppressions"]["identifiersSuppressed"] >= 5  # profile, userId, email, phone, anonymousId, device
    assert shown["dueAt"] > shown["receivedAt"]

    # and an event naming only her userId is dropped and counted, not applied
    updater = api.stack.load("ProfileUpdaterFunction")
    profile_before = api.profiles().profile(api.ann_id())
    assert profile_before is not None
    updater.lambda_handler(updater_event("after-suppress-1", userId="ann"), Context())
    updater.lambda_handler(
        updater_event("after-suppress-2", anonymousId="5b6c0c1e-3c5d-4b8e-9d3b-8e2f6a1b2c3d"), Context()
    )
    profile_after = api.profiles().profile(api.ann_id())
    assert profile_after is not None
    assert profile_after.event_counts == profile_before.event_counts
    assert api.get(f"/v1/regulations/{regulate_id}", role="data_operator")["droppedEvents"] == 2
    events, _ = api.profiles().timeline([profile_after.id], limit=100)
    assert not [e for e in events if e["messageId"].startswith("after-suppress")]

    # and the stored suppressions hold hashes, not her identifiers
    items = api.stack.clients.dynamodb().scan(TableName=api.data_table)["Items"]
    held = [item for item in items if item["pk"]["S"].startswith("PRIVSUP#")]
    assert held
    assert "ann" not in json.dumps(held) and "example.com" not in json.dumps(held)


def test_unsuppress_lifts_the_suppression_and_sending_resumes(api: Api) -> None:
    approved_template(api)
    suppressed = api.post("/v1/regulations", {**SUPPRESS_ANN, "subjectType": "USER_ID", "subjectIds": ["ann"]})
    work_requests(api)
    assert send_and_deliver(api, "while-suppressed")["status"] == "blocked"

    lifted = api.post(
        "/v1/regulations", {"regulationType": "UNSUPPRESS", "subjectType": "USER_ID", "subjectIds": ["ann"]}
    )
    assert lifted.status == 202
    assert lifted["regulateId"] != suppressed["regulateId"]
    work_requests(api)
    shown = api.get(f"/v1/regulations/{lifted['regulateId']}")
    assert shown["status"] == "FINISHED"
    assert {e["store"]: e for e in shown["report"]}["suppressions"]["identifiersLifted"] >= 5

    assert send_and_deliver(api, "after-lift")["status"] == "sent"
    updater = api.stack.load("ProfileUpdaterFunction")
    updater.lambda_handler(updater_event("after-lift-1", userId="ann"), Context())
    profile = api.profiles().profile(api.ann_id())
    assert profile is not None and profile.event_counts.get("Page Viewed") == 1


def test_the_latest_request_wins_whatever_order_the_queue_hands_them_over_in(api: Api) -> None:
    approved_template(api)
    ann = {"subjectType": "USER_ID", "subjectIds": ["ann"]}
    suppressed = api.post("/v1/regulations", {"regulationType": "SUPPRESS_ONLY", **ann})["regulateId"]
    lifted = api.post("/v1/regulations", {"regulationType": "UNSUPPRESS", **ann})["regulateId"]
    tasks = {json.loads(m["Body"])["regulateId"]: m["Body"] for m in api.queue("ImportQueue")}
    worker = api.stack.load("RunImportsFunction")

    # When the queue hands the UNSUPPRESS over first, and the older SUPPRESS_ONLY after it
    worker.lambda_handler(sqs_event([tasks[lifted]]), Context())
    worker.lambda_handler(sqs_event([tasks[suppressed]]), Context())

    # Then the suppression's worker left every identifier as the later request decided
    report = {e["store"]: e for e in api.get(f"/v1/regulations/{suppressed}")["report"]}["suppressions"]
    assert report["identifiersSuppressed"] == 0 and report["laterRequestKept"] >= 5
    assert send_and_deliver(api, "after-both")["status"] == "sent"


def test_people_suppressed_a_moment_before_a_campaign_starts_get_none_of_its_sends(
    rig: Rig,  # noqa: F811 - the campaign-run tests' rig
) -> None:
    # Given three people in a campaign's audience, consenting, at noon where they are
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
    rig.store(
        Profile(
            id=f"p{n}",
            created_at=ENTERED,
            identities={"email": [f"p{n}@example.org"]},
            traits={"email": f"p{n}@example.org"},
            consent=CONSENT,
            timezone=zone_at(12),
            segments={"vip": ENTERED},
        )
        for n in range(3)
    )
    rig.config.create_api_key("operator", "data_operator", "msk_data_operator", now=datetime.now(UTC))
    api = Api(rig.stack, rig.stack.load("AdminFunction"))

    # When p1 is suppressed by email and p2 by profile id, and the campaign starts right after
    by_email = {"regulationType": "SUPPRESS_ONLY", "subjectType": "EMAIL", "subjectIds": ["P1@example.org"]}
    by_profile = {"regulationType": "SUPPRESS_ONLY", "subjectType": "PROFILE_ID", "subjectIds": ["p2"]}
    assert api.post("/v1/regulations", by_email, role="data_operator").status == 202
    assert api.post("/v1/regulations", by_profile, role="data_operator").status == 202
    rig.runner(parts=1).start("winter-sale", NOW, NOW)
    [part] = rig.part_messages()
    rig.work(part)
    deliverer = rig.stack.load("DeliverFunction")
    assert deliverer.lambda_handler(sqs_event(rig.drain(rig.deliveries.queue_url)), Context()) == {
        "batchItemFailures": []
    }

    # Then only p0 is sent to: the two others' messages are blocked by their requests
    assert (sent_to("p0@example.org"), sent_to("p1@example.org"), sent_to("p2@example.org")) == (1, 0, 0)
    counted = rig.counters.totals("campaign", "winter-sale")
    assert {name: int(amount) for name, amount in next(iter(counted.values())).items()} == {
        "sent": 1,
        "blocked:suppressed": 2,
    }


# ====================================================================================== export
def test_export_writes_a_bundle_whose_manifest_hashes_match_its_files(api: Api) -> None:
    created = api.post(
        "/v1/regulations",
        {
            "regulationType": "EXPORT",
            "subjectType": "PHONE",
            "subjectIds": ["+1 (415) 555-0100"],
            "jurisdiction": "CCPA",
        },
    )
    assert created.status == 202, created.body
    work_requests(api)
    shown = api.get(f"/v1/regulations/{created['regulateId']}")
    assert shown["status"] == "FINISHED", shown.body
    assert shown["jurisdiction"] == "CCPA"
    export = shown["export"]
    assert "X-Amz-Signature" in export["url"] and "X-Amz-Expires=900" in export["url"]

    s3 = api.stack.clients.s3()
    bucket = api.stack.output("ArchiveBucketName")

    def read(url: str) -> bytes:
        key = urlparse(url).path.split(f"/{bucket}/", 1)[-1].lstrip("/")
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    manifest = json.loads(read(export["url"]))
    assert manifest["people"] == 1 and manifest["profileIds"] == [api.ann_id()]
    files = {f["name"]: f for f in export["files"]}
    assert {f["name"] for f in manifest["files"]} == set(files)
    for listed in manifest["files"]:
        content = read(files[listed["name"]]["url"])
        assert hashlib.sha256(content).hexdigest() == listed["sha256"]
        assert len(content) == listed["bytes"]

    profile = json.loads(read(files["person-1/profile.json"]["url"]))
    stored = api.profiles().profile(api.ann_id())
    assert stored is not None
    assert profile["traits"] == stored.traits
    assert profile["identities"] == stored.identities
    assert profile["computed"] == json.loads(json.dumps(stored.computed, default=str))
    traits_csv = read(files["person-1/traits.csv"]["url"]).decode()
    assert "Ann Lee" in traits_csv and traits_csv.startswith("field,value\r\n")
    events = json.loads(read(files["person-1/events.json"]["url"]))
    assert {e["messageId"] for e in events} == {"sample-identify-0001", "sample-track-0001"}
    assert "ann@example.com" in read(files["person-1/identities.csv"]["url"]).decode()
    extra = ("journeys", "offer_codes", "inbox", "campaign_touches")
    assert {f"person-1/{name}.json" for name in extra} <= set(files)
    assert len(files) == 16 and shown["report"][-1]["files"] == 17  # and the manifest


# ====================================================================================== the API
def test_the_hourly_sweep_counts_the_requests_past_their_due_date(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    pipl = api.post("/v1/regulations", {**SUPPRESS_ANN, "jurisdiction": "PIPL"})["regulateId"]
    api.post("/v1/regulations", {**SUPPRESS_ANN, "subjectIds": ["bob@example.com"]})  # GDPR: a month
    due = {r["regulateId"]: parse_iso(r["dueAt"]) for r in api.get("/v1/regulations")["regulations"]}
    # A day after the PIPL request's due date, before the GDPR one's
    later = due[pipl] + timedelta(days=1)
    assert later < max(due.values())
    sweep = api.stack.load("LifecycleSweepFunction", lambda: later)
    capsys.readouterr()
    sweep.lambda_handler(sample("lifecycle_sweep", "scheduled"), Context())
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"PrivacyRequestsOverdue"' in line]
    assert [line["PrivacyRequestsOverdue"] for line in emitted] == [[1.0]]


def test_the_same_body_twice_is_the_same_request_and_another_type_is_a_new_one(api: Api) -> None:
    first = api.post("/v1/regulations", SUPPRESS_ANN)
    again = api.post("/v1/regulations", {**SUPPRESS_ANN, "subjectIds": ["  ann@example.com", "ANN@example.com"]})
    assert (first.status, again.status) == (202, 200)
    assert again["regulateId"] == first["regulateId"]
    # Not worked yet, the repeat queued it again (the first might not have been); it is one request
    tasks = api.queue("ImportQueue")
    assert {json.loads(t["Body"])["regulateId"] for t in tasks} == {first["regulateId"]}
    worker = api.stack.load("RunImportsFunction")
    worker.lambda_handler(sqs_event([t["Body"] for t in tasks]), Context())
    assert api.get(f"/v1/regulations/{first['regulateId']}")["status"] == "FINISHED"
    # Once worked, a repeat is done anew: another request may have changed the same people since
    renewed = api.post("/v1/regulations", SUPPRESS_ANN)
    assert renewed.status == 202 and renewed["regulateId"] != first["regulateId"]
    assert {json.loads(t["Body"])["regulateId"] for t in api.queue("ImportQueue")} == {renewed["regulateId"]}
    # And a repeat by another key is its own request
    other = api.post("/v1/regulations", SUPPRESS_ANN, role="data_operator")
    assert other["regulateId"] not in (first["regulateId"], renewed["regulateId"])
    lifted = api.post("/v1/regulations", {**SUPPRESS_ANN, "regulationType": "UNSUPPRESS"})
    assert lifted["regulateId"] != first["regulateId"]
    suppressed_again = api.post("/v1/regulations", SUPPRESS_ANN)
    assert suppressed_again.status == 202
    assert suppressed_again["regulateId"] not in (first["regulateId"], lifted["regulateId"])
    listed = api.get("/v1/regulations", query={"limit": "2"}, role="data_operator")
    assert listed["regulations"][0]["regulateId"] == suppressed_again["regulateId"]
    assert listed["cursor"]
    assert api.get("/v1/regulations", query={"overdue": "true"})["regulations"] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**SUPPRESS_ANN, "subjectIds": [f"u{n}" for n in range(5001)], "subjectType": "USER_ID"}, 400, "invalid_body"),
        ({**SUPPRESS_ANN, "subjectIds": []}, 400, "invalid_body"),
        ({**SUPPRESS_ANN, "regulationType": "FORGET"}, 400, "invalid_body"),
        ({**SUPPRESS_ANN, "subjectType": "IP"}, 400, "invalid_body"),
        ({**SUPPRESS_ANN, "subjectIds": "ann@example.com"}, 400, "invalid_body"),
        ({**SUPPRESS_ANN, "extra": 1}, 400, "invalid_body"),
        ({**SUPPRESS_ANN, "subjectIds": ["not-an-email"]}, 400, "invalid_subject"),
        ({**SUPPRESS_ANN, "subjectType": "PHONE", "subjectIds": ["4155550100"]}, 400, "invalid_subject"),
        ({**SUPPRESS_ANN, "jurisdiction": "LGPD"}, 400, "invalid_body"),
        (
            {**SUPPRESS_ANN, "regulationType": "EXPORT", "subjectIds": [f"u{n}@example.com" for n in range(101)]},
            400,
            "too_many_subjects",
        ),
        (
            {
                **SUPPRESS_ANN,
                "subjectType": "USER_ID",
                "subjectIds": [f"{n:05d}" + secrets.token_hex(250) for n in range(5000)],
            },
            400,
            "subjects_too_large",
        ),
        ({**SUPPRESS_ANN, "regulationType": "DELETE_INTERNAL"}, 422, "regulation_type_not_supported"),
        ({**SUPPRESS_ANN, "regulationType": "DELETE_ARCHIVE_ONLY"}, 422, "regulation_type_not_supported"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_stored(api: Api, body: Any, status: int, code: str) -> None:
    answer = api.post("/v1/regulations", body)
    assert (answer.status, answer["code"]) == (status, code), answer.body
    assert api.queue("ImportQueue") == []
    assert api.get("/v1/regulations")["regulations"] == []


def test_an_export_of_nobody_finishes_with_an_empty_bundle(api: Api) -> None:
    body = {"regulationType": "EXPORT", "subjectType": "EMAIL", "subjectIds": ["nobody@example.com"]}
    created = api.post("/v1/regulations", body)
    work_requests(api)
    shown = api.get(f"/v1/regulations/{created['regulateId']}")
    assert shown["status"] == "FINISHED"
    assert {e["store"]: e for e in shown["report"]}["profiles"] == {
        "store": "profiles",
        "state": "FINISHED",
        "people": 0,
        "unmatchedSubjects": 1,
    }
    assert shown["export"]["files"] == []


def test_5000_subjects_are_accepted(api: Api) -> None:
    body = {"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": [f"u{n}" for n in range(5000)]}
    answer = api.post("/v1/regulations", body)
    assert answer.status == 202, answer.body
    assert api.get(f"/v1/regulations/{answer['regulateId']}")["subjectCount"] == 5000


def test_malformed_bodies_ids_and_roles_are_refused(api: Api) -> None:
    assert api.post("/v1/regulations", raw="{not json").status == 400
    assert api.post("/v1/regulations", raw="null").status == 400
    assert api.post("/v1/regulations", SUPPRESS_ANN, role="marketer").status == 403
    assert api.get("/v1/regulations", role="viewer").status == 403
    missing = api.get("/v1/regulations/reg_20261122100000000000abcdefabcdef")
    assert (missing.status, missing["code"]) == (404, "regulation_not_found")
    assert api.get("/v1/regulations/..%2F..").status == 404
    assert api.get("/v1/regulations", query={"cursor": "x"}).status == 400
    assert api.get("/v1/regulations", query={"overdue": "maybe"}).status == 400


def test_the_salt_is_one_stack_secret_made_by_the_first_function_that_needs_it(api: Api) -> None:
    def salts() -> list[Any]:
        items = api.stack.clients.dynamodb().scan(TableName=api.stack.output("ConfigTableName"))["Items"]
        return [i["doc"] for i in items if i.get("sk", {}).get("S") == SALT_SECRET]

    made = salts()  # the profile updater made it, applying the fixture's events
    assert len(made) == 1
    assert api.post("/v1/regulations", SUPPRESS_ANN).status == 202
    assert salts() == made  # the admin function read the same one
