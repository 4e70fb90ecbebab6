"""The profile updater's wiring (functions/profile_updater): its settings, stores and sinks made
from its environment's settings, so the handler stays parsing, one call and mapping."""

from __future__ import annotations

from datetime import timedelta

from midstage.adapters.archive_stream import Archive, archive_sink
from midstage.adapters.bus import EventPublisher
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.destination_feed import Feed, destination_feed
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.privacy_store import PersonSuppressions, Salt
from midstage.adapters.profile_store import ProfileStore
from midstage.config import ProfileSettings, computed_trait_settings, identity_settings
from midstage.logic.ingest import CostModel, IngestSettings
from midstage.services.segments import SegmentCatalog

UpdaterWiring = tuple[
    IngestSettings,
    ProfileStore,
    EventPublisher,
    SegmentCatalog,
    CostModel,
    SqsHandoff,
    Archive,
    Feed,
    PersonSuppressions,
]


def updater_wiring(settings: ProfileSettings) -> UpdaterWiring:
    ingest = IngestSettings(
        identity=identity_settings(),
        traits=computed_trait_settings(),
        dedupe_window=timedelta(hours=settings.dedupe_window_hours),
        timeline_retention=timedelta(days=settings.timeline_retention_days),
    )
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    store, publisher = ProfileStore(settings.data_table), EventPublisher(settings.event_bus_name)
    handoff, archive = SqsHandoff(settings.ingest_queue_url), archive_sink(settings.archive_stream)
    feed = destination_feed(settings.destinations_queue_url, catalog=config)
    # Privacy requests' suppressions: events naming a suppressed person are dropped and counted.
    privacy = PersonSuppressions(settings.data_table, Salt(settings.config_table, create=True))
    return ingest, store, publisher, SegmentCatalog(config), CostModel(), handoff, archive, feed, privacy
