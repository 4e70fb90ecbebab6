"""The condition language: every operator, missing values, validation, hostile input, explain.

A hypothesis property test checks compiled conditions against `reference`, a straightforward
interpreter of the documented semantics written here without the module's helpers.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midstage.errors import InvalidInput
from midstage.logic.conditions import (
    MAX_DEPTH,
    MAX_NODES,
    OPERATORS,
    Condition,
    ConditionError,
    Facts,
    Issue,
    compile_condition,
    validate,
)
from midstage.models.profile import Profile

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SAFE_EMAIL = r"^[a-z0-9._%+-]+@example\.com$"


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y%m%d")


def stamp(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def customer(**fields: Any) -> Profile:
    base: dict[str, Any] = {
        "id": "p1",
        "created_at": "2025-03-01T09:00:00.000Z",
        "first_seen": "2025-03-01T09:00:00.000Z",
        "last_seen": "2026-11-20T08:00:00.000Z",
        "identities": {"email": ["ada@example.com"], "user_id": ["u1"]},
        "traits": {
            "plan": "pro",
            "age": 36,
            "score": 7.5,
            "newsletter": True,
            "email": "ada@example.com",
            "zip": "75011",
            "interests": ["shoes", "bags", 3, True],
            "address": {"city": "Lyon", "geo": {"lat": 45.76}},
            "birthday": "1990-05-17",
            "nothing": None,
        },
        "computed": {
            "value_tier": "high",
            "orders": 5,
            "revenue": 1234.5,
            "days_since_last_order": 45,
            "event_counts": {"Order Completed": {"total": 5, "30d": 1, "90d": 2}},
        },
        "tags": ["vip", "beta"],
        "orders": 5,
        "revenue": "1234.50",
        "first_order_at": "2025-04-01T10:00:00.000Z",
        "last_order_at": stamp(timedelta(days=45)),
        "event_counts": {"Order Completed": 5, "Product Viewed": 40, "$page": 12},
        "daily_counts": {
            "Order Completed": {day(0): 1, day(29): 1, day(30): 1, day(89): 1},
            "Product Viewed": {day(0): 3, day(6): 2, day(7): 4},
        },
    }
    base.update(fields)
    return Profile(**base)


def order_event(**properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m1",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "userId": "u1",
        "properties": {"total": 119.97, "currency": "EUR", "coupon": "BF-2026", "items": 3, **properties},
        "context": {"page": {"path": "/checkout/done"}, "locale": "fr-FR"},
    }


def facts(
    profile: Profile | None = None, event: dict[str, Any] | None = None, segments: frozenset[str] = frozenset()
) -> Facts:
    return Facts(profile=profile, event=event, now=NOW, segments=segments)


FULL = facts(customer(), order_event(), frozenset({"seg_loyal"}))
EMPTY = facts()


def matches(spec: dict[str, Any], given: Facts = FULL) -> bool:
    return compile_condition(spec).test(given)


def where(spec: Any, **options: Any) -> list[tuple[str, str]]:
    return [(issue.location, issue.message) for issue in validate(spec, **options)]


def cmp(path: Any, op: str, value: Any) -> dict[str, Any]:
    return {"path": path, "op": op, "value": value}


# ------------------------------------------------------------------------------- the brief's case
def test_high_value_customer_inactive_30_days_matches() -> None:
    rule = {
        "all": [
            {"path": "computed.value_tier", "op": "in", "value": ["high", "vip"]},
            {"path": "profile.revenue", "op": "gt", "value": 1000},
            {"not": {"path": "profile.last_order_at", "op": "within_last", "value": "30d"}},
        ]
    }
    assert matches(rule)
    recent = facts(customer(last_order_at=stamp(timedelta(days=3))), order_event())
    assert not matches(rule, recent)


# ------------------------------------------------------------------------------------ operators
OPERATOR_CASES = [
    # (condition, expected) against FULL
    (cmp("traits.plan", "eq", "pro"), True),
    (cmp("traits.plan", "eq", "free"), False),
    (cmp("traits.age", "eq", 36.0), True),  # 36 == 36.0
    (cmp("traits.age", "eq", "36"), False),  # a string never equals a number
    (cmp("traits.zip", "eq", 75011), False),
    (cmp("traits.newsletter", "eq", True), True),
    (cmp("traits.newsletter", "eq", 1), False),  # bool is never a number
    (cmp("computed.orders", "eq", True), False),
    (cmp("event.timestamp", "eq", "2026-11-22T12:00:00+02:00"), True),  # the same instant
    (cmp("traits.birthday", "eq", "1990-05-17T00:00:00Z"), True),
    (cmp("traits.plan", "ne", "free"), True),
    (cmp("traits.plan", "ne", "pro"), False),
    (cmp("traits.age", "ne", "36"), True),  # present and not equal
    (cmp("traits.age", "gt", 35), True),
    (cmp("traits.age", "gt", 36), False),
    (cmp("traits.age", "gte", 36), True),
    (cmp("traits.score", "lt", 7.6), True),
    (cmp("traits.score", "lte", 7.4), False),
    (cmp("traits.score", "lte", 7.5), True),
    (cmp("traits.zip", "gt", 75000), True),  # a numeric string compares by value
    (cmp("traits.plan", "gt", 5), False),  # "pro" is no number: false, not an error
    (cmp("traits.newsletter", "gte", 0), False),  # nor is a bool
    (cmp("traits.interests", "gt", 1), False),
    (cmp("profile.revenue", "gt", 1234.49), True),  # "1234.50" on the profile
    (cmp("profile.revenue", "eq", 1234.5), True),
    (cmp("profile.orders", "lt", 5), False),
    (cmp("event.timestamp", "gt", "2026-11-22T09:59:59Z"), True),
    (cmp("event.timestamp", "lt", "2026-11-22T09:59:59Z"), False),
    (cmp("traits.birthday", "lt", "2000-01-01"), True),
    (cmp("traits.plan", "lt", "2000-01-01"), False),  # not a timestamp
    (cmp("traits.age", "between", [30, 36]), True),  # inclusive
    (cmp("traits.age", "between", [36, 40]), True),
    (cmp("traits.age", "between", [37, 40]), False),
    (cmp("event.timestamp", "between", ["2026-11-22T00:00:00Z", "2026-11-22T10:00:00Z"]), True),
    (cmp("event.timestamp", "between", ["2026-11-23", "2026-11-24"]), False),
    (cmp("traits.plan", "in", ["pro", "team"]), True),
    (cmp("traits.plan", "in", ["free", "team"]), False),
    (cmp("traits.age", "in", [35, 36.0]), True),
    (cmp("traits.newsletter", "in", [1, "true"]), False),
    (cmp("traits.newsletter", "in", [True]), True),
    (cmp("computed.orders", "in", [True, 1]), False),
    (cmp("traits.plan", "not_in", ["free", "team"]), True),
    (cmp("traits.plan", "not_in", ["pro"]), False),
    (cmp("tags", "contains", "vip"), True),
    (cmp("tags", "contains", "vi"), False),  # list membership, not substring
    (cmp("traits.email", "contains", "@example."), True),
    (cmp("traits.email", "contains", "@gmail."), False),
    (cmp("traits.interests", "contains", 3), True),
    (cmp("traits.interests", "contains", 1), False),
    (cmp("traits.interests", "contains", True), True),
    (cmp("traits.interests", "contains", "shoes"), True),
    (cmp("traits.age", "contains", 3), False),
    (cmp("segments", "contains", "seg_loyal"), True),
    (cmp("segments", "contains", "seg_new"), False),
    (cmp("identities.email", "contains", "ada@example.com"), True),
    (cmp("identities.phone", "contains", "+33600000000"), False),
    (cmp("traits.email", "starts_with", "ada@"), True),
    (cmp("traits.email", "starts_with", "bob@"), False),
    (cmp("traits.age", "starts_with", "3"), False),
    (cmp("traits.plan", "exists", True), True),
    (cmp("traits.plan", "exists", False), False),
    (cmp("traits.missing", "exists", False), True),
    (cmp("traits.nothing", "exists", True), False),  # null is missing
    (cmp("traits.email", "regex", SAFE_EMAIL), True),
    (cmp("traits.plan", "regex", SAFE_EMAIL), False),
    (cmp("traits.age", "regex", "3"), False),
    (cmp("traits.email", "regex", "example"), True),  # a search, not a full match
    (cmp("profile.last_order_at", "within_last", "60d"), True),
    (cmp("profile.last_order_at", "within_last", "30d"), False),
    (cmp("profile.last_order_at", "not_within_last", "30d"), True),
    (cmp("profile.last_order_at", "not_within_last", "7w"), False),
    (cmp("event.timestamp", "within_last", "2h"), True),
    (cmp("event.timestamp", "within_last", "119m"), False),
    (cmp("profile.last_seen", "within_last", "52h"), True),
    (cmp("profile.last_seen", "within_last", "51h"), False),
    (cmp("event.timestamp", "before", "2026-11-22T10:00:00.001Z"), True),
    (cmp("event.timestamp", "before", "2026-11-22T10:00:00Z"), False),  # strict
    (cmp("event.timestamp", "after", "2026-11-22T09:00:00Z"), True),
    (cmp("event.timestamp", "after", "2026-11-22T10:00:00Z"), False),
    (cmp("profile.first_order_at", "before", "2025-05-01"), True),
    (cmp("event.name", "eq", "Order Completed"), True),
    (cmp("event.type", "in", ["page", "screen"]), False),
    (cmp("event.properties.total", "gte", 119.97), True),
    (cmp("event.properties.coupon", "starts_with", "BF-"), True),
    (cmp("event.context.page.path", "eq", "/checkout/done"), True),
    (cmp("event.context.locale", "regex", "^fr-"), True),
    (cmp("traits.address.city", "eq", "Lyon"), True),
    (cmp("traits.address.geo.lat", "gt", 45), True),
    (cmp("traits.address.city.name", "exists", True), False),  # a string has no keys
    (cmp("profile.id", "eq", "p1"), True),
    (cmp("profile.created_at", "before", "2026-01-01"), True),
]


@pytest.mark.parametrize(("condition", "expected"), OPERATOR_CASES, ids=lambda x: json.dumps(x)[:60])
def test_each_operator_matches_or_not_as_documented(condition: dict[str, Any], expected: bool) -> None:
    assert matches(condition) is expected


def test_every_operator_is_covered_by_a_match_and_a_non_match() -> None:
    seen: dict[str, set[bool]] = {}
    for condition, expected in OPERATOR_CASES:
        seen.setdefault(condition["op"], set()).add(expected)
    assert {op: {True, False} for op in OPERATORS} == {op: seen.get(op, set()) for op in OPERATORS}


def test_a_page_event_is_named_by_its_page_name() -> None:
    page = {"type": "page", "name": "Pricing", "timestamp": "2026-11-22T10:00:00.000Z", "messageId": "m2"}
    assert matches(cmp("event.name", "eq", "Pricing"), facts(event=page))
    assert matches(cmp("event.type", "eq", "page"), facts(event=page))


def test_paths_in_bracket_and_list_form_reach_names_with_spaces() -> None:
    forms = [
        'computed.event_counts["Order Completed"].30d',
        ["computed", "event_counts", "Order Completed", "30d"],
        'computed["event_counts"]["Order Completed"]["30d"]',
    ]
    for form in forms:
        assert matches(cmp(form, "eq", 1))
        assert not matches(cmp(form, "gt", 1))
    assert compile_condition(cmp(forms[1], "eq", 1)).paths == {'computed.event_counts["Order Completed"].30d'}


def test_a_comparison_of_a_type_it_cannot_order_is_false_and_never_raises() -> None:
    odd = customer(traits={"a": [1], "b": {"x": 1}, "c": "abc", "d": float("nan"), "e": "1e999", "f": "2026-02-30"})
    given = facts(odd, order_event())
    for path in ("traits.a", "traits.b", "traits.c", "traits.d", "traits.e", "traits.f"):
        for op, value in (("gt", 5), ("lte", 5), ("between", [0, 9]), ("before", "2030-01-01"), ("within_last", "1d")):
            assert matches(cmp(path, op, value), given) is False
        assert matches(cmp(path, "starts_with", "a"), given) is (path == "traits.c")


# --------------------------------------------------------------------------------- missing values
MISSING_CASES = [
    cmp("traits.unknown", "eq", "x"),
    cmp("traits.unknown", "ne", "x"),
    cmp("traits.unknown", "in", ["x"]),
    cmp("traits.unknown", "not_in", ["x"]),
    cmp("traits.unknown", "gt", 1),
    cmp("traits.unknown", "contains", "x"),
    cmp("traits.unknown", "starts_with", "x"),
    cmp("traits.unknown", "regex", "x"),
    cmp("traits.unknown", "exists", True),
    cmp("traits.unknown", "within_last", "30d"),
    cmp("traits.unknown", "not_within_last", "30d"),
    cmp("traits.unknown", "before", "2030-01-01"),
    cmp("traits.unknown", "between", [1, 2]),
]


@pytest.mark.parametrize("condition", MISSING_CASES, ids=lambda c: c["op"])
def test_a_missing_value_makes_every_comparison_false(condition: dict[str, Any]) -> None:
    assert matches(condition) is False
    assert matches({**condition, "path": "event.properties.unknown"}) is False
    assert matches(condition, EMPTY) is False


def test_only_exists_false_and_not_match_a_missing_value() -> None:
    assert matches(cmp("traits.unknown", "exists", False))
    assert matches({"not": cmp("traits.unknown", "eq", "x")})
    assert matches(cmp("profile.last_order_at", "exists", False), facts(customer(last_order_at=None)))


def test_without_a_profile_or_an_event_every_path_is_missing() -> None:
    for path in ("traits.plan", "computed.orders", "profile.orders", "profile.revenue", "tags", "identities.email"):
        assert matches(cmp(path, "exists", False), EMPTY)
    for path in ("event.name", "event.type", "event.timestamp", "event.properties.total", "event.context.locale"):
        assert matches(cmp(path, "exists", False), facts(customer()))
    assert matches(cmp("segments", "exists", False), facts(customer()))


def test_an_empty_tag_list_counts_as_missing() -> None:
    untagged = facts(customer(tags=[]))
    assert matches(cmp("tags", "exists", False), untagged)
    assert not matches(cmp("tags", "contains", "vip"), untagged)
    assert matches({"not": cmp("tags", "contains", "vip")}, untagged)


def test_not_within_last_is_false_for_a_missing_or_future_timestamp() -> None:
    never = facts(customer(last_order_at=None))
    assert not matches(cmp("profile.last_order_at", "not_within_last", "30d"), never)
    assert matches({"not": cmp("profile.last_order_at", "within_last", "30d")}, never)
    future = facts(customer(last_order_at=stamp(-timedelta(days=1))))
    assert not matches(cmp("profile.last_order_at", "within_last", "30d"), future)
    assert not matches(cmp("profile.last_order_at", "not_within_last", "30d"), future)


def test_within_last_includes_both_ends_of_the_window() -> None:
    for at, inside in (
        (stamp(timedelta(days=30)), True),
        (stamp(timedelta(days=30, seconds=1)), False),
        (stamp(timedelta()), True),
    ):
        given = facts(customer(last_order_at=at))
        assert matches(cmp("profile.last_order_at", "within_last", "30d"), given) is inside
        assert matches(cmp("profile.last_order_at", "not_within_last", "30d"), given) is (not inside)


def test_naive_and_offset_timestamps_are_read_as_instants() -> None:
    given = facts(customer(traits={"a": "2026-11-22 11:30:00", "b": "2026-11-22T13:30:00+02:00"}))
    assert matches(cmp("traits.a", "within_last", "31m"), given)
    assert not matches(cmp("traits.a", "within_last", "29m"), given)
    assert matches(cmp("traits.b", "within_last", "31m"), given)


def test_regex_reads_only_the_first_2048_characters() -> None:
    given = facts(customer(traits={"long": "a" * 2048 + "needle"}))
    assert not matches(cmp("traits.long", "regex", "needle"), given)
    assert matches(cmp("traits.long", "regex", "^a{2048}"), given)


# ----------------------------------------------------------------------------------- behaviour
def test_behaviour_counts_whole_utc_days_within_the_window() -> None:
    assert matches({"did": "Order Completed", "at_least": 2, "within": "30d"})  # today and 29 days ago
    assert not matches({"did": "Order Completed", "at_least": 3, "within": "30d"})
    assert matches({"did": "Order Completed", "exactly": 3, "within": "31d"})
    assert matches({"did": "Order Completed", "exactly": 4, "within": "90d"})
    assert matches({"did": "Product Viewed", "exactly": 5, "within": "1w"})
    assert matches({"did": "Product Viewed", "exactly": 9, "within": "2w"})
    assert matches({"did": "Product Viewed", "exactly": 3, "within": "1d"})


def test_behaviour_without_a_window_counts_all_time() -> None:
    assert matches({"did": "Order Completed", "at_least": 5})
    assert matches({"did": "Product Viewed", "at_most": 40})
    assert not matches({"did": "Product Viewed", "at_most": 39})
    assert matches({"did": "$page", "at_least": 10, "at_most": 12})
    assert not matches({"did": "$page", "at_least": 13, "at_most": 20})
    assert matches({"did": "Never Happened", "exactly": 0})


def test_behaviour_without_a_profile_counts_zero() -> None:
    assert matches({"did": "Order Completed", "at_most": 0, "within": "30d"}, EMPTY)
    assert not matches({"did": "Order Completed", "at_least": 1}, EMPTY)


def test_a_behaviour_window_can_be_limited_below_90_days() -> None:
    spec = {"did": "Order Completed", "at_least": 1, "within": "31d"}
    assert where(spec, max_window_days=30) == [
        (
            "/within",
            "within 31d is 31 days; behaviour windows are limited to 30 days (the daily counts a profile keeps); "
            "leave within out to count all time",
        )
    ]
    assert where(spec, max_window_days=31) == []


# ---------------------------------------------------------------------------------- validation
VALIDATION_CASES = [
    (
        {"all": [cmp("traits.plan", "eq", "pro"), cmp("traits.plan", "eq", "pro"), cmp("traits.plan", "equals", "x")]},
        "/all/2/op",
        "unknown operator 'equals'; one of: eq, ne, gt",
    ),
    ({"path": "traits.plan", "op": "eq", "value": "x", "note": 1}, "/note", "unknown key 'note'; a comparison has"),
    ({"any": [cmp("traits.plan", "eq", "x")], "all": []}, "", "a condition has exactly one of"),
    ({"not": cmp("traits.plan", "eq", "x"), "why": "?"}, "/why", "unknown key 'why'"),
    ({"did": "Order Completed", "at_least": 1, "where": {}}, "/where", "unknown key 'where'; a behaviour condition"),
    ({"all": "nope"}, "/all", "all takes a list of conditions, not a string"),
    ({"all": []}, "/all", "an empty all list is refused; it would match everyone"),
    ({"any": []}, "/any", "an empty any list is refused; it would match no one"),
    ({"any": [42]}, "/any/0", "expected a condition object, got a number"),
    ({"op": "eq", "value": 1}, "", "a condition has exactly one of"),
    ({"path": "traits.plan", "value": 1}, "/op", "missing"),
    ({"path": "traits.plan", "op": "eq"}, "/value", "missing"),
    (cmp("traits.age", "gt", [1]), "/value", "gt takes a number or an ISO 8601 timestamp, not a list"),
    (cmp("traits.age", "gt", {"a": 1}), "/value", "gt takes a number or an ISO 8601 timestamp, not an object"),
    (cmp("traits.age", "lte", True), "/value", "lte takes a number or an ISO 8601 timestamp, not a boolean"),
    (cmp("traits.age", "gt", "abc"), "/value", "gt takes a number or an ISO 8601 timestamp, not a string"),
    (cmp("traits.age", "gt", float("nan")), "/value", "gt takes a number"),
    (cmp("traits.age", "between", [5]), "/value", "between takes [low, high]"),
    (cmp("traits.age", "between", [9, 5]), "/value", "between takes [low, high] with low <= high"),
    (cmp("traits.age", "between", [1, "2026-01-01"]), "/value", "between takes two numbers or two timestamps"),
    (cmp("traits.age", "between", [1, True]), "/value/1", "between takes a number or an ISO 8601 timestamp"),
    (cmp("traits.plan", "in", "pro"), "/value", "in takes a list of 1 to 1000 values"),
    (cmp("traits.plan", "in", []), "/value", "in takes a list of 1 to 1000 values"),
    (cmp("traits.plan", "in", list(range(1001))), "/value", "in takes a list of 1 to 1000 values"),
    (cmp("traits.plan", "not_in", ["a", ["b"]]), "/value/1", "not_in takes a string, a number or a boolean"),
    (cmp("traits.plan", "in", ["a", None]), "/value/1", "in takes a string, a number or a boolean here, not null"),
    (cmp("traits.plan", "eq", None), "/value", "eq takes a string, a number or a boolean here, not null"),
    (cmp("traits.plan", "eq", [1]), "/value", "eq takes a string, a number or a boolean here, not a list"),
    (cmp("traits.x", "within_last", 30), "/value", 'within_last takes a duration like "15m"'),
    (cmp("traits.x", "within_last", "30 days"), "/value", 'within_last takes a duration like "15m"'),
    (cmp("traits.x", "not_within_last", "0d"), "/value", "not_within_last takes a duration"),
    (cmp("traits.x", "within_last", "999999w"), "/value", "at most 100 years"),
    (cmp("traits.x", "before", "yesterday"), "/value", "before takes an ISO 8601 timestamp"),
    (cmp("traits.x", "starts_with", 5), "/value", "starts_with takes a non-empty string, not a number"),
    (cmp("traits.x", "starts_with", ""), "/value", "starts_with takes a non-empty string"),
    (cmp("traits.x", "exists", "yes"), "/value", "exists takes true or false, not a string"),
    (cmp("traits.x", "regex", 5), "/value", "regex takes a non-empty pattern string"),
    (cmp("traits.x", "regex", "(unclosed"), "/value", "not a valid regular expression"),
    (cmp("traits.x", "contains", {"a": 1}), "/value", "contains takes a string, a number or a boolean"),
    (cmp("traits.plan name", "eq", "x"), "/path", "bad path 'traits.plan name': unexpected ' '"),
    (cmp("traits..plan", "eq", "x"), "/path", "bad path 'traits..plan': segments are 1 to 64"),
    (cmp("traits.plan.", "eq", "x"), "/path", "bad path 'traits.plan.': unexpected '.'"),
    (cmp("traits." + "a" * 65, "eq", "x"), "/path", "segments are 1 to 64"),
    (cmp("traits.a.b.c.d.e.f.g.h", "eq", "x"), "/path", "at most 8 segments"),
    (cmp(["traits"] * 9, "eq", "x"), "/path", "a path has 1 to 8 segments"),
    (cmp(["traits", ""], "eq", "x"), "/path", "each segment of a list path is a string of 1 to 256 characters"),
    (cmp('traits["plan"', "eq", "x"), "/path", "a bracketed segment is"),
    (cmp("traits[plan]", "eq", "x"), "/path", "after '[' comes a JSON string"),
    (cmp(5, "eq", "x"), "/path", "a path is a dotted string or a list of segments, not a number"),
    (cmp("user.plan", "eq", "x"), "/path", "unknown root 'user'; a path starts with one of: event, traits"),
    (cmp("traits", "eq", "x"), "/path", "traits needs a key"),
    (cmp("event", "eq", "x"), "/path", "event needs a field"),
    (cmp("event.foo", "eq", "x"), "/path", "unknown event field in event.foo"),
    (cmp("profile.plan", "eq", "x"), "/path", "profile fields are: id, created_at"),
    (cmp("tags.first", "eq", "x"), "/path", "tags is a list of strings and has no fields"),
    (cmp("identities", "contains", "x"), "/path", "identities needs one type"),
    (cmp("profile.orders", "starts_with", "1"), "/op", "profile.orders is a number: starts_with does not apply"),
    (cmp("profile.orders", "eq", "3"), "/value", "eq takes a number here, not a string"),
    (cmp("profile.revenue", "in", [1, "2"]), "/value/1", "in takes a number here, not a string"),
    (cmp("profile.orders", "within_last", "1d"), "/op", "profile.orders is a number: within_last does not apply"),
    (cmp("tags", "gt", 1), "/op", "tags is a list: use contains or exists"),
    (cmp("segments", "eq", "seg_1"), "/op", "segments is a list: use contains or exists"),
    (cmp("identities.email", "in", ["a@b.c"]), "/op", "identities.email is a list"),
    (cmp("tags", "contains", 5), "/value", "contains takes a string here, not a number"),
    (cmp("event.timestamp", "contains", "2026"), "/op", "event.timestamp is a timestamp: contains does not apply"),
    (cmp("event.timestamp", "gt", 5), "/value", "gt takes an ISO 8601 timestamp, not a number"),
    (cmp("profile.last_order_at", "eq", "soon"), "/value", "eq takes an ISO 8601 timestamp here"),
    (cmp("profile.first_seen", "regex", "^2026"), "/op", "profile.first_seen is a timestamp"),
    (cmp("event.name", "gt", 1), "/op", "event.name is a string: gt does not apply"),
    (cmp("event.name", "eq", 1), "/value", "eq takes a string here, not a number"),
    ({"did": "Order Completed"}, "", "a behaviour condition needs at_least, at_most or exactly"),
    ({"did": "", "at_least": 1}, "/did", "did takes an event name"),
    ({"did": "X", "at_least": -1}, "/at_least", "at_least takes a whole number from 0"),
    ({"did": "X", "at_most": True}, "/at_most", "at_most takes a whole number"),
    ({"did": "X", "exactly": 1.5}, "/exactly", "exactly takes a whole number"),
    ({"did": "X", "exactly": 1, "at_least": 1}, "/exactly", "exactly cannot be combined"),
    ({"did": "X", "at_least": 3, "at_most": 2}, "/at_most", "at_most is below at_least"),
    ({"did": "X", "at_least": 1, "within": "12h"}, "/within", "within takes whole days or weeks"),
    (
        {"did": "X", "at_least": 1, "within": "13w"},
        "/within",
        "within 13w is 91 days; behaviour windows are limited to 90",
    ),
    ({"did": "X", "at_least": 1, "within": "91d"}, "/within", "limited to 90 days"),
]


@pytest.mark.parametrize(("spec", "location", "message"), VALIDATION_CASES, ids=lambda x: json.dumps(x)[:50])
def test_an_invalid_definition_is_refused_with_its_location(spec: Any, location: str, message: str) -> None:
    issues = validate(spec)
    assert [issue.location for issue in issues] == [location], issues
    assert message in issues[0].message, issues[0].message
    with pytest.raises(ConditionError) as refused:
        compile_condition(spec)
    assert refused.value.issues == issues


def test_every_issue_of_a_definition_is_reported_at_once() -> None:
    spec = {
        "any": [
            cmp("traits.plan", "eq", "pro"),
            {"all": [cmp("tags", "gt", 1), cmp("traits.a", "between", [2, 1])]},
            {"not": {"did": "X", "at_least": 1, "within": "100d"}},
            cmp("nowhere.x", "eq", 1),
        ]
    }
    assert [location for location, _ in where(spec)] == [
        "/any/1/all/0/op",
        "/any/1/all/1/value",
        "/any/2/not/within",
        "/any/3/path",
    ]


def test_a_key_with_a_slash_is_escaped_in_the_location() -> None:
    assert where({"path": "traits.a", "op": "eq", "value": 1, "a/b~": 2})[0][0] == "/a~1b~0"


def test_a_refusal_is_an_invalid_input_error_with_issues_as_details() -> None:
    with pytest.raises(ConditionError) as refused:
        compile_condition({"all": [cmp("traits.plan", "eq", "pro"), cmp("traits.plan", "nope", 1)]})
    error = refused.value
    assert isinstance(error, InvalidInput)
    assert error.status == 400
    body = error.to_body()
    assert body["code"] == "invalid_condition"
    assert body["details"] == [{"location": "/all/1/op", "message": error.issues[0].message}]
    assert str(error).startswith("invalid condition at /all/1/op: unknown operator 'nope'")
    assert Issue("/x", "y").to_dict() == {"location": "/x", "message": "y"}


def test_a_valid_definition_has_no_issues() -> None:
    assert validate({"all": [cmp("traits.plan", "eq", "pro"), {"did": "Order Completed", "at_least": 1}]}) == []


def test_facts_need_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Facts(profile=None, event=None, now=datetime(2026, 11, 22))


# ---------------------------------------------------------------------------- hostile definitions
def chain(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = cmp("traits.plan", "eq", "pro")
    for _ in range(levels - 1):
        spec = {"not": spec}
    return spec


def test_nesting_is_limited_to_12_levels() -> None:
    assert validate(chain(MAX_DEPTH)) == []
    assert compile_condition(chain(MAX_DEPTH)).test(FULL) is (MAX_DEPTH % 2 == 1)
    assert where(chain(MAX_DEPTH + 1)) == [("/not" * MAX_DEPTH, f"nested deeper than {MAX_DEPTH} levels")]


def test_a_definition_nested_thousands_deep_is_refused_quickly() -> None:
    spec: Any = cmp("traits.plan", "eq", "pro")
    for _ in range(50_000):
        spec = {"all": [spec]}
    assert where(spec) == [("/all/0" * MAX_DEPTH, f"nested deeper than {MAX_DEPTH} levels")]


def test_conditions_are_limited_to_500_nodes() -> None:
    at_limit = {"any": [cmp("traits.age", "eq", n) for n in range(MAX_NODES - 1)]}
    assert validate(at_limit) == []
    over = {"any": [cmp("traits.age", "eq", n) for n in range(MAX_NODES)]}
    assert where(over) == [("", f"a condition has at most {MAX_NODES} nodes")]
    huge = {"any": [cmp("traits.age", "eq", n) for n in range(200_000)]}
    started = time.perf_counter()
    assert where(huge) == [("", f"a condition has at most {MAX_NODES} nodes")]
    assert time.perf_counter() - started < 1


def test_huge_strings_are_refused() -> None:
    assert where(cmp("traits.plan", "eq", "x" * 1025)) == [
        ("/value", "strings are limited to 1024 characters (this one has 1025)")
    ]
    assert validate(cmp("traits.plan", "eq", "x" * 1024)) == []
    assert where(cmp("traits.plan", "in", ["a", "x" * 5000]))[0][0] == "/value/1"
    assert where({"did": "x" * 2000, "at_least": 1})[0][0] == "/did"
    assert where(cmp("traits.x", "regex", "a" * 257)) == [
        ("/value", "patterns are limited to 256 characters (this one has 257)")
    ]
    assert where(cmp("traits." + "a" * 10_000, "eq", 1))[0][0] == "/path"


def test_issues_are_capped_so_an_answer_stays_small() -> None:
    spec = {"any": [cmp("traits.x", "gt", "bad") for _ in range(400)]}
    assert len(validate(spec)) == 100


REDOS = [
    ("(a+)+$", "nested quantifiers"),
    ("(a|aa)*b", "alternation inside a repeat"),
    ("(.*a){20}", "nested quantifiers"),
    ("^(\\w+\\s?)*$", "nested quantifiers"),
    ("(x+x+)+y", "nested quantifiers"),
    ("^(a?){25}a{25}$", "nested quantifiers"),
    ("(a)\\1", "backreferences"),
    ("(?P<q>a)(?(q)b|c)", "backreferences and conditional groups"),
    ("foo(?=bar)", "lookahead and lookbehind"),
    ("(?<!x)y", "lookahead and lookbehind"),
    ("(?>a+)b", "atomic groups"),
    ("a++b", "atomic groups and possessive quantifiers"),
    ("\\d+\\d+x", "this pattern can backtrack too much"),  # polynomial: ~6 s on 2,048 digits
    ("^\\d+\\d+\\d+x", "this pattern can backtrack too much"),
    (".*a.*b", "this pattern can backtrack too much"),
    ("^" + "a?" * 24 + "$", "this pattern can backtrack too much"),
    ("(?i)[a-z]+K+x", "this pattern can backtrack too much"),
]


@pytest.mark.parametrize(("pattern", "message"), REDOS)
def test_a_regex_that_can_backtrack_without_bound_is_refused(pattern: str, message: str) -> None:
    issues = where(cmp("traits.email", "regex", pattern))
    assert [location for location, _ in issues] == ["/value"]
    assert issues[0][1].startswith(message), issues


SAFE = [
    (SAFE_EMAIL, "ada@example.com", True),
    (SAFE_EMAIL, "ada@example.org", False),
    ("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", "ada@mail.example.fr", True),
    ("^(?:\\d{3}-){2}\\d{4}$", "555-123-4567", True),
    ("^\\d+[a-z]+\\d+$", "12ab34", True),
    ("(?i)^bf-\\d{4}$", "BF-2026", True),
    ("^.*@example", "ada@example.com", True),
    ("checkout|cart", "/cart/1", True),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), SAFE)
def test_a_safe_regex_is_accepted_and_matches(pattern: str, value: str, expected: bool) -> None:
    given = facts(customer(traits={"v": value}))
    assert matches(cmp("traits.v", "regex", pattern), given) is expected


@pytest.mark.parametrize("pattern", [p for p, _, _ in SAFE])
def test_an_accepted_regex_stays_fast_on_hostile_values(pattern: str) -> None:
    condition = compile_condition(cmp("traits.v", "regex", pattern))
    hostile = ["a" * 5000, "1" * 5000, "@" * 5000, "a@" * 2500, "a." * 2500, "555-" * 1250, "\t" * 5000]
    started = time.perf_counter()
    for value in hostile:
        condition.test(facts(customer(traits={"v": value + "!"})))
    assert time.perf_counter() - started < 0.5


# ----------------------------------------------------------------------------------------- explain
def test_explain_traces_every_node_with_the_value_seen_and_why() -> None:
    spec = {
        "all": [
            cmp("traits.plan", "eq", "free"),
            {"any": [cmp("traits.missing", "eq", 1), {"did": "Order Completed", "at_least": 2, "within": "30d"}]},
            {"not": cmp("profile.last_order_at", "within_last", "30d")},
        ]
    }
    condition = compile_condition(spec)
    trace = condition.explain(FULL)
    assert condition.test(FULL) is False
    assert trace["matched"] is False
    assert trace["condition"] is spec
    assert trace["reason"] == "2 of 3 matched; all must match"
    plan, either, negation = trace["children"]
    assert plan == {
        "condition": spec["all"][0],
        "matched": False,
        "actual": "pro",
        "reason": "traits.plan is 'pro', expected eq 'free'",
    }
    assert either["matched"] is True
    assert either["reason"] == "1 of 2 matched; at least one must match"
    assert either["children"][0]["reason"] == "traits.missing is missing, expected eq 1"
    assert either["children"][0]["actual"] is None
    assert either["children"][1] == {
        "condition": spec["all"][1]["any"][1],
        "matched": True,
        "actual": 2,
        "reason": "did 'Order Completed' 2 times in the last 30 days, expected at least 2",
    }
    assert negation["matched"] is True
    assert negation["reason"] == "the inner condition did not match"
    inner = negation["children"][0]
    assert inner["matched"] is False
    assert inner["actual"] == FULL.profile.last_order_at  # type: ignore[union-attr]
    assert inner["reason"].endswith("expected within_last '30d' (on or after 2026-10-23T12:00:00.000Z)")
    json.dumps(trace)  # a dry-run answer is JSON


def test_explain_agrees_with_test_on_every_operator_case() -> None:
    for condition, expected in OPERATOR_CASES:
        assert compile_condition(condition).explain(FULL)["matched"] is expected, condition


def test_explain_shows_segments_as_a_sorted_list() -> None:
    trace = compile_condition(cmp("segments", "contains", "seg_b")).explain(
        facts(segments=frozenset({"seg_b", "seg_a"}))
    )
    assert trace["actual"] == ["seg_a", "seg_b"]
    json.dumps(trace)


def test_a_condition_knows_its_paths_roots_and_spec() -> None:
    spec = {
        "any": [
            cmp("traits.plan", "eq", "pro"),
            cmp("event.properties.total", "gt", 10),
            {"did": "Order Completed", "at_least": 1},
            {"not": cmp("tags", "contains", "vip")},
        ]
    }
    condition = compile_condition(spec)
    assert isinstance(condition, Condition)
    assert condition.spec is spec
    assert condition.paths == {"traits.plan", "event.properties.total", 'behaviour["Order Completed"]', "tags"}
    assert condition.roots == {"traits", "event", "behaviour", "tags"}


def test_a_compiled_condition_is_reusable_across_facts() -> None:
    condition = compile_condition(cmp("event.properties.total", "gt", 100))
    assert condition.test(FULL)
    assert not condition.test(facts(customer(), order_event(total=20)))
    assert condition.test(FULL)


# ------------------------------------------------------------------------------ property test
ISO_SHAPE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?", re.ASCII
)
NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def ref_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not ISO_SHAPE.fullmatch(value):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ref_number(value: Any) -> float | None:
    if is_num(value):
        return float(value) if not isinstance(value, int) else value
    if isinstance(value, str) and len(value) <= 64 and NUMERIC.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def same(a: Any, b: Any) -> bool:
    """JSON equality: bools only equal bools, numbers equal numbers, strings strings."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_num(a) and is_num(b):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


