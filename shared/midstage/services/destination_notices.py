"""Privacy requests reaching destinations: `notify_destinations` queues a notice (a `suppress` or
`delete` call, logic/destination_notices.py) for every person of a request on every destination
that takes one, through the forwarder's durable path: the destination's own queue in the
DataTable, drained in order by the forwarder (its minute schedule) with its retries, backoff and
failed records. The privacy worker calls it once per request and keeps what it answers as the
request's "destinations" report entry.

A paused destination is queued too: its backlog is delivered when it is enabled again, and the
notice with it, after the person's earlier events. A destination made after the request is not
told (it never received the person's events from before the request, and receives none after).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from midstage.logic import destination_notices as notices
from midstage.logic import destinations as logic
from midstage.models.destinations import DESTINATION_KIND, Destination
from midstage.models.profile import Profile
from midstage.observability import count
from midstage.services.destinations import Catalog, DestinationQueue


class DestinationNotices:
    def __init__(self, catalog: Catalog, queue: DestinationQueue, *, clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.queue = queue
        self.clock = clock

    def notify_destinations(self, regulation: Mapping[str, Any], people: Sequence[Profile]) -> dict[str, Any]:
        """Queue the request's notice for each of `people` on every destination that takes one;
        the report entry: which destinations were told (how many notices) and which were not, why."""
        told: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        if str(regulation["regulationType"]) not in notices.NOTICE_TYPES:
            return {"store": "destinations", "state": "FINISHED", "notices": 0, "told": told, "notTold": skipped}
        now = self.clock()
        for destination in self.catalog.documents(DESTINATION_KIND, Destination):
            if not notices.supports(destination):
                skipped.append(
                    {"destinationId": destination.id, "kind": destination.kind, "why": notices.why_not(destination)}
                )
                continue
            queued = self._queue(destination, regulation, people, now)
            told.append(
                {
                    "destinationId": destination.id,
                    "kind": destination.kind,
                    "notices": queued,
                    "paused": not destination.enabled,
                }
            )
        total = sum(t["notices"] for t in told)
        count(DestinationPrivacyNotices=total)
        return {"store": "destinations", "state": "FINISHED", "notices": total, "told": told, "notTold": skipped}

    def _queue(
        self, destination: Destination, regulation: Mapping[str, Any], people: Sequence[Profile], now: datetime
    ) -> int:
        if not people:
            return 0
        calls = [
            (p.id, notices.notice(regulation, p.id, p.merged_from, p.identities, destination.id, now)) for p in people
        ]
        first = self.queue.reserve(destination.id, len(calls))
        # A notice passes no filter or projection: the destination is told whatever it selects.
        kept = [(profile_id, call, logic.Shaped(payload=call)) for profile_id, call in calls]
        taken, refused = logic.entries_for(kept, first, now, destination)
        self.queue.append(destination.id, taken)
        self.queue.fail(destination.id, refused, now, queued=False)
        return len(taken)
