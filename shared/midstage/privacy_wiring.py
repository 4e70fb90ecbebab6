"""Privacy requests' wiring (services/privacy.py): the admin function makes requests and the
import queue's worker runs them, over the same stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache

from midstage.adapters.audit_store import AuditStore
from midstage.adapters.automation_store import JourneyInstances, Touches
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.destination_store import DestinationStore
from midstage.adapters.erasure_store import ArchiveRewriter, ErasureTable
from midstage.adapters.messaging_store import InboxStore, MessageLedger, SuppressionStore
from midstage.adapters.offer_store import OfferStore
from midstage.adapters.privacy_store import ExportFiles, PersonSuppressions, Regulations, Salt
from midstage.adapters.profile_store import ProfileStore
from midstage.adapters.queues import MessageQueue
from midstage.clock import Clock
from midstage.config import ImportSettings
from midstage.models.destinations import DESTINATION_KIND, Destination
from midstage.services.bulk_import import Tasks
from midstage.services.destination_notices import DestinationNotices
from midstage.services.erasure import Erasure, Stores
from midstage.services.privacy import PrivacyRequests
from midstage.services.privacy_export import BundleExporter

EVER = datetime(1970, 1, 1, tzinfo=UTC)


def privacy_requests(
    data_table: str,
    config_table: str,
    bucket: str,
    tasks: Tasks,
    *,
    clock: Callable[[], datetime],
    create_salt: bool,
    erasure: Erasure | None = None,
) -> PrivacyRequests:
    suppressions = PersonSuppressions(data_table, Salt(config_table, create=create_salt))
    profiles = ProfileStore(data_table)
    exporter = None
    if bucket:
        inbox, touches = InboxStore(data_table), Touches(data_table)
        more = {
            "journeys": JourneyInstances(data_table).of_person,
            "offer_codes": OfferStore(data_table).holdings,
            "inbox": lambda profile_id: inbox.list(profile_id, 1000, None)[0],
            "campaign_touches": lambda profile_id: list(touches.since(profile_id, EVER)),
        }
        ledger, addresses = MessageLedger(data_table), SuppressionStore(data_table)
        exporter = BundleExporter(ExportFiles(bucket), profiles, ledger, addresses, suppressions, more)
    regulations = Regulations(data_table)
    # Read fresh: a destination made a moment before the request is told too.
    notices = DestinationNotices(ConfigStore(config_table, cache_seconds=0), DestinationStore(data_table), clock=clock)
    return PrivacyRequests(
        regulations, suppressions, profiles, tasks, exporter, clock=clock, erasure=erasure, destinations=notices
    )


def eraser(settings: ImportSettings, clock: Callable[[], datetime]) -> Erasure:
    """Erasure over the data table, the ledger, every source's quarantine and the archive, each
    store's pass appended to the audit log."""
    config = ConfigStore(settings.config_table, cache_seconds=0)
    archive = ArchiveRewriter(settings.import_bucket, settings.archive_prefix) if settings.import_bucket else None
    stores = Stores(
        ErasureTable(settings.data_table),
        MessageLedger(settings.data_table),
        archive,
        lambda: [source.id for source in config.list_sources()],
        destinations=lambda: [d.id for d in config.documents(DESTINATION_KIND, Destination)],
        clock=clock,
        origin_shards=settings.origin_shards,
    )
    return Erasure(stores, AuditStore(settings.audit_table) if settings.audit_table else None, clock=clock)


@cache
def privacy_worker(settings: ImportSettings, clock: Clock) -> PrivacyRequests:
    """The import queue's worker of privacy requests (functions/run_imports), once per container."""
    tasks = MessageQueue(settings.import_queue_url)
    bucket = settings.import_bucket
    return privacy_requests(
        settings.data_table,
        settings.config_table,
        bucket,
        tasks,
        clock=clock,
        create_salt=False,
        erasure=eraser(settings, clock),
    )
