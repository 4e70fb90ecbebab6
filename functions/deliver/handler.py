"""SQS consumer: delivers message requests through the ledger, the guards and the providers."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from midstage.adapters.automation_store import Counters, Touches
from midstage.adapters.channels import ChannelSenders, ChannelSettings
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.messaging_store import CapStore, InboxStore, MessageLedger, SuppressionStore, TimerStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.providers import PushSender, WebhookSender
from midstage.batch import RecordingBatchProcessor, failure_log
from midstage.clock import Clock, from_environment
from midstage.config import DeliverySettings
from midstage.errors import describe
from midstage.logic.delivery import IN_FLIGHT, Policy, RetryLater, parse_quiet_hours
from midstage.models.messaging import MessageRequest
from midstage.observability import logger, metrics
from midstage.services.campaigns import delivery_counts
from midstage.services.delivery import Ports, deliver


def _now() -> datetime:
    """Now by this function's clock, read at each call (so a test's fixed clock holds)."""
    return _clock()()


processor = RecordingBatchProcessor("deliver", failure_log, clock=_now)


class NotYet(Exception):
    """Another delivery holds this message's lease; the queue brings it back after that one ends."""


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _outcomes() -> tuple[Counters, Touches]:
    table = DeliverySettings.from_env().data_table
    return Counters(table), Touches(table)


@cache
def _wiring() -> tuple[Ports, Policy]:
    settings = DeliverySettings.from_env()
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    table = settings.data_table
    senders = ChannelSenders(
        ChannelSettings(
            email_sender=settings.email_sender,
            configuration_set=settings.ses_configuration_set,
            public_base_url=settings.public_base_url,
            sms_sender_id=settings.sms_sender_id,
            default_timezone=settings.default_timezone,
        ),
        config.secret,
        push=PushSender(settings.push_applications),
        webhook=WebhookSender(allow_local=settings.webhook_allow_local),
        inbox=InboxStore(table),
        clock=_clock(),
    )
    ports = Ports(
        ledger=MessageLedger(table),
        profiles=ProfileStore(table),
        suppressions=SuppressionStore(table),
        caps=CapStore(table),
        templates=_Templates(config),
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


class _Templates:
    def __init__(self, config: ConfigStore) -> None:
        self.config = config

    def approved(self, template_id: str) -> Any:
        return self.config.approved_template(template_id)


def record_handler(record: SQSRecord) -> None:
    ports, policy = _wiring()
    try:
        request = MessageRequest.model_validate(json.loads(record.body))
    except (ValueError, ValidationError) as error:
        # Kept, not dropped: after the queue's retries it lands in the dead-letter queue.
        reason = describe(error, "request") if isinstance(error, ValidationError) else str(error)
        logger.error("not a message request", reason=reason, body=record.body[:500])
        raise ValueError(f"not a message request: {reason}") from error
    logger.append_keys(message_id=request.message_id, profile_id=request.profile_id)
    try:
        outcome = deliver(request, ports, policy, _clock()())
    except RetryLater:
        metrics.add_metric(name="DeliveryRetries", unit=MetricUnit.Count, value=1)
        raise
    if outcome.status == IN_FLIGHT:
        raise NotYet(request.message_id)
    counted = delivery_counts(request, outcome.status, outcome.reason)
    if counted is not None:
        # Once per message: a redelivered request finds the ledger's final state (a duplicate).
        kind, run, counts = counted
        counters, touches = _outcomes()
        counters.add(kind, request.origin.id, run, request.message_id, counts)
        if kind == "campaign" and outcome.status == "sent":
            touches.add(request.profile_id, _clock()(), kind, request.origin.id, run, "sent")
    metrics.add_metric(name=f"Messages_{outcome.status}", unit=MetricUnit.Count, value=1)
    logger.info("delivery outcome", status=outcome.status, reason=outcome.reason, channel=outcome.channel)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
