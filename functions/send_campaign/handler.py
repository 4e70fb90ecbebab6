"""SQS consumer: one campaign worker per message, holding one part of a run (a slice of the
profile scan) and queuing its audience's messages at its share of the campaign's send rate."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.archive_stream import archive_sink
from midstage.adapters.automation_store import CampaignRuns, Touches
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.experiment_store import ExperimentTable
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.adapters.timer_store import TimerStore
from midstage.batch import RecordingBatchProcessor, failure_log, receive
from midstage.clock import Clock, from_environment
from midstage.config import CampaignSettings
from midstage.models.messages import CampaignPart
from midstage.observability import logger, metrics, tracer
from midstage.services.campaigns import CampaignWorker


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


# The clock is read at each call, so a test's fixed clock holds.
processor = RecordingBatchProcessor("send-campaign", failure_log, clock=lambda: _clock()())
_DEFAULT_TIME_LEFT_S = 900.0


@cache
def _worker() -> CampaignWorker:
    settings = CampaignSettings.from_env()
    table = settings.data_table
    return CampaignWorker(
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        CampaignRuns(table),
        ProfileStore(table),
        MessageQueue(settings.delivery_queue_url),
        TimerStore(table),
        Touches(table),
        MessageQueue(settings.campaign_queue_url),
        default_timezone=settings.default_timezone,
        archive=archive_sink(settings.archive_stream),
        experiments=ExperimentTable(table),
        global_control=(settings.global_control_share, settings.global_control_salt),
    )


def _time_left(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else _DEFAULT_TIME_LEFT_S


def record_handler(record: SQSRecord, context: Any = None) -> None:
    message = receive(record, CampaignPart)
    campaign_id, run_id, part, total = message.campaign_id, message.run_id, message.part, message.total
    outcome = _worker().work(campaign_id, run_id, part, total, _clock(), _time_left(context))
    counts = outcome.counts or {}
    metrics.add_metric(name="CampaignPages", unit=MetricUnit.Count, value=outcome.pages)
    logger.info("campaign part", campaign=campaign_id, run=run_id, part=part, state=outcome.state, counts=counts)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event,
        record_handler=lambda record: record_handler(record, context),
        processor=processor,
        context=context,
    )
    return dict(response)
