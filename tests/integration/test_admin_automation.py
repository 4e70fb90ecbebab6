"""The admin API's automation routes, through the real handler on moto: segments (backfills,
estimates, imports), campaigns (Scheduler schedules, state changes, stats) and journeys.
Success and refusal paths; the functions downstream (segment refresh, campaign runner and
workers) are run on what the API queued, to show the hand-offs carry what they need."""

from __future__ import annotations

import base64
import gzip
import json
import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from midstage.adapters.automation_store import JourneyInstances
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.adapters.scheduler import CampaignSchedules
from midstage.admin.wiring import SCHEDULE_PREFIX
from midstage.cli import ApiError
from midstage.logic.campaigns import first_fire_for_local_time
from midstage.logic.timefmt import iso, parse_iso
from midstage.pinpoint_command import export_files, import_files
from midstage.services.campaigns import Started
from tests.integration.conftest import Context, Stack, sample
from tests.integration.test_admin_messaging import ANN, ROLES, Api, approved_template

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
VIP = {"path": "traits.plan", "op": "eq", "value": "pro"}


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    stack.load("ProfileUpdaterFunction").lambda_handler(sample("profile_updater", "sqs-batch"), Context())
    admin = stack.load("AdminFunction")
    # Time enough to read every slice of the (tiny) table, so estimates are exact on any machine.
    admin._wiring().segments.estimate_budget_s = 120.0
    return Api(stack, admin)


