"""The compiler: one walk over a definition that collects issues and builds closures together,
so `validate` and `compile_condition` can never disagree.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from midstage.logic.conditions.model import (
    DEFAULT_MAX_WINDOW_DAYS,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_ISSUES,
    MAX_LIST_VALUES,
    MAX_NODES,
    MAX_PATTERN,
    MAX_STRING,
    OPERATORS,
    REGEX_WINDOW,
    Check,
    Condition,
    ConditionError,
    Facts,
    Issue,
)
from midstage.logic.conditions.nodes import (
    Compiled,
    all_test,
    any_test,
    behaviour_node,
    between_check,
    comparison_node,
    contains_check,
    eq_check,
    in_check,
    order_check,
)
from midstage.logic.conditions.paths import ResolvedPath, resolve_path, split_path
from midstage.logic.conditions.regex import regex_problem
from midstage.logic.conditions.values import DURATION, duration, is_number, json_type, parse_time, pointer, show

_UNBOUNDED = 2**63  # at_most when absent: more than any counter holds


_ORDERING = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
# What each kind of path supports; "any" is a path into free-form data (traits, properties).
_KIND_OPERATORS: dict[str, tuple[str, ...]] = {
    "any": OPERATORS,
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "exists"),
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "regex", "exists"),
    "time": (
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "before",
        "after",
        "within_last",
        "not_within_last",
        "exists",
    ),
    "list": ("contains", "exists"),
}
_KIND_NAMES = {"number": "a number", "string": "a string", "time": "a timestamp", "list": "a list"}
_NODE_KEYS = ("all", "any", "not", "path", "did")
_COMPARISON_KEYS = ("path", "op", "value")
_BEHAVIOUR_KEYS = ("did", "at_least", "at_most", "exactly", "within")


def validate(spec: Any, *, max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> list[Issue]:
    """Everything wrong with a definition (at most MAX_ISSUES), or [] when it compiles."""
    return _Compiler(max_window_days).run(spec)[1]


def compile_condition(spec: Any, *, max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> Condition:
    """Compile once, test many times. Raises ConditionError listing every issue found."""
    compiler = _Compiler(max_window_days)
    node, issues = compiler.run(spec)
    if issues or node is None:
        raise ConditionError(issues)
    return Condition(spec, node.test, node.explain, frozenset(compiler.paths))


class _Compiler:
    """One walk over a definition: it collects issues and builds closures at the same time,
    so `validate` and `compile_condition` can never disagree."""

    def __init__(self, max_window_days: int) -> None:
        if isinstance(max_window_days, bool) or not isinstance(max_window_days, int) or max_window_days < 1:
            raise ValueError("max_window_days is a whole number of days, at least 1")
        self.max_window_days = max_window_days
        self.issues: list[Issue] = []
        self.nodes = 0
        self.too_big = False
        self.paths: set[str] = set()

    def run(self, spec: Any) -> tuple[Compiled | None, list[Issue]]:
        node = self.node(spec, "", 1)
        return node, self.issues

    def issue(self, location: str, message: str) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(location, message))

    def node(self, spec: Any, location: str, depth: int) -> Compiled | None:
        if self.too_big:
            return None
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.too_big = True
            self.issue("", f"a condition has at most {MAX_NODES} nodes")
            return None
        if depth > MAX_DEPTH:
            self.issue(location, f"nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(spec, dict):
            self.issue(location, f"expected a condition object, got {json_type(spec)}")
            return None
        kinds = [key for key in _NODE_KEYS if key in spec]
        if len(kinds) != 1:
            found = f"has {' and '.join(kinds)}" if kinds else "has none of them"
            self.issue(
                location,
                f"a condition has exactly one of: all, any, not, path (a comparison), did (a behaviour count); {found}",
            )
            return None
        kind = kinds[0]
        if kind in ("all", "any"):
            return self.group(kind, spec, location, depth)
        if kind == "not":
            return self.negation(spec, location, depth)
        if kind == "path":
            return self.comparison(spec, location)
        return self.behaviour(spec, location)

    def unknown_keys(self, spec: dict[Any, Any], allowed: tuple[str, ...], location: str, what: str) -> bool:
        bad = [key for key in spec if key not in allowed]
        for key in bad:
            self.issue(pointer(location, key), f"unknown key {str(key)!r}; {what} has: {', '.join(allowed)}")
        return bool(bad)

    # ---------------------------------------------------------------------------- combinators
    def group(self, kind: str, spec: dict[str, Any], location: str, depth: int) -> Compiled | None:
        bad = self.unknown_keys(spec, (kind,), location, f"an {kind!r} condition")
        where = pointer(location, kind)
        members = spec[kind]
        if not isinstance(members, list):
            self.issue(where, f"{kind} takes a list of conditions, not {json_type(members)}")
            return None
        if not members:
            self.issue(
                where, f"an empty {kind} list is refused; it would match {'everyone' if kind == 'all' else 'no one'}"
            )
            return None
        children: list[Compiled | None] = []
        for index, member in enumerate(members):
            if self.too_big:
                return None
            children.append(self.node(member, pointer(where, index), depth + 1))
        ready = [child for child in children if child is not None]
        if bad or len(ready) != len(children):
            return None
        tests = tuple(child.test for child in ready)
        explains = tuple(child.explain for child in ready)
        test = all_test(tests) if kind == "all" else any_test(tests)
        needed = "all must match" if kind == "all" else "at least one must match"

        def explain(facts: Facts) -> dict[str, Any]:
            traces = [child(facts) for child in explains]
            hits = sum(1 for trace in traces if trace["matched"])
            matched = hits == len(traces) if kind == "all" else hits > 0
            return {
                "condition": spec,
                "matched": matched,
                "actual": None,
                "reason": f"{hits} of {len(traces)} matched; {needed}",
                "children": traces,
            }

        return Compiled(test, explain)

    def negation(self, spec: dict[str, Any], location: str, depth: int) -> Compiled | None:
        bad = self.unknown_keys(spec, ("not",), location, "a 'not' condition")
        inner = self.node(spec["not"], pointer(location, "not"), depth + 1)
        if inner is None or bad:
            return None
        inner_test, inner_explain = inner

        def test(facts: Facts) -> bool:
            return not inner_test(facts)

        def explain(facts: Facts) -> dict[str, Any]:
            trace = inner_explain(facts)
            said = "matched" if trace["matched"] else "did not match"
            return {
                "condition": spec,
                "matched": not trace["matched"],
                "actual": None,
                "reason": f"the inner condition {said}",
                "children": [trace],
            }

        return Compiled(test, explain)

    # ---------------------------------------------------------------------------- comparisons
    def comparison(self, spec: dict[str, Any], location: str) -> Compiled | None:
        bad = self.unknown_keys(spec, _COMPARISON_KEYS, location, "a comparison")
        segments, why = split_path(spec["path"])
        path = None
        if segments is not None:
            path, why = resolve_path(segments)
        if path is None:
            self.issue(pointer(location, "path"), why)
        op = spec.get("op")
        if "op" not in spec:
            self.issue(pointer(location, "op"), f"missing; one of: {', '.join(OPERATORS)}")
        elif not isinstance(op, str) or op not in OPERATORS:
            self.issue(pointer(location, "op"), f"unknown operator {show(op)}; one of: {', '.join(OPERATORS)}")
            op = None
        if "value" not in spec:
            self.issue(pointer(location, "value"), "missing")
        if path is None or not isinstance(op, str) or "value" not in spec:
            return None
        if op not in _KIND_OPERATORS[path.kind]:
            self.issue(pointer(location, "op"), _wrong_operator(path, op))
            return None
        value = spec["value"]
        built = self.check(op, path.kind, value, pointer(location, "value"))
        if built is None or bad:
            return None
        self.paths.add(path.label)
        return comparison_node(spec, path, op, value, built)

    def check(self, op: str, kind: str, value: Any, where: str) -> Check | Callable[[Any, datetime], bool] | None:
        """The check of one comparison, validating its value; None after reporting an issue."""
        if op == "exists":
            if not isinstance(value, bool):
                self.issue(where, f"exists takes true or false, not {json_type(value)}")
                return None
            return _exists_placeholder
        if op in ("eq", "ne"):
            if not self.scalar(value, kind, where, op):
                return None
            equal = eq_check(value)
            return equal if op == "eq" else (lambda actual: not equal(actual))
        if op in _ORDERING:
            bound = self.ordered(value, kind, where, op)
            return None if bound is None else order_check(_ORDERING[op], bound)
        if op == "between":
            return self.between(value, kind, where)
        if op in ("in", "not_in"):
            return self.membership(op, value, kind, where)
        if op == "contains":
            if not self.scalar(value, "string" if kind in ("string", "list") else kind, where, op):
                return None
            return contains_check(value)
        if op == "starts_with":
            if not isinstance(value, str) or not value:
                self.issue(where, f"starts_with takes a non-empty string, not {json_type(value)}")
                return None
            if not self.short(value, where):
                return None
            prefix = value
            return lambda actual: type(actual) is str and actual.startswith(prefix)
        if op == "regex":
            return self.regex(value, where)
        if op in ("before", "after"):
            moment = parse_time(value) if isinstance(value, str) else None
            if moment is None:
                self.issue(where, f"{op} takes an ISO 8601 timestamp, like 2026-11-22T10:00:00Z")
                return None
            return order_check(operator.lt if op == "before" else operator.gt, moment)
        span = duration(value)  # within_last / not_within_last
        if span is None:
            self.issue(where, f'{op} takes a duration like "15m", "12h", "30d" or "2w" (at most 100 years)')
            return None
        if op == "within_last":

            def within(actual: Any, now: datetime) -> bool:
                moment = parse_time(actual)
                return moment is not None and now - span <= moment <= now

            return within

        def older(actual: Any, now: datetime) -> bool:
            moment = parse_time(actual)
            return moment is not None and moment < now - span

        return older

    def short(self, value: str, where: str) -> bool:
        if len(value) > MAX_STRING:
            self.issue(where, f"strings are limited to {MAX_STRING} characters (this one has {len(value)})")
            return False
        return True

    def scalar(self, value: Any, kind: str, where: str, op: str) -> bool:
        """A value to compare by equality with a path of `kind`."""
        if kind == "number":
            ok, wanted = is_number(value), "a number"
        elif kind == "string":
            ok, wanted = isinstance(value, str), "a string"
        elif kind == "time":
            ok, wanted = isinstance(value, str) and parse_time(value) is not None, "an ISO 8601 timestamp"
        else:
            ok = isinstance(value, str | bool) or is_number(value)
            wanted = "a string, a number or a boolean"
        if not ok:
            self.issue(where, f"{op} takes {wanted} here, not {json_type(value)}")
            return False
        return not isinstance(value, str) or self.short(value, where)

    def ordered(self, value: Any, kind: str, where: str, op: str) -> Any:
        """The bound of an ordering comparison: a number or a datetime; None after an issue."""
        if kind != "time" and is_number(value):
            return value
        if kind != "number" and isinstance(value, str):
            moment = parse_time(value)
            if moment is not None:
                return moment
        wanted = {"number": "a number", "time": "an ISO 8601 timestamp"}.get(kind, "a number or an ISO 8601 timestamp")
        self.issue(where, f"{op} takes {wanted}, not {json_type(value)}")
        return None

    def between(self, value: Any, kind: str, where: str) -> Check | None:
        if not isinstance(value, list) or len(value) != 2:
            self.issue(where, "between takes [low, high]: two numbers or two ISO 8601 timestamps")
            return None
        low = self.ordered(value[0], kind, pointer(where, 0), "between")
        high = self.ordered(value[1], kind, pointer(where, 1), "between")
        if low is None or high is None:
            return None
        if isinstance(low, datetime) != isinstance(high, datetime):
            self.issue(where, "between takes two numbers or two timestamps, not one of each")
            return None
        if low > high:
            self.issue(where, "between takes [low, high] with low <= high")
            return None
        return between_check(low, high)

    def membership(self, op: str, value: Any, kind: str, where: str) -> Check | None:
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_VALUES:
            self.issue(where, f"{op} takes a list of 1 to {MAX_LIST_VALUES} values")
            return None
        for index, item in enumerate(value):
            if not self.scalar(item, kind, pointer(where, index), op):
                return None  # one issue per list is enough to fix it
        inside = in_check(value)
        return inside if op == "in" else (lambda actual: not inside(actual))

    def regex(self, value: Any, where: str) -> Check | None:
        if not isinstance(value, str) or not value:
            self.issue(where, f"regex takes a non-empty pattern string, not {json_type(value)}")
            return None
        if len(value) > MAX_PATTERN:
            self.issue(where, f"patterns are limited to {MAX_PATTERN} characters (this one has {len(value)})")
            return None
        problem = regex_problem(value)
        if problem:
            self.issue(where, problem)
            return None
        search = re.compile(value).search
        return lambda actual: type(actual) is str and search(actual, 0, REGEX_WINDOW) is not None

    # ------------------------------------------------------------------------------ behaviour
    def behaviour(self, spec: dict[str, Any], location: str) -> Compiled | None:
        bad = self.unknown_keys(spec, _BEHAVIOUR_KEYS, location, "a behaviour condition")
        name = spec["did"]
        ok = not bad
        if not isinstance(name, str) or not name:
            self.issue(pointer(location, "did"), f"did takes an event name, not {json_type(name)}")
            ok = False
        elif not self.short(name, pointer(location, "did")):
            ok = False
        bounds: dict[str, int] = {}
        for key in ("at_least", "at_most", "exactly"):
            if key in spec:
                count = spec[key]
                if type(count) is not int or not 0 <= count <= MAX_COUNT:
                    self.issue(pointer(location, key), f"{key} takes a whole number from 0 to {MAX_COUNT:,}")
                    ok = False
                else:
                    bounds[key] = count
        if not any(key in spec for key in ("at_least", "at_most", "exactly")):
            self.issue(location, "a behaviour condition needs at_least, at_most or exactly")
            ok = False
        elif "exactly" in spec and ("at_least" in spec or "at_most" in spec):
            self.issue(pointer(location, "exactly"), "exactly cannot be combined with at_least or at_most")
            ok = False
        elif bounds.get("at_least", 0) > bounds.get("at_most", MAX_COUNT):
            self.issue(pointer(location, "at_most"), "at_most is below at_least: nothing could match")
            ok = False
        days: int | None = None
        if "within" in spec:
            days = self.window(spec["within"], pointer(location, "within"))
            ok = ok and days is not None
        if not ok:
            return None
        self.paths.add(f"behaviour[{json.dumps(name)}]")
        low = bounds.get("exactly", bounds.get("at_least", 0))
        high = bounds.get("exactly", bounds.get("at_most", _UNBOUNDED))
        return behaviour_node(spec, name, low, high, days)

    def window(self, value: Any, where: str) -> int | None:
        match = DURATION.fullmatch(value) if isinstance(value, str) else None
        if match is None or match.group(2) not in ("d", "w"):
            self.issue(where, 'within takes whole days or weeks, like "30d" or "4w"')
            return None
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
        if days > self.max_window_days:
            self.issue(
                where,
                f"within {value} is {days} days; behaviour windows are limited to {self.max_window_days} days "
                "(the daily counts a profile keeps); leave within out to count all time",
            )
            return None
        return days


def _exists_placeholder(actual: Any) -> bool:  # exists is decided by the node itself
    return actual is not None


def _wrong_operator(path: ResolvedPath, op: str) -> str:
    allowed = ", ".join(_KIND_OPERATORS[path.kind])
    if path.kind == "list":
        return (
            f"{path.label} is a list: use contains or exists (wrap contains in not for 'does not contain'); "
            f"{op} does not apply"
        )
    return f"{path.label} is {_KIND_NAMES[path.kind]}: {op} does not apply; use one of: {allowed}"
