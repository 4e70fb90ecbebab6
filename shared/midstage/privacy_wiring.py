"""Privacy requests' wiring (services/privacy.py): the admin function makes requests and the
import queue's worker runs them, over the same stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from midstage.adapters.messaging_store import MessageLedger, SuppressionStore
from midstage.adapters.privacy_store import ExportFiles, PersonSuppressions, Regulations, Salt
from midstage.adapters.profile_store import ProfileStore
from midstage.services.bulk_import import Tasks
from midstage.services.privacy import PrivacyRequests
from midstage.services.privacy_export import BundleExporter


def privacy_requests(
    data_table: str,
    config_table: str,
    bucket: str,
    tasks: Tasks,
    *,
    clock: Callable[[], datetime],
    create_salt: bool,
) -> PrivacyRequests:
    suppressions = PersonSuppressions(data_table, Salt(config_table, create=create_salt))
    profiles = ProfileStore(data_table)
    exporter = None
    if bucket:
        exporter = BundleExporter(
            ExportFiles(bucket), profiles, MessageLedger(data_table), SuppressionStore(data_table), suppressions
        )
    return PrivacyRequests(Regulations(data_table), suppressions, profiles, tasks, exporter, clock=clock)
