"""SQS consumer: applies each hand-off message (one person's events) to the profile store.

Each invocation starts only the work its time budget allows (logic/ingest.py WorkBudget); what
it has no time for goes back to the ingest queue as a new message for a later invocation, so a
batch at the tracking API's limit never runs into the timeout (which would repeat the batch)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.profile_store import ConcurrentWrite
from midstage.batch import RecordingBatchProcessor, failure_log, receive
from midstage.clock import Clock, from_environment
from midstage.config import ProfileSettings
from midstage.logic.collect import person_key
from midstage.logic.ingest import UnitOutcome, WorkBudget
from midstage.models.messages import ProfileEvents
from midstage.observability import logger, metrics, tracer
from midstage.services.ingest import apply_within_budget, count_applied, process_unit
from midstage.updater_wiring import UpdaterWiring, updater_wiring


class Deferred(Exception):
    """The time budget is spent and the queue refused the rest: back as a partial batch failure."""


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


# A record handed back for lack of time is not an error, even when it is the only one: the
# batch answers with its failures rather than failing the invocation as a whole.
processor = RecordingBatchProcessor(
    "profile-updater",
    failure_log,
    not_failures=(Deferred,),
    raise_on_entire_batch_failure=False,
    clock=lambda: _clock()(),  # read at each call, so a test's fixed clock holds
)


@cache
def _wiring() -> UpdaterWiring:
    return updater_wiring(ProfileSettings.from_env())


def record_handler(
    record: SQSRecord, budget: WorkBudget, remaining_s: Callable[[], float], timer: Callable[[], float]
) -> None:
    settings, store, publisher, segments, _, _, archive, feed, privacy = _wiring()
    events = receive(record, ProfileEvents).events
    unit = functools.partial(process_unit, conflict=ConcurrentWrite, archive=archive, feed=feed, suppressed=privacy)

    def apply(piece: list[dict[str, Any]]) -> UnitOutcome:
        now, current = _clock()(), segments.current()
        return unit(piece, store, publisher, settings, now, segments=current)

    left = apply_within_budget(events, budget, remaining_s, timer, apply, applied=count_applied)
    if left:
        metrics.add_metric(name="RecordsDeferred", unit=MetricUnit.Count, value=1)
        _hand_back(left, len(events))


def _hand_back(left: list[dict[str, Any]], total: int) -> None:
    """The events not applied go back to the ingest queue as a new message and the record is done
    (handed back as a failure five times, it would be dead-lettered without ever having failed);
    if the queue refuses, the record goes back as a partial batch failure after all."""
    try:
        _wiring()[5].send({person_key(left[0]): left})
    except Exception as error:
        raise Deferred(f"{len(left)} of {total} events left for a later invocation") from error


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    cost = _wiring()[4]

    def remaining_s() -> float:
        return context.get_remaining_time_in_millis() / 1000

    budget = WorkBudget.for_invocation(remaining_s(), cost)
    response = process_partial_response(
        event=event,
        record_handler=lambda record: record_handler(record, budget, remaining_s, time.monotonic),
        processor=processor,
        context=context,
    )
    return dict(response)
