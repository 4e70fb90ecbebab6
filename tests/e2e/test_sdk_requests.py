"""Requests shaped exactly as each SDK sends them (read from their sources), over HTTP through the
local cloud: Segment's short paths and mobile batches, RudderStack's beacons and source config,
the settings documents, and the CORS answers browsers need, 404s and errors included."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from tests.e2e.conftest import Answer, Platform

ORIGIN = "https://shop.example.com"


def _run() -> str:
    return uuid.uuid4().hex[:10]


def _events_of(platform: Platform, ref: str) -> dict[str, Any]:
    platform.settle()
    return platform.profile(ref)["computed"]["event_counts"]  # type: ignore[no-any-return]


def _mobile_event(kind: str, run: str, **fields: Any) -> dict[str, Any]:
    """An event as analytics-swift and analytics-kotlin store it before upload."""
    return {
        "type": kind,
        "messageId": str(uuid.uuid4()),
        "anonymousId": f"device-{run}",
        "timestamp": "2024-05-01T10:00:00.123Z",
        "integrations": {},
        "context": {
            "app": {"name": "Shop", "version": "4.2.0", "build": "420"},
            "device": {"id": f"device-{run}", "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
            "os": {"name": "iOS", "version": "17.4"},
            "library": {"name": "analytics-swift", "version": "1.5.11"},
            "network": {"wifi": True},
            "locale": "en-GB",
            "timezone": "Europe/London",
        },
        "_metadata": {"bundled": [], "unbundled": [], "bundledIds": []},
        **fields,
    }


# ------------------------------------------------------------------------------------------ Segment
def test_the_browser_library_short_paths_take_text_plain_with_the_key_in_the_body(platform: Platform) -> None:
    run = _run()
    shapes = {
        "/v1/p": {"anonymousId": f"a-{run}", "name": "Pricing", "properties": {"path": "/pricing"}},
        "/v1/t": {"anonymousId": f"a-{run}", "event": "Product Viewed"},
        "/v1/i": {"anonymousId": f"a-{run}", "userId": f"u-{run}", "traits": {"plan": "pro"}},
        "/v1/g": {"userId": f"u-{run}", "groupId": f"g-{run}", "traits": {"name": "Acme"}},
        "/v1/s": {"userId": f"u-{run}", "name": "Cart"},
        "/v1/a": {"userId": f"u-{run}", "previousId": f"old-{run}"},
    }

    for path, body in shapes.items():
        answer = platform.request(
            "POST",
            path,
            raw=json.dumps({**body, "writeKey": platform.write_key, "sentAt": "2024-05-01T10:00:00Z"}).encode(),
            headers={"content-type": "text/plain", "origin": ORIGIN, **platform.basic()},
        )
        assert (answer.status, answer.body) == (200, {"success": True, "accepted": 1}), path
        assert answer.headers["access-control-allow-origin"] == ORIGIN

    counts = _events_of(platform, f"user_id:u-{run}")
    assert counts["$page"]["total"] == 1 and counts["Product Viewed"]["total"] == 1
    assert counts["$screen"]["total"] == 1
    profile = platform.profile(f"anonymous_id:old-{run}")
    assert profile["groups"] == {f"g-{run}": {"name": "Acme"}}


def test_an_ios_batch_as_analytics_swift_uploads_it_is_applied(platform: Platform) -> None:
    run = _run()
    body = {
        "batch": [
            _mobile_event("screen", run, name="Home"),
            _mobile_event("identify", run, userId=f"ios-{run}", traits={"email": f"ios.{run}@example.com"}),
            _mobile_event("track", run, userId=f"ios-{run}", event="Order Completed", properties={"revenue": 9}),
        ],
        "sentAt": "2024-05-01T10:00:01.000Z",
        "writeKey": platform.write_key,
    }

    answer = platform.request(
        "POST",
        "/v1/b",
        raw=json.dumps(body).encode(),
        headers={
            "content-type": "application/json; charset=utf-8",
            "user-agent": "analytics-ios/1.5.11",
            "accept-encoding": "gzip",
        },
    )

    assert (answer.status, answer.body) == (200, {"success": True, "accepted": 3})
    counts = _events_of(platform, f"user_id:ios-{run}")
    assert counts["$screen"]["total"] == 1 and counts["Order Completed"]["total"] == 1


def test_an_android_batch_as_analytics_kotlin_uploads_it_is_applied(platform: Platform) -> None:
    # analytics-kotlin streams its batch file gzipped, chunked, as text/plain, with no
    # Authorization header, and adds X-Retry-Count when it retries.
    run = _run()
    body = {
        "batch": [
            _mobile_event("track", run, userId=f"and-{run}", event="App Opened"),
            _mobile_event("track", run, userId=f"and-{run}", event="App Opened"),
        ],
        "sentAt": "2024-05-01T10:00:01.000Z",
        "writeKey": platform.write_key,
    }
    packed = gzip.compress(json.dumps(body).encode())
    url = urlsplit(platform.url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/b",
            body=iter([packed[: len(packed) // 2], packed[len(packed) // 2 :]]),
            headers={
                "Content-Type": "text/plain",
                "Content-Encoding": "gzip",
                "User-Agent": "analytics-kotlin/1.24.1",
                "X-Retry-Count": "1",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        status, answered = response.status, json.loads(response.read())
    finally:
        connection.close()

    assert (status, answered) == (200, {"success": True, "accepted": 2})
    assert _events_of(platform, f"user_id:and-{run}")["App Opened"]["total"] == 2


def test_the_settings_point_every_segment_library_back_at_this_host(platform: Platform) -> None:
    answer = platform.request(
        "GET",
        f"/v1/projects/{platform.write_key}/settings",
        headers={"content-type": "application/json; charset=utf-8", "user-agent": "analytics-kotlin/1.24.1"},
    )

    host = urlsplit(platform.url).netloc
    assert answer.status == 200
    segment = answer.body["integrations"]["Segment.io"]
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (platform.write_key, f"{host}/v1", "http")
    assert answer.body["metrics"]["sampleRate"] == 0
    assert list(answer.body["integrations"]) == ["Segment.io"]


def test_settings_for_an_unknown_key_are_refused_with_cors_headers(platform: Platform) -> None:
    answer = platform.request("GET", "/v1/projects/wk_nobody/settings", headers={"origin": ORIGIN})

    assert (answer.status, answer.body["code"]) == (401, "unauthorized")
    assert answer.headers["access-control-allow-origin"] == ORIGIN


# ------------------------------------------------------------------------------------------ RudderStack
def test_rudderstack_source_config_answers_its_query_and_basic_auth(platform: Platform) -> None:
    query = f"?p=cdn&v=3.34.1&build=modern&writeKey={platform.write_key}&lockIntegrationsVersion=false"

    with_slash = platform.request("GET", f"/sourceConfig/{query}", headers={**platform.basic(), "origin": ORIGIN})
    without_slash = platform.request("GET", f"/sourceConfig{query}")
    basic_only = platform.request("GET", "/sourceConfig/?p=cdn", headers=platform.basic())
    no_key = platform.request("GET", "/sourceConfig/?p=cdn")

    assert with_slash.status == without_slash.status == basic_only.status == 200
    source = with_slash.body["source"]
    assert (source["id"], source["enabled"], source["destinations"]) == (platform.source_id, True, [])
    assert source["config"]["statsCollection"]["metrics"]["enabled"] is False
    assert with_slash.headers["access-control-allow-origin"] == ORIGIN
    assert (no_key.status, no_key.body["code"]) == (401, "unauthorized")


def test_a_rudderstack_beacon_with_the_key_in_the_query_and_an_empty_user_id_is_applied(platform: Platform) -> None:
    run = _run()
    batch = {
        "batch": [
            {"type": "track", "userId": "", "anonymousId": f"rs-{run}", "event": "Beaconed", "channel": "web"},
            {"type": "page", "userId": "", "anonymousId": f"rs-{run}", "name": "Home"},
        ],
        "sentAt": "2024-05-01T10:00:00.000Z",
    }

    answer = platform.request(
        "POST",
        f"/beacon/v1/batch?writeKey={platform.write_key}",
        raw=json.dumps(batch).encode(),
        headers={"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN},
    )
    wrong = platform.request(
        "POST", "/beacon/v1/batch?writeKey=wk_nobody", raw=json.dumps(batch).encode(), headers={"origin": ORIGIN}
    )

    assert (answer.status, answer.body) == (200, {"success": True, "accepted": 2})
    assert (wrong.status, wrong.body["code"]) == (401, "unauthorized")
    assert wrong.headers["access-control-allow-origin"] == ORIGIN
    platform.settle()
    profile = platform.profile(f"anonymous_id:rs-{run}")
    assert "user_id" not in profile["identities"]


def test_an_anonymous_rudderstack_call_with_an_empty_user_id_and_its_headers_is_accepted(
    platform: Platform,
) -> None:
    run = _run()
    answer = platform.request(
        "POST",
        "/v1/track",
        {"userId": "", "anonymousId": f"rs-{run}", "event": "Product Viewed", "sentAt": "2024-05-01T10:00:00Z"},
        headers={
            **platform.basic(),
            "anonymousid": base64.b64encode(f"rs-{run}".encode()).decode(),
            "sentat": "2024-05-01T10:00:00.000Z",
            "origin": ORIGIN,
        },
    )

    assert (answer.status, answer.body) == (200, {"success": True, "accepted": 1})
    assert _events_of(platform, f"anonymous_id:rs-{run}")["Product Viewed"]["total"] == 1


# ------------------------------------------------------------------------------------------ CORS
def _preflight(platform: Platform, path: str, headers: str, origin: str = ORIGIN) -> Answer:
    return platform.request(
        "OPTIONS",
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": headers,
        },
    )


def test_a_preflight_allows_every_header_the_browser_sdks_send_and_credentials(platform: Platform) -> None:
    sent = "authorization,content-type,x-retry-count,anonymousid,sentat,rsa-retry-attempt,rsa-retry-reason"

    answer = _preflight(platform, "/v1/t", sent)

    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert set(sent.split(",")) <= allowed
    assert {"rsa-since-last-attempt", "rsa-since-first-attempt", "rsa-recovered"} <= allowed


def test_admin_paths_answer_any_origin_without_credentials(platform: Platform) -> None:
    preflight = _preflight(platform, "/v1/profiles/user_id:ann", "authorization", origin="https://console.example")
    read = platform.request(
        "GET",
        "/v1/sources",
        headers={"authorization": f"Bearer {platform.admin_key}", "origin": "https://console.example"},
    )

    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    assert read.status == 200
    assert read.headers["access-control-allow-origin"] == "*"


def test_a_404_and_a_refusal_carry_cors_headers_so_the_browser_sees_them(platform: Platform) -> None:
    unknown = platform.request("POST", "/v1/nowhere", {"a": 1}, headers={"origin": ORIGIN})
    bad = platform.request("POST", "/v1/t", {"userId": "x"}, headers={**platform.basic(), "origin": ORIGIN})

    assert (unknown.status, unknown.body["code"]) == (404, "not_found")
    assert unknown.headers["access-control-allow-origin"] == ORIGIN
    assert (bad.status, bad.body["code"]) == (400, "invalid_event")
    assert bad.headers["access-control-allow-origin"] == ORIGIN
    assert bad.headers["access-control-allow-credentials"] == "true"


def test_an_origin_the_source_does_not_allow_is_refused_and_not_echoed(platform: Platform) -> None:
    created = platform.admin("POST", "/v1/sources", {"name": "one site", "allowed_origins": [ORIGIN]}).body
    headers = platform.basic(created["write_key"])
    event = {"userId": "o", "event": "e"}

    ok = platform.request("POST", "/v1/t", event, headers={**headers, "origin": ORIGIN})
    foreign = platform.request("POST", "/v1/t", event, headers={**headers, "origin": "https://evil.example"})
    settings = platform.request(
        "GET", f"/v1/projects/{created['write_key']}/settings", headers={"origin": "https://evil.example"}
    )

    assert ok.status == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert (foreign.status, foreign.body["code"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in foreign.headers
    assert (settings.status, settings.body["code"]) == (403, "origin_not_allowed")