# ------------------------------------------------------------------------------ helpers
def whole_minute(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(second=0, microsecond=0)


def segment(segment_id: str = "vip", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": segment_id, "name": "Pro customers", "condition": VIP}
    body.update(changes)
    return body


def campaign(campaign_id: str = "black-friday", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": campaign_id,
        "name": "Black Friday",
        "audience": {"segments": ["vip"]},
        "message": {"channels": ["email"], "template": "welcome-email", "vars": {"code": "BF26"}},
        "schedule": {"type": "once", "at": iso(whole_minute(30))},
    }
    body.update(changes)
    return body


def journey(journey_id: str = "onboarding", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": journey_id,
        "name": "Onboarding",
        "entry": {"type": "event", "event": "Signed Up"},
        "start": "hello",
        "steps": {
            "hello": {"type": "send", "channels": ["email"], "template": "welcome-email", "next": "pause"},
            "pause": {"type": "wait", "duration": "2d", "next": "check"},
            "check": {
                "type": "condition",
                "condition": {"all": [VIP, {"path": "tags", "op": "contains", "value": "trial"}]},
                "yes": "done",
                "no": "done",
            },
            "done": {"type": "exit"},
        },
    }
    body.update(changes)
    return body


def without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "id"}


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Messages read off a queue as the SQS event source would hand them to a function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def by_person(api: Api) -> dict[str, list[dict[str, Any]]]:
    """The ingest queue's messages (received and deleted): each person's events, by person key."""
    url = api.stack.queue_urls[next(q.arn for q in api.stack.model.queues if q.logical_id == "IngestQueue")]
    sqs = api.stack.clients.sqs()
    found: dict[str, list[dict[str, Any]]] = {}
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages"
    ):
        for message in messages:
            key = message["MessageAttributes"]["personKey"]["StringValue"]
            found.setdefault(key, []).extend(json.loads(message["Body"])["events"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def schedules(api: Api) -> CampaignSchedules:
    """The admin's schedules, as it names them, for reading back what it created."""
    return CampaignSchedules(
        prefix=SCHEDULE_PREFIX,
        target_arn="",
        role_arn="",
        group=api.stack.model.schedule_groups[0],
        client=api.stack.clients.client("scheduler"),
    )


def stored_schedule(api: Api, campaign_id: str) -> dict[str, Any] | None:
    client = api.stack.clients.client("scheduler")
    try:
        found: dict[str, Any] = client.get_schedule(
            Name=schedules(api).name_for(campaign_id), GroupName=api.stack.model.schedule_groups[0]
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return None
    return found


def fire(api: Api, schedule_input: dict[str, Any]) -> Started:
    """What the campaign runner function does with a schedule's input, through its own wiring
    (its handler cannot be called as a whole yet: see the xfail test at the end)."""
    runner = api.stack.load("StartCampaignFunction")._runner()
    started: Started = runner.start(
        schedule_input["campaignId"], parse_iso(schedule_input["scheduledTime"]), datetime.now(UTC)
    )
    assert started.created, started
    return started


def vip_with_ann(api: Api) -> None:
    """The vip segment, backfilled by the refresh function from what the API queued."""
    assert api.post("/v1/segments", segment()).status == 201
    refresh = api.stack.load("RefreshSegmentsFunction")
    assert refresh.lambda_handler(sqs_event(api.queue("RefreshQueue")), Context()) == {"batchItemFailures": []}


# ====================================================================================== roles
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/segments", segment()),
        ("POST", "/v1/segments/estimate", {"condition": VIP}),
        ("PUT", "/v1/segments/vip", without_id(segment())),
        ("DELETE", "/v1/segments/vip", None),
        ("POST", "/v1/segments/vip/refresh", None),
        ("POST", "/v1/segments/vip/import", {"data": "email\nann@example.com\n"}),
        ("POST", "/v1/campaigns", campaign()),
        ("PUT", "/v1/campaigns/black-friday", without_id(campaign())),
        ("DELETE", "/v1/campaigns/black-friday", None),
        ("POST", "/v1/campaigns/black-friday/schedule", None),
        ("POST", "/v1/campaigns/black-friday/pause", None),
        ("POST", "/v1/campaigns/black-friday/resume", None),
        ("POST", "/v1/campaigns/black-friday/cancel", None),
        ("POST", "/v1/journeys", journey()),
        ("POST", "/v1/journeys/validate", journey()),
        ("PUT", "/v1/journeys/onboarding", without_id(journey())),
        ("PATCH", "/v1/journeys/onboarding", {"enabled": False}),
        ("DELETE", "/v1/journeys/onboarding", None),
    ],
)
def test_changes_need_the_marketer_role(api: Api, method: str, path: str, body: Any) -> None:
    refused = api.call(method, path, body, role="viewer")
    assert (refused.status, refused["code"]) == (403, "forbidden"), refused.body
    assert "marketer" in refused["message"]
    nobody = api.call(method, path, body, role=None)
    assert (nobody.status, nobody["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("path", ["/v1/segments", "/v1/campaigns", "/v1/journeys", f"/v1/profiles/{ANN}/journeys"])
def test_viewers_can_read(api: Api, path: str) -> None:
    answer = api.get(path, role="viewer")
    assert answer.status == 200, answer.body


# ====================================================================================== segments
def test_a_dynamic_segment_is_backfilled_from_the_refresh_queue(api: Api) -> None:
    created = api.post("/v1/segments", segment(), role="marketer")
    assert created.status == 201, created.body
    shown = created["segment"]
    assert (shown["id"], shown["kind"], shown["version"], shown["condition"]) == ("vip", "dynamic", 1, VIP)
    assert shown["updated_by"]
    job = created["refresh"]
    assert job["parts"] == 8

    messages = api.queue("RefreshQueue")
    bodies = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["part"])
    started = {b.pop("startedAt") for b in bodies}  # one time for every part: they read profiles alike
    assert len(started) == 1
    expected = [
        {"version": 1, "kind": "refresh.segment", "jobId": job["jobId"], "part": part, "total": 8} for part in range(8)
    ]
    assert bodies == expected

    progress = api.get(f"/v1/segments/vip/refresh/{job['jobId']}", role="viewer")
    assert progress.status == 200, progress.body
    assert (progress["parts"], progress["parts_done"], progress["state"], progress["scanned"]) == (8, 0, "running", 0)

    refresh = api.stack.load("RefreshSegmentsFunction")
    assert refresh.lambda_handler(sqs_event(messages), Context()) == {"batchItemFailures": []}
    done = api.get(f"/v1/segments/vip/refresh/{job['jobId']}")
    assert (done["parts_done"], done["state"], done["scanned"], done["changed"]) == (8, "done", 1, 1)
    ann = api.profiles().profile(api.ann_id())
    assert ann is not None
    assert "vip" in ann.segments

    again = api.post("/v1/segments/vip/refresh")
    assert again.status == 202, again.body
    assert (again["segment_id"], again["parts"]) == ("vip", 8)
    assert again["jobId"] != job["jobId"]
    assert len(api.queue("RefreshQueue")) == 8

    assert api.get("/v1/segments", role="viewer")["segments"] == [shown]
    assert api.get("/v1/segments/vip", role="viewer").body == shown


def test_a_segment_is_backfilled_again_only_when_its_condition_changes(api: Api) -> None:
    assert api.post("/v1/segments", segment()).status == 201
    api.queue("RefreshQueue")
    renamed = api.put("/v1/segments/vip", without_id(segment(name="VIP")), headers={"if-match": "1"})
    assert renamed.status == 200, renamed.body
    assert (renamed["segment"]["version"], renamed["segment"]["name"], renamed["refresh"]) == (2, "VIP", None)
    assert api.queue("RefreshQueue") == []

    wider = {"path": "traits.plan", "op": "in", "value": ["pro", "team"]}
    changed = api.put("/v1/segments/vip", without_id(segment(condition=wider)), role="marketer")
    assert (changed.status, changed["segment"]["version"]) == (200, 3)
    assert changed["refresh"]["parts"] == 8
    assert {json.loads(m["Body"])["jobId"] for m in api.queue("RefreshQueue")} == {changed["refresh"]["jobId"]}

    stale = api.put("/v1/segments/vip", without_id(segment()), headers={"if-match": "2"})
    assert (stale.status, stale["code"]) == (409, "version_mismatch")
    garbage = api.put("/v1/segments/vip", without_id(segment()), headers={"if-match": "newest"})
    assert (garbage.status, garbage["code"]) == (400, "invalid_if_match")
    to_static = api.put("/v1/segments/vip", {"name": "VIP", "kind": "static"})
    assert (to_static.status, to_static["code"]) == (400, "invalid_segment")
    assert to_static["issues"][0]["location"] == "/kind"
    assert api.get("/v1/segments/vip")["version"] == 3


def test_a_static_segment_starts_no_backfill(api: Api) -> None:
    created = api.post("/v1/segments", {"id": "imported", "name": "Fair visitors", "kind": "static"})
    assert created.status == 201, created.body
    assert (created["segment"]["kind"], created["segment"]["condition"], created["refresh"]) == (
        "static",
        None,
        None,
    )
    assert api.queue("RefreshQueue") == []


@pytest.mark.parametrize(
    ("condition", "location", "words"),
    [
        ({"path": "traits.plan", "op": "bigger", "value": 3}, "/condition/op", "bigger"),
        ({"all": [VIP, {"path": "event.name", "op": "eq", "value": "x"}]}, "/condition/all/1/path", "no event"),
        ({"path": "segments", "op": "contains", "value": "gold"}, "/condition", "unknown segment 'gold'"),
        ({"any": [VIP, {"path": "segments", "op": "contains", "value": "vip"}]}, "/condition/any/1", "themselves"),
        ({"path": "segments", "op": "exists", "value": True}, "/condition", "every other segment"),
    ],
)
def test_segment_conditions_are_refused_at_their_exact_location(
    api: Api, condition: dict[str, Any], location: str, words: str
) -> None:
    refused = api.post("/v1/segments", segment(condition=condition), role="marketer")
    assert (refused.status, refused["code"]) == (400, "invalid_segment"), refused.body
    assert refused["issues"][0]["location"] == location
    assert words in refused["issues"][0]["message"]
    assert api.get("/v1/segments/vip").status == 404
    assert api.queue("RefreshQueue") == []


def test_segment_schema_errors_point_into_the_body(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (segment(id="Not An Id"), "/id"),
        (segment(kind="sometimes"), "/kind"),
        (segment(name=""), "/name"),
        (segment(colour="red"), "/colour"),
        ({"id": "x", "name": "x", "kind": "static", "condition": VIP}, ""),
        ({"id": "x", "name": "x"}, ""),
    ]
    for body, location in cases:
        refused = api.post("/v1/segments", body)
        assert (refused.status, refused["code"]) == (400, "invalid_body"), body
        assert location in {i["location"] for i in refused["issues"]}, refused["issues"]


def test_unknown_segments_and_jobs_are_404(api: Api) -> None:
    for answer in (
        api.get("/v1/segments/nope"),
        api.put("/v1/segments/nope", without_id(segment())),
        api.delete("/v1/segments/nope"),
        api.post("/v1/segments/nope/refresh"),
        api.get("/v1/segments/nope/refresh/rf_000000000000000000000000"),
        api.post("/v1/segments/nope/import", {"data": "email\nann@example.com\n"}),
    ):
        assert (answer.status, answer["code"]) == (404, "not_found"), answer.body
    job = api.post("/v1/segments", segment())["refresh"]["jobId"]
    assert api.post("/v1/segments", segment("gold", condition=VIP)).status == 201
    for path in (f"/v1/segments/gold/refresh/{job}", "/v1/segments/vip/refresh/../../JOB"):
        answer = api.get(path)
        assert (answer.status, answer["code"]) == (404, "not_found"), path


def test_a_segment_in_use_cannot_be_deleted_and_names_its_users(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    wider = {"any": [VIP, {"path": "segments", "op": "contains", "value": "vip"}]}
    assert api.post("/v1/segments", segment("gold", condition=wider)).status == 201
    assert api.post("/v1/campaigns", campaign()).status == 201
    entered = journey(entry={"type": "segment_entered", "segment": "vip"})
    assert api.post("/v1/journeys", entered).status == 201, "journey"

    refused = api.delete("/v1/segments/vip", role="marketer")
    assert (refused.status, refused["code"]) == (409, "in_use"), refused.body
    assert refused["used_by"] == [
        {"kind": "campaign", "id": "black-friday"},
        {"kind": "journey", "id": "onboarding"},
        {"kind": "segment", "id": "gold"},
    ]
    assert api.get("/v1/segments/vip").status == 200

    assert api.post("/v1/campaigns/black-friday/cancel").status == 200  # an ended campaign no longer counts
    assert api.delete("/v1/journeys/onboarding").status == 204
    assert api.delete("/v1/segments/gold").status == 204
    assert api.delete("/v1/segments/vip").status == 204
    assert api.get("/v1/segments/vip").status == 404
    reused = api.post("/v1/segments", segment())
    assert (reused.status, reused["code"]) == (409, "conflict")
    assert "not reused" in reused["message"]


def test_an_estimate_counts_the_profiles_a_condition_matches(api: Api) -> None:
    estimate = api.post("/v1/segments/estimate", {"condition": VIP}, role="marketer")
    assert estimate.status == 200, estimate.body
    assert (estimate["estimated"], estimate["low"], estimate["high"]) == (1, 1, 1)
    assert (estimate["exact"], estimate["scanned"], estimate["matched"]) == (True, 1, 1)
    assert [s["id"] for s in estimate["sample"]] == [api.ann_id()]

    nobody = api.post("/v1/segments/estimate", {"condition": {"path": "traits.plan", "op": "eq", "value": "free"}})
    assert (nobody["estimated"], nobody["matched"], nobody["sample"]) == (0, 0, [])

    refused = api.post("/v1/segments/estimate", {"condition": {"path": "traits.plan", "op": "like", "value": 1}})
    assert (refused.status, refused["code"]) == (400, "invalid_segment")
    assert refused["issues"][0]["location"] == "/condition/op"
    missing = api.post("/v1/segments/estimate", {})
    assert (missing.status, missing["code"]) == (400, "invalid_body")
    assert missing["issues"][0]["location"] == "/condition"


# ====================================================================================== imports
def test_a_csv_import_queues_each_persons_events_together(api: Api) -> None:
    assert api.post("/v1/segments", {"id": "fair", "name": "Fair visitors", "kind": "static"}).status == 201
    text = (FIXTURES / "people.csv").read_text(encoding="utf-8") + "u-200,not-an-email,,Dan,,\n"
    imported = api.post("/v1/segments/fair/import", {"format": "csv", "data": text}, role="marketer")
    assert imported.status == 202, imported.body
    assert (imported["format"], imported["accepted"], imported["people"]) == ("csv", 4, 3)  # Ann has two rows
    assert [r["line"] for r in imported["rejected"]] == [6, 8, 10]
    assert imported["rejected_total"] == 3
    assert "not a valid email" in imported["rejected"][2]["reason"]
    assert imported["import_id"].startswith("imp_")

    queued = by_person(api)
    assert set(queued) >= {"u:u-100", "u:u-101"}
    assert len(queued) == 3
    ann_events = queued["u:u-100"]
    assert [e["type"] for e in ann_events] == ["identify", "track"]
    assert ann_events[0]["traits"]["email"] == "ann.lee@example.com"
    assert (ann_events[1]["event"], ann_events[1]["properties"]) == ("Segment Added", {"segment": "fair"})
    assert imported["events"] == sum(len(events) for events in queued.values())

    again = api.post("/v1/segments/fair/import", {"data": text})  # format detected; same file, same id
    assert (again.status, again["format"], again["import_id"]) == (202, "csv", imported["import_id"])
    replayed = {e["messageId"] for events in by_person(api).values() for e in events}
    assert replayed == {e["messageId"] for events in queued.values() for e in events}


def test_a_gzipped_pinpoint_export_is_imported_from_base64(api: Api) -> None:
    assert api.post("/v1/segments", {"id": "migrated", "name": "From Pinpoint", "kind": "static"}).status == 201
    packed = gzip.compress((FIXTURES / "pinpoint-export.jsonl").read_bytes())
    wrapped = base64.encodebytes(packed).decode()  # with line breaks, as `base64` writes it
    imported = api.post("/v1/segments/migrated/import", {"data_base64": wrapped})
    assert imported.status == 202, imported.body
    assert imported["format"] == "pinpoint-json"
    assert (imported["people"], imported["rejected_total"]) == (4, 4)
    assert [r["line"] for r in imported["rejected"]] == [7, 8, 10, 11]
    assert set(by_person(api)) == {"u:user-ann", "a:pinpoint:ep-anon-gcm", "u:user-cy", "u:user-eve"}


def pinpoint_export(endpoints: list[dict[str, Any]], files: int) -> list[str]:
    """An export job's files: JSON lines, each file ending without a newline, as Pinpoint writes them."""
    return ["\n".join(json.dumps(e) for e in endpoints[n::files]) for n in range(files)]


def test_a_second_pinpoint_export_job_adds_nothing_and_a_later_one_only_what_changed(api: Api) -> None:
    assert api.post("/v1/segments", {"id": "migrated", "name": "From Pinpoint", "kind": "static"}).status == 201
    # The developer guide's import example (a national Canadian number, alpha-3 countries), with
    # the Id and EffectiveDate an export job writes, and a GetEndpoint-shaped push endpoint.
    endpoints: list[dict[str, Any]] = [
        {"Id": "ep-1", "ChannelType": "SMS", "Address": "2065550182", "Location": {"Country": "CAN"}},
        {"Id": "ep-2", "ChannelType": "APNS", "Address": "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f", "OptOut": "ALL"},
        {"Id": "ep-3", "ChannelType": "EMAIL", "Address": "john.stiles@example.com", "Location": {"Country": "USA"}},
        {"Id": "ep-4", "ChannelType": "EMAIL", "Address": "wang.xiulan@example.com", "Location": {"Country": "CHN"}},
    ]
    users = ["example-user-id-1", "example-user-id-2", "example-user-id-2", "example-user-id-3"]
    for endpoint, user in zip(endpoints, users, strict=True):
        endpoint.update(
            EffectiveDate="2026-10-01T09:00:00.000Z", User={"UserId": user, "UserAttributes": {"plan": ["pro"]}}
        )
    updater = api.stack.load("ProfileUpdaterFunction")

    def import_export(files: list[str]) -> list[dict[str, Any]]:
        answers = [api.post("/v1/segments/migrated/import", {"format": "pinpoint-json", "data": f}) for f in files]
        assert [(a.status, a["rejected_total"]) for a in answers] == [(202, 0)] * len(files), answers[0].body
        assert updater.lambda_handler(sqs_event(api.queue("IngestQueue")), Context()) == {"batchItemFailures": []}
        return [api.get(f"/v1/profiles/user_id:{user}").body for user in sorted(set(users))]

    first = import_export(pinpoint_export(endpoints, 2))
    assert first[0]["traits"]["phone"] == "+12065550182"  # not +2065550182
    assert first[1]["traits"]["email"] == "john.stiles@example.com"
    refused = api.profiles().profile(first[1]["id"])
    assert refused is not None and refused.consent["push:marketing"]["granted"] is False

    # A second export job: the same endpoints, in another order, in three files.
    again = import_export(pinpoint_export(endpoints[::-1], 3))
    assert [p["computed"]["event_counts"] for p in again] == [p["computed"]["event_counts"] for p in first]
    assert [p["traits"] for p in again] == [p["traits"] for p in first]

    # A later export: one endpoint changed; only its person gains an event.
    endpoints[3].update(EffectiveDate="2026-11-20T09:00:00.000Z", Address="xiulan@example.com")
    later = import_export(pinpoint_export(endpoints, 2))
    counts = [p["computed"]["event_counts"] for p in later]
    assert counts[:2] == [p["computed"]["event_counts"] for p in first[:2]]
    assert counts[2]["$identify"]["total"] == first[2]["computed"]["event_counts"]["$identify"]["total"] + 1
    assert counts[2]["Segment Added"]["total"] == 1
    assert later[2]["traits"]["email"] == "xiulan@example.com"


class AdminApiOverApi:
    """The CLI's view of the admin API (midstage.cli.AdminApi), answered by the admin function."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def send(self, method: str, path: str, body: Any, *, if_match: int | None = None) -> dict[str, Any]:
        answer = self.api.post(path, body)
        if not 200 <= answer.status < 300:
            raise ApiError(method, path, answer.status, answer.body)
        return dict(answer.body)


def test_pinpoint_import_reads_an_export_prefix_in_s3_file_by_file(api: Api) -> None:
    assert api.post("/v1/segments", {"id": "migrated", "name": "From Pinpoint", "kind": "static"}).status == 201
    s3 = api.stack.clients.s3()
    s3.create_bucket(Bucket="pinpoint-exports")
    endpoints = [
        {"Id": f"ep-{n}", "ChannelType": "EMAIL", "Address": f"person{n}@example.com", "User": {"UserId": f"u{n}"}}
        for n in range(7)
    ]
    endpoints[5]["Address"] = "not-an-email"
    for n, text in enumerate(pinpoint_export(endpoints, 2)):  # gzip'd, no trailing newline
        s3.put_object(Bucket="pinpoint-exports", Key=f"pinpoint/all/job-1/{n}.gz", Body=gzip.compress(text.encode()))
    said: list[str] = []

    files = export_files(["s3://pinpoint-exports/pinpoint/all/"])
    totals = import_files(files, "migrated", AdminApiOverApi(api), fmt="auto", lines=2, echo=said.append)

    assert [str(f) for f in files] == [f"s3://pinpoint-exports/pinpoint/all/job-1/{n}.gz" for n in (0, 1)]
    assert (totals.accepted, totals.rejected, totals.refused) == (6, 1, [])
    # ep-5 is the third line of the second file (ep-1, ep-3, ep-5)
    assert (
        "  s3://pinpoint-exports/pinpoint/all/job-1/1.gz:3: EMAIL address 'not-an-email' is not a valid email address"
        in said
    )
    assert set(by_person(api)) == {f"u:u{n}" for n in range(7) if n != 5}


def test_imports_are_refused_for_dynamic_segments_and_bad_files(api: Api) -> None:
    assert api.post("/v1/segments", segment()).status == 201
    dynamic = api.post("/v1/segments/vip/import", {"data": "email\nann@example.com\n"})
    assert (dynamic.status, dynamic["code"]) == (409, "not_static")
    assert api.post("/v1/segments", {"id": "fair", "name": "Fair", "kind": "static"}).status == 201

    binary = base64.b64encode(b"\x00\x01\x02PK\x03\x04" + os.urandom(2000)).decode()
    not_text = api.post("/v1/segments/fair/import", {"data_base64": binary})
    assert (not_text.status, not_text["code"]) == (400, "invalid_import"), not_text.body
    bomb = base64.b64encode(gzip.compress(b"email\n" + b"0" * (21 * 1024 * 1024))).decode()
    inflated = api.post("/v1/segments/fair/import", {"data_base64": bomb})
    assert (inflated.status, inflated["code"]) == (400, "invalid_import")
    assert "inflates to over" in inflated["message"]
    no_identifier = api.post("/v1/segments/fair/import", {"data": "first_name\nAnn\n"})
    assert (no_identifier.status, no_identifier["code"]) == (400, "invalid_import")

    for body, location in (
        ({"data_base64": "not base64!"}, "/data_base64"),
        ({"data": "email\nx@example.com\n", "data_base64": "eA=="}, ""),
        ({}, ""),
        ({"data": "email\n", "format": "xlsx"}, "/format"),
    ):
        refused = api.post("/v1/segments/fair/import", body)
        assert (refused.status, refused["code"]) == (400, "invalid_body"), body
        assert refused["issues"][0]["location"] == location
    assert api.queue("IngestQueue") == []


def test_only_imports_may_carry_bodies_over_256_kib(api: Api) -> None:
    assert api.post("/v1/segments", {"id": "fair", "name": "Fair", "kind": "static"}).status == 201
    rows = "".join(f"user-{n:03d},{'x' * 3000}\n" for n in range(100))  # about 300 KiB
    big = api.post("/v1/segments/fair/import", {"data": "user_id,note\n" + rows})
    assert big.status == 202, big.body
    assert big["people"] == 100
    assert len(api.queue("IngestQueue")) == 100

    too_big = api.post("/v1/segments/fair/import", {"data": "user_id\n" + "u\n" * (3 * 1024 * 1024)})
    assert (too_big.status, too_big["code"]) == (413, "body_too_large")
    elsewhere = api.post("/v1/segments", segment(description="x" * 1990, name="y" * 200, padding="z" * 300_000))
    assert (elsewhere.status, elsewhere["code"]) == (413, "body_too_large")
    deep = api.post("/v1/segments/fair/import", raw='{"data": ' + "[" * 5000 + "]" * 5000 + "}")
    assert (deep.status, deep["code"]) == (400, "too_deeply_nested")


# ====================================================================================== campaigns
def test_campaign_definitions_are_checked_against_the_world(api: Api) -> None:
    approved_template(api)
    unknown = api.post("/v1/campaigns", campaign(), role="marketer")
    assert (unknown.status, unknown["code"]) == (400, "invalid_campaign"), unknown.body
    assert unknown["issues"] == [{"location": "/audience/segments/0", "message": "no segment 'vip'"}]
    assert api.post("/v1/segments", segment()).status == 201

    past = api.post("/v1/campaigns", campaign(schedule={"type": "once", "at": "2020-01-01T10:00:00Z"}))
    assert (past.status, past["issues"][0]["location"]) == (400, "/schedule/at")
    template = api.post("/v1/campaigns", campaign(message={"channels": ["email"], "template": "nope"}))
    assert (template.status, template["issues"][0]["location"]) == (400, "/message/template")
    hourly = {"type": "recurring", "expression": "rate(5 minutes)"}
    too_often = api.post("/v1/campaigns", campaign(schedule=hourly))
    assert (too_often.status, too_often["issues"][0]["location"]) == (400, "/schedule/expression")
    zone = api.post(
        "/v1/campaigns", campaign(schedule={"type": "recurring", "expression": "rate(1 day)", "timezone": "Mars/Base"})
    )
    assert (zone.status, zone["issues"][0]["location"]) == (400, "/schedule/timezone")

    schema = api.post(
        "/v1/campaigns",
        campaign(message={"channels": ["webhook"], "template": "welcome-email"}, send_rate=0, holdout_percent=80),
    )
    assert (schema.status, schema["code"]) == (400, "invalid_body")
    assert {"/message/channels", "/send_rate", "/holdout_percent"} <= {i["location"] for i in schema["issues"]}

    created = api.post("/v1/campaigns", campaign())
    assert created.status == 201, created.body
    assert (created["status"], created["version"], created["message"]["vars"]) == ("draft", 1, {"code": "BF26"})
    duplicate = api.post("/v1/campaigns", campaign())
    assert (duplicate.status, duplicate["code"]) == (409, "conflict")
    assert api.get("/v1/campaigns", role="viewer")["campaigns"] == [created.body]
    assert api.get("/v1/campaigns", query={"status": "scheduled"})["campaigns"] == []
    bad_filter = api.get("/v1/campaigns", query={"status": "sleeping"})
    assert (bad_filter.status, bad_filter["code"]) == (400, "invalid_query")


def test_scheduling_a_one_time_campaign_creates_its_scheduler_schedule(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    at = whole_minute(30)
    assert api.post("/v1/campaigns", campaign(schedule={"type": "once", "at": iso(at)})).status == 201

    scheduled = api.post("/v1/campaigns/black-friday/schedule", role="marketer")
    assert scheduled.status == 200, scheduled.body
    assert (scheduled["campaign"]["status"], scheduled["campaign"]["version"]) == ("scheduled", 2)
    expected = f"at({at:%Y-%m-%dT%H:%M:%S})"
    shown = scheduled["schedule"]
    assert (shown["expression"], shown["timezone"], shown["one_time"]) == (expected, "UTC", True)
    assert shown["next"] == [iso(at)]

    stored = stored_schedule(api, "black-friday")
    assert stored is not None
    assert (stored["Name"], stored["ScheduleExpression"], stored["ScheduleExpressionTimezone"]) == (
        shown["name"],
        expected,
        "UTC",
    )
    assert stored["ActionAfterCompletion"] == "DELETE"
    assert stored["Target"]["Arn"] == api.stack.model.functions["StartCampaignFunction"].arn
    assert json.loads(stored["Target"]["Input"]) == {
        "campaignId": "black-friday",
        "scheduledTime": "<aws.scheduler.scheduled-time>",
    }

    again = api.post("/v1/campaigns/black-friday/schedule")  # a retry is harmless
    assert (again.status, again["campaign"]["version"]) == (200, 2)

    later = whole_minute(40)
    moved = api.put(
        "/v1/campaigns/black-friday",
        without_id(campaign(schedule={"type": "once", "at": iso(later)})),
        headers={"if-match": "2"},
    )
    assert (moved.status, moved["version"], moved["status"]) == (200, 3, "scheduled"), moved.body
    stored = stored_schedule(api, "black-friday")
    assert stored is not None
    assert stored["ScheduleExpression"] == f"at({later:%Y-%m-%dT%H:%M:%S})"
    stale = api.put("/v1/campaigns/black-friday", without_id(campaign()), headers={"if-match": "2"})
    assert (stale.status, stale["code"]) == (409, "version_mismatch")

    cancelled = api.post("/v1/campaigns/black-friday/cancel", role="marketer")
    assert cancelled.status == 200, cancelled.body
    assert (cancelled["campaign"]["status"], cancelled["schedule_deleted"]) == ("cancelled", True)
    assert stored_schedule(api, "black-friday") is None
    twice = api.post("/v1/campaigns/black-friday/cancel")
    assert (twice.status, twice["schedule_deleted"]) == (200, False)
    for refused in (
        api.post("/v1/campaigns/black-friday/schedule"),
        api.post("/v1/campaigns/black-friday/resume"),
        api.put("/v1/campaigns/black-friday", without_id(campaign())),
    ):
        assert (refused.status, refused["code"]) == (409, "invalid_state"), refused.body
        assert "cancelled" in refused["message"]


def test_recurring_and_local_time_campaigns_are_scheduled_as_scheduler_reads_them(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    weekly = {"type": "recurring", "expression": "cron(0 10 ? * MON *)", "timezone": "Europe/Paris"}
    assert api.post("/v1/campaigns", campaign("weekly", schedule=weekly)).status == 201
    scheduled = api.post("/v1/campaigns/weekly/schedule")
    assert scheduled.status == 200, scheduled.body
    shown = scheduled["schedule"]
    assert (shown["expression"], shown["timezone"], shown["one_time"]) == (
        "cron(0 10 ? * MON *)",
        "Europe/Paris",
        False,
    )
    firings = [parse_iso(moment) for moment in shown["next"]]
    assert len(firings) == 5
    paris = [moment.astimezone(ZoneInfo("Europe/Paris")) for moment in firings]
    assert {(m.weekday(), m.hour, m.minute) for m in paris} == {(0, 10, 0)}
    stored = stored_schedule(api, "weekly")
    assert stored is not None
    assert (stored["ScheduleExpression"], stored["ScheduleExpressionTimezone"]) == (
        "cron(0 10 ? * MON *)",
        "Europe/Paris",
    )
    assert stored["ActionAfterCompletion"] == "NONE"

    day = (datetime.now(UTC) + timedelta(days=20)).date()
    local = {"type": "local_time", "date": day.isoformat(), "time": "09:30"}
    assert api.post("/v1/campaigns", campaign("morning", schedule=local)).status == 201
    morning = api.post("/v1/campaigns/morning/schedule")
    assert morning.status == 200, morning.body
    first = first_fire_for_local_time(day, time(9, 30))
    assert morning["schedule"]["expression"] == f"at({first:%Y-%m-%dT%H:%M:%S})"
    assert morning["schedule"]["next"] == [iso(first)]
    stored = stored_schedule(api, "morning")
    assert stored is not None
    assert (stored["ScheduleExpression"], stored["ScheduleExpressionTimezone"]) == (
        f"at({first:%Y-%m-%dT%H:%M:%S})",
        "UTC",
    )


def test_state_changes_follow_the_campaign_lifecycle(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    assert api.post("/v1/campaigns", campaign()).status == 201
    for action in ("pause", "resume"):
        refused = api.post(f"/v1/campaigns/black-friday/{action}")
        assert (refused.status, refused["code"]) == (409, "invalid_state"), refused.body
        assert "draft" in refused["message"]

    assert api.post("/v1/campaigns/black-friday/schedule").status == 200
    paused = api.post("/v1/campaigns/black-friday/pause", role="marketer")
    assert (paused.status, paused["campaign"]["status"]) == (200, "paused"), paused.body
    edited = api.put("/v1/campaigns/black-friday", without_id(campaign(name="Black Friday (final)")))
    assert (edited.status, edited["status"], edited["name"]) == (200, "paused", "Black Friday (final)")
    assert api.post("/v1/campaigns/black-friday/schedule")["code"] == "invalid_state"

    # The one-time schedule fired (and deleted itself) while the campaign was paused.
    schedules(api).delete("black-friday")
    resumed = api.post("/v1/campaigns/black-friday/resume", role="marketer")
    assert resumed.status == 200, resumed.body
    assert (resumed["campaign"]["status"], resumed["requeued_parts"]) == ("scheduled", [])
    assert stored_schedule(api, "black-friday") is not None

    deleted = api.delete("/v1/campaigns/black-friday", role="marketer")
    assert deleted.status == 204
    assert stored_schedule(api, "black-friday") is None
    assert api.get("/v1/campaigns/black-friday").status == 404
    reused = api.post("/v1/campaigns", campaign())
    assert (reused.status, reused["code"]) == (409, "conflict")


def test_unknown_campaigns_are_404(api: Api) -> None:
    for answer in (
        api.get("/v1/campaigns/nope"),
        api.put("/v1/campaigns/nope", without_id(campaign())),
        api.delete("/v1/campaigns/nope"),
        api.post("/v1/campaigns/nope/schedule"),
        api.post("/v1/campaigns/nope/pause"),
        api.post("/v1/campaigns/nope/resume"),
        api.post("/v1/campaigns/nope/cancel"),
        api.get("/v1/campaigns/nope/stats"),
    ):
        assert (answer.status, answer["code"]) == (404, "not_found"), answer.body


def test_a_paused_run_resumes_its_parts_and_counts_once(api: Api) -> None:
    approved_template(api)
    vip_with_ann(api)
    at = whole_minute(30)
    assert api.post("/v1/campaigns", campaign(schedule={"type": "once", "at": iso(at)})).status == 201
    assert api.post("/v1/campaigns/black-friday/schedule").status == 200
    stored = stored_schedule(api, "black-friday")
    assert stored is not None

    # Scheduler fires: the runner gets the schedule's input with the occurrence's time.
    fired = json.loads(stored["Target"]["Input"].replace("<aws.scheduler.scheduled-time>", iso(at)))
    started = fire(api, fired)
    assert api.get("/v1/campaigns/black-friday")["status"] == "running"
    parts = api.queue("CampaignQueue")
    assert len(parts) == started.parts_queued > 1

    paused = api.post("/v1/campaigns/black-friday/pause")
    assert paused["campaign"]["status"] == "paused"
    worker = api.stack.load("SendCampaignFunction")
    assert worker.lambda_handler(sqs_event(parts), Context()) == {"batchItemFailures": []}
    assert api.queue("DeliveryQueue") == []  # every worker stopped before its first page

    resumed = api.post("/v1/campaigns/black-friday/resume")
    assert resumed.status == 200, resumed.body
    assert resumed["campaign"]["status"] == "running"
    assert sorted(resumed["requeued_parts"]) == list(range(len(parts)))
    requeued = api.queue("CampaignQueue")
    assert sorted(json.loads(m["Body"])["part"] for m in requeued) == list(range(len(parts)))
    assert {json.loads(m["Body"])["runId"] for m in requeued} == {started.run_id}

    assert worker.lambda_handler(sqs_event(requeued), Context()) == {"batchItemFailures": []}
    sent = [json.loads(m["Body"]) for m in api.queue("DeliveryQueue")]
    assert [(r["key"], r["vars"]) for r in sent] == [
        (f"campaign:black-friday:{started.run_id}:{api.ann_id()}", {"code": "BF26"})
    ]
    Counters(api.data_table, client=api.stack.clients.dynamodb()).add(
        "campaign", "black-friday", started.run_id, sent[0]["key"], {"sent": 1, "opened": 1}
    )

    stats = api.get("/v1/campaigns/black-friday/stats", role="viewer")
    assert stats.status == 200, stats.body
    (run,) = stats["runs"]
    assert (run["run_id"], run["parts"], run["parts_done"]) == (started.run_id, len(parts), len(parts))
    assert run["part_states"] == {"done": len(parts)}
    assert (run["stats"]["targeted"], run["stats"]["queued"], run["stats"]["scanned"]) == (1, 1, 1)
    assert (run["stats"]["sent"], run["stats"]["opened"], run["stats"]["held_out"]) == (1, 1, 0)
    assert stats["totals"] == run["stats"]
    assert stats["status"] == api.get("/v1/campaigns/black-friday")["status"]


def test_cancelling_a_paused_run_stops_its_waiting_parts(api: Api) -> None:
    approved_template(api)
    vip_with_ann(api)
    at = whole_minute(30)
    assert api.post("/v1/campaigns", campaign(schedule={"type": "once", "at": iso(at)})).status == 201
    assert api.post("/v1/campaigns/black-friday/schedule").status == 200
    started = fire(api, {"campaignId": "black-friday", "scheduledTime": iso(at)})
    parts = api.queue("CampaignQueue")
    assert api.post("/v1/campaigns/black-friday/pause").status == 200
    api.stack.load("SendCampaignFunction").lambda_handler(sqs_event(parts[:1]), Context())  # one part paused

    cancelled = api.post("/v1/campaigns/black-friday/cancel")
    assert cancelled.status == 200, cancelled.body
    assert cancelled["cancelled_parts"] == len(parts)  # one paused, the rest never taken up
    stats = api.get("/v1/campaigns/black-friday/stats")
    assert stats["status"] == "cancelled"
    assert stats["runs"][0]["part_states"] == {"cancelled": len(parts)}
    assert stats["runs"][0]["run_id"] == started.run_id


# ====================================================================================== journeys
def test_journey_lifecycle_create_read_replace_patch_versions_delete(api: Api) -> None:
    approved_template(api)
    created = api.post("/v1/journeys", journey(), role="marketer")
    assert created.status == 201, created.body
    assert (created["id"], created["version"], created["enabled"]) == ("onboarding", 1, True)
    again = api.post("/v1/journeys", journey())
    assert (again.status, again["code"]) == (409, "conflict")

    listed = api.get("/v1/journeys", role="viewer")["journeys"]
    assert listed == [
        {
            "id": "onboarding",
            "name": "Onboarding",
            "description": "",
            "enabled": True,
            "entry": {"type": "event", "event": "Signed Up", "where": None},
            "steps": 4,
            "version": 1,
            "updated_at": created["updated_at"],
            "updated_by": created["updated_by"],
        }
    ]
    assert api.get("/v1/journeys/onboarding", role="viewer").body == created.body

    renamed = api.put("/v1/journeys/onboarding", without_id(journey(name="Welcome")), headers={"if-match": "1"})
    assert (renamed.status, renamed["version"], renamed["name"]) == (200, 2, "Welcome"), renamed.body
    assert renamed["created_at"] == created["created_at"]
    stale = api.patch("/v1/journeys/onboarding", {"enabled": False}, headers={"if-match": "1"})
    assert (stale.status, stale["code"]) == (409, "version_mismatch")
    disabled = api.patch("/v1/journeys/onboarding", {"enabled": False}, headers={"if-match": 'W/"2"'})
    assert (disabled.status, disabled["version"], disabled["enabled"]) == (200, 3, False)
    assert disabled["name"] == "Welcome"
    for wrong in ({}, {"enabled": "no"}, {"enabled": True, "name": "x"}):
        refused = api.patch("/v1/journeys/onboarding", wrong)
        assert (refused.status, refused["code"]) == (400, "invalid_body"), wrong

    first = api.get("/v1/journeys/onboarding/versions", query={"limit": "2"}, role="viewer")
    assert first.status == 200, first.body
    assert ([v["version"] for v in first["versions"]], first["cursor"], first["deleted"]) == ([3, 2], "1", False)
    rest = api.get("/v1/journeys/onboarding/versions", query={"limit": "2", "cursor": first["cursor"]})
    assert ([v["version"] for v in rest["versions"]], rest["cursor"]) == ([1], None)
    for query, code in (({"cursor": "9"}, "invalid_cursor"), ({"limit": "21"}, "invalid_limit")):
        bad = api.get("/v1/journeys/onboarding/versions", query=query)
        assert (bad.status, bad["code"]) == (400, code)

    assert api.delete("/v1/journeys/onboarding", role="marketer").status == 204
    assert api.get("/v1/journeys/onboarding").status == 404
    history = api.get("/v1/journeys/onboarding/versions")
    assert (history["deleted"], len(history["versions"])) == (True, 3)
    reused = api.post("/v1/journeys", journey())
    assert (reused.status, reused["code"]) == (409, "conflict")


def test_journey_definitions_are_refused_with_every_problem_located(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    broken = journey(entry={"type": "segment_entered", "segment": "gold"})
    broken["steps"]["hello"] = {
        "type": "send",
        "channels": ["email", "sms"],
        "template": {"email": "welcome-email", "sms": "nope"},
        "next": "pauze",
    }
    broken["steps"]["check"]["condition"] = {"all": [VIP, {"path": "segments", "op": "contains", "value": "silver"}]}
    refused = api.post("/v1/journeys", broken, role="marketer")
    assert (refused.status, refused["code"]) == (400, "invalid_journey"), refused.body
    issues = {(i["location"], i["message"].split(";")[0]) for i in refused["issues"]}
    assert {
        ("/steps/hello/next", "no step 'pauze'"),
        ("/entry/segment", "no segment 'gold'"),
        ("/steps/check/condition/all/1", "no segment 'silver'"),
        ("/steps/hello/template/sms", "no template 'nope'"),
    } <= issues, refused["issues"]
    assert api.get("/v1/journeys/onboarding").status == 404

    checked = api.post("/v1/journeys/validate", broken, role="marketer")
    assert (checked.status, checked["valid"]) == (200, False)
    assert checked["issues"] == refused["issues"]
    assert api.post("/v1/journeys/validate", without_id(journey())).body == {"valid": True, "issues": []}
    schema = api.post("/v1/journeys/validate", journey(start="Bad Id", steps={}))
    assert schema["valid"] is False
    assert {"/start", "/steps"} <= {i["location"] for i in schema["issues"]}
    created = api.post("/v1/journeys", journey(steps={"only": {"type": "wait", "duration": "1s", "next": "only"}}))
    assert (created.status, created["code"]) == (400, "invalid_body")
    assert created["issues"][0]["location"] == "/steps/only/duration"

    assert api.post("/v1/journeys", journey()).status == 201
    bad_edit = api.put("/v1/journeys/onboarding", without_id(journey(start="nowhere")))
    assert (bad_edit.status, bad_edit["code"]) == (400, "invalid_journey")
    assert bad_edit["issues"][0]["location"] == "/start"
    assert api.get("/v1/journeys/onboarding")["version"] == 1


def test_hostile_journey_definitions_are_refused(api: Api) -> None:
    nested: dict[str, Any] = VIP
    for _ in range(30):
        nested = {"not": nested}
    deep = journey(entry_conditions=nested)
    refused = api.post("/v1/journeys", deep)
    assert (refused.status, refused["code"]) == (400, "invalid_journey"), refused.body
    assert refused["issues"][0]["location"].startswith("/entry_conditions")
    too_deep = api.post("/v1/journeys", raw='{"id": "x", "steps": ' + "[" * 3000 + "]" * 3000 + "}")
    assert (too_deep.status, too_deep["code"]) == (400, "too_deeply_nested")
    many = {f"s{n}": {"type": "exit"} for n in range(101)}
    wide = api.post("/v1/journeys", journey(start="s0", steps=many))
    assert (wide.status, wide["code"]) == (400, "invalid_body")
    assert wide["issues"][0]["location"] == "/steps"


def test_journey_stats_and_a_persons_journeys(api: Api) -> None:
    approved_template(api)
    assert api.post("/v1/journeys", journey()).status == 201
    counters = Counters(api.data_table, client=api.stack.clients.dynamodb())
    for person, counts in (
        ("p1", {"entered": 1, "step:hello": 1, "step:pause": 1}),
        ("p2", {"entered": 1, "step:hello": 1, "step:pause": 1, "step:check": 1, "completed": 1}),
        ("p3", {"capped": 1}),
    ):
        counters.add("journey", "onboarding", "all", person, counts)
    stats = api.get("/v1/journeys/onboarding/stats", role="viewer")
    assert stats.status == 200, stats.body
    assert (stats["entered"], stats["completed"], stats["exited"], stats["capped"], stats["in_progress"]) == (
        2,
        1,
        0,
        1,
        1,
    )
    assert stats["steps"] == {"hello": 2, "pause": 2, "check": 1, "done": 0}

    ann = api.ann_id()
    now = iso(datetime.now(UTC))
    JourneyInstances(api.data_table, client=api.stack.clients.dynamodb()).save(
        {
            "journey_id": "onboarding",
            "journey_version": 1,
            "profile_id": ann,
            "run": 1,
            "status": "waiting",
            "step": "pause",
            "seq": 2,
            "entered_at": now,
            "updated_at": now,
            "wait": {"kind": "timer", "step": "pause", "until": now, "timer_id": "t1", "event": None},
            "path": [["hello", now, "sent"], ["pause", now, "waiting"]],
            "outbox": {"messages": [], "events": [], "timers": []},
            "last_event": {"event": "Signed Up", "properties": {"email": "ann@example.com"}},
        },
        None,
    )
    mine = api.get(f"/v1/profiles/{ANN}/journeys", role="viewer")
    assert mine.status == 200, mine.body
    assert mine["profileId"] == ann
    (instance,) = mine["journeys"]
    assert (instance["journey_id"], instance["status"], instance["step"], instance["run"]) == (
        "onboarding",
        "waiting",
        "pause",
        1,
    )
    assert instance["path"][-1] == ["pause", now, "waiting"]
    assert instance["wait"]["timer_id"] == "t1"
    assert not {"outbox", "rev", "last_event"} & set(instance)

    nobody = api.get("/v1/profiles/user_id:nobody/journeys")
    assert (nobody.status, nobody["code"]) == (404, "not_found")
    for answer in (api.get("/v1/journeys/nope/stats"), api.get("/v1/journeys/nope/versions")):
        assert (answer.status, answer["code"]) == (404, "not_found")


# ====================================================================================== schedule names
def test_campaigns_with_long_ids_get_schedules_of_their_own() -> None:
    # Given two campaign ids (valid: up to 64 characters) that differ only after their 46th
    first, second = "spring-sale-" + "a" * 40 + "-one", "spring-sale-" + "a" * 40 + "-two"
    names = CampaignSchedules(prefix="midstage", target_arn="", role_arn="")
    # Then each campaign's schedule has its own name (else scheduling one replaces the other's)
    assert names.name_for(first) != names.name_for(second)


def test_the_campaign_runner_function_answers_a_schedule_firing(api: Api) -> None:
    # Given a scheduled campaign
    approved_template(api)
    assert api.post("/v1/segments", segment()).status == 201
    at = whole_minute(30)
    assert api.post("/v1/campaigns", campaign(schedule={"type": "once", "at": iso(at)})).status == 201
    assert api.post("/v1/campaigns/black-friday/schedule").status == 200
    # When Scheduler invokes the runner function with the schedule's input
    fired = {"campaignId": "black-friday", "scheduledTime": iso(at)}
    answer = api.stack.load("StartCampaignFunction").lambda_handler(fired, Context())
    # Then it says which run it started
    assert answer["created"] is True
