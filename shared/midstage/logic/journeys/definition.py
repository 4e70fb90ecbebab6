"""A journey's definition: validating it (steps, graph, traits) and compiling it for the runner."""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from midstage.logic.conditions import Condition, ConditionError, Issue, compile_condition
from midstage.models.journeys import (
    ConditionStep,
    DateEntry,
    EventEntry,
    ExitStep,
    Journey,
    JourneyBody,
    RandomStep,
    Step,
    WaitStep,
    duration_of,
)

MAX_PATH = 50
_LISTED_IDS = 12  # unknown-step messages list the known ids when there are at most this many
_TRAIT_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_TRAIT_SEGMENTS = 8
# Traits the platform reads for something else: a zone or a language is never a date.
_RESERVED_TRAITS = {"timezone": "the person's time zone", "locale": "the person's language"}


# ============================================================================== compiled definition
@dataclass(frozen=True)
class CompiledGoal:
    event: str
    where: Condition | None


@dataclass(frozen=True)
class CompiledJourney:
    """A journey with its conditions compiled and its waits measured, so the stepper never parses."""

    journey: Journey
    entry_where: Condition | None
    entry_conditions: Condition | None
    step_conditions: Mapping[str, Condition]  # condition steps
    wait_where: Mapping[str, Condition]  # until_event waits with a `where`
    goals: tuple[CompiledGoal, ...]
    wait_lengths: Mapping[str, timedelta]  # a wait's duration, or its timeout for until_event
    wait_clocks: Mapping[str, time]  # until_time waits

    @property
    def id(self) -> str:
        return self.journey.id

    @property
    def version(self) -> int:
        return self.journey.version

    @property
    def steps(self) -> Mapping[str, Step]:
        return self.journey.steps


def validate_journey(body: JourneyBody, *, max_window_days: int = 90) -> list[Issue]:
    """Everything wrong with how a definition fits together, each with a JSON-pointer location,
    or [] when it can run. The model has already checked each part's own shape."""
    return _check(body, max_window_days)[0]


def compile_journey(journey: Journey, *, max_window_days: int = 90) -> CompiledJourney:
    """Validate and compile once per definition; raise ConditionError listing every issue."""
    issues, conditions = _check(journey, max_window_days)
    if issues:
        raise ConditionError(issues)
    lengths: dict[str, timedelta] = {}
    clocks: dict[str, time] = {}
    for step_id, step in journey.steps.items():
        if isinstance(step, WaitStep):
            if step.until_time is not None:
                clocks[step_id] = time.fromisoformat(step.until_time)
            else:
                lengths[step_id] = duration_of(step.duration or step.timeout or "")
    return CompiledJourney(
        journey=journey,
        entry_where=conditions.get("/entry/where"),
        entry_conditions=conditions.get("/entry_conditions"),
        step_conditions={
            step_id: conditions[f"/steps/{step_id}/condition"]
            for step_id, step in journey.steps.items()
            if isinstance(step, ConditionStep)
        },
        wait_where={
            step_id: conditions[f"/steps/{step_id}/until_event/where"]
            for step_id in journey.steps
            if f"/steps/{step_id}/until_event/where" in conditions
        },
        goals=tuple(
            CompiledGoal(goal.event, conditions.get(f"/exit_when/{index}/where"))
            for index, goal in enumerate(journey.exit_when)
        ),
        wait_lengths=lengths,
        wait_clocks=clocks,
    )


def _check(body: JourneyBody, max_window_days: int) -> tuple[list[Issue], dict[str, Condition]]:
    """One walk for validate and compile, so they cannot disagree: the issues, and each compiled
    condition by its location."""
    issues: list[Issue] = []
    conditions: dict[str, Condition] = {}

    def condition(spec: dict[str, Any] | None, location: str) -> None:
        if spec is None:
            return
        try:
            conditions[location] = compile_condition(spec, max_window_days=max_window_days)
        except ConditionError as error:
            issues.extend(Issue(location + i.location, i.message) for i in error.issues)

    entry = body.entry
    if isinstance(entry, EventEntry):
        condition(entry.where, "/entry/where")
    elif isinstance(entry, DateEntry):
        problem = _trait_path_problem(entry.trait)
        if problem:
            issues.append(Issue("/entry/trait", problem))
    condition(body.entry_conditions, "/entry_conditions")

    known = list(body.steps)
    if body.start not in body.steps:
        issues.append(Issue("/start", _unknown_step(body.start, known)))
    for step_id, step in body.steps.items():
        here = f"/steps/{step_id}"
        for pointer, target in _pointers(step):
            if target not in body.steps:
                issues.append(Issue(f"{here}/{pointer}", _unknown_step(target, known)))
        if isinstance(step, ConditionStep):
            condition(step.condition, f"{here}/condition")
        elif isinstance(step, WaitStep) and step.until_event is not None:
            condition(step.until_event.where, f"{here}/until_event/where")
        elif isinstance(step, RandomStep) and step.experiment is not None:
            arms = [branch.arm for branch in step.branches]
            if None in arms or len(set(arms)) != len(arms):
                issues.append(Issue(f"{here}/branches", "split by an experiment, each branch names a different `arm`"))
        elif isinstance(step, RandomStep):
            hundredths = sum(round(branch.percent * 100) for branch in step.branches)
            if hundredths != 10_000:
                issues.append(
                    Issue(f"{here}/branches", f"the percents add up to {hundredths / 100:g}; they must add up to 100")
                )
    for index, goal in enumerate(body.exit_when):
        condition(goal.where, f"/exit_when/{index}/where")

    issues.extend(_graph_issues(body))
    return issues, conditions


