"""The destinations feed: the events the profile updater applied, onto an SQS FIFO queue whose
message group is the profile id, so the forwarder receives one person's events in the order
they were applied while different people go in parallel.

Messages of one call are sent one after another (a batch call could accept a later message of
the group after refusing an earlier one). The deduplication id is derived from the events'
messageIds, so a unit the updater applies again within SQS's five-minute window is one message;
past the window the events arrive again and carry the same messageId, their idempotency key.

With no destination at all nothing is sent: `wanted` (the destination catalog, cached as the
forwarder's own is) is asked first, so a deployment without destinations pays no SQS request per
unit. A destination saved in the last `CONFIG_CACHE_SECONDS` may miss the events applied in that
time, as it would miss them in the forwarder's own cached catalog."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from midstage.adapters import aws
from midstage.models.destinations import DESTINATION_KIND, Destination
from midstage.observability import logger, tracer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from midstage.adapters.config_store import ConfigStore

MAX_MESSAGE_BYTES = 256 * 1024
_ATTEMPTS = 5


class DestinationFeed:
    def __init__(
        self, queue_url: str, client: SQSClient | None = None, *, wanted: Callable[[], bool] | None = None
    ) -> None:
        self.queue_url = queue_url
        self._client = client
        self.wanted = wanted
        self.sent = 0

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = aws.sqs()
        return self._client

    @tracer.capture_method
    def put(self, profile_id: str, events: Sequence[dict[str, Any]]) -> None:
        """Queue one person's applied events, in the order given; raises if the queue refuses."""
        if not events or (self.wanted is not None and not self.wanted()):
            return
        for body, ids in _bodies(profile_id, list(events)):
            dedupe = hashlib.sha256(f"{profile_id}\n{ids}".encode()).hexdigest()
            for attempt in range(_ATTEMPTS):
                try:
                    self.client.send_message(
                        QueueUrl=self.queue_url,
                        MessageBody=body,
                        MessageGroupId=profile_id[:128],
                        MessageDeduplicationId=dedupe,
                    )
                    break
                except Exception:  # any transport failure: retry, then fail the unit (it is redelivered)
                    if attempt == _ATTEMPTS - 1:
                        raise
                    time.sleep(0.05 * 2**attempt)
            self.sent += 1


class NoFeed:
    """No destinations queue configured: nothing is fed."""

    def put(self, profile_id: str, events: Sequence[dict[str, Any]]) -> None:
        return None


Feed = DestinationFeed | NoFeed


def destination_feed(queue_url: str, client: SQSClient | None = None, *, catalog: ConfigStore | None = None) -> Feed:
    """The feed to `queue_url` (none without one); with `catalog`, only while it holds a destination."""
    if not queue_url:
        return NoFeed()
    return DestinationFeed(queue_url, client, wanted=None if catalog is None else functools.partial(_any, catalog))


def _any(catalog: ConfigStore) -> bool:
    """Whether a destination exists. A catalog that cannot be read (a document this version cannot
    parse, a throttled read) counts as holding one: feeding is the gate's side to err on, never the
    profile updater's units failing over a destination."""
    try:
        return bool(catalog.documents(DESTINATION_KIND, Destination))
    except Exception as error:
        logger.warning("destination catalog unreadable; feeding", error=str(error)[:300])
        return True


def _bodies(profile_id: str, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(body, the events' messageIds) pairs, halving a list until each body fits a message."""
    body = json.dumps(
        {"version": 1, "kind": "destination.events", "profileId": profile_id, "events": events},
        separators=(",", ":"),
        default=str,
    )
    if len(body.encode()) <= MAX_MESSAGE_BYTES or len(events) == 1:
        return [(body, "\n".join(str(e.get("messageId", "")) for e in events))]
    middle = len(events) // 2
    return _bodies(profile_id, events[:middle]) + _bodies(profile_id, events[middle:])
