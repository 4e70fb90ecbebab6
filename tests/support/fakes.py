"""In-memory fakes of the delivery ports, keeping the stores' semantics (unit tests, benchmarks,
and integration tests that fake only what they do not exercise)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from midstage.config import FrequencyCap
from midstage.logic.delivery import DUPLICATE, IN_FLIGHT, NOT_DUE, Address, Claim, cap_breached, prune_sends
from midstage.logic.timefmt import iso
from midstage.models.messaging import FINAL_STATUSES, MessageRequest, Template
from midstage.models.offers import Offer
from midstage.models.profile import Profile
from midstage.services.offers import Issued


def person(profile_id: str = "p1", **fields: Any) -> Profile:
    """A profile known by a user id and an anonymous id; `fields` set anything else."""
    base: dict[str, Any] = {
        "id": profile_id,
        "created_at": "2026-01-01T00:00:00.000Z",
        "identities": {"user_id": [f"user-{profile_id}"], "anonymous_id": [f"anon-{profile_id}"]},
    }
    base.update(fields)
    return Profile(**base)


class MemoryProfiles:
    """Profiles port: the people given, by id."""

    def __init__(self, *profiles: Profile) -> None:
        self.by_id = {p.id: p for p in profiles}

    def profile(self, profile_id: str) -> Profile | None:
        return self.by_id.get(profile_id)


class MemoryLedger:
    """MessageLedger's claim state machine, in memory.

    A message can be claimed when it has no item yet, when its `sending` lease has run out
    (leaseUntil < now, whole seconds), when it is `deferred` and due (notBefore <= now), or when
    it was released (`queued`). Otherwise: a final status is a duplicate, `deferred` is not due,
    anything else is in flight. finish/defer/release drop the lease and the mark of a provider
    call awaiting its answer, as the real updates do.
    `snapshot` copies the record a claim hands out (a benchmark may take a shallow copy).
    """

    def __init__(self, snapshot: Callable[[dict[str, Any]], dict[str, Any]] = copy.deepcopy) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.snapshot = snapshot

    def claim(self, request: MessageRequest, now: datetime, lease_seconds: int) -> Claim:
        now_s = int(now.timestamp())
        item = self.items.get(request.message_id)
        claimable = (
            item is None
            or (item["status"] == "sending" and item.get("leaseUntil") is not None and item["leaseUntil"] < now_s)
            or (item["status"] == "deferred" and item.get("notBefore") is not None and item["notBefore"] <= now_s)
            or item["status"] == "queued"
        )
        if not claimable:
            assert item is not None
            status = item["status"]
            state = DUPLICATE if status in FINAL_STATUSES else NOT_DUE if status == "deferred" else IN_FLIGHT
            return Claim(state, self.snapshot(item))
        if item is None:
            item = self.items[request.message_id] = {
                "id": request.message_id,
                "attempts": 0,
                "request": request.model_dump_json(),
                "createdAt": iso(now),
                "profileId": request.profile_id,
                "category": request.category,
                "history": [],
            }
        item.update(status="sending", leaseUntil=now_s + lease_seconds, attempts=item["attempts"] + 1)
        item["history"].append({"at": iso(now), "status": "sending", "reason": "claimed for delivery"})
        return Claim("claimed", self.snapshot(item))

    def _item(self, message_id: str) -> dict[str, Any]:
        return self.items.setdefault(message_id, {"id": message_id, "attempts": 0, "history": []})

    def finish(self, message_id: str, status: str, reason: str, now: datetime, **fields: Any) -> None:
        item = self._item(message_id)
        item.update(status=status, reason=reason, updatedAt=iso(now))
        item.update({k: v for k, v in fields.items() if v is not None})
        for ended in ("leaseUntil", "providerCallAt", "providerChannel"):
            item.pop(ended, None)
        item["history"].append({"at": iso(now), "status": status, "reason": reason})

    def note(self, message_id: str, now: datetime, **fields: Any) -> None:
        self._item(message_id).update(fields)

    def defer(self, message_id: str, until: datetime, reason: str, now: datetime) -> None:
        item = self._item(message_id)
        item.update(status="deferred", notBefore=int(until.timestamp()), reason=reason, updatedAt=iso(now))
        for ended in ("leaseUntil", "providerCallAt", "providerChannel"):
            item.pop(ended, None)
        item["history"].append({"at": iso(now), "status": "deferred", "reason": reason})

    def release(self, message_id: str, reason: str, now: datetime) -> None:
        item = self._item(message_id)
        item.update(status="queued", reason=reason, updatedAt=iso(now))
        for ended in ("leaseUntil", "providerCallAt", "providerChannel"):
            item.pop(ended, None)
        item["history"].append({"at": iso(now), "status": "queued", "reason": reason})


class MemoryCaps:
    """CapStore.reserve without DynamoDB: the same check-and-append on one list per person."""

    def __init__(self) -> None:
        self.sends: dict[str, list[dict[str, Any]]] = {}
        self.calls = 0

    def reserve(
        self,
        profile_id: str,
        message_id: str,
        channel: str,
        category: str,
        caps: Sequence[FrequencyCap],
        now: datetime,
        merged_from: Sequence[str] = (),
    ) -> FrequencyCap | None:
        self.calls += 1
        sends = self.sends.get(profile_id, [])
        if any(s["id"] == message_id for s in sends):
            return None
        inherited = [s for merged in merged_from for s in self.sends.get(merged, [])]
        breached = cap_breached(sends + inherited, channel, category, caps, now)
        if breached is not None:
            return breached
        reserved = {"id": message_id, "at": int(now.timestamp()), "channel": channel, "category": category}
        self.sends[profile_id] = [*prune_sends(sends, caps, now), reserved]
        return None


class ApprovedEmail:
    """Templates port: every id asked for is an approved email template with this content."""

    def __init__(self, subject: str = "Hi", html: str = "<p>Hi</p>") -> None:
        self.content = {"subject": subject, "html": html}

    def approved(self, template_id: str) -> Template | None:
        return Template(
            id=template_id, name=template_id, channel="email", locales={"en": dict(self.content)}, status="approved"
        )


class RecordingProvider:
    """Channels port: records the message ids it was asked to send, answers a provider id."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def send(
        self,
        channel: str,
        request: MessageRequest,
        profile: Profile,
        address: Address,
        template: Template | None,
        offers: Mapping[str, str | None] | None = None,
        before_call: Callable[[], None] | None = None,
    ) -> str:
        if before_call is not None:
            before_call()
        self.calls.append(request.message_id)
        return f"ses-{len(self.calls)}"


