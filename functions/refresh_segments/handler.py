"""SQS consumer: one part of a profile refresh (a slice of the profile scan) per message: a
segment backfill, or the hourly sweep (which also enters people into date-triggered journeys).
Progress is recorded on the job; a part that runs out of time queues its own continuation."""

from __future__ import annotations

import time
from dataclasses import dataclass
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
from midstage.batch import RecordingBatchProcessor, failure_log, receive
from midstage.clock import Clock, from_environment
from midstage.config import RefreshSettings, computed_trait_settings
from midstage.logic.timefmt import parse_iso
from midstage.models.messages import VERSION, RefreshPart
from midstage.observability import logger, tracer
from midstage.services.journeys import JourneyCatalog, date_entries
from midstage.services.segments import PartResult, SegmentCatalog, record_progress, refresh_part


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


# The clock is read at each call, so a test's fixed clock holds.
processor = RecordingBatchProcessor("refresh-segments", failure_log, clock=lambda: _clock()())
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
    message = receive(record, RefreshPart)
    job_id, part = message.job_id, message.part
    # The scheduler's time for a sweep (recency and birthdays count from it), else now.
    as_of = message.as_of
    now = parse_iso(as_of) if as_of is not None and as_of[:1].isdigit() else _clock()()
    dated = wiring.journeys.current().dated() if message.sweep else []

    def on_profile(profile: Any) -> list[tuple[str, dict[str, Any]]]:
        return date_entries(dated, profile, now, wiring.default_timezone)

    def progress(page: PartResult) -> None:
        record_progress(jobs, store, job_id, part, page, now, found_at=_clock()())

    result = refresh_part(
        store,
        publisher,
        wiring.segments.current(),
        computed_trait_settings(),
        part,
        message.total,
        now,
        cursor=message.cursor,
        deadline=time.monotonic() + time_left - _RESERVE_S,
        on_page=progress,
        on_profile=on_profile if dated else None,
        started=parse_iso(message.started_at) if message.started_at else None,
    )
    if not result.finished:
        queue.send_bodies([message.model_copy(update={"cursor": result.cursor, "version": VERSION}).body()])
    logger.info("segment refresh part", job=job_id, part=part, scanned=result.scanned, changed=result.changed)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
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
