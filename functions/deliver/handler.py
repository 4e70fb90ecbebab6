"""SQS consumer: delivers message requests through the ledger, the guards and the providers."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.archive_stream import Archive, archive_sink
from midstage.adapters.automation_store import Touches
from midstage.adapters.counters import Counters
from midstage.adapters.queues import MessageQueue
from midstage.batch import RecordingBatchProcessor, failure_log, receive
from midstage.clock import Clock, from_environment
from midstage.config import DeliverySettings
from midstage.delivery_wiring import delivery_wiring
from midstage.logic.delivery import IN_FLIGHT, Policy, RetryLater
from midstage.models.messages import Delivery
from midstage.observability import logger, metrics, tracer
from midstage.services.campaigns import count_outcome
from midstage.services.delivery import Ports, archive_outcome, deliver_paced


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


# The clock is read at each call, so a test's fixed clock holds.
processor = RecordingBatchProcessor("deliver", failure_log, clock=lambda: _clock()())


@cache
def _sleep() -> Callable[[float], None]:
    """How this function waits for a send token (part of its wiring: a test moves its clock)."""
    return time.sleep


class NotYet(Exception):
    """Another delivery holds this message's lease; the queue brings it back after that one ends."""


# A message is begun only with this much of the invocation left: its provider call (retries
# included, providers/errors.py SEND_BUDGET_S and the sending clients' timeouts) ends before
# the function's timeout, so a call is never cut off for want of time (its outcome unknown).
START_WITH_S = 15.0
_remaining_s: list[Callable[[], float]] = []


@cache
def _outcomes() -> tuple[Counters, Touches, Archive]:
    settings = DeliverySettings.from_env()
    table = settings.data_table
    return Counters(table, shards=settings.stats_shards), Touches(table), archive_sink(settings.archive_stream)


@cache
def _requeue() -> MessageQueue:
    return MessageQueue(DeliverySettings.from_env().delivery_queue_url)


@cache
def _wiring() -> tuple[Ports, Policy]:
    # The clock is looked up at each reading, so a clock given after loading is the one used.
    return delivery_wiring(DeliverySettings.from_env(), lambda: _clock()())


def record_handler(record: SQSRecord) -> None:
    ports, policy = _wiring()
    try:
        request = receive(record, Delivery).request
    except ValueError as error:
        # Kept, not dropped: after the queue's retries it lands in the dead-letter queue.
        logger.error("not a message request", reason=str(error), body=record.body[:500])
        raise
    logger.append_keys(message_id=request.message_id, profile_id=request.profile_id)
    if _remaining_s and _remaining_s[0]() < START_WITH_S:
        raise RetryLater("too little of the invocation left to begin a delivery: the queue brings it back")
    now = _clock()()
    try:
        outcome = deliver_paced(request, ports, policy, lambda: _clock()(), _sleep(), _requeue())
    except RetryLater:
        metrics.add_metric(name="DeliveryRetries", unit=MetricUnit.Count, value=1)
        raise
    if outcome.status == IN_FLIGHT:
        raise NotYet(request.message_id)
    counters, touches, _ = _outcomes()
    count_outcome(request, outcome, counters, touches, now)
    metrics.add_metric(name=f"Messages_{outcome.status}", unit=MetricUnit.Count, value=1)
    archive_outcome(request, outcome, _outcomes()[2], now)
    logger.info("delivery outcome", status=outcome.status, reason=outcome.reason, channel=outcome.channel)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _remaining_s[:] = [lambda: context.get_remaining_time_in_millis() / 1000]
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