class MemoryArchive:
    """ArchiveSink port: the records put, in order; `fail` refuses the next puts (the stream down)."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.fail = 0

    def put(self, records: Sequence[Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the archive stream is unreachable")
        self.records.extend(records)

    def kinds(self) -> list[str]:
        return [record.kind for record in self.records]


class MemoryDestinationQueue:
    """DestinationStore's semantics in memory: each destination's queue in seq order, its failed
    records, its counters, retry clock and lease."""

    def __init__(self) -> None:
        from midstage.logic.destinations import Entry

        self.queued: dict[str, dict[str, Entry]] = {}
        self.failed: dict[str, dict[str, tuple[Entry, str]]] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, tuple[str, datetime]] = {}

    def _state(self, destination_id: str) -> dict[str, Any]:
        return self.states.setdefault(destination_id, {"delivered": 0, "failed": 0, "retried": 0, "filtered": 0})

    def reserve(self, destination_id: str, count: int) -> int:
        state = self._state(destination_id)
        state["next_seq"] = state.get("next_seq", 0) + count
        return int(state["next_seq"]) - count + 1

    def append(self, destination_id: str, entries: Sequence[Any]) -> None:
        self.queued.setdefault(destination_id, {}).update({e.seq: e for e in entries})

    def waiting(self, destination_id: str, limit: int) -> list[Any]:
        queue = self.queued.get(destination_id, {})
        return [queue[seq] for seq in sorted(queue)[:limit]]

    def delivered(self, destination_id: str, entries: Sequence[Any], now: datetime) -> None:
        for entry in entries:
            self.queued[destination_id].pop(entry.seq, None)
        state = self._state(destination_id)
        state["delivered"] += len(entries)
        state.update(last_delivered_at=iso(now), attempts=0)
        state.pop("next_attempt_at", None)

    def retry_later(
        self, destination_id: str, tried: int, error: str, attempts: int, at: datetime, now: datetime
    ) -> None:
        state = self._state(destination_id)
        state["retried"] += tried
        state.update(attempts=attempts, next_attempt_at=iso(at), last_error=error, last_error_at=iso(now))

    def fail(self, destination_id: str, failures: Sequence[tuple[Any, str]], now: datetime, *, queued: bool) -> None:
        for entry, reason in failures:
            self.failed.setdefault(destination_id, {})[entry.seq] = (entry, reason)
            if queued:
                self.queued[destination_id].pop(entry.seq, None)
        if failures:
            state = self._state(destination_id)
            state["failed"] += len(failures)
            state.update(last_error=failures[-1][1], last_error_at=iso(now))

    def count_filtered(self, destination_id: str, filtered: int) -> None:
        self._state(destination_id)["filtered"] += filtered

    def state(self, destination_id: str) -> Any:
        from midstage.models.destinations import DestinationStats

        known = DestinationStats.model_fields
        return DestinationStats.model_validate({k: v for k, v in self._state(destination_id).items() if k in known})

    def stats(self, destination_id: str) -> Any:
        figures = self.state(destination_id)
        pending, failed = len(self.queued.get(destination_id, {})), len(self.failed.get(destination_id, {}))
        return figures.model_copy(update={"pending": pending, "failed_records": failed})

    def acquire(self, destination_id: str, token: str, now: datetime, lease: Any) -> bool:
        held = self.leases.get(destination_id)
        if held is not None and held[1] >= now:
            return False
        self.leases[destination_id] = (token, now + lease)
        return True

    def release(self, destination_id: str, token: str) -> None:
        if self.leases.get(destination_id, ("", None))[0] == token:
            del self.leases[destination_id]

    def redrive(self, destination_id: str, limit: int, now: datetime) -> int:
        from midstage.logic.destinations import Entry

        records = self.failed.get(destination_id, {})
        moved = sorted(records)[:limit]
        for seq in moved:
            entry, _ = records.pop(seq)
            fresh = Entry(entry.seq, entry.profile_id, entry.message_id, entry.payload, iso(now))
            self.queued.setdefault(destination_id, {})[seq] = fresh
        return len(moved)

    def forget(self, destination_id: str) -> None:
        for store in (self.queued, self.failed, self.states):
            store.pop(destination_id, None)


class MemoryDefinitions:
    """ConfigStore's versioned documents for one kind at a time, in memory."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], Any] = {}

    def documents(self, kind: str, model: Any) -> list[Any]:
        return [doc for (k, _), doc in self.docs.items() if k == kind]

    def find_document(self, kind: str, doc_id: str, model: Any) -> Any:
        return self.docs.get((kind, doc_id))

    def save_document(self, kind: str, document: Any) -> Any:
        current = self.docs.get((kind, document.id))
        if (current.version if current else 0) != document.version - 1:
            raise AssertionError("saved over another version")
        self.docs[(kind, document.id)] = document
        return document

    def delete_document(self, kind: str, doc_id: str) -> None:
        del self.docs[(kind, doc_id)]


