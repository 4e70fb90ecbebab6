"""Scheduled hourly: starts the sweep of what changes as time passes with no event. Time-dependent
computed traits (lifecycle stage, recency), segment memberships ("no order in 30 days") and
date-triggered journeys (a birthday) are re-evaluated over every profile by the refresh workers,
one part of the profile scan each, so the sweep scales with the table instead of one invocation."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.automation_store import RefreshJobs
from midstage.adapters.queues import MessageQueue
from midstage.clock import Clock, from_environment
from midstage.config import SweepSettings
from midstage.logic.timefmt import parse_iso
from midstage.observability import correlate_schedule, logger, tracer
from midstage.services.segments import start_refresh


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[RefreshJobs, MessageQueue, int]:
    settings = SweepSettings.from_env()
    return RefreshJobs(settings.data_table), MessageQueue(settings.refresh_queue_url), settings.sweep_parts


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_schedule(event, context)
    jobs, queue, default_parts = _wiring()
    parts = max(1, min(int(event.get("parts", default_parts)), 1000))
    scheduled = event.get("scheduledTime")
    now = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else _clock()()
    # Named by the occurrence: a schedule that fires twice starts one sweep.
    job_id = "sweep_" + now.strftime("%Y%m%dT%H%M")
    doc = {"kind": "sweep", "as_of": now.isoformat()}
    started = start_refresh(jobs, queue, job_id, doc, parts, _clock()(), as_of=now)
    logger.info("profile sweep", job=job_id, parts=parts, started=started)
    return {"jobId": job_id, "parts": parts, "started": started, "asOf": now.isoformat()}
