"""Destinations: forwards the event stream (services/destinations.py).

Two triggers: the destinations feed (an SQS FIFO queue grouped by profile id) queues each
person's applied events for every destination and delivers what it can at once; a schedule
every minute drains the destinations whose retry is due."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.destination_senders import DestinationSender
from midstage.adapters.destination_store import DestinationStore
from midstage.batch import failure_log, record_why
from midstage.clock import Clock, from_environment
from midstage.config import ForwarderSettings, computed_trait_settings
from midstage.logic.timefmt import parse_iso
from midstage.observability import correlate_schedule, logger, metrics, tracer
from midstage.services.destinations import Forwarder, forward_records


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> Forwarder:
    settings = ForwarderSettings.from_env()
    return Forwarder(
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        DestinationStore(settings.data_table),
        DestinationSender(allow_local=settings.webhook_allow_local),
        clock=lambda: _clock()(),  # read at each call, so a test's fixed clock holds
        max_age=timedelta(hours=settings.destination_retry_hours),
        max_window_days=max(computed_trait_settings().count_windows_days),
    )


def _record_failure(record: Mapping[str, Any], error: BaseException) -> None:
    """Why a feed message could not be read, kept for its dead letter (GET /v1/dead-letters)."""
    record_why(failure_log, "forward-destinations", dict(record), error, lambda: _clock()())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def remaining_s() -> float:
        return context.get_remaining_time_in_millis() / 1000

    if "Records" in event:
        return forward_records(_wiring(), event["Records"], remaining_s, _record_failure)
    correlate_schedule(event, context)
    scheduled = event.get("scheduledTime")
    due_by = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else None
    drained = _wiring().sweep(remaining_s, due_by)
    logger.info("destinations swept", drained=drained)
    return {"drained": drained}
