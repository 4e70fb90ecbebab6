"""Powertools' SQS batch processor, recording why a record failed so that its dead letter can
say (GET /v1/dead-letters/{queue}). Recording never changes the outcome: if it fails, the
record is still reported as failed and only the reason is missing."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.base import ExceptionInfo, FailureResponse

from midstage import correlation
from midstage.adapters.dead_letters import FailureLog
from midstage.clock import Clock
from midstage.config import StoreSettings
from midstage.logic.text import printable
from midstage.models.messages import M, parse_body
from midstage.observability import correlate, logger

MAX_ERROR_CHARS = 1000


class FailureRecorder(Protocol):
    def record(self, sqs_message_id: str, failure: dict[str, Any], now_epoch: int) -> None: ...


class RecordingBatchProcessor(BatchProcessor):
    """`failures` is called on the first failure (no client at import time); exceptions of the
    types in `not_failures` (work handed back on purpose) are reported but not recorded; `clock`
    is the function's (a handler passes one that reads its wiring at each call)."""

    def __init__(
        self,
        function: str,
        failures: Callable[[], FailureRecorder],
        *,
        not_failures: tuple[type[BaseException], ...] = (),
        clock: Clock,
        raise_on_entire_batch_failure: bool = True,
    ) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=raise_on_entire_batch_failure)
        self.function = function
        self._failures = failures
        self._not_failures = not_failures
        self._clock = clock

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        response = super().failure_handler(record, exception)
        error = exception[1]
        if error is not None and not isinstance(error, self._not_failures):
            raw = getattr(record, "raw_event", record)  # an SQSRecord, or the dict it failed to become
            if isinstance(raw, dict) and raw.get("messageId"):
                record_why(self._failures, self.function, raw, error, self._clock)
        return response


def record_why(
    failures: Callable[[], FailureRecorder],
    function: str,
    record: dict[str, Any],
    error: BaseException,
    clock: Clock,
) -> None:
    """Keep why `function` failed the SQS `record`, under its message id, for its dead letter."""
    message_id = str(record.get("messageId", ""))
    try:
        now = clock()
        failure = {
            "function": function,
            "errorType": type(error).__name__,
            "errorMessage": printable(str(error))[:MAX_ERROR_CHARS],
            "at": now.isoformat(timespec="seconds"),
            "receiveCount": int((record.get("attributes") or {}).get("ApproximateReceiveCount", 0) or 0),
        }
        failures().record(message_id, failure, int(now.timestamp()))
    except Exception:  # the reason is a courtesy; the failure itself is already reported
        logger.warning("could not record why a record failed", extra={"sqs_message_id": message_id})


@cache
def failure_log() -> FailureRecorder:
    """The DataTable's failure records, made on first use (no client at import time)."""
    return FailureLog(StoreSettings.from_env().data_table)


def correlate_record(record: Any) -> None:
    """Take up the correlation id a record's message carries, for this record's log lines and
    what it sends on; a message sent without one is known by its SQS message id."""
    given = correlation.from_record(record)
    if given is None:
        raw = getattr(record, "raw_event", record)
        given = correlation.clean(raw.get("messageId")) if isinstance(raw, dict) else None
    correlate(given)


def receive(record: Any, model: type[M]) -> M:
    """A record's message, parsed at the consumer's edge (ValueError if it is not one), with
    its correlation id taken up first so that even the refusal is logged under it."""
    correlate_record(record)
    return parse_body(model, record.body)
