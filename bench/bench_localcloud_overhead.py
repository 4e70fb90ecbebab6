"""What the local cloud's HTTP gateway costs per request, next to a bare HTTP server.

The servers answer the same GET with the same 2-byte body, so the figures differ only by what sits
between the socket and the answer:

1. a bare ThreadingHTTPServer with no routing: the floor any stdlib server pays, client included;
2. HttpGateway routing to an in-process no-op `invoke`: the gateway's own cost;
3. the full local cloud serving bench/fixtures/noop-template.yaml, the no-op function running in
   its Lambda worker process: what a developer's request pays.

The client runs in its own process, as a real one does, and sends sequential requests on one
keep-alive connection per server. The servers take turns in rounds so that load from anything else
on the machine falls on all of them alike.
"""

from __future__ import annotations

import http.client
import multiprocessing
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.gateway import HttpGateway
from infra.localcloud.model import HttpApiSpec, HttpRoute, InvocationResult

REQUESTS = 2_000  # measured per server
ROUNDS = 5
WARMUP = 50  # per round, on the round's fresh connection; the first also starts the Lambda worker
PATH = "/ping"
TEMPLATE = Path(__file__).parent / "fixtures" / "noop-template.yaml"
NOOP_RESPONSE = {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok"}

Address = tuple[str, int]


class _BareHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        # The gateway's framing (one write, keep-alive), so only routing and mapping differ.
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
        )

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _noop_invoke(function_id: str, event: dict[str, Any]) -> InvocationResult:
    return InvocationResult(function_id, event["requestContext"]["requestId"], NOOP_RESPONSE)


def _latencies_ns(address: Address, count: int) -> list[int]:
    """Runs in the client process: `count` timed requests after the warm-up."""
    conn = http.client.HTTPConnection(*address, timeout=30)
    samples: list[int] = []
    try:
        for i in range(WARMUP + count):
            started = time.perf_counter_ns()
            conn.request("GET", PATH)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter_ns() - started
            if response.status != 200 or body != b"ok":
                raise RuntimeError(f"{address}: unexpected answer {response.status} {body[:80]!r}")
            if i >= WARMUP:
                samples.append(elapsed)
    finally:
        conn.close()
    return samples


@contextmanager
def _bare_server() -> Iterator[Address]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BareHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _in_process_gateway() -> Iterator[Address]:
    route = HttpRoute("GET", PATH, "NoopFunction")
    api = HttpApiSpec("NoopApi", "benchapi01", "$default", (route,), None, None, None)
    gateway = HttpGateway(api, _noop_invoke, host="127.0.0.1", port=0, region="us-east-1", account_id="123456789012")
    gateway.start()
    try:
        yield _address(gateway.url)
    finally:
        gateway.stop()


@contextmanager
def _local_cloud() -> Iterator[Address]:
    with LocalCloud(TEMPLATE, stack_name="midstage-bench-noop") as cloud:
        yield _address(cloud.api_url)


def _address(url: str) -> Address:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _report(label: str, samples: list[int], baseline: list[int] | None) -> None:
    ordered = sorted(samples)

    def micros(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000

    p50 = statistics.median(ordered) / 1000
    rate = len(samples) / (sum(samples) / 1e9)
    line = (
        f"   {label:<34} {rate:>7,.0f} req/s   p50 {p50:>6.1f} µs   p95 {micros(0.95):>6.1f} µs"
        f"   p99 {micros(0.99):>6.1f} µs"
    )
    if baseline is not None:
        base_p50 = statistics.median(baseline) / 1000
        line += f"   p50 x{p50 / base_p50:.2f} of bare ({p50 - base_p50:+.0f} µs)"
    print(line)


def main() -> None:
    servers = {
        "bare ThreadingHTTPServer": _bare_server,
        "HttpGateway, in-process no-op": _in_process_gateway,
        "local cloud, no-op Lambda worker": _local_cloud,
    }
    print(f"   {REQUESTS:,} sequential GET {PATH} per server, {ROUNDS} interleaved rounds, client in its own process")
    samples: dict[str, list[int]] = {label: [] for label in servers}
    with ExitStack() as stack:
        addresses = {label: stack.enter_context(start()) for label, start in servers.items()}
        # spawn, not fork: this process already runs server threads a forked child would inherit.
        client = stack.enter_context(
            ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        )
        for _ in range(ROUNDS):
            for label, address in addresses.items():
                samples[label] += client.submit(_latencies_ns, address, REQUESTS // ROUNDS).result()
    baseline = samples["bare ThreadingHTTPServer"]
    for label, measured in samples.items():
        _report(label, measured, None if measured is baseline else baseline)
