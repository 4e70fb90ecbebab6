"""The DynamoDB low-level vocabulary every store speaks: attribute values, keys, the lazily
made client, and telling a lost condition from a real failure. One module, so that the stores
never reach into each other's privates."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage.adapters import aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BATCH_GET = 100  # DynamoDB's limit per BatchGetItem
CONDITION_FAILED = "ConditionalCheckFailedException"
# A transaction loses to a concurrent writer in either of these ways.
TRANSACTION_LOST = ("TransactionCanceledException", "TransactionConflictException")


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: float) -> dict[str, str]:
    return {"N": str(value)}


def key(item_key: Mapping[str, str]) -> dict[str, Any]:
    """A key built by midstage.keys ({pk, sk} as strings) in low-level form."""
    return {k: {"S": v} for k, v in item_key.items()}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def condition_failed(error: ClientError) -> bool:
    """The write's condition did not hold: someone else got there first, not a failure."""
    return error_code(error) == CONDITION_FAILED


def transaction_lost(error: ClientError) -> bool:
    return error_code(error) in TRANSACTION_LOST


def transaction_condition_failed(error: ClientError) -> bool:
    """A transaction cancelled because one of its conditions did not hold (not a mere conflict
    with another transaction on one of its items, which a retry gets past)."""
    if error_code(error) != "TransactionCanceledException":
        return False
    reasons = error.response.get("CancellationReasons") or []
    return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes DynamoDB bills for an item in low-level form (names plus values)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, inner),) = value.items()
        if kind == "S":
            size += len(inner.encode())
        elif kind == "B":
            size += len(inner)
        elif kind == "N":
            size += math.ceil(len(inner.lstrip("-").replace(".", "")) / 2) + 1
        else:
            size += len(json.dumps(inner))
    return size


def write_units(item: Mapping[str, Any], transactional: bool = False) -> float:
    return math.ceil(item_size(item) / 1024) * (2 if transactional else 1)


class Table:
    """One table with its client made on first use (or injected)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.dynamodb()
        return self._client

    def _get(self, item_key: Mapping[str, str], consistent: bool = True) -> dict[str, Any] | None:
        answer = self.client.get_item(TableName=self.table, Key=key(item_key), ConsistentRead=consistent)
        return answer.get("Item")

    def _batch_get(self, keys_: Sequence[Mapping[str, str]], consistent: bool = True) -> list[dict[str, Any]]:
        """The items found under `keys_` (each asked once), in no particular order."""
        found: list[dict[str, Any]] = []
        wanted = [{"pk": {"S": k["pk"]}, "sk": {"S": k["sk"]}} for k in {(k["pk"], k["sk"]): k for k in keys_}.values()]
        for start in range(0, len(wanted), _BATCH_GET):
            request: dict[str, Any] = {
                self.table: {"Keys": wanted[start : start + _BATCH_GET], "ConsistentRead": consistent}
            }
            for attempt in range(8):
                answer = self.client.batch_get_item(RequestItems=request)
                found.extend(answer["Responses"].get(self.table, []))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.02 * 2**attempt)
            else:
                # A partial answer would make what exists look absent: fail, and be retried.
                raise RuntimeError(f"DynamoDB left {len(request[self.table]['Keys'])} keys unread")
        return found

    def _query(self, pk: str, prefix: str, *, limit: int, newest_first: bool = True, start: str | None = None) -> Any:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": s(pk), ":prefix": s(prefix)},
            "ScanIndexForward": not newest_first,
            "Limit": limit,
        }
        if not prefix:  # DynamoDB refuses an empty key value, even in begins_with
            kwargs["KeyConditionExpression"] = "pk = :pk"
            kwargs["ExpressionAttributeValues"] = {":pk": s(pk)}
        if start:
            kwargs["ExclusiveStartKey"] = {"pk": s(pk), "sk": s(start)}
        return self.client.query(**kwargs)
