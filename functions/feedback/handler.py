"""SQS consumer of SES notifications (via the feedback topic): suppressions, statuses, events."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.archive_stream import Archive, archive_sink
from midstage.adapters.counters import Counters
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.messaging_store import MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.batch import RecordingBatchProcessor, correlate_record, failure_log
from midstage.clock import Clock, from_environment
from midstage.config import FeedbackSettings
from midstage.logic.feedback import FeedbackError, is_subscription_confirmation, parse_notification
from midstage.observability import count, logger, metrics, tracer
from midstage.services import feedback
from midstage.services.campaigns import StatusCounter


def _now() -> datetime:
    """Now by this function's clock, read at each call (so a test's fixed clock holds)."""
    return _clock()()


processor = RecordingBatchProcessor("feedback", failure_log, clock=_now)


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[MessageLedger, SuppressionStore, ProfileStore, SqsHandoff, Archive]:
    settings = FeedbackSettings.from_env()
    table = settings.data_table
    ledger = MessageLedger(table, on_status=StatusCounter(Counters(table, shards=settings.stats_shards)))
    handoff, archive = SqsHandoff(settings.ingest_queue_url), archive_sink(settings.archive_stream)
    return ledger, SuppressionStore(table), ProfileStore(table), handoff, archive


def record_handler(record: SQSRecord) -> None:
    correlate_record(record)
    if is_subscription_confirmation(record.body):
        logger.info("SNS subscription confirmation received (SQS subscriptions confirm themselves)")
        return
    try:
        notices = parse_notification(record.body)
    except FeedbackError as error:
        # Not retried: the same bytes would fail again. Logged with an excerpt to investigate.
        logger.error("unreadable SES notification", reason=str(error), body=record.body[:500])
        metrics.add_metric(name="FeedbackUnreadable", unit=MetricUnit.Count, value=1)
        return
    ledger, suppressions, profiles, events, archive = _wiring()
    handled = feedback.handle(notices, ledger, suppressions, profiles, events, archive=archive, now=_clock()())
    count(Unarchived=handled.unarchived)
    if handled.suppressed:
        metrics.add_metric(name="AddressesSuppressed", unit=MetricUnit.Count, value=len(handled.suppressed))
    if handled.unknown_messages:
        metrics.add_metric(name="FeedbackForUnknownMessages", unit=MetricUnit.Count, value=handled.unknown_messages)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
