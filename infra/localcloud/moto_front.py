"""The HTTP server in front of moto: one lean server, and a short path for DynamoDB's JSON calls.

moto's own server (werkzeug) hands each request through werkzeug's request parsing, a domain
dispatcher, Flask and moto's generic response machinery, which parses the body against
botocore's service model and serialises the answer the same way. For the calls the functions
make by the thousand that chain cost several times the work the call asks for. This server:

- frames requests and answers itself (one write per answer, keep-alive, no Nagle), as the local
  API gateway does, and passes every request through the state store's gate;
- answers DynamoDB's item operations (`X-Amz-Target: DynamoDB_20120810.<Operation>`) by calling
  moto's own `DynamoHandler` method for the operation directly — the same validation, the same
  backend, the same errors — with the JSON body decoded here (binary attributes from base64) and
  the answer encoded here;
- hands everything else to moto's WSGI application unchanged.

What the short path skips is moto's model-driven parameter parsing: a request that botocore
would not send (a number where a list is due) may get a different error than from moto's own
server. The functions only send what botocore builds.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import unquote

from moto.core.exceptions import ServiceException, _RESTError
from moto.dynamodb.responses import DynamoHandler

from infra.localcloud.faults import FUNCTION_HEADER, FaultInjector
from infra.localcloud.http_server import LocalHttpServer

LOG = logging.getLogger("infra.localcloud")
DEFAULT_ACCOUNT = "123456789012"
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
# DynamoDB operations answered on the short path (the item and transaction calls).
DYNAMODB_FAST = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")

Answer = tuple[int, list[tuple[str, str]], bytes]


class MotoFront:
    """Serves moto on `host` (a free port); `gate` wraps every request (persistence.Gate)."""

    def __init__(self, host: str, app: Callable[..., Any], gate: Any) -> None:
        self._server = _Server((host, 0), app, gate)
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> Any:
        return self._server.gate.requests

    def intercept(self, target_prefix: str, handler: Callable[[str, bytes], Answer]) -> None:
        """Answer the JSON calls whose X-Amz-Target starts with `target_prefix` with `handler`
        (operation, body) instead of moto: a service the local cloud emulates itself."""
        self._server.intercepts[target_prefix] = handler

    def inject(self, faults: FaultInjector) -> None:
        """Answer some of the functions' calls with AWS's errors instead of moto (faults.py)."""
        self._server.faults = faults if faults.enabled else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-front", daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


class _Server(LocalHttpServer):
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: Callable[..., Any], gate: Any) -> None:
        self.app = app
        self.gate = gate
        self.intercepts: dict[str, Callable[[str, bytes], Answer]] = {}
        self.faults: FaultInjector | None = None
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "localcloud-moto"
    sys_version = ""

    def _serve(self) -> None:
        server = cast(_Server, self.server)
        body = self._read_body()
        target = self.headers.get("X-Amz-Target", "")
        operation = _operation(target, self.command, self.path)
        server.gate.requests[operation] += 1
        if server.faults is not None and (function_id := self.headers.get(FUNCTION_HEADER)):
            # Before the intercepts and before moto: an injected error means the call did nothing.
            wanted = ("X-Amz-Target", "Authorization", "Content-Type")
            headers = {name: self.headers.get(name, "") for name in wanted}
            fault = server.faults.aws_fault(function_id, headers, self.path, body)
            if fault is not None:
                self._send(fault)
                return
        intercept = next((h for prefix, h in server.intercepts.items() if target.startswith(prefix)), None)
        if intercept is not None:
            # Outside the gate: the emulated service keeps no moto state of its own, and what it
            # writes later goes through the gate (firehose.py).
            self._send(intercept(operation, body))
            return
        with server.gate.request():
            if target.startswith("DynamoDB_20120810.") and operation in DYNAMODB_FAST:
                answer = _dynamodb(operation, body, self.headers.get("Authorization", ""))
            else:
                answer = self._wsgi(server.app, body)
        self._send(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _wsgi(self, app: Callable[..., Any], body: bytes) -> Answer:
        path, _, query = self.path.partition("?")
        server = cast(_Server, self.server)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "QUERY_STRING": query,
            "SERVER_NAME": server.server_name,
            "SERVER_PORT": str(server.server_port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                header = "HTTP_" + key
                environ[header] = f"{environ[header]},{value}" if header in environ else value
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        chunks = app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status_text, headers = started
        return int(status_text.split(" ", 1)[0]), list(headers), payload

    def _send(self, answer: Answer) -> None:
        status, headers, body = answer
        names = {name.lower() for name, _ in headers}
        lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, '')}"]
        if "date" not in names:
            lines.append(f"Date: {_http_date()}")
        lines.extend(
            f"{name}: {value}" for name, value in headers if name.lower() not in ("content-length", "connection")
        )
        bodiless = status < 200 or status in (204, 304)
        if not bodiless:
            lines.append(f"Content-Length: {len(body)}")
        lines.append(f"Connection: {'close' if self.close_connection else 'keep-alive'}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if bodiless or self.command == "HEAD" else head + body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _operation(target: str, method: str, path: str) -> str:
    if target:
        return target.rsplit(".", 1)[-1]
    return f"{method} {'/'.join(path.partition('?')[0].split('/')[:3])}"


# ---------------------------------------------------------------------------------- DynamoDB

_handlers = threading.local()


def _dynamodb(operation: str, body: bytes, authorization: str) -> Answer:
    match = _CREDENTIAL.search(authorization)
    region = match.group(2) if match else "us-east-1"
    handler: DynamoHandler | None = getattr(_handlers, "dynamodb", None)
    if handler is None:
        handler = _handlers.dynamodb = DynamoHandler()
    handler.current_account = DEFAULT_ACCOUNT
    handler.region = region
    request_id = str(uuid.uuid4())
    try:
        handler.body = _blobs_decoded(json.loads(body or b"{}"))
        result = getattr(handler, _CAMEL.sub("_", operation).lower())()
        payload = json.dumps(result.result, default=_blob_encoded, separators=(",", ":")).encode()
        return 200, _json_headers(request_id), payload
    except _RESTError as error:
        return int(error.code), _json_headers(request_id), error.get_body().encode()
    except ServiceException as error:
        text = {"__type": f"com.amazonaws.dynamodb.v20120810#{error.code}", "message": error.message}
        return 400, _json_headers(request_id), json.dumps(text).encode()
    except (ValueError, KeyError, TypeError) as error:
        # What moto's parameter parsing would have refused: a malformed request.
        text = {"__type": "com.amazon.coral.validate#ValidationException", "message": f"{error}"}
        return 400, _json_headers(request_id), json.dumps(text).encode()


def _json_headers(request_id: str) -> list[tuple[str, str]]:
    return [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id)]


def _blobs_decoded(value: Any) -> Any:
    """DynamoDB's JSON carries binary attribute values in base64; moto keeps them as bytes."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind == "B" and isinstance(inner, str):
                return {"B": base64.b64decode(inner)}
            if kind == "BS" and isinstance(inner, list) and all(isinstance(v, str) for v in inner):
                return {"BS": [base64.b64decode(v) for v in inner]}
        return {key: _blobs_decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_blobs_decoded(item) for item in value]
    return value


def _blob_encoded(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, set):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]
