"""DataTable access for sharded counters (campaign runs, journeys) and once-markers.

A counter shard is added to with ADD (commutative, so retries and races never lose an addition).
An addition that must count once is committed in one transaction with what makes it happen: a
once-marker (`add_once`: feedback, conversions) or the write it counts (`addition`: a journey
move), so a crash between the two can neither lose it nor let a retry add it twice. Shards spread one campaign's
additions over partition keys (logic/sharding.py), and totals add every shard up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.logic import sharding

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


DEFAULT_STATS_SHARDS = sharding.counter_shards_for(20_000)  # as config.StoreSettings.stats_shards
_TOTALS_THREADS = 8
_BATCH_GET_KEYS = 100  # BatchGetItem's limit
_TRANSACT_ATTEMPTS = 8


def shard_of(subject: str, shards: int = DEFAULT_STATS_SHARDS) -> int:
    return sharding.shard_of(subject, shards)


class Counters(ddb.Table):
    """Sharded counters per (kind, origin, run): many writers add, readers sum the shards.

    Each shard is its own partition key, so a campaign's counters take `shards` x 1,000 WCU/s;
    readers also add up the counters written under one partition key before that."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, shards: int = DEFAULT_STATS_SHARDS):
        super().__init__(table, client)
        self.shards = shards

    def add(self, kind: str, origin_id: str, run: str, subject: str, counts: Mapping[str, int | Decimal]) -> None:
        """Add `counts` (name -> amount) on the shard `subject` (a message or person id) falls in."""
        action = self.addition(kind, origin_id, run, subject, counts)
        if action is not None:
            self.client.update_item(**action["Update"])

    def addition(
        self, kind: str, origin_id: str, run: str, subject: str, counts: Mapping[str, int | Decimal]
    ) -> dict[str, Any] | None:
        """The ADD of `counts` as a TransactWriteItems action, for a writer that commits it with
        its own write (a journey move with its counts): both land, or neither does."""
        wanted = {name: amount for name, amount in counts.items() if amount}
        if not wanted:
            return None
        return {
            "Update": {
                "TableName": self.table,
                "Key": ddb.key(keys.stats_shard_key(kind, origin_id, run, sharding.shard_of(subject, self.shards))),
                "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(wanted))),
                "ExpressionAttributeNames": {f"#c{i}": name for i, name in enumerate(wanted)},
                "ExpressionAttributeValues": {
                    f":c{i}": ddb.n(amount)  # type: ignore[arg-type]
                    for i, amount in enumerate(wanted.values())
                },
            }
        }

    def add_once(
        self,
        kind: str,
        origin_id: str,
        run: str,
        subject: str,
        counts: Mapping[str, int | Decimal],
        *,
        once: tuple[str, str],
        now: datetime,
        keep: timedelta,
    ) -> bool:
        """Add `counts` the first time the marker `once` (scope, subject) is set, in one
        transaction with it: a crash can lose neither half alone, and a repeat adds nothing.
        True when this call added."""
        addition = self.addition(kind, origin_id, run, subject, counts)
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": {**ddb.key(keys.once_key(*once)), "expiresAt": ddb.n(int((now + keep).timestamp()))},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        actions: list[Any] = [marker, *([addition] if addition else [])]
        for attempt in range(_TRANSACT_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=actions)
                return True
            except ClientError as error:
                if not ddb.transaction_lost(error):
                    raise
                # Cancelled: the marker is there already (a repeat), or a concurrent write on the
                # shard conflicted; only a marker that exists means "counted".
                if self._get(keys.once_key(*once)) is not None:
                    return False
                time.sleep(0.01 * 2**attempt)
        raise RuntimeError(f"counting {kind} {origin_id} once under {once[0]} kept conflicting")

    def totals(self, kind: str, origin_id: str, run: str | None = None) -> dict[str, dict[str, Decimal]]:
        """Counter totals by run (every run of the origin, or one). One run is two calls (the
        shards' items by key, a query of the older layout); every run, a query per shard."""
        legacy = keys.stats_pk(kind, origin_id)
        if run:
            counts = self._run_totals(kind, origin_id, run)
            for name, value in self._shard_totals(legacy, run, legacy=True).get(run, {}).items():
                counts[name] = counts.get(name, Decimal(0)) + value
            return {run: counts} if counts else {}
        pks = keys.stats_pks(kind, origin_id, self.shards)
        with ThreadPoolExecutor(max_workers=min(_TOTALS_THREADS, len(pks))) as pool:
            parts = list(pool.map(lambda pk: self._shard_totals(pk, run, legacy=pk == legacy), pks))
        runs: dict[str, dict[str, Decimal]] = {}
        for part in parts:
            for run_id, counts in part.items():
                into = runs.setdefault(run_id, {})
                for name, value in counts.items():
                    into[name] = into.get(name, Decimal(0)) + value
        return runs

    def _run_totals(self, kind: str, origin_id: str, run: str) -> dict[str, Decimal]:
        counts: dict[str, Decimal] = {}
        wanted = [ddb.key(keys.stats_shard_key(kind, origin_id, run, shard)) for shard in range(self.shards)]
        for start in range(0, len(wanted), _BATCH_GET_KEYS):
            pending: Any = {self.table: {"Keys": wanted[start : start + _BATCH_GET_KEYS], "ConsistentRead": True}}
            for attempt in range(8):
                answer = self.client.batch_get_item(RequestItems=pending)
                for item in answer.get("Responses", {}).get(self.table, []):
                    for name, value in item.items():
                        if name not in ("pk", "sk") and "N" in value:
                            counts[name] = counts.get(name, Decimal(0)) + Decimal(value["N"])
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(0.02 * 2**attempt)
            else:
                raise RuntimeError("DynamoDB left counter shards unread")
        return counts

    def _shard_totals(self, pk: str, run: str | None, *, legacy: bool) -> dict[str, dict[str, Decimal]]:
        runs: dict[str, dict[str, Decimal]] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": ddb.s(pk)},
            "ConsistentRead": True,
        }
        if run:
            # Before sharding by partition key the sort key was `<run>#<shard>`; now it is the run.
            kwargs["KeyConditionExpression"] += " AND begins_with(sk, :run)" if legacy else " AND sk = :run"
            kwargs["ExpressionAttributeValues"][":run"] = ddb.s(f"{run}#" if legacy else run)
        while True:
            answer = self.client.query(**kwargs)
            for item in answer.get("Items", []):
                run_id = item["sk"]["S"].rsplit("#", 1)[0] if legacy else item["sk"]["S"]
                into = runs.setdefault(run_id, {})
                for name, value in item.items():
                    if name not in ("pk", "sk") and "N" in value:
                        into[name] = into.get(name, Decimal(0)) + Decimal(value["N"])
            if "LastEvaluatedKey" not in answer:
                return runs
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
