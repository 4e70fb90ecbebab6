"""Segment membership: who is in which audience, decided on the profile alone.

A dynamic segment is a condition (logic/conditions.py) judged with no event at hand; a static
one is a list kept on the profile by imports (`Profile.static_segments`, last write wins). The
profile stores its memberships (`Profile.segments`: id -> when the person entered), so every
profile write re-evaluates them with `SegmentSet.evaluate` and reports the difference with
`transitions`; a scheduled sweep does the same for `time_dependent` segments, whose truth moves
with the clock alone.

A condition may test membership of other segments (`{"path": "segments", "op": "contains",
"value": "vip"}`), so dynamic segments are evaluated in dependency order, each seeing the
memberships computed before it. Cycles are refused when a segment is saved (`validate_segment`).
"""

from __future__ import annotations

import heapq
import logging
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from midstage.logic.conditions import (
    DEFAULT_MAX_WINDOW_DAYS,
    Condition,
    ConditionError,
    Facts,
    Issue,
    compile_condition,
    split_path,
    validate,
)
from midstage.logic.timefmt import iso
from midstage.models.profile import Profile
from midstage.models.segments import SEGMENT_ID, Segment, SegmentBody

__all__ = [
    "TIME_DEPENDENT_COMPUTED",
    "SegmentSet",
    "estimate",
    "is_time_dependent",
    "referenced_segments",
    "segment_references",
    "transitions",
    "validate_segment",
]

log = logging.getLogger(__name__)

# Computed traits that change as time passes, with no event (functions/lifecycle_sweep keeps the
# same list for the traits it refreshes). `event_counts` moves only in its windows, not `total`.
TIME_DEPENDENT_COMPUTED = frozenset(
    {"lifecycle_stage", "rfm", "days_since_last_seen", "days_since_last_order", "event_counts"}
)
_RELATIVE_OPERATORS = frozenset({"within_last", "not_within_last"})
_SEGMENT_ID = re.compile(SEGMENT_ID).match
_DURATION_SHAPE = re.compile(r"[1-9][0-9]{0,5}[mhdw]").fullmatch
_STAMP_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z").fullmatch
_Z95 = 1.959963984540054  # two-sided 95 %


