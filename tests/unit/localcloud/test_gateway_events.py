"""The gateway's API Gateway semantics, without sockets: route selection, the 2.0 event, response
mapping, CORS and the throttle's token bucket."""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

import pytest

from infra.localcloud.gateway import (
    HttpRequest,
    TokenBucket,
    build_http_event,
    cors_allow_origin,
    cors_preflight_headers,
    cors_response_headers,
    is_text_body,
    map_response,
    match_route,
)
from infra.localcloud.model import CorsConfig, HttpApiSpec, HttpRoute, InvocationResult

# The example routes of "Routing API requests" in the HTTP API developer guide.
DOC_ROUTES = (
    HttpRoute("GET", "/pets/dog/1", "Static"),
    HttpRoute("GET", "/pets/dog/{id}", "Param"),
    HttpRoute("GET", "/pets/{proxy+}", "PetsGreedy"),
    HttpRoute("ANY", "/{proxy+}", "RootGreedy"),
    HttpRoute("GET", "$default", "Default"),
)

API = HttpApiSpec(
    logical_id="HttpApi",
    api_id="a1b2c3d4e5",
    stage="$default",
    routes=(HttpRoute("POST", "/v1/sources/{sourceId}/events", "Collect"),),
    cors=None,
    throttle_rate=None,
    throttle_burst=None,
)
ROUTE = API.routes[0]


def _routed(routes: tuple[HttpRoute, ...], method: str, path: str) -> tuple[str, dict[str, str]] | None:
    matched = match_route(routes, method, path)
    return None if matched is None else (matched[0].function_id, matched[1])


def _event(request: HttpRequest, path_parameters: dict[str, str] | None = None) -> dict[str, Any]:
    return build_http_event(
        request,
        api=API,
        route=ROUTE,
        path_parameters=path_parameters if path_parameters is not None else {"sourceId": "src-1"},
        request_id="JKJaXmPLvHcESHA=",
        account_id="123456789012",
        region="eu-west-1",
        epoch_ms=1583348638390,
    )


