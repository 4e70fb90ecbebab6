"""Scheduled: re-evaluates time-dependent computed traits, since time passes without events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.bus import EventPublisher
from midstage.adapters.profile_store import ProfileStore
from midstage.config import ProfileSettings, computed_trait_settings
from midstage.logic import profile as profile_logic
from midstage.logic.timefmt import parse_iso
from midstage.observability import logger, metrics

TIME_DEPENDENT = ("lifecycle_stage", "rfm", "days_since_last_seen", "days_since_last_order", "event_counts")


@cache
def _wiring() -> tuple[ProfileStore, EventPublisher]:
    settings = ProfileSettings.from_env()
    return ProfileStore(settings.data_table), EventPublisher(settings.event_bus_name)


def sweep_segment(segment: int, total: int, now: datetime) -> tuple[int, int]:
    store, publisher = _wiring()
    traits = computed_trait_settings()
    seen = changed = 0
    for profile in store.scan_profiles(segment, total):
        seen += 1
        before = profile.computed
        after = profile_logic.compute(profile, now, traits)
        if {k: before.get(k) for k in TIME_DEPENDENT} == {k: after.get(k) for k in TIME_DEPENDENT}:
            continue
        previous_stage = before.get("lifecycle_stage")
        profile.computed = after
        profile.updated_at = now.isoformat()
        if store.put_profile_if_unchanged(profile):
            changed += 1
            if previous_stage != after["lifecycle_stage"]:
                publisher.publish(
                    [
                        (
                            "profile.updated",
                            {
                                "profileId": profile.id,
                                "version": profile.version + 1,
                                "changes": {"computed": {"lifecycle_stage": after["lifecycle_stage"]}},
                            },
                        )
                    ]
                )
    return seen, changed


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    total = max(1, min(int(event.get("segments", 4)), 64))
    scheduled = event.get("scheduledTime")
    now = parse_iso(scheduled) if isinstance(scheduled, str) and scheduled[:1].isdigit() else datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=total) as pool:
        results = list(pool.map(lambda s: sweep_segment(s, total, now), range(total)))
    seen = sum(r[0] for r in results)
    changed = sum(r[1] for r in results)
    metrics.add_metric(name="ProfilesSwept", unit=MetricUnit.Count, value=seen)
    metrics.add_metric(name="ProfilesRecomputed", unit=MetricUnit.Count, value=changed)
    logger.info("lifecycle sweep done", extra={"profiles": seen, "recomputed": changed, "as_of": now.isoformat()})
    return {"profiles": seen, "recomputed": changed, "asOf": now.isoformat()}