def ref_lookup(segments: list[str], given: Facts) -> Any:
    profile, event = given.profile, given.event
    root, rest = segments[0], segments[1:]
    if root == "event":
        if event is None:
            return None
        if rest[0] == "name":
            return event.get("event") if event.get("event") is not None else event.get("name")
        current: Any = event.get(rest[0])
        keys = rest[1:]
    elif root == "segments":
        return set(given.segments) or None
    elif profile is None:
        return None
    elif root == "profile":
        value = getattr(profile, rest[0])
        return float(value) if rest[0] == "revenue" else value
    elif root == "tags":
        return list(profile.tags) or None
    else:
        current, keys = getattr(profile, root), rest
    for key in keys:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    return current


def ordered(actual: Any, bound: Any) -> tuple[Any, Any] | None:
    """The pair to order, or None when the actual value cannot be ordered against the bound."""
    moment = ref_time(bound) if isinstance(bound, str) else None
    if moment is not None:
        seen = ref_time(actual)
        return None if seen is None else (seen, moment)
    number = ref_number(actual)
    return None if number is None else (number, bound)


def reference(spec: dict[str, Any], given: Facts) -> bool:
    if "all" in spec:
        return all(reference(member, given) for member in spec["all"])
    if "any" in spec:
        return any(reference(member, given) for member in spec["any"])
    if "not" in spec:
        return not reference(spec["not"], given)
    if "did" in spec:
        profile = given.profile
        if profile is None:
            count = 0
        elif "within" in spec:
            amount, unit = int(spec["within"][:-1]), spec["within"][-1]
            days = amount * (7 if unit == "w" else 1)
            first = (given.now.date() - timedelta(days=days - 1)).strftime("%Y%m%d")
            count = sum(n for d, n in profile.daily_counts.get(spec["did"], {}).items() if d >= first)
        else:
            count = profile.event_counts.get(spec["did"], 0)
        if "exactly" in spec:
            return count == spec["exactly"]
        return spec.get("at_least", 0) <= count <= spec.get("at_most", math.inf)
    op, value = spec["op"], spec["value"]
    path = spec["path"]
    actual = ref_lookup(path if isinstance(path, list) else path.split("."), given)
    if op == "exists":
        return (actual is not None) is value
    if actual is None:
        return False
    if op in ("eq", "ne"):
        if isinstance(value, str) and ref_time(value) is not None:
            equal = ref_time(actual) == ref_time(value)
        else:
            equal = same(actual, value)
        return equal if op == "eq" else not equal
    if op in ("gt", "gte", "lt", "lte"):
        pair = ordered(actual, value)
        if pair is None:
            return False
        seen, bound = pair
        return {"gt": seen > bound, "gte": seen >= bound, "lt": seen < bound, "lte": seen <= bound}[op]
    if op == "between":
        low, high = ordered(actual, value[0]), ordered(actual, value[1])
        return low is not None and high is not None and low[1] <= low[0] <= high[1]
    if op in ("in", "not_in"):
        found = any(same(actual, candidate) for candidate in value)
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(actual, list | set | frozenset | tuple):
            return any(same(member, value) for member in actual)
        return isinstance(actual, str) and isinstance(value, str) and value in actual
    if op == "starts_with":
        return isinstance(actual, str) and actual.startswith(value)
    if op == "regex":
        return isinstance(actual, str) and re.search(value, actual[:2048]) is not None
    if op in ("before", "after"):
        seen = ref_time(actual)
        return seen is not None and (seen < ref_time(value) if op == "before" else seen > ref_time(value))  # type: ignore[operator]
    span = int(value[:-1]) * UNITS[value[-1]]
    seen = ref_time(actual)
    if seen is None:
        return False
    if op == "within_last":
        return given.now - span <= seen <= given.now
    return seen < given.now - span  # not_within_last


