"""DataTable access for messaging: the send ledger, cap reservations, suppressions, the inbox and
rule fire records (timers: timer_store.py). Every write that decides something is conditional."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.config import FrequencyCap
from midstage.logic import sharding
from midstage.logic.delivery import DUPLICATE, IN_FLIGHT, NOT_DUE, Claim, cap_breached, prune_sends
from midstage.logic.rules import FireRecord
from midstage.logic.timefmt import iso
from midstage.models.messaging import FINAL_STATUSES, MessageRequest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_CAP_ATTEMPTS = 25
# The shards of an origin's message index at the default expected peak (config.StoreSettings).
DEFAULT_ORIGIN_SHARDS = sharding.shards_for(20_000)
_LISTING_THREADS = 8  # an origin listing queries every shard; these many at a time
_MAX_HISTORY = 30
MESSAGE_RETENTION = timedelta(days=400)


# --------------------------------------------------------------------------- the ledger
def history_entry(status: str, reason: str, now: datetime, **fields: Any) -> dict[str, Any]:
    entry = {"at": iso(now), "status": status, "reason": reason}
    entry.update({k: v for k, v in fields.items() if v is not None})
    return {"M": {k: ddb.s(str(v)) for k, v in entry.items()}}


StatusHook = Callable[[Mapping[str, Any], str, datetime], None]


class MessageLedger(ddb.Table):
    """One item per intended send, keyed by the request's deterministic message id.

    `on_status` is told of every feedback status recorded on a message (with the message's
    record), so counters by origin can follow deliveries, opens and clicks."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        on_status: StatusHook | None = None,
        origin_shards: int = DEFAULT_ORIGIN_SHARDS,
    ):
        super().__init__(table, client)
        self.on_status = on_status
        self.origin_shards = origin_shards

    def claim(self, request: MessageRequest, now: datetime, lease_seconds: int) -> Claim:
        message_id = request.message_id
        now_s = int(now.timestamp())
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.message_key(message_id)),
                # Every name aliased: several (request, origin...) are DynamoDB reserved words.
                UpdateExpression=(
                    "SET #st = :sending, #lease = :lease, #att = if_not_exists(#att, :zero) + :one,"
                    " #rq = if_not_exists(#rq, :request), #ca = if_not_exists(#ca, :now),"
                    " #pid = if_not_exists(#pid, :profile), #org = if_not_exists(#org, :origin),"
                    " #cat = if_not_exists(#cat, :category), #exp = :expires,"
                    " #hist = list_append(if_not_exists(#hist, :empty), :entry)"
                ),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR (#st = :sending AND #lease < :now_s)"
                    " OR (#st = :deferred AND #nb <= :now_s) OR #st = :queued"
                ),
                ExpressionAttributeNames={
                    "#st": "status",
                    "#lease": "leaseUntil",
                    "#att": "attempts",
                    "#rq": "request",
                    "#ca": "createdAt",
                    "#pid": "profileId",
                    "#org": "origin",
                    "#cat": "category",
                    "#exp": "expiresAt",
                    "#hist": "history",
                    "#nb": "notBefore",
                },
                ExpressionAttributeValues={
                    ":sending": ddb.s("sending"),
                    ":deferred": ddb.s("deferred"),
                    ":queued": ddb.s("queued"),
                    ":lease": ddb.n(now_s + lease_seconds),
                    ":now_s": ddb.n(now_s),
                    ":zero": ddb.n(0),
                    ":one": ddb.n(1),
                    ":request": ddb.s(request.model_dump_json()),
                    ":now": ddb.s(iso(now)),
                    ":profile": ddb.s(request.profile_id),
                    ":origin": ddb.s(f"{request.origin.kind}#{request.origin.id}"),
                    ":category": ddb.s(request.category),
                    ":expires": ddb.n(int((now + MESSAGE_RETENTION).timestamp())),
                    ":empty": {"L": []},
                    ":entry": {"L": [history_entry("sending", "claimed for delivery", now)]},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
            item = self._get(keys.message_key(message_id)) or {}
            record = plain(item)
            status = record.get("status")
            if status in FINAL_STATUSES:
                return Claim(DUPLICATE, record)
            if status == "deferred":
                return Claim(NOT_DUE, record)
            return Claim(IN_FLIGHT, record)
        record = plain(answer["Attributes"])
        if record.get("attempts") == 1:
            self._index(request, now)
        return Claim("claimed", record)

    def _index(self, request: MessageRequest, now: datetime) -> None:
        """References for listing by person and by origin (idempotent puts)."""
        stamp = iso(now)
        ref = {"messageId": ddb.s(request.message_id), "expiresAt": ddb.n(int((now + MESSAGE_RETENTION).timestamp()))}
        pending: dict[str, Any] = {
            self.table: [
                {
                    "PutRequest": {
                        "Item": {
                            "pk": ddb.s(keys.profile_pk(request.profile_id)),
                            "sk": ddb.s(keys.message_ref_sk(stamp, request.message_id)),
                            **ref,
                        }
                    }
                },
                {
                    "PutRequest": {
                        "Item": {
                            "pk": ddb.s(
                                keys.origin_shard_pk(
                                    request.origin.kind,
                                    request.origin.id,
                                    sharding.shard_of(request.message_id, self.origin_shards),
                                )
                            ),
                            "sk": ddb.s(f"{stamp}#{request.message_id}"),
                            **ref,
                        }
                    }
                },
            ]
        }
        for attempt in range(6):
            answer = self.client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(0.02 * 2**attempt)
        raise RuntimeError("DynamoDB left message references unwritten")

    def finish(self, message_id: str, status: str, reason: str, now: datetime, **fields: Any) -> None:
        """Move a claimed message to `status` (final, deferred or queued again), ending its lease."""
        names = {"#st": "status"}
        values: dict[str, Any] = {
            ":status": ddb.s(status),
            ":reason": ddb.s(reason),
            ":now": ddb.s(iso(now)),
            ":entry": {"L": [history_entry(status, reason, now, channel=fields.get("channel"))]},
            ":empty": {"L": []},
        }
        sets = ["#st = :status", "reason = :reason", "updatedAt = :now"]
        sets.append("history = list_append(if_not_exists(history, :empty), :entry)")
        for index, (name, value) in enumerate(sorted(fields.items())):
            if value is None:
                continue
            names[f"#f{index}"] = name
            values[f":f{index}"] = (
                ddb.n(value) if isinstance(value, int) and not isinstance(value, bool) else ddb.s(str(value))
            )
            sets.append(f"#f{index} = :f{index}")
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.message_key(message_id)),
            # The attempt is over: its lease, and its mark of a provider call awaiting an answer.
            UpdateExpression="SET " + ", ".join(sets) + " REMOVE leaseUntil, providerCallAt, providerChannel",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def note(self, message_id: str, now: datetime, **fields: Any) -> None:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {
            f":f{i}": {"BOOL": v} if isinstance(v, bool) else ddb.s(str(v)) for i, v in enumerate(fields.values())
        }
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.message_key(message_id)),
            UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def defer(self, message_id: str, until: datetime, reason: str, now: datetime) -> None:
        self.finish(message_id, "deferred", reason, now, notBefore=int(until.timestamp()))

    def release(self, message_id: str, reason: str, now: datetime) -> None:
        """Give a claimed message back (a retryable provider error): the next delivery may claim it."""
        self.finish(message_id, "queued", reason, now)

    def update_status(
        self, message_id: str, status: str, reason: str, now: datetime, *, final_only: bool, provider_id: str = ""
    ) -> bool:
        """Feedback (delivery, bounce, open...) on a message that exists. `final_only` statuses
        replace the message's status; the others only join its history (bounded). `provider_id`
        (the provider's own message id) is kept when the record has none: a message whose attempt
        ended mid-call learns it from the provider's feedback."""
        values: dict[str, Any] = {
            ":now": ddb.s(iso(now)),
            ":max": ddb.n(_MAX_HISTORY * 4),
            ":empty": {"L": []},
            ":entry": {"L": [history_entry(status, reason, now)]},
        }
        kwargs: dict[str, Any] = {}
        update = "SET updatedAt = :now, history = list_append(if_not_exists(history, :empty), :entry)"
        names: dict[str, str] = {}
        if final_only:
            update += ", #st = :status"
            values[":status"] = ddb.s(status)
            names["#st"] = "status"
        if provider_id:
            update += ", providerId = if_not_exists(providerId, :provider)"
            values[":provider"] = ddb.s(provider_id)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.message_key(message_id)),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND size(history) < :max",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **kwargs,
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        if self.on_status is not None:
            self.on_status(plain(answer["Attributes"]), status, now)
        return True

    def get(self, message_id: str) -> dict[str, Any] | None:
        item = self._get(keys.message_key(message_id))
        return plain(item) if item else None

    def many(self, message_ids: Sequence[str]) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(message_ids), 100):
            wanted = [ddb.key(keys.message_key(m)) for m in message_ids[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": wanted}}
            for attempt in range(6):
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get(self.table, []):
                    record = plain(item)
                    found[record["id"]] = record
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.02 * 2**attempt)
        return [found[m] for m in message_ids if m in found]

    def list_for(self, pk: str, prefix: str, limit: int, start: str | None) -> tuple[list[str], str | None]:
        answer = self._query(pk, prefix, limit=limit, start=start)
        ids = [item["messageId"]["S"] for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return ids, last["sk"]["S"] if last else None

    def list_origin(
        self, kind: str, origin_id: str, prefix: str, limit: int, before: str | None
    ) -> tuple[list[str], str | None]:
        """An origin's messages, newest first, `limit` a page: every shard and the unsharded key
        (references from before sharding) merged on the sort key `<at>#<messageId>`.

        The cursor is the last sort key given, a position in that one order whatever the shards,
        so it stays valid across pages (and across a change of shard count). Each partition
        answers at most `limit` references below it; the page is the newest `limit` of them."""
        pks = keys.origin_pks(kind, origin_id, self.origin_shards)
        with ThreadPoolExecutor(max_workers=min(_LISTING_THREADS, len(pks))) as pool:
            pages = list(pool.map(lambda pk: self._origin_page(pk, prefix, limit, before), pks))
        found = sorted((entry for entries, _ in pages for entry in entries), reverse=True)
        page = found[:limit]
        more = len(found) > limit or any(partition_has_more for _, partition_has_more in pages)
        return [message_id for _, message_id in page], page[-1][0] if page and more else None

    def _origin_page(self, pk: str, prefix: str, limit: int, before: str | None) -> tuple[list[tuple[str, str]], bool]:
        """Up to `limit` (sort key, message id) of one partition below `before`, newest first, and
        whether it holds more."""
        if before is None:
            answer = self._query(pk, prefix, limit=limit)
            items = answer.get("Items", [])
            return [(i["sk"]["S"], i["messageId"]["S"]) for i in items], "LastEvaluatedKey" in answer
        # Within the prefix and up to the cursor: BETWEEN is inclusive, so the cursor's own item
        # (in one partition) is read once more and dropped here.
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues={":pk": ddb.s(pk), ":low": ddb.s(prefix), ":high": ddb.s(before)},
            ScanIndexForward=False,
            Limit=limit + 1,
        )
        entries = [(i["sk"]["S"], i["messageId"]["S"]) for i in answer.get("Items", []) if i["sk"]["S"] != before]
        return entries[:limit], len(entries) > limit or "LastEvaluatedKey" in answer


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger item as plain values (the request stays a JSON string until asked for)."""
    record: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            record[name] = value["S"]
        elif "N" in value:
            number = float(value["N"])
            record[name] = int(number) if number.is_integer() else number
        elif "BOOL" in value:
            record[name] = value["BOOL"]
        elif "L" in value:
            record[name] = [{k: v["S"] for k, v in entry["M"].items()} for entry in value["L"]]
    if "pk" in record:
        record["id"] = record["pk"].split("#", 1)[1]
    return record


# --------------------------------------------------------------------------- caps
class CapStore(ddb.Table):
    """A person's recent sends in one item: checking caps and reserving is one conditional write,
    so concurrent deliverers (rules, campaigns, journeys alike) pass exactly cap-many."""

    def reserve(
        self,
        profile_id: str,
        message_id: str,
        channel: str,
        category: str,
        caps: Sequence[FrequencyCap],
        now: datetime,
        merged_from: Sequence[str] = (),
    ) -> FrequencyCap | None:
        """Reserve a send unless a cap would break. Sends to the profiles merged into this one
        count too (read once; a merged-away profile gets no sends of its own any more)."""
        key = keys.caps_key(profile_id)
        inherited: list[dict[str, Any]] = []
        if merged_from and caps:
            for found in self._batch_get([keys.caps_key(p) for p in merged_from], consistent=False):
                inherited.extend(json.loads(found["sends"]["S"]))
        for attempt in range(_CAP_ATTEMPTS):
            item = self._get(key)
            version = int(item["version"]["N"]) if item else 0
            sends: list[dict[str, Any]] = json.loads(item["sends"]["S"]) if item else []
            if any(s["id"] == message_id for s in sends):
                return None  # reserved by an earlier attempt at this very message
            breached = cap_breached(sends + inherited, channel, category, caps, now)
            if breached is not None:
                return breached
            sends = prune_sends(sends, caps, now)
            sends.append({"id": message_id, "at": int(now.timestamp()), "channel": channel, "category": category})
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        **ddb.key(key),
                        "sends": ddb.s(json.dumps(sends, separators=(",", ":"))),
                        "version": ddb.n(version + 1),
                    },
                    ConditionExpression="attribute_not_exists(pk)" if item is None else "version = :v",
                    **({} if item is None else {"ExpressionAttributeValues": {":v": ddb.n(version)}}),  # type: ignore[arg-type]
                )
                return None
            except ClientError as error:
                if not ddb.condition_failed(error):
                    raise
                time.sleep(min(0.005 * 2**attempt, 0.2))
        raise RuntimeError(f"could not reserve a send for {profile_id} after {_CAP_ATTEMPTS} attempts")


# --------------------------------------------------------------------------- suppressions
class SuppressionStore(ddb.Table):
    def suppression(self, channel: str, address: str) -> dict[str, Any] | None:
        item = self._get(keys.suppression_key(channel, address), consistent=False)
        return plain(item) if item else None

    def suppress(self, channel: str, address: str, reason: str, scope: str, now: datetime, detail: str = "") -> None:
        """Record a suppression; a stronger scope ("all") is never narrowed by a later one."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.suppression_key(channel, address)),
                    "channel": ddb.s(channel),
                    "address": ddb.s(address),
                    "reason": ddb.s(reason),
                    "scope": ddb.s(scope),
                    "detail": ddb.s(detail[:1000]),
                    "at": ddb.s(iso(now)),
                },
                ConditionExpression="attribute_not_exists(pk) OR #scope <> :all OR :scope = :all",
                ExpressionAttributeNames={"#scope": "scope"},
                ExpressionAttributeValues={":all": ddb.s("all"), ":scope": ddb.s(scope)},
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise

    def lift(self, channel: str, address: str) -> bool:
        answer = self.client.delete_item(
            TableName=self.table, Key=ddb.key(keys.suppression_key(channel, address)), ReturnValues="ALL_OLD"
        )
        return bool(answer.get("Attributes"))


