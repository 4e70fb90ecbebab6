"""Scheduled every minute: releases timers that are due (deferred sends, journey waits)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.bus import EventPublisher
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.clock import Clock, from_environment
from midstage.config import TimerSettings
from midstage.logic.timefmt import parse_iso
from midstage.observability import correlate_schedule, logger, metrics, tracer
from midstage.services.timers import sweep


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[TimerStore, MessageQueue, EventPublisher]:
    settings = TimerSettings.from_env()
    return (
        TimerStore(settings.data_table),
        MessageQueue(settings.delivery_queue_url),
        EventPublisher(settings.event_bus_name),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_schedule(event, context)
    scheduled = event.get("scheduledTime")
    now = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else _clock()()
    timers, queue, publisher = _wiring()
    released = sweep(timers, queue, now, publisher)
    if released:
        metrics.add_metric(name="TimersReleased", unit=MetricUnit.Count, value=released)
    return {"released": released, "asOf": now.isoformat()}
