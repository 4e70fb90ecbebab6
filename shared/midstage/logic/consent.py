"""A person's consent: one record per `<channel>:<purpose>`, and the newest choice by the time it
was made wins, whichever road it came by (the admin API, an import, a webhook, an unsubscribe
link, a tracked `Consent Updated`).

The order is total and depends only on the records, so applying the same writes in any order,
or merging profiles in any order, ends in the same state:
1. the time of the choice (the event's timestamp), later wins;
2. at the same time, a refusal wins over a grant (when two writes cannot be told apart by time,
   the person is not written to on the strength of either);
3. then the event's stamp (timestamp, messageId, sourceId), which is unique, so the outcome is
   deterministic even between two refusals or two grants.

A record of `*` (every channel) and a channel's own record are both kept. Delivery on a channel
is decided by them together (`governing`): a channel's own refusal is never lifted by a `*` grant,
however recent (a blanket grant is not a choice about that channel; grant the channel itself),
while a `*` refusal newer than the channel's own grant stops the channel too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHANNELS = ("email", "sms", "push", "inbox", "webhook", "*")
PURPOSES = ("marketing", "transactional")
EVERY_CHANNEL = "*"
MAX_SOURCE_CHARS = 200
UNSUBSCRIBE_SOURCE = "unsubscribe"


def key_of(channel: str, purpose: str) -> str:
    return f"{channel}:{purpose}"


def at_of(record: Mapping[str, Any]) -> str:
    """When the choice was made: the event time the record's stamp starts with."""
    return str(record["stamp"]).partition("|")[0]


def rank(record: Mapping[str, Any]) -> tuple[str, bool, str]:
    return at_of(record), record["granted"] is not True, str(record["stamp"])


def record(consent: dict[str, dict[str, Any]], key: str, entry: Mapping[str, Any]) -> bool:
    """Keep `entry` under `key` when it outranks what is there; True when it did."""
    known = consent.get(key)
    if known is not None and rank(known) >= rank(entry):
        return False
    consent[key] = dict(entry)
    return True


def entry(granted: bool, stamp: str, source: str) -> dict[str, Any]:
    return {"granted": granted, "stamp": stamp, "source": source}


def source_of(properties: Mapping[str, Any], fallback: str) -> str:
    """Where the choice was made, as the write says (`source`), else `fallback`."""
    given = properties.get("source")
    if isinstance(given, str) and given.strip():
        return given.strip()[:MAX_SOURCE_CHARS]
    return fallback


def governing(
    consent: Mapping[str, Mapping[str, Any]], channel: str, purpose: str
) -> tuple[str, Mapping[str, Any]] | None:
    """The record that decides `purpose` on `channel` (its key and itself), or None when there is none."""
    own_key, every_key = key_of(channel, purpose), key_of(EVERY_CHANNEL, purpose)
    own, every = consent.get(own_key), consent.get(every_key)
    if own is None:
        return (every_key, every) if every is not None else None
    if own["granted"] is not True or every is None or every["granted"] is True:
        return own_key, own  # the channel's own refusal, or a grant nothing refuses
    return (every_key, every) if rank(every) > rank(own) else (own_key, own)


def view(consent: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The API view: every record with its provenance, and per channel what decides delivery."""
    records = [_shown(key, value) for key, value in sorted(consent.items())]
    effective = []
    for channel in CHANNELS:
        if channel in (EVERY_CHANNEL, "webhook"):
            continue
        for purpose in PURPOSES:
            found = governing(consent, channel, purpose)
            if found is not None:
                key, value = found
                state = "granted" if value["granted"] is True else "refused"
                effective.append({"channel": channel, "purpose": purpose, "state": state, "decidedBy": key})
    return {"consents": records, "effective": effective}


def _shown(key: str, value: Mapping[str, Any]) -> dict[str, Any]:
    channel, _, purpose = key.partition(":")
    at, _, rest = str(value["stamp"]).partition("|")
    message_id = rest.rpartition("|")[0] if "|" in rest else rest
    return {
        "channel": channel,
        "purpose": purpose,
        "state": "granted" if value["granted"] is True else "refused",
        "at": at,
        "source": str(value.get("source") or ""),
        "messageId": message_id,
    }
