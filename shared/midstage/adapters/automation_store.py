"""DataTable access for automation: journey instances and entry caps, campaign runs and their
parts, attribution touches and segment refresh jobs (counters: counters.py).

Every write that decides something is conditional: an instance moves only from the revision
it was read at, and a campaign part is held by one worker at a time (a lease).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters.documents import pack, unpack
from midstage.errors import Stale
from midstage.logic.timefmt import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from midstage.adapters.counters import Counters

TOUCH_RETENTION = timedelta(days=35)  # longer than the longest attribution window (30 days)
RUN_RETENTION = timedelta(days=400)
_TRANSACT_ATTEMPTS = 8  # a transaction that conflicted with another on a shared counter shard


# ------------------------------------------------------------------------------ journeys
class JourneyInstances(ddb.Table):
    """A person's instance of each journey, one item each, revised by optimistic writes."""

    last_item_bytes = 0  # size of the last instance written, for write-unit accounting

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, counters: Counters | None = None) -> None:
        super().__init__(table, client)
        # The journeys' counters, written in one transaction with the move they count.
        self.counters = counters

    def get(self, profile_id: str, journey_id: str) -> dict[str, Any] | None:
        item = self._get(keys.journey_instance_key(profile_id, journey_id))
        return _doc(item) if item else None

    def of_person(self, profile_id: str) -> list[dict[str, Any]]:
        """Every journey instance of one person (one query on their partition)."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": ddb.s(keys.profile_pk(profile_id)),
                ":prefix": ddb.s(keys.JOURNEY_PREFIX),
            },
            "ConsistentRead": True,
        }
        while True:
            answer = self.client.query(**kwargs)
            found.extend(_doc(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def save(self, doc: Mapping[str, Any], expected_rev: int | None, counts: Mapping[str, int] | None = None) -> int:
        """Write `doc` (its `rev` is set here) over revision `expected_rev` (None: a first entry),
        with the journey's `counts` for the move in the same transaction: a crash after the write
        cannot lose them, and a retry that finds the revision moved on cannot add them twice.
        Returns the new revision; raises Stale when someone else wrote first."""
        rev = (expected_rev or 0) + 1
        body = {**doc, "rev": rev}
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                **ddb.key(keys.journey_instance_key(str(doc["profile_id"]), str(doc["journey_id"]))),
                "doc": {"B": pack(body)},
                "rev": ddb.n(rev),
                "status": ddb.s(str(doc.get("status", ""))),
            },
            "ConditionExpression": "attribute_not_exists(pk)" if expected_rev is None else "rev = :expected",
        }
        if expected_rev is not None:
            put["ExpressionAttributeValues"] = {":expected": ddb.n(expected_rev)}
        counted = self._counted(str(doc["journey_id"]), str(doc["profile_id"]), counts)
        self._write(put, "Put", counted, f"journey instance {doc['journey_id']}/{doc['profile_id']} moved on")
        self.last_item_bytes = ddb.item_size(put["Item"])
        return rev

    def _counted(self, journey_id: str, profile_id: str, counts: Mapping[str, int] | None) -> dict[str, Any] | None:
        if not counts:
            return None
        if self.counters is None:
            raise ValueError("journey counts given to an instance store made without counters")
        return self.counters.addition("journey", journey_id, "all", profile_id, counts)

    def _write(self, action: dict[str, Any], kind: str, counted: dict[str, Any] | None, stale: str) -> None:
        """One conditional write, alone or in a transaction with the counter addition it carries.
        A transaction that only conflicted with another on the counter shard is tried again."""
        for attempt in range(_TRANSACT_ATTEMPTS):
            try:
                if counted is None:
                    call = self.client.put_item if kind == "Put" else self.client.delete_item
                    call(**action)
                else:
                    actions: list[Any] = [{kind: action}, counted]
                    self.client.transact_write_items(TransactItems=actions)
                return
            except ClientError as error:
                if ddb.condition_failed(error) or ddb.transaction_condition_failed(error):
                    raise Stale(stale) from error
                if counted is None or not ddb.transaction_lost(error) or attempt == _TRANSACT_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * 2**attempt)

    def move(self, doc: Mapping[str, Any], from_profile: str, from_rev: int, replaces_rev: int | None) -> int:
        """Move an instance to the profile `doc` names (a merge's survivor), in one transaction:
        the merged-away profile's item goes only at `from_rev`, and the survivor's is written only
        over `replaces_rev` (None: the survivor has none). Its revision goes on from the higher of
        the two. Raises Stale when either moved on."""
        rev = max(from_rev, replaces_rev or 0) + 1
        journey_id = str(doc["journey_id"])
        condition = "attribute_not_exists(pk)" if replaces_rev is None else "rev = :expected"
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                **ddb.key(keys.journey_instance_key(str(doc["profile_id"]), journey_id)),
                "doc": {"B": pack({**doc, "rev": rev})},
                "rev": ddb.n(rev),
                "status": ddb.s(str(doc.get("status", ""))),
            },
            "ConditionExpression": condition,
        }
        if replaces_rev is not None:
            put["ExpressionAttributeValues"] = {":expected": ddb.n(replaces_rev)}
        delete: dict[str, Any] = {
            "TableName": self.table,
            "Key": ddb.key(keys.journey_instance_key(from_profile, journey_id)),
            "ConditionExpression": "rev = :expected",
            "ExpressionAttributeValues": {":expected": ddb.n(from_rev)},
        }
        try:
            actions: list[dict[str, Any]] = [{"Put": put}, {"Delete": delete}]
            self.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as error:
            if ddb.transaction_lost(error):  # a condition failed, or a concurrent write: read again
                raise Stale(f"journey instance {journey_id}/{from_profile} moved on") from error
            raise
        return rev

    def drop(
        self, profile_id: str, journey_id: str, expected_rev: int, counts: Mapping[str, int] | None = None
    ) -> None:
        """Remove an instance at `expected_rev` (a merged-away profile's, which the survivor's own
        replaces), with `counts` in the same transaction; raises Stale when it moved on."""
        delete: dict[str, Any] = {
            "TableName": self.table,
            "Key": ddb.key(keys.journey_instance_key(profile_id, journey_id)),
            "ConditionExpression": "rev = :expected",
            "ExpressionAttributeValues": {":expected": ddb.n(expected_rev)},
        }
        counted = self._counted(journey_id, profile_id, counts)
        self._write(delete, "Delete", counted, f"journey instance {journey_id}/{profile_id} moved on")


class EntryCaps(ddb.Table):
    """Per-journey daily entry counters: an entry is taken only while the count is under the cap."""

    def take(self, journey_id: str, day: str, cap: int, now: datetime) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.journey_entries_key(journey_id, day)),
                UpdateExpression="ADD entries :one SET expiresAt = :expires",
                ConditionExpression="attribute_not_exists(entries) OR entries < :cap",
                ExpressionAttributeValues={
                    ":one": ddb.n(1),
                    ":cap": ddb.n(cap),
                    ":expires": ddb.n(int((now + timedelta(days=3)).timestamp())),
                },
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def taken(self, journey_id: str, day: str) -> int:
        item = self._get(keys.journey_entries_key(journey_id, day))
        return int(item["entries"]["N"]) if item and "entries" in item else 0


class Touches(ddb.Table):
    """Which campaigns reached (or held out) a person lately, newest last, for attribution."""

    def add(self, profile_id: str, at: datetime, kind: str, origin_id: str, run: str, touch: str) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": ddb.s(keys.profile_pk(profile_id)),
                "sk": ddb.s(keys.touch_sk(iso(at), kind, origin_id, run)),
                "touch": ddb.s(touch),
                "expiresAt": ddb.n(int((at + TOUCH_RETENTION).timestamp())),
            },
        )

    def add_many(self, touches: Sequence[tuple[str, datetime, str, str, str, str]]) -> None:
        requests = [
            {
                "PutRequest": {
                    "Item": {
                        "pk": ddb.s(keys.profile_pk(profile_id)),
                        "sk": ddb.s(keys.touch_sk(iso(at), kind, origin_id, run)),
                        "touch": ddb.s(touch),
                        "expiresAt": ddb.n(int((at + TOUCH_RETENTION).timestamp())),
                    }
                }
            }
            for profile_id, at, kind, origin_id, run, touch in touches
        ]
        _batch_write(self, requests)

    def since(self, profile_id: str, since: datetime) -> list[dict[str, str]]:
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={
                ":pk": ddb.s(keys.profile_pk(profile_id)),
                ":from": ddb.s(f"{keys.TOUCH_PREFIX}{iso(since)}"),
                ":to": ddb.s(f"{keys.TOUCH_PREFIX}~"),
            },
            ConsistentRead=True,
        )
        touches = []
        for item in answer.get("Items", []):
            _, at, kind, origin_id, run = item["sk"]["S"].split("#", 4)
            touches.append({"at": at, "kind": kind, "origin_id": origin_id, "run": run, "touch": item["touch"]["S"]})
        return touches


# ------------------------------------------------------------------------------ campaign runs
class CampaignRuns(ddb.Table):
    """A run (one firing of a campaign's schedule) and its parts (slices of the profile scan).

    A part is held by one worker at a time through a lease; its checkpoint (cursor and counts)
    moves only from the sequence number the worker read, so a page processed twice (a crash, a
    redelivery, a double-fired schedule) is counted once.
    """

    def create_run(self, campaign_id: str, run_id: str, doc: Mapping[str, Any], now: datetime) -> bool:
        """False when the run exists already (the schedule fired twice)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.campaign_run_key(campaign_id, run_id)),
                    "doc": {"B": pack(dict(doc))},
                    "expiresAt": ddb.n(int((now + RUN_RETENTION).timestamp())),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def run(self, campaign_id: str, run_id: str) -> dict[str, Any] | None:
        item = self._get(keys.campaign_run_key(campaign_id, run_id))
        if not item:
            return None
        return {**unpack(item["doc"]["B"]), "parts_done": _count_set(item, "doneParts")}

    def runs(self, campaign_id: str) -> list[dict[str, Any]]:
        return [
            {**unpack(i["doc"]["B"]), "parts_done": _count_set(i, "doneParts")}
            for i in self._items(f"CAMPAIGN#{campaign_id}", "RUN#")
        ]

    def part_finished(self, campaign_id: str, run_id: str, part: int) -> int:
        """Record one part finished (again: no change); returns how many are finished now."""
        answer = self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.campaign_run_key(campaign_id, run_id)),
            UpdateExpression="ADD doneParts :part",
            ExpressionAttributeValues={":part": {"SS": [str(part)]}},
            ReturnValues="ALL_NEW",
        )
        return _count_set(answer["Attributes"], "doneParts")

    def reserve(self, campaign_id: str, run_id: str, wanted: int, limit: int, *, part: int, already: int) -> int:
        """Take up to `wanted` of the run's `limit` messages for the page `part` is on, whose
        checkpointed pages were granted `already`; returns how many were granted.

        Each part's grants are kept beside the run's total, so a page worked again (its worker
        died before the checkpoint) takes back what it reserved the first time, handing back any
        excess, instead of reserving twice and leaving the run short of its limit."""
        held_name = f"reservedByPart{part}"
        for _ in range(20):
            item = self._get(keys.campaign_run_key(campaign_id, run_id)) or {}
            used = int(item["reserved"]["N"]) if "reserved" in item else 0
            held = int(item[held_name]["N"]) if held_name in item else 0
            mine = max(held, already)  # beyond `already`: reserved by a page never checkpointed
            grant = max(0, min(wanted, mine - already + limit - used))
            if already + grant == mine:
                return grant
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=ddb.key(keys.campaign_run_key(campaign_id, run_id)),
                    UpdateExpression="SET reserved = :after, #held = :held",
                    ConditionExpression=(
                        "(attribute_not_exists(reserved) OR reserved = :before)"
                        " AND (attribute_not_exists(#held) OR #held = :held_before)"
                    ),
                    ExpressionAttributeNames={"#held": held_name},
                    ExpressionAttributeValues={
                        ":after": ddb.n(used - mine + already + grant),
                        ":held": ddb.n(already + grant),
                        ":before": ddb.n(used),
                        ":held_before": ddb.n(held),
                    },
                )
            except ClientError as error:
                if ddb.condition_failed(error):
                    continue
                raise
            return grant
        raise Stale(f"could not reserve messages for campaign {campaign_id} run {run_id}")

    def put_part(self, campaign_id: str, run_id: str, part: int, total: int, now: datetime) -> None:
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.campaign_part_key(campaign_id, run_id, part)),
                    "part": ddb.n(part),
                    "total": ddb.n(total),
                    "state": ddb.s("pending"),
                    "seq": ddb.n(0),
                    "counts": {"S": "{}"},
                    "expiresAt": ddb.n(int((now + RUN_RETENTION).timestamp())),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise

    def part(self, campaign_id: str, run_id: str, part: int) -> dict[str, Any] | None:
        item = self._get(keys.campaign_part_key(campaign_id, run_id, part))
        return _part(item) if item else None

    def parts(self, campaign_id: str, run_id: str) -> list[dict[str, Any]]:
        return [_part(i) for i in self._items(f"CAMPAIGN#{campaign_id}", f"PART#{run_id}#")]

    def claim_part(self, campaign_id: str, run_id: str, part: int, holder: str, now: datetime, lease_s: int) -> bool:
        """Hold a pending or paused part, or one whose holder's lease ran out."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.campaign_part_key(campaign_id, run_id, part)),
                UpdateExpression="SET #state = :running, holder = :holder, leaseUntil = :lease",
                ConditionExpression=(
                    "attribute_exists(pk) AND (#state IN (:pending, :paused)"
                    " OR (#state = :running AND (holder = :holder OR leaseUntil < :now)))"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":running": ddb.s("running"),
                    ":pending": ddb.s("pending"),
                    ":paused": ddb.s("paused"),
                    ":holder": ddb.s(holder),
                    ":lease": ddb.n(int(now.timestamp()) + lease_s),
                    ":now": ddb.n(int(now.timestamp())),
                },
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def checkpoint(
        self,
        campaign_id: str,
        run_id: str,
        part: int,
        *,
        seq: int,
        holder: str,
        cursor: Mapping[str, Any] | None,
        counts: Mapping[str, int],
        state: str,
        now: datetime,
        lease_s: int,
    ) -> None:
        """Record one processed page (the new cursor and the part's running counts) over `seq`.
        Raises Stale when the part moved on without us (another holder, or already counted)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.campaign_part_key(campaign_id, run_id, part)),
                UpdateExpression=(
                    "SET #state = :state, seq = :next, #cursor = :cursor, counts = :counts, leaseUntil = :lease,"
                    " updatedAt = :now"
                ),
                ConditionExpression="seq = :seq AND holder = :holder AND #state = :running",
                ExpressionAttributeNames={"#state": "state", "#cursor": "cursor"},
                ExpressionAttributeValues={
                    ":state": ddb.s(state),
                    ":next": ddb.n(seq + 1),
                    ":seq": ddb.n(seq),
                    ":holder": ddb.s(holder),
                    ":running": ddb.s("running"),
                    ":cursor": ddb.s(json.dumps(cursor) if cursor else ""),
                    ":counts": ddb.s(json.dumps(dict(counts), sort_keys=True)),
                    ":lease": ddb.n(int(now.timestamp()) + lease_s),
                    ":now": ddb.s(iso(now)),
                },
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                raise Stale(f"campaign part {campaign_id}/{run_id}/{part} moved on") from error
            raise

    def set_part_state(self, campaign_id: str, run_id: str, part: int, state: str, only_from: Sequence[str]) -> bool:
        """Move parts between states outside a worker (pause, resume, cancel)."""
        values: dict[str, Any] = {":state": ddb.s(state)}
        values.update({f":from{i}": ddb.s(s) for i, s in enumerate(only_from)})
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.campaign_part_key(campaign_id, run_id, part)),
                UpdateExpression="SET #state = :state",
                ConditionExpression=f"#state IN ({', '.join(f':from{i}' for i in range(len(only_from)))})",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def _items(self, pk: str, prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": ddb.s(pk), ":prefix": ddb.s(prefix)},
            "ConsistentRead": True,
        }
        while True:
            answer = self.client.query(**kwargs)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _part(item: Mapping[str, Any]) -> dict[str, Any]:
    cursor = item.get("cursor", {}).get("S", "")
    return {
        "part": int(item["part"]["N"]),
        "total": int(item["total"]["N"]),
        "state": item["state"]["S"],
        "seq": int(item["seq"]["N"]),
        "holder": item.get("holder", {}).get("S"),
        "lease_until": int(item["leaseUntil"]["N"]) if "leaseUntil" in item else None,
        "cursor": json.loads(cursor) if cursor else None,
        "counts": json.loads(item["counts"]["S"]),
    }


