"""A Pinpoint event stream replayed: each file's plan (logic/imports/pinpoint_events.py) handed
to the ingest queue, as the endpoint import hands its people, and its suppressions recorded, as
SES feedback records them. Both are idempotent: the events' messageIds derive from Pinpoint's
event ids (the profile updater absorbs them a second time), a suppression is keyed by its
address. Used by `midstage.cli pinpoint-history` and by a file dropped under
`imports/pinpoint-history/` in the bucket (functions/run_imports)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from midstage.logic import internal_events
from midstage.logic.imports.pinpoint_events import Plan, plan_batches
from midstage.logic.timefmt import iso, parse_iso
from midstage.services.ports import EventSink, Suppressions

# Records per hand-off: the ingest queue's messages are grouped by person, so a batch bounds
# what one send holds without changing what the profile updater sees.
BATCH_RECORDS = 2000
DROP_PREFIX = "imports/pinpoint-history/"


@dataclass
class Replayed:
    """What a file (or several) gave: records per kind, events, suppressions, problems by line."""

    kinds: Counter[str] = field(default_factory=Counter)
    events: int = 0
    suppressions: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(self.kinds.values())

    def add(self, other: Replayed) -> None:
        self.kinds.update(other.kinds)
        self.events += other.events
        self.suppressions += other.suppressions
        self.problems += other.problems


def replay_text(
    text: str,
    damage: str,
    events: EventSink | None,
    suppressions: Suppressions | None,
    now: datetime | None = None,
) -> Replayed:
    """Replay one file's text; with no sink (a dry run) nothing is written, only counted. A
    failed hand-off raises HandoffFailed: running the same file again is safe. `now`, the
    replay's time, is the events' receivedAt: no lastSeen goes past it."""
    replayed = Replayed()
    for plan in plan_batches(text, BATCH_RECORDS, received_at=iso(now) if now is not None else None):
        _replay(plan, events, suppressions)
        replayed.kinds.update(plan.kinds)
        replayed.events += len(plan.events)
        replayed.suppressions += len(plan.suppressions)
        replayed.problems += plan.problems
    if damage:
        replayed.problems.append((text.count("\n") + 1, damage))
    return replayed


def _replay(plan: Plan, events: EventSink | None, suppressions: Suppressions | None) -> None:
    if events is not None and plan.events:
        events.send(_grouped(plan.events))
    if suppressions is not None:
        for found in plan.suppressions:
            suppressions.suppress(found.channel, found.address, found.reason, "all", parse_iso(found.at), found.detail)


def _grouped(batch: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in batch:
        groups.setdefault(internal_events.person_key(event), []).append(event)
    return groups
