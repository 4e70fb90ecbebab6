"""Model cards in the ConfigTable: the latest card of each kind (`MODEL` / `<kind>`) and every
version (`MODELV#<kind>` / `<version>`), packed (zlib JSON) like the other config documents.

A card must fit one item (400 KB). Customer-value and propensity cards are a few kilobytes; an
item-to-item card grows with the catalogue, so one that does not fit keeps the neighbour lists of
its most popular items only, halving until it fits, and says so in its notes (the people's
recommendations were computed from the whole model before it was stored).

The deliverer reads the latest recommendations card for the popularity fallback of
`recommendations(n)`; `latest_cached` keeps it for `cache_seconds` per container.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters.documents import pack, unpack
from midstage.logic.predictions.cards import ModelCard, ModelKind, digest_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MODEL_PK = "MODEL"
MAX_CARD_BYTES = 350 * 1024  # packed; leaves room for the key under DynamoDB's 400 KB


class ModelCardStore(ddb.Table):
    def __init__(self, table: str, client: DynamoDBClient | None = None, *, cache_seconds: float = 30.0) -> None:
        super().__init__(table, client)
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ModelCard | None]] = {}

    def latest(self, kind: ModelKind) -> ModelCard | None:
        item = self._get(keys.config_key(MODEL_PK, kind))
        return ModelCard.from_json(unpack(item["doc"]["B"])) if item else None

    def latest_cached(self, kind: ModelKind) -> ModelCard | None:
        hit = self._cache.get(kind)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        card = self.latest(kind)
        self._cache[kind] = (now + self.cache_seconds, card)
        return card

    def version(self, kind: ModelKind, version: int) -> ModelCard | None:
        item = self._get(keys.config_version_key(MODEL_PK, kind, version))
        return ModelCard.from_json(unpack(item["doc"]["B"])) if item else None

    def save(self, card: ModelCard) -> bool:
        """The version first (only if no run stored that version: False then), then the pointer
        to it, so a reader never finds a latest card whose version is missing, and a schedule
        that fires twice stores one card per version."""
        blob = pack(fitting(card).to_json())
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**ddb.key(keys.config_version_key(MODEL_PK, card.kind, card.version)), "doc": {"B": blob}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        latest = {**ddb.key(keys.config_key(MODEL_PK, card.kind)), "doc": {"B": blob}}
        self.client.put_item(TableName=self.table, Item=latest)
        self._cache.pop(card.kind, None)
        return True


def fitting(card: ModelCard, limit: int = MAX_CARD_BYTES) -> ModelCard:
    """The card as stored: itself when it fits, else an item model with fewer neighbour lists."""
    if len(pack(card.to_json())) <= limit or card.kind != "recommendations":
        return card
    neighbours: dict[str, Any] = dict(card.parameters.get("neighbours") or {})
    ranked = [item for item in card.parameters.get("popular") or [] if item in neighbours]
    ranked += sorted(item for item in neighbours if item not in set(ranked))
    keep = len(ranked)
    while keep > 0:
        keep //= 2
        kept = {item: neighbours[item] for item in ranked[:keep]}
        note = f"stored with the neighbours of {keep} of {len(neighbours)} items (the card's size limit)"
        trimmed = card.model_copy(
            update={"parameters": {**card.parameters, "neighbours": kept}, "notes": [*card.notes, note], "digest": ""}
        )
        trimmed = trimmed.model_copy(update={"digest": digest_of(trimmed)})
        if len(pack(trimmed.to_json())) <= limit:
            return trimmed
    raise ValueError(f"model card {card.id} does not fit the store even without neighbours")
