"""Each destination's durable state in the DataTable: its queue of events waiting (DQ#), its
failed records kept for a redrive (DF#, 14 days), and its state item (DS#: figures, retry clock
and the lease that lets one drain run at a time). Keys: midstage/keys.py.

Why a table and not an SQS dead-letter queue per destination: destinations are made at run time
through the admin API (a queue each would be infrastructure made by the application, with its
own permissions), a queue's dead letters lose a person's order, and a redrive has to put one
destination's records back in their order without touching another's. A partition per
destination does all three with the table every function already has."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.logic.destinations import Entry
from midstage.logic.timefmt import iso
from midstage.models.destinations import DestinationStats

if TYPE_CHECKING:
    pass

FAILED_RETENTION = timedelta(days=14)  # as long as SQS keeps a dead letter
_BATCH_WRITE = 25
_COUNTERS = ("delivered", "failed", "retried", "filtered")


class DestinationStore(ddb.Table):
    # ------------------------------------------------------------------ the queue
    def reserve(self, destination_id: str, count: int) -> int:
        """The first of `count` order numbers taken from the destination's counter: entries are
        numbered here, not by the feed, so their order is the order they were accepted in (SQS
        FIFO sequence numbers order a group on AWS, but not in every emulator)."""
        answer = self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.destination_state_key(destination_id)),
            UpdateExpression="ADD next_seq :n",
            ExpressionAttributeValues={":n": ddb.n(count)},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["next_seq"]["N"]) - count + 1

    def append(self, destination_id: str, entries: Sequence[Entry]) -> None:
        """Durably queue `entries` (a repeat of the same seq overwrites: one entry, not two)."""
        if not entries:
            return
        pk = keys.destination_queue_pk(destination_id)
        self._write([{"PutRequest": {"Item": _entry_item(pk, e)}} for e in entries])

    def waiting(self, destination_id: str, limit: int) -> list[Entry]:
        """The oldest `limit` entries, in feed order."""
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": ddb.s(keys.destination_queue_pk(destination_id))},
            ConsistentRead=True,
            Limit=limit,
        )
        return [_entry(item) for item in answer.get("Items", [])]

    def delivered(self, destination_id: str, entries: Sequence[Entry], now: datetime) -> None:
        pk = keys.destination_queue_pk(destination_id)
        self._write([{"DeleteRequest": {"Key": ddb.key({"pk": pk, "sk": e.seq})}} for e in entries])
        self._update(
            destination_id,
            "ADD delivered :n SET last_delivered_at = :now, attempts = :zero REMOVE next_attempt_at",
            {":n": ddb.n(len(entries)), ":now": ddb.s(iso(now)), ":zero": ddb.n(0)},
        )

    def retry_later(
        self, destination_id: str, tried: int, error: str, attempts: int, at: datetime, now: datetime
    ) -> None:
        self._update(
            destination_id,
            "ADD retried :n SET attempts = :attempts, next_attempt_at = :at, last_error = :error, last_error_at = :now",
            {
                ":n": ddb.n(tried),
                ":attempts": ddb.n(attempts),
                ":at": ddb.s(iso(at)),
                ":error": ddb.s(error[:1000]),
                ":now": ddb.s(iso(now)),
            },
        )

    # ------------------------------------------------------------------ failed records
    def fail(self, destination_id: str, failures: Sequence[tuple[Entry, str]], now: datetime, *, queued: bool) -> None:
        """Keep `failures` (entry, why) as failed records; `queued`: they leave the queue too."""
        if not failures:
            return
        failed_pk, expires = keys.destination_failed_pk(destination_id), int((now + FAILED_RETENTION).timestamp())
        requests: list[Any] = []
        for entry, reason in failures:
            item = _entry_item(failed_pk, entry)
            item.update({"reason": ddb.s(reason[:1000]), "failed_at": ddb.s(iso(now)), "expiresAt": ddb.n(expires)})
            requests.append({"PutRequest": {"Item": item}})
        self._write(requests)
        if queued:
            queue_pk = keys.destination_queue_pk(destination_id)
            self._write([{"DeleteRequest": {"Key": ddb.key({"pk": queue_pk, "sk": e.seq})}} for e, _ in failures])
        self._update(
            destination_id,
            "ADD failed :n SET last_error = :error, last_error_at = :now",
            {
                ":n": ddb.n(len(failures)),
                ":error": ddb.s(failures[-1][1][:1000]),
                ":now": ddb.s(iso(now)),
            },
        )

    def failed_records(self, destination_id: str, limit: int) -> list[tuple[Entry, str]]:
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": ddb.s(keys.destination_failed_pk(destination_id))},
            ConsistentRead=True,
            Limit=limit,
        )
        return [(_entry(item), item.get("reason", {}).get("S", "")) for item in answer.get("Items", [])]

    def redrive(self, destination_id: str, limit: int, now: datetime) -> int:
        """Put up to `limit` failed records back on the queue, in their order, as waiting from now."""
        records = self.failed_records(destination_id, limit)
        if not records:
            return 0
        queue_pk, failed_pk = keys.destination_queue_pk(destination_id), keys.destination_failed_pk(destination_id)
        back = [
            Entry(e.seq, e.profile_id, e.message_id, e.payload, iso(now))  # a fresh retry window
            for e, _ in records
        ]
        self._write([{"PutRequest": {"Item": _entry_item(queue_pk, e)}} for e in back])
        self._write([{"DeleteRequest": {"Key": ddb.key({"pk": failed_pk, "sk": e.seq})}} for e in back])
        return len(back)

    # ------------------------------------------------------------------ state
    def count_filtered(self, destination_id: str, filtered: int) -> None:
        if filtered:
            self._count(destination_id, filtered=filtered)

    def state(self, destination_id: str) -> DestinationStats:
        """The state item's figures and retry clock (one read; `pending` and `failed_records` are 0)."""
        values: dict[str, Any] = {}
        for name, value in (self._get(keys.destination_state_key(destination_id)) or {}).items():
            if name in _COUNTERS or name == "attempts":
                values[name] = int(value["N"])
            elif name in ("last_error", "last_error_at", "last_delivered_at", "next_attempt_at"):
                values[name] = value["S"]
        return DestinationStats.model_validate(values)

    def stats(self, destination_id: str) -> DestinationStats:
        """The state with what waits counted (COUNT queries: for the admin API, not the hot path)."""
        return self.state(destination_id).model_copy(
            update={
                "pending": self._count_items(keys.destination_queue_pk(destination_id)),
                "failed_records": self._count_items(keys.destination_failed_pk(destination_id)),
            }
        )

    def acquire(self, destination_id: str, token: str, now: datetime, lease: timedelta) -> bool:
        """Take the drain lease (one drain per destination at a time, so a person's order holds)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.destination_state_key(destination_id)),
                UpdateExpression="SET lease_owner = :token, lease_until = :until",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":token": ddb.s(token),
                    ":until": ddb.s(iso(now + lease)),
                    ":now": ddb.s(iso(now)),
                },
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def release(self, destination_id: str, token: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.destination_state_key(destination_id)),
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :token",
                ExpressionAttributeValues={":token": ddb.s(token)},
            )
        except ClientError as error:
            if not ddb.condition_failed(error):  # lost it to expiry: nothing of ours to release
                raise

    def forget(self, destination_id: str) -> None:
        """Everything a deleted destination left: its queue, its failed records, its state."""
        for pk in (keys.destination_queue_pk(destination_id), keys.destination_failed_pk(destination_id)):
            for page in self._pages(pk):
                self._write([{"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}} for item in page])
        self.client.delete_item(TableName=self.table, Key=ddb.key(keys.destination_state_key(destination_id)))

    # ------------------------------------------------------------------ helpers
    def _pages(self, pk: str) -> Iterator[list[dict[str, Any]]]:
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": ddb.s(pk)},
                "ProjectionExpression": "pk, sk",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            answer = self.client.query(**kwargs)
            if answer.get("Items"):
                yield answer["Items"]
            start = answer.get("LastEvaluatedKey")
            if not start:
                return

    def _count_items(self, pk: str) -> int:
        """How many items a partition holds (a COUNT query: reads them, returns none)."""
        total, start = 0, None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": ddb.s(pk)},
                "Select": "COUNT",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            answer = self.client.query(**kwargs)
            total += int(answer.get("Count", 0))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return total

    def _count(self, destination_id: str, **counts: int) -> None:
        names = sorted(counts)
        self._update(
            destination_id,
            "ADD " + ", ".join(f"{name} :{name}" for name in names),
            {f":{name}": ddb.n(counts[name]) for name in names},
        )

    def _update(self, destination_id: str, expression: str, values: dict[str, Any]) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.destination_state_key(destination_id)),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )

    def _write(self, requests: Sequence[Any]) -> None:
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: dict[str, Any] = {self.table: list(requests[start : start + _BATCH_WRITE])}
            for attempt in range(8):
                answer = self.client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.02 * 2**attempt)
            else:
                raise RuntimeError("DynamoDB left destination records unwritten")


def _entry_item(pk: str, entry: Entry) -> dict[str, Any]:
    return {
        "pk": ddb.s(pk),
        "sk": ddb.s(entry.seq),
        "profile_id": ddb.s(entry.profile_id),
        "message_id": ddb.s(entry.message_id),
        "payload": ddb.s(json.dumps(entry.payload, separators=(",", ":"), default=str)),
        "enqueued_at": ddb.s(entry.enqueued_at),
    }


def _entry(item: dict[str, Any]) -> Entry:
    return Entry(
        seq=item["sk"]["S"],
        profile_id=item["profile_id"]["S"],
        message_id=item["message_id"]["S"],
        payload=json.loads(item["payload"]["S"]),
        enqueued_at=item["enqueued_at"]["S"],
    )
