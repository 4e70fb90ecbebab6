"""Privacy notices to destinations: what a destination is told when a privacy request suppresses
or erases a person (docs/integrations.md, "Privacy requests reach destinations").

A notice is one call in Segment's shape, queued for the destination like any event and delivered
by the forwarder (in order after the person's earlier events, with its retries and failed
records). Its `type` says what happened: `suppress` (SUPPRESS_ONLY: send nothing more of this
person, keep what you hold) or `delete` (an erasure: delete what you hold of this person, as
Segment's Webhooks destination receives a user deletion). Its messageId is derived from the
request, the person and the destination, so a notice queued again (the worker ran the request
again after a crash) carries the same idempotency key.

Pure: the time comes from the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from midstage.logic.timefmt import iso
from midstage.models.destinations import Destination

# What each request type tells a destination; a type not listed here tells nothing.
NOTICE_TYPES = {"SUPPRESS_ONLY": "suppress", "SUPPRESS_WITH_DELETE": "delete", "DELETE_ONLY": "delete"}
# Kinds that receive a notice through their ordinary delivery. A Segment-compatible endpoint is
# not told: its /v1/batch takes tracking calls only, and a deletion there is a Regulations API
# call with a workspace token, which a destination's write key is not.
NOTIFIED_KINDS = frozenset({"webhook", "eventbridge", "kinesis"})
NOT_SUPPORTED = {
    "segment": "a Segment-compatible endpoint takes deletions through its own Regulations API "
    "(a workspace token), not /v1/batch: ask it there"
}
# Identifier types a notice names (the same the person's events carried to the destination).
NAMED_IDENTIFIERS = ("user_id", "anonymous_id", "email", "phone")


def supports(destination: Destination) -> bool:
    return destination.kind in NOTIFIED_KINDS


def why_not(destination: Destination) -> str:
    return NOT_SUPPORTED.get(destination.kind, f"a {destination.kind} destination takes no privacy notice")


def notice_message_id(regulate_id: str, profile_id: str, destination_id: str) -> str:
    digest = hashlib.sha256(f"{regulate_id}\n{profile_id}\n{destination_id}".encode()).hexdigest()
    return f"privacy-{digest[:40]}"


def notice(
    regulation: Mapping[str, Any],
    profile_id: str,
    merged_from: Sequence[str],
    identities: Mapping[str, Iterable[str]],
    destination_id: str,
    now: datetime,
) -> dict[str, Any]:
    """The call `destination_id` receives for one person of `regulation` (a stored request)."""
    kind = NOTICE_TYPES[str(regulation["regulationType"])]
    named = {t: sorted(set(identities.get(t, ()))) for t in NAMED_IDENTIFIERS}
    user_ids = named["user_id"]
    call: dict[str, Any] = {
        "type": kind,
        "messageId": notice_message_id(str(regulation["regulateId"]), profile_id, destination_id),
        "timestamp": iso(now),
        "channel": "server",
        "context": {
            "regulation": {
                "regulateId": regulation["regulateId"],
                "regulationType": regulation["regulationType"],
                "receivedAt": regulation.get("receivedAt"),
            },
            # Everything the person's events to this destination could have named them by.
            "identifiers": {
                "profileIds": sorted({profile_id, *merged_from}),
                "userIds": user_ids,
                "anonymousIds": named["anonymous_id"],
                "emails": named["email"],
                "phones": named["phone"],
            },
        },
    }
    if user_ids:
        call["userId"] = user_ids[0]
    elif named["anonymous_id"]:
        call["anonymousId"] = named["anonymous_id"][0]
    return call
