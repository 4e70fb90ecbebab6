"""Events the platform itself puts on the event plane: a rule tags someone, an email is opened.

They travel the same road as every tracked event (the ingest queue, then the profile updater),
so profiles keep a single writer and rules can react to them. Their message ids are derived
from what caused them, so a cause handled twice still yields one event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from midstage.logic.profile import PLATFORM_SOURCE, REPLAYED
from midstage.logic.profile import is_replayed as is_replayed
from midstage.models.profile import Profile

SOURCE_ID = PLATFORM_SOURCE  # never a real source's id: those start with "src_"


# Migrated records (a Pinpoint endpoint export) are imported again weeks apart; the profile
# updater keeps their dedupe markers for IMPORT_MARKER_DAYS (logic/ingest.py), not a day.
IMPORTED_PREFIX = "ms-imp-"


def internal_id(*parts: str) -> str:
    return "ms-int-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def imported_id(*parts: str) -> str:
    """The id of an event that stands for a migrated record, named by what the record says."""
    return IMPORTED_PREFIX + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def addressed_to(profile: Profile) -> dict[str, str] | None:
    """Identifiers that lead back to this profile: every profile was created by an event with a
    userId or an anonymousId, so one of them is always there."""
    user_ids = profile.identities.get("user_id") or []
    if user_ids:
        return {"userId": user_ids[0]}
    anonymous = profile.identities.get("anonymous_id") or []
    if anonymous:
        return {"anonymousId": anonymous[0]}
    return None


def track(
    person: Mapping[str, str],
    name: str,
    properties: Mapping[str, Any],
    *,
    message_id: str,
    timestamp: str,
    depth: int = 1,
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "properties": dict(properties),
        **_envelope(person, message_id, timestamp, depth),
    }


def replayed(event: dict[str, Any], received_at: str | None = None) -> dict[str, Any]:
    """The event marked as replayed history (logic/profile.is_replayed), received at `received_at`
    (the replay's time) when given."""
    event["context"].setdefault("midstage", {})[REPLAYED] = True
    if received_at is not None:
        event["receivedAt"] = received_at
    return event


def identify(
    person: Mapping[str, str], traits: Mapping[str, Any], *, message_id: str, timestamp: str, depth: int = 1
) -> dict[str, Any]:
    return {"type": "identify", "traits": dict(traits), **_envelope(person, message_id, timestamp, depth)}


def _envelope(person: Mapping[str, str], message_id: str, timestamp: str, depth: int) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "userId": person.get("userId"),
        "anonymousId": person.get("anonymousId"),
        "timestamp": timestamp,
        "receivedAt": timestamp,
        "sourceId": SOURCE_ID,
        # How many rule hops led here: rules stop reacting past a bound, so loops cannot run away.
        "context": {"midstage": {"depth": depth}},
    }


def depth_of(event: Mapping[str, Any] | None) -> int:
    if not event or event.get("sourceId") != SOURCE_ID:
        return 0  # only the platform's own events carry a depth; a client cannot forge one
    context = event.get("context") or {}
    midstage = context.get("midstage") if isinstance(context, dict) else None
    depth = midstage.get("depth") if isinstance(midstage, dict) else 0
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


def person_key(event: Mapping[str, Any]) -> str:
    return f"u:{event['userId']}" if event.get("userId") else f"a:{event['anonymousId']}"