TIMES = [
    "2026-11-22T11:59:00.000Z",
    "2026-11-21T12:00:00.000Z",
    "2026-10-01T00:00:00Z",
    "2026-11-22",
    "2026-11-22 13:00:00+02:00",
    "2026-11-30T00:00:00.000Z",
    "2025-01-01T00:00:00.000Z",
]
TEXTS = ["pro", "free", "Pro", "pr", "", "10", "9.5", "-3", "1e3", "abc", "a@example.com", "nan", "2026-02-30"]
scalars = st.one_of(
    st.integers(-20, 20),
    st.floats(-20, 20, allow_nan=False).map(lambda x: round(x, 1)),
    st.booleans(),
    st.sampled_from(TEXTS + TIMES),
)
strings = st.sampled_from(TEXTS + TIMES)
json_values = st.one_of(
    st.none(),
    scalars,
    strings,
    strings,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2),
)
numbers = st.one_of(st.integers(-20, 20), st.floats(-20, 20, allow_nan=False).map(lambda x: round(x, 1)))
free_paths = [
    ["traits", "a"],
    ["traits", "b"],
    ["traits", "n", "x"],
    ["computed", "c"],
    ["event", "properties", "p"],
    ["event", "context", "q"],
]
typed_paths = {
    "number": [["profile", "orders"], ["profile", "revenue"]],
    "time": [["profile", "last_order_at"], ["event", "timestamp"]],
    "string": [["event", "name"]],
    "list": [["tags"], ["segments"]],
}
durations = st.sampled_from(["15m", "12h", "1d", "30d", "2w", "400d"])
patterns = st.sampled_from(["^p", "o$", "^[a-z]+$", "\\d", "(?i)PRO", "@example\\.com$", "^Or", "ing$", "^2026-1"])


