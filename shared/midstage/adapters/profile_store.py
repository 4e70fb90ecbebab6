"""DataTable access for profiles, identities, dedupe markers, timeline, merges and quarantine.

The only module that knows how those items look in DynamoDB. Writes report their cost in
write units, computed from item sizes with DynamoDB's sizing rules, so benchmarks and metrics
can show write units per event on any endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.adapters.documents import pack, unpack
from midstage.errors import InvalidInput
from midstage.logic.identity import Identifier
from midstage.models.profile import Profile, WritePlan

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_BATCH_WRITE = 25
_READY_RECHECK_S = 300.0
INDEX_READY_MARGIN = timedelta(hours=1)


class ConcurrentWrite(Exception):
    """Another writer changed an item this write was conditioned on; re-read and retry."""


@dataclass
class Usage:
    write_units: float = 0.0
    writes: int = 0

    def add(self, units: float) -> None:
        self.write_units += units
        self.writes += 1


class ProfileStore(ddb.Table):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)
        self.usage = Usage()
        self.tagged = 0  # profiles found outside the index of live profiles, and put in (see scan_page)
        self._ready_since: datetime | None = None
        self._ready_asked_at = float("-inf")

    # ------------------------------------------------------------------ reads
    def identity_owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        items = self._batch_get([keys.identity_key(t, v) for t, v in identifiers])
        owners: dict[Identifier, str] = {}
        for item in items:
            _, id_type, value = item["pk"]["S"].split("#", 2)
            owners[(id_type, value)] = item["profileId"]["S"]
        return owners

    def profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        items = self._batch_get([keys.profile_key(p) for p in profile_ids])
        return {p.id: p for p in map(_profile_from_item, items)}

    def live_profiles(self, profile_ids: Iterable[str]) -> tuple[dict[str, Profile], dict[str, str]]:
        """Profiles by id with tombstones followed to the profile they merged into.

        Returns the live profiles and, for every id asked for, the live id it resolves to.
        """
        resolved: dict[str, str] = {}
        live: dict[str, Profile] = {}
        asked = set(profile_ids)
        following = {p: p for p in asked}  # original id -> id being looked at
        for _ in range(16):
            if not following:
                break
            loaded = self.profiles(set(following.values()))
            next_round: dict[str, str] = {}
            for original, current in following.items():
                profile = loaded.get(current)
                if profile is None:
                    continue  # created by a write that did not land; the identity is stale
                if profile.merged_into:
                    next_round[original] = profile.merged_into
                else:
                    live[profile.id] = profile
                    resolved[original] = profile.id
            following = next_round
        return live, resolved

    def profile(self, profile_id: str) -> Profile | None:
        live, _ = self.live_profiles([profile_id])
        return next(iter(live.values()), None)

    def merged_from(self, profile_id: str) -> list[str]:
        """The profiles merged into this one (none when it is not found)."""
        found = self.profile(profile_id)
        return list(found.merged_from) if found is not None else []

    def existing_markers(self, marker_ids: Iterable[str]) -> dict[str, int]:
        """For each `source|messageId` that has a dedupe marker, when the marker expires.

        Expired markers may linger until DynamoDB's TTL removes them; callers decide whether an
        expired marker still counts (it does for confirming a write, not for deduplication).
        """
        wanted = [(m, *m.split("|", 1)) for m in marker_ids]
        items = self._batch_get([keys.marker_key(s, mid) for _, s, mid in wanted], consistent=True)
        expiry = {i["pk"]["S"]: int(i["expiresAt"]["N"]) for i in items}
        found: dict[str, int] = {}
        for marker, source, message_id in wanted:
            pk = keys.marker_key(source, message_id)["pk"]
            if pk in expiry:
                found[marker] = expiry[pk]
        return found

    # ------------------------------------------------------------------ the profile write
    def save(self, plan: WritePlan) -> None:
        """Write a profile change atomically; raise ConcurrentWrite if anything moved underneath."""
        survivor_item = _profile_item(plan.survivor)
        condition = _version_condition(plan.survivor)
        if not (plan.tombstones or plan.new_identities or plan.merge_records):
            try:
                self.client.put_item(TableName=self.table, Item=survivor_item, **condition)
            except ClientError as error:
                if ddb.condition_failed(error):
                    raise ConcurrentWrite(plan.survivor.id) from error
                raise
            self.usage.add(ddb.write_units(survivor_item))
            return
        actions: list[dict[str, Any]] = [{"Put": {"TableName": self.table, "Item": survivor_item, **condition}}]
        units = ddb.write_units(survivor_item, transactional=True)
        for loser in plan.tombstones:
            item = _profile_item(loser)
            actions.append({"Put": {"TableName": self.table, "Item": item, **_version_condition(loser)}})
            units += ddb.write_units(item, transactional=True)
        for id_type, value in plan.new_identities:
            item = {
                **ddb.key(keys.identity_key(id_type, value)),
                "profileId": {"S": plan.survivor.id},
                "createdAt": {"S": plan.survivor.updated_at},
            }
            actions.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
            units += ddb.write_units(item, transactional=True)
        for record in plan.merge_records:
            item = _merge_item(record)
            actions.append({"Put": {"TableName": self.table, "Item": item}})
            units += ddb.write_units(item, transactional=True)
        try:
            self.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]
        except ClientError as error:
            if ddb.transaction_lost(error):
                raise ConcurrentWrite(plan.survivor.id) from error
            raise
        self.usage.add(units)

    # ------------------------------------------------------------------ after the write
    def repoint_identities(self, identifiers: Iterable[Identifier], old_id: str, new_id: str) -> None:
        """Point a merged profile's identifiers at the survivor (tombstones make this optional)."""
        for id_type, value in identifiers:
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=ddb.key(keys.identity_key(id_type, value)),
                    UpdateExpression="SET profileId = :new",
                    ConditionExpression="profileId = :old",
                    ExpressionAttributeValues={":new": {"S": new_id}, ":old": {"S": old_id}},
                )
                self.usage.add(1)
            except ClientError as error:
                if not ddb.condition_failed(error):
                    raise

    def put_markers(self, marker_ids: Iterable[str], profile_id: str, expires_at: int) -> None:
        self.put_marker_owners(dict.fromkeys(marker_ids, profile_id), expires_at)

    def put_marker_owners(self, owners: Mapping[str, str], expires_at: int) -> None:
        """Markers of several people's writes at once (marker id -> profile id): the sweep's."""
        items = []
        for marker, profile_id in owners.items():
            source, message_id = marker.split("|", 1)
            items.append(
                {
                    **ddb.key(keys.marker_key(source, message_id)),
                    "profileId": {"S": profile_id},
                    "expiresAt": {"N": str(expires_at)},
                }
            )
        self._batch_write(items)

    def put_timeline_page(self, profile_id: str, events: Sequence[dict[str, Any]], expires_at: int) -> None:
        if not events:
            return
        ordered = sorted(events, key=lambda e: (e["timestamp"], e["messageId"]))
        # Keyed by its content, so a redelivered write lands on the same page.
        page_id = hashlib.sha256(
            "|".join(f"{e.get('sourceId')}|{e['messageId']}" for e in ordered).encode()
        ).hexdigest()[:16]
        item = {
            "pk": {"S": keys.profile_pk(profile_id)},
            "sk": {"S": keys.timeline_sk(ordered[-1]["timestamp"], page_id)},
            "minTs": {"S": ordered[0]["timestamp"]},
            "count": {"N": str(len(ordered))},
            "doc": {"B": pack(ordered)},
            "expiresAt": {"N": str(expires_at)},
        }
        self.client.put_item(TableName=self.table, Item=item)
        self.usage.add(ddb.write_units(item))

    def put_merge_record(self, record: dict[str, Any]) -> None:
        item = _merge_item(record)
        self.client.put_item(TableName=self.table, Item=item)
        self.usage.add(ddb.write_units(item))

    def _batch_write(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), _BATCH_WRITE):
            chunk = items[start : start + _BATCH_WRITE]
            request: dict[str, Any] = {self.table: [{"PutRequest": {"Item": i}} for i in chunk]}
            for attempt in range(8):
                answer = self.client.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(0.02 * 2**attempt)
            else:
                raise RuntimeError(f"DynamoDB kept {len(request.get(self.table, []))} items unprocessed")
            for item in chunk:
                self.usage.add(ddb.write_units(item))

    # ------------------------------------------------------------------ admin reads
    def merges(self, profile_ids: Iterable[str]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for profile_id in profile_ids:
            for item in self._query_prefix(keys.profile_pk(profile_id), keys.MERGE_PREFIX):
                records.append(unpack(item["doc"]["B"]))
        return sorted(records, key=lambda r: r["at"], reverse=True)

    def timeline(
        self, profile_ids: Sequence[str], *, limit: int, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest events first across a profile and the profiles merged into it.

        `before` is the cursor of the last event already seen ("<timestamp>|<messageId>").
        """
        collected: list[dict[str, Any]] = []
        for profile_id in profile_ids:
            for item in self._query_prefix(keys.profile_pk(profile_id), keys.TIMELINE_PREFIX, newest_first=True):
                for event in unpack(item["doc"]["B"]):
                    cursor = f"{event['timestamp']}|{event['messageId']}"
                    if before is None or cursor < before:
                        collected.append(event)
        collected.sort(key=lambda e: (e["timestamp"], e["messageId"]), reverse=True)
        unique: list[dict[str, Any]] = []
        seen: set[str] = set()
        for event in collected:
            identity = f"{event.get('sourceId')}|{event['messageId']}"
            if identity not in seen:
                seen.add(identity)
                unique.append(event)
        page = unique[:limit]
        next_cursor = f"{page[-1]['timestamp']}|{page[-1]['messageId']}" if len(unique) > limit else None
        return page, next_cursor

    def _query_prefix(self, pk: str, prefix: str, newest_first: bool = False) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ScanIndexForward": not newest_first,
        }
        while True:
            answer = self.client.query(**kwargs)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def scan_profiles(self, segment: int, total_segments: int) -> Iterator[Profile]:
        cursor: dict[str, Any] | None = None
        while True:
            profiles, cursor = self.scan_page(segment, total_segments, cursor)
            yield from profiles
            if cursor is None:
                return

    def scan_page(
        self,
        segment: int,
        total_segments: int,
        cursor: dict[str, Any] | None,
        limit: int = 500,
        *,
        started: datetime | None = None,
    ) -> tuple[list[Profile], dict[str, Any] | None]:
        """One page of a parallel scan's slice of live profiles, and where the next page starts
        (None at the end). `limit` counts the items read: profiles on the index, every item on the table.

        Two ways to read, one per scan: the sparse index of live profiles (keys only, then the
        profiles by key: only profiles are read) once it is complete, else the whole table, which
        also tags each profile written before the index existed. A scan keeps the way it began with
        (the cursor tells); its parts begin with the same one when they pass the time their job
        `started` (readiness is dated an hour ahead of when it was found, so that holds)."""
        if cursor is not None:
            by_index = keys.LIVE_ATTRIBUTE in cursor
        else:
            ready = self.index_ready_since()
            by_index = ready is not None and (started is None or ready <= started)
        return (
            self._index_page(segment, total_segments, cursor, limit)
            if by_index
            else self._table_page(segment, total_segments, cursor, limit)
        )

    def _index_page(
        self, segment: int, total_segments: int, cursor: dict[str, Any] | None, limit: int
    ) -> tuple[list[Profile], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": keys.LIVE_PROFILES_INDEX,
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        answer = self.client.scan(**kwargs)
        wanted = [{"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in answer.get("Items", [])]
        # Eventually consistent, as the index itself: half the read units of a strong read.
        found = {item["pk"]["S"]: item for item in self._batch_get(wanted, consistent=False)}
        profiles = [_profile_from_item(found[k["pk"]]) for k in wanted if k["pk"] in found]
        return [p for p in profiles if not p.merged_into], answer.get("LastEvaluatedKey")

    def _table_page(
        self, segment: int, total_segments: int, cursor: dict[str, Any] | None, limit: int
    ) -> tuple[list[Profile], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": limit,
            "FilterExpression": "sk = :sk",
            "ExpressionAttributeValues": {":sk": {"S": keys.PROFILE_SK}},
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        answer = self.client.scan(**kwargs)
        profiles: list[Profile] = []
        for item in answer.get("Items", []):
            profile = _profile_from_item(item)
            if profile.merged_into:
                continue
            if keys.LIVE_ATTRIBUTE not in item:
                self._tag_live(profile)
            profiles.append(profile)
        return profiles, answer.get("LastEvaluatedKey")

    def _tag_live(self, profile: Profile) -> None:
        """Put a profile written before the index existed into it, unless it changed meanwhile
        (the newer write carries the attribute itself). Counted either way: a sweep that met one
        has not shown that every profile was already in the index."""
        self.tagged += 1
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.profile_key(profile.id)),
                UpdateExpression="SET #live = :id",
                ConditionExpression="version = :v",
                ExpressionAttributeNames={"#live": keys.LIVE_ATTRIBUTE},
                ExpressionAttributeValues={":id": {"S": profile.id}, ":v": {"N": str(profile.version)}},
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise

    def index_ready_since(self) -> datetime | None:
        """When scans may read the index: None until every live profile is in it (a fresh
        deployment's first sweep, or an upgraded one's second, finds none to tag). Cached once
        known; asked again every few minutes until then."""
        if self._ready_since is None and time.monotonic() >= self._ready_asked_at + _READY_RECHECK_S:
            self._ready_asked_at = time.monotonic()
            item = self._get(keys.PROFILE_INDEX_READY_KEY)
            if item is not None:
                self._ready_since = datetime.fromisoformat(item["readySince"]["S"])
        return self._ready_since

    def mark_index_ready(self, found_at: datetime) -> datetime:
        """Record that every live profile is in the index, from an hour after `found_at`: a scan
        part that began before the record was written cannot belong to a job started after that
        time. The first record stands; answers the time in force."""
        since = found_at + INDEX_READY_MARGIN
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**ddb.key(keys.PROFILE_INDEX_READY_KEY), "readySince": {"S": since.isoformat()}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
            self._ready_asked_at = float("-inf")
            return self.index_ready_since() or since
        self._ready_since = since
        return since

    def put_profile_if_unchanged(self, profile: Profile) -> bool:
        """A sweep's write: lose quietly to any concurrent event write (it recomputes anyway)."""
        try:
            self.save(WritePlan(survivor=profile))
        except ConcurrentWrite:
            return False
        return True

    # ------------------------------------------------------------------ intake side
    def quarantine(self, entries: Sequence[dict[str, Any]], expires_at: int) -> None:
        items = [
            {
                "pk": {"S": keys.quarantine_pk(e["source_id"])},
                "sk": {"S": keys.quarantine_sk(e["received_at"], e["id"])},
                "doc": {"B": pack(e)},
                "expiresAt": {"N": str(expires_at)},
            }
            for e in entries
        ]
        self._batch_write(items)

    def quarantined(self, source_id: str, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.quarantine_pk(source_id)}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, keys.quarantine_pk(source_id))
        answer = self.client.query(**kwargs)
        entries = [unpack(i["doc"]["B"]) for i in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        next_cursor = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None
        return entries, next_cursor

    def take_rate(self, source_id: str, epoch_second: int, events: int, limit: int) -> bool:
        """Count `events` against a source's per-second budget; False when it would overflow."""
        if events > limit:
            return False
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.rate_key(source_id, epoch_second)),
                UpdateExpression="ADD used :n SET expiresAt = :ttl",
                ConditionExpression="attribute_not_exists(used) OR used <= :room",
                ExpressionAttributeValues={
                    ":n": {"N": str(events)},
                    ":room": {"N": str(limit - events)},
                    ":ttl": {"N": str(epoch_second + 120)},
                },
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True


def _profile_item(profile: Profile) -> dict[str, Any]:
    """A live profile carries the index attribute; a merged-away one (a tombstone) leaves the index."""
    doc = profile.to_doc()
    doc["version"] = profile.version + 1
    item = {
        **ddb.key(keys.profile_key(profile.id)),
        "version": {"N": str(profile.version + 1)},
        "doc": {"B": pack(doc)},
    }
    if not profile.merged_into:
        item[keys.LIVE_ATTRIBUTE] = {"S": profile.id}
    return item


def _version_condition(profile: Profile) -> dict[str, Any]:
    if profile.version == 0:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "version = :v",
        "ExpressionAttributeValues": {":v": {"N": str(profile.version)}},
    }


def _profile_from_item(item: dict[str, Any]) -> Profile:
    doc = unpack(item["doc"]["B"])
    profile = Profile.from_doc(doc)
    profile.version = int(item["version"]["N"])
    return profile


def _merge_item(record: dict[str, Any]) -> dict[str, Any]:
    # A refusal is keyed by its content alone, so seeing it again rewrites one record.
    sort_key = (
        keys.merge_sk("refused", record["id"])
        if record["kind"] == "refused"
        else keys.merge_sk(record["at"], record["id"])
    )
    return {
        "pk": {"S": keys.profile_pk(record["profile_id"])},
        "sk": {"S": sort_key},
        "doc": {"B": pack(record)},
    }


def _decode_cursor(cursor: str, pk: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        valid = isinstance(key, dict) and key.get("pk") == {"S": pk} and isinstance(key.get("sk", {}).get("S"), str)
    except (ValueError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise InvalidInput("the cursor is not one this listing returned", code="invalid_cursor")
    return key
