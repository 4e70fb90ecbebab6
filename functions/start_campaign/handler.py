"""EventBridge Scheduler target: starts a campaign's run for one schedule occurrence and fans its
parts out to the campaign workers. A double-fired occurrence starts nothing new."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.automation_store import CampaignRuns
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.queues import MessageQueue
from midstage.clock import Clock, from_environment
from midstage.config import CampaignSettings
from midstage.logic.timefmt import parse_iso
from midstage.observability import correlate_schedule, logger, metrics, tracer
from midstage.services.campaigns import CampaignRunner


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _runner() -> CampaignRunner:
    settings = CampaignSettings.from_env()
    return CampaignRunner(
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        CampaignRuns(settings.data_table),
        MessageQueue(settings.campaign_queue_url),
        parts=settings.campaign_parts,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_schedule(event, context)
    campaign_id = event.get("campaignId")
    scheduled = event.get("scheduledTime")
    if not isinstance(campaign_id, str) or not isinstance(scheduled, str) or not scheduled[:1].isdigit():
        # Not retriable: Scheduler would deliver the same input again.
        logger.error("not a campaign schedule input", input=str(event)[:500])
        return {"error": "expected {campaignId, scheduledTime}"}
    started = _runner().start(campaign_id, parse_iso(scheduled), _clock()())
    logger.info(
        "campaign run",
        campaign=campaign_id,
        run=started.run_id,
        run_created=started.created,
        parts_queued=started.parts_queued,
        skipped=started.skipped,
    )
    return {
        "campaignId": campaign_id,
        "runId": started.run_id,
        "created": started.created,
        "partsQueued": started.parts_queued,
        "skipped": started.skipped or None,
    }
