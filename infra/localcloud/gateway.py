"""The local cloud's HTTP gateway: Amazon API Gateway HTTP APIs with Lambda proxy integrations, payload 2.0.

The pure functions here carry the API Gateway semantics and are tested on their own:

* `match_route` - route selection: a full match (static segments beating `{param}` ones), then a
  greedy `{proxy+}` match (longest prefix first), then `$default`; a route's own method beats `ANY`.
* `build_http_event` - the version 2.0 event a Lambda function receives.
* `map_response` - how API Gateway turns the function's answer into an HTTP response.
* `cors_*` and `TokenBucket` - the API's CORS configuration and its route throttling.

`HttpGateway` serves them over real HTTP/1.1 (keep-alive, chunked request bodies, one thread per
connection), so SDKs with connection pools and browsers can talk to the local cloud unchanged.
Sources for each behaviour are named where it is implemented; where AWS does not document a
behaviour the choice made is said so in place.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

from infra.localcloud.http_server import LocalHttpServer
from infra.localcloud.model import CorsConfig, HttpApiSpec, HttpRoute, InvocationResult

logger = logging.getLogger(__name__)

Invoke = Callable[[str, dict[str, Any]], InvocationResult]
Control = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
Headers = list[tuple[str, str]]
Response = tuple[int, Headers, bytes]

CONTROL_PREFIX = "/_localcloud/"
# "HTTP API quotas": maximum integration timeout 30 seconds, payload size 10 MB; neither adjustable.
INTEGRATION_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 10 * 1024 * 1024

# AWS does not list which request bodies reach the function as text. This split is the one reported
# as observed on live HTTP APIs (text/* and these three; form-urlencoded and a missing Content-Type
# arrive base64-encoded), so handlers written against it decode exactly as they will in AWS.
_TEXT_MEDIA_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
# Connection-level headers describe the hop to the gateway, not the request the function sees.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
# The gateway computes these itself for what it actually sends.
_RESPONSE_FRAMING = _HOP_BY_HOP | {"content-length"}
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _message_body(status: HTTPStatus) -> bytes:
    # API Gateway's own errors are compact JSON, e.g. {"message":"Not Found"}.
    return json.dumps({"message": status.phrase}, separators=(",", ":")).encode()


def gateway_error(status: HTTPStatus) -> Response:
    """An error in API Gateway's own shape, e.g. 404 {"message":"Not Found"}."""
    return int(status), [("Content-Type", "application/json")], _message_body(status)


# ---------------------------------------------------------------------------------------------- request


@dataclass(frozen=True)
class HttpRequest:
    """One request as received, before any API Gateway interpretation."""

    method: str
    raw_path: str  # percent-encoded, as on the request line
    raw_query: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # in arrival order, repeated names kept
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    server_port: int = 443
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The first value of a header, matched case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


# ---------------------------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    # literal text, or None where a {param} sits; a greedy {proxy+} is not part of it
    segments: tuple[str | None, ...]
    param_names: tuple[str, ...]
    greedy_name: str | None
    rank: tuple[Any, ...]


@dataclass(frozen=True)
class _RouteTable:
    compiled: tuple[_CompiledRoute, ...]
    default: HttpRoute | None


def _compile_route(route: HttpRoute) -> _CompiledRoute:
    segments: list[str | None] = []
    names: list[str] = []
    greedy: str | None = None
    for part in route.path.split("/")[1:]:
        if part.startswith("{") and part.endswith("+}"):
            greedy = part[1:-2]  # AWS only accepts a greedy variable as the last segment
            break
        if part.startswith("{") and part.endswith("}"):
            segments.append(None)
            names.append(part[1:-1])
        else:
            segments.append(part)
    literal_mask = tuple(segment is not None for segment in segments)
    method_exact = route.method != "ANY"
    # Higher ranks win. Full matches outrank greedy ones; among full matches a static segment
    # beats a {param} at the first place they differ ("GET /pets/dog/1" over "GET /pets/dog/{id}");
    # among greedy ones the longer prefix wins. A route's own method beats ANY for the same path.
    rank: tuple[Any, ...] = (
        (1, literal_mask, method_exact) if greedy is None else (0, len(segments), literal_mask, method_exact)
    )
    return _CompiledRoute(route, tuple(segments), tuple(names), greedy, rank)


@lru_cache(maxsize=16)
def _route_table(routes: tuple[HttpRoute, ...]) -> _RouteTable:
    default = next((route for route in routes if route.path == "$default"), None)
    compiled = tuple(_compile_route(route) for route in routes if route.path != "$default")
    return _RouteTable(compiled, default)


