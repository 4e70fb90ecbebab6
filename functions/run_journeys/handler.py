"""EventBridge target: enters people into journeys and moves their instances on (events that
start or end them, segment entries, date triggers from the sweep, and due wait timers)."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.archive_stream import archive_sink
from midstage.adapters.automation_store import EntryCaps, JourneyInstances
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.adapters.experiment_store import ExperimentTable, RecentExperiments
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.clock import Clock, from_environment
from midstage.config import JourneySettings, computed_trait_settings
from midstage.models.messages import DomainEvent, MessageError
from midstage.observability import bus_event_id, correlate, logger, metrics, tracer
from midstage.services.journeys import JourneyCatalog, JourneyRunner


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _runner() -> JourneyRunner:
    settings = JourneySettings.from_env()
    table = settings.data_table
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    counters = Counters(table, shards=settings.stats_shards)
    return JourneyRunner(
        JourneyCatalog(config, max_window_days=max(computed_trait_settings().count_windows_days)),
        ProfileStore(table),
        JourneyInstances(table, counters=counters),
        MessageQueue(settings.delivery_queue_url),
        SqsHandoff(settings.ingest_queue_url),
        TimerStore(table),
        EntryCaps(table),
        counters,
        default_timezone=settings.default_timezone,
        archive=archive_sink(settings.archive_stream),
        experiments=RecentExperiments(ExperimentTable(table), monotonic=time.monotonic),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        domain = DomainEvent.from_bus(event)
    except MessageError:
        logger.error("not a domain event", detail_type=str(event.get("detail-type", "")))
        return {"error": "not a domain event"}
    correlate(domain.correlation_id or bus_event_id(event))
    summary = _runner().handle(domain.kind, domain.detail, _clock()())
    if summary.entered:
        metrics.add_metric(name="JourneysEntered", unit=MetricUnit.Count, value=len(summary.entered))
    if summary.steps:
        metrics.add_metric(name="JourneySteps", unit=MetricUnit.Count, value=summary.steps)
    if summary.entered or summary.moved:
        logger.info("journeys moved", entered=summary.entered, moved=summary.moved, steps=summary.steps)
    return {
        "entered": summary.entered,
        "moved": summary.moved,
        "refused": summary.refused,
        "steps": summary.steps,
        "messages": summary.messages,
        "events": summary.events,
        "timers": summary.timers,
    }
