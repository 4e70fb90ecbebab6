"""Dead-letter queues: why each message failed, and reading, deleting and re-sending them.

SQS keeps a message's id when its redrive policy moves it to the dead-letter queue, so the
failure a consumer recorded under that id (`FailureLog`) is found again next to the message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from midstage import keys
from midstage.adapters import aws
from midstage.adapters import dynamo as ddb
from midstage.adapters.documents import pack, unpack

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

FAILURE_RETENTION_S = 14 * 24 * 3600  # as long as a dead letter is kept (MessageRetentionPeriod)
_BATCH_GET = 100
_PEEK_VISIBILITY_S = 30  # messages read for a listing are hidden this long, then shown again


class FailureLog(ddb.Table):
    """The DataTable items `FAILURE#<sqs message id>`: a consumer's last error on a message."""

    def record(self, sqs_message_id: str, failure: dict[str, Any], now_epoch: int) -> None:
        key = keys.failure_key(sqs_message_id)
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": key["pk"]},
                "sk": {"S": key["sk"]},
                "doc": {"B": pack(failure)},
                "expiresAt": {"N": str(now_epoch + FAILURE_RETENTION_S)},
            },
        )

    def many(self, sqs_message_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(sqs_message_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _BATCH_GET):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        {k: {"S": v} for k, v in keys.failure_key(i).items()}
                        for i in wanted[start : start + _BATCH_GET]
                    ]
                }
            }
            while request:
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item["pk"]["S"].removeprefix("FAILURE#")] = unpack(item["doc"]["B"])
                request = answer.get("UnprocessedKeys") or {}
        return found


class DeadLetterQueue:
    """One dead-letter (or failed-invocation) queue, read without taking its messages away."""

    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    def depth(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def receive(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` messages, each once, hidden for a short while: the caller shows them
        again (`release`) or removes them (`delete`)."""
        seen: dict[str, dict[str, Any]] = {}
        empty = 0
        while len(seen) < limit and empty < 2:
            answer = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=_PEEK_VISIBILITY_S,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            empty = empty + 1 if not messages else 0
            for message in messages:
                seen.setdefault(message["MessageId"], dict(message))
        return list(seen.values())

    def release(self, messages: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ]
            self.client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)

    def delete(self, message: dict[str, Any]) -> None:
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def send_to(self, queue_url: str, message: dict[str, Any]) -> None:
        """The message as it was, onto `queue_url` (its attributes kept). A FIFO message goes
        back into its message group, with a deduplication id of its own: the original's may still
        be inside SQS's five-minute window, and a redrive repeated after a crash is dropped."""
        attributes: dict[str, Any] = {
            name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        fifo: dict[str, Any] = {}
        group = (message.get("Attributes") or {}).get("MessageGroupId")
        if queue_url.endswith(".fifo") and group:
            fifo = {"MessageGroupId": group, "MessageDeduplicationId": f"redrive-{message['MessageId']}"[:128]}
        for attempt in range(5):
            try:
                self.client.send_message(
                    QueueUrl=queue_url, MessageBody=message["Body"], MessageAttributes=attributes, **fifo
                )
                return
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(0.05 * 2**attempt)


class BusRedrive:
    """Puts an EventBridge event back on its bus, where every rule's target gets it again."""

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None) -> None:
        self.bus_name = bus_name
        self._client = client

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = aws.events()
        return self._client

    def put(self, source: str, detail_type: str, detail: str) -> None:
        answer = self.client.put_events(
            Entries=[{"Source": source, "DetailType": detail_type, "Detail": detail, "EventBusName": self.bus_name}]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"the bus refused the event: {answer['Entries'][0].get('ErrorMessage', '')}")