def _bind(candidate: _CompiledRoute, parts: Sequence[str]) -> dict[str, str] | None:
    fixed = candidate.segments
    if candidate.greedy_name is None:
        if len(parts) != len(fixed):
            return None
    elif len(parts) <= len(fixed):
        # {proxy+} needs something after its prefix: "/files" does not match "/files/{proxy+}",
        # "/files/" does (with an empty value), as .NET's Lambda test tool also models it.
        return None
    values: list[str] = []
    for expected, actual in zip(fixed, parts, strict=False):
        if expected is None:
            if not actual:  # "/pets/" does not fill "/pets/{id}"
                return None
            values.append(actual)
        elif expected != actual:
            return None
    params = dict(zip(candidate.param_names, values, strict=True))
    if candidate.greedy_name is not None:
        params[candidate.greedy_name] = "/".join(parts[len(fixed) :])
    return params


def control_path_collisions(api: HttpApiSpec) -> list[str]:
    """The API's routes that the local cloud's control endpoints (under /_localcloud/) would hide.

    Only routes naming the prefix literally count: a `{proxy+}` or `$default` route would see such a
    request on AWS too, but nobody writes one expecting it.
    """
    stage = "" if api.stage == "$default" else f"/{api.stage}"
    return [
        f"{api.logical_id}: route {route.route_key} is hidden by the local cloud's control endpoints {CONTROL_PREFIX}"
        for route in api.routes
        if route.path != "$default" and (stage + route.path + "/").startswith(CONTROL_PREFIX)
    ]


