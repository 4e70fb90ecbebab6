"""Archived event rows back into the events the profile updater applies. Pure.

A row is an `EventRecord` as a Parquet reader gives it back (a dict of `COLUMNS`, timestamps
naive UTC). The event keeps its `messageId` and `sourceId`, so the profile updater's dedupe
marker (`sourceId|messageId`) and its trait stamps (`timestamp|messageId|sourceId`) are the
ones the original event had: a replayed event the updater still remembers is a duplicate, and a
trait never moves backwards because of a replay.

What the archive (schema v1) does not keep cannot come back: the context outside the kept keys
(ip, userAgent, device, externalIds, context.traits), `originalTimestamp` and `sentAt` (the
timestamp is already the corrected one), `integrations`, an alias's `previousId` and a group's
`groupId`. `receivedAt` is not archived either; the event's archive time stands in for it (the
nearest later moment the platform recorded), or its timestamp when that is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from midstage.logic.timefmt import iso, parse_iso

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
_TRAIT_TYPES = frozenset({"identify", "group"})
MAX_ID_CHARS = 512


class MalformedRow(ValueError):
    """An archived row that cannot be an event again; the message says which column and why."""


def replayed_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Segment-spec event an archived row records, as collect handed it to the profile
    updater (minus what the archive does not keep). Raises MalformedRow."""
    event_type = row.get("event_type")
    if event_type not in EVENT_TYPES:
        raise MalformedRow(f"event_type: {_shown(event_type)} is not one of {', '.join(sorted(EVENT_TYPES))}")
    message_id = _identifier(row, "message_id", required=True)
    source_id = _identifier(row, "source_id", required=True)
    user_id = _identifier(row, "user_id")
    anonymous_id = _identifier(row, "anonymous_id")
    if user_id is None and anonymous_id is None:
        raise MalformedRow("user_id and anonymous_id: both missing; an event needs one")
    occurred = _moment(row, "occurred_at")
    if occurred is None:
        raise MalformedRow("occurred_at: missing")
    received = _moment(row, "archived_at") or occurred
    name = row.get("event")
    if name is not None and not isinstance(name, str):
        raise MalformedRow(f"event: {_shown(name)} is not text")
    if event_type == "track" and not (name and name.strip()):
        raise MalformedRow("event: a track event needs a name")
    body = _object(row, "properties")
    context = _object(row, "context")

    event: dict[str, Any] = {
        "type": event_type,
        "messageId": message_id,
        "userId": user_id,
        "anonymousId": anonymous_id,
        "timestamp": iso(occurred),
        "receivedAt": iso(received),
        "sourceId": source_id,
        "context": context,
    }
    if event_type == "track":
        event["event"] = name
    elif name:
        # The archive's `event` column holds a page's or screen's name (any non-track call's `name`).
        event["name"] = name
    if body:
        event["traits" if event_type in _TRAIT_TYPES else "properties"] = body
    return event


def _identifier(row: Mapping[str, Any], column: str, *, required: bool = False) -> str | None:
    value = row.get(column)
    if value is None or value == "":
        if required:
            raise MalformedRow(f"{column}: missing")
        return None
    if not isinstance(value, str):
        raise MalformedRow(f"{column}: {_shown(value)} is not text")
    if len(value) > MAX_ID_CHARS:
        raise MalformedRow(f"{column}: longer than {MAX_ID_CHARS} characters")
    return value


def _moment(row: Mapping[str, Any], column: str) -> datetime | None:
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = parse_iso(value)
        except ValueError as error:
            raise MalformedRow(f"{column}: {_shown(value)} is not an ISO 8601 time") from error
    if not isinstance(value, datetime):
        raise MalformedRow(f"{column}: {_shown(value)} is not a time")
    # Parquet gives the archive's timestamps back naive: they were written as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _object(row: Mapping[str, Any], column: str) -> dict[str, Any]:
    text = row.get(column)
    if text is None or text == "":
        return {}
    if not isinstance(text, str):
        raise MalformedRow(f"{column}: {_shown(text)} is not JSON text")
    try:
        value = json.loads(text)
    except ValueError as error:
        raise MalformedRow(f"{column}: not JSON ({error.args[0] if error.args else error})") from error
    if not isinstance(value, dict):
        raise MalformedRow(f"{column}: JSON {type(value).__name__}, not an object")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
