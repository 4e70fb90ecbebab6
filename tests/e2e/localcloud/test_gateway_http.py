"""The HTTP gateway over real sockets on 127.0.0.1.

`invoke` is a recording double that answers from a script: the Lambda runtime behind it is tested
on its own, here only the gateway is under test.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.localcloud.gateway import HttpGateway
from infra.localcloud.model import CorsConfig, HttpApiSpec, HttpRoute, InvocationResult

pytestmark = pytest.mark.timeout(60)

CORS = CorsConfig(
    allow_origins=("https://app.example.com",),
    allow_methods=("GET", "POST", "OPTIONS"),
    allow_headers=("authorization", "content-type", "content-encoding"),
    expose_headers=("retry-after", "x-request-id"),
    max_age=600,
)
ROUTES = (
    HttpRoute("POST", "/v1/track", "CollectFunction"),
    HttpRoute("GET", "/v1/sources/{sourceId}", "AdminFunction"),
    HttpRoute("ANY", "/v1/files/{proxy+}", "FilesFunction"),
)


def _api(**changes: Any) -> HttpApiSpec:
    values: dict[str, Any] = {
        "logical_id": "HttpApi",
        "api_id": "localapi01",
        "stage": "$default",
        "routes": ROUTES,
        "cors": CORS,
        "throttle_rate": None,
        "throttle_burst": None,
    }
    values.update(changes)
    return HttpApiSpec(**values)


Answer = Callable[[dict[str, Any]], InvocationResult]


@dataclass
class RecordingInvoke:
    """Records every (function id, event) and answers with `answer`."""

    answer: Answer = field(
        default=lambda event: InvocationResult(
            "fn", "req", {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}
        )
    )
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, function_id: str, event: dict[str, Any]) -> InvocationResult:
        with self.lock:
            self.calls.append((function_id, event))
        return self.answer(event)

    @property
    def last_event(self) -> dict[str, Any]:
        return self.calls[-1][1]


GatewayFactory = Callable[..., tuple[HttpGateway, RecordingInvoke]]


@pytest.fixture
def start_gateway() -> Iterator[GatewayFactory]:
    started: list[HttpGateway] = []

    def start(
        api: HttpApiSpec | None = None, answer: Answer | None = None, **options: Any
    ) -> tuple[HttpGateway, RecordingInvoke]:
        invoke = RecordingInvoke() if answer is None else RecordingInvoke(answer)
        gateway = HttpGateway(
            api or _api(),
            invoke,
            host="127.0.0.1",
            port=0,
            region="us-east-1",
            account_id="123456789012",
            **options,
        )
        gateway.start()
        started.append(gateway)
        return gateway, invoke

    yield start
    for gateway in started:
        gateway.stop()


def _connect(gateway: HttpGateway) -> http.client.HTTPConnection:
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=10)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _send(
    gateway: HttpGateway,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> Reply:
    connection = conn or _connect(gateway)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        if conn is None:
            connection.close()


def _answer(payload: Any) -> Answer:
    return lambda event: InvocationResult("fn", event["requestContext"]["requestId"], payload)


# ------------------------------------------------------------------------------------------ events


def test_path_parameters_headers_and_query_reach_the_function(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()

    reply = _send(
        gateway,
        "GET",
        "/v1/sources/src%2042?limit=5&tag=a&tag=b",
        headers={"X-Api-Key": "k-1", "Cookie": "session=s1; theme=dark", "User-Agent": "pytest"},
    )

    assert reply.status == 200
    function_id, event = invoke.calls[-1]
    assert function_id == "AdminFunction"
    assert event["routeKey"] == "GET /v1/sources/{sourceId}"
    assert event["rawPath"] == "/v1/sources/src%2042"
    assert event["pathParameters"] == {"sourceId": "src 42"}
    assert event["rawQueryString"] == "limit=5&tag=a&tag=b"
    assert event["queryStringParameters"] == {"limit": "5", "tag": "a,b"}
    assert event["headers"]["x-api-key"] == "k-1"
    assert event["cookies"] == ["session=s1", "theme=dark"]
    assert event["requestContext"]["http"] == {
        "method": "GET",
        "path": "/v1/sources/src%2042",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest",
    }
    assert "body" not in event


def test_the_request_id_is_returned_as_apigw_requestid(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()

    reply = _send(gateway, "GET", "/v1/sources/a")

    assert reply.headers["apigw-requestid"] == invoke.last_event["requestContext"]["requestId"]


def test_a_gzip_json_body_arrives_base64_encoded(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()
    payload = json.dumps({"type": "track", "event": "Signed Up", "userId": "u1"}).encode()

    reply = _send(
        gateway,
        "POST",
        "/v1/track",
        gzip.compress(payload),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert reply.status == 200
    event = invoke.last_event
    assert event["isBase64Encoded"] is True
    assert gzip.decompress(base64.b64decode(event["body"])) == payload


def test_a_plain_json_body_arrives_as_text(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()

    _send(gateway, "POST", "/v1/track", b'{"type":"track"}', {"Content-Type": "application/json"})

    assert invoke.last_event["body"] == '{"type":"track"}'
    assert invoke.last_event["isBase64Encoded"] is False


def test_a_chunked_body_arrives_whole(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()
    conn = _connect(gateway)
    parts = [b'{"type":', b'"track",', b'"event":"x"}']

    conn.request("POST", "/v1/track", body=iter(parts), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()

    assert response.status == 200
    assert invoke.last_event["body"] == b"".join(parts).decode()
    assert invoke.last_event["headers"]["content-length"] == str(len(b"".join(parts)))


def test_a_malformed_chunked_body_is_a_bad_request(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()
    raw = b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n"

    status_line = _raw_exchange(gateway, raw)

    assert status_line.startswith(b"HTTP/1.1 400")
    assert invoke.calls == []


# ------------------------------------------------------------------------------------------ responses


def test_the_function_response_reaches_the_client(start_gateway: GatewayFactory) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    gateway, _ = start_gateway(
        answer=_answer(
            {
                "statusCode": 201,
                "headers": {"content-type": "image/png", "x-request-id": "r-1"},
                "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
                "isBase64Encoded": True,
                "body": base64.b64encode(png).decode(),
            }
        )
    )

    reply = _send(gateway, "GET", "/v1/sources/a")

    assert reply.status == 201
    assert reply.body == png
    assert reply.headers["content-type"] == "image/png"
    assert reply.headers["content-length"] == str(len(png))
    assert reply.headers.get_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_a_plain_return_value_becomes_a_json_200(start_gateway: GatewayFactory) -> None:
    gateway, _ = start_gateway(answer=_answer({"sources": []}))

    reply = _send(gateway, "GET", "/v1/sources/a")

    assert (reply.status, reply.headers["content-type"], reply.json()) == (
        200,
        "application/json",
        {"sources": []},
    )


def test_head_gets_the_length_but_no_body(start_gateway: GatewayFactory) -> None:
    gateway, _ = start_gateway(answer=_answer({"statusCode": 200, "body": "twelve bytes"}))
    conn = _connect(gateway)

    head = _send(gateway, "HEAD", "/v1/files/report.csv", conn=conn)
    after = _send(gateway, "GET", "/v1/files/report.csv", conn=conn)  # the connection is still in step

    assert (head.status, head.headers["content-length"], head.body) == (200, "12", b"")
    assert after.body == b"twelve bytes"
    conn.close()


def test_a_function_error_is_a_500(start_gateway: GatewayFactory) -> None:
    gateway, _ = start_gateway(
        answer=lambda event: InvocationResult(
            "fn", "r", error={"errorType": "ValueError", "errorMessage": "boom", "stackTrace": []}
        )
    )

    reply = _send(gateway, "GET", "/v1/sources/a")

    assert (reply.status, reply.json()) == (500, {"message": "Internal Server Error"})


def test_an_invoke_that_raises_is_a_500(start_gateway: GatewayFactory) -> None:
    def broken(event: dict[str, Any]) -> InvocationResult:
        raise RuntimeError("worker died")

    gateway, _ = start_gateway(answer=broken)

    assert _send(gateway, "GET", "/v1/sources/a").status == 500


def test_an_answer_after_the_integration_timeout_is_a_503(start_gateway: GatewayFactory) -> None:
    def slow(event: dict[str, Any]) -> InvocationResult:
        time.sleep(0.3)
        return InvocationResult("fn", "r", {"statusCode": 200, "body": "late"})

    gateway, _ = start_gateway(answer=slow)
    gateway.integration_timeout_s = 0.1

    reply = _send(gateway, "GET", "/v1/sources/a")

    assert (reply.status, reply.json()) == (503, {"message": "Service Unavailable"})


def test_an_unknown_route_is_a_404_without_invoking(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()

    reply = _send(gateway, "GET", "/v1/nothing-here")

    assert (reply.status, reply.json()) == (404, {"message": "Not Found"})
    assert reply.headers["apigw-requestid"]
    assert invoke.calls == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_a_method_no_route_has_is_a_404_json_like_any_unknown_route(start_gateway: GatewayFactory, method: str) -> None:
    gateway, invoke = start_gateway()

    reply = _send(gateway, method, "/v1/track")

    assert (reply.status, reply.json()) == (404, {"message": "Not Found"})
    assert reply.headers["content-type"] == "application/json"
    assert invoke.calls == []


def test_a_named_stage_is_the_first_path_segment(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway(api=_api(stage="dev"))

    assert _send(gateway, "GET", "/v1/sources/a").status == 404
    assert _send(gateway, "GET", "/dev/v1/sources/a").status == 200
    assert invoke.last_event["rawPath"] == "/dev/v1/sources/a"
    assert invoke.last_event["requestContext"]["stage"] == "dev"


# ------------------------------------------------------------------------------------------ CORS


def test_a_preflight_is_answered_by_the_gateway(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()

    reply = _send(
        gateway,
        "OPTIONS",
        "/v1/track",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "https://app.example.com"
    assert reply.headers["access-control-allow-methods"] == "GET,POST,OPTIONS"
    assert reply.headers["access-control-allow-headers"] == "authorization,content-type,content-encoding"
    assert reply.headers["access-control-max-age"] == "600"
    assert reply.body == b""
    assert invoke.calls == []


def test_a_preflight_from_another_origin_gets_no_cors_headers(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()

    reply = _send(
        gateway,
        "OPTIONS",
        "/v1/track",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )

    assert reply.status == 204
    assert "access-control-allow-origin" not in reply.headers
    assert invoke.calls == []


def test_the_gateway_cors_headers_replace_the_functions(start_gateway: GatewayFactory) -> None:
    gateway, _ = start_gateway(
        answer=_answer(
            {
                "statusCode": 200,
                "headers": {"Access-Control-Allow-Origin": "*", "access-control-max-age": "1"},
                "body": "{}",
            }
        )
    )

    reply = _send(gateway, "GET", "/v1/sources/a", headers={"Origin": "https://app.example.com"})

    assert reply.headers.get_all("access-control-allow-origin") == ["https://app.example.com"]
    assert reply.headers["access-control-expose-headers"] == "retry-after,x-request-id"
    assert "access-control-max-age" not in reply.headers


def test_without_cors_configuration_an_options_request_is_routed(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway(api=_api(cors=None))

    reply = _send(
        gateway,
        "OPTIONS",
        "/v1/files/a",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )

    assert reply.status == 200
    assert invoke.calls[-1][0] == "FilesFunction"


def test_without_cors_configuration_the_default_route_gets_preflights_and_its_cors_headers_pass(
    start_gateway: GatewayFactory,
) -> None:
    # Given an API with no CORS configuration and a $default route (as template.yaml has it),
    # when a browser preflights a path no route declares and then calls an unknown path,
    # then both reach the $default function and its own CORS headers reach the browser untouched.
    echo = {"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true"}
    gateway, invoke = start_gateway(
        api=_api(cors=None, routes=(*ROUTES, HttpRoute("ANY", "$default", "EdgeFunction"))),
        answer=_answer({"statusCode": 204, "headers": echo, "body": ""}),
    )

    preflight = _send(
        gateway,
        "OPTIONS",
        "/v1/t",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    unknown = _send(gateway, "GET", "/nowhere", headers={"Origin": "https://app.example.com"})

    assert [call[0] for call in invoke.calls] == ["EdgeFunction", "EdgeFunction"]
    assert invoke.calls[0][1]["routeKey"] == "$default"
    assert preflight.status == unknown.status == 204
    assert preflight.headers.get_all("access-control-allow-origin") == ["https://app.example.com"]
    assert preflight.headers["access-control-allow-credentials"] == "true"


# ------------------------------------------------------------------------------------------ limits


def test_requests_over_the_burst_are_throttled(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway(api=_api(throttle_rate=0.001, throttle_burst=2))

    statuses = [_send(gateway, "GET", "/v1/sources/a").status for _ in range(3)]
    other_route = _send(gateway, "POST", "/v1/track", b"{}", {"Content-Type": "application/json"})

    assert statuses == [200, 200, 429]
    assert len(invoke.calls) == 3  # two on the throttled route, one on its own bucket
    assert other_route.status == 200
    throttled = _send(gateway, "GET", "/v1/sources/b")
    assert throttled.json() == {"message": "Too Many Requests"}


def test_a_body_over_the_limit_is_refused_without_invoking(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway(max_body_bytes=1024)

    reply = _send(gateway, "POST", "/v1/track", b"x" * 1025, {"Content-Type": "text/plain"})
    at_limit = _send(gateway, "POST", "/v1/track", b"x" * 1024, {"Content-Type": "text/plain"})

    assert (reply.status, reply.json()) == (413, {"message": "Request Entity Too Large"})
    assert reply.headers["connection"] == "close"
    assert at_limit.status == 200
    assert len(invoke.calls) == 1


def test_a_chunked_body_over_the_limit_is_refused(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway(max_body_bytes=1024)
    conn = _connect(gateway)

    conn.request("POST", "/v1/track", body=iter([b"y" * 600, b"y" * 600]))
    response = conn.getresponse()
    response.read()
    conn.close()

    assert response.status == 413
    assert invoke.calls == []


def test_an_oversized_upload_expecting_100_continue_is_refused_before_it_is_sent(
    start_gateway: GatewayFactory,
) -> None:
    gateway, invoke = start_gateway(max_body_bytes=1024)
    raw = b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"

    status_line = _raw_exchange(gateway, raw)

    assert status_line.startswith(b"HTTP/1.1 413")
    assert invoke.calls == []


def _raw_exchange(gateway: HttpGateway, raw: bytes) -> bytes:
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        return sock.makefile("rb").readline()


# ------------------------------------------------------------------------------------------ connections


def test_requests_are_served_concurrently(start_gateway: GatewayFactory) -> None:
    # Every invocation waits until eight are in flight at once; a serial gateway breaks the barrier.
    barrier = threading.Barrier(8, timeout=10)

    def rendezvous(event: dict[str, Any]) -> InvocationResult:
        barrier.wait()
        return InvocationResult("fn", "r", {"statusCode": 200, "body": event["pathParameters"]["sourceId"]})

    gateway, _ = start_gateway(answer=rendezvous)

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda i: _send(gateway, "GET", f"/v1/sources/s{i}"), range(8)))

    assert [(reply.status, reply.body) for reply in replies] == [(200, f"s{i}".encode()) for i in range(8)]


def test_a_connection_is_kept_alive_across_requests(start_gateway: GatewayFactory) -> None:
    gateway, invoke = start_gateway()
    conn = _connect(gateway)

    first = _send(gateway, "GET", "/v1/sources/a", conn=conn)
    sock = conn.sock
    statuses = [_send(gateway, "GET", f"/v1/sources/{i}", conn=conn).status for i in range(5)]

    assert first.headers["connection"] == "keep-alive"
    assert sock is not None
    assert conn.sock is sock
    assert statuses == [200] * 5
    assert len(invoke.calls) == 6
    conn.close()


def test_stop_closes_idle_keep_alive_connections(start_gateway: GatewayFactory) -> None:
    gateway, _ = start_gateway()
    conn = _connect(gateway)
    _send(gateway, "GET", "/v1/sources/a", conn=conn)

    gateway.stop()

    assert conn.sock is not None
    conn.sock.settimeout(5)
    assert conn.sock.recv(1) == b""  # the server closed its end
    conn.close()


# ------------------------------------------------------------------------------------------ control


def test_control_paths_go_to_the_control_callable(start_gateway: GatewayFactory) -> None:
    received: list[tuple[str, str, dict[str, str], bytes]] = []

    def control(method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        received.append((method, path, query, body))
        return 202, {"Content-Type": "application/json"}, b'{"accepted":true}'

    gateway, invoke = start_gateway(control=control)

    reply = _send(gateway, "POST", "/_localcloud/reset?scope=tables", b"{}")

    assert (reply.status, reply.json()) == (202, {"accepted": True})
    assert received == [("POST", "/_localcloud/reset", {"scope": "tables"}, b"{}")]
    assert invoke.calls == []


def test_routes_with_payload_format_1_0_are_refused() -> None:
    api = _api(routes=(HttpRoute("GET", "/legacy", "LegacyFunction", payload_format="1.0"),))

    with pytest.raises(ValueError, match=r"payload format 1\.0"):
        HttpGateway(api, RecordingInvoke(), host="127.0.0.1", port=0, region="us-east-1", account_id="1")
