"""DataTable access for sharded counters (campaign runs, journeys) and once-markers.

A counter shard is added to with ADD (commutative, so retries and races never lose an addition;
a repeated one is kept out by a once-marker, a conditional put). Shards spread one campaign's
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
        wanted = {name: amount for name, amount in counts.items() if amount}
        if not wanted:
            return
        names = {f"#c{i}": name for i, name in enumerate(wanted)}
        values = {f":c{i}": ddb.n(amount) for i, amount in enumerate(wanted.values())}  # type: ignore[arg-type]
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.stats_shard_key(kind, origin_id, run, sharding.shard_of(subject, self.shards))),
            UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(wanted))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

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


class OnceMarkers(ddb.Table):
    def mark(self, scope: str, subject: str, now: datetime, keep: timedelta) -> bool:
        """True the first time (scope, subject) is marked; False ever after (until it expires)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**ddb.key(keys.once_key(scope, subject)), "expiresAt": ddb.n(int((now + keep).timestamp()))},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True
