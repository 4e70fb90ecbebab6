"""The profile: one person's identities, traits, computed traits and bookkeeping."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Profile:
    id: str
    created_at: str
    version: int = 0  # of the stored item; 0 = not stored yet
    updated_at: str = ""
    identities: dict[str, list[str]] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    # For each trait, the "<timestamp>|<messageId>" of the event that set it: last write wins by
    # event time (ties broken by messageId), so arrival order never matters.
    trait_stamps: dict[str, str] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_seen: str | None = None
    last_seen: str | None = None
    event_counts: dict[str, int] = field(default_factory=dict)
    daily_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> YYYYMMDD -> n
    orders: int = 0
    revenue: str = "0"  # a decimal string: sums stay exact and order-independent
    # Orders that named a `currency` (ISO 4217): code -> the sum of their amounts. `revenue` is the
    # sum of every order's amount as given, whatever its currency (documents written before
    # currencies were kept have only that); computed traits convert (logic/profile.py revenue_in).
    revenue_by_currency: dict[str, str] = field(default_factory=dict)
    first_order_at: str | None = None
    last_order_at: str | None = None
    last_utm: dict[str, str] = field(default_factory=dict)
    last_utm_stamp: str = ""
    tags: list[str] = field(default_factory=list)
    # Per tag, the stamp of its last add or remove and whether it is on: last write wins.
    tag_stamps: dict[str, list[Any]] = field(default_factory=dict)
    # "<channel>:<purpose>" ("*" for every channel) -> {"granted": bool, "stamp": ..., "source": ...}
    consent: dict[str, dict[str, Any]] = field(default_factory=dict)
    timezone: str | None = None  # IANA zone, from context.timezone (or the `timezone` trait)
    locale: str | None = None
    computed: dict[str, Any] = field(default_factory=dict)  # derived; see logic/profile.py
    # Segment id -> when the person entered it (ISO). Dynamic segments are kept current by every
    # profile write and the scheduled sweep; static ones change only by import (logic/segments.py).
    segments: dict[str, str] = field(default_factory=dict)
    # Static segment id -> [stamp, on] of its last import add or remove: last write wins.
    static_segments: dict[str, list[Any]] = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)
    merged_into: str | None = None
    # `source|messageId` of events applied by a write whose dedupe markers are not yet known to
    # be written, with when they were applied (epoch seconds).
    pending: dict[str, int] = field(default_factory=dict)
    events_applied: int = 0
    # Domain events committed with the write that caused them and not yet known published, by
    # event id: {"kind", "detail", "markers"}. An entry leaves with its unit's dedupe markers
    # (they are written only after the publish): logic/ingest.py stage_outbox.
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Profile:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in known})

    def identifier_set(self) -> set[tuple[str, str]]:
        return {(t, v) for t, values in self.identities.items() for v in values}


@dataclass
class WritePlan:
    """One atomic profile change: the survivor, merged profiles' tombstones, new identifiers."""

    survivor: Profile
    tombstones: list[Profile] = field(default_factory=list)
    new_identities: list[tuple[str, str]] = field(default_factory=list)
    merge_records: list[dict[str, Any]] = field(default_factory=list)
