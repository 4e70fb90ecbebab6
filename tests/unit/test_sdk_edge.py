"""What the SDKs meet at the edge: their paths, CORS answers, the settings they fetch, and the
identifiers they send empty."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from midstage.config import IdentitySettings
from midstage.logic import collect, cors, sdk_settings, tracking_routes
from midstage.models.admin import Source
from midstage.models.tracking import TrackingEvent

RECEIVED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ paths
@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/v1/track", "track"),
        ("/v1/t", "track"),
        ("/v1/p", "page"),
        ("/v1/i", "identify"),
        ("/v1/g", "group"),
        ("/v1/a", "alias"),
        ("/v1/s", "screen"),
        ("/v1/b", "batch"),
        ("/v1/import", "batch"),
    ],
)
def test_each_segment_path_names_its_call(path: str, endpoint: str) -> None:
    route = tracking_routes.match("POST", path)

    assert route == tracking_routes.TrackingRoute("collect", endpoint=endpoint)


def test_rudderstack_beacons_are_batches_with_the_key_beside_the_body() -> None:
    route = tracking_routes.match("POST", "/beacon/v1/batch")

    assert route is not None and (route.kind, route.endpoint, route.beacon) == ("collect", "batch", True)


def test_settings_paths_are_read_with_get_only() -> None:
    segment = tracking_routes.match("GET", "/v1/projects/wk_abc/settings")
    assert segment == tracking_routes.TrackingRoute("segment_settings", write_key="wk_abc")
    assert tracking_routes.match("GET", "/sourceConfig/") == tracking_routes.TrackingRoute("rudder_config")
    assert tracking_routes.match("GET", "/sourceConfig") == tracking_routes.TrackingRoute("rudder_config")
    assert tracking_routes.match("POST", "/sourceConfig/") is None
    assert tracking_routes.match("GET", "/v1/track") is None


@pytest.mark.parametrize("path", ["/v1/x", "/v1/tracks", "/x/v1/track", "/v1/track/", "/beacon/v1/track", "/"])
def test_other_paths_are_not_tracking_routes(path: str) -> None:
    assert tracking_routes.match("POST", path) is None


def test_admin_paths_are_not_tracking_paths_for_preflights() -> None:
    assert tracking_routes.is_tracking_path("/v1/b")
    assert tracking_routes.is_tracking_path("/sourceConfig/")
    assert not tracking_routes.is_tracking_path("/v1/profiles/user_id:ann")
    assert not tracking_routes.is_tracking_path("/v1/sources")


# ------------------------------------------------------------------------------------------ CORS
def test_a_tracking_preflight_echoes_the_origin_with_credentials_and_every_sdk_header() -> None:
    headers = cors.preflight_headers(True, "https://shop.example.com")

    assert headers["access-control-allow-origin"] == "https://shop.example.com"
    assert headers["access-control-allow-credentials"] == "true"
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {"x-retry-count", "anonymousid", "sentat", "rsa-retry-attempt", "rsa-retry-reason"} <= allowed
    assert {"rsa-since-last-attempt", "rsa-since-first-attempt", "rsa-recovered", "authorization"} <= allowed
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["vary"] == "Origin"


def test_an_admin_preflight_allows_any_origin_without_credentials() -> None:
    headers = cors.preflight_headers(False, "https://console.example.com")

    assert headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in headers
    assert "PATCH" in headers["access-control-allow-methods"]
    assert "if-match" in headers["access-control-allow-headers"]


def test_a_tracking_answer_never_says_wildcard_and_hides_from_a_refused_origin() -> None:
    allowed = cors.tracking_response_headers("https://shop.example.com", allowed=True)
    refused = cors.tracking_response_headers("https://evil.example", allowed=False)

    assert allowed["access-control-allow-origin"] == "https://shop.example.com"
    assert allowed["access-control-expose-headers"] == "retry-after"
    assert "access-control-allow-origin" not in refused
    assert refused == {"vary": "Origin"}
    assert cors.tracking_response_headers(None, allowed=True) == {"vary": "Origin"}


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        ([], "https://a.test", True),
        (["*"], "https://a.test", True),
        (["https://a.test/"], "https://a.test", True),
        (["https://a.test"], "https://b.test", False),
        (["https://a.test"], None, True),
    ],
)
def test_a_source_allows_origins_by_its_list(allowed: list[str], origin: str | None, expected: bool) -> None:
    assert cors.origin_allowed(allowed, origin) is expected


# ------------------------------------------------------------------------------------------ settings
def test_segment_settings_send_the_library_back_to_this_host_with_its_telemetry_off() -> None:
    api = sdk_settings.ApiBase.from_headers({"host": "track.example.com", "x-forwarded-proto": "https"})
    assert api is not None

    document = sdk_settings.segment_settings("wk_1", api)

    assert document["integrations"] == {
        "Segment.io": {
            "apiKey": "wk_1",
            "apiHost": "track.example.com/v1",
            "protocol": "https",
            "unbundledIntegrations": [],
            "addBundledMetadata": False,
            "maybeBundledConfigIds": {},
        }
    }
    assert document["metrics"] == {"sampleRate": 0, "host": "track.example.com/v1"}
    assert document["remotePlugins"] == [] and document["enabledMiddleware"] == {}
    assert document["legacyVideoPluginsEnabled"] is False


def test_the_api_base_is_the_host_as_reached_and_never_a_forged_url() -> None:
    local = sdk_settings.ApiBase.from_headers({"host": "127.0.0.1:3000", "x-forwarded-proto": "http"})
    assert local == sdk_settings.ApiBase("http", "127.0.0.1:3000")
    assert sdk_settings.ApiBase.from_headers({"host": "a.test"}) == sdk_settings.ApiBase("https", "a.test")
    assert sdk_settings.ApiBase.from_headers({"host": "evil.test/x?"}) is None
    assert sdk_settings.ApiBase.from_headers({}) is None


def test_the_rudder_source_config_names_no_destination_and_reports_nothing() -> None:
    source = Source(id="src_1", name="Web", write_key="wk_1", created_at="2026-12-01T00:00:00+00:00")

    document = sdk_settings.rudder_source_config(source, "wk_1")

    assert document["source"]["id"] == "src_1"
    assert document["source"]["enabled"] is True
    assert document["source"]["destinations"] == []
    assert document["source"]["config"]["statsCollection"] == {
        "errors": {"enabled": False},
        "metrics": {"enabled": False},
    }


# ------------------------------------------------------------------------------------------ identifiers
def test_an_empty_user_id_beside_an_anonymous_id_is_an_anonymous_event() -> None:
    document = collect.read_document(
        b'{"userId": "", "anonymousId": "a-1", "event": "Viewed"}', "track", collect.Limits()
    )

    result = collect.intake(document, collect.RequestMeta("src_1", RECEIVED), IdentitySettings(), collect.Limits())

    assert [r.code for r in result.rejected] == []
    assert result.accepted[0]["userId"] is None
    assert result.accepted[0]["anonymousId"] == "a-1"
    assert collect.person_key(result.accepted[0]) == "a:a-1"


def test_empty_identifiers_are_absent_so_their_requirements_still_hold() -> None:
    group = {"type": "group", "userId": "u-1", "groupId": ""}

    with pytest.raises(ValueError, match="groupId"):
        TrackingEvent.model_validate(group)
    event = TrackingEvent.model_validate({"type": "identify", "userId": "", "anonymousId": "", "traits": {}})
    assert (event.userId, event.anonymousId) == (None, None)
