"""The closures a compiled condition is made of: one check per comparison, built once, and the
test and explain of each node.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from midstage.logic.conditions.model import Check, Explain, Facts, Test
from midstage.logic.conditions.paths import ResolvedPath
from midstage.logic.conditions.values import duration, numeric_text, parse_time, plain, show
from midstage.logic.profile import windowed_count
from midstage.logic.timefmt import iso


# ------------------------------------------------------------------------- checks (built once)
def eq_check(value: Any) -> Check:
    if isinstance(value, bool):
        return lambda actual: actual is value
    if isinstance(value, int | float):
        return lambda actual: (type(actual) is int or type(actual) is float) and actual == value
    moment = parse_time(value)
    if moment is not None:
        return lambda actual: parse_time(actual) == moment
    return lambda actual: type(actual) is str and actual == value


def in_check(values: list[Any]) -> Check:
    strings = frozenset(v for v in values if type(v) is str)
    numbers = frozenset(v for v in values if type(v) is int or type(v) is float)
    # Kept apart from numbers: in one set True and 1 would be the same member.
    flags = frozenset(v for v in values if type(v) is bool)
    if not numbers and not flags:
        return lambda actual: type(actual) is str and actual in strings

    def check(actual: Any) -> bool:
        kind = type(actual)
        if kind is str:
            return actual in strings
        if kind is int or kind is float:
            return actual in numbers
        return kind is bool and actual in flags

    return check


def contains_check(value: Any) -> Check:
    if isinstance(value, str):

        def check_text(actual: Any) -> bool:
            kind = type(actual)
            # A list holds strings by ==, which is exact for strings; a string holds a substring.
            return (
                kind is str or kind is list or kind is frozenset or kind is tuple or kind is set
            ) and value in actual

        return check_text
    if isinstance(value, bool):
        return lambda actual: type(actual) in (list, tuple, frozenset, set) and any(x is value for x in actual)

    def check_number(actual: Any) -> bool:
        return type(actual) in (list, tuple, frozenset, set) and any(
            (type(x) is int or type(x) is float) and x == value for x in actual
        )

    return check_number


def order_check(compare: Callable[[Any, Any], bool], bound: Any) -> Check:
    if isinstance(bound, datetime):

        def check_time(actual: Any) -> bool:
            moment = parse_time(actual)
            return moment is not None and compare(moment, bound)

        return check_time

    def check_number(actual: Any) -> bool:
        kind = type(actual)
        if kind is int or kind is float:
            return compare(actual, bound)
        if kind is str:
            number = numeric_text(actual)
            return number is not None and compare(number, bound)
        return False

    return check_number


def between_check(low: Any, high: Any) -> Check:
    above, below = order_check(operator.ge, low), order_check(operator.le, high)
    return lambda actual: above(actual) and below(actual)


# -------------------------------------------------------------------------------------- compiler
class Compiled(NamedTuple):
    test: Test
    explain: Explain


def all_test(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda facts: first(facts) and second(facts)
    if len(tests) == 3:
        first, second, third = tests
        return lambda facts: first(facts) and second(facts) and third(facts)

    def test(facts: Facts) -> bool:
        for member in tests:  # noqa: SIM110 - a plain loop is faster than all() over a generator
            if not member(facts):
                return False
        return True

    return test


def any_test(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda facts: first(facts) or second(facts)
    if len(tests) == 3:
        first, second, third = tests
        return lambda facts: first(facts) or second(facts) or third(facts)

    def test(facts: Facts) -> bool:
        for member in tests:  # noqa: SIM110 - a plain loop is faster than any() over a generator
            if member(facts):
                return True
        return False

    return test


def comparison_node(
    spec: dict[str, Any], path: ResolvedPath, op: str, value: Any, built: Callable[..., bool]
) -> Compiled:
    get = path.get
    test: Test
    if op == "exists":
        if value:

            def test(facts: Facts) -> bool:
                return get(facts) is not None

        else:

            def test(facts: Facts) -> bool:
                return get(facts) is None

    elif op in ("within_last", "not_within_last"):
        timed = built

        def test(facts: Facts) -> bool:
            actual = get(facts)
            return actual is not None and timed(actual, facts.now)

    else:
        check = built

        def test(facts: Facts) -> bool:
            actual = get(facts)
            return actual is not None and check(actual)

    expected = f"{op} {show(value)}"
    span = duration(value) if op in ("within_last", "not_within_last") else None

    def explain(facts: Facts) -> dict[str, Any]:
        actual = get(facts)
        detail = expected
        if span is not None:
            edge = iso(facts.now - span)
            detail += f" (on or after {edge})" if op == "within_last" else f" (before {edge})"
        seen = "is missing" if actual is None else f"is {show(actual)}"
        return {
            "condition": spec,
            "matched": test(facts),
            "actual": plain(actual),
            "reason": f"{path.label} {seen}, expected {detail}",
        }

    return Compiled(test, explain)


def behaviour_node(spec: dict[str, Any], name: str, low: int, high: int, days: int | None) -> Compiled:
    count: Callable[[Facts], int]
    if days is None:

        def count(facts: Facts) -> int:
            profile = facts.profile
            return 0 if profile is None else profile.event_counts.get(name, 0)

    else:
        window = days

        def count(facts: Facts) -> int:
            profile = facts.profile
            buckets = None if profile is None else profile.daily_counts.get(name)
            return windowed_count(buckets, facts.now, window) if buckets else 0

    def test(facts: Facts) -> bool:
        return low <= count(facts) <= high

    if "exactly" in spec:
        expected = f"exactly {low}"
    elif "at_most" in spec:
        expected = f"at most {high}" if "at_least" not in spec else f"between {low} and {high}"
    else:
        expected = f"at least {low}"
    period = "in all" if days is None else f"in the last {days} days"

    def explain(facts: Facts) -> dict[str, Any]:
        seen = count(facts)
        return {
            "condition": spec,
            "matched": low <= seen <= high,
            "actual": seen,
            "reason": f"did {name!r} {seen} time{'' if seen == 1 else 's'} {period}, expected {expected}",
        }

    return Compiled(test, explain)
