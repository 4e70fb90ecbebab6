"""The delivery queue: message requests from rules, the timer sweep, campaigns and the API."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from midstage.adapters import aws
from midstage.models.messaging import MessageRequest

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_MAX_ENTRIES = 10


class QueueRefused(Exception):
    pass


class MessageQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client
        self.sent = 0

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    def send(self, requests: Sequence[MessageRequest], delay_seconds: int = 0) -> None:
        bodies = [json.dumps(r.model_dump(mode="json", exclude_none=True), separators=(",", ":")) for r in requests]
        self.send_bodies(bodies, delay_seconds)

    def send_bodies(self, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        for start in range(0, len(bodies), _MAX_ENTRIES):
            entries: list[Any] = [
                {"Id": str(i), "MessageBody": body, "DelaySeconds": delay_seconds}
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
                raise QueueRefused(f"the delivery queue refused {len(entries)} messages")
            self.sent += len(bodies[start : start + _MAX_ENTRIES])
