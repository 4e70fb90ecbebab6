"""What the condition language is made of: its limits and operators, `Facts`, issues and the
compiled `Condition`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from midstage.errors import ConditionError as ConditionError
from midstage.errors import Issue as Issue
from midstage.models.profile import Profile

DEFAULT_MAX_WINDOW_DAYS = 90
MAX_NODES = 500
MAX_DEPTH = 12
MAX_STRING = 1024
MAX_LIST_VALUES = 1000
MAX_PATH_SEGMENTS = 8
MAX_PATTERN = 256
REGEX_WINDOW = 2048
# Backtracking steps a pattern may be estimated to need on REGEX_WINDOW characters: one
# unbounded quantifier searched anywhere, or two adjacent ones anchored at the start (~10 ms).
REGEX_WORK_BUDGET = REGEX_WINDOW * REGEX_WINDOW
MAX_ISSUES = 100
MAX_COUNT = 10**9


OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "regex",
    "exists",
    "within_last",
    "not_within_last",
    "before",
    "after",
)


Check = Callable[[Any], bool]
Test = Callable[["Facts"], bool]
Explain = Callable[["Facts"], dict[str, Any]]
Getter = Callable[["Facts"], Any]


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition sees. `event` is a slim event (see logic.profile.slim_event)."""

    profile: Profile | None
    event: Mapping[str, Any] | None
    now: datetime  # aware; relative dates and behaviour windows count back from it
    # The segments to judge `segments` conditions by; None reads the profile's stored memberships.
    # Segment evaluation passes the memberships computed so far, in dependency order.
    segments: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Facts.now must be timezone-aware")


class Condition:
    """A compiled condition. `test` is the closure tree itself, so a call costs no dispatch."""

    __slots__ = ("_explain", "paths", "roots", "spec", "test")

    test: Test
    spec: Any
    paths: frozenset[str]  # every path read, canonical; behaviour counts as behaviour["<name>"]
    roots: frozenset[str]  # their first segments: "traits", "event", "behaviour", ...
    _explain: Explain

    def __init__(self, spec: Any, test: Test, explain: Explain, paths: frozenset[str]) -> None:
        self.spec = spec
        self.test = test
        self._explain = explain
        self.paths = paths
        self.roots = frozenset(re.split(r"[.\[]", path, maxsplit=1)[0] for path in paths)

    def explain(self, facts: Facts) -> dict[str, Any]:
        """A trace for dry runs: each node's spec, whether it matched, the value seen, and why.

        Every child is evaluated (no short-circuit), so the trace shows all of them.
        """
        return self._explain(facts)

    def __repr__(self) -> str:
        return f"Condition({json.dumps(self.spec)[:200]})"
