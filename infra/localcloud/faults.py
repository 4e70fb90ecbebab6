"""The fault injector: the failures AWS promises to happen, made to happen on purpose.

Lambda, SQS, DynamoDB and Scheduler are at-least-once machines: a worker dies between two writes,
a call is throttled, a standard queue hands a message over twice, a schedule fires twice. On a
laptop none of that happens by itself, so code that is only correct when nothing fails looks
correct. `Faults` sets a rate per kind of failure; the local cloud then injects them:

* ``kill``: an invocation's worker process is killed (SIGKILL) just before one of its AWS calls
  (the 2nd to the 9th, drawn per invocation: at least one call went out, the next never does), or
  after the handler returned but before its answer if it made fewer calls. Lambda reports
  `Runtime.ExitError`; the SQS poller makes the batch visible again after the retry delay (the
  local visibility timeout), an asynchronous invocation is retried, the HTTP API answers 500.
* ``aws_error`` / ``throttle``: a function's AWS call is answered by the moto front with a 500
  (`InternalServerError` for DynamoDB, `InternalError` elsewhere) or a throttling error
  (`ProvisionedThroughputExceededException` for DynamoDB, `SlowDown` for S3,
  `TooManyRequestsException` for SES, `ThrottlingException` elsewhere) before moto sees it, in the
  service's own protocol, so botocore retries it as it would on AWS and the function sees it once
  its retries are spent.
* ``duplicate``: a message the function handled is not deleted (as if the delete were lost): it
  becomes visible again after the retry delay and is handed to the function a second time, with
  the same message id and a higher receive count, as a standard queue may.
* ``schedule_twice``: an occurrence of a schedule (template or runtime, rule or Scheduler) is
  delivered twice.

Each decision is a pure function of the seed, the kind, where (the function or schedule), what
(the event, request or message) and how many times that same thing was seen before: the same
inputs meet the same faults whatever order the threads reach them in. Every injected fault is
counted per kind and per function (per schedule for ``schedule_twice``).

Off by default: without rates the local cloud takes none of these paths (no hook in the workers,
no header, no hashing).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENVIRONMENT_VARIABLE = "MIDSTAGE_FAULTS"
# Added by a worker to every AWS call of its function when faults are on: who is calling.
FUNCTION_HEADER = "X-Localcloud-Function"
KINDS = ("kill", "aws_error", "throttle", "duplicate", "schedule_twice")
# A killed invocation dies before its Nth AWS call, N drawn from this range.
KILL_CALLS = range(2, 10)

Answer = tuple[int, list[tuple[str, str]], bytes]


class FaultSpecError(ValueError):
    """A fault setting that cannot be read."""


@dataclass(frozen=True)
class Faults:
    """Rates (0 to 1) of each kind of fault, and the seed that makes them reproducible.

    `kill` is per invocation, `aws_error` and `throttle` per AWS call of a function, `duplicate`
    per message a function handled, `schedule_twice` per occurrence of a schedule.
    """

    kill: float = 0.0
    aws_error: float = 0.0
    throttle: float = 0.0
    duplicate: float = 0.0
    schedule_twice: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in KINDS:
            rate = getattr(self, kind)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
                raise FaultSpecError(f"the rate of {kind} must be a number from 0 to 1, not {rate!r}")
        if self.aws_error + self.throttle > 1.0:
            raise FaultSpecError("aws_error and throttle together cannot exceed 1: both are drawn per AWS call")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise FaultSpecError(f"the seed must be an integer, not {self.seed!r}")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in KINDS)

    @classmethod
    def parse(cls, text: str) -> Faults:
        """`kill=0.05,aws_error=0.02,throttle=0.02,duplicate=0.05,schedule_twice=0.1,seed=7`."""
        values: dict[str, Any] = {}
        known = {field.name for field in fields(cls)}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            name, equals, value = part.partition("=")
            name = name.strip().replace("-", "_")
            if not equals or name not in known:
                raise FaultSpecError(f"{part!r}: expected one of {', '.join(sorted(known))} as name=value")
            try:
                values[name] = int(value) if name == "seed" else float(value)
            except ValueError:
                raise FaultSpecError(f"{part!r}: {value.strip()!r} is not a number") from None
        return cls(**values)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Faults | None:
        """The setting in MIDSTAGE_FAULTS, or None when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, "").strip()
        return cls.parse(text) if text else None

    def describe(self) -> str:
        rates = ",".join(f"{kind}={getattr(self, kind):g}" for kind in KINDS if getattr(self, kind) > 0)
        return f"{rates},seed={self.seed}" if rates else "off"

    def to_json(self) -> dict[str, Any]:
        return {**{kind: getattr(self, kind) for kind in KINDS}, "seed": self.seed}


