"""Scheduled: what changes as time passes with no event. Time-dependent computed traits (lifecycle
stage, recency) and segment memberships ("no order in 30 days") are re-evaluated over every
profile, and people whose date trait comes round (a birthday) enter their journeys."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.bus import EventPublisher
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.profile_store import ProfileStore
from midstage.config import ProfileSettings, computed_trait_settings
from midstage.logic.timefmt import parse_iso
from midstage.observability import logger, metrics
from midstage.services.journeys import JourneyCatalog, date_entries
from midstage.services.segments import SegmentCatalog, refresh_part


@cache
def _wiring() -> tuple[ProfileStore, EventPublisher, SegmentCatalog, JourneyCatalog, str]:
    settings = ProfileSettings.from_env()
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    return (
        ProfileStore(settings.data_table),
        EventPublisher(settings.event_bus_name),
        SegmentCatalog(config),
        JourneyCatalog(config),
        settings.default_timezone,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    total = max(1, min(int(event.get("segments", 4)), 64))
    scheduled = event.get("scheduledTime")
    now = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else datetime.now(UTC)
    store, publisher, segments, journeys, default_timezone = _wiring()
    current = segments.current()
    traits = computed_trait_settings()
    dated = journeys.current().dated()

    def on_profile(profile: Any) -> list[tuple[str, dict[str, Any]]]:
        return date_entries(dated, profile, now, default_timezone)

    with ThreadPoolExecutor(max_workers=total) as pool:
        results = list(
            pool.map(
                lambda part: refresh_part(
                    store, publisher, current, traits, part, total, now, on_profile=on_profile if dated else None
                ),
                range(total),
            )
        )
    seen = sum(r.scanned for r in results)
    changed = sum(r.changed for r in results)
    metrics.add_metric(name="ProfilesSwept", unit=MetricUnit.Count, value=seen)
    metrics.add_metric(name="ProfilesRecomputed", unit=MetricUnit.Count, value=changed)
    logger.info("profile sweep done", extra={"profiles": seen, "recomputed": changed, "as_of": now.isoformat()})
    return {"profiles": seen, "recomputed": changed, "asOf": now.isoformat()}
