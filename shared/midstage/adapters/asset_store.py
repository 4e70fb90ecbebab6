"""The asset library's storage: metadata in the ConfigTable, files in the assets bucket.

Every change to an asset (a new version, a review step, publishing) rewrites the asset's item on
the condition that its `revision` is the one read, in the same transaction as the version items
it changes: two reviewers acting at once cannot both win, and a version's state never moves
without the asset knowing. A lost race is `Stale`; the service reads again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import aws
from midstage.adapters import dynamo as ddb
from midstage.errors import AssetStateError, Stale
from midstage.models.assets import Asset, AssetVersion

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

_CHUNK = 1024 * 1024
_MISSING = ("NoSuchKey", "404", "NotFound")
_CHANGED = ("PreconditionFailed", "412")


def _changed(key: str) -> AssetStateError:
    return AssetStateError(
        f"the file at {key} is gone or changed since it was checked; upload a new version", code="asset_changed"
    )


class AssetStore(ddb.Table):
    """Assets and their versions (ConfigTable)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)

    def asset(self, name: str) -> Asset | None:
        item = self._get(keys.asset_key(name))
        return Asset.model_validate_json(item["doc"]["S"]) if item else None

    def assets(self) -> list[Asset]:
        found: list[Asset] = []
        start: str | None = None
        while True:
            page = self._query(keys.ASSET_PK, "", limit=500, newest_first=False, start=start)
            found.extend(Asset.model_validate_json(item["doc"]["S"]) for item in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return found
            start = last["sk"]["S"]

    def version(self, name: str, number: int) -> AssetVersion | None:
        item = self._get(keys.asset_version_key(name, number))
        return AssetVersion.model_validate_json(item["doc"]["S"]) if item else None

    def versions(self, name: str, limit: int, before: int | None = None) -> list[AssetVersion]:
        """The newest versions first, from `before` (excluded) down."""
        pk = keys.asset_version_key(name, 1)["pk"]
        start = f"{before:08d}" if before is not None else None
        page = self._query(pk, "", limit=limit, newest_first=True, start=start)
        return [AssetVersion.model_validate_json(item["doc"]["S"]) for item in page.get("Items", [])]

    def write(self, asset: Asset, read_revision: int | None, versions: Sequence[AssetVersion]) -> Asset:
        """Save the asset (its revision moved on) and the versions changed with it, all or none;
        `read_revision` None: the asset must not exist yet."""
        saved = asset.model_copy(update={"revision": (read_revision or 0) + 1})
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if read_revision is None
            else {
                "ConditionExpression": "revision = :read",
                "ExpressionAttributeValues": {":read": ddb.n(read_revision)},
            }
        )
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **ddb.key(keys.asset_key(asset.name)),
                        "doc": ddb.s(saved.model_dump_json()),
                        "revision": ddb.n(saved.revision),
                    },
                    **condition,
                }
            }
        ]
        for version in versions:
            item = {
                **ddb.key(keys.asset_version_key(version.name, version.version)),
                "doc": ddb.s(version.model_dump_json()),
            }
            items.append({"Put": {"TableName": self.table, "Item": item}})
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if ddb.transaction_lost(error):
                raise Stale(f"asset '{asset.name}' changed since it was read") from error
            raise
        return saved


class AssetFiles:
    """The assets bucket: drafts/ (uploads, never served) and public/ (published versions, served
    by the distribution)."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3_presigning()
        return self._client

    def put(self, key: str, body: bytes, content_type: str) -> str:
        """Store the file; its ETag."""
        answer = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return str(answer["ETag"])

    def upload_url(self, key: str, content_type: str, size: int, expires_s: int) -> str:
        """A presigned PUT for exactly this content type and length."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size}
        url: str = self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)
        return url

    def download_url(self, key: str, expires_s: int) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)
        return url

    def stat(self, key: str) -> tuple[int, str] | None:
        """The object's length and ETag, or None when there is none."""
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if ddb.error_code(error) in _MISSING:
                return None
            raise
        return int(answer["ContentLength"]), str(answer["ETag"])

    def _get_object(self, key: str, etag: str, **extra: Any) -> Any:
        """A GET of exactly the object checked so far (If-Match its ETag)."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag, **extra)["Body"]
        except ClientError as error:
            if ddb.error_code(error) in _CHANGED:
                raise _changed(key) from error
            raise

    def head(self, key: str, length: int, etag: str) -> bytes:
        data: bytes = self._get_object(key, etag, Range=f"bytes=0-{length - 1}").read()
        return data

    def read(self, key: str, etag: str) -> bytes:
        data: bytes = self._get_object(key, etag).read()
        return data

    def sha256(self, key: str, etag: str) -> str:
        digest = hashlib.sha256()
        body = self._get_object(key, etag)
        try:
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    def publish(self, source: str, target: str, content_type: str, etag: str) -> None:
        """Copy the checked draft (its ETag) to its served place, or refuse (`asset_changed`) when
        the draft was replaced since; a version's file never changes once published, so it may
        be cached for good."""
        found = self.stat(source)
        if found is None or found[1] != etag:
            raise _changed(source)
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceIfMatch=etag,
                ContentType=content_type,
                CacheControl="public, max-age=31536000, immutable",
                MetadataDirective="REPLACE",
            )
        except ClientError as error:
            if ddb.error_code(error) in _CHANGED:
                raise _changed(source) from error
            raise

    def remove(self, key: str) -> None:
        """Delete an object (a missing one is no error)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)
