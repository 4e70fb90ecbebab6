"""DataTable access for timers: a message or a journey wake filed under the minute it is due, and
the sweep's cursor that closes each minute before reading it (so no timer filed into a minute
being swept is missed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.logic.timefmt import iso, minute_of

if TYPE_CHECKING:
    pass

_FILE_ATTEMPTS = 10


def _minute_after(minute: str) -> str:
    return minute_of(datetime.strptime(minute, "%Y%m%d%H%M") + timedelta(minutes=1))


class TimerStore(ddb.Table):
    """Timers in per-minute buckets; a sweep every minute releases the buckets that are due."""

    def schedule(self, at: datetime, timer_id: str, payload: Mapping[str, Any], kind: str = "deliver") -> None:
        """File a timer where a sweep will surely read it.

        Filed under the minute after it falls due (a sweep may already be past the due minute when
        a timer due "now" is written). The sweep closes a minute before reading it, so a timer is
        safe once the cursor, read after the write, is still before its minute: the sweep's read
        comes after the close, which comes after that read. If the cursor has reached the minute
        (the writer's clock lags, or a sweep was reading it just then), the timer is filed again
        in the first minute still open. The copy left behind in the closed minute is released only
        if the sweep had not read that minute yet, which is absorbed like any repeat (releases are
        idempotent by id); otherwise it lies unread until its TTL removes it."""
        shard = sum(timer_id.encode()) % keys.TIMER_SHARDS
        bucket = minute_of(at + timedelta(minutes=1))
        for _ in range(_FILE_ATTEMPTS):
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": ddb.s(keys.timer_pk(bucket, shard)),
                    "sk": ddb.s(timer_id),
                    "kind": ddb.s(kind),
                    "dueAt": ddb.s(iso(at)),
                    "payload": ddb.s(json.dumps(payload, separators=(",", ":"), default=str)),
                    "expiresAt": ddb.n(int((at + timedelta(days=30)).timestamp())),
                },
            )
            closed = self.cursor()
            if closed is None or bucket > closed:
                return
            bucket = _minute_after(closed)
        raise RuntimeError(f"timer {timer_id}: the sweep kept closing the minute it was filed in")

    def due(self, minute: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for shard in range(keys.TIMER_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": ddb.s(keys.timer_pk(minute, shard))},
                "ConsistentRead": True,
            }
            while True:
                answer = self.client.query(**kwargs)
                for item in answer.get("Items", []):
                    found.append(
                        {
                            "pk": item["pk"]["S"],
                            "id": item["sk"]["S"],
                            "kind": item["kind"]["S"],
                            "dueAt": item["dueAt"]["S"],
                            "payload": json.loads(item["payload"]["S"]),
                        }
                    )
                if "LastEvaluatedKey" not in answer:
                    break
                kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return found

    def remove(self, timers: Iterable[Mapping[str, Any]]) -> None:
        requests = [{"DeleteRequest": {"Key": {"pk": ddb.s(t["pk"]), "sk": ddb.s(t["id"])}}} for t in timers]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            for attempt in range(6):
                answer = self.client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.02 * 2**attempt)

    def cursor(self) -> str | None:
        """The last minute closed to writers (strongly consistent: `schedule` relies on it)."""
        item = self._get(keys.TIMER_CURSOR_KEY)
        return item["minute"]["S"] if item else None

    def swept(self) -> str | None:
        """The last minute whose timers were all released. A cursor written before minutes were
        closed ahead of their release has no `released`: its minute was released too."""
        item = self._get(keys.TIMER_CURSOR_KEY)
        if not item:
            return None
        return str(item.get("released", item["minute"])["S"])

    def close(self, minute: str) -> None:
        """Refuse new timers in `minute` and before (forward only): `schedule` files them after it."""
        self._forward("minute", minute)

    def advance(self, minute: str) -> None:
        """Record `minute` released (and closed), forward only: an older sweep finishing late never
        rewinds either."""
        self._forward("minute", minute)
        self._forward("released", minute)

    def _forward(self, name: str, minute: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.TIMER_CURSOR_KEY),
                UpdateExpression="SET #name = :m",
                ConditionExpression="attribute_not_exists(#name) OR #name < :m",
                ExpressionAttributeNames={"#name": name},  # `minute` is a reserved word
                ExpressionAttributeValues={":m": ddb.s(minute)},
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
