"""A Pinpoint event stream replayed: a file's plan (logic/imports/pinpoint_events.py) handed to
the ingest queue, as the endpoint import hands its people, and its suppressions recorded, as SES
feedback records them. Both are idempotent: the events' messageIds derive from Pinpoint's event
ids (the profile updater absorbs them a second time), a suppression is keyed by its address."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from midstage.logic import internal_events
from midstage.logic.imports.pinpoint_events import Plan
from midstage.logic.timefmt import parse_iso
from midstage.services.ports import EventSink, Suppressions

# Events per hand-off: the ingest queue's messages are grouped by person, so a batch bounds
# what one send holds without changing what the profile updater sees.
BATCH_EVENTS = 2000


def replay(plan: Plan, events: EventSink | None, suppressions: Suppressions | None) -> int:
    """Hand the plan's events to the ingest queue and record its suppressions; returns the
    number of queue messages sent. With no sink (a dry run) nothing is written."""
    messages = 0
    if events is not None:
        for start in range(0, len(plan.events), BATCH_EVENTS):
            messages += events.send(_grouped(plan.events[start : start + BATCH_EVENTS]))
    if suppressions is not None:
        for found in plan.suppressions:
            suppressions.suppress(found.channel, found.address, found.reason, "all", parse_iso(found.at), found.detail)
    return messages


def _grouped(batch: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for event in batch:
        groups.setdefault(internal_events.person_key(event), []).append(event)
    return groups