def match_route(routes: Sequence[HttpRoute], method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
    """The route API Gateway selects for `method` and the percent-encoded `path`, with its path
    parameters (decoded, as API Gateway passes them), or None when it answers 404.

    Priorities follow "Routing API requests" in the HTTP API guide: full match, then greedy
    `{proxy+}`, then `$default`. Paths are case-sensitive and a trailing slash is significant
    (HTTP API routes cannot end in one, so "/v1/sources/" matches no "/v1/sources" route).
    """
    table = _route_table(tuple(routes))
    parts = [unquote(part) for part in path.split("/")[1:]]
    best: tuple[HttpRoute, dict[str, str]] | None = None
    best_rank: tuple[Any, ...] | None = None
    for candidate in table.compiled:
        if candidate.route.method not in (method, "ANY"):
            continue
        if best_rank is not None and candidate.rank <= best_rank:
            continue
        params = _bind(candidate, parts)
        if params is not None:
            best, best_rank = (candidate.route, params), candidate.rank
    if best is not None:
        return best
    return (table.default, {}) if table.default is not None else None


# ---------------------------------------------------------------------------------------------- event


def is_text_body(content_type: str | None, content_encoding: str | None) -> bool:
    """Whether API Gateway hands the body to the function as a string rather than base64.

    Any content coding (gzip, br...) makes the bytes binary whatever the media type says:
    HTTP APIs do not decompress request bodies.
    """
    if content_encoding and content_encoding.strip().lower() != "identity":
        return False
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in _TEXT_MEDIA_TYPES


def _event_headers(request: HttpRequest) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            # Payload 2.0 moves every Cookie header into `cookies`, one entry per cookie.
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif key not in _HOP_BY_HOP:
            headers[key] = f"{headers[key]},{value}" if key in headers else value
    if request.body and "content-length" not in headers:  # a chunked body arrives de-chunked
        headers["content-length"] = str(len(request.body))
    forwarded_for = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip
    headers["x-forwarded-port"] = str(request.server_port)
    headers["x-forwarded-proto"] = "http"
    return headers, cookies


def _query_parameters(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def _clf_time(epoch_s: float) -> str:
    # Built by hand because strftime's %b follows the process locale; AWS always writes English.
    t = time.gmtime(epoch_s)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def new_request_id() -> str:
    """An id shaped like API Gateway's, e.g. "JKJaXmPLvHcESHA="."""
    return base64.b64encode(os.urandom(11)).decode("ascii")


def build_http_event(
    request: HttpRequest,
    *,
    api: HttpApiSpec,
    route: HttpRoute,
    path_parameters: dict[str, str],
    request_id: str,
    account_id: str,
    region: str,
    epoch_ms: int,
) -> dict[str, Any]:
    """The payload format 2.0 event for `request` routed to `route`.

    Optional members (cookies, queryStringParameters, body, pathParameters, stageVariables) are
    absent rather than null, as in AWS: strict parsers such as Powertools' reject null there.
    """
    headers, cookies = _event_headers(request)
    headers.setdefault("x-amzn-trace-id", f"Root=1-{epoch_ms // 1000:08x}-{os.urandom(12).hex()}")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = _query_parameters(request.raw_query)
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": api.api_id,
        "domainName": f"{api.api_id}.execute-api.{region}.amazonaws.com",
        "domainPrefix": api.api_id,
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": api.stage,
        "time": _clf_time(epoch_ms / 1000),
        "timeEpoch": epoch_ms,
    }
    is_base64 = False
    if request.body:
        text: str | None = None
        if is_text_body(headers.get("content-type"), headers.get("content-encoding")):
            try:
                text = request.body.decode("utf-8")
            except UnicodeDecodeError:
                text = None  # a JSON string cannot carry these bytes, so they travel as base64
        if text is None:
            text, is_base64 = base64.b64encode(request.body).decode("ascii"), True
        event["body"] = text
    if path_parameters:
        event["pathParameters"] = path_parameters
    event["isBase64Encoded"] = is_base64
    return event


# ---------------------------------------------------------------------------------------------- response


class MalformedResponseError(ValueError):
    """The function answered with a statusCode but the rest cannot form an HTTP response."""


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    else:
        raise MalformedResponseError(f"header {name!r} has a {type(value).__name__} value")
    if "\r" in text or "\n" in text:
        raise MalformedResponseError(f"header {name!r} contains a line break")
    return text


def _structured_response(payload: dict[str, Any]) -> Response:
    status = payload["statusCode"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status!r} is not an HTTP status")
    raw_headers = payload.get("headers") or {}
    cookies = payload.get("cookies") or []
    if not isinstance(raw_headers, dict):
        raise MalformedResponseError("headers is not an object")
    if not isinstance(cookies, list):
        raise MalformedResponseError("cookies is not a list")
    headers = [(str(name), _header_value(str(name), value)) for name, value in raw_headers.items()]
    headers.extend(("Set-Cookie", _header_value("Set-Cookie", cookie)) for cookie in cookies)
    body = payload.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise MalformedResponseError(f"body is a {type(body).__name__}, not a string")
    elif payload.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponseError("isBase64Encoded is true but body is not base64") from exc
    else:
        data = body.encode("utf-8")
    return status, headers, data


def map_response(result: InvocationResult) -> Response:
    """The HTTP response API Gateway derives from a Lambda invocation (payload format 2.0).

    A function error becomes 500 {"message":"Internal Server Error"}; an object with statusCode is
    used as given (multiValueHeaders belongs to format 1.0 and is ignored); any other JSON value is
    sent as a 200 application/json body, the inference the Lambda proxy guide describes.
    """
    if result.error is not None:
        return gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
    payload = result.payload
    if isinstance(payload, dict) and "statusCode" in payload:
        try:
            return _structured_response(payload)
        except MalformedResponseError as exc:
            logger.warning("function %s returned a malformed response: %s", result.function_id, exc)
            return gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
    try:
        body = json.dumps(payload).encode("utf-8")
    except (TypeError, ValueError):
        # A real Invoke payload is always JSON; an in-process `invoke` may hand over anything.
        logger.warning("function %s returned a value that is not JSON", result.function_id)
        return gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
    return 200, [("Content-Type", "application/json")], body


# ---------------------------------------------------------------------------------------------- CORS


def cors_allow_origin(cors: CorsConfig, origin: str) -> str | None:
    """The Access-Control-Allow-Origin value for `origin`, or None when it is not allowed.

    AllowOrigins takes exact origins, "*", and a scheme wildcard such as "https://*".
    """
    wanted = origin.lower()
    for allowed in cors.allow_origins:
        if allowed == "*":
            return "*"
        pattern = allowed.lower()
        if wanted == pattern or (pattern.endswith("*") and wanted.startswith(pattern[:-1])):
            return origin
    return None


def _credentials(cors: CorsConfig) -> Headers:
    return [("Access-Control-Allow-Credentials", "true")] if cors.allow_credentials else []


def cors_preflight_headers(cors: CorsConfig, origin: str) -> Headers:
    """Headers of the 204 API Gateway sends itself for a preflight (Origin and
    Access-Control-Request-Method present); none when the origin is not allowed."""
    allow_origin = cors_allow_origin(cors, origin)
    if allow_origin is None:
        return []
    headers = [("Access-Control-Allow-Origin", allow_origin)]
    if cors.allow_methods:
        headers.append(("Access-Control-Allow-Methods", ",".join(cors.allow_methods)))
    if cors.allow_headers:
        headers.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
    if cors.max_age is not None:
        headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    return headers + _credentials(cors)


def cors_response_headers(cors: CorsConfig, origin: str) -> Headers:
    """Headers API Gateway adds to an integration's response to a request from `origin`."""
    allow_origin = cors_allow_origin(cors, origin)
    if allow_origin is None:
        return []
    headers = [("Access-Control-Allow-Origin", allow_origin)]
    if cors.expose_headers:
        headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    return headers + _credentials(cors)


# ---------------------------------------------------------------------------------------------- throttling


class TokenBucket:
    """API Gateway's throttle: `rate` tokens a second into a bucket holding at most `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


def _route_buckets(api: HttpApiSpec) -> dict[str, TokenBucket]:
    if api.throttle_rate is None:
        return {}
    burst = api.throttle_burst if api.throttle_burst is not None else max(1, int(api.throttle_rate))
    # DefaultRouteSettings limit each route, not the API as a whole, so every route gets a bucket.
    return {route.route_key: TokenBucket(api.throttle_rate, burst) for route in api.routes}


# ---------------------------------------------------------------------------------------------- server


class _BadRequestError(Exception):
    pass


class _TooLargeError(Exception):
    pass


def _read_chunked(rfile: io.BufferedIOBase, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(65537)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequestError from exc
        if size < 0:
            raise _BadRequestError
        if size == 0:
            break
        total += size
        if total > limit:
            raise _TooLargeError
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.readline(65537).strip():
            raise _BadRequestError
        chunks.append(chunk)
    while rfile.readline(65537).strip():  # trailer fields carry nothing the event has room for
        pass
    return b"".join(chunks)


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    # Formatting the Date header costs more than the rest of the framing; it changes once a second.
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]


class _Server(LocalHttpServer):
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: HttpGateway) -> None:
        self.gateway = gateway
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "localcloud-apigw"
    sys_version = ""

    def handle_expect_100(self) -> bool:
        # Refuse an oversized upload before the client sends it, as a 100-continue allows.
        length = self.headers.get("Content-Length", "")
        gateway = cast(_Server, self.server).gateway
        if length.isdigit() and int(length) > gateway.max_body_bytes:
            self.close_connection = True
            self._send(gateway_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE), new_request_id())
            return False
        return super().handle_expect_100()

    def _serve(self) -> None:
        gateway_server = cast(_Server, self.server)
        gateway = gateway_server.gateway
        request_id = new_request_id()
        try:
            body = self._read_body(gateway.max_body_bytes)
        except _TooLargeError:
            self.close_connection = True  # the rest of the upload is still on the wire
            self._send(gateway_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE), request_id)
            return
        except _BadRequestError:
            self.close_connection = True
            self._send(gateway_error(HTTPStatus.BAD_REQUEST), request_id)
            return
        raw_path, _, raw_query = self.path.partition("?")
        request = HttpRequest(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=tuple(self.headers.items()),
            body=body,
            source_ip=str(self.client_address[0]),
            server_port=gateway_server.server_port,
            protocol=self.request_version,
        )
        response = gateway.dispatch(request, request_id)
        self._send(response, request_id)
        logger.debug('%s "%s %s" %s %s', request_id, self.command, raw_path, response[0], len(response[2]))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, made-up ones) is routed like the rest, so it gets
        # API Gateway's 404 JSON instead of http.server's 501 HTML page.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile, limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _BadRequestError
        length = int(length_text)
        if length > limit:
            raise _TooLargeError
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequestError
        return body

    def _send(self, response: Response, request_id: str) -> None:
        status, headers, body = response
        lines = [
            f"HTTP/1.1 {status} {_PHRASES.get(status, '')}",
            f"Date: {_http_date()}",
            *(f"{name}: {value}" for name, value in headers),
            f"apigw-requestid: {request_id}",
            f"Connection: {'close' if self.close_connection else 'keep-alive'}",
        ]
        bodiless = status < 200 or status in (204, 304)
        if not bodiless:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        # One write per response: separate header and body writes meet Nagle and delayed ACKs.
        self.wfile.write(head if bodiless or self.command == "HEAD" else head + body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class HttpGateway:
    """An HTTP API served on `host:port`, invoking functions through `invoke(function_id, event)`.

    Requests under /_localcloud/ go to `control(method, path, query, body)` when one is given.
    """

    # A class attribute so tests can shorten it; AWS's 30 s cannot be changed.
    integration_timeout_s = INTEGRATION_TIMEOUT_S

    def __init__(
        self,
        api: HttpApiSpec,
        invoke: Invoke,
        *,
        host: str,
        port: int,
        region: str,
        account_id: str,
        control: Control | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        other_formats = sorted({route.payload_format for route in api.routes} - {"2.0"})
        if other_formats:
            # Serving a 2.0 event to a function written for 1.0 would fail in confusing ways.
            raise ValueError(f"{api.logical_id}: payload format {', '.join(other_formats)} is not emulated")
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.url = f"http://{host}:{port}"
        self._invoke = invoke
        self._control = control
        self._host = host
        self._port = port
        self._region = region
        self._account_id = account_id
        self._buckets = _route_buckets(api)
        self._stage_prefix = "" if api.stage == "$default" else f"/{api.stage}"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the gateway is already running")
        self._server = _Server((self._host, self._port), self)
        port = self._server.server_address[1]
        url_host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self.url = f"http://{url_host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http-gateway-{self.api.logical_id}",
            daemon=True,
        )
        self._thread.start()
        logger.info("HTTP API %s listening on %s", self.api.logical_id, self.url)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def dispatch(self, request: HttpRequest, request_id: str) -> Response:
        """Answer one request the way API Gateway would, without any socket."""
        if self._control is not None and request.raw_path.startswith(CONTROL_PREFIX):
            return self._call_control(request)
        cors = self.api.cors
        origin = request.header("origin") if cors is not None else None
        preflight = request.method == "OPTIONS" and request.header("access-control-request-method")
        if cors is not None and origin and preflight:
            # Preflights are answered for every path, with or without an OPTIONS route.
            return 204, cors_preflight_headers(cors, origin), b""
        matched = self._match(request)
        if matched is None:
            return gateway_error(HTTPStatus.NOT_FOUND)
        route, path_parameters = matched
        bucket = self._buckets.get(route.route_key)
        if bucket is not None and not bucket.try_acquire():
            return gateway_error(HTTPStatus.TOO_MANY_REQUESTS)
        status, headers, body = self._integrate(request, request_id, route, path_parameters)
        headers = [(name, value) for name, value in headers if name.lower() not in _RESPONSE_FRAMING]
        if cors is not None:
            # With CORS configured API Gateway ignores the integration's own CORS headers.
            headers = [h for h in headers if not h[0].lower().startswith("access-control-")]
            if origin:
                headers.extend(cors_response_headers(cors, origin))
        return status, headers, body

    def _match(self, request: HttpRequest) -> tuple[HttpRoute, dict[str, str]] | None:
        path = request.raw_path
        if self._stage_prefix:
            # A named stage is the first path segment; rawPath still includes it, as in AWS.
            if path != self._stage_prefix and not path.startswith(self._stage_prefix + "/"):
                return None
            path = path[len(self._stage_prefix) :] or "/"
        return match_route(self.api.routes, request.method, path)

    def _integrate(
        self,
        request: HttpRequest,
        request_id: str,
        route: HttpRoute,
        path_parameters: dict[str, str],
    ) -> Response:
        now = time.time()
        event = build_http_event(
            request,
            api=self.api,
            route=route,
            path_parameters=path_parameters,
            request_id=request_id,
            account_id=self._account_id,
            region=self._region,
            epoch_ms=int(now * 1000),
        )
        started = time.monotonic()
        try:
            result = self._invoke(route.function_id, event)
        except Exception:
            logger.exception("invoking %s for %s failed", route.function_id, route.route_key)
            return gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
        elapsed = time.monotonic() - started
        if elapsed > self.integration_timeout_s:
            # AWS stops waiting at the timeout; the local runtime bounds the wait by the function's
            # own Timeout instead, and the late answer is discarded the same way.
            logger.warning(
                "%s took %.1f s, over the %.0f s integration timeout",
                route.function_id,
                elapsed,
                self.integration_timeout_s,
            )
            return gateway_error(HTTPStatus.SERVICE_UNAVAILABLE)
        if result.error is not None:
            logger.info("%s failed: %s", route.function_id, result.error.get("errorMessage"))
        return map_response(result)

    def _call_control(self, request: HttpRequest) -> Response:
        assert self._control is not None
        try:
            status, headers, body = self._control(
                request.method, request.raw_path, _query_parameters(request.raw_query), request.body
            )
        except Exception:
            logger.exception("control request %s %s failed", request.method, request.raw_path)
            return gateway_error(HTTPStatus.INTERNAL_SERVER_ERROR)
        return status, list(headers.items()), body