@st.composite
def comparisons(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["any", "any", "any", "number", "time", "string", "list"]))
    path = draw(st.sampled_from(free_paths if kind == "any" else typed_paths[kind]))
    ops = {
        "any": list(OPERATORS),
        "number": ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "exists"],
        "time": ["eq", "ne", "gt", "lte", "between", "before", "after", "within_last", "not_within_last", "exists"],
        "string": ["eq", "ne", "in", "not_in", "contains", "starts_with", "regex", "exists"],
        "list": ["contains", "exists"],
    }[kind]
    op = draw(st.sampled_from(ops))
    times = st.sampled_from(TIMES)
    texts = st.sampled_from(["pro", "Order Completed", "Pricing", "vip", "seg_1", "a"])
    equal_values = {"any": scalars, "number": numbers, "time": times, "string": texts, "list": texts}[kind]
    ordered_values = {"number": numbers, "time": times}.get(kind, st.one_of(numbers, times))
    if op == "exists":
        value: Any = draw(st.booleans())
    elif op in ("eq", "ne", "contains"):
        value = draw(equal_values)
    elif op in ("gt", "gte", "lt", "lte"):
        value = draw(ordered_values)
    elif op == "between":
        use_times = kind == "time" or (kind == "any" and draw(st.booleans()))
        pair = draw(st.lists(times if use_times else numbers, min_size=2, max_size=2))
        value = sorted(pair, key=lambda v: ref_time(v) if use_times else v)
    elif op in ("in", "not_in"):
        value = draw(st.lists(equal_values, min_size=1, max_size=4))
    elif op == "starts_with":
        value = draw(st.sampled_from(["p", "pr", "Pr", "Order", "a@", "1", "2026-11"]))
    elif op == "regex":
        value = draw(patterns)
    elif op in ("before", "after"):
        value = draw(times)
    else:
        value = draw(durations)
    shape = draw(st.sampled_from(["dots", "list"]))
    return {"path": path if shape == "list" else ".".join(path), "op": op, "value": value}


