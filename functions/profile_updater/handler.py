"""SQS consumer: applies each hand-off message (one person's events) to the profile store.

Each invocation starts only the work its time budget allows (logic/ingest.py WorkBudget); the
events it has no time for go back to the ingest queue as a new message and are applied by a
later invocation, so a batch at the tracking API's limit never runs into the timeout, which
would fail and repeat the whole batch (and dead-letter it after five timeouts)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.bus import EventPublisher
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ConcurrentWrite, ProfileStore
from midstage.batch import RecordingBatchProcessor, failure_log
from midstage.clock import Clock, from_environment
from midstage.config import ProfileSettings, computed_trait_settings, identity_settings
from midstage.logic.collect import person_key
from midstage.logic.ingest import CostModel, IngestSettings, UnitOutcome, WorkBudget
from midstage.observability import logger, metrics
from midstage.services.ingest import process_unit
from midstage.services.segments import SegmentCatalog


class Deferred(Exception):
    """Left for a later invocation: this one's time budget is spent and the queue refused the
    rest as a new message. The record goes back as a partial batch failure; what was applied of
    it is not applied twice."""


def _now() -> datetime:
    """Now by this function's clock, read at each call (so a test's fixed clock holds)."""
    return _clock()()


# A record handed back for lack of time is not an error, even when it is the only one: the
# batch answers with its failures rather than failing the invocation as a whole.
processor = RecordingBatchProcessor(
    "profile-updater",
    failure_log,
    not_failures=(Deferred,),
    raise_on_entire_batch_failure=False,
    clock=_now,
)


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _handoff() -> SqsHandoff:
    return SqsHandoff(ProfileSettings.from_env().ingest_queue_url)


@cache
def _wiring() -> tuple[IngestSettings, ProfileStore, EventPublisher, SegmentCatalog, CostModel]:
    settings = ProfileSettings.from_env()
    ingest = IngestSettings(
        identity=identity_settings(),
        traits=computed_trait_settings(),
        dedupe_window=timedelta(hours=settings.dedupe_window_hours),
        timeline_retention=timedelta(days=settings.timeline_retention_days),
    )
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    return (
        ingest,
        ProfileStore(settings.data_table),
        EventPublisher(settings.event_bus_name),
        SegmentCatalog(config),
        CostModel(),
    )


def record_handler(
    record: SQSRecord, budget: WorkBudget, remaining_s: Callable[[], float], timer: Callable[[], float]
) -> None:
    settings, store, publisher, segments, _ = _wiring()
    message = json.loads(record.body)
    events = message.get("events") if isinstance(message, dict) else None
    if message.get("v") != 1 or not isinstance(events, list) or not events:
        raise ValueError(f"not a hand-off message: {record.body[:200]!r}")
    left = events
    while left:
        size = budget.next_piece(remaining_s(), len(left))
        if size == 0:
            metrics.add_metric(name="RecordsDeferred", unit=MetricUnit.Count, value=1)
            _hand_back(left, len(events))
            return
        piece, left = left[:size], left[size:]
        started = timer()
        outcome = process_unit(
            piece, store, publisher, settings, _clock()(), conflict=ConcurrentWrite, segments=segments.current()
        )
        budget.spent(len(piece), timer() - started)
        _count(outcome)


def _hand_back(left: list[dict[str, Any]], total: int) -> None:
    """The events not applied go back to the ingest queue as a new message, and the record
    counts as done: a record handed back as a partial batch failure would count a receive, and
    one handed back five times would be dead-lettered without ever having failed. If the queue
    refuses, the record goes back as a partial batch failure after all."""
    try:
        _handoff().send({person_key(left[0]): left})
    except Exception as error:
        raise Deferred(f"{len(left)} of {total} events left for a later invocation") from error


def _count(outcome: UnitOutcome) -> None:
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
    cost = _wiring()[4]

    def remaining_s() -> float:
        return context.get_remaining_time_in_millis() / 1000

    budget = WorkBudget.for_invocation(remaining_s(), cost)

    def handle(record: SQSRecord) -> None:
        record_handler(record, budget, remaining_s, time.monotonic)

    response = process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    return dict(response)
