"""Codes for an offer's pool from a file dropped in the import bucket: a CSV (the upload's CSV
form) under `imports/offer-codes/<offer id>/`, as a shop system exports it, loaded as
`POST /v1/offers/{id}/codes` loads an upload (adapters/offer_store.OfferStore.upload: a code
already in a pool is left out, so dropping the same file again adds nothing). Started by
functions/run_imports on S3's Object Created event, as a Pinpoint history drop is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from midstage.errors import ImportRefused
from midstage.logic import offers as rules
from midstage.logic.offers import Upload
from midstage.models.offers import OFFER_ID, Offer

DROP_PREFIX = "imports/offer-codes/"
UPLOAD_CODES = 5000  # as POST /v1/offers/{id}/codes takes them
MAX_PROBLEMS_KEPT = 50
_OFFER_ID = re.compile(OFFER_ID)


class PoolStore(Protocol):
    def offer(self, offer_id: str) -> Offer | None: ...
    def deleted(self, offer_id: str) -> bool: ...
    def upload(self, offer_id: str, codes: Sequence[str], now: datetime) -> Upload: ...


@dataclass
class Loaded:
    """What a dropped file gave: the offer, codes added and left out, the pool's size after, and
    why the file (`refused`) or each of its lines could not be used."""

    key: str
    offer_id: str = ""
    added: int = 0
    duplicates: int = 0
    size: int = 0
    refused: str = ""
    problems: list[tuple[int, str]] = field(default_factory=list)
    problems_total: int = 0


def offer_of(key: str) -> str | None:
    """The offer a dropped key names: `imports/offer-codes/<offer id>/<file>`."""
    offer_id, slash, name = key.removeprefix(DROP_PREFIX).partition("/")
    return offer_id if slash and name and _OFFER_ID.match(offer_id) else None


def load_codes(key: str, data: bytes, store: PoolStore, now: datetime) -> Loaded:
    """Load a dropped file's codes into its offer's pool, in uploads of UPLOAD_CODES. Raises only
    what trying again may get past (another upload to the offer under way: Conflict)."""
    loaded = Loaded(key)
    offer_id = offer_of(key)
    if offer_id is None:
        loaded.refused = f"not under {DROP_PREFIX}<offer id>/<file>: the folder names the offer"
        return loaded
    loaded.offer_id = offer_id
    offer = store.offer(offer_id)
    if offer is None or store.deleted(offer_id):
        loaded.refused = f"no offer '{offer_id}'"
        return loaded
    if offer.source != "pool":
        loaded.refused = f"offer '{offer_id}' makes its own codes (source generated): it takes no pool"
        return loaded
    try:
        codes, problems = rules.read_code_lines(data)
    except ImportRefused as refused:
        loaded.refused = refused.message
        return loaded
    loaded.problems, loaded.problems_total = problems[:MAX_PROBLEMS_KEPT], len(problems)
    if not codes:
        loaded.refused = "the file holds no codes"
        return loaded
    for first in range(0, len(codes), UPLOAD_CODES):
        upload = store.upload(offer_id, codes[first : first + UPLOAD_CODES], now)
        loaded.added += upload.added
        loaded.duplicates += len(upload.duplicates)
        loaded.size = upload.size
    return loaded
