"""The archive without the API: `report <name>` answers as services.analytics does on the same
archive (a directory or S3 in moto), and `replay events` puts exactly the archived events on the
ingest queue (moto's SQS), in time order, as hand-off messages the profile updater parses and
applies; malformed rows and unreadable files are skipped and counted; a dry run sends nothing.
Last, the whole road: the scripted month replayed into a deployed stack's queue and applied by
the real profile updater rebuilds each person's profile, and a second replay changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from midstage import cli
from midstage.adapters import aws, parquet
from midstage.adapters.archive_engines import LocalArchive, S3Archive
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import fixed
from midstage.logic.analytics import reports
from midstage.logic.archive import records
from midstage.models.archive import EventRecord
from midstage.models.messages import ProfileEvents, parse_body
from midstage.services import analytics
from tests import analytics_fixture
from tests.integration.conftest import Stack, apply_ingest_queue

NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
MARCH = {"start": "2026-03-01", "end": "2026-03-31"}
STEPS = [{"event": "Product Viewed"}, {"event": "Product Added"}, {"event": "Order Completed"}]
FUNNEL = {**MARCH, "steps": STEPS}


def _fixture_events() -> list[EventRecord]:
    return [r for r in analytics_fixture.build() if isinstance(r, EventRecord)]


def _in_time_order(events: list[EventRecord]) -> list[str]:
    return [r.message_id for r in sorted(events, key=lambda r: (r.occurred_at, r.record_id))]


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[LocalArchive]:
    store = LocalArchive(tmp_path / "archive", threads=1)
    store.write(analytics_fixture.build(), "fixture")
    yield store
    store.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("INGEST_QUEUE_URL", raising=False)
    with mock_aws():
        aws._client.cache_clear()  # the hand-off's cached client must be one made inside the mock
        yield
        aws._client.cache_clear()


def _spec(tmp_path: Path, body: dict[str, Any], name: str = "spec.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(body), encoding="utf-8")
    return str(path)


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _as_json(answer: analytics.Answer) -> dict[str, Any]:
    return json.loads(json.dumps(answer.to_body(), default=str))


# ------------------------------------------------------------------ report
def test_report_funnel_prints_what_the_analytics_service_answers(
    archive: LocalArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the scripted month archived in a directory and a funnel's body
    spec = _spec(tmp_path, FUNNEL)
    # When the command runs it
    code, out, _ = _main(
        ["report", "funnel", "--spec", spec, "--archive", str(archive.root), "--now", "2026-04-01T08:00:00Z"], capsys
    )
    # Then it prints the service's answer to the same spec, to the byte count
    assert code == 0
    expected = _as_json(analytics.report(reports.FunnelSpec(**FUNNEL), archive, NOW))
    assert json.loads(out) == expected
    people = [s["people"] for s in expected["summary"]["breakdowns"]["(all)"]]
    assert people == [5, 3, 2]  # the ordered funnel test_reports.py works out by hand


def test_report_attribution_runs_the_models_asked_for(
    archive: LocalArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, {**MARCH, "report": "attribution"})
    code, out, _ = _main(
        [
            "report",
            "attribution",
            "--spec",
            spec,
            "--archive",
            str(archive.root),
            "--now",
            "2026-04-01T08:00:00Z",
            "--models",
            "first_touch,markov,shapley",
        ],
        capsys,
    )
    assert code == 0
    expected = analytics.attribute(
        reports.PathsSpec(**MARCH), archive, NOW, models=("first_touch", "markov", "shapley")
    )
    answer = json.loads(out)
    assert answer == _as_json(expected)
    assert sorted(answer["summary"]["models"]) == ["first_touch", "markov", "shapley"]


@pytest.mark.parametrize(
    ("body", "extra", "said"),
    [
        ({**MARCH, "steps": [{"event": "Only one"}]}, [], "steps: List should have at least 2 items"),
        ({**FUNNEL, "report": "trends"}, [], "is a 'trends' report, not 'funnel'"),
        ({**FUNNEL, "end": "2026-02-01"}, [], "end is before start"),
        (FUNNEL, ["--now", "yesterday"], "--now 'yesterday' is not an ISO 8601 time"),
        (FUNNEL, ["--now", "2026-04-01T08:00:00"], "needs a time zone offset"),
    ],
)
def test_report_refuses_a_bad_spec_with_exit_code_2_and_says_why(
    archive: LocalArchive,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: dict[str, Any],
    extra: list[str],
    said: str,
) -> None:
    code, out, err = _main(
        ["report", "funnel", "--spec", _spec(tmp_path, body), "--archive", str(archive.root), *extra], capsys
    )
    assert (code, out) == (2, "")
    assert said in err and err.startswith("report funnel: ")


def test_report_refuses_a_missing_archive_or_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _main(["report", "trends", "--spec", _spec(tmp_path, MARCH), "--archive", "/nowhere"], capsys)
    assert code == 2 and "no such directory" in err
    code, _, err = _main(
        ["report", "trends", "--spec", str(tmp_path / "absent.json"), "--archive", str(tmp_path)], capsys
    )
    assert code == 2 and "absent.json" in err
    code, _, err = _main(
        ["report", "attribution", "--spec", _spec(tmp_path, MARCH), "--archive", str(tmp_path), "--models", "x"],
        capsys,
    )
    assert code == 2 and "--models: x" in err


def test_report_over_an_s3_archive_answers_as_the_directory_does(
    aws_env: None, archive: LocalArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the same month archived in a bucket
    boto3.client("s3").create_bucket(Bucket="midstage-archive")
    S3Archive("midstage-archive", "archive", tmp_path / "unused", client=boto3.client("s3")).write(
        analytics_fixture.build(), "fixture"
    )
    trends = {**MARCH, "events": ["Order Completed"], "unit": "week"}
    # When the command reads it through its own cache
    code, out, _ = _main(
        [
            "report",
            "trends",
            "--spec",
            _spec(tmp_path, trends),
            "--archive",
            "s3://midstage-archive/archive",
            "--cache",
            str(tmp_path / "cache"),
            "--now",
            "2026-04-01T08:00:00Z",
        ],
        capsys,
    )
    # Then the answer is the directory's, and the partitions it read were copied
    assert code == 0
    assert json.loads(out) == _as_json(analytics.report(reports.TrendsSpec(**trends), archive, NOW))
    # (under the cache's folder for that bucket and prefix)
    copied = tmp_path / "cache" / "midstage-archive__archive" / "kind=event" / "dt=2026-03-04" / "fixture.parquet"
    assert copied.is_file()


# ------------------------------------------------------------------ replay events
def _queue() -> str:
    return boto3.client("sqs").create_queue(QueueName="ingest")["QueueUrl"]


def _received(url: str) -> list[tuple[ProfileEvents, dict[str, Any]]]:
    """Every message on the queue, parsed as the profile updater parses them, with its attributes."""
    client = boto3.client("sqs")
    out = []
    while messages := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages"
    ):
        for message in messages:
            out.append((parse_body(ProfileEvents, message["Body"]), message.get("MessageAttributes", {})))
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def _replay(archive: Path | str, *extra: str) -> list[str]:
    return ["replay", "events", "--archive", str(archive), "--from", "2026-03-01", "--to", "2026-03-31", *extra]


def test_replay_puts_exactly_the_archived_events_on_the_queue_in_time_order(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the month archived, with a second file on Mar 4 whose event falls between two of the first's
    late, _ = analytics_fixture.event("p7", "Product Viewed", analytics_fixture.at(4, 9, 35), message_id="m-late")
    archive.write([records.event_record(late, "prof-p7", analytics_fixture.ARCHIVED)], "late")
    url = _queue()
    # When it is replayed one event per batch
    code, out, err = _main(_replay(archive.root, "--queue-url", url, "--batch-events", "1"), capsys)
    # Then the queue holds every archived event once, oldest first, as hand-off messages
    assert code == 0, err
    received = _received(url)
    sent = [event for message, _ in received for event in message.events]
    events = _fixture_events()
    expected = _in_time_order(events)
    expected.insert(expected.index("m-12"), "m-late")  # 09:35, after p3's 09:30 Product Added (m-11)
    assert [e["messageId"] for e in sent] == expected
    assert sent[expected.index("m-late")]["userId"] == "p7"
    # And each event is the one archived: archiving it again gives the same record
    archived = {r.message_id: r for r in events}
    for event in sent[:3]:
        again = records.event_record(event, archived[event["messageId"]].profile_id, analytics_fixture.ARCHIVED)
        assert again == archived[event["messageId"]]
    # And every message carries the run's correlation id, and the totals are printed
    ids = {attributes["correlationId"]["StringValue"] for _, attributes in received}
    assert len(ids) == 1 and ids.pop().startswith("replay-2026-03-01-2026-03-31-")
    assert "read 21, handed 21 in 21 messages, skipped malformed 0" in out
    assert "2026-03-04: read 5, replayable 5, skipped malformed 0" in err


def test_replay_in_batches_groups_each_persons_events_in_time_order(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _queue()
    code, out, _ = _main(_replay(archive.root, "--queue-url", url, "--json"), capsys)
    assert code == 0
    messages = [message for message, _ in _received(url)]
    # One batch of the month: a message per person, each person's events oldest first
    events = _fixture_events()
    by_person = {m.events[0]["userId"]: [e["messageId"] for e in m.events] for m in messages}
    assert by_person == {
        person: _in_time_order([r for r in events if r.user_id == person]) for person in sorted(by_person)
    }
    assert sorted(by_person) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    totals = json.loads(out)
    assert (totals["read"], totals["handed"], totals["messages"], totals["skipped_malformed"]) == (20, 20, 6, 0)


def _broken_row_file(archive: LocalArchive) -> None:
    """A file on Mar 4 whose one row has no message id (as a faulty writer might leave it)."""
    good, _ = analytics_fixture.event("p8", "Product Viewed", analytics_fixture.at(4, 11), message_id="x")
    record = records.event_record(good, "prof-p8", analytics_fixture.ARCHIVED)
    broken = EventRecord.model_construct(**{**dict(record), "message_id": None})
    folder = archive.root / "kind=event" / "dt=2026-03-04"
    (folder / "broken.parquet").write_bytes(parquet.encode([broken]))
    (folder / "torn.parquet").write_bytes(b"PAR1 not a parquet file at all")


def test_replay_skips_and_counts_malformed_rows_and_unreadable_files(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a row without a message id and a torn file beside the good ones on Mar 4
    _broken_row_file(archive)
    url = _queue()
    # When the month is replayed
    code, out, _ = _main(_replay(archive.root, "--queue-url", url), capsys)
    # Then everything else went, the bad row and file are counted and named, and the run succeeded
    assert code == 0
    sent = sorted(e["messageId"] for message, _ in _received(url) for e in message.events)
    assert sent == sorted(r.message_id for r in _fixture_events())
    assert "read 21, handed 20 in 6 messages, skipped malformed 1" in out
    assert "malformed: 2026-03-04 record " in out and "message_id: missing" in out
    assert "unreadable file skipped: " in out and "torn.parquet" in out


def test_a_dry_run_counts_and_sends_nothing(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    _broken_row_file(archive)
    url = _queue()
    code, out, _ = _main(_replay(archive.root, "--queue-url", url, "--dry-run"), capsys)
    assert code == 0
    assert _received(url) == []
    assert "read 21, would hand 20, skipped malformed 1" in out and "(dry run: nothing sent)" in out


def test_replay_takes_only_the_sources_asked_for_and_a_span_of_days(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _queue()
    argv = ["replay", "events", "--archive", str(archive.root), "--from", "2026-03-04", "--to", "2026-03-05"]
    code, out, _ = _main([*argv, "--queue-url", url, "--source-id", "src_other"], capsys)
    assert code == 0 and _received(url) == []
    assert "read 5, handed 0 in 0 messages, skipped malformed 0, skipped other sources 5" in out
    code, out, _ = _main([*argv, "--queue-url", url, "--source-id", "src_web"], capsys)
    sent = [e["messageId"] for message, _ in _received(url) for e in message.events]
    assert sorted(sent) == ["m-10", "m-11", "m-12", "m-13", "m-4"]


def test_replay_reads_an_s3_archive_and_takes_the_queue_from_the_environment(
    aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("s3").create_bucket(Bucket="midstage-archive")
    S3Archive("midstage-archive", "archive/", tmp_path / "unused", client=boto3.client("s3")).write(
        analytics_fixture.build(), "fixture"
    )
    url = _queue()
    monkeypatch.setenv("INGEST_QUEUE_URL", url)
    code, out, _ = _main(_replay("s3://midstage-archive/archive"), capsys)
    assert code == 0
    sent = sorted(e["messageId"] for message, _ in _received(url) for e in message.events)
    assert sent == sorted(r.message_id for r in _fixture_events())
    assert "read 20, handed 20" in out


def test_replay_refuses_bad_arguments_with_exit_code_2(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(_replay(archive.root), capsys)
    assert code == 2 and "needs --queue-url (or INGEST_QUEUE_URL), or --dry-run" in err
    code, _, err = _main(
        ["replay", "events", "--archive", str(archive.root), "--from", "2026-03-31", "--to", "2026-03-01", "--dry-run"],
        capsys,
    )
    assert code == 2 and "--to is before --from" in err
    code, _, err = _main(
        ["replay", "events", "--archive", str(archive.root), "--from", "March", "--to", "2026-03-01", "--dry-run"],
        capsys,
    )
    assert code == 2 and "--from 'March' is not a day" in err
    code, _, err = _main(
        ["replay", "events", "--archive", "s3://", "--from", "2026-03-01", "--to", "2026-03-01"], capsys
    )
    assert code == 2 and "no bucket" in err


def test_a_queue_that_refuses_stops_the_run_with_exit_code_1(
    aws_env: None, archive: LocalArchive, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a queue URL that names no queue
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/absent"
    code, out, _ = _main(_replay(archive.root, "--queue-url", url), capsys)
    assert code == 1
    assert "handed 0" in out and "stopped: the queue refused a batch" in out and "run again from 2026-03-02" in out


# ------------------------------------------------------------------ the whole road
def _profiles(stack: Stack) -> dict[str, Any]:
    store = ProfileStore(stack.output("DataTableName"), client=stack.clients.dynamodb())
    people = [f"p{n}" for n in range(1, 7)]
    owners = store.identity_owners([("user_id", p) for p in people])
    return {p: store.profile(owners[("user_id", p)]) for p in people if ("user_id", p) in owners}


def test_replaying_the_month_into_a_stack_rebuilds_each_profile_and_a_second_replay_changes_nothing(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the scripted month archived, and a deployed stack with no profile yet
    store = LocalArchive(tmp_path / "archive", threads=1)
    store.write(analytics_fixture.build(), "fixture")
    updater = stack.load("ProfileUpdaterFunction", clock=fixed(NOW))
    argv = _replay(store.root, "--queue-url", stack.output("IngestQueueUrl"))
    # When the month is replayed into its ingest queue and the profile updater applies what arrives
    code, out, _ = _main(argv, capsys)
    assert code == 0 and out.startswith("2026-03-01 .. 2026-03-31: read 20, handed 20 in 6 messages")
    assert apply_ingest_queue(stack, updater) == 6
    # Then each person's profile holds their month, as the script has it
    rebuilt = _profiles(stack)
    assert sorted(rebuilt) == ["p1", "p2", "p3", "p4", "p5", "p6"]
    p1 = rebuilt["p1"]
    assert p1.event_counts == {"Product Viewed": 2, "$identify": 1, "Product Added": 1, "Order Completed": 1}
    assert p1.traits["email_opt_in"] is True
    assert (p1.first_seen, p1.last_seen) == ("2026-03-02T10:00:00.000Z", "2026-03-17T09:00:00.000Z")
    assert p1.last_utm == {"source": "google", "medium": "cpc", "name": "spring"}
    assert {p: (rebuilt[p].orders, Decimal(rebuilt[p].revenue)) for p in rebuilt} == {
        "p1": (1, 100),
        "p2": (1, 40),
        "p3": (1, 50),
        "p4": (1, 30),
        "p5": (0, 0),
        "p6": (1, 20),
    }
    # When the same month is replayed again within the updater's dedupe window
    later = stack.load("ProfileUpdaterFunction", clock=fixed(NOW + timedelta(hours=1)))
    assert _main(argv, capsys)[0] == 0
    assert apply_ingest_queue(stack, later) == 6
    # Then no profile moved: every event was known by its messageId and sourceId
    again = _profiles(stack)
    assert {p: (again[p].version, again[p].event_counts, again[p].revenue) for p in again} == {
        p: (rebuilt[p].version, rebuilt[p].event_counts, rebuilt[p].revenue) for p in rebuilt
    }
