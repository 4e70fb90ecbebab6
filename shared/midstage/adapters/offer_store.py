"""DataTable access for offers: definitions, the code pool, holdings, refusals and redemptions.

A code is handed out by one transaction that moves the pool's cursor (`next`, conditioned on the
value read), marks the code at that slot issued (conditioned on it being available) and writes
the person's holding (conditioned on the version read): all three or none, so a code goes to one
caller at most, and a person's cause gets one code however often it is asked. A lost race is
`Stale`: the caller reads again and decides again (services/offers.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import dynamo as ddb
from midstage.errors import CauseGroupsFull, Conflict, Stale
from midstage.logic.offers import FIXED_GROUPS, MAX_CAUSE_GROUPS, Holding, Pool, Upload, cause_group, group_counter
from midstage.logic.timefmt import iso
from midstage.models.offers import Offer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_UPLOAD_THREADS = 8
_UPLOAD_LEASE = timedelta(minutes=5)
_UNKNOWN_KEPT = timedelta(days=90)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _low(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


class OfferStore(ddb.Table):
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)
        self.transactions = 0  # how many claim transactions were sent (the benchmark reads it)

    # ---------------------------------------------------------------- definitions
    def create(self, offer: Offer) -> None:
        """Write a new offer and its empty pool; an id ever used (even deleted) is refused."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {**ddb.key(keys.offer_key(offer.id)), "doc": ddb.s(offer.model_dump_json())},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                **ddb.key(keys.offer_pool_key(offer.id)),
                                "issuedCount": ddb.n(0),
                                "poolSize": ddb.n(0),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as error:
            if ddb.transaction_lost(error):
                raise Conflict(f"offer id '{offer.id}' is taken (offer ids are never reused)") from error
            raise

    def replace(self, offer: Offer) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={**ddb.key(keys.offer_key(offer.id)), "doc": ddb.s(offer.model_dump_json())},
            ConditionExpression="attribute_exists(pk)",
        )

    def offer(self, offer_id: str) -> Offer | None:
        """The offer, deleted ones included (`deleted_at` in the document says so)."""
        item = self._get(keys.offer_key(offer_id))
        return Offer.model_validate_json(item["doc"]["S"]) if item else None

    def deleted(self, offer_id: str) -> bool:
        item = self._get(keys.offer_key(offer_id))
        return bool(item and "deletedAt" in item)

    def mark_deleted(self, offer_id: str, now: datetime) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.offer_key(offer_id)),
            UpdateExpression="SET deletedAt = :at",
            ExpressionAttributeValues={":at": ddb.s(iso(now))},
        )

    def offers(self) -> list[tuple[Offer, bool]]:
        """Every offer, with whether it was deleted."""
        found: list[tuple[Offer, bool]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": ddb.s(keys.OFFER_PK)},
        }
        while True:
            answer = self.client.query(**kwargs)
            found.extend((Offer.model_validate_json(i["doc"]["S"]), "deletedAt" in i) for i in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    # ---------------------------------------------------------------- the pool
    def pool(self, offer_id: str) -> Pool:
        item = self._get(keys.offer_pool_key(offer_id))
        return Pool(int(item["issuedCount"]["N"]), int(item["poolSize"]["N"])) if item else Pool()

    def stats(self, offer_id: str) -> dict[str, Decimal]:
        item = self._get(keys.offer_stats_key(offer_id)) or {}
        return {name: Decimal(value["N"]) for name, value in item.items() if "N" in value}

    def upload(self, offer_id: str, codes: Sequence[str], now: datetime) -> Upload:
        """Add codes to the pool after its last slot. Uploads to one offer take turns (a lease on
        the pool item); a code already in any offer is left out and named. An upload cut short
        and sent again completes: its codes claimed for this offer but past the pool's end are
        taken as new."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.offer_pool_key(offer_id)),
                UpdateExpression="SET uploading = :until",
                ConditionExpression="attribute_not_exists(uploading) OR uploading < :now",
                ExpressionAttributeValues={":until": ddb.s(iso(now + _UPLOAD_LEASE)), ":now": ddb.s(iso(now))},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                raise Conflict("another upload to this offer is under way", code="upload_in_progress") from error
            raise
        size = int(answer["Attributes"]["poolSize"]["N"])
        try:
            with ThreadPoolExecutor(max_workers=_UPLOAD_THREADS) as threads:
                owners = list(threads.map(lambda code: self._claim_name(code, offer_id), codes))
            duplicates = [code for code, owner in zip(codes, owners, strict=True) if owner is not None]
            # A code this offer claimed in an upload that never finished is past the pool's end.
            reclaimed = [
                code
                for code, owner in zip(codes, owners, strict=True)
                if owner is not None and owner[0] == offer_id and (owner[1] is None or owner[1] >= size)
            ]
            taken_again = set(reclaimed)
            fresh = [code for code, owner in zip(codes, owners, strict=True) if owner is None or code in taken_again]
            duplicates = [code for code in duplicates if code not in taken_again]
            slots = {code: size + index for index, code in enumerate(fresh)}
            with ThreadPoolExecutor(max_workers=_UPLOAD_THREADS) as threads:
                list(threads.map(lambda code: self._fill_slot(offer_id, code, slots[code]), fresh))
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.offer_pool_key(offer_id)),
                UpdateExpression="SET poolSize = :size REMOVE uploading",
                ExpressionAttributeValues={":size": ddb.n(size + len(fresh))},
            )
        except Exception:
            self.client.update_item(
                TableName=self.table, Key=ddb.key(keys.offer_pool_key(offer_id)), UpdateExpression="REMOVE uploading"
            )
            raise
        return Upload(added=len(fresh), duplicates=duplicates, size=size + len(fresh))

    def _claim_name(self, code: str, offer_id: str) -> tuple[str, int | None] | None:
        """None when the code is now this offer's; else who had it (offer, slot or None)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**ddb.key(keys.coupon_key(code)), "offerId": ddb.s(offer_id)},
                ConditionExpression="attribute_not_exists(pk)",
            )
            return None
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise
        item = self._get(keys.coupon_key(code)) or {}
        slot = int(item["slot"]["N"]) if "slot" in item else None
        return item.get("offerId", {}).get("S", ""), slot

    def _fill_slot(self, offer_id: str, code: str, slot: int) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={**ddb.key(keys.offer_slot_key(offer_id, slot)), "coupon": ddb.s(code), "state": ddb.s("available")},
        )
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.coupon_key(code)),
            UpdateExpression="SET slot = :slot",
            ExpressionAttributeValues={":slot": ddb.n(slot)},
        )

    def slot(self, offer_id: str, slot: int) -> dict[str, Any] | None:
        item = self._get(keys.offer_slot_key(offer_id, slot))
        return _plain(item) if item else None

    def slots(self, offer_id: str, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the offer's codes in slot order, and the cursor of the next page."""
        answer = self._query(keys.offer_slot_pk(offer_id), "", limit=limit, newest_first=False, start=after)
        items = [{**_plain(i), "slot": int(i["sk"]["S"])} for i in answer.get("Items", [])]
        cursor = answer["LastEvaluatedKey"]["sk"]["S"] if "LastEvaluatedKey" in answer else None
        return items, cursor

    def coupon(self, code: str) -> tuple[str, int] | None:
        """The offer and slot of a code, if it is in any pool (and its upload completed)."""
        item = self._get(keys.coupon_key(code))
        if not item or "slot" not in item:
            return None
        return item["offerId"]["S"], int(item["slot"]["N"])

    # ---------------------------------------------------------------- holdings and claims
    def holding(self, profile_id: str, offer_id: str) -> Holding:
        item = self._get(keys.offer_holding_key(profile_id, offer_id))
        if not item:
            return Holding()
        values = _plain(item)
        return Holding(
            current=values.get("current"),
            current_slot=int(values["slot"]) if "slot" in values else None,
            count=int(values.get("count", 0)),
            causes=dict(values.get("causes") or {}),
            version=int(values.get("version", 0)),
            absorbed=tuple(values.get("absorbed") or ()),
        )

    def holdings(self, profile_id: str) -> list[dict[str, Any]]:
        """Every offer the person holds codes of (for a profile's export)."""
        answer = self._query(keys.profile_pk(profile_id), keys.OFFER_HOLDING_PREFIX, limit=1000, newest_first=False)
        return [_plain(item) for item in answer.get("Items", [])]

    def claim(
        self,
        offer_id: str,
        profile_id: str,
        cause: str,
        held: Holding,
        seen: Pool,
        now: datetime,
        *,
        code: str,
        generated: bool,
        group: str | None = None,
    ) -> None:
        """Hand the code at slot `seen.next` to the person for `cause`, all at once or not at all,
        counted for the cause's group (`group`, default logic/offers.cause_group). `Stale` when
        another claim moved the cursor, took the code or changed the holding; CauseGroupsFull when
        the group is a new one and the offer counts MAX_CAUSE_GROUPS already (`causeGroups`, a
        string set on the stats item, holds the named groups counted)."""
        slot = seen.next
        group = group or cause_group(cause)
        issued = {"state": "issued", "holder": profile_id, "cause": cause, "causeGroup": group, "issuedAt": iso(now)}
        if generated:
            code_writes: list[dict[str, Any]] = [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**ddb.key(keys.offer_slot_key(offer_id, slot)), **_low({"coupon": code, **issued})},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**ddb.key(keys.coupon_key(code)), **_low({"offerId": offer_id, "slot": slot})},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        else:
            code_writes = [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": ddb.key(keys.offer_slot_key(offer_id, slot)),
                        "UpdateExpression": (
                            "SET #state = :issued, holder = :holder, #cause = :cause, causeGroup = :group, "
                            "issuedAt = :at"
                        ),
                        "ConditionExpression": "#state = :available AND coupon = :code",
                        "ExpressionAttributeNames": {"#state": "state", "#cause": "cause"},
                        "ExpressionAttributeValues": _low(
                            {
                                ":issued": "issued",
                                ":holder": profile_id,
                                ":cause": cause,
                                ":group": group,
                                ":at": issued["issuedAt"],
                                ":available": "available",
                                ":code": code,
                            }
                        ),
                    }
                }
            ]
        causes = {**(held.causes or {}), cause: code}
        holding = {
            "offerId": offer_id,
            "current": code,
            "slot": slot,
            "count": held.count + 1,
            "causes": causes,
            "version": held.version + 1,
            "at": iso(now),
            "absorbed": list(held.absorbed) or None,
        }
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": ddb.key(keys.offer_pool_key(offer_id)),
                    "UpdateExpression": "SET issuedCount = :after",
                    "ConditionExpression": "issuedCount = :seen",
                    "ExpressionAttributeValues": _low({":after": slot + 1, ":seen": slot}),
                }
            },
            *code_writes,
            self._holding_put(profile_id, offer_id, holding, held.version),
            self._count_issued(offer_id, group),
        ]
        try:
            self._transact(items)
        except Stale as lost:
            reasons = (getattr(lost.__cause__, "response", None) or {}).get("CancellationReasons") or []
            if len(reasons) == len(items) and reasons[-1].get("Code") == "ConditionalCheckFailed":
                raise CauseGroupsFull(f"offer '{offer_id}' counts {MAX_CAUSE_GROUPS} cause groups") from lost
            raise

    def _count_issued(self, offer_id: str, group: str) -> dict[str, Any]:
        """The per-cause figure, counted with the claim (exactly once per code); a named group
        only while the offer counts fewer than MAX_CAUSE_GROUPS, or it is one of them."""
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": ddb.key(keys.offer_stats_key(offer_id)),
            "UpdateExpression": "ADD #issued :one",
            "ExpressionAttributeNames": {"#issued": group_counter(group, "issued")},
            "ExpressionAttributeValues": _low({":one": 1}),
        }
        if group not in FIXED_GROUPS:
            update["UpdateExpression"] += ", causeGroups :group"
            update["ConditionExpression"] = (
                "attribute_not_exists(causeGroups) OR contains(causeGroups, :name) OR size(causeGroups) < :cap"
            )
            update["ExpressionAttributeValues"].update(
                {":group": {"SS": [group]}, ":name": ddb.s(group), ":cap": ddb.n(MAX_CAUSE_GROUPS)}
            )
        return {"Update": update}

    def add_cause(self, profile_id: str, offer_id: str, cause: str, held: Holding, now: datetime) -> None:
        """Answer another cause with the code the person holds (conditioned on the version read)."""
        holding = {
            "offerId": offer_id,
            "current": held.current,
            "slot": held.current_slot,
            "count": held.count,
            "causes": {**(held.causes or {}), cause: held.current},
            "version": held.version + 1,
            "at": iso(now),
            "absorbed": list(held.absorbed) or None,
        }
        self._transact([self._holding_put(profile_id, offer_id, holding, held.version)])

    def _holding_put(self, profile_id: str, offer_id: str, holding: dict[str, Any], version: int) -> dict[str, Any]:
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {**ddb.key(keys.offer_holding_key(profile_id, offer_id)), **_low(holding)},
        }
        if version:
            put["ConditionExpression"] = "version = :version"
            put["ExpressionAttributeValues"] = {":version": ddb.n(version)}
        else:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        return {"Put": put}

    def _transact(self, items: list[dict[str, Any]]) -> None:
        self.transactions += 1
        try:
            self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            if ddb.transaction_lost(error) or ddb.condition_failed(error):
                raise Stale("another claim got there first") from error
            raise

    def record_refusal(self, profile_id: str, offer_id: str, cause: str, reason: str, now: datetime) -> bool:
        """Keep why the person's cause got no code; counted once per (person, cause, reason)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.offer_refusal_key(profile_id, offer_id, cause)),
                    **_low({"reason": reason, "at": iso(now)}),
                },
                ConditionExpression="attribute_not_exists(pk) OR #reason <> :reason",
                ExpressionAttributeNames={"#reason": "reason"},
                ExpressionAttributeValues={":reason": ddb.s(reason)},
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        self._add_stats(offer_id, {f"refused_{reason}": 1})
        return True

    def refusal(self, profile_id: str, offer_id: str, cause: str) -> dict[str, Any] | None:
        item = self._get(keys.offer_refusal_key(profile_id, offer_id, cause))
        return _plain(item) if item else None

    def _add_stats(self, offer_id: str, counts: Mapping[str, int | Decimal]) -> None:
        wanted = {name: amount for name, amount in counts.items() if amount}
        if not wanted:
            return
        self.client.update_item(
            TableName=self.table,
            Key=ddb.key(keys.offer_stats_key(offer_id)),
            UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(wanted))),
            ExpressionAttributeNames={f"#c{i}": name for i, name in enumerate(wanted)},
            ExpressionAttributeValues=_low({f":c{i}": amount for i, amount in enumerate(wanted.values())}),
        )

    # ---------------------------------------------------------------- redemption
    def use(self, offer_id: str, event_id: str) -> dict[str, Any] | None:
        item = self._get(keys.offer_use_key(offer_id, event_id))
        return _plain(item) if item else None

    def redeem(
        self,
        offer_id: str,
        slot: int,
        seen_state: str,
        use: Mapping[str, Any],
        counts: Mapping[str, int | Decimal],
        *,
        first: bool,
    ) -> None:
        """Record one redemption event on a code: the event's record (once per event id), the
        code's state (conditioned on the state read) and the offer's counters, all or none."""
        at, redeemer = use["at"], use["profileId"]
        revenue, discount = Decimal(str(use.get("revenue", 0))), Decimal(str(use.get("discount", 0)))
        code_update = "SET #state = :redeemed ADD revenue :revenue, discount :discount, #uses :one"
        values: dict[str, Any] = {
            ":redeemed": "redeemed",
            ":seen": seen_state,
            ":revenue": revenue,
            ":discount": discount,
            ":one": 1,
        }
        if first:
            code_update = (
                "SET #state = :redeemed, redeemedAt = :at, redeemedBy = :by, #outcome = :outcome "
                "ADD revenue :revenue, discount :discount, #uses :one"
            )
            values.update({":at": at, ":by": redeemer, ":outcome": use["outcome"]})
        wanted = {name: amount for name, amount in counts.items() if amount}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {**ddb.key(keys.offer_use_key(offer_id, use["eventId"])), **_low(dict(use))},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self.table,
                    "Key": ddb.key(keys.offer_slot_key(offer_id, slot)),
                    "UpdateExpression": code_update,
                    "ConditionExpression": "#state = :seen",
                    "ExpressionAttributeNames": {
                        "#state": "state",
                        "#uses": "uses",
                        **({"#outcome": "outcome"} if first else {}),
                    },
                    "ExpressionAttributeValues": _low(values),
                }
            },
        ]
        if wanted:
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": ddb.key(keys.offer_stats_key(offer_id)),
                        "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(wanted))),
                        "ExpressionAttributeNames": {f"#c{i}": name for i, name in enumerate(wanted)},
                        "ExpressionAttributeValues": _low({f":c{i}": v for i, v in enumerate(wanted.values())}),
                    }
                }
            )
        self._transact(items)

    def record_unknown(self, code: str, profile_id: str, event_id: str, event: str, now: datetime) -> bool:
        """A coupon used that is in no pool, kept for 90 days; False when already recorded."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **ddb.key(keys.unknown_coupon_key(event_id)),
                    **_low({"coupon": code, "profileId": profile_id, "event": event, "at": iso(now)}),
                    "expiresAt": ddb.n(int((now + _UNKNOWN_KEPT).timestamp())),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def unknown_coupons(self, limit: int) -> list[dict[str, Any]]:
        answer = self._query(keys.UNKNOWN_COUPON_PK, "", limit=limit, newest_first=False)
        return [_plain(item) for item in answer.get("Items", [])]