# --------------------------------------------------------------------------- inbox
class InboxStore(ddb.Table):
    def put(self, profile_id: str, message_id: str, title: str, body: str, now: datetime) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": ddb.s(keys.profile_pk(profile_id)),
                "sk": ddb.s(keys.inbox_sk(iso(now), message_id)),
                "messageId": ddb.s(message_id),
                "title": ddb.s(title),
                "body": ddb.s(body),
                "createdAt": ddb.s(iso(now)),
                "expiresAt": ddb.n(int((now + MESSAGE_RETENTION).timestamp())),
            },
        )

    def list(self, profile_id: str, limit: int, start: str | None) -> tuple[list[dict[str, Any]], str | None]:
        answer = self._query(keys.profile_pk(profile_id), keys.INBOX_PREFIX, limit=limit, start=start)
        entries = [
            {
                "messageId": i["messageId"]["S"],
                "title": i["title"]["S"],
                "body": i["body"]["S"],
                "createdAt": i["createdAt"]["S"],
                "readAt": i.get("readAt", {}).get("S"),
                "cursor": i["sk"]["S"],
            }
            for i in answer.get("Items", [])
        ]
        last = answer.get("LastEvaluatedKey")
        return entries, last["sk"]["S"] if last else None

    def mark_read(self, profile_id: str, cursor: str, now: datetime) -> bool:
        if not cursor.startswith(keys.INBOX_PREFIX):
            return False
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": ddb.s(keys.profile_pk(profile_id)), "sk": ddb.s(cursor)},
                UpdateExpression="SET readAt = if_not_exists(readAt, :now)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": ddb.s(iso(now))},
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True


