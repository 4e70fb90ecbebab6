"""An independent, sequential model of what profiles a stream of events must produce.

Written from the spec, not from the implementation: union-find over the identifiers each event
carries, last-write-wins traits by (timestamp, messageId), plain counters. It assumes no
identity limit is ever reached (the generator below guarantees it), because refused merges
legitimately depend on arrival order.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def identifiers(event: dict[str, Any]) -> list[str]:
    ids = []
    if event.get("userId"):
        ids.append(f"user_id:{event['userId']}")
    if event.get("anonymousId"):
        ids.append(f"anonymous_id:{event['anonymousId']}")
    if event["type"] == "alias":
        ids.append(f"anonymous_id:{event['previousId']}")
    email = (event.get("traits") or {}).get("email") if event["type"] == "identify" else None
    if email:
        ids.append(f"email:{email.strip().lower()}")
    return ids


@dataclass
class ExpectedProfile:
    identifiers: set[str] = field(default_factory=set)
    traits: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (stamp, value)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orders: int = 0
    revenue: Decimal = Decimal(0)


def expected_profiles(events: list[dict[str, Any]]) -> list[ExpectedProfile]:
    unique = {e["messageId"]: e for e in events}.values()  # duplicates count once
    links = UnionFind()
    for event in unique:
        ids = identifiers(event)
        for other in ids[1:]:
            links.union(ids[0], other)
        links.find(ids[0])
    profiles: dict[str, ExpectedProfile] = defaultdict(ExpectedProfile)
    for event in unique:
        root = links.find(identifiers(event)[0])
        profile = profiles[root]
        profile.identifiers.update(identifiers(event))
        name = event["event"] if event["type"] == "track" else f"${event['type']}"
        profile.counts[name] += 1
        stamp = f"{event['timestamp']}|{event['messageId']}"
        if event["type"] == "identify":
            for key, value in event.get("traits", {}).items():
                if key not in profile.traits or profile.traits[key][0] < stamp:
                    profile.traits[key] = (stamp, value)
        if event["type"] == "track" and event["event"] == "Order Completed":
            profile.orders += 1
            profile.revenue += Decimal(str(event["properties"]["revenue"]))
    return list(profiles.values())


def generate(seed: int, people: int = 12, events_per_person: int = 14) -> list[dict[str, Any]]:
    """Interleaved events for overlapping identities; every person's ids end up linked."""
    rnd = random.Random(seed)
    run = uuid.UUID(int=rnd.getrandbits(128)).hex[:10]
    events: list[dict[str, Any]] = []

    def stamp() -> str:
        return f"2026-11-{rnd.randint(1, 20):02d}T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00.000Z"

    def add(**fields: Any) -> None:
        events.append({"messageId": f"{run}-{len(events)}", "timestamp": stamp(), **fields})

    for person in range(people):
        user = f"{run}-u{person}"
        anons = [f"{run}-a{person}-{i}" for i in range(rnd.randint(1, 3))]
        email = f"P{person}.{run}@Example.com"
        for anon in anons:  # what links each browser to the person (in some order)
            if rnd.random() < 0.5:
                add(type="identify", userId=user, anonymousId=anon, traits={"plan": rnd.choice(["free", "pro"])})
            else:
                add(type="alias", userId=user, previousId=anon)
        add(type="identify", userId=user, traits={"email": email, "tier": rnd.choice("abc")})
        for _ in range(events_per_person):
            anon = rnd.choice(anons)
            kind = rnd.random()
            if kind < 0.35:
                add(type="track", anonymousId=anon, event=rnd.choice(["Product Viewed", "Added to Cart"]))
            elif kind < 0.55:
                add(type="page", anonymousId=anon, name="Home")
            elif kind < 0.75:
                add(
                    type="track",
                    userId=user,
                    anonymousId=anon,
                    event="Order Completed",
                    properties={"revenue": rnd.choice([9.99, 20, 0.01, 105.5])},
                )
            else:
                add(
                    type="identify",
                    userId=user,
                    traits={"plan": rnd.choice(["free", "pro", "team"]), "score": rnd.randint(0, 100)},
                )
    rnd.shuffle(events)
    return events
