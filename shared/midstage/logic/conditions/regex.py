"""Regular-expression safety: a pattern runs only if its shape bounds the backtracking it can do.

It reads patterns with the standard library's own parser (`re._parser`, private), so safety is
judged on exactly what `re` will run; tests/unit/test_condition_regex_parser.py pins the parts of
its output this module relies on, on every Python the project supports.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any

from midstage.logic.conditions.model import REGEX_WINDOW, REGEX_WORK_BUDGET

# The standard library's own regex parser, so safety is judged on exactly what `re` will run.
_sre_parser: Any = importlib.import_module("re._parser")


# ----------------------------------------------------------------------------- regex safety
_CATEGORIES = {
    "CATEGORY_DIGIT": re.compile(r"\d").match,
    "CATEGORY_NOT_DIGIT": re.compile(r"\D").match,
    "CATEGORY_SPACE": re.compile(r"\s").match,
    "CATEGORY_NOT_SPACE": re.compile(r"\S").match,
    "CATEGORY_WORD": re.compile(r"\w").match,
    "CATEGORY_NOT_WORD": re.compile(r"\W").match,
}
# Characters that stand for the classes patterns use; a pattern's own literals and range ends
# are added, so two classes that share any character share one of these.
_PROBES = "".join(map(chr, range(256))) + "\u0660\u0130\u017f\u212a\u2028\u3000\u4e2d\U0001f600"
_SINGLE = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN"})
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT"})


@lru_cache(maxsize=256)  # a definition may repeat one pattern in many of its 500 nodes
def regex_problem(pattern: str) -> str | None:
    """Why a pattern could run away on a hostile value, or None when it is safe to run.

    Python's backtracking engine cannot be interrupted, so a pattern is refused unless its
    shape bounds the work. Refused outright: a quantifier inside a quantified group (other than
    a fixed count like \\d{3}), alternation inside a quantified group, backreferences and
    conditionals, lookarounds, atomic groups and possessive quantifiers. Then the work is
    estimated: quantifiers in a row that can match the same characters multiply each other's
    backtracking until a required character none of them can match; searching (no leading ^)
    multiplies once more by the length. The estimate must stay within REGEX_WORK_BUDGET.
    """
    try:
        parsed = _sre_parser.parse(pattern)
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as error:
        return f"not a valid regular expression: {error}"
    problem = _shape_problem(list(parsed), in_repeat=False)
    if problem:
        return problem
    flags = parsed.state.flags
    probes, scoped_flags = _probe_set(list(parsed))
    items = list(_flatten(list(parsed)))
    starts = {"AT_BEGINNING_STRING"} if flags & re.MULTILINE else {"AT_BEGINNING", "AT_BEGINNING_STRING"}
    anchored = bool(items) and str(items[0][0]) == "AT" and str(items[0][1]) in starts
    classes = _Classes(probes, ignore_case=bool((flags | scoped_flags) & re.IGNORECASE))
    work = _sequence_work(items, classes) * (1 if anchored else REGEX_WINDOW)
    if work > REGEX_WORK_BUDGET:
        return (
            "this pattern can backtrack too much on long values: quantifiers in a row match the same "
            "characters (like \\d+\\d+ or .*a.*); anchor it with ^, or separate them with a character "
            "they cannot match"
        )
    return None


def _shape_problem(items: list[Any], *, in_repeat: bool) -> str | None:
    for op, argument in items:
        name = str(op)
        if name in _REPEATS:
            low, high, body = argument
            if in_repeat and low != high:
                return "nested quantifiers (a repeat inside a repeat, like (a+)+) are not allowed"
            problem = _shape_problem(list(body), in_repeat=True)
        elif name == "SUBPATTERN":
            problem = _shape_problem(list(argument[-1]), in_repeat=in_repeat)
        elif name == "BRANCH":
            if in_repeat:
                return "alternation inside a repeat (like (a|aa)*) is not allowed"
            problem = next((p for b in argument[1] if (p := _shape_problem(list(b), in_repeat=False))), None)
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences and conditional groups are not allowed"
        elif name in ("ASSERT", "ASSERT_NOT"):
            return "lookahead and lookbehind are not allowed"
        elif name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT"):
            return "atomic groups and possessive quantifiers are not allowed"
        elif name in _SINGLE or name == "AT":
            problem = None
        else:
            return f"unsupported regular expression construct {name}"
        if problem:
            return problem
    return None


def _flatten(items: list[Any]) -> Any:
    """Items of a sequence with plain groups opened, so (a+)(a+) reads as a+a+."""
    for op, argument in items:
        if str(op) == "SUBPATTERN":
            yield from _flatten(list(argument[-1]))
        else:
            yield op, argument


def _probe_set(items: list[Any]) -> tuple[str, int]:
    """The characters to probe classes with, and the flags any group turns on."""
    extra: list[str] = []
    scoped = 0

    def collect(nodes: list[Any]) -> None:
        nonlocal scoped
        for op, argument in nodes:
            name = str(op)
            if name in ("LITERAL", "NOT_LITERAL"):
                extra.append(chr(argument))
            elif name == "RANGE":
                extra.extend((chr(argument[0]), chr(argument[1])))
            elif name == "IN":
                collect(list(argument))
            elif name in _REPEATS:
                collect(list(argument[2]))
            elif name == "SUBPATTERN":
                scoped |= argument[1]
                collect(list(argument[-1]))
            elif name == "BRANCH":
                for branch in argument[1]:
                    collect(list(branch))

    collect(items)
    return "".join(dict.fromkeys(_PROBES + "".join(extra))), scoped


@lru_cache(maxsize=4096)
def _in_category(category: str, char: str) -> bool:
    match = _CATEGORIES.get(category)
    return True if match is None else match(char) is not None


class _Classes:
    """Which probe characters the parts of one pattern can consume (memoised per part)."""

    def __init__(self, probes: str, *, ignore_case: bool) -> None:
        self.probes = probes
        self.everything = frozenset(probes)
        self.ignore_case = ignore_case
        self.memo: dict[tuple[str, str], frozenset[str]] = {}

    def of(self, items: list[Any]) -> frozenset[str]:
        found: set[str] = set()
        for op, argument in _flatten(items):
            name = str(op)
            if name in _SINGLE:
                found |= self.single(name, argument)
            elif name in _REPEATS:
                found |= self.of(list(argument[2]))
            elif name == "BRANCH":
                for branch in argument[1]:
                    found |= self.of(list(branch))
        return frozenset(found)

    def single(self, name: str, argument: Any) -> frozenset[str]:
        key = (name, repr(argument))
        known = self.memo.get(key)
        if known is not None:
            return known
        if name == "ANY":
            result = self.everything
        else:
            members = list(argument) if name == "IN" else [("LITERAL", argument)]
            negate = name == "NOT_LITERAL" or (bool(members) and str(members[0][0]) == "NEGATE")
            members = [(str(kind), value) for kind, value in members if str(kind) != "NEGATE"]

            def raw(char: str) -> bool:
                hit = len(char) == 1 and any(
                    (kind == "LITERAL" and ord(char) == value)
                    or (kind == "RANGE" and value[0] <= ord(char) <= value[1])
                    or (kind == "CATEGORY" and _in_category(str(value), char))
                    or kind not in ("LITERAL", "RANGE", "CATEGORY")  # unknown: assume it matches
                    for kind, value in members
                )
                return hit != negate

            if self.ignore_case:
                result = frozenset(c for c in self.probes if raw(c) or raw(c.lower()) or raw(c.upper()))
            else:
                result = frozenset(c for c in self.probes if raw(c))
        self.memo[key] = result
        return result


def _sequence_work(items: list[Any], classes: _Classes) -> int:
    """Worst backtracking of a sequence: the largest product of choices in a run of items
    that can trade characters, a run ending at a required character none of them can match."""
    worst = 1
    run_sets: list[frozenset[str]] = []
    run_work = 1
    for op, argument in items:
        name = str(op)
        if name == "AT":
            continue
        if name in _SINGLE:
            choices, required = 1, True
            chars = classes.single(name, argument)
        elif name in _REPEATS:
            low, high, body = argument
            choices = max(1, min(high - low + 1, REGEX_WINDOW))  # it can give back at most the whole value
            required = low >= 1
            chars = classes.of(list(body))
        else:  # BRANCH: each alternative's own work, tried in turn
            choices = sum(_sequence_work(list(_flatten(list(b))), classes) for b in argument[1])
            required = False
            chars = classes.of([(op, argument)])
        if required and chars and all(chars.isdisjoint(open_set) for open_set in run_sets):
            run_sets, run_work = [], 1
        if choices > 1:
            run_sets.append(chars)
            run_work = min(run_work * choices, REGEX_WORK_BUDGET * REGEX_WINDOW + 1)
            worst = max(worst, run_work)
    return worst
