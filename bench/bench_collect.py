"""What the collect function costs per event, on one core, with the AWS calls taken out.

1. Parse + validate: `read_document` and `intake` over a 100-event batch body and over
   single-event bodies, in µs per event, next to a plain `json.loads` of the same body (the floor
   any JSON API pays) and the ratio between the two. Target: at most 10 µs per event.
2. The whole use case: `services.collect.handle` on a 100-event batch with in-memory ports; the
   hand-off runs the real `messages_for` (so SQS message encoding is counted) and drops the
   messages. Plain and gzip bodies (base64 + Content-Encoding: gzip, as API Gateway delivers a
   binary body). Target: at least 5,000 events per second on one core.
3. The function around the use case: the handler's `lambda_handler` on one-event `/v1/track`
   requests as API Gateway sends them (routing, CORS headers, the answer, Powertools' Logger and
   Metrics decorators with the metrics written to /dev/null), its wiring given the same in-memory
   ports, next to `services.collect.handle` alone on the same requests. The difference is what the
   function's edge costs per request. `handler_overhead(path)` measures any copy of the handler,
   so an older one can be compared.

Every figure is the median of several timed repeats; the spread (min-max) is printed beside it.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib.util
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from midstage.adapters.handoff import messages_for
from midstage.config import CollectSettings, IdentitySettings
from midstage.logic.collect import Limits, RequestMeta, group_by_person, intake, read_document
from midstage.models.admin import Source
from midstage.services.collect import CollectRequest, handle

BATCH_EVENTS = 100
REPEATS = 9
MIN_REPEAT_SECONDS = 0.25
TARGET_US_PER_EVENT = 10.0
TARGET_EVENTS_PER_SECOND = 5_000
HANDLER = Path(__file__).resolve().parent.parent / "functions" / "collect" / "handler.py"

RECEIVED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
WRITE_KEY = "wk_bench_0123456789abcdef"
SOURCE = Source(
    id="src_bench", name="Bench shop", write_key=WRITE_KEY, rate_limit=100_000, created_at="2026-01-01T00:00:00+00:00"
)
SETTINGS = CollectSettings(
    data_table="DataTable",
    config_table="ConfigTable",
    ingest_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/ingest",
)
IDENTITY = IdentitySettings()
LIMITS = Limits(SETTINGS.max_event_bytes, SETTINGS.max_batch_bytes, SETTINGS.max_batch_events)
META = RequestMeta(source_id=SOURCE.id, received_at=RECEIVED, ip="203.0.113.9", user_agent="Mozilla/5.0 (bench)")
CONTEXT = {
    "library": {"name": "analytics.js", "version": "5.2.0"},
    "ip": "203.0.113.9",
}


def order_completed(index: int, *, sent_at: bool) -> dict[str, Any]:
    """An analytics.js "Order Completed" call as the e-commerce spec describes it."""
    stamp = RECEIVED - timedelta(seconds=2, milliseconds=index)
    event: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"ajs-{uuid.UUID(int=index)}",
        "userId": f"user_{index % 37:05d}",
        "anonymousId": str(uuid.UUID(int=10_000 + index % 37)),
        "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {
            "order_id": f"ord_{index:06d}",
            "revenue": 119.97,
            "currency": "USD",
            "products": [
                {"product_id": "sku_1042", "price": 89.99, "quantity": 1},
                {"product_id": "sku_2210", "price": 14.99, "quantity": 2},
            ],
        },
        "context": {
            "page": {"path": "/checkout/done", "url": "https://shop.example.com/checkout/done"},
            "campaign": {"source": "newsletter", "medium": "email", "name": "bf-2026"},
        },
    }
    if sent_at:
        event["sentAt"] = (RECEIVED - timedelta(seconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event["context"] = {**CONTEXT, **event["context"]}
    return event


def batch_body() -> str:
    """The SDK batch shape: shared context and sentAt once, on the batch."""
    events = [order_completed(i, sent_at=False) for i in range(BATCH_EVENTS)]
    sent = (RECEIVED - timedelta(seconds=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return compact({"batch": events, "context": CONTEXT, "sentAt": sent, "writeKey": WRITE_KEY})


def single_bodies() -> list[str]:
    return [compact({**order_completed(i, sent_at=True), "writeKey": WRITE_KEY}) for i in range(BATCH_EVENTS)]


def compact(document: dict[str, Any]) -> str:
    """JSON as SDKs send it (JSON.stringify: no spaces)."""
    return json.dumps(document, separators=(",", ":"))


def per_event_seconds(run: Callable[[], object], events_per_run: int) -> list[float]:
    """Seconds per event for each of REPEATS timed repeats, each long enough to be readable."""
    run()  # warm caches (pydantic, the decoder) before the first timed repeat
    loops = 1
    while True:
        started = time.perf_counter()
        for _ in range(loops):
            run()
        if time.perf_counter() - started >= MIN_REPEAT_SECONDS / 4:
            break
        loops *= 2
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(loops * 4):
            run()
        samples.append((time.perf_counter() - started) / (loops * 4 * events_per_run))
    return samples


def micros(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:6.2f} µs/event  ({min(samples) * 1e6:.2f}-{max(samples) * 1e6:.2f})"


def rate(samples: list[float]) -> str:
    return f"{1 / statistics.median(samples):>8,.0f} events/s  ({1 / max(samples):,.0f}-{1 / min(samples):,.0f})"


# ------------------------------------------------------------------------ in-memory ports
class FixedSources:
    def source_for_write_key(self, write_key: str) -> Source | None:
        return SOURCE if write_key == WRITE_KEY else None


class MemoryIntake:
    def __init__(self) -> None:
        self.quarantined: list[dict[str, Any]] = []

    def take_rate(self, source_id: str, epoch_second: int, events: int, limit: int) -> bool:
        return True

    def quarantine(self, entries: list[dict[str, Any]], expires_at: int) -> None:
        self.quarantined.extend(entries)


class EncodingHandoff:
    """Encodes the SQS messages exactly as SqsHandoff does, then drops them."""

    def __init__(self) -> None:
        self.messages = 0

    def send(self, groups: dict[str, list[dict[str, Any]]]) -> int:
        sent = len(messages_for(groups))
        self.messages += sent
        return sent


def request(body: str, *, gzipped: bool) -> CollectRequest:
    headers = {
        "authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "content-type": "application/json",
        "user-agent": "analytics-python/2.3.3",
    }
    if gzipped:
        headers["content-encoding"] = "gzip"
        body = base64.b64encode(gzip.compress(body.encode())).decode()
    return CollectRequest("batch", body, gzipped, headers, "203.0.113.9", RECEIVED)


class LambdaContext:
    function_name = "midstage-collect"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:midstage-collect"
    memory_limit_in_mb = 1024
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/midstage-collect"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_event(body: str) -> dict[str, Any]:
    """A payload-2.0 event for POST /v1/track, as API Gateway sends it."""
    return {
        "version": "2.0",
        "routeKey": "POST /v1/track",
        "rawPath": "/v1/track",
        "rawQueryString": "",
        "headers": {
            "authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
            "content-type": "application/json",
            "origin": "https://shop.example.com",
            "user-agent": "Mozilla/5.0 (bench)",
        },
        "requestContext": {
            "http": {"method": "POST", "path": "/v1/track", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": "bench",
            "routeKey": "POST /v1/track",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def handler_overhead(path: Path = HANDLER) -> tuple[list[float], list[float]]:
    """Seconds per request through the handler at `path`, and through services.collect.handle alone."""
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "collect")
    spec = importlib.util.spec_from_file_location("bench_collect_handler", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The wiring a test gives: the same in-memory ports and clock as section 2.
    module._wiring = lambda: (SETTINGS, FixedSources(), MemoryIntake(), EncodingHandoff())
    module._clock = lambda: lambda: RECEIVED
    events = [http_event(body) for body in single_bodies()]
    context = LambdaContext()

    def through_handler() -> None:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for event in events:
                answer = module.lambda_handler(event, context)
                assert answer["statusCode"] == 200, answer

    def use_case_alone() -> None:
        for event in events:
            req = CollectRequest("track", event["body"], False, event["headers"], "203.0.113.9", RECEIVED)
            handle(req, SETTINGS, IDENTITY, FixedSources(), MemoryIntake(), EncodingHandoff())

    return per_event_seconds(through_handler, len(events)), per_event_seconds(use_case_alone, len(events))


def main() -> None:
    batch = batch_body()
    singles = single_bodies()
    raw_batch = batch.encode()
    raw_singles = [s.encode() for s in singles]
    print(
        f"   batch body: {BATCH_EVENTS} 'Order Completed' events, {len(raw_batch):,} bytes "
        f"({len(raw_batch) / BATCH_EVENTS:.0f} B/event); single bodies {min(map(len, raw_singles))}-"
        f"{max(map(len, raw_singles))} B; median of {REPEATS} repeats (min-max)"
    )

    def parse_batch() -> None:
        result = intake(read_document(raw_batch, "batch", LIMITS), META, IDENTITY, LIMITS)
        assert len(result.accepted) == BATCH_EVENTS, result.rejected[:1]

    def parse_singles() -> None:
        for raw in raw_singles:
            intake(read_document(raw, "track", LIMITS), META, IDENTITY, LIMITS)

    def loads_batch() -> None:
        json.loads(raw_batch)

    def loads_singles() -> None:
        for raw in raw_singles:
            json.loads(raw)

    print("   1. parse + validate (read_document + intake), one core")
    for label, measured, floor in (
        ("batch of 100", parse_batch, loads_batch),
        ("single-event bodies (/v1/track)", parse_singles, loads_singles),
    ):
        ours = per_event_seconds(measured, BATCH_EVENTS)
        base = per_event_seconds(floor, BATCH_EVENTS)
        ratio = statistics.median(ours) / statistics.median(base)
        verdict = "meets" if statistics.median(ours) * 1e6 <= TARGET_US_PER_EVENT else "MISSES"
        print(f"      {label:<34} {micros(ours)}   {verdict} the {TARGET_US_PER_EVENT:.0f} µs target")
        print(f"      {'  json.loads of the same body':<34} {micros(base)}   ours = x{ratio:.1f} of json.loads")

    print("   2. services.collect.handle, 100-event batch, hand-off encodes SQS messages and drops them")
    for label, gzipped in (("plain JSON body", False), ("gzip + base64 body", True)):
        req = request(batch, gzipped=gzipped)
        intake_store, handoff = MemoryIntake(), EncodingHandoff()

        def collect_once(
            req: CollectRequest = req, store: MemoryIntake = intake_store, out: EncodingHandoff = handoff
        ) -> None:
            answer = handle(req, SETTINGS, IDENTITY, FixedSources(), store, out)
            assert answer.accepted == BATCH_EVENTS, answer.rejected[:1]

        samples = per_event_seconds(collect_once, BATCH_EVENTS)
        verdict = "meets" if 1 / statistics.median(samples) >= TARGET_EVENTS_PER_SECOND else "MISSES"
        size = len(req.body or "")
        print(f"      {label:<22} ({size:>6,} B) {rate(samples)}   {verdict} the {TARGET_EVENTS_PER_SECOND:,}/s target")
        assert not intake_store.quarantined
    accepted = intake(read_document(raw_batch, "batch", LIMITS), META, IDENTITY, LIMITS).accepted
    encoding = per_event_seconds(lambda: messages_for(group_by_person(accepted)), BATCH_EVENTS)
    print(f"      {'  of which hand-off encoding':<31} {micros(encoding)}   (group_by_person + messages_for)")
    print("   3. the function's edge: lambda_handler on one-event /v1/track requests, in-memory ports (µs/request)")
    handler, alone = handler_overhead()
    edge = (statistics.median(handler) - statistics.median(alone)) * 1e6
    print(f"      {'through lambda_handler':<34} {micros(handler)}")
    print(f"      {'services.collect.handle alone':<34} {micros(alone)}")
    print(f"      {'the edge (difference of medians)':<34} {edge:6.2f} µs/request")
