"""An SQS queue of typed messages (models/messages.py): the delivery queue (message requests
from rules, journeys, the timer sweep, campaigns and the API), the refresh queue and the
campaign queue. Each body says its kind; each message carries the correlation id of the work
that sent it as the `correlationId` attribute."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from midstage import correlation
from midstage.adapters import aws
from midstage.errors import QueueRefused as QueueRefused
from midstage.models.messages import Delivery
from midstage.models.messaging import MessageRequest
from midstage.observability import correlation_id, tracer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_MAX_ENTRIES = 10


class MessageQueue:
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
        self.sent = 0

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    def send(self, requests: Sequence[MessageRequest], delay_seconds: int = 0) -> None:
        self.send_bodies([Delivery.of(r).body() for r in requests], delay_seconds)

    @tracer.capture_method
    def send_bodies(self, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        attributes = correlation.sqs_attributes(self._correlation_id())
        for start in range(0, len(bodies), _MAX_ENTRIES):
            entries: list[Any] = [
                {"Id": str(i), "MessageBody": body, "DelaySeconds": delay_seconds, "MessageAttributes": attributes}
                for i, body in enumerate(bodies[start : start + _MAX_ENTRIES])
            ]
            for attempt in range(5):
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                failed = {f["Id"] for f in answer.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise QueueRefused(f"the queue refused {len(entries)} messages")
            self.sent += len(bodies[start : start + _MAX_ENTRIES])
