"""A Pinpoint event stream read as a replay plan: each documented record kind becomes what
docs/pinpoint-migration.md ("History") says, the people are those the endpoint import made,
Firehose's joined records are read, and hostile input is counted, never fatal.

Records: tests/support/pinpoint_stream.py (the developer guide's event stream pages)."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from midstage.cli import main
from midstage.logic.imports import parse_pinpoint_endpoints
from midstage.logic.imports.pinpoint_events import (
    MAX_RECORD_BYTES,
    Plan,
    file_text,
    plan_batches,
    plan_record,
    plan_stream,
    read_stream,
)
from midstage.logic.internal_events import IMPORTED_PREFIX, SOURCE_ID, person_key
from midstage.pinpoint_command import S3File
from midstage.pinpoint_history_command import _local_pieces, replay_files
from tests.support import pinpoint_stream as fx


def _one(record: dict[str, Any]) -> tuple[dict[str, Any], Plan]:
    plan = plan_record(record)
    assert len(plan.events) == 1
    return plan.events[0], plan


# ------------------------------------------------------------------------------ email
def test_the_documented_email_send_is_an_email_sent_event_of_the_endpoints_person() -> None:
    event, plan = _one(fx.EMAIL_SEND)
    assert event["event"] == "Email Sent"
    assert event["anonymousId"] == f"pinpoint:{fx.RECIPIENT_ENDPOINT}" and event["userId"] is None
    assert event["timestamp"] == "2019-08-01T00:17:01.380Z"
    assert event["sourceId"] == SOURCE_ID and event["messageId"].startswith(IMPORTED_PREFIX)
    assert event["context"]["traits"] == {"email": fx.RECIPIENT}
    assert event["properties"]["provider_message_id"].startswith("0200000073rnbmd1")
    assert plan.suppressions == [] and plan.kinds == {"_email.send": 1}


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (fx.EMAIL_DELIVERED, "Email Delivered"),
        (fx.EMAIL_OPEN, "Email Opened"),
        (fx.EMAIL_CLICK, "Email Link Clicked"),
        (fx.EMAIL_SOFTBOUNCE, "Email Bounced"),
    ],
)
def test_email_outcomes_take_the_names_of_midstages_own_feedback(record: dict[str, Any], name: str) -> None:
    event, plan = _one(record)
    assert event["event"] == name
    assert event["properties"]["campaign_id"] == "52dc44b35c4742c98c5935269example"
    assert plan.suppressions == []


def test_a_click_keeps_its_link_and_a_soft_bounce_says_it_was_not_permanent() -> None:
    assert _one(fx.EMAIL_CLICK)[0]["properties"]["url"] == "https://example.com/offer"
    assert _one(fx.EMAIL_SOFTBOUNCE)[0]["properties"]["permanent"] is False


def test_a_hard_bounce_and_a_complaint_suppress_the_address_as_ses_feedback_does() -> None:
    bounce, bounced = _one(fx.EMAIL_HARDBOUNCE)
    complaint, complained = _one(fx.EMAIL_COMPLAINT)
    assert (bounce["event"], bounce["properties"]["permanent"]) == ("Email Bounced", True)
    assert complaint["event"] == "Email Marked as Spam"
    [hard] = bounced.suppressions
    [spam] = complained.suppressions
    assert (hard.channel, hard.address, hard.reason) == ("email", fx.BOUNCED, "hard_bounce")
    assert hard.at == bounce["timestamp"]
    assert (spam.address, spam.reason) == (fx.COMPLAINED, "complaint")
    assert "ev-bounce-1" in hard.detail


def test_an_email_unsubscribe_is_a_refusal_of_email_marketing_at_its_time_from_pinpoint() -> None:
    event, plan = _one(fx.EMAIL_UNSUBSCRIBE)
    assert event["event"] == "Unsubscribed"
    chosen = {k: event["properties"][k] for k in ("channel", "purpose", "source")}
    assert chosen == {"channel": "email", "purpose": "marketing", "source": "pinpoint"}
    assert event["timestamp"] == "2019-08-01T00:40:00.000Z" and plan.suppressions == []


# ------------------------------------------------------------------------------ SMS
def test_the_documented_sms_success_is_found_by_its_number_not_by_the_account_id() -> None:
    event, _ = _one(fx.SMS_SUCCESS)
    assert event["event"] == "SMS Delivered"
    assert event["anonymousId"].startswith("import-phone-") and fx.ACCOUNT not in event["anonymousId"]
    assert event["context"]["traits"] == {"phone": fx.SMS_PHONE}
    assert event["properties"]["record_status"] == "DELIVERED"


def test_an_sms_stop_is_a_refusal_of_sms_marketing() -> None:
    event, plan = _one(fx.SMS_OPTOUT)
    assert (event["event"], event["properties"]["channel"]) == ("Unsubscribed", "sms")
    assert event["properties"]["source"] == "pinpoint" and plan.suppressions == []


# ------------------------------------------------------------------------------ app
def test_the_documented_session_stop_is_a_session_ended_with_its_length() -> None:
    event, _ = _one(fx.SESSION_STOP)
    assert event["event"] == "Session Ended"
    assert event["anonymousId"] == f"pinpoint:{fx.APP_ENDPOINT}"
    assert event["properties"]["session_seconds"] == 599.976
    assert event["properties"]["platform"] == "android"


def test_a_custom_event_keeps_its_name_attributes_and_metrics_under_its_user() -> None:
    event, plan = _one(fx.PLAYED_TRACK)
    assert (event["event"], event["userId"]) == ("PlayedTrack", fx.LISTENER)
    assert event["properties"]["TrackName"] == "Kiss You" and event["properties"]["PlayTime"] == 60.5
    assert plan.kinds == {"custom": 1}


def test_the_documented_campaign_send_is_recorded_for_its_endpoint() -> None:
    event, _ = _one(fx.CAMPAIGN_SEND)
    assert (event["event"], event["anonymousId"]) == ("Campaign Message Sent", f"pinpoint:{fx.CAMPAIGN_ENDPOINT}")
    assert (event["properties"]["campaign_send_status"], event["properties"]["delivery_type"]) == ("SUCCESS", "GCM")


def test_a_push_tapped_is_push_notification_tapped_of_the_user_its_endpoint_string_names() -> None:
    event, plan = _one(fx.PUSH_OPENED)
    assert (event["event"], event["userId"]) == ("Push Notification Tapped", fx.LISTENER)
    assert plan.kinds == {"_campaign.opened_notification": 1}
    broken = {**fx.PUSH_OPENED, "client_context": {"custom": {"endpoint": "{not json"}}}
    assert _one(broken)[0]["anonymousId"] == "pinpoint:endpoint-of-listener"


def test_a_custom_event_named_like_a_static_segment_change_is_refused() -> None:
    # Replayed as the platform's own, it would put the person in a static segment
    forged = {**fx.PLAYED_TRACK, "event_type": "Segment Added", "attributes": {"segment": "vip"}}
    plan = plan_stream(json.dumps(forged))
    assert plan.events == [] and "reserves" in plan.problems[0][1]


def test_an_undocumented_reserved_event_is_only_counted() -> None:
    purchase = plan_record(fx.PURCHASE)
    assert purchase.events == [] and purchase.kinds == {"unknown": 1}


# ------------------------------------------------------------------------------ who and ids
def test_a_record_finds_the_person_the_endpoint_import_made_for_its_endpoint_or_user() -> None:
    # Given the endpoint export's view of the same two people
    lines = [
        {"Id": fx.RECIPIENT_ENDPOINT, "ChannelType": "EMAIL", "Address": fx.RECIPIENT},
        {"Id": "endpoint-of-listener", "ChannelType": "GCM", "Address": "token-1", "User": {"UserId": fx.LISTENER}},
    ]
    report = parse_pinpoint_endpoints(
        "\n".join(json.dumps(x) for x in lines), segment_id="s", import_id="i", now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    imported = {person_key(e) for e in report.events}
    # When their history records are planned
    replayed = {person_key(plan_record(r).events[0]) for r in (fx.EMAIL_DELIVERED, fx.PLAYED_TRACK)}
    # Then they name the same people
    assert replayed == imported


def test_the_same_record_makes_the_same_ids_and_another_record_other_ones() -> None:
    assert plan_record(fx.EMAIL_SEND).events == plan_record(copy.deepcopy(fx.EMAIL_SEND)).events
    ids = {plan_record(r).events[0]["messageId"] for r in [*fx.EMAIL_RECORDS, fx.SMS_SUCCESS, fx.SMS_OPTOUT]}
    assert len(ids) == len(fx.EMAIL_RECORDS) + 2


# ------------------------------------------------------------------------------ the stream
def test_records_joined_without_a_delimiter_and_json_lines_are_all_read() -> None:
    joined = plan_stream(fx.joined(fx.OTHER_RECORDS).decode())
    lines = plan_stream(fx.json_lines(fx.EMAIL_RECORDS).decode())
    assert sum(joined.kinds.values()) == len(fx.OTHER_RECORDS) and joined.problems == []
    assert sum(lines.kinds.values()) == len(fx.EMAIL_RECORDS) and lines.problems == []
    assert len(joined.events) == len(fx.OTHER_RECORDS) - 1  # the purchase is only counted


def test_a_bad_line_is_reported_by_its_line_and_the_records_after_it_are_read() -> None:
    text = "\n".join(
        [
            json.dumps(fx.EMAIL_SEND),
            '{"event_type": "_email.open", "event_timestamp": 15',  # cut short
            "not json at all",
            json.dumps(fx.EMAIL_OPEN) + json.dumps(fx.EMAIL_CLICK),
            "[1, 2]",
            json.dumps({"event_type": "_email.open"}),
            json.dumps({**fx.SESSION_STOP, "event_type": "_something.new"}),
        ]
    )
    plan = plan_stream(text)
    assert [line for line, _ in plan.problems] == [2, 3, 5, 6]
    assert "not valid JSON" in plan.problems[0][1] and "not a JSON object" in plan.problems[2][1]
    assert "event_timestamp" in plan.problems[3][1]
    assert [e["event"] for e in plan.events] == ["Email Sent", "Email Opened", "Email Link Clicked"]
    assert plan.kinds["unknown"] == 1 and plan.kinds["rejected"] == 4


def test_a_garbled_join_resumes_at_the_next_record() -> None:
    text = json.dumps(fx.EMAIL_SEND) + '{"event_type": oops}' + json.dumps(fx.EMAIL_OPEN)
    plan = plan_stream(text)
    assert [e["event"] for e in plan.events] == ["Email Sent", "Email Opened"]
    assert [line for line, _ in plan.problems] == [1]


def test_a_huge_record_is_refused_alone() -> None:
    huge = {**fx.PLAYED_TRACK, "attributes": {"blob": "x" * (MAX_RECORD_BYTES + 10)}}
    plan = plan_stream(json.dumps(huge) + "\n" + json.dumps(fx.EMAIL_SEND))
    assert plan.problems == [(1, f"a record over {MAX_RECORD_BYTES:,} characters")]
    assert len(plan.events) == 1


def test_hostile_values_are_problems_not_crashes() -> None:
    for record in (
        {**fx.EMAIL_SEND, "event_type": "\ud800"},
        {**fx.EMAIL_SEND, "event_timestamp": True, "arrival_timestamp": "1564618621380"},
        {**fx.EMAIL_SEND, "client": "x", "facets": []},
        {"event_type": "_email.open", "event_timestamp": 1, "facets": {"email_channel": {"mail_event": []}}},
        {**fx.SMS_SUCCESS, "attributes": {"destination_phone_number": "nope"}},
    ):
        plan = plan_stream(json.dumps(record))
        assert plan.events == [] and len(plan.problems) == 1
    deep = "[" * 100_000 + "]" * 100_000
    assert [why[:14] for _, why in plan_stream(deep).problems] == ["not valid JSON"]
    assert list(read_stream("  \n\n")) == []


# ------------------------------------------------------------------------------ files and the command
class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, groups: Any) -> int:
        for events in groups.values():
            self.events += events
        return len(groups)


class Suppressed:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def suppress(self, channel: str, address: str, reason: str, scope: str, now: datetime, detail: str = "") -> None:
        self.calls.append((channel, address, reason, scope, now))


def test_a_truncated_gzip_keeps_the_records_before_the_damage(tmp_path: Path) -> None:
    whole = gzip.compress(fx.json_lines(fx.EMAIL_RECORDS * 40))
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    text, damage = file_text(_local_pieces(path))
    assert "truncated" in damage and 0 < text.count("event_type") < len(fx.EMAIL_RECORDS) * 40
    sink, echoed = Sink(), []
    _, unread = replay_files([path], sink, None, echo=echoed.append)
    assert unread == 0 and sink.events and any("truncated" in line for line in echoed)


def test_a_file_that_is_not_gzip_inside_is_reported_and_the_next_goes_on(tmp_path: Path) -> None:
    bad, good = tmp_path / "1.gz", tmp_path / "2.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    good.write_bytes(gzip.compress(fx.json_lines(fx.EMAIL_RECORDS)))
    sink, suppressed = Sink(), Suppressed()
    _, unread = replay_files([bad, good], sink, suppressed, echo=lambda _: None)
    assert unread == 1 and len(sink.events) == len(fx.EMAIL_RECORDS)
    assert sorted(c[1:3] for c in suppressed.calls) == [(fx.BOUNCED, "hard_bounce"), (fx.COMPLAINED, "complaint")]


def test_the_command_counts_per_kind_and_reports_problems_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, data in fx.firehose_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "bad.json").write_text(json.dumps(fx.EMAIL_SEND) + "\n{broken\n", encoding="utf-8")
    code = main(["pinpoint-history", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{tmp_path / 'bad.json'}:2: not valid JSON" in out
    assert out.strip().splitlines()[-1] == (
        "3 file(s), 0 unreadable, read (dry run, nothing written): _SMS.OPTOUT 1, _SMS.SUCCESS 1, "
        "_campaign.opened_notification 1, _campaign.send 1, _email.click 1, _email.complaint 1, "
        "_email.delivered 1, _email.hardbounce 1, "
        "_email.open 1, _email.send 2, _email.softbounce 1, _email.unsubscribe 1, _session.stop 1, custom 1, "
        "rejected 1, unknown 1; 1 problem(s)"
    )


def test_the_command_without_a_queue_or_files_says_so_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pinpoint-history", str(tmp_path / "nothing"), "--dry-run"]) == 2
    assert "no file or folder" in capsys.readouterr().err
    assert main(["pinpoint-history", str(tmp_path), "--queue-url", "", "--table", ""]) == 2
    assert "--queue-url and --table" in capsys.readouterr().err


def test_s3_files_are_named_by_their_address() -> None:
    assert str(S3File("bucket", "2019/08/01/00/x.gz")) == "s3://bucket/2019/08/01/00/x.gz"


def test_a_file_is_planned_in_parts_that_add_up_to_the_whole() -> None:
    text = (fx.json_lines(fx.EMAIL_RECORDS) + b"\n{bad\n" + fx.joined(fx.OTHER_RECORDS)).decode()
    parts = list(plan_batches(text, 4))
    whole = plan_stream(text)
    assert [sum(p.kinds.values()) for p in parts] == [4, 4, 4, 4]
    assert [e for p in parts for e in p.events] == whole.events
    assert [x for p in parts for x in p.problems] == whole.problems == [(9, whole.problems[0][1])]


def test_a_file_past_the_size_limit_is_unreadable_gzip_d_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from midstage.logic.imports import pinpoint_events

    monkeypatch.setattr(pinpoint_events, "MAX_FILE_BYTES", 1000)
    data = fx.json_lines(fx.EMAIL_RECORDS)
    for pieces in ([data[:500], data[500:]], [gzip.compress(data)]):
        with pytest.raises(pinpoint_events.Unreadable, match="over 1,000 bytes"):
            file_text(pieces)
    assert file_text([data[:900]]) == (data[:900].decode(), "")


def test_a_table_that_cannot_be_written_stops_the_command_with_exit_code_1_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    from midstage.adapters import aws

    environment = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    (tmp_path / "1.json").write_text(json.dumps(fx.EMAIL_HARDBOUNCE), encoding="utf-8")
    with mock_aws():
        aws._client.cache_clear()
        queue = boto3.client("sqs").create_queue(QueueName="ingest")["QueueUrl"]
        # Given a queue, and a table name that names no table
        code = main(["pinpoint-history", str(tmp_path), "--queue-url", queue, "--table", "wrong"])
        aws._client.cache_clear()
    # Then the command stops, says why, and says running it again is safe
    assert code == 1
    err = capsys.readouterr().err
    assert "stopped: ResourceNotFoundException" in err and "again is safe" in err and "Traceback" not in err
