"""Erasure (SUPPRESS_WITH_DELETE, DELETE_ONLY): who a person is for the deleters, which keys the
items under their profiles point at, what in a shared store is theirs, and when a request is done.

Pure: the stores' answers, the time and the shard counts are arguments (services/erasure.py
reads and deletes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from midstage import keys
from midstage.logic import privacy, sharding
from midstage.logic.identity import Identifier
from midstage.logic.timefmt import minute_of, parse_iso

DONE = "done"
FAILED = "failed"
ERASURE_TYPES = frozenset({"SUPPRESS_WITH_DELETE", "DELETE_ONLY"})

# Under a profile's partition (P#<id>), the sort-key prefix of each store's items. What is left
# under the partition once these are gone (the profile item itself, a kind of item added later)
# goes with the profile, last: it is what finds the person again if a deletion is retried.
PARTITION_STORES: tuple[tuple[str, str], ...] = (
    ("timeline", keys.TIMELINE_PREFIX),
    ("merges", keys.MERGE_PREFIX),
    ("messages", keys.MESSAGE_REF_PREFIX),
    ("inbox", keys.INBOX_PREFIX),
    ("caps", keys.CAPS_SK),
    ("rule_fires", "FIRE#"),
    ("journeys", keys.JOURNEY_PREFIX),
    ("campaign_touches", keys.TOUCH_PREFIX),
    ("offer_codes", keys.OFFER_HOLDING_PREFIX),
    ("offer_refusals", "OFFERREFUSAL#"),
)


@dataclass(frozen=True)
class Person:
    """Everything a deleter needs of one person: every profile id (the live one and those merged
    into it) and every identifier they are known by."""

    profile_ids: tuple[str, ...]
    identifiers: tuple[Identifier, ...]

    @property
    def values(self) -> frozenset[str]:
        """Every identifier value and profile id, as a shared store would hold them."""
        return frozenset(self.profile_ids) | {value for _, value in self.identifiers}

    def of_type(self, id_type: str) -> list[str]:
        return sorted(value for t, value in self.identifiers if t == id_type)

    def as_record(self) -> dict[str, Any]:
        return {"profileIds": list(self.profile_ids), "identifiers": [list(i) for i in self.identifiers]}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Person:
        return cls(
            tuple(str(p) for p in record.get("profileIds") or []),
            tuple((str(t), str(v)) for t, v in record.get("identifiers") or []),
        )


def person(profile_id: str, merged_from: Iterable[str], identities: Mapping[str, Iterable[str]]) -> Person:
    every = privacy.person_identifiers(profile_id, merged_from, identities)
    profile_ids = tuple(sorted({profile_id, *merged_from}))
    return Person(profile_ids, tuple(i for i in every if i[0] != privacy.PROFILE_ID))


def merged(found: Sequence[Person], remembered: Sequence[Person]) -> list[Person]:
    """The people to erase on this try: those resolved now and those a previous try of the same
    request resolved (whose profiles it may already have deleted), each once. A person met both
    ways (sharing a profile id) is one person with everything either way knew."""
    people: list[Person] = []
    for candidate in [*remembered, *found]:
        for n, known in enumerate(people):
            if set(known.profile_ids) & set(candidate.profile_ids):
                people[n] = Person(
                    tuple(sorted({*known.profile_ids, *candidate.profile_ids})),
                    tuple(sorted({*known.identifiers, *candidate.identifiers})),
                )
                break
        else:
            people.append(candidate)
    return sorted(people, key=lambda p: p.profile_ids)


# --------------------------------------------------------------------------- derived keys
def marker_keys(events: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The dedupe markers of timeline events (`MSG#<source>#<messageId>`)."""
    found = {(str(e.get("sourceId") or ""), str(e["messageId"])) for e in events if e.get("messageId")}
    return [keys.marker_key(source, message_id) for source, message_id in sorted(found)]


