"""The tracking API over HTTP: every kind of bad input gets its documented answer, and nothing
valid sent alongside it is lost."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest

from tests.e2e.conftest import Platform


def run_id() -> str:
    return uuid.uuid4().hex[:8]


def test_track_with_write_key_in_the_body_reaches_a_profile(platform: Platform) -> None:
    user = f"body-{run_id()}"
    answer = platform.request("POST", "/v1/track", {"writeKey": platform.write_key, "userId": user, "event": "Hi"})
    assert (answer.status, answer.body) == (200, {"success": True, "accepted": 1})
    platform.settle()
    assert platform.profile(f"user_id:{user}")["computed"]["event_counts"]["Hi"]["total"] == 1


def test_send_beacon_text_plain_body_is_accepted(platform: Platform) -> None:
    anon = f"beacon-{run_id()}"
    body = json.dumps({"writeKey": platform.write_key, "anonymousId": anon, "name": "Home"}).encode()
    answer = platform.request("POST", "/v1/page", raw=body, headers={"content-type": "text/plain;charset=UTF-8"})
    assert answer.status == 200
    platform.settle()
    assert platform.profile(f"anonymous_id:{anon}")["computed"]["event_counts"]["$page"]["total"] == 1


def test_gzip_batch_is_accepted(platform: Platform) -> None:
    user = f"gz-{run_id()}"
    answer = platform.gzipped("/v1/batch", {"batch": [{"type": "track", "userId": user, "event": "Z"}] * 3})
    assert answer.status == 200
    assert answer.body["accepted"] == 3


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {"userId": "u", "event": "x"}),
        ({"authorization": "Basic d2tfbm9wZTo="}, {"userId": "u", "event": "x"}),  # wk_nope:
        ({"authorization": "Basic !!!"}, {"userId": "u", "event": "x"}),
        ({}, {"writeKey": "wk_nope", "userId": "u", "event": "x"}),
    ],
)
def test_bad_or_missing_write_key_is_401(platform: Platform, headers: dict, body: dict) -> None:
    answer = platform.request("POST", "/v1/track", body, headers=headers)
    assert answer.status == 401
    assert answer.body["code"] == "unauthorized"


def test_malformed_json_is_400_and_quarantined(platform: Platform) -> None:
    marker = run_id()
    answer = platform.request("POST", "/v1/track", raw=f'{{"userId": "{marker}", '.encode(), headers=platform.basic())
    assert (answer.status, answer.body["code"]) == (400, "invalid_json")
    entries = platform.admin("GET", f"/v1/sources/{platform.source_id}/quarantine?limit=200").body["entries"]
    assert any(marker in e["payload"] and e["code"] == "invalid_json" for e in entries)


def test_bad_gzip_is_400(platform: Platform) -> None:
    answer = platform.request(
        "POST", "/v1/batch", raw=b"\x1f\x8b\x08garbage", headers={**platform.basic(), "content-encoding": "gzip"}
    )
    assert (answer.status, answer.body["code"]) == (400, "invalid_gzip")


def test_wrong_types_and_missing_ids_are_400_with_codes(platform: Platform) -> None:
    wrong = platform.track("/v1/track", {"userId": "u", "event": "x", "properties": [1, 2]})
    assert (wrong.status, wrong.body["code"]) == (400, "invalid_event")
    missing = platform.track("/v1/identify", {"traits": {"a": 1}})
    assert (missing.status, missing.body["code"]) == (400, "missing_identifier")
    blocked = platform.track("/v1/identify", {"userId": "undefined", "traits": {"a": 1}})
    assert (blocked.status, blocked.body["code"]) == (400, "missing_identifier")


def test_oversized_event_is_413_and_oversized_batch_is_413(platform: Platform) -> None:
    big = platform.track("/v1/track", {"userId": "u", "event": "x", "properties": {"b": "x" * 33_000}})
    assert (big.status, big.body["code"]) == (413, "body_too_large")
    huge = platform.track("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "x" * 200}] * 2600})
    assert huge.status == 413
    assert huge.body["code"] in ("body_too_large", "too_many_events")
    bomb = gzip.compress(json.dumps({"batch": [], "pad": " " * 20_000_000}).encode())
    inflated = platform.request("POST", "/v1/batch", raw=bomb, headers={**platform.basic(), "content-encoding": "gzip"})
    assert (inflated.status, inflated.body["code"]) == (413, "body_too_large")


def test_batch_with_bad_events_keeps_the_good_ones_and_quarantines_the_rest(platform: Platform) -> None:
    user = f"mixed-{run_id()}"
    answer = platform.track(
        "/v1/batch",
        {
            "batch": [
                # Two calls of one event, each with its own messageId as SDKs send (without one,
                # the same undated body in one 10-minute window would be taken for a retry).
                {"type": "track", "userId": user, "event": "Good", "messageId": f"{user}-good-1"},
                {"type": "track", "userId": user},
                {"type": "track", "userId": user, "event": "Big", "properties": {"b": "x" * 40_000}},
                {"type": "identify", "userId": "null"},
                {"type": "track", "userId": user, "event": "Good", "messageId": f"{user}-good-2"},
            ]
        },
    )
    assert answer.status == 200
    assert answer.body["accepted"] == 2
    assert [r["index"] for r in answer.body["rejected"]] == [1, 2, 3]
    platform.settle()
    assert platform.profile(f"user_id:{user}")["computed"]["event_counts"]["Good"]["total"] == 2
    entries = platform.admin("GET", f"/v1/sources/{platform.source_id}/quarantine?limit=200").body["entries"]
    mine = [e for e in entries if user in e["payload"]]
    assert {e["code"] for e in mine} >= {"invalid_event", "event_too_large"}


def test_duplicate_message_ids_count_once(platform: Platform) -> None:
    user = f"dup-{run_id()}"
    event = {"type": "track", "userId": user, "event": "Paid", "messageId": f"m-{user}"}
    for _ in range(3):
        assert platform.track("/v1/batch", {"batch": [event, event]}).status == 200
    platform.settle()
    assert platform.profile(f"user_id:{user}")["computed"]["event_counts"]["Paid"]["total"] == 1


def test_out_of_order_identify_calls_resolve_by_event_time(platform: Platform) -> None:
    user = f"ooo-{run_id()}"
    newer = {"type": "identify", "userId": user, "traits": {"plan": "pro"}, "timestamp": "2026-11-20T10:00:00Z"}
    older = {"type": "identify", "userId": user, "traits": {"plan": "free"}, "timestamp": "2026-11-01T10:00:00Z"}
    assert platform.track("/v1/batch", {"batch": [newer]}).status == 200
    platform.settle()
    assert platform.track("/v1/batch", {"batch": [older]}).status == 200
    platform.settle()
    assert platform.profile(f"user_id:{user}")["traits"]["plan"] == "pro"


def test_hostile_strings_round_trip_as_data(platform: Platform) -> None:
    user = f"<img src=x onerror=alert(1)>-{run_id()}"
    traits = {"name": "Robert'); DROP TABLE students;--", "bio": "\u202e\u0000${jndi:ldap://x}"}
    assert platform.track("/v1/identify", {"userId": user, "traits": traits}).status == 200
    platform.settle()
    from urllib.parse import quote

    profile = platform.profile(quote(f"user_id:{user}", safe=""))
    assert profile["traits"] == traits


def test_rate_limited_source_gets_429_with_retry_after(platform: Platform) -> None:
    created = platform.admin("POST", "/v1/sources", {"name": "tiny", "rate_limit": 5}).body
    headers = platform.basic(created["write_key"])
    statuses = []
    for _ in range(4):
        answer = platform.request(
            "POST", "/v1/batch", {"batch": [{"type": "track", "userId": "r", "event": "e"}] * 3}, headers=headers
        )
        statuses.append(answer.status)
        if answer.status == 429:
            assert answer.headers["retry-after"] == "1"
            assert answer.body["code"] == "rate_limited"
    assert 429 in statuses


def test_disabled_source_and_foreign_origin_are_403(platform: Platform) -> None:
    created = platform.admin(
        "POST", "/v1/sources", {"name": "site", "allowed_origins": ["https://shop.example.com"]}
    ).body
    headers = platform.basic(created["write_key"])
    event = {"userId": "o", "event": "e"}
    ok = platform.request("POST", "/v1/track", event, headers={**headers, "origin": "https://shop.example.com"})
    assert ok.status == 200
    foreign = platform.request("POST", "/v1/track", event, headers={**headers, "origin": "https://evil.example"})
    assert (foreign.status, foreign.body["code"]) == (403, "origin_not_allowed")
    assert platform.admin("PATCH", f"/v1/sources/{created['id']}", {"enabled": False}).status == 200
    # The collect function caches sources briefly; a new key after rotation is seen at once.
    rotated = platform.admin("POST", f"/v1/sources/{created['id']}/rotate-key").body
    disabled = platform.request("POST", "/v1/track", event, headers=platform.basic(rotated["write_key"]))
    assert (disabled.status, disabled.body["code"]) == (403, "source_disabled")


def test_cors_preflight_for_browser_sdks(platform: Platform) -> None:
    answer = platform.request(
        "OPTIONS",
        "/v1/batch",
        headers={"origin": "https://shop.example.com", "access-control-request-method": "POST"},
    )
    assert answer.status in (200, 204)
    assert answer.headers["access-control-allow-origin"] in ("*", "https://shop.example.com")
