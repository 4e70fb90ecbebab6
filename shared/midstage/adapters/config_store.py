"""ConfigTable access: sources and write keys, admin API keys. Lookups are cached per container
for `config_cache_seconds` (bounded staleness), unknown keys briefly too, so a flood of bad keys
does not become a flood of reads."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import aws
from midstage.adapters.documents import pack, unpack
from midstage.errors import Conflict, NotFound
from midstage.models.admin import ApiKey, Source

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")
_NEGATIVE_TTL_S = 5.0


class ConfigStore:
    def __init__(self, table: str, *, cache_seconds: float = 30.0, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.cache_seconds = cache_seconds
        self._client = client
        self._cache: dict[str, tuple[float, Any]] = {}

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.dynamodb()
        return self._client

    def _cached(self, key: str, load: Callable[[], T | None]) -> T | None:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        value = load()
        self._cache[key] = (now + (self.cache_seconds if value is not None else _NEGATIVE_TTL_S), value)
        return value

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        answer = self.client.get_item(TableName=self.table, Key={k: {"S": v} for k, v in key.items()})
        item = answer.get("Item")
        return unpack(item["doc"]["B"]) if item else None

    def _put(self, key: dict[str, str], doc: dict[str, Any], *, new: bool = False) -> None:
        kwargs: dict[str, Any] = {}
        if new:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        self.client.put_item(
            TableName=self.table,
            Item={**{k: {"S": v} for k, v in key.items()}, "doc": {"B": pack(doc)}},
            **kwargs,
        )

    def _list(self, pk: str) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        while True:
            answer = self.client.query(**kwargs)
            docs.extend(unpack(i["doc"]["B"]) for i in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return docs
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # ------------------------------------------------------------------ sources
    def source_for_write_key(self, write_key: str) -> Source | None:
        def load() -> Source | None:
            index = self._get(keys.write_key_key(write_key))
            if index is None:
                return None
            doc = self._get(keys.source_key(index["source_id"]))
            source = Source.model_validate(doc) if doc else None
            return source if source and source.write_key == write_key else None

        return self._cached(f"wk:{keys.secret_digest(write_key)}", load)

    def create_source(self, source: Source) -> Source:
        self._put(keys.write_key_key(source.write_key), {"source_id": source.id}, new=True)
        self._put(keys.source_key(source.id), source.model_dump(mode="json"), new=True)
        return source

    def get_source(self, source_id: str) -> Source:
        doc = self._get(keys.source_key(source_id))
        if doc is None:
            raise NotFound(f"no source '{source_id}'")
        return Source.model_validate(doc)

    def list_sources(self) -> list[Source]:
        return sorted((Source.model_validate(d) for d in self._list(keys.SOURCE_PK)), key=lambda s: s.created_at)

    def save_source(self, source: Source) -> Source:
        self._put(keys.source_key(source.id), source.model_dump(mode="json"))
        return source

    def rotate_write_key(self, source: Source) -> Source:
        old = source.write_key
        rotated = source.model_copy(update={"write_key": new_write_key()})
        self._put(keys.write_key_key(rotated.write_key), {"source_id": source.id}, new=True)
        self.save_source(rotated)
        self._delete(keys.write_key_key(old))
        return rotated

    def delete_source(self, source_id: str) -> None:
        source = self.get_source(source_id)
        self._delete(keys.write_key_key(source.write_key))
        self._delete(keys.source_key(source_id))

    def _delete(self, key: dict[str, str]) -> None:
        self.client.delete_item(TableName=self.table, Key={k: {"S": v} for k, v in key.items()})

    # ------------------------------------------------------------------ admin API keys
    def api_key(self, secret: str) -> ApiKey | None:
        digest = keys.secret_digest(secret)

        def load() -> ApiKey | None:
            doc = self._get(keys.api_key_key(digest))
            key = ApiKey.model_validate(doc) if doc else None
            return key if key and not key.revoked else None

        return self._cached(f"ak:{digest}", load)

    def create_api_key(self, name: str, role: str, secret: str | None = None) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its digest is stored."""
        secret = secret or "msk_" + secrets.token_urlsafe(32)
        key = ApiKey(id=secrets.token_hex(8), name=name, role=role, digest=keys.secret_digest(secret))
        try:
            self._put(keys.api_key_key(key.digest), key.model_dump(mode="json"), new=True)
        except ClientError as error:  # a digest collision is astronomically unlikely; say so if it happens
            raise Conflict("could not store the new key; try again") from error
        return key, secret

    def list_api_keys(self) -> list[ApiKey]:
        return sorted((ApiKey.model_validate(d) for d in self._list(keys.API_KEY_PK)), key=lambda k: k.created_at)

    def revoke_api_key(self, key_id: str) -> ApiKey:
        for key in self.list_api_keys():
            if key.id == key_id:
                revoked = key.model_copy(update={"revoked": True})
                self._put(keys.api_key_key(key.digest), revoked.model_dump(mode="json"))
                return revoked
        raise NotFound(f"no API key '{key_id}'")


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(24)