def timer_key(due: str, timer_id: str) -> dict[str, str]:
    """Where TimerStore.schedule files a timer due at `due`: the minute after it, the shard of its id.
    (A timer refiled because the sweep had closed that minute is in a later one: it expires by TTL
    and, its instance gone, wakes nothing.)"""
    moment = parse_iso(due)
    shard = sum(timer_id.encode()) % keys.TIMER_SHARDS
    return {"pk": keys.timer_pk(minute_of(moment + timedelta(minutes=1)), shard), "sk": timer_id}


def journey_timer(instance: Mapping[str, Any]) -> dict[str, str] | None:
    wait = instance.get("wait")
    if not isinstance(wait, Mapping) or not wait.get("timer_id") or not wait.get("until"):
        return None
    return timer_key(str(wait["until"]), str(wait["timer_id"]))


def message_keys(message: Mapping[str, Any], origin_shards: int) -> list[dict[str, str]]:
    """A ledger record and what is keyed by its id: its references by origin (every shard the id
    may be under, and the unsharded key), its quiet-hours timer, its once-markers."""
    message_id = str(message["id"])
    found = [keys.message_key(message_id)]
    origin, created = message.get("origin"), message.get("createdAt")
    if isinstance(origin, str) and "#" in origin and created:
        kind, origin_id = origin.split("#", 1)
        shard = sharding.shard_of(message_id, origin_shards)
        for pk in (keys.origin_shard_pk(kind, origin_id, shard), keys.origin_pk(kind, origin_id)):
            found.append({"pk": pk, "sk": f"{created}#{message_id}"})
    if message.get("notBefore"):
        due = datetime.fromtimestamp(int(message["notBefore"]), tz=UTC)
        found.append(timer_key(due.isoformat(), message_id))
    return found


def once_partitions(message_id: str) -> list[str]:
    """The once-markers' partitions a message's feedback writes (services/campaigns.py)."""
    return [f"ONCE#outcome:{message_id}", f"ONCE#status:{message_id}"]


def conversion_markers(touches: Iterable[Mapping[str, Any]], profile_ids: Iterable[str]) -> list[dict[str, str]]:
    """The conversion once-markers of the campaign runs that touched the person."""
    runs = {f"{t['origin_id']}:{t['run']}" for t in touches if t.get("kind") == "campaign"}
    return [keys.once_key(f"conv:{run}", p) for run in sorted(runs) for p in sorted(set(profile_ids))]


# --------------------------------------------------------------------------- shared stores
def mentions(value: Any, wanted: frozenset[str]) -> bool:
    """Whether any string in a document (keys and values, at any depth) is one of `wanted`: a
    quarantined event is theirs when it names one of their identifiers or profiles."""
    if isinstance(value, str):
        return value in wanted or value.strip().lower() in wanted
    if isinstance(value, Mapping):
        return any(mentions(k, wanted) or mentions(v, wanted) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(mentions(v, wanted) for v in value)
    return False


ARCHIVE_PERSON_COLUMNS = ("profile_id", "merged_profile_id", "user_id", "anonymous_id")


def archive_filter(people: Sequence[Person]) -> dict[str, list[str]]:
    """Per archive column, the values whose rows are a person's (a row is theirs when any of these
    columns holds one of them: adapters/erasure_store.py): their profile ids (under which the
    updater archives every event, merged profiles' too), their user and anonymous ids."""
    profile_ids = sorted({p for person in people for p in person.profile_ids})
    return {
        "profile_id": profile_ids,
        "merged_profile_id": profile_ids,
        "user_id": sorted({v for person in people for v in person.of_type("user_id")}),
        "anonymous_id": sorted({v for person in people for v in person.of_type("anonymous_id")}),
    }


# --------------------------------------------------------------------------- the request
def store_report(store: str, items: int, status: str = DONE, **more: Any) -> dict[str, Any]:
    return {"store": store, "status": status, "items": items, **more}


def finished(report: Sequence[Mapping[str, Any]], stores: Sequence[str]) -> bool:
    """Done only when every store reported done."""
    done = {e["store"] for e in report if e.get("status") == DONE}
    return all(store in done for store in stores)
