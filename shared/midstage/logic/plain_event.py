"""An event of the tracking spec in the plain shape SDKs send, validated straight from its decoded
dict: the fast path of logic.collect, which leaves anything less plain to TrackingEvent."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from midstage.models.tracking import TrackingEvent

# TrackingEvent's checks, for reading an event in the shape SDKs send straight from its decoded
# dict (see plain_fields): each field's kind, a text's kind being its longest length.
_MESSAGE_ID, _ID, _OBJECT, _TIME = -1, -2, -3, -4
_PLAIN_KINDS: dict[str, int] = {
    "messageId": _MESSAGE_ID,
    **dict.fromkeys(("userId", "anonymousId", "previousId", "groupId"), _ID),
    "event": 256,
    "name": 512,
    "category": 512,
    "channel": 64,
    **dict.fromkeys(("properties", "traits", "context", "integrations"), _OBJECT),
    **dict.fromkeys(("timestamp", "originalTimestamp", "sentAt"), _TIME),
}
_PLAIN_ABSENT: dict[str, Any] = dict.fromkeys(_PLAIN_KINDS)
_PLAIN_OBJECTS = tuple(name for name, kind in _PLAIN_KINDS.items() if kind == _OBJECT)
_PLAIN_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)", re.ASCII).fullmatch
_LONGEST_TEXT = TrackingEvent.model_config.get("str_max_length") or 0


@lru_cache(maxsize=256)
def _plain_time(text: str) -> datetime | None:
    """A time in the form `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`, else None. Cached: every
    event of a batch carries the batch's sentAt."""
    if not _PLAIN_TIME(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def plain_fields(item: dict[str, Any], size: int) -> dict[str, Any] | None:
    """TrackingEvent's fields for an event in the shape SDKs send, read from the decoded dict
    without building the model; None for anything less plain, which TrackingEvent then validates
    and, if it must, explains. Accepts only what TrackingEvent accepts, with the values it would
    give (a test holds the two together): ids and texts that are strings within their lengths,
    objects that are objects, and times in the plain ISO 8601 form of _plain_time.
    """
    if size > _LONGEST_TEXT:
        return None  # below it, no string in the event (a key included) can be too long
    fields = _PLAIN_ABSENT.copy()
    fields["type"] = kind = item["type"]
    for name, value in item.items():
        need = _PLAIN_KINDS.get(name)
        if need is None or value is None:
            if value is None and need == _OBJECT:
                return None  # an object field may be absent, not null
            continue
        if type(value) is str:
            if need > 0:
                if len(value) > need:
                    return None
            elif need == _ID:
                if len(value) > 512:
                    return None
                if not value:
                    continue  # "" is no identifier (RudderStack's anonymous visitors)
            elif need == _TIME:
                value = _plain_time(value)
                if value is None:
                    return None
            elif need != _MESSAGE_ID or not 0 < len(value) <= 256:
                return None
        elif need != _OBJECT or type(value) is not dict:
            return None
        fields[name] = value
    for name in _PLAIN_OBJECTS:
        if fields[name] is None:
            fields[name] = {}
    event = fields["event"]
    if (
        (kind == "track" and not (event and event.strip()))
        or (kind == "alias" and not (fields["previousId"] and fields["userId"]))
        or (kind == "group" and not fields["groupId"])
    ):
        return None
    return fields
