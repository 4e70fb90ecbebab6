"""Domain events to the EventBridge bus, batched ten to a PutEvents call."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from midstage.adapters import aws
from midstage.models.messages import ENVELOPE_KEY, envelope_for
from midstage.observability import correlation_id, tracer

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "midstage"
_MAX_ENTRIES = 10


class EventPublisher:
    def __init__(
        self,
        bus_name: str,
        client: EventBridgeClient | None = None,
        *,
        correlation_id: Callable[[], str | None] = correlation_id,
    ) -> None:
        self.bus_name = bus_name
        self._client = client
        self._correlation_id = correlation_id
        self.published = 0

    @property
    def client(self) -> EventBridgeClient:
        if self._client is None:
            self._client = aws.events()
        return self._client

    @tracer.capture_method
    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Send (detail-type, detail) pairs, each detail with its envelope (kind, version and
        correlation id: models/messages.py); raise if any entry is still refused after retries."""
        correlated = self._correlation_id()
        entries: list[Any] = [
            {
                "EventBusName": self.bus_name,
                "Source": SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(
                    {**detail, ENVELOPE_KEY: envelope_for(detail_type, correlated)}, separators=(",", ":"), default=str
                ),
            }
            for detail_type, detail in events
        ]
        for start in range(0, len(entries), _MAX_ENTRIES):
            pending = entries[start : start + _MAX_ENTRIES]
            for attempt in range(6):
                answer = self.client.put_events(Entries=pending)
                if not answer.get("FailedEntryCount"):
                    break
                pending = [e for e, r in zip(pending, answer["Entries"], strict=True) if r.get("ErrorCode")]
                time.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError(f"EventBridge refused {len(pending)} domain events")
            self.published += len(entries[start : start + _MAX_ENTRIES])
