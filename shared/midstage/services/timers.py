"""The timer sweep: every due minute bucket since the last sweep is closed, released, then removed.

A minute is closed to writers before its buckets are read, and recorded released only after:
a writer that finds its minute closed files the timer again in the next open minute (see
`TimerStore.schedule`), and a sweep that dies between the two starts again from the first
minute not released, so no timer is left in a minute nobody will read again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage.logic.timefmt import iso, minute_of
from midstage.models.messaging import MessageRequest
from midstage.observability import logger
from midstage.services.ports import MessageSink, Publisher

# A sweep that finds the cursor far behind (an outage) catches up this much per run.
MAX_MINUTES_PER_SWEEP = 24 * 60
_CHUNK = 500


class DueTimers(Protocol):
    def due(self, minute: str) -> list[dict[str, Any]]: ...
    def remove(self, timers: Sequence[Mapping[str, Any]]) -> None: ...
    def swept(self) -> str | None: ...
    def close(self, minute: str) -> None: ...
    def advance(self, minute: str) -> None: ...


def sweep(timers: DueTimers, queue: MessageSink, now: datetime, publisher: Publisher | None = None) -> int:
    """Release timers due up to `now`: deferred sends go to the delivery queue, journey waits to
    the bus as `journey.wake`. Releasing twice is harmless: the ledger sends once, and a journey
    instance ignores a timer it is no longer waiting for."""
    last = timers.swept()
    current = minute_of(now)
    # With no cursor yet, look back an hour: timers written before the first sweep still fire.
    start = _next_minute(last) if last else minute_of(now - timedelta(hours=1))
    released = 0
    minute = start
    for _ in range(MAX_MINUTES_PER_SWEEP):
        if minute > current:
            break
        timers.close(minute)  # before the read: a timer written after it goes to a later minute
        due = timers.due(minute)
        # Released and removed a chunk at a time: a run that times out midway has made progress,
        # and the next run continues with what is left of the minute.
        for offset in range(0, len(due), _CHUNK):
            chunk = due[offset : offset + _CHUNK]
            requests: list[MessageRequest] = []
            wakes: list[tuple[str, dict[str, Any]]] = []
            for timer in chunk:
                if timer["kind"] == "deliver":
                    payload = dict(timer["payload"])
                    payload["released_at"] = iso(
                        max(now, datetime.fromisoformat(timer["dueAt"].replace("Z", "+00:00")))
                    )
                    requests.append(MessageRequest.model_validate(payload))
                elif timer["kind"] == "journey" and publisher is not None:
                    wakes.append(("journey.wake", {**timer["payload"], "dueAt": timer["dueAt"]}))
                else:
                    logger.warning("unknown timer kind", kind=timer["kind"], timer=timer["id"])
            if requests:
                queue.send(requests)
            if wakes and publisher is not None:
                publisher.publish(wakes)
            timers.remove(chunk)
            released += len(requests) + len(wakes)
        timers.advance(minute)
        minute = _next_minute(minute)
    return released


def _next_minute(minute: str) -> str:
    return minute_of(datetime.strptime(minute, "%Y%m%d%H%M") + timedelta(minutes=1))
