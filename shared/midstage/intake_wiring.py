"""The intake's wiring, shared by the tracking API (functions/collect) and the inbound webhooks
(functions/webhooks): both read sources, look people up and hand events off the same way."""

from __future__ import annotations

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.config import CollectSettings


def intake_wiring() -> tuple[CollectSettings, ConfigStore, ProfileStore, SqsHandoff]:
    settings = CollectSettings.from_env()
    return (
        settings,
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        ProfileStore(settings.data_table),
        SqsHandoff(settings.ingest_queue_url),
    )