behaviours = st.builds(
    lambda name, bound, within: {"did": name, **bound, **within},
    st.sampled_from(["Order Completed", "Product Viewed", "$page"]),
    st.one_of(
        st.builds(lambda n: {"at_least": n}, st.integers(0, 4)),
        st.builds(lambda n: {"at_most": n}, st.integers(0, 4)),
        st.builds(lambda n: {"exactly": n}, st.integers(0, 4)),
        st.builds(lambda a, b: {"at_least": min(a, b), "at_most": max(a, b)}, st.integers(0, 4), st.integers(0, 4)),
    ),
    st.one_of(st.just({}), st.sampled_from([{"within": "1d"}, {"within": "7d"}, {"within": "2w"}, {"within": "90d"}])),
)
conditions = st.recursive(
    st.one_of(comparisons(), behaviours),
    lambda inner: st.one_of(
        st.builds(lambda members: {"all": members}, st.lists(inner, min_size=1, max_size=4)),
        st.builds(lambda members: {"any": members}, st.lists(inner, min_size=1, max_size=4)),
        st.builds(lambda member: {"not": member}, inner),
    ),
    max_leaves=12,
)
day_buckets = st.dictionaries(st.integers(0, 120).map(day), st.integers(1, 3), max_size=4)


@st.composite
def random_facts(draw: st.DrawFn) -> Facts:
    profile = None
    if draw(st.integers(0, 9)) > 0:
        names = ["Order Completed", "Product Viewed", "$page"]
        daily = {name: draw(day_buckets) for name in names if draw(st.booleans())}
        profile = customer(
            traits={"a": draw(json_values), "b": draw(json_values), "n": {"x": draw(json_values)}},
            computed={"c": draw(json_values)},
            orders=draw(st.integers(0, 12)),
            revenue=draw(st.sampled_from(["0", "9.50", "10", "123.40", "-1"])),
            last_order_at=draw(st.one_of(st.none(), st.sampled_from(TIMES))),
            tags=draw(st.lists(st.sampled_from(["vip", "a", "beta"]), max_size=3, unique=True)),
            event_counts={name: sum(days.values()) + draw(st.integers(0, 2)) for name, days in daily.items()},
            daily_counts=daily,
        )
    event = None
    if draw(st.integers(0, 9)) > 0:
        event = {
            "type": draw(st.sampled_from(["track", "page"])),
            "timestamp": draw(st.sampled_from(TIMES)),
            "properties": {"p": draw(json_values)},
            "context": {"q": draw(json_values)},
        }
        if event["type"] == "track":
            event["event"] = draw(st.sampled_from(["Order Completed", "Pricing"]))
        else:
            event["name"] = "Pricing"
    segments = frozenset(draw(st.lists(st.sampled_from(["seg_1", "seg_2"]), max_size=2)))
    now = NOW + timedelta(minutes=draw(st.integers(-3000, 3000)))
    return Facts(profile=profile, event=event, now=now, segments=segments)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=conditions, given_facts=st.lists(random_facts(), min_size=1, max_size=3))