class FaultInjector:
    """Draws the faults of one local cloud and counts the ones it injected."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.settings = faults or Faults()
        self.enabled = self.settings.enabled
        self._lock = threading.Lock()
        self._seen: Counter[tuple[str, str, str]] = Counter()
        self._counts: Counter[tuple[str, str]] = Counter()

    # ------------------------------------------------------------------ reading back

    def counts(self) -> dict[str, dict[str, int]]:
        """Kind -> function (or schedule) -> faults injected; every kind is present."""
        with self._lock:
            answer: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
            for (kind, where), count in sorted(self._counts.items()):
                answer[kind][where] = count
            return answer

    def total(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(count for (k, _), count in self._counts.items() if kind is None or k == kind)

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings.to_json(), "counts": self.counts()}

    # ------------------------------------------------------------------ decisions

    def draw(self, kind: str, where: str, what: str | bytes) -> float:
        """A number in [0, 1) for this occurrence of `what`, from the seed alone.

        The occurrence number is part of the draw, so a retry of the same thing is a new draw.
        """
        digest_of_what = hashlib.blake2b(what if isinstance(what, bytes) else what.encode(), digest_size=16).hexdigest()
        with self._lock:
            key = (kind, where, digest_of_what)
            occurrence = self._seen[key]
            self._seen[key] = occurrence + 1
        return _uniform(self.settings.seed, kind, where, digest_of_what, occurrence)

    def _record(self, kind: str, where: str) -> None:
        with self._lock:
            self._counts[(kind, where)] += 1

    def kill_point(self, function_id: str, event_text: str) -> int | None:
        """The AWS call before which this invocation's worker dies, or None to let it live."""
        if not self.settings.kill:
            return None
        draw = self.draw("kill", function_id, event_text)
        if draw >= self.settings.kill:
            return None
        self._record("kill", function_id)
        # The position comes from the same draw, rescaled, so it adds no state.
        return KILL_CALLS[min(len(KILL_CALLS) - 1, int(draw / self.settings.kill * len(KILL_CALLS)))]

    def aws_fault(self, function_id: str, headers: Mapping[str, str], path: str, body: bytes) -> Answer | None:
        """The error answer to give this AWS call of a function instead of moto's, or None."""
        if not (self.settings.aws_error or self.settings.throttle):
            return None
        target = headers.get("X-Amz-Target", "")
        draw = self.draw("aws", function_id, f"{target} {path} ".encode() + body)
        if draw < self.settings.aws_error:
            kind = "aws_error"
        elif draw < self.settings.aws_error + self.settings.throttle:
            kind = "throttle"
        else:
            return None
        self._record(kind, function_id)
        return error_answer(kind, _service(headers.get("Authorization", "")), headers, target)

    def duplicate(self, function_id: str, message_id: str, receive_count: str) -> bool:
        """Whether a message the function handled is to be delivered again (its delete lost)."""
        if not self.settings.duplicate:
            return False
        if self.draw("duplicate", function_id, f"{message_id}/{receive_count}") >= self.settings.duplicate:
            return False
        self._record("duplicate", function_id)
        return True

    def schedule_twice(self, schedule: str, due: str) -> bool:
        """Whether this occurrence of a schedule is delivered a second time."""
        if not self.settings.schedule_twice:
            return False
        if self.draw("schedule_twice", schedule, due) >= self.settings.schedule_twice:
            return False
        self._record("schedule_twice", schedule)
        return True


def _uniform(seed: int, *parts: object) -> float:
    text = "\x1f".join(str(part) for part in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64


def _service(authorization: str) -> str:
    """The service of a SigV4 request: Credential=KEY/date/region/<service>/aws4_request."""
    credential = authorization.partition("Credential=")[2].split(",", 1)[0]
    parts = credential.split("/")
    return parts[3] if len(parts) >= 5 else ""


def error_answer(kind: str, service: str, headers: Mapping[str, str], target: str) -> Answer:
    """An error as `service` answers it in its own protocol, so that botocore reads its code."""
    request_id = str(uuid.uuid4())
    if kind == "throttle":
        status, code = {
            "dynamodb": (400, "ProvisionedThroughputExceededException"),
            "s3": (503, "SlowDown"),
            "ses": (429, "TooManyRequestsException"),
        }.get(service, (400, "ThrottlingException"))
        message = "Rate exceeded (injected by the local cloud)"
    else:
        status, code = 500, "InternalServerError" if service == "dynamodb" else "InternalError"
        message = "We encountered an internal error. Please try again. (injected by the local cloud)"
    if target:  # the JSON protocols (DynamoDB, SQS, EventBridge, Firehose...)
        content_type = headers.get("Content-Type") or "application/x-amz-json-1.0"
        body = json.dumps({"__type": code, "message": message}).encode()
        return status, [("Content-Type", content_type), ("x-amzn-RequestId", request_id)], body
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):  # the query protocol (SNS)
        xml = (
            f"<ErrorResponse><Error><Type>{'Receiver' if status >= 500 else 'Sender'}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()
    if service == "s3":  # REST-XML
        xml = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        return status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], xml.encode()
    # REST-JSON (SES v2, Scheduler...): the code travels in a header.
    body = json.dumps({"message": message}).encode()
    headers_out = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)]
    return status, headers_out, body