# --------------------------------------------------------------------------- rule fire records
class FireRecords(ddb.Table):
    def get(self, profile_id: str, rule_id: str) -> FireRecord | None:
        item = self._get(keys.fire_key(profile_id, rule_id))
        return _fire_record(item) if item else None

    def get_many(self, profile_ids: Sequence[str], rule_id: str) -> list[FireRecord]:
        """The rule's fire records of several profiles (a person and those merged into them)."""
        return [_fire_record(item) for item in self._batch_get([keys.fire_key(p, rule_id) for p in profile_ids])]

    def record(
        self, profile_id: str, rule_id: str, occurrence: str, now: datetime, expected: FireRecord | None
    ) -> bool:
        """Record a firing only if nobody else fired in between (the refire policy is then exact)."""
        condition = (
            "attribute_not_exists(pk)" if expected is None else "lastOccurrence = :seen OR lastOccurrence = :occurrence"
        )
        values: dict[str, Any] = {
            ":occurrence": ddb.s(occurrence),
            ":now": ddb.s(iso(now)),
            ":one": ddb.n(1),
            ":zero": ddb.n(0),
        }
        if expected is not None:
            values[":seen"] = ddb.s(expected.last_occurrence)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.fire_key(profile_id, rule_id)),
                UpdateExpression=(
                    "SET lastFiredAt = :now, lastOccurrence = :occurrence, #c = if_not_exists(#c, :zero) + :one"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True


def _fire_record(item: Mapping[str, Any]) -> FireRecord:
    return FireRecord(item["lastFiredAt"]["S"], item["lastOccurrence"]["S"], int(item["count"]["N"]))
