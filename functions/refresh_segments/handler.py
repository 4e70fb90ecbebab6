"""SQS consumer: one part of a profile refresh (a slice of the profile scan) per message: a
segment backfill, or the hourly sweep (which also enters people into date-triggered journeys).
Progress is recorded on the job; a part that runs out of time queues its own continuation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.automation_store import RefreshJobs
from midstage.adapters.bus import EventPublisher
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.batch import RecordingBatchProcessor, failure_log
from midstage.clock import Clock, from_environment
from midstage.config import RefreshSettings, computed_trait_settings
from midstage.logic.timefmt import parse_iso
from midstage.observability import logger
from midstage.services.journeys import JourneyCatalog, date_entries
from midstage.services.segments import PartResult, SegmentCatalog, refresh_part


def _now() -> datetime:
    """Now by this function's clock, read at each call (so a test's fixed clock holds)."""
    return _clock()()


processor = RecordingBatchProcessor("refresh-segments", failure_log, clock=_now)
_RESERVE_S = 60.0


@dataclass(frozen=True)
class _Wiring:
    store: ProfileStore
    publisher: EventPublisher
    segments: SegmentCatalog
    journeys: JourneyCatalog
    jobs: RefreshJobs
    queue: MessageQueue
    default_timezone: str


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> _Wiring:
    settings = RefreshSettings.from_env()
    # Definitions read fresh: a backfill starts because one just changed.
    config = ConfigStore(settings.config_table, cache_seconds=0)
    return _Wiring(
        ProfileStore(settings.data_table),
        EventPublisher(settings.event_bus_name),
        SegmentCatalog(config),
        JourneyCatalog(config),
        RefreshJobs(settings.data_table),
        MessageQueue(settings.refresh_queue_url),
        settings.default_timezone,
    )


def record_handler(record: SQSRecord, time_left: float) -> None:
    wiring = _wiring()
    store, publisher, jobs, queue = wiring.store, wiring.publisher, wiring.jobs, wiring.queue
    try:
        message = json.loads(record.body)
        job_id, part, total = str(message["jobId"]), int(message["part"]), int(message["total"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a refresh part: {record.body[:200]!r}") from error
    # The scheduler's time for a sweep (recency and birthdays count from it), else now.
    as_of = message.get("asOf")
    now = parse_iso(as_of) if isinstance(as_of, str) and as_of[:1].isdigit() else _clock()()
    sweep = str(job_id).startswith("sweep_")
    dated = wiring.journeys.current().dated() if sweep else []

    def on_profile(profile: Any) -> list[tuple[str, dict[str, Any]]]:
        return date_entries(dated, profile, now, wiring.default_timezone)

    def progress(page: PartResult) -> None:
        jobs.progress(job_id, part=part, scanned=page.scanned, changed=page.changed, part_done=page.finished, now=now)

    result = refresh_part(
        store,
        publisher,
        wiring.segments.current(),
        computed_trait_settings(),
        part,
        total,
        now,
        cursor=message.get("cursor"),
        deadline=time.monotonic() + time_left - _RESERVE_S,
        on_page=progress,
        on_profile=on_profile if dated else None,
    )
    if not result.finished:
        queue.send_bodies([json.dumps({**message, "cursor": result.cursor})])
    logger.info("segment refresh part", job=job_id, part=part, scanned=result.scanned, changed=result.changed)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = remaining() / 1000 if callable(remaining) else 900.0
    response = process_partial_response(
        event=event,
        record_handler=lambda record: record_handler(record, time_left),
        processor=processor,
        context=context,
    )
    return dict(response)