def _pointers(step: Step) -> list[tuple[str, str]]:
    """The step ids a step leads to, each with its location inside the step."""
    if isinstance(step, ExitStep):
        return []
    if isinstance(step, ConditionStep):
        return [("yes", step.yes), ("no", step.no)]
    if isinstance(step, RandomStep):
        return [(f"branches/{index}/next", branch.next) for index, branch in enumerate(step.branches)]
    if isinstance(step, WaitStep) and step.until_event is not None:
        assert step.on_event is not None
        assert step.on_timeout is not None
        return [("on_event", step.on_event), ("on_timeout", step.on_timeout)]
    assert step.next is not None  # the model requires it on every other step
    return [("next", step.next)]


def _unknown_step(target: str, known: list[str]) -> str:
    message = f"no step {target!r}"
    close = difflib.get_close_matches(target, known, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if len(known) <= _LISTED_IDS:
        message += f" (steps: {', '.join(known)})"
    return message


def _graph_issues(body: JourneyBody) -> list[Issue]:
    steps = body.steps
    order = {step_id: index for index, step_id in enumerate(steps)}
    successors = {
        step_id: list(dict.fromkeys(t for _, t in _pointers(step) if t in steps)) for step_id, step in steps.items()
    }
    issues: list[Issue] = []

    reachable = _reach([body.start] if body.start in steps else [], successors)
    if body.start in steps:
        issues.extend(Issue(f"/steps/{s}", "unreachable from start") for s in steps if s not in reachable)

    for members in _strongly_connected(steps, successors, skip=lambda s: isinstance(steps[s], WaitStep)):
        first = min(members, key=order.__getitem__)
        cycle = _shortest_cycle(first, members, successors)
        issues.append(
            Issue(
                f"/steps/{first}",
                f"a cycle without a wait: {' → '.join(cycle)}; a loop must pass through a wait step",
            )
        )

    exits = [s for s, step in steps.items() if isinstance(step, ExitStep)]
    if not exits:
        issues.append(Issue("/steps", 'no exit step: add one ({"type": "exit"}) so instances can complete'))
    else:
        # A step with an unknown reference is already reported; counting it as able to exit keeps
        # one mistake from being reported again at every step before it.
        dangling = [s for s, step in steps.items() if any(t not in steps for _, t in _pointers(step))]
        predecessors: dict[str, list[str]] = {s: [] for s in steps}
        for source, targets in successors.items():
            for target in targets:
                predecessors[target].append(source)
        can_exit = _reach(exits + dangling, predecessors)
        issues.extend(
            Issue(f"/steps/{s}", "no exit step can be reached from here: every path from it loops forever")
            for s in steps
            if s in reachable and s not in can_exit
        )
    return issues


def _reach(starts: Iterable[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(starts)
    queue = deque(seen)
    while queue:
        for target in edges[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _strongly_connected(nodes: Iterable[str], successors: Mapping[str, list[str]], *, skip: Any) -> list[set[str]]:
    """The cycles among nodes not skipped, as strongly connected components (Tarjan's, without
    recursion); a single node counts only with an edge to itself."""
    kept = [n for n in nodes if not skip(n)]
    allowed = set(kept)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    counter = 0
    for root in kept:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [t for t in successors[node] if t in allowed]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:  # the parent takes the lowest link of the child it just finished
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1 or node in successors[node]:
                    found.append(members)
    return found


def _shortest_cycle(first: str, members: set[str], successors: Mapping[str, list[str]]) -> list[str]:
    """The shortest walk first → ... → first inside a strongly connected component."""
    came_from: dict[str, str] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for target in successors[node]:
            if target == first:
                path = [node]
                while path[-1] != first:
                    path.append(came_from[path[-1]])
                return [*reversed(path), first]
            if target in members and target not in came_from:
                came_from[target] = node
                queue.append(target)
    return [first, first]  # unreachable for a real component; keeps the type honest


def _trait_path_problem(trait: str) -> str | None:
    segments = trait.split(".")
    if segments[0] == "traits" and len(segments) > 1:
        return f"name the trait without the traits. prefix, like {'.'.join(segments[1:])!r}"
    if len(segments) > _MAX_TRAIT_SEGMENTS:
        return f"a trait path has at most {_MAX_TRAIT_SEGMENTS} segments"
    for segment in segments:
        if segment.startswith("$"):
            return f"{trait!r} is reserved: traits starting with $ are the platform's own bookkeeping"
        if not _TRAIT_SEGMENT.fullmatch(segment):
            return f"bad trait path {trait!r}: dot-separated names of 1 to 64 of A-Z a-z 0-9 _ -"
    if trait in _RESERVED_TRAITS:
        return f"{trait!r} is reserved: it holds {_RESERVED_TRAITS[trait]}, not a date"
    return None
