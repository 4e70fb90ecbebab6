"""Erasure's reads and deletions (services/erasure.py): items by partition and sort-key prefix,
deletions by key in batches, identities deleted only while they still point at the person, offer
codes detached from their holder, and the S3 archive's Parquet objects rewritten without a
person's rows. Every deletion is of a key, so doing it again deletes nothing more."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import aws
from midstage.adapters import dynamo as ddb
from midstage.adapters.documents import unpack
from midstage.logic.identity import Identifier
from midstage.logic.timefmt import iso

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_BATCH_WRITE = 25
_ATTEMPTS = 8


class ErasureTable(ddb.Table):
    def items(self, pk: str, prefix: str = "") -> list[dict[str, Any]]:
        """Every item of a partition whose sort key starts with `prefix`, strongly consistent, as
        plain values (`doc` unpacked)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)" if prefix else "pk = :pk",
            "ExpressionAttributeValues": {":pk": ddb.s(pk), **({":prefix": ddb.s(prefix)} if prefix else {})},
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            answer = self.client.query(**kwargs)
            found.extend(plain(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def existing(self, wanted: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        return [plain(item) for item in self._batch_get(wanted, consistent=True)]

    def delete(self, wanted: Iterable[Mapping[str, str]]) -> int:
        """Delete these keys (each once); how many were asked. A key with no item costs a write
        unit and changes nothing, which is what makes a retry safe."""
        unique = list({(k["pk"], k["sk"]): {"pk": k["pk"], "sk": k["sk"]} for k in wanted}.values())
        for start in range(0, len(unique), _BATCH_WRITE):
            pending: dict[str, Any] = {
                self.table: [{"DeleteRequest": {"Key": ddb.key(k)}} for k in unique[start : start + _BATCH_WRITE]]
            }
            for attempt in range(_ATTEMPTS):
                answer = self.client.batch_write_item(RequestItems=pending)
                pending = dict(answer.get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(0.02 * 2**attempt)
            else:  # a transient failure: the queue offers the request again
                raise RuntimeError(f"DynamoDB left {len(pending[self.table])} deletions unprocessed")
        return len(unique)

    def delete_identities(self, identifiers: Iterable[Identifier], profile_ids: Sequence[str]) -> int:
        """Each identifier's OneID item, while it still names one of the person's profiles (one
        claimed by someone else since is theirs now). How many were deleted."""
        owners = {f":p{n}": ddb.s(p) for n, p in enumerate(profile_ids[:100])}
        deleted = 0
        for id_type, value in identifiers:
            try:
                answer = self.client.delete_item(
                    TableName=self.table,
                    Key=ddb.key(keys.identity_key(id_type, value)),
                    ConditionExpression=f"attribute_not_exists(pk) OR profileId IN ({', '.join(owners)})",
                    ExpressionAttributeValues=owners,
                    ReturnValues="ALL_OLD",
                )
            except ClientError as error:
                if not ddb.condition_failed(error):
                    raise
                continue
            deleted += int(bool(answer.get("Attributes")))
        return deleted

    def detach_code(self, code: str, profile_ids: Sequence[str], now: datetime) -> bool:
        """Take the holder off an offer code the person held: the code stays issued (never handed
        to anyone else: it was sent to them), marked erased. False when it is not theirs (any more)."""
        pointer = self._get(keys.coupon_key(code))
        if not pointer or "slot" not in pointer:
            return False
        slot = int(pointer["slot"]["N"]) if "N" in pointer["slot"] else int(pointer["slot"]["S"])
        holders = {f":p{n}": ddb.s(p) for n, p in enumerate(profile_ids[:100])}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.offer_slot_key(pointer["offerId"]["S"], slot)),
                UpdateExpression="REMOVE holder, #cause, issuedAt, redeemedBy SET erasedAt = :at",
                ConditionExpression=f"holder IN ({', '.join(holders)})",
                ExpressionAttributeNames={"#cause": "cause"},
                ExpressionAttributeValues={**holders, ":at": ddb.s(iso(now))},
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as plain values; a packed document (`doc`: timeline pages, quarantine entries)
    unpacked, a JSON one parsed."""
    found = {name: _value(value) for name, value in item.items()}
    if isinstance(found.get("doc"), bytes):
        found["doc"] = unpack(found["doc"])
    elif isinstance(found.get("doc"), str):
        with contextlib.suppress(ValueError):
            found["doc"] = json.loads(found["doc"])
    return found


def _value(value: Mapping[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind == "N":
        number = float(inner)
        return int(number) if number.is_integer() else number
    if kind == "M":
        return {k: _value(v) for k, v in inner.items()}
    if kind == "L":
        return [_value(v) for v in inner]
    if kind in ("SS", "NS", "BS"):
        return list(inner)
    return inner


class ArchiveRewriter:
    """The archive's Parquet objects (`<prefix>kind=<kind>/dt=<day>/…`) rewritten without the rows
    of the people erased: an object with none of their rows is read and left as it was, one with
    only theirs is deleted."""

    def __init__(self, bucket: str, prefix: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3()
        return self._client

    def objects(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            found.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
        return found

    def erase(self, wanted: Mapping[str, Sequence[str]]) -> tuple[int, int]:
        """(objects changed, rows removed) for rows whose `column` is one of `wanted[column]`."""
        import duckdb  # only here: the worker's other tasks do not need it

        columns = [(c, list(v)) for c, v in wanted.items() if v]
        if not columns:
            return 0, 0
        # coalesce: a null column (most rows have no user id) must neither match nor hide a row.
        condition = " OR ".join(f'coalesce(list_contains(?::VARCHAR[], "{c}"), false)' for c, _ in columns)
        params = [v for _, v in columns]
        changed = removed = 0
        connection = duckdb.connect(":memory:")
        try:
            with tempfile.TemporaryDirectory(prefix="midstage-erasure-") as scratch:
                source, target = Path(scratch) / "in.parquet", Path(scratch) / "out.parquet"
                for key in self.objects():
                    source.write_bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
                    row = connection.execute(
                        f"SELECT count(*) FILTER (WHERE {condition}), count(*) FROM read_parquet(?)",  # noqa: S608
                        [*params, str(source)],
                    ).fetchone()
                    theirs, total = (int(row[0]), int(row[1])) if row else (0, 0)
                    if not theirs:
                        continue
                    if theirs == total:
                        self.client.delete_object(Bucket=self.bucket, Key=key)
                    else:
                        quoted = str(target).replace("'", "''")
                        connection.execute(
                            "CREATE OR REPLACE TEMP TABLE kept AS "  # noqa: S608
                            f"SELECT * FROM read_parquet(?) WHERE NOT ({condition})",
                            [str(source), *params],
                        )
                        connection.execute(f"COPY kept TO '{quoted}' (FORMAT PARQUET, COMPRESSION ZSTD)")
                        self.client.put_object(
                            Bucket=self.bucket, Key=key, Body=target.read_bytes(), ServerSideEncryption="AES256"
                        )
                    changed += 1
                    removed += theirs
        finally:
            connection.close()
        return changed, removed
