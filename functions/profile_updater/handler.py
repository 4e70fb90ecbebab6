"""SQS consumer: applies each hand-off message (one person's events) to the profile store."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.bus import EventPublisher
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.clock import Clock, from_environment
from midstage.config import ProfileSettings, computed_trait_settings, identity_settings
from midstage.logic.ingest import IngestSettings, process_unit
from midstage.observability import logger, metrics
from midstage.services.segments import SegmentCatalog

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[IngestSettings, ProfileStore, EventPublisher, SegmentCatalog]:
    settings = ProfileSettings.from_env()
    ingest = IngestSettings(
        identity=identity_settings(),
        traits=computed_trait_settings(),
        dedupe_window=timedelta(hours=settings.dedupe_window_hours),
        timeline_retention=timedelta(days=settings.timeline_retention_days),
    )
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    return ingest, ProfileStore(settings.data_table), EventPublisher(settings.event_bus_name), SegmentCatalog(config)


def record_handler(record: SQSRecord) -> None:
    settings, store, publisher, segments = _wiring()
    message = json.loads(record.body)
    events = message.get("events") if isinstance(message, dict) else None
    if message.get("v") != 1 or not isinstance(events, list) or not events:
        raise ValueError(f"not a hand-off message: {record.body[:200]!r}")
    outcome = process_unit(
        events, store, publisher, settings, _clock()(), conflict=ConcurrentWrite, segments=segments.current()
    )
    metrics.add_metric(name="EventsApplied", unit=MetricUnit.Count, value=outcome.applied)
    if outcome.duplicates:
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=outcome.duplicates)
    if outcome.merged:
        metrics.add_metric(name="ProfilesMerged", unit=MetricUnit.Count, value=len(outcome.merged))
    if outcome.refused:
        metrics.add_metric(name="MergesRefused", unit=MetricUnit.Count, value=len(outcome.refused))
    if outcome.attempts > 1:
        metrics.add_metric(name="WriteConflicts", unit=MetricUnit.Count, value=outcome.attempts - 1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
