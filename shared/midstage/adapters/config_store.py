"""ConfigTable access: sources and write keys, admin API keys. Lookups are cached per container
for `config_cache_seconds` (bounded staleness), unknown keys briefly too, so a flood of bad keys
does not become a flood of reads.

The rule and template models are imported on first use: the tracking function reads only sources,
and building those models' validators cost it some 50 ms of cold import (bench_import_time)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError
from pydantic import BaseModel

from midstage import keys
from midstage.adapters import aws
from midstage.adapters.documents import pack, unpack
from midstage.errors import Conflict, NotFound
from midstage.logic import keyring
from midstage.logic.keyring import KeyRing
from midstage.models.admin import ApiKey, Source, stamp
from midstage.models.admin import new_write_key as new_write_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from midstage.models.messaging import Rule, Template

T = TypeVar("T")
D = TypeVar("D", bound=BaseModel)
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

    def source_by_id(self, source_id: str) -> Source | None:
        """A source by its id, cached as write keys are (the webhook route names the source)."""

        def load() -> Source | None:
            doc = self._get(keys.source_key(source_id))
            return Source.model_validate(doc) if doc else None

        return self._cached(f"src:{source_id}", load)

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
        """The live key for a secret. Read on every call, never cached when found: a revoked key
        stops working at once in every container, for one read per admin request. Unknown
        secrets are remembered briefly, so a flood of bad keys is not a flood of reads."""
        digest = keys.secret_digest(secret)
        unknown = f"ak-unknown:{digest}"
        hit = self._cache.get(unknown)
        now = time.monotonic()
        if hit and hit[0] > now:
            return None
        doc = self._get(keys.api_key_key(digest))
        key = ApiKey.model_validate(doc) if doc else None
        if key is None or key.revoked:
            self._cache[unknown] = (now + _NEGATIVE_TTL_S, None)
            return None
        return key

    def create_api_key(self, name: str, role: str, secret: str | None = None, *, now: datetime) -> tuple[ApiKey, str]:
        """A new key, created at `now`; the secret is returned once and only its digest is stored."""
        secret = secret or "msk_" + secrets.token_urlsafe(32)
        digest = keys.secret_digest(secret)
        key = ApiKey(id=secrets.token_hex(8), name=name, role=role, digest=digest, created_at=stamp(now))
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

    # ------------------------------------------------------------------ versioned documents
    def _put_versioned(self, key: dict[str, str], doc: dict[str, Any], version: int, expected: int | None) -> None:
        """Write only over the version read (`expected`; None = new): no editor loses an edit."""
        condition = "attribute_not_exists(pk)" if expected is None else "version = :previous"
        kwargs: dict[str, Any] = {"ConditionExpression": condition}
        if expected is not None:
            kwargs["ExpressionAttributeValues"] = {":previous": {"N": str(expected)}}
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**{k: {"S": v} for k, v in key.items()}, "doc": {"B": pack(doc)}, "version": {"N": str(version)}},
                **kwargs,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(f"{key['sk']} was changed by someone else meanwhile; reload and try again") from error
            raise

    # ------------------------------------------------------------------ versioned documents by kind
    def documents(self, kind: str, model: type[D]) -> list[D]:
        """Every document of a kind (RULE, SEGMENT, CAMPAIGN, JOURNEY), cached for `cache_seconds`."""
        loaded = self._cached(f"all:{kind}", lambda: [model.model_validate(d) for d in self._list(kind)])
        return loaded or []

    def find_document(self, kind: str, doc_id: str, model: type[D]) -> D | None:
        """The current version, read now (not cached): editors and runners need the latest."""
        doc = self._get(keys.config_key(kind, doc_id))
        return model.model_validate(doc) if doc else None

    def get_document(self, kind: str, doc_id: str, model: type[D]) -> D:
        found = self.find_document(kind, doc_id, model)
        if found is None:
            raise NotFound(f"no {kind.lower()} '{doc_id}'")
        return found

    def save_document(self, kind: str, document: D) -> D:
        """Write version N over version N-1 only (a new document at version 1), and keep a copy."""
        version = int(getattr(document, "version"))  # noqa: B009 - every versioned model has one
        doc_id = str(getattr(document, "id"))  # noqa: B009
        doc = document.model_dump(mode="json")
        self._put_versioned(keys.config_key(kind, doc_id), doc, version, version - 1 or None)
        self._put(keys.config_version_key(kind, doc_id, version), doc)
        self._cache.pop(f"all:{kind}", None)
        return document

    def document_versions(self, kind: str, doc_id: str, model: type[D]) -> list[D]:
        return [model.model_validate(d) for d in self._list(keys.config_versions_pk(kind, doc_id))]

    def delete_document(self, kind: str, doc_id: str) -> None:
        """Remove the current version (the history stays, for audit)."""
        if self._get(keys.config_key(kind, doc_id)) is None:
            raise NotFound(f"no {kind.lower()} '{doc_id}'")
        self._delete(keys.config_key(kind, doc_id))
        self._cache.pop(f"all:{kind}", None)

    # ------------------------------------------------------------------ rules
    def rules(self) -> list[Rule]:
        """Every rule (enabled or not), cached for `cache_seconds`."""
        return self.documents(keys.RULE_PK, _rule_model())

    def get_rule(self, rule_id: str) -> Rule:
        return self.get_document(keys.RULE_PK, rule_id, _rule_model())

    def find_rule(self, rule_id: str) -> Rule | None:
        return self.find_document(keys.RULE_PK, rule_id, _rule_model())

    def save_rule(self, rule: Rule) -> Rule:
        return self.save_document(keys.RULE_PK, rule)

    def rule_versions(self, rule_id: str) -> list[Rule]:
        return self.document_versions(keys.RULE_PK, rule_id, _rule_model())

    def delete_rule(self, rule_id: str) -> None:
        self.delete_document(keys.RULE_PK, rule_id)

    # ------------------------------------------------------------------ templates
    def template_entry(self, template_id: str) -> dict[str, Any] | None:
        """{"latest": <Template doc>, "approved": <Template doc> | None}"""
        return self._get(keys.template_key(template_id))

    def get_template(self, template_id: str, version: int | None = None) -> Template:
        if version is not None:
            doc = self._get(keys.template_version_key(template_id, version))
            if doc is None:
                raise NotFound(f"template '{template_id}' has no version {version}")
            return _template_model().model_validate(doc)
        entry = self.template_entry(template_id)
        if entry is None:
            raise NotFound(f"no template '{template_id}'")
        return _template_model().model_validate(entry["latest"])

    def approved_template(self, template_id: str) -> Template | None:
        def load() -> Template | None:
            entry = self.template_entry(template_id)
            return _template_model().model_validate(entry["approved"]) if entry and entry.get("approved") else None

        return self._cached(f"tpl:{template_id}", load)

    def list_templates(self) -> list[dict[str, Any]]:
        return self._list(keys.TEMPLATE_PK)

    def save_template(self, template: Template, approved: Template | None) -> Template:
        doc = template.model_dump(mode="json")
        entry = {"latest": doc, "approved": approved.model_dump(mode="json") if approved else None}
        self._put_versioned(keys.template_key(template.id), entry, template.version, template.version - 1 or None)
        self._put(keys.template_version_key(template.id, template.version), doc)
        self._cache.pop(f"tpl:{template.id}", None)
        return template

    def approve_template(self, template: Template) -> Template:
        """Mark one version approved: from then on it is the version that sends."""
        self._put(keys.template_version_key(template.id, template.version), template.model_dump(mode="json"))
        latest = self.get_template(template.id)
        if latest.version == template.version:
            latest = template
        entry = {"latest": latest.model_dump(mode="json"), "approved": template.model_dump(mode="json")}
        self._put_versioned(keys.template_key(template.id), entry, latest.version, latest.version)
        self._cache.pop(f"tpl:{template.id}", None)
        return template

    # ------------------------------------------------------------------ secrets
    def secret(self, name: str) -> bytes:
        """The current key of a signing secret (link tokens, webhook signatures)."""
        return self.key_ring(name).current.secret

    def key_ring(self, name: str, *, fresh: bool = False) -> KeyRing:
        """Every key of a signing secret, created on first use (as one random key).

        `fresh` reads past the cache, for a signature naming a key this container has not seen yet
        (rotated within the cache time); at most once per few seconds, so forged key ids cannot
        become a flood of reads."""
        cache_key = f"secret:{name}"
        if fresh:
            checked = self._cache.get(f"secret-fresh:{name}")
            if checked is None or checked[0] <= time.monotonic():
                self._cache[f"secret-fresh:{name}"] = (time.monotonic() + _NEGATIVE_TTL_S, None)
                self._cache.pop(cache_key, None)

        def load() -> KeyRing | None:
            doc = self._secret_document(name)[0]
            return keyring.from_document(name, doc) if doc else None

        value = self._cached(cache_key, load)
        if value is None:
            raise RuntimeError(f"secret {name} could not be read")
        return value

    def rotate_secret(self, name: str, now: datetime, keep_old_for: timedelta | None) -> KeyRing:
        """A new current key for `name`; the previous one verifies for `keep_old_for` more."""
        return self._change_ring(name, lambda ring: ring.rotate(secrets.token_bytes(32), now, keep_old_for))

    def remove_secret_key(self, name: str, key_id: str) -> KeyRing:
        """The ring without the retired key `key_id`: what it signed is refused from then on."""
        return self._change_ring(name, lambda ring: ring.remove(key_id))

    def _change_ring(self, name: str, change: Callable[[KeyRing], KeyRing]) -> KeyRing:
        doc, raw = self._secret_document(name)
        assert doc is not None
        assert raw is not None
        ring = change(keyring.from_document(name, doc))
        try:
            # Only over the ring that was read: two rotations at once must not lose a key.
            self.client.put_item(
                TableName=self.table,
                Item={
                    **{k: {"S": v} for k, v in keys.secret_key(name).items()},
                    "doc": {"B": pack(keyring.to_document(ring))},
                },
                ConditionExpression="#doc = :read",
                ExpressionAttributeNames={"#doc": "doc"},
                ExpressionAttributeValues={":read": {"B": raw}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise Conflict(f"the {name} secret changed while it was being rotated; try again") from error
        self._cache[f"secret:{name}"] = (time.monotonic() + self.cache_seconds, ring)
        return ring

    def _secret_document(self, name: str) -> tuple[dict[str, Any] | None, bytes | None]:
        """The stored ring and its raw bytes (for a conditional replace), made on first read."""

        def read() -> tuple[dict[str, Any] | None, bytes | None]:
            answer = self.client.get_item(
                TableName=self.table, Key={k: {"S": v} for k, v in keys.secret_key(name).items()}, ConsistentRead=True
            )
            item = answer.get("Item")
            return (unpack(item["doc"]["B"]), item["doc"]["B"]) if item else (None, None)

        found = read()
        if found[0] is None:
            try:
                # The shape from before key rings, so containers of an older release read it too.
                self._put(keys.secret_key(name), {"value": secrets.token_hex(32)}, new=True)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            found = read()
        return found


def _rule_model() -> type[Rule]:
    from midstage.models.messaging import Rule  # on first use: see the module's note

    return Rule


def _template_model() -> type[Template]:
    from midstage.models.messaging import Template

    return Template
