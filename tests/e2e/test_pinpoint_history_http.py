"""Pinpoint history on the local cloud: a documented event stream (tests/support/pinpoint_stream.py)
replayed by `midstage.cli pinpoint-history` from a bucket, then dropped again under
`imports/pinpoint-history/` for the import function (S3's EventBridge notification): read back
over the admin API, suppressions, consent with its provenance and each person's events are as
the records say, and the second replay, by the other road, doubles nothing."""

from __future__ import annotations

import gzip
import random
import uuid
from typing import Any

import pytest

from midstage import cli
from midstage.adapters import aws
from tests.e2e.conftest import Platform
from tests.support import pinpoint_stream as fx


def _for_run(data: bytes, run: str, phone: str) -> bytes:
    """The stream's objects with this run's own addresses, ids and event ids (the local cloud is
    shared by the whole session)."""
    text = gzip.decompress(data).decode()
    for address in (fx.RECIPIENT, fx.BOUNCED, fx.COMPLAINED, "soft@example.com"):
        text = text.replace(address, address.replace("@", f"-{run}@"))
    for known in (fx.RECIPIENT_ENDPOINT, fx.APP_ENDPOINT, fx.CAMPAIGN_ENDPOINT, fx.LISTENER, "endpoint-"):
        text = text.replace(known, f"{known}{run}")
    text = text.replace('"ev-', f'"ev-{run}-').replace(fx.SMS_PHONE, phone)
    return gzip.compress(text.encode())


def _counts(platform: Platform, ref: str) -> dict[str, int]:
    counts = platform.profile(ref)["computed"]["event_counts"]
    return {name: value["total"] for name, value in counts.items()}


def _consent(platform: Platform, ref: str) -> dict[str, Any]:
    answer = platform.admin("GET", f"/v1/profiles/{ref}/consent")
    assert answer.status == 200, answer.body
    return {c["channel"]: (c["state"], c["at"], c["source"]) for c in answer.body["consents"]}


def test_a_stream_replayed_by_the_command_then_dropped_in_the_bucket_lands_once(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = uuid.uuid4().hex[:8]
    phone = f"+1425{random.randint(2_000_000, 9_999_999)}"
    files = {key: _for_run(body, run, phone) for key, body in fx.firehose_files().items()}
    s3 = platform.cloud.client("s3")
    stream = f"pinpoint-stream-{run}"
    s3.create_bucket(Bucket=stream)
    for key, body in files.items():
        s3.put_object(Bucket=stream, Key=key, Body=body)
    outputs = platform.cloud.outputs
    for name, value in {
        "AWS_ENDPOINT_URL": platform.cloud.aws_endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    aws._client.cache_clear()

    # When the command replays the bucket's stream into the stack
    argv = ["pinpoint-history", f"s3://{stream}/", "--queue-url", outputs["IngestQueueUrl"]]
    code = cli.main([*argv, "--table", outputs["DataTableName"]])
    aws._client.cache_clear()
    assert code == 0, capsys.readouterr()
    assert capsys.readouterr().out.strip().endswith("unknown 1; 0 problem(s)")
    platform.settle()

    # Then the hard bounce and the complaint are suppressed, the soft bounce is not
    bounced, complained = (a.replace("@", f"-{run}@") for a in (fx.BOUNCED, fx.COMPLAINED))
    suppression = platform.admin("GET", f"/v1/suppressions/email/{bounced}")
    assert suppression.status == 200, suppression.body
    assert (suppression.body["reason"], suppression.body["scope"]) == ("hard_bounce", "all")
    assert platform.admin("GET", f"/v1/suppressions/email/{complained}").body["reason"] == "complaint"
    assert platform.admin("GET", f"/v1/suppressions/email/soft-{run}@example.com").status == 404
    # And the unsubscribe and the STOP are refusals at their records' times, from pinpoint
    recipient = f"anonymous_id:pinpoint:{fx.RECIPIENT_ENDPOINT}{run}"
    assert _consent(platform, recipient) == {"email": ("refused", "2019-08-01T00:40:00.000Z", "pinpoint")}
    assert _consent(platform, f"phone:{phone}") == {"sms": ("refused", "2019-03-20T18:19:14.322Z", "pinpoint")}
    # And each person's outcomes and app events are theirs
    expected = {
        recipient: {
            "Email Sent": 1,
            "Email Delivered": 1,
            "Email Opened": 1,
            "Email Link Clicked": 1,
            "Unsubscribed": 1,
        },
        f"phone:{phone}": {"SMS Delivered": 1, "Unsubscribed": 1},
        f"user_id:{fx.LISTENER}{run}": {"PlayedTrack": 1, "Push Notification Tapped": 1},
        f"anonymous_id:pinpoint:{fx.APP_ENDPOINT}{run}": {"Session Ended": 1},
        f"anonymous_id:pinpoint:{fx.CAMPAIGN_ENDPOINT}{run}": {"Campaign Message Sent": 1},
    }
    assert {ref: _counts(platform, ref) for ref in expected} == expected
    # And the replayed records date the person's activity: firstSeen the oldest, lastSeen the newest
    shown = platform.profile(recipient)
    assert (shown["firstSeen"], shown["lastSeen"]) == ("2019-08-01T00:17:01.380Z", "2019-08-01T00:40:00.000Z")

    # When the same objects are dropped in the stack's bucket for the import function
    bucket = outputs["ArchiveBucketName"]
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=f"imports/pinpoint-history/{run}/{key}", Body=body)
    platform.settle()

    # Then the function replayed them (its log says so) and nothing doubled
    logs = platform.cloud.log_path("RunImportsFunction").read_text(encoding="utf-8").splitlines()
    replayed = [line for line in logs if "pinpoint history replayed" in line and f"pinpoint-history/{run}/" in line]
    assert len(replayed) == len(files) and all('"problems_total":0' in line.replace(" ", "") for line in replayed)
    assert {ref: _counts(platform, ref) for ref in expected} == expected
