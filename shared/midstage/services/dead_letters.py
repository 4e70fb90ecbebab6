"""Dead letters made visible and recoverable: what each dead-letter queue holds, why each
message failed, and putting them back where they came from once the cause is fixed.

Three kinds of queue hold failed work (docs/operations.md):
  * `queue`: a queue's redrive target after `maxReceiveCount` failed receives; the reason is
    what the consumer recorded under the message's id (midstage.batch); redriven by sending the
    message back to its source queue;
  * `bus`: an EventBridge rule's dead-letter queue (events EventBridge could not hand to the
    function); the reason is in EventBridge's message attributes; redriven by putting the
    event back on the bus;
  * `invocation`: a function's on-failure destination (Lambda's invocation record after its
    retries); the reason is the function's error; an event that came from the bus is put back
    on it, anything else (a schedule's firing) is replayed by hand.
Every consumer is idempotent, so a redriven message changes nothing it had already changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from midstage.errors import InvalidInput, NotFound
from midstage.models.requests import MAX_LISTED, MAX_REDRIVEN

Kind = Literal["queue", "bus", "invocation"]
MANUAL_REPLAY = "not an event of the bus: replay it with `aws lambda invoke` (docs/operations.md, runbooks)"


@dataclass(frozen=True)
class DeadLetterSpec:
    name: str  # as in the API's path: ingest, delivery, evaluate-rules, evaluate-rules-failed...
    queue_url: str
    kind: Kind
    source_queue_url: str = ""  # where a `queue` kind's messages go back to


def parse_specs(text: str) -> list[DeadLetterSpec]:
    """The DEAD_LETTER_QUEUES setting: `{"<name>": ["<queue url>", "<source queue url> | bus |
    invocation"], ...}` (template.yaml builds it)."""
    if not text.strip():
        return []
    specs = []
    for name, (url, target) in json.loads(text).items():
        if target in ("bus", "invocation"):
            specs.append(DeadLetterSpec(name, url, target))
        else:
            specs.append(DeadLetterSpec(name, url, "queue", target))
    return specs


class Queue(Protocol):
    def depth(self) -> int: ...
    def receive(self, limit: int) -> list[dict[str, Any]]: ...
    def release(self, messages: Sequence[dict[str, Any]]) -> None: ...
    def delete(self, message: dict[str, Any]) -> None: ...
    def send_to(self, queue_url: str, message: dict[str, Any]) -> None: ...


class Failures(Protocol):
    def many(self, sqs_message_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class Bus(Protocol):
    def put(self, source: str, detail_type: str, detail: str) -> None: ...


class DeadLetters:
    def __init__(
        self,
        specs: Sequence[DeadLetterSpec],
        queue: Callable[[str], Queue],
        failures: Failures,
        bus: Bus,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.queue = queue
        self.failures = failures
        self.bus = bus

    def _spec(self, name: str) -> DeadLetterSpec:
        spec = self.specs.get(name)
        if spec is None:
            raise NotFound(f"no dead-letter queue '{name[:64]}'; one of {', '.join(sorted(self.specs))}")
        return spec

    def overview(self) -> dict[str, Any]:
        return {
            "queues": [
                {"queue": s.name, "kind": s.kind, "messages": self.queue(s.queue_url).depth(), "redrive": _how(s)}
                for s in sorted(self.specs.values(), key=lambda s: s.name)
            ]
        }

    def messages(self, name: str, limit: int) -> dict[str, Any]:
        spec = self._spec(name)
        queue = self.queue(spec.queue_url)
        received = queue.receive(min(limit, MAX_LISTED))
        try:
            recorded = self.failures.many([m["MessageId"] for m in received]) if spec.kind == "queue" else {}
            shown = [present(spec, m, recorded.get(m["MessageId"])) for m in received]
        finally:
            queue.release(received)
        return {"queue": name, "kind": spec.kind, "messages": shown, "approximateTotal": queue.depth()}

    def redrive(self, name: str, limit: int, message_ids: Sequence[str] | None) -> dict[str, Any]:
        spec = self._spec(name)
        if not 1 <= limit <= MAX_REDRIVEN:
            raise InvalidInput(f"'limit' must be from 1 to {MAX_REDRIVEN}", code="invalid_body")
        queue = self.queue(spec.queue_url)
        wanted = set(message_ids) if message_ids is not None else None
        redriven, skipped, seen = 0, [], set()
        left = limit if wanted is None else len(wanted)
        while left > 0:
            batch = queue.receive(min(left, MAX_LISTED) if wanted is None else MAX_LISTED)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            keep = [m for m in batch if m["MessageId"] in seen]
            for message in fresh:
                seen.add(message["MessageId"])
                if wanted is not None and message["MessageId"] not in wanted:
                    keep.append(message)
                    continue
                reason = self._put_back(spec, message)
                if reason is None:
                    queue.delete(message)
                    redriven += 1
                else:
                    skipped.append({"id": message["MessageId"], "reason": reason})
                    keep.append(message)
                left -= 1
            queue.release(keep)
            if not fresh or wanted is not None:
                break  # nothing new in sight, or the chosen ones were all looked at
        return {"queue": name, "redriven": redriven, "skipped": skipped, "approximateLeft": queue.depth()}

    def _put_back(self, spec: DeadLetterSpec, message: dict[str, Any]) -> str | None:
        """Sends one message back where it came from; the reason when it cannot be."""
        if spec.kind == "queue":
            self.queue(spec.queue_url).send_to(spec.source_queue_url, message)
            return None
        body = _json(message.get("Body", ""))
        event = body.get("requestPayload") if spec.kind == "invocation" and isinstance(body, dict) else body
        if not (isinstance(event, dict) and {"source", "detail-type", "detail"} <= event.keys()):
            return MANUAL_REPLAY
        self.bus.put(str(event["source"]), str(event["detail-type"]), json.dumps(event["detail"]))
        return None


def _how(spec: DeadLetterSpec) -> str:
    if spec.kind == "queue":
        return "back to its source queue"
    if spec.kind == "bus":
        return "back onto the event bus"
    return "events of the bus back onto it; others by hand"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def present(spec: DeadLetterSpec, message: Mapping[str, Any], recorded: dict[str, Any] | None) -> dict[str, Any]:
    """One dead letter for the API: its id, when it was first sent, how often it was received,
    why it failed (as far as anything recorded it) and its body."""
    attributes = message.get("Attributes") or {}
    body = _json(message.get("Body", ""))
    sent = attributes.get("SentTimestamp")
    return {
        "id": message["MessageId"],
        "sentAt": datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat(timespec="seconds") if sent else None,
        "receiveCount": int(attributes.get("ApproximateReceiveCount", 0) or 0),
        "error": error_of(spec, message, body, recorded),
        "body": body,
    }


def error_of(
    spec: DeadLetterSpec, message: Mapping[str, Any], body: Any, recorded: dict[str, Any] | None
) -> dict[str, Any] | None:
    if spec.kind == "queue":
        return recorded
    if spec.kind == "bus":
        values = {k: v.get("StringValue") for k, v in (message.get("MessageAttributes") or {}).items()}
        if not values.get("ERROR_CODE") and not values.get("ERROR_MESSAGE"):
            return None
        return {
            "errorType": values.get("ERROR_CODE"),
            "errorMessage": values.get("ERROR_MESSAGE"),
            "rule": values.get("RULE_ARN"),
            "target": values.get("TARGET_ARN"),
            "retries": values.get("RETRY_ATTEMPTS"),
        }
    if not isinstance(body, dict):
        return None
    response: dict[str, Any] = body["responsePayload"] if isinstance(body.get("responsePayload"), dict) else {}
    context: dict[str, Any] = body["requestContext"] if isinstance(body.get("requestContext"), dict) else {}
    return {
        "function": context.get("functionArn"),
        "errorType": response.get("errorType"),
        "errorMessage": response.get("errorMessage"),
        "condition": context.get("condition"),
        "attempts": context.get("approximateInvokeCount"),
        "at": body.get("timestamp"),
    }
