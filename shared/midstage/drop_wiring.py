"""Files dropped in the import bucket that are not bulk imports (functions/run_imports): a
Pinpoint event stream under `imports/pinpoint-history/`, replayed whole
(services/pinpoint_history.py), and an offer's codes under `imports/offer-codes/<offer id>/`,
loaded into its pool (services/offer_codes.py)."""

from __future__ import annotations

from datetime import datetime

from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.import_store import ImportFiles
from midstage.adapters.messaging_store import SuppressionStore
from midstage.adapters.offer_store import OfferStore
from midstage.config import ImportSettings
from midstage.logic.csvfile import MAX_TEXT_BYTES
from midstage.logic.imports.pinpoint_events import Unreadable, file_text
from midstage.observability import logger
from midstage.services.offer_codes import load_codes
from midstage.services.pinpoint_history import replay_text


def replay_pinpoint_history(key: str, now: datetime) -> None:
    """Replayed whole: a redelivered event replays it again, which the updater absorbs."""
    settings = ImportSettings.from_env()
    try:
        text, damage = file_text(ImportFiles(settings.import_bucket).chunks(key))
    except Unreadable as error:  # trying again would not help
        logger.warning("pinpoint history unreadable", key=key, reason=str(error))
        return
    handoff, suppressions = SqsHandoff(settings.ingest_queue_url), SuppressionStore(settings.data_table)
    replayed = replay_text(text, damage, handoff, suppressions, now)
    problems = [f"{key}:{line}: {why}" for line, why in replayed.problems[:50]]  # the first 50 of them
    logger.info(
        "pinpoint history replayed",
        key=key,
        kinds=dict(replayed.kinds),
        events=replayed.events,
        suppressions=replayed.suppressions,
        problems_total=len(replayed.problems),
        problems=problems,
    )


def load_offer_codes(key: str, now: datetime) -> None:
    """Loaded whole; a redelivered event loads it again, which adds nothing (each code once)."""
    settings = ImportSettings.from_env()
    data, size = [], 0
    for piece in ImportFiles(settings.import_bucket).chunks(key):
        data.append(piece)
        size += len(piece)
        if size > MAX_TEXT_BYTES:  # enough to be refused as too big, without reading the rest
            break
    loaded = load_codes(key, b"".join(data), OfferStore(settings.data_table), now)
    lines = [f"{key}:{line}: {why}" for line, why in loaded.problems]
    if loaded.refused:
        logger.warning("offer codes refused", key=key, offer=loaded.offer_id, reason=loaded.refused)
        return
    logger.info(
        "offer codes loaded",
        key=key,
        offer=loaded.offer_id,
        added=loaded.added,
        duplicates=loaded.duplicates,
        pool_size=loaded.size,
        problems_total=loaded.problems_total,
        problems=lines,
    )
