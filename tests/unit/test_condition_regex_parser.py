"""The standard library's private regex parser still reads patterns the way regex safety expects.

logic/conditions/regex.py judges a pattern on `re._parser`'s output (private: renamed from
`sre_parse` in 3.11, with no promise between minors). These tests pin each shape it relies on:
the op names, where a repeat keeps its bounds and body, where a group keeps its flags and body,
how a class lists its members. The shapes are the same on 3.11, 3.12 (the Lambda runtime) and
3.13; a Python where one moves fails here, by name, instead of letting an unsafe pattern through.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import Any

import pytest

from midstage.logic.conditions import regex as regex_safety

parser: Any = importlib.import_module("re._parser")


def parsed(pattern: str) -> list[tuple[str, Any]]:
    return [(str(op), argument) for op, argument in parser.parse(pattern)]


def test_given_the_supported_pythons_then_the_private_parser_is_there() -> None:
    assert sys.version_info >= (3, 11)
    assert callable(parser.parse)
    assert regex_safety._sre_parser is parser


def test_given_a_repeat_then_it_keeps_low_high_and_body_in_that_order() -> None:
    [(name, (low, high, body))] = parsed("a+")
    assert (name, low, high) == ("MAX_REPEAT", 1, parser.MAXREPEAT)
    assert [(str(op), argument) for op, argument in body] == [("LITERAL", ord("a"))]
    [(lazy, (low, high, _))] = parsed("a{2,5}?")
    assert (lazy, low, high) == ("MIN_REPEAT", 2, 5)


def test_given_a_group_then_its_scoped_flags_are_second_and_its_body_last() -> None:
    [(name, argument)] = parsed("(?i:x)")
    assert name == "SUBPATTERN"
    assert argument[1] & re.IGNORECASE
    assert [(str(op), value) for op, value in argument[-1]] == [("LITERAL", ord("x"))]


def test_given_alternation_then_a_branch_lists_its_alternatives_second() -> None:
    [(name, argument)] = parsed("ab|cd")
    assert name == "BRANCH"
    assert [[(str(op), value) for op, value in branch] for branch in argument[1]] == [
        [("LITERAL", ord("a")), ("LITERAL", ord("b"))],
        [("LITERAL", ord("c")), ("LITERAL", ord("d"))],
    ]


def test_given_a_class_then_negation_ranges_and_categories_are_its_members() -> None:
    [(name, members)] = parsed(r"[^a-z\d]")
    assert name == "IN"
    assert [(str(kind), value if str(kind) != "CATEGORY" else str(value)) for kind, value in members] == [
        ("NEGATE", None),
        ("RANGE", (ord("a"), ord("z"))),
        ("CATEGORY", "CATEGORY_DIGIT"),
    ]


@pytest.mark.parametrize(
    ("escape", "category"),
    [
        (r"\d", "CATEGORY_DIGIT"),
        (r"\D", "CATEGORY_NOT_DIGIT"),
        (r"\s", "CATEGORY_SPACE"),
        (r"\S", "CATEGORY_NOT_SPACE"),
        (r"\w", "CATEGORY_WORD"),
        (r"\W", "CATEGORY_NOT_WORD"),
    ],
)
def test_given_a_class_escape_then_its_category_is_one_regex_safety_knows(escape: str, category: str) -> None:
    [(name, members)] = parsed(f"[{escape}]")
    assert name == "IN"
    assert [(str(kind), str(value)) for kind, value in members] == [("CATEGORY", category)]
    assert category in regex_safety._CATEGORIES


@pytest.mark.parametrize(
    ("pattern", "name", "argument"),
    [
        ("^a", "AT", "AT_BEGINNING"),
        (r"\Aa", "AT", "AT_BEGINNING_STRING"),
        (".", "ANY", "None"),
        ("[^a]", "NOT_LITERAL", str(ord("a"))),
    ],
)
def test_given_anchors_and_single_characters_then_their_names_are_the_ones_read(
    pattern: str, name: str, argument: str
) -> None:
    first_name, first_argument = parsed(pattern)[0]
    assert (first_name, str(first_argument)) == (name, argument)


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        (r"(a)\1", "GROUPREF"),
        (r"(a)?(?(1)b|c)", "GROUPREF_EXISTS"),
        ("(?=a)", "ASSERT"),
        ("(?!a)", "ASSERT_NOT"),
        ("(?>a)", "ATOMIC_GROUP"),
        ("a++", "POSSESSIVE_REPEAT"),
    ],
)
def test_given_a_construct_regex_safety_refuses_then_the_parser_still_names_it(pattern: str, name: str) -> None:
    assert name in [op for op, _ in parsed(pattern)]
    assert regex_safety.regex_problem(pattern) is not None


def test_given_inline_flags_then_the_pattern_state_carries_them() -> None:
    assert parser.parse("(?m)^a").state.flags & re.MULTILINE
    assert not parser.parse("^a").state.flags & re.MULTILINE
