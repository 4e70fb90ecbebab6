"""In-memory fakes of the delivery ports, keeping the stores' semantics (unit tests, benchmarks,
and integration tests that fake only what they do not exercise)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from midstage.config import FrequencyCap
from midstage.logic.delivery import Address, cap_breached, prune_sends
from midstage.models.messaging import MessageRequest, Template
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


class MemoryCaps:
    """CapStore.reserve without DynamoDB: the same check-and-append on one list per person."""

    def __init__(self) -> None:
        self.sends: dict[str, list[dict[str, Any]]] = {}
        self.calls = 0

    def reserve(
        self, profile_id: str, message_id: str, channel: str, category: str, caps: Sequence[FrequencyCap], now: datetime
    ) -> FrequencyCap | None:
        self.calls += 1
        sends = self.sends.get(profile_id, [])
        if any(s["id"] == message_id for s in sends):
            return None
        breached = cap_breached(sends, channel, category, caps, now)
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
