"""In-memory fakes of the delivery ports, keeping the stores' semantics (unit tests, benchmarks,
and integration tests that fake only what they do not exercise)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from midstage.config import FrequencyCap
from midstage.logic.delivery import DUPLICATE, IN_FLIGHT, NOT_DUE, Address, Claim, cap_breached, prune_sends
from midstage.logic.timefmt import iso
from midstage.models.messaging import FINAL_STATUSES, MessageRequest, Template
from midstage.models.profile import Profile


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
    anything else is in flight. finish/defer/release drop the lease, as the real updates do.
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
        item.pop("leaseUntil", None)
        item["history"].append({"at": iso(now), "status": status, "reason": reason})

    def note(self, message_id: str, now: datetime, **fields: Any) -> None:
        self._item(message_id).update(fields)

    def defer(self, message_id: str, until: datetime, reason: str, now: datetime) -> None:
        item = self._item(message_id)
        item.update(status="deferred", notBefore=int(until.timestamp()), reason=reason, updatedAt=iso(now))
        item.pop("leaseUntil", None)
        item["history"].append({"at": iso(now), "status": "deferred", "reason": reason})

    def release(self, message_id: str, reason: str, now: datetime) -> None:
        item = self._item(message_id)
        item.update(status="queued", reason=reason, updatedAt=iso(now))
        item.pop("leaseUntil", None)
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
        self, channel: str, request: MessageRequest, profile: Profile, address: Address, template: Template | None
    ) -> str:
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
