"""Forwarding the event stream to destinations (docs/integrations.md, Destinations).

Two steps, both in the forwarder function:

* accept: each feed message (one person's applied events, in order) is filtered and shaped for
  every destination and its entries are written to that destination's queue, durably, before
  the message is acknowledged;
* drain: one drain at a time per destination (a lease) delivers its queue in order, a batch at a
  time. A batch that fails with a retryable error stops the drain: nothing behind it is sent
  (a person's later event cannot overtake an earlier one) and the destination waits out a
  backoff. A permanent refusal moves the batch to the failed records, which a redrive puts back.
  A Kinesis call can partly fail: what it wrote leaves the queue, the rest stays at its head
  (its batches hold one record per person, so nothing of theirs written after it is skipped).

A failing destination therefore keeps a durable backlog of everything sent to it meanwhile and,
once it answers again, receives it in order; a delivery repeated after a crash carries the same
messageIds, its idempotency keys. Destinations never wait on each other: each has its own queue.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from midstage.clock import Clock
from midstage.errors import InvalidInput
from midstage.logic import destinations as logic
from midstage.logic.destinations import DeliveryFailed, Entry, Route
from midstage.logic.timefmt import parse_iso
from midstage.models.destinations import DESTINATION_KIND, Destination, DestinationStats
from midstage.models.messages import AppliedEvents, parse_body
from midstage.observability import count, logger

LEASE = timedelta(minutes=2)  # longer than the forwarder's timeout: a crashed drain's lease runs out
RESERVE_S = 10.0  # time left in an invocation below which no new batch is started
READ_BATCHES = 5  # batches read from the queue at a time


class Catalog(Protocol):
    def documents(self, kind: str, model: type[Destination]) -> list[Destination]: ...


class DestinationQueue(Protocol):
    def reserve(self, destination_id: str, count: int) -> int: ...
    def append(self, destination_id: str, entries: Sequence[Entry]) -> None: ...
    def waiting(self, destination_id: str, limit: int) -> list[Entry]: ...
    def delivered(self, destination_id: str, entries: Sequence[Entry], now: datetime) -> None: ...
    def retry_later(
        self, destination_id: str, tried: int, error: str, attempts: int, at: datetime, now: datetime
    ) -> None: ...
    def fail(
        self, destination_id: str, failures: Sequence[tuple[Entry, str]], now: datetime, *, queued: bool
    ) -> None: ...
    def count_filtered(self, destination_id: str, filtered: int) -> None: ...
    def state(self, destination_id: str) -> DestinationStats: ...
    def acquire(self, destination_id: str, token: str, now: datetime, lease: timedelta) -> bool: ...
    def release(self, destination_id: str, token: str) -> None: ...


class Sender(Protocol):
    def deliver(self, destination: Destination, entries: Sequence[Entry], now: datetime) -> None: ...


Drained = Literal["emptied", "backing_off", "out_of_time", "busy", "paused"]


@dataclass
class Forwarder:
    catalog: Catalog
    queue: DestinationQueue
    sender: Sender
    clock: Clock
    max_age: timedelta = timedelta(hours=72)
    max_window_days: int = 90
    new_token: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    draw: Callable[[], float] = random.random
    _routes: dict[tuple[str, int], Route | None] = field(default_factory=dict)

    # ------------------------------------------------------------------ accept
    def destinations(self) -> list[Destination]:
        return self.catalog.documents(DESTINATION_KIND, Destination)

    def route(self, destination: Destination) -> Route | None:
        """The destination compiled, once per version; None if its definition no longer compiles."""
        known = (destination.id, destination.version)
        if known not in self._routes:
            try:
                self._routes[known] = logic.compile_route(destination, max_window_days=self.max_window_days)
            except InvalidInput as error:  # a filter or transform refused since it was saved
                logger.error("destination does not compile", destination_id=destination.id, error=str(error)[:300])
                self._routes[known] = None
        return self._routes[known]

    def accept(self, messages: Sequence[AppliedEvents]) -> list[Destination]:
        """Queue the events of `messages` (in the order received) for every destination; returns
        the destinations that took an entry. A paused destination keeps taking them."""
        now = self.clock()
        touched: list[Destination] = []
        for destination in self.destinations():
            route = self.route(destination)
            if route is None:
                continue
            kept: list[tuple[str, Mapping[str, Any], logic.Shaped]] = []
            for message in messages:
                for event in message.events:
                    shaped = logic.shape(route, event, now)
                    if not shaped.filtered:
                        kept.append((message.profile_id, event, shaped))
            self.queue.count_filtered(destination.id, sum(len(m.events) for m in messages) - len(kept))
            if not kept:
                continue
            first = self.queue.reserve(destination.id, len(kept))
            taken, refused = logic.entries_for(kept, first, now, destination)
            self.queue.append(destination.id, taken)
            self.queue.fail(destination.id, refused, now, queued=False)
            count(DestinationEntries=len(taken), DestinationRefused=len(refused))
            if taken:
                touched.append(destination)
        return touched

    # ------------------------------------------------------------------ drain
    def sweep(self, remaining_s: Callable[[], float], scheduled: datetime | None = None) -> dict[str, Drained]:
        """Drain every enabled destination whose retry is due (the scheduled run). A retry due by
        the firing's `scheduled` time counts as due, even if this invocation's clock reads earlier."""
        return {
            d.id: self.drain(d, remaining_s, due_by=scheduled) for d in self.destinations() if remaining_s() > RESERVE_S
        }

    def drain(
        self, destination: Destination, remaining_s: Callable[[], float], *, due_by: datetime | None = None
    ) -> Drained:
        """Deliver the destination's queue while time allows, unless it is paused, backing off, or
        another drain holds it. After giving the lease back, look once more: an entry queued
        while the lease was held, by a forwarder that then found it taken, is not left behind."""
        if not destination.enabled:
            return "paused"
        outcome: Drained = "busy"
        for _ in range(3):
            now = self.clock()
            state = self.queue.state(destination.id)
            if state.next_attempt_at and parse_iso(state.next_attempt_at) > max(now, due_by or now):
                return "backing_off"
            token = self.new_token()
            if not self.queue.acquire(destination.id, token, now, LEASE):
                return outcome
            try:
                outcome = self._drain_held(destination, state.attempts, remaining_s)
            finally:
                self.queue.release(destination.id, token)
            if outcome != "emptied" or not self.queue.waiting(destination.id, 1):
                return outcome
        return outcome

    def _drain_held(self, destination: Destination, attempts: int, remaining_s: Callable[[], float]) -> Drained:
        size = destination.batch_size
        max_age_s = self.max_age.total_seconds()
        while remaining_s() > RESERVE_S:
            waiting = self.queue.waiting(destination.id, size * READ_BATCHES)
            if not waiting:
                return "emptied"
            now = self.clock()
            stale = [e for e in waiting if logic.expired(e, now, max_age_s)]
            if stale:
                reason = f"not delivered within {max_age_s / 3600:g} h of retries"
                self.queue.fail(destination.id, [(e, reason) for e in stale], now, queued=True)
                waiting = [e for e in waiting if not logic.expired(e, now, max_age_s)]
            for batch in logic.batches_for(destination, waiting):
                if remaining_s() <= RESERVE_S:
                    return "out_of_time"
                try:
                    self.sender.deliver(destination, batch, now)
                except DeliveryFailed as error:
                    if error.delivered:  # a call that partly failed: what it wrote is done
                        self.queue.delivered(destination.id, error.delivered, now)
                        count(DestinationDelivered=len(error.delivered))
                        done = {e.seq for e in error.delivered}
                        batch = [e for e in batch if e.seq not in done]
                    if error.permanent:
                        self.queue.fail(destination.id, [(e, error.reason) for e in batch], now, queued=True)
                        count(DestinationFailed=len(batch))
                        continue
                    attempts += 1
                    at = now + timedelta(seconds=logic.retry_delay(attempts, self.draw()))
                    self.queue.retry_later(destination.id, len(batch), error.reason, attempts, at, now)
                    count(DestinationRetried=len(batch))
                    logger.warning(
                        "destination delivery failed; retrying later",
                        destination_id=destination.id,
                        attempts=attempts,
                        error=str(error)[:300],
                    )
                    return "backing_off"
                self.queue.delivered(destination.id, batch, now)
                count(DestinationDelivered=len(batch))
                attempts = 0
        return "out_of_time"


def with_lag(stats: DestinationStats, oldest: Entry | None, now: datetime) -> DestinationStats:
    """The figures with the age of the oldest event still waiting."""
    if oldest is None:
        return stats.model_copy(update={"lag_seconds": 0.0, "oldest_pending_at": None})
    waited = max((now - parse_iso(oldest.enqueued_at)).total_seconds(), 0.0)
    return stats.model_copy(update={"lag_seconds": round(waited, 3), "oldest_pending_at": oldest.enqueued_at})


def forward_records(
    forwarder: Forwarder,
    records: Sequence[Mapping[str, Any]],
    remaining_s: Callable[[], float],
    record_failure: Callable[[Mapping[str, Any], BaseException], None] | None = None,
) -> dict[str, Any]:
    """An SQS FIFO batch from the feed: queue every message for every destination, then drain
    the destinations that took something. A record that is not a feed message fails with every
    record after it (a FIFO batch may not skip ahead in a group); the ones before it are queued.
    Why it failed goes to `record_failure` (the record, the error), so its dead letter says so.
    Answers the partial-batch response."""
    parsed: list[AppliedEvents] = []
    failed_from = len(records)
    for index, record in enumerate(records):
        try:
            parsed.append(parse_body(AppliedEvents, str(record.get("body", ""))))
        except ValueError as error:
            logger.error("not a feed message", sqs_message_id=record.get("messageId"), error=str(error)[:300])
            if record_failure is not None:
                record_failure(record, error)
            failed_from = index
            break
    touched = forwarder.accept(parsed)
    for destination in touched:
        if remaining_s() <= RESERVE_S:
            break  # queued durably: the next run delivers it
        forwarder.drain(destination, remaining_s)
    failures = [{"itemIdentifier": str(r.get("messageId", ""))} for r in records[failed_from:]]
    return {"batchItemFailures": failures}
