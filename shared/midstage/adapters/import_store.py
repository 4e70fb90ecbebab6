"""Bulk imports' state (DynamoDB) and files (S3).

An import is one item (its request, layout and running counts); each finished part is one more
item, written in the same transaction that adds the part's counts to the import's, on the
condition that the part item does not exist yet. So a part that runs twice (redelivered after a
crash, or re-driven) counts once, and a crash before the transaction counts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from midstage import keys
from midstage.adapters import aws
from midstage.adapters import dynamo as ddb
from midstage.logic.timefmt import iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Progress is kept for this long after the import starts (it holds nothing of a person).
RETENTION = timedelta(days=30)
_COUNTS = ("rows_read", "accepted", "rejected")


class ImportJobs(ddb.Table):
    def create(self, import_id: str, doc: Mapping[str, Any], now: datetime) -> bool:
        """False when the import exists already (the same drop notified twice)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.bulk_import_key(import_id)),
                    "doc": ddb.s(json.dumps(dict(doc), separators=(",", ":"))),
                    "status": ddb.s("planning"),
                    "parts": ddb.n(0),
                    "partsDone": ddb.n(0),
                    **{name: ddb.n(0) for name in _COUNTS},
                    "createdAt": ddb.s(iso(now)),
                    "updatedAt": ddb.s(iso(now)),
                    "expiresAt": ddb.n(int((now + RETENTION).timestamp())),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def get(self, import_id: str) -> dict[str, Any] | None:
        item = self._get(keys.bulk_import_key(import_id))
        if item is None:
            return None
        return {
            **json.loads(item["doc"]["S"]),
            "layout": json.loads(item["layout"]["S"]) if "layout" in item else None,
            "status": item["status"]["S"],
            "error": item["error"]["S"] if "error" in item else None,
            "parts": int(item["parts"]["N"]),
            "parts_done": int(item["partsDone"]["N"]),
            **{name: int(item[name]["N"]) for name in _COUNTS},
            "created_at": item["createdAt"]["S"],
            "updated_at": item["updatedAt"]["S"],
        }

    def set_layout(self, import_id: str, layout: Mapping[str, Any], parts: int, now: datetime) -> None:
        """Planned: from here on the parts run. Only a planning import is planned (a re-run of the
        plan finds the layout already there and re-queues the unfinished parts instead)."""
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.bulk_import_key(import_id)),
            UpdateExpression="SET layout = :layout, parts = :parts, #status = :running, updatedAt = :now",
            ConditionExpression="#status = :planning",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":layout": ddb.s(json.dumps(dict(layout), separators=(",", ":"))),
                ":parts": ddb.n(parts),
                ":running": ddb.s("running" if parts else "done"),
                ":planning": ddb.s("planning"),
                ":now": ddb.s(iso(now)),
            },
        )

    def fail(self, import_id: str, reason: str, now: datetime) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.bulk_import_key(import_id)),
            UpdateExpression="SET #status = :failed, #error = :reason, updatedAt = :now",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":failed": ddb.s("failed"),
                ":reason": ddb.s(reason[:1000]),
                ":now": ddb.s(iso(now)),
            },
        )

    def finish_part(
        self, import_id: str, part: int, counts: Mapping[str, int], errors: Sequence[Mapping[str, Any]], now: datetime
    ) -> bool:
        """Record a part's counts once; False when it was recorded already (nothing changes)."""
        job = ddb.key(keys.bulk_import_key(import_id))
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                **ddb.key(keys.bulk_import_part_key(import_id, part)),
                                "errors": ddb.s(json.dumps(list(errors), separators=(",", ":"))),
                                **{name: ddb.n(counts.get(name, 0)) for name in _COUNTS},
                                "finishedAt": ddb.s(iso(now)),
                                "expiresAt": ddb.n(int((now + RETENTION).timestamp())),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": job,
                            "UpdateExpression": (
                                "ADD rows_read :read, accepted :accepted, rejected :rejected, partsDone :one "
                                "SET updatedAt = :now, #status = if_not_exists(#status, :running)"
                            ),
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                ":read": ddb.n(counts.get("rows_read", 0)),
                                ":accepted": ddb.n(counts.get("accepted", 0)),
                                ":rejected": ddb.n(counts.get("rejected", 0)),
                                ":one": ddb.n(1),
                                ":now": ddb.s(iso(now)),
                                ":running": ddb.s("running"),
                            },
                        }
                    },
                ]
            )
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or []
            if ddb.transaction_lost(error) and reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    def is_finished(self, import_id: str, part: int) -> bool:
        return self._get(keys.bulk_import_part_key(import_id, part)) is not None

    def finished_parts(self, import_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            answer = self._query(f"IMPORT#{import_id}", "PART#", limit=500, newest_first=False, start=start)
            for item in answer["Items"]:
                found.append(
                    {
                        "part": int(item["sk"]["S"].removeprefix("PART#")),
                        "errors": json.loads(item["errors"]["S"]),
                        **{name: int(item[name]["N"]) for name in _COUNTS},
                    }
                )
            last = answer.get("LastEvaluatedKey")
            if not last:
                return found
            start = last["sk"]["S"]


class ImportFiles:
    """The bucket's import files, read in chunks or by byte range."""

    CHUNK_BYTES = 4 * 1024 * 1024

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3()
        return self._client

    def chunks(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(self.CHUNK_BYTES)
        finally:
            body.close()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        data: bytes = answer["Body"].read()
        return data

    def read_small(self, key: str, limit: int) -> bytes | None:
        """A small object (a mapping sidecar), or None when there is none."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        except ClientError as error:
            if ddb.error_code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            if ddb.error_code(error) in ("InvalidRange", "416"):  # an empty object
                return b""
            raise
        data: bytes = answer["Body"].read()
        return data

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if ddb.error_code(error) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def keys(self, prefix: str) -> list[str]:
        """Every object's key under a prefix (and its "subfolders"), in key order."""
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)


def export_keys(bucket: str, prefix: str) -> list[str]:
    """The objects under an S3 prefix (an export job's files); OSError when it cannot be read."""
    try:
        return ImportFiles(bucket).keys(prefix)
    except (ClientError, BotoCoreError) as error:
        raise OSError(f"s3://{bucket}/{prefix}: {error}") from error


def export_chunks(bucket: str, key: str) -> Iterator[bytes]:
    """An S3 object's bytes in chunks; OSError when it cannot be read."""
    try:
        yield from ImportFiles(bucket).chunks(key)
    except (ClientError, BotoCoreError) as error:
        raise OSError(f"s3://{bucket}/{key}: {error}") from error
