"""The audit log in its own table (AuditTable): one partition holding the chain's entries
(`E#<seq>`, twelve digits) and its head (`HEAD`: the last seq and hash).

An append is one transaction: the new entry, on condition that its number is free, and the
head moved from the seq it was read at to the new one. Two writers that read the same head
cannot both win; the loser reads the new head and chains after it. So the chain has one order
and no gaps, whatever the concurrency, at the cost of one partition's write rate (about 250
appends a second: docs/privacy.md)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.logic.audit import FIELDS, GENESIS, chained

_INTEGERS = ("seq", "status")
_PAGE = 1000
# Each round of a race has one winner: enough rounds for a burst of concurrent admin calls.
_ATTEMPTS = 40


class AuditContended(Exception):
    """The chain's head kept moving under every attempt (the burst outlasted the retries)."""


class AuditStore(ddb.Table):
    def head(self) -> dict[str, Any] | None:
        item = self._get(keys.AUDIT_HEAD_KEY)
        if item is None:
            return None
        return {"seq": int(item["seq"]["N"]), "hash": item["hash"]["S"]}

    def entry(self, seq: int) -> dict[str, Any] | None:
        item = self._get({"pk": keys.AUDIT_PK, "sk": keys.audit_entry_sk(seq)})
        return _entry(item) if item is not None else None

    def append(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`fields` chained after the current head, as the entry stored: the entry's fields
        exactly (one missing is null, one unknown is left out), so what is hashed is what is
        read back."""
        fields = {name: fields.get(name) for name in FIELDS if name not in ("seq", "prev")}
        for attempt in range(_ATTEMPTS):
            head = self.head()
            seq, prev = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS)
            entry = chained(fields, seq, prev)
            head_item = {**ddb.key(keys.AUDIT_HEAD_KEY), "seq": ddb.n(seq), "hash": ddb.s(entry["hash"])}
            head_put: dict[str, Any] = {"TableName": self.table, "Item": head_item}
            if head is None:
                head_put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                head_put["ConditionExpression"] = "#seq = :seq"
                head_put["ExpressionAttributeNames"] = {"#seq": "seq"}
                head_put["ExpressionAttributeValues"] = {":seq": ddb.n(head["seq"])}
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": _item(entry),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {"Put": head_put},  # type: ignore[typeddict-item]
                    ]
                )
            except ClientError as error:
                if not ddb.transaction_lost(error):
                    raise
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
                continue
            return entry
        raise AuditContended(f"the audit chain's head moved under {_ATTEMPTS} attempts")

    def newest(self, *, before: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` entries, newest first, from the one numbered below `before`."""
        if before is not None and before <= 1:
            return []
        upper = keys.audit_entry_sk(before - 1) if before is not None else keys.AUDIT_ENTRY_PREFIX + "~"
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={
                ":pk": ddb.s(keys.AUDIT_PK),
                ":low": ddb.s(keys.audit_entry_sk(1)),
                ":high": ddb.s(upper),
            },
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_entry(item) for item in answer.get("Items", [])]

    def walk(self, until: int) -> Iterator[dict[str, Any]]:
        """Every entry numbered up to `until`, oldest first, as stored (a missing or extra one
        included: the walk shows what is there, the verdict is the chain's)."""
        if until < 1:
            return
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
                "ExpressionAttributeValues": {
                    ":pk": ddb.s(keys.AUDIT_PK),
                    ":low": ddb.s(keys.AUDIT_ENTRY_PREFIX),
                    ":high": ddb.s(keys.audit_entry_sk(until)),
                },
                "ConsistentRead": True,
                "Limit": _PAGE,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            answer = self.client.query(**kwargs)
            yield from (_entry(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return


def _item(entry: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {**ddb.key({"pk": keys.AUDIT_PK, "sk": keys.audit_entry_sk(entry["seq"])})}
    for name in (*FIELDS, "hash"):
        value = entry.get(name)
        if value is None:
            continue  # absent is how an item says null; read back as None
        item[name] = ddb.n(value) if name in _INTEGERS else ddb.s(str(value))
    return item


def _entry(item: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for name in (*FIELDS, "hash"):
        value = item.get(name)
        if value is None:
            entry[name] = None
        elif "N" in value:
            entry[name] = int(value["N"])
        else:
            entry[name] = value.get("S")
    return entry