# ------------------------------------------------------------------------------ segment refreshes
class RefreshJobs(ddb.Table):
    """A backfill of segment memberships over every profile, in parallel parts, with progress."""

    def create(self, job_id: str, doc: Mapping[str, Any], parts: int, now: datetime) -> bool:
        """False when the job exists already (a schedule that fired twice)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.refresh_job_key(job_id)),
                    "doc": {"B": pack(dict(doc))},
                    "parts": ddb.n(parts),
                    "scanned": ddb.n(0),
                    "changed": ddb.n(0),
                    "createdAt": ddb.s(iso(now)),
                    "expiresAt": ddb.n(int((now + timedelta(days=30)).timestamp())),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def progress(
        self, job_id: str, *, part: int, scanned: int, changed: int, part_done: bool, now: datetime, tagged: int = 0
    ) -> dict[str, Any]:
        """Add a page's figures. Finished parts are a set, so a redelivered part cannot finish the
        job early; `scanned` and `changed` are progress figures and may count a redone page twice
        (`tagged` only ever too high, never too low: a redone page finds its profiles tagged)."""
        values: dict[str, Any] = {
            ":scanned": ddb.n(scanned),
            ":changed": ddb.n(changed),
            ":tagged": ddb.n(tagged),
            ":now": ddb.s(iso(now)),
        }
        update = "ADD scanned :scanned, changed :changed, tagged :tagged SET updatedAt = :now"
        if part_done:
            update = "ADD scanned :scanned, changed :changed, tagged :tagged, doneParts :part SET updatedAt = :now"
            values[":part"] = {"SS": [str(part)]}
        answer = self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.refresh_job_key(job_id)),
            UpdateExpression=update,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _job(answer["Attributes"])

    def get(self, job_id: str) -> dict[str, Any] | None:
        item = self._get(keys.refresh_job_key(job_id))
        return _job(item) if item else None


def _job(item: Mapping[str, Any]) -> dict[str, Any]:
    parts, done = int(item["parts"]["N"]), _count_set(item, "doneParts")
    return {
        **unpack(item["doc"]["B"]),
        "parts": parts,
        "parts_done": done,
        "scanned": int(item["scanned"]["N"]),
        "changed": int(item["changed"]["N"]),
        "tagged": int(item.get("tagged", {"N": "0"})["N"]),
        "state": "done" if done >= parts else "running",
        "created_at": item["createdAt"]["S"],
        "updated_at": item.get("updatedAt", item["createdAt"])["S"],
    }


# ------------------------------------------------------------------------------ helpers
def _count_set(item: Mapping[str, Any], name: str) -> int:
    return len(item.get(name, {}).get("SS", []))


def _doc(item: Mapping[str, Any]) -> dict[str, Any]:
    doc = unpack(item["doc"]["B"])
    doc["rev"] = int(item["rev"]["N"])
    return doc


def _batch_write(table: ddb.Table, requests: Sequence[Mapping[str, Any]]) -> None:
    for start in range(0, len(requests), 25):
        pending: dict[str, Any] = {table.table: list(requests[start : start + 25])}
        for attempt in range(8):
            answer = table.client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.02 * 2**attempt)
        else:
            raise RuntimeError("DynamoDB left items unwritten")