def _post(body: bytes, *headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest("POST", "/v1/sources/src-1/events", headers=headers, body=body)


# ------------------------------------------------------------------------------------------ routing


@pytest.mark.parametrize(
    ("method", "path", "function_id", "params"),
    [
        ("GET", "/pets/dog/1", "Static", {}),
        ("GET", "/pets/dog/2", "Param", {"id": "2"}),
        ("GET", "/pets/cat/1", "PetsGreedy", {"proxy": "cat/1"}),
        ("POST", "/test/5", "RootGreedy", {"proxy": "test/5"}),
        ("POST", "/pets/dog/1", "RootGreedy", {"proxy": "pets/dog/1"}),
    ],
)
def test_routes_are_selected_as_in_the_developer_guide_table(
    method: str, path: str, function_id: str, params: dict[str, str]
) -> None:
    assert _routed(DOC_ROUTES, method, path) == (function_id, params)


def test_default_route_catches_what_no_other_route_matches() -> None:
    routes = (HttpRoute("GET", "/pets", "Pets"), HttpRoute("ANY", "$default", "Default"))

    assert _routed(routes, "DELETE", "/pets") == ("Default", {})
    assert _routed(routes, "GET", "/elsewhere") == ("Default", {})


def test_no_route_and_no_default_means_not_found() -> None:
    assert match_route((HttpRoute("GET", "/pets", "Pets"),), "GET", "/cats") is None


def test_a_static_segment_beats_a_parameter_at_the_first_place_they_differ() -> None:
    routes = (
        HttpRoute("GET", "/v1/{kind}/latest", "KindLatest"),
        HttpRoute("GET", "/v1/sources/{sourceId}", "Source"),
    )

    assert _routed(routes, "GET", "/v1/sources/latest") == ("Source", {"sourceId": "latest"})


def test_a_full_parameter_match_beats_a_greedy_route_with_a_longer_static_prefix() -> None:
    routes = (
        HttpRoute("GET", "/v1/sources/x/{proxy+}", "Greedy"),
        HttpRoute("GET", "/v1/{a}/{b}/{c}", "Params"),
    )

    assert _routed(routes, "GET", "/v1/sources/x/y") == ("Params", {"a": "sources", "b": "x", "c": "y"})


def test_the_longest_greedy_prefix_wins() -> None:
    routes = (HttpRoute("ANY", "/{proxy+}", "Root"), HttpRoute("ANY", "/files/{path+}", "Files"))

    assert _routed(routes, "PUT", "/files/a/b.txt") == ("Files", {"path": "a/b.txt"})


def test_a_routes_own_method_beats_any_on_the_same_path() -> None:
    routes = (HttpRoute("ANY", "/pets/{id}", "Any"), HttpRoute("GET", "/pets/{id}", "Get"))

    assert _routed(routes, "GET", "/pets/7") == ("Get", {"id": "7"})
    assert _routed(routes, "PATCH", "/pets/7") == ("Any", {"id": "7"})


def test_a_static_path_beats_a_parameter_path_whatever_their_methods() -> None:
    # AWS documents no order between these two full matches; the more specific path is taken.
    routes = (HttpRoute("GET", "/pets/{id}", "GetPet"), HttpRoute("ANY", "/pets/dog", "AnyDog"))

    assert _routed(routes, "GET", "/pets/dog") == ("AnyDog", {})


def test_path_parameters_are_decoded_but_matching_is_case_sensitive() -> None:
    routes = (HttpRoute("GET", "/v1/profiles/{profileRef}", "Profile"),)

    assert _routed(routes, "GET", "/v1/profiles/email%3Aa%40b.com") == (
        "Profile",
        {"profileRef": "email:a@b.com"},
    )
    assert _routed(routes, "GET", "/V1/profiles/x") is None


def test_a_trailing_slash_is_significant() -> None:
    routes = (HttpRoute("GET", "/v1/sources", "List"), HttpRoute("GET", "/v1/sources/{id}", "One"))

    assert _routed(routes, "GET", "/v1/sources/") is None


def test_a_greedy_variable_needs_a_segment_after_its_prefix() -> None:
    routes = (HttpRoute("GET", "/files/{proxy+}", "Files"),)

    assert _routed(routes, "GET", "/files") is None
    assert _routed(routes, "GET", "/files/") == ("Files", {"proxy": ""})


def test_head_is_its_own_method() -> None:
    routes = (HttpRoute("GET", "/pets", "Get"), HttpRoute("ANY", "/pets", "Any"))

    assert _routed(routes, "HEAD", "/pets") == ("Any", {})
    assert _routed(routes[:1], "HEAD", "/pets") is None


# ------------------------------------------------------------------------------------------ the event


def test_event_has_the_payload_2_0_shape() -> None:
    request = HttpRequest(
        "POST",
        "/v1/sources/src-1/events",
        "debug=1",
        headers=(("Content-Type", "application/json"), ("User-Agent", "curl/8.5")),
        body=b'{"type":"track"}',
        source_ip="10.1.2.3",
    )

    event = _event(request)

    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /v1/sources/{sourceId}/events"
    assert event["rawPath"] == "/v1/sources/src-1/events"
    assert event["rawQueryString"] == "debug=1"
    assert event["pathParameters"] == {"sourceId": "src-1"}
    assert event["body"] == '{"type":"track"}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"] == {
        "accountId": "123456789012",
        "apiId": "a1b2c3d4e5",
        "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        "domainPrefix": "a1b2c3d4e5",
        "http": {
            "method": "POST",
            "path": "/v1/sources/src-1/events",
            "protocol": "HTTP/1.1",
            "sourceIp": "10.1.2.3",
            "userAgent": "curl/8.5",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "POST /v1/sources/{sourceId}/events",
        "stage": "$default",
        "time": "04/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    }
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", event["headers"]["x-amzn-trace-id"])
    json.dumps(event)  # a Lambda event is JSON


def test_optional_members_are_absent_not_null() -> None:
    event = _event(HttpRequest("GET", "/v1/sources/src-1/events"), path_parameters={})

    for member in ("cookies", "queryStringParameters", "body", "pathParameters", "stageVariables"):
        assert member not in event
    assert event["isBase64Encoded"] is False
    assert event["rawQueryString"] == ""


def test_header_names_are_lower_cased_and_repeats_joined_with_commas() -> None:
    request = HttpRequest(
        "GET",
        "/v1/sources/src-1/events",
        headers=(("X-Tag", "a"), ("x-tag", "b"), ("Accept", "*/*")),
    )

    headers = _event(request)["headers"]

    assert headers["x-tag"] == "a,b"
    assert headers["accept"] == "*/*"
    assert not any(name != name.lower() for name in headers)


def test_repeated_query_keys_are_joined_and_the_raw_query_is_kept() -> None:
    raw = "tag=a&tag=b%20c&empty=&q=x%2By"

    event = _event(HttpRequest("GET", "/v1/sources/src-1/events", raw))

    assert event["rawQueryString"] == raw
    assert event["queryStringParameters"] == {"tag": "a,b c", "empty": "", "q": "x+y"}


def test_cookie_headers_become_the_cookies_list() -> None:
    request = HttpRequest(
        "GET",
        "/v1/sources/src-1/events",
        headers=(("Cookie", "session=abc; theme=dark"), ("Cookie", "ajs_anonymous_id=x1")),
    )

    event = _event(request)

    assert event["cookies"] == ["session=abc", "theme=dark", "ajs_anonymous_id=x1"]
    assert "cookie" not in event["headers"]


def test_hop_by_hop_headers_are_dropped_and_a_chunked_body_gets_its_length() -> None:
    request = _post(
        b"hello",
        ("Transfer-Encoding", "chunked"),
        ("Connection", "keep-alive"),
        ("Content-Type", "text/plain"),
    )

    headers = _event(request)["headers"]

    assert "transfer-encoding" not in headers
    assert "connection" not in headers
    assert headers["content-length"] == "5"


def test_the_client_address_is_appended_to_x_forwarded_for() -> None:
    request = HttpRequest("GET", "/x", headers=(("X-Forwarded-For", "203.0.113.9"),), source_ip="10.0.0.5")

    headers = _event(request)["headers"]

    assert headers["x-forwarded-for"] == "203.0.113.9, 10.0.0.5"
    assert headers["x-forwarded-proto"] == "http"


def test_a_gzip_json_body_arrives_base64_encoded() -> None:
    payload = json.dumps({"batch": [{"type": "track", "event": "Order Completed"}]}).encode()
    compressed = gzip.compress(payload)

    event = _event(_post(compressed, ("Content-Type", "application/json"), ("Content-Encoding", "gzip")))

    assert event["isBase64Encoded"] is True
    assert gzip.decompress(base64.b64decode(event["body"])) == payload
    assert event["headers"]["content-encoding"] == "gzip"


def test_a_binary_body_arrives_base64_encoded() -> None:
    data = bytes(range(256))

    event = _event(_post(data, ("Content-Type", "application/octet-stream")))

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data


def test_text_declared_bytes_that_are_not_utf8_arrive_base64_encoded() -> None:
    event = _event(_post(b"caf\xe9", ("Content-Type", "text/plain; charset=latin-1")))

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"caf\xe9"


@pytest.mark.parametrize(
    ("content_type", "content_encoding", "as_text"),
    [
        ("application/json", None, True),
        ("Application/JSON; charset=utf-8", None, True),
        ("text/plain", None, True),
        ("text/csv", "identity", True),
        ("application/xml", None, True),
        ("application/javascript", None, True),
        ("application/json", "gzip", False),
        ("text/plain", "br", False),
        ("application/octet-stream", None, False),
        ("image/png", None, False),
        ("application/x-www-form-urlencoded", None, False),
        (None, None, False),
    ],
)
def test_which_bodies_are_text(content_type: str | None, content_encoding: str | None, as_text: bool) -> None:
    assert is_text_body(content_type, content_encoding) is as_text


# ------------------------------------------------------------------------------------------ responses


def _result(payload: Any = None, error: dict[str, Any] | None = None) -> InvocationResult:
    return InvocationResult("Collect", "req-1", payload=payload, error=error)


def test_a_structured_response_is_used_as_given_with_one_set_cookie_per_cookie() -> None:
    status, headers, body = map_response(
        _result(
            {
                "statusCode": 201,
                "headers": {"content-type": "application/json", "x-request-id": "r1", "x-count": 3},
                "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
                "body": '{"ok":true}',
            }
        )
    )

    assert status == 201
    assert ("content-type", "application/json") in headers
    assert ("x-count", "3") in headers
    assert [value for name, value in headers if name == "Set-Cookie"] == ["a=1; Path=/", "b=2; HttpOnly"]
    assert body == b'{"ok":true}'


def test_a_base64_response_body_is_decoded() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00"

    status, _, body = map_response(
        _result({"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(png).decode()})
    )

    assert (status, body) == (200, png)


def test_a_response_without_body_is_empty_and_multi_value_headers_are_ignored() -> None:
    status, headers, body = map_response(_result({"statusCode": 204, "multiValueHeaders": {"x-a": ["1", "2"]}}))

    assert (status, headers, body) == (204, [], b"")


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        ({"message": "Hello from Lambda!"}, b'{"message": "Hello from Lambda!"}'),
        ("Hello from Lambda!", b'"Hello from Lambda!"'),
        (42, b"42"),
        (None, b"null"),
        ([1, 2], b"[1, 2]"),
    ],
)
def test_any_other_value_is_a_200_json_response(payload: Any, body: bytes) -> None:
    assert map_response(_result(payload)) == (200, [("Content-Type", "application/json")], body)


def test_a_value_that_is_not_json_is_an_internal_server_error() -> None:
    status, _, body = map_response(_result({"not", "json"}))

    assert (status, body) == (500, b'{"message":"Internal Server Error"}')


def test_a_function_error_is_an_internal_server_error() -> None:
    error = {"errorType": "KeyError", "errorMessage": "'x'", "stackTrace": []}

    assert map_response(_result(error=error)) == (
        500,
        [("Content-Type", "application/json")],
        b'{"message":"Internal Server Error"}',
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"statusCode": "200", "body": "x"},
        {"statusCode": True, "body": "x"},
        {"statusCode": 700, "body": "x"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!"},
        {"statusCode": 200, "headers": {"x-evil": "a\r\nSet-Cookie: b=1"}},
        {"statusCode": 200, "headers": ["content-type", "text/plain"]},
        {"statusCode": 200, "cookies": "a=1"},
    ],
)
def test_a_malformed_structured_response_is_an_internal_server_error(payload: dict[str, Any]) -> None:
    status, _, body = map_response(_result(payload))

    assert (status, body) == (500, b'{"message":"Internal Server Error"}')


# ------------------------------------------------------------------------------------------ CORS


def test_cors_origins_match_exactly_by_wildcard_or_by_scheme_wildcard() -> None:
    exact = CorsConfig(allow_origins=("https://app.example.com",))
    scheme = CorsConfig(allow_origins=("https://*",))
    anything = CorsConfig(allow_origins=("*",))

    assert cors_allow_origin(exact, "https://app.example.com") == "https://app.example.com"
    assert cors_allow_origin(exact, "https://evil.example.com") is None
    assert cors_allow_origin(scheme, "https://x.test") == "https://x.test"
    assert cors_allow_origin(scheme, "http://x.test") is None
    assert cors_allow_origin(anything, "http://localhost:3000") == "*"


def test_preflight_headers_carry_the_configuration() -> None:
    cors = CorsConfig(
        allow_origins=("https://app.example.com",),
        allow_methods=("GET", "POST"),
        allow_headers=("authorization", "content-type"),
        max_age=600,
        allow_credentials=True,
    )

    assert cors_preflight_headers(cors, "https://app.example.com") == [
        ("Access-Control-Allow-Origin", "https://app.example.com"),
        ("Access-Control-Allow-Methods", "GET,POST"),
        ("Access-Control-Allow-Headers", "authorization,content-type"),
        ("Access-Control-Max-Age", "600"),
        ("Access-Control-Allow-Credentials", "true"),
    ]
    assert cors_preflight_headers(cors, "https://other.example.com") == []


def test_response_headers_expose_configured_headers_only_to_allowed_origins() -> None:
    cors = CorsConfig(allow_origins=("*",), expose_headers=("retry-after", "x-request-id"))

    assert cors_response_headers(cors, "https://a.test") == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "retry-after,x-request-id"),
    ]
    assert cors_response_headers(CorsConfig(allow_origins=("https://b.test",)), "https://a.test") == []


# ------------------------------------------------------------------------------------------ throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)

    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token at 2 per second
    assert [bucket.try_acquire() for _ in range(2)] == [True, False]
    clock.now += 60  # refilling stops at the burst size
    assert sum(bucket.try_acquire() for _ in range(10)) == 3


def test_a_zero_burst_throttles_everything() -> None:
    bucket = TokenBucket(rate=1000, burst=0, clock=FakeClock())

    assert not bucket.try_acquire()