def test_compiled_conditions_agree_with_a_plain_interpreter(spec: dict[str, Any], given_facts: list[Facts]) -> None:
    assert validate(spec) == [], spec
    condition = compile_condition(spec)
    for one in given_facts:
        expected = reference(spec, one)
        assert condition.test(one) is expected, (spec, one)
        assert condition.explain(one)["matched"] is expected


# ------------------------------------------------------------------------------- predicted scores
def scored(churn_risk: float, percentile: int) -> Facts:
    risk = {"value": churn_risk, "percentile": percentile, "model": "customer_value.v3"}
    return facts(customer(traits={"predicted": {"churn_risk": risk}}))


def test_a_predicted_score_is_its_value_and_its_percentile_is_one_field_further() -> None:
    assert matches(cmp("predicted.churn_risk", "gt", 0.7), scored(0.82, 91))
    assert not matches(cmp("predicted.churn_risk", "gt", 0.7), scored(0.41, 40))
    assert matches(cmp("predicted.churn_risk.percentile", "gte", 90), scored(0.82, 91))
    assert matches(cmp("predicted.churn_risk.model", "eq", "customer_value.v3"), scored(0.82, 91))
    # The same as the long path through the traits
    assert matches(cmp("traits.predicted.churn_risk.value", "gt", 0.7), scored(0.82, 91))
    # Someone the refit has not scored is missing, as any absent value
    assert not matches(cmp("predicted.churn_risk", "lte", 1.0), FULL)
    assert matches({"not": cmp("predicted.churn_risk", "gt", 0.7)}, FULL)


@pytest.mark.parametrize("path", ["predicted", "predicted.churn_risk.rank", "predicted.churn_risk.value.more"])
def test_a_predicted_path_names_a_score_and_at_most_one_of_its_fields(path: str) -> None:
    [(where_, message)] = where(cmp(path, "gt", 0.7))
    assert where_ == "/path"
    assert "predicted needs a score and optionally its percentile" in message
