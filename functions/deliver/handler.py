"""SQS consumer: delivers message requests through the ledger, the guards and the providers."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.archive_stream import Archive, archive_sink
from midstage.adapters.automation_store import Counters, Touches
from midstage.adapters.channels import ApprovedTemplates, ChannelSenders, ChannelSettings
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import CapStore, InboxStore, MessageLedger, SuppressionStore, TimerStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.providers import PushSender, WebhookSender
from midstage.batch import RecordingBatchProcessor, failure_log, receive
from midstage.clock import Clock, from_environment
from midstage.config import DeliverySettings
from midstage.logic.delivery import IN_FLIGHT, Policy, RetryLater, parse_quiet_hours
from midstage.models.messages import Delivery
from midstage.observability import logger, metrics, tracer
from midstage.services.campaigns import delivery_counts
from midstage.services.delivery import Ports, archive_outcome, deliver


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


# The clock is read at each call, so a test's fixed clock holds.
processor = RecordingBatchProcessor("deliver", failure_log, clock=lambda: _clock()())


class NotYet(Exception):
    """Another delivery holds this message's lease; the queue brings it back after that one ends."""


@cache
def _outcomes() -> tuple[Counters, Touches, Archive]:
    settings = DeliverySettings.from_env()
    table = settings.data_table
    return Counters(table, shards=settings.stats_shards), Touches(table), archive_sink(settings.archive_stream)


@cache
def _wiring() -> tuple[Ports, Policy]:
    settings = DeliverySettings.from_env()
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    table = settings.data_table
    senders = ChannelSenders(
        ChannelSettings.of(settings),
        config.key_ring,
        push=PushSender(settings.push_applications),
        webhook=WebhookSender(allow_local=settings.webhook_allow_local),
        inbox=InboxStore(table),
        clock=_clock(),
    )
    ports = Ports(
        ledger=MessageLedger(table, origin_shards=settings.origin_shards),
        profiles=ProfileStore(table),
        suppressions=SuppressionStore(table),
        caps=CapStore(table),
        templates=ApprovedTemplates(config),
        timers=TimerStore(table),
        channels=senders,
    )
    policy = Policy(
        marketing_consent=settings.marketing_consent,
        caps=settings.frequency_caps,
        quiet_hours=parse_quiet_hours(settings.quiet_hours),
        default_timezone=settings.default_timezone,
        lease_seconds=settings.send_lease_seconds,
    )
    return ports, policy


def record_handler(record: SQSRecord) -> None:
    ports, policy = _wiring()
    try:
        request = receive(record, Delivery).request
    except ValueError as error:
        # Kept, not dropped: after the queue's retries it lands in the dead-letter queue.
        logger.error("not a message request", reason=str(error), body=record.body[:500])
        raise
    logger.append_keys(message_id=request.message_id, profile_id=request.profile_id)
    now = _clock()()
    try:
        outcome = deliver(request, ports, policy, now)
    except RetryLater:
        metrics.add_metric(name="DeliveryRetries", unit=MetricUnit.Count, value=1)
        raise
    if outcome.status == IN_FLIGHT:
        raise NotYet(request.message_id)
    counted = delivery_counts(request, outcome.status, outcome.reason)
    if counted is not None:
        # Once per message: a redelivered request finds the ledger's final state (a duplicate).
        kind, run, counts = counted
        counters, touches, _ = _outcomes()
        counters.add(kind, request.origin.id, run, request.message_id, counts)
        if kind == "campaign" and outcome.status == "sent":
            touches.add(request.profile_id, _clock()(), kind, request.origin.id, run, "sent")
    metrics.add_metric(name=f"Messages_{outcome.status}", unit=MetricUnit.Count, value=1)
    archive_outcome(request, outcome, _outcomes()[2], now)
    logger.info("delivery outcome", status=outcome.status, reason=outcome.reason, channel=outcome.channel)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
