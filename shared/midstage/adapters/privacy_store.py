"""Privacy requests' storage: the requests themselves (DataTable), the person-wide suppressions
they make (kept as salted hashes of identifiers, never the identifiers), the salt (a stack
secret in ConfigTable, made on first use and never rotated: a new salt would orphan every hash)
and the export bundles (S3, handed out as presigned URLs)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from midstage import keys
from midstage.adapters import aws
from midstage.adapters import dynamo as ddb
from midstage.adapters.documents import pack, unpack
from midstage.errors import Conflict, InvalidInput
from midstage.logic import keyring
from midstage.logic.identity import Identifier
from midstage.logic.privacy import identifier_hash
from midstage.logic.timefmt import iso

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

SALT_SECRET = "privacy"  # noqa: S105 -- the name of the secret, not a secret
_BATCH_WRITE = 25
_SETTLE_THREADS = 8
# A lift's marker outlives the oldest request that may still be on the queue (its retention, 14 days).
LIFT_MARKER_DAYS = 30
# A request's subjects, compressed, within its item (DynamoDB's 400 KB), with room for its report.
MAX_SUBJECT_BYTES = 300 * 1024


# --------------------------------------------------------------------------- the salt
class Salt:
    """The deployment's privacy salt, read once per container and kept (it never changes). With
    `create`, the first reader makes it (a conditional put: every function converges on one);
    without, a missing salt means no request was ever made, so nothing is suppressed, and it is
    looked for again at the next use (the privacy worker: a request's POST made it already)."""

    def __init__(self, config_table: str, client: DynamoDBClient | None = None, *, create: bool = False) -> None:
        self.table = ddb.Table(config_table, client)
        self.create = create
        self._value: bytes | None = None

    def get(self) -> bytes | None:
        if self._value is None:
            self._value = self._read()
        if self._value is None and self.create:
            self._make()
            self._value = self._read()
        return self._value

    def _read(self) -> bytes | None:
        item = self.table.client.get_item(
            TableName=self.table.table, Key=ddb.key(keys.secret_key(SALT_SECRET)), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return keyring.from_document(SALT_SECRET, unpack(item["doc"]["B"])).keys[0].secret

    def _make(self) -> None:
        import secrets

        try:
            self.table.client.put_item(
                TableName=self.table.table,
                Item={**ddb.key(keys.secret_key(SALT_SECRET)), "doc": {"B": pack({"value": secrets.token_hex(32)})}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise


# --------------------------------------------------------------------------- suppressions
class PersonSuppressions(ddb.Table):
    """Who privacy requests suppressed, by salted identifier hash -> the request that did it."""

    def __init__(self, table: str, salt: Salt, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)
        self.salt = salt

    def hashes(self, identifiers: Iterable[Identifier]) -> dict[str, Identifier]:
        salt = self.salt.get()
        if salt is None:
            return {}
        return {identifier_hash(salt, ident): ident for ident in identifiers}

    def matching(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        """Those of `identifiers` a request suppressed (and no later one lifted), each with the
        request's id. Read strongly consistent: a suppression answered a moment ago holds for the
        very next send."""
        hashed = self.hashes(identifiers)
        if not hashed:
            return {}
        items = self._batch_get([keys.privacy_suppression_key(h) for h in hashed], consistent=True)
        return {
            hashed[item["pk"]["S"].split("#", 1)[1]]: item["regulateId"]["S"] for item in items if "lifted" not in item
        }

    def suppress(self, identifiers: Iterable[Identifier], regulate_id: str, now: datetime) -> int:
        """Suppress at once, unconditionally: for the request being made, the newest there is."""
        hashed = self.hashes(identifiers)
        items = [_suppression_item(h, regulate_id, now) for h in sorted(hashed)]
        self._write([{"PutRequest": {"Item": item}} for item in items])
        return len(items)

    def settle(self, identifiers: Iterable[Identifier], regulate_id: str, now: datetime, *, lift: bool) -> int:
        """Suppress or lift, each identifier unless a later request already decided it: the queue
        does not keep order, so an UNSUPPRESS worked before an older SUPPRESS still wins. A lift
        leaves a marker (the hash and the request, no identifier) for as long as an older request
        may still be waiting on the queue. Returns how many identifiers this request decided."""
        hashed = sorted(self.hashes(identifiers))
        expires = int(now.timestamp()) + LIFT_MARKER_DAYS * 86_400

        def put(digest: str) -> bool:
            item = _suppression_item(digest, regulate_id, now)
            if lift:
                item.update({"lifted": ddb.s(iso(now)), "expiresAt": ddb.n(expires)})
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR regulateId <= :id",
                    ExpressionAttributeValues={":id": ddb.s(regulate_id)},
                )
            except ClientError as error:
                if not ddb.condition_failed(error):
                    raise
                return False
            return True

        if not hashed:
            return 0
        with ThreadPoolExecutor(max_workers=min(_SETTLE_THREADS, len(hashed))) as pool:
            return sum(pool.map(put, hashed))

    def count_dropped(self, regulate_id: str, events: int) -> None:
        """Events dropped for identifiers the request suppressed: counted on the request, not kept."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.regulation_key(regulate_id)),
                UpdateExpression="ADD droppedEvents :n",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":n": ddb.n(events)},
            )
        except ClientError as error:
            if not ddb.condition_failed(error):
                raise

    def _write(self, requests: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: dict[str, Any] = {self.table: list(requests[start : start + _BATCH_WRITE])}
            for attempt in range(8):
                answer = self.client.batch_write_item(RequestItems=pending)
                pending = dict(answer.get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(0.02 * 2**attempt)
            else:
                raise RuntimeError("DynamoDB left suppression writes unprocessed")


def _suppression_item(digest: str, regulate_id: str, now: datetime) -> dict[str, Any]:
    return {
        **ddb.key(keys.privacy_suppression_key(digest)),
        "regulateId": ddb.s(regulate_id),
        "at": ddb.s(iso(now)),
    }


# --------------------------------------------------------------------------- the requests
class Regulations(ddb.Table):
    def create(self, record: Mapping[str, Any], subjects_digest: str, replay_after: str) -> tuple[str, bool]:
        """Store a new request, unless the latest request on the same subjects is of the same type
        and jurisdiction and no older than `replay_after`: then that one's id, not created."""
        regulate_id = str(record["regulateId"])
        pointer = {
            **ddb.key(keys.regulation_subjects_key(subjects_digest)),
            "regulateId": ddb.s(regulate_id),
            "kind": ddb.s(f"{record['regulationType']}|{record['jurisdiction']}"),
            "at": ddb.s(str(record["receivedAt"])),
        }
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": pointer,
                            "ConditionExpression": "attribute_not_exists(pk) OR kind <> :kind OR #at < :after",
                            "ExpressionAttributeNames": {"#at": "at"},
                            "ExpressionAttributeValues": {":kind": pointer["kind"], ":after": ddb.s(replay_after)},
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": _item(record)}},
                ]
            )
            return regulate_id, True
        except ClientError as error:
            if ddb.transaction_lost(error) and not ddb.transaction_condition_failed(error):
                # Another request on the same subjects was being stored at that instant.
                raise Conflict("another request on these subjects is being stored; send it again") from error
            if not ddb.transaction_condition_failed(error):
                raise
        found = self._get(keys.regulation_subjects_key(subjects_digest))
        if found is None:  # the pointer went between the write and this read: cannot happen today
            raise Conflict("the request on these subjects changed while it was being stored; send it again")
        return found["regulateId"]["S"], False

    def get(self, regulate_id: str) -> dict[str, Any] | None:
        item = self._get(keys.regulation_key(regulate_id))
        return _record(item) if item else None

    def claim(self, regulate_id: str, token: str, now: datetime, until: datetime) -> bool:
        """Take the request for one worker: only when nobody has it (INITIALIZED) or its holder's
        lease ran out (it stopped without ending or letting go of it). False: another worker has it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=ddb.key(keys.regulation_key(regulate_id)),
                UpdateExpression="SET #status = :running, #claim = :token, #until = :until",
                ConditionExpression=(
                    "#status = :initialized OR (#status = :running AND "
                    "(attribute_not_exists(#until) OR #until <= :now))"
                ),
                ExpressionAttributeNames={"#status": "status", "#claim": "claim", "#until": "claimUntil"},
                ExpressionAttributeValues={
                    ":running": ddb.s("RUNNING"),
                    ":initialized": ddb.s("INITIALIZED"),
                    ":token": ddb.s(token),
                    ":until": ddb.s(iso(until)),
                    ":now": ddb.s(iso(now)),
                },
            )
        except ClientError as error:
            if ddb.condition_failed(error):
                return False
            raise
        return True

    def save(
        self, record: Mapping[str, Any], *, claim: str | None = None, release: bool = False, forget: bool = False
    ) -> bool:
        """The request's progress (only its worker writes it after creation); the dropped-event
        count is left as it is. With `claim`, only while that claim holds (False when another
        worker took the request over); `release` lets the claim go (the request ended, or a
        failure hands it to the queue's next try); `forget` drops the subjects (an erasure done:
        the request no longer holds who it was about)."""
        removed = [name for name, wanted in (("#claim, #until", release), ("subjects", forget)) if wanted]
        update = "SET #doc = :doc, #status = :status" + (f" REMOVE {', '.join(removed)}" if removed else "")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": ddb.key(keys.regulation_key(str(record["regulateId"]))),
            "UpdateExpression": update,
            "ExpressionAttributeNames": {"#doc": "doc", "#status": "status"},
            "ExpressionAttributeValues": {":doc": ddb.s(_doc(record)), ":status": ddb.s(str(record["status"]))},
        }
        if release:
            kwargs["ExpressionAttributeNames"].update({"#claim": "claim", "#until": "claimUntil"})
        if claim is not None:
            kwargs["ExpressionAttributeNames"]["#claim"] = "claim"
            kwargs["ConditionExpression"] = "#claim = :claim"
            kwargs["ExpressionAttributeValues"][":claim"] = ddb.s(claim)
        try:
            self.client.update_item(**kwargs)
        except ClientError as error:
            if claim is not None and ddb.condition_failed(error):
                return False
            raise
        return True

    def not_ended(self) -> list[dict[str, Any]]:
        """Every request still INITIALIZED or RUNNING (one partition, read through, the ended
        ones filtered out by DynamoDB: they still cost their read units)."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "#status IN (:initialized, :running)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":pk": ddb.s(keys.REGULATIONS_PK),
                ":initialized": ddb.s("INITIALIZED"),
                ":running": ddb.s("RUNNING"),
            },
        }
        while True:
            answer = self.client.query(**kwargs)
            found.extend(_record(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def page(self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        answer = self._query(keys.REGULATIONS_PK, "", limit=limit, newest_first=True, start=cursor)
        records = [_record(item) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return records, (last["sk"]["S"] if last else None)


def _doc(record: Mapping[str, Any]) -> str:
    kept_apart = ("status", "droppedEvents", "subjects", "claim", "claimUntil")
    return json.dumps({k: v for k, v in record.items() if k not in kept_apart}, sort_keys=True)


def _item(record: Mapping[str, Any]) -> dict[str, Any]:
    subjects = pack(record["subjects"])
    if len(subjects) > MAX_SUBJECT_BYTES:
        raise InvalidInput(
            f"the subjects take {len(subjects):,} bytes once compressed, over the {MAX_SUBJECT_BYTES:,} a request "
            "may hold: send them in smaller requests",
            code="subjects_too_large",
        )
    return {
        **ddb.key(keys.regulation_key(str(record["regulateId"]))),
        "doc": ddb.s(_doc(record)),
        "subjects": {"B": subjects},
        "status": ddb.s(str(record["status"])),
        "droppedEvents": ddb.n(0),
    }


def _record(item: Mapping[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(item["doc"]["S"])
    record["subjects"] = unpack(item["subjects"]["B"]) if "subjects" in item else []
    record["status"] = item["status"]["S"]
    record["droppedEvents"] = int(item.get("droppedEvents", {}).get("N", "0"))
    if "claimUntil" in item:
        record["claimUntil"] = item["claimUntil"]["S"]
    return record


# --------------------------------------------------------------------------- export bundles
class ExportFiles:
    """Export bundles under `exports/regulations/` in the archive bucket."""

    PREFIX = "exports/regulations/"

    def __init__(self, bucket: str, client: S3Client | None = None, signer: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client
        self._signer = signer

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.s3()
        return self._client

    def put(self, key: str, content: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=content, ContentType=content_type, ServerSideEncryption="AES256"
        )

    def signed_url(self, key: str, seconds: int) -> str:
        if self._signer is None:
            self._signer = aws.s3_presigning()
        return str(
            self._signer.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
        )
