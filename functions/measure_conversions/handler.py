"""EventBridge target: a tracked conversion event (a purchase) is attributed to the campaigns
that reached the person, or held them out, within each campaign's window."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage import keys
from midstage.adapters.automation_store import Touches
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.clock import Clock, from_environment
from midstage.config import StoreSettings
from midstage.models.campaigns import Campaign
from midstage.models.messages import DomainEvent, MessageError
from midstage.observability import bus_event_id, correlate, logger, metrics, tracer
from midstage.services.campaigns import ConversionTracker


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _tracker() -> ConversionTracker:
    settings = StoreSettings.from_env()
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    table = settings.data_table
    return ConversionTracker(
        lambda: config.documents(keys.CAMPAIGN_PK, Campaign),
        Touches(table),
        Counters(table, shards=settings.stats_shards),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        domain: DomainEvent | None = DomainEvent.from_bus(event)
    except MessageError:
        domain = None
    if domain is None or not isinstance(domain.detail.get("event"), dict):
        logger.error("not an event.tracked domain event")
        return {"error": "not an event.tracked domain event"}
    correlate(domain.correlation_id or bus_event_id(event))
    detail = domain.detail
    counted = _tracker().handle(str(detail.get("profileId", "")), detail["event"], _clock()())
    return {"attributed": counted}
