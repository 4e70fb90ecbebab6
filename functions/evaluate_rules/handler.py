"""EventBridge target: evaluates rules against each domain event and queues their effects."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.messaging_store import FireRecords
from midstage.adapters.offer_store import OfferStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.clock import Clock, from_environment
from midstage.config import RulesSettings, computed_trait_settings
from midstage.models.messages import DomainEvent, MessageError
from midstage.observability import bus_event_id, correlate, logger, metrics, tracer
from midstage.services.offers import OfferIssuer
from midstage.services.rules import RuleEngine


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _engine() -> RuleEngine:
    settings = RulesSettings.from_env()
    return RuleEngine(
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        ProfileStore(settings.data_table),
        FireRecords(settings.data_table),
        MessageQueue(settings.delivery_queue_url),
        SqsHandoff(settings.ingest_queue_url),
        max_depth=settings.max_rule_depth,
        max_window_days=max(computed_trait_settings().count_windows_days),
        offers=_offers(),
    )


@cache
def _offers() -> OfferIssuer:
    table = RulesSettings.from_env().data_table
    return OfferIssuer(OfferStore(table), merged_into=ProfileStore(table).merged_from)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        domain = DomainEvent.from_bus(event)
    except MessageError:
        # Not retriable: EventBridge would deliver the same malformed event again.
        logger.error("not a domain event", detail_type=str(event.get("detail-type", "")))
        return {"error": "not a domain event"}
    correlate(domain.correlation_id or bus_event_id(event))
    summary = _engine().handle(domain.kind, domain.detail, _clock()())
    if domain.kind == "event.tracked" and isinstance(domain.detail.get("event"), dict):
        # A coupon used in an order marks its code redeemed (once per event: a retry is a no-op).
        redeemed = _offers().redeem(domain.detail["event"], str(domain.detail.get("profileId")), _clock()())
        if redeemed is not None:
            metrics.add_metric(name="CouponsRedeemed", unit=MetricUnit.Count, value=1)
            logger.info("coupon used", outcome=redeemed)
    if summary.fired:
        metrics.add_metric(name="RulesFired", unit=MetricUnit.Count, value=len(summary.fired))
        logger.info("rules fired", rules=summary.fired, messages=summary.messages, events=summary.events)
    if summary.held_out:
        metrics.add_metric(name="RulesHeldOut", unit=MetricUnit.Count, value=len(summary.held_out))
    return {
        "considered": summary.considered,
        "matched": summary.matched,
        "fired": summary.fired,
        "heldOut": summary.held_out,
        "refused": summary.refused,
        "messages": summary.messages,
        "events": summary.events,
    }
