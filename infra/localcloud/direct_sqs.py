"""The SQS calls of the local cloud's own pollers, answered by moto's backend in the same process.

On AWS, Lambda's event-source mappings and EventBridge's targets read queues inside AWS; here
they are the local cloud's threads, living in the process that runs moto. Going through the HTTP
API would make each long poll and each delete cost a boto3 request, a werkzeug request and moto's
response parsing on the same interpreter that serves the functions: at rest that alone kept a
sixth of a core busy. The functions themselves still call SQS over HTTP, as on AWS.

The answers have boto3's shapes (`Messages`, `Successful`/`Failed`), and moto's errors come back as
botocore `ClientError`s, so the pollers cannot tell the difference.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from moto.core.exceptions import ServiceException, _RESTError
from moto.sqs.models import Message, SQSBackend, sqs_backends

_SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "MessageDeduplicationId",
    "MessageGroupId",
    "SequenceNumber",
    "AWSTraceHeader",
)
T = TypeVar("T")


class DirectSqs:
    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region

    @property
    def _backend(self) -> SQSBackend:
        backend: SQSBackend = sqs_backends[self.account_id][self.region]
        return backend

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,
        VisibilityTimeout: int | None = None,
        AttributeNames: Sequence[str] = (),
        MessageAttributeNames: Sequence[str] = (),
    ) -> dict[str, Any]:
        def receive() -> list[Message]:
            queue = self._backend.get_queue(_name(QueueUrl))
            timeout = VisibilityTimeout if VisibilityTimeout is not None else queue.visibility_timeout  # type: ignore[attr-defined]
            return self._backend.receive_message(
                queue.name, MaxNumberOfMessages, WaitTimeSeconds, int(timeout), list(MessageAttributeNames)
            )

        messages = _answering("ReceiveMessage", receive)
        shaped = [_message(message, AttributeNames) for message in messages]
        return {"Messages": shaped} if shaped else {}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        _answering("DeleteMessage", lambda: self._backend.delete_message(_name(QueueUrl), ReceiptHandle))
        return {}

    def delete_message_batch(self, *, QueueUrl: str, Entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
        entries = list(Entries)
        successful, failed = _answering(
            "DeleteMessageBatch", lambda: self._backend.delete_message_batch(_name(QueueUrl), entries)
        )
        return {"Successful": [{"Id": entry} for entry in successful], "Failed": failed}

    def change_message_visibility_batch(self, *, QueueUrl: str, Entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
        entries = list(Entries)
        successful, failed = _answering(
            "ChangeMessageVisibilityBatch",
            lambda: self._backend.change_message_visibility_batch(_name(QueueUrl), entries),
        )
        return {"Successful": [{"Id": entry} for entry in successful], "Failed": failed}


def _name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _answering(operation: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (ServiceException, _RESTError) as error:
        code = getattr(error, "code", None) if isinstance(error, ServiceException) else error.error_type
        message = getattr(error, "message", None) or str(error)
        raise ClientError({"Error": {"Code": str(code), "Message": str(message)}}, operation) from error


def _message(message: Message, attribute_names: Sequence[str]) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if message.message_attributes:
        shaped["MessageAttributes"] = {name: _attribute(value) for name, value in message.message_attributes.items()}
        shaped["MD5OfMessageAttributes"] = message.attribute_md5
    wanted = set(_SYSTEM_ATTRIBUTES) if "All" in attribute_names else set(attribute_names)
    values: dict[str, Any] = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        "MessageDeduplicationId": message.deduplication_id,
        "MessageGroupId": message.group_id,
        "SequenceNumber": message.sequence_number,
        "AWSTraceHeader": (message.system_attributes.get("AWSTraceHeader") or {}).get("StringValue"),
    }
    attributes = {name: value for name, value in values.items() if name in wanted and value is not None}
    if attributes:
        shaped["Attributes"] = attributes
    return shaped


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as boto3 returns it: binary values decoded from their base64 wire form."""
    shaped = {key: item for key, item in value.items() if item not in (None, [], "")}
    for key in ("BinaryValue",):
        if isinstance(shaped.get(key), str):
            shaped[key] = base64.b64decode(shaped[key])
    if "BinaryListValues" in shaped:
        shaped["BinaryListValues"] = [
            base64.b64decode(item) if isinstance(item, str) else item for item in shaped["BinaryListValues"]
        ]
    shaped["DataType"] = value["DataType"]
    return shaped
