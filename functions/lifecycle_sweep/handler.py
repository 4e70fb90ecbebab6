"""Scheduled hourly: starts the sweep of what changes as time passes with no event. Time-dependent
computed traits (lifecycle stage, recency), segment memberships ("no order in 30 days") and
date-triggered journeys (a birthday) are re-evaluated over every profile by the refresh workers,
one part of the profile scan each, so the sweep scales with the table instead of one invocation.
It also counts the privacy requests past their due date (the PrivacyRequestsOverdue alarm)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.automation_store import RefreshJobs
from midstage.adapters.privacy_store import Regulations
from midstage.adapters.queues import MessageQueue
from midstage.clock import Clock, from_environment
from midstage.config import SweepSettings
from midstage.logic.privacy import overdue
from midstage.logic.timefmt import iso, parse_iso
from midstage.observability import correlate_schedule, logger, metrics, tracer
from midstage.services.segments import start_refresh


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[RefreshJobs, MessageQueue, int, Regulations]:
    settings = SweepSettings.from_env()
    jobs, queue = RefreshJobs(settings.data_table), MessageQueue(settings.refresh_queue_url)
    return jobs, queue, settings.sweep_parts, Regulations(settings.data_table)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_schedule(event, context)
    jobs, queue, default_parts, regulations = _wiring()
    parts = max(1, min(int(event.get("parts", default_parts)), 1000))
    scheduled = event.get("scheduledTime")
    now = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else _clock()()
    # Named by the occurrence: a schedule that fires twice starts one sweep.
    job_id = "sweep_" + now.strftime("%Y%m%dT%H%M")
    doc = {"kind": "sweep", "as_of": now.isoformat()}
    started = start_refresh(jobs, queue, job_id, doc, parts, _clock()(), as_of=now)
    logger.info("profile sweep", job=job_id, parts=parts, started=started)
    late = overdue(regulations.not_ended(), iso(_clock()()))
    metrics.add_metric(name="PrivacyRequestsOverdue", unit=MetricUnit.Count, value=len(late))
    if late:
        logger.warning("privacy requests overdue", count=len(late), oldest=late[:5])
    return {"jobId": job_id, "parts": parts, "started": started, "asOf": now.isoformat()}