# ---------------------------------------------------------------------------------- the set
class SegmentSet:
    """The segments defined now, compiled once, ready to judge any number of profiles.

    Dynamic segments that do not compile, that test `segments exists` (which would depend on
    every other segment), or that sit on a cycle are `skipped` with a log line: validation
    refuses them on save, so this is defence. A skipped segment's stored memberships are kept
    as they are rather than dropped, so a broken definition never empties an audience.
    """

    def __init__(self, segments: Iterable[Segment], *, max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> None:
        defined: dict[str, Segment] = {}
        for segment in segments:
            defined[segment.id] = segment
        self._segments = defined
        self.ids: frozenset[str] = frozenset(defined)
        self.static_ids: frozenset[str] = frozenset(i for i, s in defined.items() if s.kind == "static")
        self.dynamic_ids: frozenset[str] = self.ids - self.static_ids
        self.signature: tuple[tuple[str, int], ...] = tuple(sorted((i, s.version) for i, s in defined.items()))
        self.skipped: dict[str, str] = {}

        compiled: dict[str, Condition] = {}
        for segment_id in sorted(self.dynamic_ids):
            spec = defined[segment_id].condition
            try:
                condition = compile_condition(spec, max_window_days=max_window_days)
            except ConditionError as error:
                self._skip(segment_id, f"its condition does not compile: {error.message}")
                continue
            if _reads_every_segment(spec):
                self._skip(segment_id, "its condition tests `segments exists`, which depends on every segment")
                continue
            compiled[segment_id] = condition

        graph = {i: referenced_segments(c.spec) & set(compiled) for i, c in compiled.items()}
        order, cycles = _dependency_order(graph)
        for segment_id, cycle in cycles.items():
            self._skip(segment_id, f"it sits on a cycle: {' → '.join(cycle)}")
        self.order: tuple[str, ...] = tuple(order)
        self._conditions = {i: compiled[i] for i in order}

        moving: set[str] = set()
        for segment_id in order:  # dependencies come first, so one pass computes the closure
            if is_time_dependent(compiled[segment_id]) or graph[segment_id] & moving:
                moving.add(segment_id)
        self.time_dependent: frozenset[str] = frozenset(moving)

    def _skip(self, segment_id: str, why: str) -> None:
        self.skipped[segment_id] = why
        log.warning("segment %s is not evaluated: %s", segment_id, why)

    def get(self, segment_id: str) -> Segment | None:
        return self._segments.get(segment_id)

    def evaluate(self, profile: Profile, now: datetime) -> dict[str, str]:
        """The person's memberships as of `now`: segment id -> when they entered, sorted by id.

        Static: on in `static_segments`. Dynamic: the condition, judged in dependency order with
        the memberships decided so far. A membership that continues keeps its entered time; a
        new one is entered now (static: at its import event's time). Segments no longer defined
        are dropped. Odd profiles never raise: a condition that fails keeps the stored answer.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        stored = profile.segments if isinstance(profile.segments, dict) else {}
        statics = profile.static_segments if isinstance(profile.static_segments, dict) else {}
        now_text = iso(now)
        members: dict[str, str] = {}
        for segment_id in self.static_ids:
            since = _on_since(statics.get(segment_id))
            if since is not None:
                members[segment_id] = _kept(stored, segment_id) or since or now_text
        for segment_id in self.skipped:
            entered = _kept(stored, segment_id)
            if entered:
                members[segment_id] = entered
        seen = frozenset(members)
        for segment_id, condition in self._conditions.items():
            try:
                hit = condition.test(Facts(profile, None, now, segments=seen))
            except Exception:  # a malformed stored profile must not stop the write that would fix it
                log.warning("segment %s could not judge profile %s", segment_id, profile.id, exc_info=True)
                hit = segment_id in stored
            if hit:
                members[segment_id] = _kept(stored, segment_id) or now_text
                seen = seen | {segment_id}
        return dict(sorted(members.items()))

    def evaluate_one(self, segment_id: str, profile: Profile, now: datetime) -> bool:
        """Whether the person is in one segment now (backfills, estimates), judged against the
        stored memberships of the segments it depends on. Raises KeyError for an unknown id."""
        if segment_id in self.static_ids:
            statics = profile.static_segments if isinstance(profile.static_segments, dict) else {}
            return _is_on(statics.get(segment_id))
        condition = self._conditions.get(segment_id)
        if condition is None:
            if segment_id in self.skipped:
                return isinstance(profile.segments, dict) and segment_id in profile.segments
            raise KeyError(segment_id)
        try:
            return condition.test(Facts(profile, None, now))
        except Exception:
            log.warning("segment %s could not judge profile %s", segment_id, profile.id, exc_info=True)
            return isinstance(profile.segments, dict) and segment_id in profile.segments


def _is_on(entry: Any) -> bool:
    return isinstance(entry, list | tuple) and len(entry) == 2 and entry[1] is True


def _kept(stored: Mapping[str, Any], segment_id: str) -> str | None:
    entered = stored.get(segment_id)
    return entered if isinstance(entered, str) and entered else None


def _on_since(entry: Any) -> str | None:
    """For a static entry [stamp, on] that is on, the event time of its stamp
    (`<timestamp>|<messageId>|<source>`), or "" when unreadable; None when off."""
    if not _is_on(entry) or not isinstance(entry[0], str):
        return "" if _is_on(entry) else None
    moment = entry[0].split("|", 1)[0]
    return moment if _STAMP_TIME(moment) else ""


def transitions(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Segments entered and exited between two membership maps, each sorted."""
    return sorted(set(after) - set(before)), sorted(set(before) - set(after))


# -------------------------------------------------------------------------- reading conditions
def _nodes(spec: Any, location: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every comparison and behaviour node with its JSON pointer; tolerant of broken specs."""
    if not isinstance(spec, dict):
        return
    if "path" in spec or "did" in spec:
        yield location, spec
    for key in ("all", "any"):
        members = spec.get(key)
        if isinstance(members, list):
            for index, member in enumerate(members):
                yield from _nodes(member, f"{location}/{key}/{index}")
    if "not" in spec:
        yield from _nodes(spec["not"], f"{location}/not")


def _path_of(node: Mapping[str, Any]) -> list[str]:
    segments, _ = split_path(node.get("path"))
    return segments or []


def _is_segments_path(node: Mapping[str, Any]) -> bool:
    return "path" in node and _path_of(node) == ["segments"]


def _named(node: Mapping[str, Any]) -> set[str]:
    if node.get("op") not in ("eq", "ne", "contains", "in", "not_in"):
        return set()
    value = node.get("value")
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, str)}


def _reads_every_segment(spec: Any) -> bool:
    return any(_is_segments_path(node) and node.get("op") == "exists" for _, node in _nodes(spec, ""))


def referenced_segments(condition_spec: Any) -> set[str]:
    """Ids of the segments a condition tests membership of."""
    return {segment_id for segment_id, _ in segment_references(condition_spec)}


def segment_references(condition_spec: Any, location: str = "") -> Iterator[tuple[str, str]]:
    """(segment id, JSON pointer of its comparison) for every membership test in a condition;
    `location` is the condition's own pointer in the document holding it."""
    for pointer, node in _nodes(condition_spec, location):
        if _is_segments_path(node):
            for segment_id in sorted(_named(node)):
                yield segment_id, pointer


def is_time_dependent(condition: Condition | Any) -> bool:
    """Whether the condition's truth can change with no event: relative times, behaviour
    windows, computed traits that age. It does not follow references to other segments:
    `SegmentSet.time_dependent` closes over those."""
    spec = condition.spec if isinstance(condition, Condition) else condition
    for _, node in _nodes(spec, ""):
        if "did" in node:
            if "within" in node:
                return True
            continue
        op = node.get("op")
        if op in _RELATIVE_OPERATORS:
            return True
        # before/after take absolute timestamps today; a relative form would move with the clock.
        if op in ("before", "after") and isinstance(node.get("value"), str) and _DURATION_SHAPE(node["value"]):
            return True
        path = _path_of(node)
        # computed.event_counts.<name>.total is a plain counter; its windows, or the whole map,
        # move as days pass.
        plain_total = len(path) >= 4 and path[1] == "event_counts" and path[3] == "total"
        if len(path) >= 2 and path[0] == "computed" and path[1] in TIME_DEPENDENT_COMPUTED and not plain_total:
            return True
    return False


# ---------------------------------------------------------------------------------- validation
def validate_segment(
    segment_id: str,
    body: SegmentBody,
    others: Mapping[str, Segment],
    *,
    max_window_days: int = DEFAULT_MAX_WINDOW_DAYS,
) -> list[Issue]:
    """Everything wrong with saving `body` as `segment_id`, given the other segments defined
    (`others` may include the segment's own previous version; it is replaced)."""
    issues: list[Issue] = []
    if not isinstance(segment_id, str) or not _SEGMENT_ID(segment_id):
        issues.append(Issue("/id", "a segment id is 1 to 64 of a-z 0-9 _ -, starting with a letter or digit"))
    if body.kind == "static":
        if body.condition is not None:
            issues.append(Issue("/condition", "a static segment has no condition: its members come from imports"))
        return issues
    if body.condition is None:
        issues.append(Issue("/condition", "a dynamic segment needs a condition"))
        return issues

    spec = body.condition
    issues.extend(Issue("/condition" + i.location, i.message) for i in validate(spec, max_window_days=max_window_days))
    for location, node in _nodes(spec, "/condition"):
        if "path" not in node:
            continue
        path = _path_of(node)
        if path[:1] == ["event"]:
            message = "a segment judges the profile alone: there is no event, so event.* is always missing"
            issues.append(Issue(location + "/path", message))
        if path != ["segments"]:
            continue
        if node.get("op") == "exists":
            issues.append(
                Issue(
                    location,
                    "segments exists would depend on every other segment; "
                    'test a named one: {"path": "segments", "op": "contains", "value": "<id>"}',
                )
            )
        for named in sorted(_named(node)):
            if named != segment_id and named not in others:
                issues.append(Issue(location, f"unknown segment {named!r}"))

    graph = {
        other_id: referenced_segments(other.condition)
        for other_id, other in others.items()
        if other_id != segment_id and other.kind == "dynamic"
    }
    graph[segment_id] = referenced_segments(spec)
    cycle = _find_cycle(segment_id, graph)
    if cycle is not None:
        first_hop = cycle[1]
        hops = (where for where, node in _nodes(spec, "/condition") if first_hop in referenced_segments(node))
        location = next(hops, "/condition")
        issues.append(Issue(location, f"segments cannot depend on themselves: {' → '.join(cycle)}"))
    return issues


def _find_cycle(start: str, graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The shortest path from `start` back to itself (`[a, a]` for a self-reference), or None."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for following in sorted(graph.get(node, ())):
            if following == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parents[chain[-1]])
                return [*reversed(chain), start]
            if following not in parents and following in graph:
                parents[following] = node
                queue.append(following)
    return None


def _dependency_order(graph: Mapping[str, set[str]]) -> tuple[list[str], dict[str, list[str]]]:
    """Ids with every dependency before its dependents (ties by id), and the ids on a cycle with
    one cycle each. Segments that only depend on a cycle are still ordered: they read the cycle
    members' stored memberships."""
    remaining = set(graph)
    cycles: dict[str, list[str]] = {}
    order = _kahn(graph, remaining)
    leftover = remaining - set(order)
    if leftover:
        sub = {node: graph[node] & leftover for node in leftover}
        for node in sorted(leftover):
            cycle = _find_cycle(node, sub)
            if cycle is not None:
                cycles[node] = cycle
        rest = leftover - set(cycles)
        order += _kahn({node: graph[node] & rest for node in rest}, rest)
    return order, cycles


def _kahn(graph: Mapping[str, set[str]], nodes: set[str]) -> list[str]:
    waiting = {node: len(graph[node] & nodes) for node in nodes}
    dependents: dict[str, list[str]] = {node: [] for node in nodes}
    for node in nodes:
        for dependency in graph[node] & nodes:
            dependents[dependency].append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    return order


# ---------------------------------------------------------------------------------- estimates
def estimate(matched: int, scanned: int, parts_scanned: int, parts_total: int) -> dict[str, Any]:
    """A segment's size from a sample of parallel-scan parts, with a 95 % interval.

    Each part is a uniform slice of the key space, so every profile is in the sample with
    probability f = parts_scanned / parts_total, independently: `matched` is binomial in the
    true size M with rate f, and the estimate is matched / f. The interval is Wilson's score
    interval taken on that binomial, solved for M; it narrows to the exact count as f reaches 1.
    (Multiplying a Wilson interval on the match rate matched/scanned by the extrapolated
    population scanned / f would ignore the error of the population itself, and be far too
    narrow when most profiles match.) `scanned` is reported, and bounds nothing.
    """
    for name, value in (
        ("matched", matched),
        ("scanned", scanned),
        ("parts_scanned", parts_scanned),
        ("parts_total", parts_total),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} is a whole number, at least 0")
    if matched > scanned:
        raise ValueError("matched cannot exceed scanned")
    if not 1 <= parts_scanned <= parts_total:
        raise ValueError("parts_scanned is between 1 and parts_total")
    report: dict[str, Any] = {"exact": parts_scanned == parts_total, "scanned": scanned, "matched": matched}
    if report["exact"]:
        return {"estimated": matched, "low": matched, "high": matched, **report}
    rate = parts_scanned / parts_total
    z2 = _Z95 * _Z95
    # (matched - rate * M)^2 = z^2 * M * rate * (1 - rate), a quadratic in M.
    middle = 2 * rate * matched + z2 * rate * (1 - rate)
    spread = math.sqrt(max(middle * middle - 4 * rate * rate * matched * matched, 0.0))
    low = (middle - spread) / (2 * rate * rate)
    high = (middle + spread) / (2 * rate * rate)
    estimated = round(matched / rate)
    return {
        "estimated": estimated,
        # The matches seen are certain; the bounds never cross the estimate.
        "low": min(max(math.floor(low), matched), estimated),
        "high": max(math.ceil(high), estimated),
        **report,
    }