class MemoryOffers:
    """Offers port of rules and delivery: codes handed out in order from `codes` per offer, the
    same code for a cause already answered, the code a person holds for a new cause (the
    issuer's contract; tests/integration/test_offers.py holds the real one to it on moto), and a
    refusal with `pool_exhausted` when an offer's codes run out. `calls` is every (offer, person,
    cause) asked."""

    def __init__(self, **codes: Sequence[str]) -> None:
        self.codes = {offer_id: list(pool) for offer_id, pool in codes.items()}
        self.given: dict[tuple[str, str, str], Issued] = {}
        self.held: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, str, str]] = []

    def offer(self, offer_id: str) -> Offer | None:
        if offer_id not in self.codes:
            return None
        return Offer(id=offer_id, name=offer_id, kind="percentage", value=Decimal(10))

    def issue(
        self,
        offer: Offer,
        profile_id: str,
        cause: str,
        segments: Iterable[str],
        now: datetime,
        merged_from: Sequence[str] = (),
    ) -> Issued:
        self.calls.append((offer.id, profile_id, cause))
        known = self.given.get((offer.id, profile_id, cause))
        if known is not None:
            return Issued(offer.id, "same_cause", code=known.code, reason=known.reason)
        held = self.held.get((offer.id, profile_id))
        if held is not None:
            given = Issued(offer.id, "already_held", code=held)
        elif self.codes[offer.id]:
            given = Issued(offer.id, "issued", code=self.codes[offer.id].pop(0))
            self.held[(offer.id, profile_id)] = str(given.code)
        else:
            given = Issued(offer.id, "refused", reason="pool_exhausted")
        self.given[(offer.id, profile_id, cause)] = given
        return given
