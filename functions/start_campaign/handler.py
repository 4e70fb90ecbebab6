"""EventBridge Scheduler target: starts a campaign's run for one schedule occurrence and fans its
parts out to the campaign workers. A double-fired occurrence starts nothing new. With
`"stage": "winner"` (an auto-winner's second schedule) it judges the test and sends the winner
to the people who waited (services/campaign_experiments.py)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.automation_store import CampaignRuns
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.experiment_store import ExperimentTable
from midstage.adapters.queues import MessageQueue
from midstage.analytics_wiring import analytics_engine, experiments_service
from midstage.clock import Clock, from_environment
from midstage.config import CampaignSettings
from midstage.logic.timefmt import parse_iso
from midstage.observability import correlate_schedule, logger, metrics, tracer
from midstage.services.campaign_experiments import start_winner
from midstage.services.campaigns import CampaignRunner, Started
from midstage.services.experiments import Experiments


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _settings() -> CampaignSettings:
    return CampaignSettings.from_env()


@cache
def _runner() -> CampaignRunner:
    settings = _settings()
    return CampaignRunner(
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        CampaignRuns(settings.data_table),
        MessageQueue(settings.campaign_queue_url),
        parts=settings.campaign_parts,
        experiments=ExperimentTable(settings.data_table),
    )


@cache
def _experiments() -> Experiments:
    settings = _settings()
    engine = cache(lambda: analytics_engine(settings))
    return experiments_service(settings, engine, _clock(), origin_kind="campaign")


def _start_winner(campaign_id: str, scheduled: datetime) -> Started:
    runner = _runner()
    return start_winner(
        runner, CampaignRuns(_settings().data_table), _experiments().decide, campaign_id, scheduled, _clock()()
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
    if event.get("stage") == "winner":
        # WinnerNotReady propagates: the invocation fails and Scheduler's retry asks again.
        started = _start_winner(campaign_id, parse_iso(scheduled))
    else:
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
        "winner": event.get("stage") == "winner",
        "runId": started.run_id,
        "created": started.created,
        "partsQueued": started.parts_queued,
        "skipped": started.skipped or None,
    }
