"""The durable hand-off from collect to the profile updater: SQS, one person's events a message."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from midstage import correlation
from midstage.adapters import aws
from midstage.errors import HandoffFailed as HandoffFailed
from midstage.observability import correlation_id, logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_MESSAGE_BYTES = 256 * 1024
# A message is one unit of the profile updater's work: bounding its events bounds what one
# unit costs (one write, its markers and domain events), whatever a client puts in a batch.
MAX_EVENTS_PER_MESSAGE = 100
_MAX_ENTRIES = 10


def messages_for(groups: Mapping[str, Sequence[dict[str, Any]]]) -> list[tuple[str, str]]:
    """(person key, body) pairs, splitting a person's events across messages only when needed:
    past MAX_EVENTS_PER_MESSAGE events or the SQS size limit.

    Bodies are ASCII (non-ASCII is escaped), so a body's length is its size in bytes.
    """
    messages: list[tuple[str, str]] = []
    for key, events in groups.items():
        listed = list(events)
        for start in range(0, len(listed), MAX_EVENTS_PER_MESSAGE):
            messages.extend((key, body) for body in _bodies(listed[start : start + MAX_EVENTS_PER_MESSAGE]))
    return messages


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    # Imported here: the models cost the tracking API's cold start more than this call costs.
    from midstage.models.messages import profile_events_body

    body = profile_events_body(events)
    if len(body) <= MAX_MESSAGE_BYTES or len(events) == 1:
        return [body]  # a single event is at most 32 KB, far below the message limit
    middle = len(events) // 2
    return _bodies(events[:middle]) + _bodies(events[middle:])


class SqsHandoff:
    def __init__(
        self,
        queue_url: str,
        client: SQSClient | None = None,
        *,
        correlation_id: Callable[[], str | None] = correlation_id,
    ) -> None:
        self.queue_url = queue_url
        self._client = client
        self._correlation_id = correlation_id

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    @tracer.capture_method
    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int:
        """Send every group; returns the number of messages. Raises HandoffFailed otherwise."""
        messages = messages_for(groups)
        batch: list[tuple[str, str]] = []
        batch_bytes = 0
        for key, body in messages:
            if batch and (len(batch) == _MAX_ENTRIES or batch_bytes + len(body) > MAX_MESSAGE_BYTES):
                self._send_batch(batch)
                batch, batch_bytes = [], 0
            batch.append((key, body))
            batch_bytes += len(body)
        if batch:
            self._send_batch(batch)
        logger.info("events handed off", people=len(groups), messages=len(messages))
        return len(messages)

    def _send_batch(self, batch: list[tuple[str, str]]) -> None:
        correlated = correlation.sqs_attributes(self._correlation_id())
        entries: list[Any] = [
            {
                "Id": str(index),
                "MessageBody": body,
                "MessageAttributes": {"personKey": {"DataType": "String", "StringValue": key[:256]}, **correlated},
            }
            for index, (key, body) in enumerate(batch)
        ]
        for attempt in range(5):
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as error:  # any transport failure: retry, then refuse to acknowledge
                if attempt == 4:
                    raise HandoffFailed(str(error)) from error
            else:
                failed = {f["Id"] for f in answer.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    return
            time.sleep(0.05 * 2**attempt)
        raise HandoffFailed(f"{len(entries)} messages were refused by the queue ({uuid.uuid4().hex[:8]})")
