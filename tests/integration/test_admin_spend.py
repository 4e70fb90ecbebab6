"""POST /v1/spend through the real admin handler on moto: good lines reach the template's archive
stream as spend records (read back from what the stream wrote), each bad line is reported by its
place while the others go, a file with no good line is refused, and a deployment without the
stream says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.adapters.config_store import ConfigStore
from tests.integration.conftest import Stack
from tests.integration.test_admin_messaging import ROLES, Api

CSV = (
    "date,channel,campaign,amount,currency\n"
    "2026-03-02,google,spring,120.50,eur\n"
    "2026-03-02,email,winter-sale,4.10,EUR\n"
    "03/04/2026,facebook,retarget,10,EUR\n"
    "2026-03-05,facebook,retarget,ten,EUR\n"
)


@pytest.fixture
def api(stack: Stack) -> Api:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    for role in ROLES:
        config.create_api_key(role, role, f"msk_{role}", now=datetime.now(UTC))
    return Api(stack, stack.load("AdminFunction"))


def _archived(stack: Stack) -> list[dict[str, Any]]:
    """The records the stream received: moto's stream writes each call's lines as one object."""
    s3 = stack.clients.client("s3")
    bucket = stack.output("ArchiveBucketName")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="firehose-raw/").get("Contents", [])]
    lines = b"".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


def test_good_lines_are_archived_and_each_bad_line_is_reported_by_number(stack: Stack, api: Api) -> None:
    answer = api.post("/v1/spend", {"data": CSV}, role="marketer")

    assert answer.status == 202, answer.body
    assert answer.body["accepted"] == 2 and answer.body["import_id"].startswith("spend_")
    assert [r["location"] for r in answer.body["rejected"]] == ["line 4", "line 5"]
    spent = sorted(
        (r["kind"], r["dt"], r["channel"], r["campaign"], r["amount"], r["currency"]) for r in _archived(stack)
    )
    assert spent == [
        ("spend", "2026-03-02", "email", "winter-sale", 4.1, "EUR"),
        ("spend", "2026-03-02", "google", "spring", 120.5, "EUR"),
    ]


def test_lines_given_as_json_are_archived_alike(stack: Stack, api: Api) -> None:
    lines = [{"date": "2026-03-10", "channel": "facebook", "campaign": "retarget", "amount": 80, "currency": "USD"}]
    answer = api.post("/v1/spend", {"lines": lines}, role="marketer")
    assert answer.status == 202 and answer.body["accepted"] == 1, answer.body
    assert [(r["channel"], r["amount"]) for r in _archived(stack)] == [("facebook", 80.0)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"data": "date,channel,campaign,amount,currency\n03/04/2026,g,s,1,EUR\n"}, "invalid_spend"),
        ({"data": "when,where\n2026-03-02,google\n"}, "invalid_spend"),
        (
            {"data": "x", "lines": [{"date": "2026-03-02", "channel": "g", "amount": 1, "currency": "EUR"}]},
            "invalid_body",
        ),
        ({}, "invalid_body"),
        ({"lines": []}, "invalid_body"),
        ({"lines": [{"date": "2026-03-02", "channel": "g", "amount": 1, "currency": "EUR", "x": 1}]}, "invalid_body"),
        ({"lines": [{"date": "2026-03-02", "channel": "g", "amount": "1e999", "currency": "EUR"}]}, "invalid_spend"),
        ({"lines": [{"date": "2026-03-02", "channel": "g", "amount": 1, "currency": "EURO"}]}, "invalid_spend"),
    ],
)
def test_a_file_with_no_good_line_or_a_malformed_body_is_refused(stack: Stack, api: Api, body: Any, code: str) -> None:
    answer = api.post("/v1/spend", body, role="marketer")
    assert (answer.status, answer.body["code"]) == (400, code), answer.body
    assert _archived(stack) == []


def test_a_viewer_may_not_import_spend(stack: Stack, api: Api) -> None:
    assert api.post("/v1/spend", {"data": CSV}, role="viewer").status == 403
    assert _archived(stack) == []


def test_without_an_archive_stream_the_import_says_so(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    config.create_api_key("marketer", "marketer", "msk_marketer", now=datetime.now(UTC))
    admin = stack.load("AdminFunction")
    monkeypatch.setenv("ARCHIVE_STREAM", "")
    answer = Api(stack, admin).post("/v1/spend", {"data": CSV}, role="marketer")
    assert (answer.status, answer.body["code"]) == (503, "analytics_not_configured"), answer.body
