"""Segments: definitions, dependency order, membership, time dependence, validation, estimates,
and the platform's Segment Added / Removed events on the profile.

A hypothesis property checks `SegmentSet.evaluate` against `reference`, which ignores
dependency order altogether: it re-judges every definition until the memberships stop changing.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from midstage.logic import profile as profile_logic
from midstage.logic.conditions import Facts, compile_condition
from midstage.logic.segments import (
    SegmentSet,
    estimate,
    is_time_dependent,
    referenced_segments,
    transitions,
    validate_segment,
)
from midstage.logic.timefmt import iso
from midstage.models.profile import Profile
from midstage.models.segments import Segment, SegmentBody

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EARLIER = "2026-10-01T09:00:00.000Z"


def member_of(segment_id: str) -> dict[str, Any]:
    return {"path": "segments", "op": "contains", "value": segment_id}


def dynamic(segment_id: str, condition: dict[str, Any], version: int = 1) -> Segment:
    return Segment(id=segment_id, name=segment_id, kind="dynamic", condition=condition, version=version)


def static(segment_id: str) -> Segment:
    return Segment(id=segment_id, name=segment_id, kind="static")


def person(**fields: Any) -> Profile:
    return Profile(id="p1", created_at="2025-01-01T00:00:00.000Z", **fields)


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y%m%d")


PRO = dynamic("pro", {"path": "traits.plan", "op": "eq", "value": "pro"})
BIG_SPENDER = dynamic("big_spender", {"path": "profile.revenue", "op": "gt", "value": 100})
VIP = dynamic("vip", {"all": [member_of("big_spender"), member_of("pro")]})
EITHER = dynamic("either", {"any": [member_of("vip"), member_of("imported")]})
IMPORTED = static("imported")


# ------------------------------------------------------------------------------ dependency order
def test_dependencies_are_evaluated_before_the_segments_that_test_them() -> None:
    # Given definitions listed dependents first
    segments = SegmentSet([EITHER, VIP, PRO, BIG_SPENDER, IMPORTED])

    # Then each dynamic segment comes after those it reads
    order = segments.order
    assert order.index("vip") > order.index("pro")
    assert order.index("vip") > order.index("big_spender")
    assert order.index("either") > order.index("vip")
    assert segments.static_ids == {"imported"}
    assert segments.dynamic_ids == {"pro", "big_spender", "vip", "either"}

    # When a new customer qualifies for everything at once, with nothing stored yet
    customer = person(traits={"plan": "pro"}, revenue="250.00")

    # Then one evaluation finds the whole chain
    assert segments.evaluate(customer, NOW) == {
        "big_spender": iso(NOW),
        "pro": iso(NOW),
        "vip": iso(NOW),
        "either": iso(NOW),
    }


def test_segments_on_a_cycle_are_skipped_and_keep_their_stored_memberships() -> None:
    # Given a cycle a -> b -> a (validation refuses it, but definitions could be stored by hand)
    a = dynamic("a", {"all": [member_of("b"), {"path": "traits.plan", "op": "eq", "value": "pro"}]})
    b = dynamic("b", member_of("a"))
    c = dynamic("c", member_of("a"))
    segments = SegmentSet([a, b, c, PRO])

    # Then a and b are skipped, naming the cycle, and c still reads a's stored membership
    assert set(segments.skipped) == {"a", "b"}
    assert "a → b → a" in segments.skipped["a"]
    assert "c" in segments.order
    stored = person(traits={"plan": "free"}, segments={"a": EARLIER, "b": EARLIER, "gone": EARLIER})
    assert segments.evaluate(stored, NOW) == {"a": EARLIER, "b": EARLIER, "c": iso(NOW)}
    assert segments.evaluate(person(), NOW) == {}


def test_a_self_reference_and_a_broken_condition_are_skipped() -> None:
    loop = dynamic("loop", member_of("loop"))
    broken = dynamic("broken", {"path": "traits.plan", "op": "sounds_like", "value": "pro"})
    any_segment = dynamic("any_segment", {"path": "segments", "op": "exists", "value": True})

    segments = SegmentSet([loop, broken, any_segment, PRO])

    assert set(segments.skipped) == {"loop", "broken", "any_segment"}
    assert "loop → loop" in segments.skipped["loop"]
    assert "does not compile" in segments.skipped["broken"]
    assert segments.order == ("pro",)


# ------------------------------------------------------------------------------------ evaluate
def test_evaluate_keeps_entered_times_adds_new_members_now_and_drops_leavers() -> None:
    segments = SegmentSet([PRO, BIG_SPENDER, VIP])
    # Given a profile stored as pro since October, once a big spender, and in a deleted segment
    customer = person(
        traits={"plan": "pro"},
        revenue="20",
        segments={"pro": EARLIER, "big_spender": EARLIER, "deleted": EARLIER},
    )

    # When it is evaluated now
    after = segments.evaluate(customer, NOW)

    # Then pro continues with its old time, big_spender is left and the deleted segment dropped
    assert after == {"pro": EARLIER}
    assert transitions(customer.segments, after) == ([], ["big_spender", "deleted"])

    # And when they spend more, they enter big_spender and vip now
    customer.segments, customer.revenue = after, "500"
    later = segments.evaluate(customer, NOW)
    assert later == {"big_spender": iso(NOW), "pro": EARLIER, "vip": iso(NOW)}
    assert transitions(after, later) == (["big_spender", "vip"], [])


def test_static_membership_follows_the_last_import_and_dates_from_it() -> None:
    segments = SegmentSet([IMPORTED, static("removed"), static("odd"), EITHER])
    customer = person(
        static_segments={
            "imported": ["2026-11-01T10:00:00.000Z|ms-int-1|midstage", True],
            "removed": ["2026-11-02T10:00:00.000Z|ms-int-2|midstage", False],
            "odd": "not a pair",
            "undefined": ["2026-11-01T10:00:00.000Z|ms-int-3|midstage", True],
        }
    )

    assert segments.evaluate(customer, NOW) == {
        "imported": "2026-11-01T10:00:00.000Z",
        "either": iso(NOW),
    }
    assert segments.evaluate_one("imported", customer, NOW) is True
    assert segments.evaluate_one("removed", customer, NOW) is False


def test_a_continuing_static_membership_keeps_its_first_entered_time() -> None:
    segments = SegmentSet([IMPORTED])
    # Given a person imported in October and imported again in November
    customer = person(
        segments={"imported": EARLIER},
        static_segments={"imported": ["2026-11-20T10:00:00.000Z|ms-int-9|midstage", True]},
    )
    assert segments.evaluate(customer, NOW) == {"imported": EARLIER}


def test_evaluate_never_raises_on_odd_profiles_and_keeps_the_stored_answer() -> None:
    buyers = dynamic("buyers", {"did": "Order Completed", "at_least": 1, "within": "30d"})
    segments = SegmentSet([buyers, PRO, IMPORTED])
    # Given a profile whose stored fields are not what the code writes
    odd = person(
        traits={"plan": ["pro"], "nested": {"x": None}},
        daily_counts={"Order Completed": {day(1): "three"}},  # a counter that is not a number
        segments={"buyers": EARLIER},
        static_segments={"imported": [None, "yes"]},
    )

    # When it is evaluated, nothing raises: the failing condition keeps its stored answer
    assert segments.evaluate(odd, NOW) == {"buyers": EARLIER}
    assert segments.evaluate_one("buyers", odd, NOW) is True
    odd.segments = {}
    assert segments.evaluate(odd, NOW) == {}


def test_evaluate_one_reads_stored_memberships_of_dependencies() -> None:
    segments = SegmentSet([PRO, BIG_SPENDER, VIP])
    customer = person(traits={"plan": "free"}, revenue="0", segments={"pro": EARLIER, "big_spender": EARLIER})

    assert segments.evaluate_one("vip", customer, NOW) is True  # stored memberships, as a backfill sees them
    assert segments.evaluate_one("pro", customer, NOW) is False  # the condition itself
    with pytest.raises(KeyError):
        segments.evaluate_one("nope", customer, NOW)


def test_the_signature_changes_with_any_definition_version() -> None:
    first = SegmentSet([PRO, IMPORTED])
    assert first.signature == (("imported", 1), ("pro", 1))
    assert SegmentSet([dynamic("pro", PRO.condition or {}, version=2), IMPORTED]).signature != first.signature


def test_transitions_are_sorted() -> None:
    assert transitions({"b": "t", "a": "t", "k": "t"}, {"k": "t", "z": "t", "c": "t"}) == (["c", "z"], ["a", "b"])


# ------------------------------------------------------------------------- reading conditions
def test_referenced_segments_finds_every_form_of_the_segments_path() -> None:
    spec = {
        "all": [
            member_of("vip"),
            {"path": ["segments"], "op": "contains", "value": "pro"},
            {"not": {"path": '["segments"]', "op": "contains", "value": "churned"}},
            {"any": [{"path": "tags", "op": "contains", "value": "not_a_segment"}]},
            {"path": "segments", "op": "in", "value": ["a", "b", 3]},
        ]
    }
    assert referenced_segments(spec) == {"vip", "pro", "churned", "a", "b"}
    assert referenced_segments({"path": "traits.segments", "op": "eq", "value": "x"}) == set()
    assert referenced_segments("not a condition") == set()


@pytest.mark.parametrize(
    ("condition", "moves"),
    [
        ({"path": "profile.last_seen", "op": "within_last", "value": "30d"}, True),
        ({"path": "profile.last_order_at", "op": "not_within_last", "value": "90d"}, True),
        ({"path": "traits.renewal", "op": "before", "value": "30d"}, True),  # a relative form
        ({"path": "profile.created_at", "op": "before", "value": "2026-01-01T00:00:00Z"}, False),
        ({"path": "profile.last_seen", "op": "gt", "value": "2026-01-01T00:00:00Z"}, False),
        ({"did": "Order Completed", "at_least": 2, "within": "30d"}, True),
        ({"did": "Order Completed", "at_least": 2}, False),
        ({"path": "computed.days_since_last_seen", "op": "gt", "value": 30}, True),
        ({"path": "computed.days_since_last_order", "op": "lt", "value": 7}, True),
        ({"path": "computed.lifecycle_stage", "op": "eq", "value": "churned"}, True),
        ({"path": "computed.rfm.score", "op": "eq", "value": "555"}, True),
        ({"path": 'computed.event_counts["Order Completed"].30d', "op": "gte", "value": 1}, True),
        ({"path": ["computed", "event_counts", "Order Completed", "total"], "op": "gte", "value": 1}, False),
        ({"path": "computed.value_tier", "op": "eq", "value": "vip"}, False),
        ({"path": "computed.orders", "op": "gt", "value": 3}, False),
        ({"path": "traits.plan", "op": "eq", "value": "pro"}, False),
        ({"path": "tags", "op": "contains", "value": "vip"}, False),
        (
            {
                "all": [
                    {"path": "traits.plan", "op": "eq", "value": "pro"},
                    {"not": {"any": [{"did": "x", "exactly": 0, "within": "7d"}]}},
                ]
            },
            True,
        ),
    ],
)
def test_time_dependence_is_whatever_can_change_without_an_event(condition: dict[str, Any], moves: bool) -> None:
    assert is_time_dependent(condition) is moves


def test_time_dependence_accepts_a_compiled_condition_and_spreads_to_dependents() -> None:
    recent = dynamic("recent", {"path": "profile.last_order_at", "op": "within_last", "value": "30d"})
    recent_pro = dynamic("recent_pro", {"all": [member_of("recent"), member_of("pro")]})
    pro_or_recent_pro = dynamic("pro_or_recent_pro", {"any": [member_of("pro"), member_of("recent_pro")]})

    assert is_time_dependent(compile_condition(recent.condition)) is True
    segments = SegmentSet([recent, recent_pro, pro_or_recent_pro, PRO, IMPORTED])
    assert segments.time_dependent == {"recent", "recent_pro", "pro_or_recent_pro"}


# ---------------------------------------------------------------------------------- validation
def body(condition: dict[str, Any] | None, kind: str = "dynamic") -> SegmentBody:
    return SegmentBody.model_construct(name="n", description="", kind=kind, condition=condition)


def test_a_valid_dynamic_segment_may_reference_dynamic_and_static_ones() -> None:
    others = {"pro": PRO, "imported": IMPORTED}
    assert validate_segment("vip", body({"any": [member_of("pro"), member_of("imported")]}), others) == []


def test_condition_errors_are_located_under_condition() -> None:
    issues = validate_segment("x", body({"all": [{"path": "traits.plan", "op": "sounds_like", "value": 1}]}), {})
    assert [issue.location for issue in issues] == ["/condition/all/0/op"]
    assert "unknown operator" in issues[0].message


def test_unknown_segments_are_named_at_their_comparison() -> None:
    issues = validate_segment("x", body({"all": [member_of("pro"), {"not": member_of("ghost")}]}), {"pro": PRO})
    assert [i.to_dict() for i in issues] == [{"location": "/condition/all/1/not", "message": "unknown segment 'ghost'"}]


def test_a_cycle_is_refused_naming_its_path() -> None:
    # Given b depends on a, and a is being saved to depend on b
    others = {"a": dynamic("a", PRO.condition or {}), "b": dynamic("b", member_of("a")), "pro": PRO}
    issues = validate_segment("a", body({"all": [member_of("pro"), member_of("b")]}), others)
    assert [i.to_dict() for i in issues] == [
        {"location": "/condition/all/1", "message": "segments cannot depend on themselves: a → b → a"}
    ]


def test_a_longer_cycle_and_a_self_reference_are_refused() -> None:
    others = {"b": dynamic("b", member_of("c")), "c": dynamic("c", member_of("a"))}
    longer = validate_segment("a", body(member_of("b")), others)
    assert [i.message for i in longer] == ["segments cannot depend on themselves: a → b → c → a"]
    itself = validate_segment("a", body({"not": member_of("a")}), {})
    assert [i.to_dict() for i in itself] == [
        {"location": "/condition/not", "message": "segments cannot depend on themselves: a → a"}
    ]


def test_kind_and_condition_must_agree() -> None:
    assert [i.to_dict() for i in validate_segment("s", body(PRO.condition, kind="static"), {})] == [
        {"location": "/condition", "message": "a static segment has no condition: its members come from imports"}
    ]
    assert [i.location for i in validate_segment("d", body(None), {})] == ["/condition"]
    assert validate_segment("s", body(None, kind="static"), {}) == []
    assert [i.location for i in validate_segment("Bad Id", body(None, kind="static"), {})] == ["/id"]


def test_event_paths_and_segments_exists_are_refused_in_segments() -> None:
    spec = {
        "all": [
            {"path": "event.properties.total", "op": "gt", "value": 10},
            {"path": "segments", "op": "exists", "value": True},
        ]
    }
    issues = validate_segment("x", body(spec), {})
    assert [i.location for i in issues] == ["/condition/all/0/path", "/condition/all/1"]
    assert "no event" in issues[0].message
    assert "every other segment" in issues[1].message


def test_the_models_enforce_kind_and_id() -> None:
    with pytest.raises(ValidationError, match="needs a `condition`"):
        SegmentBody(name="n", kind="dynamic")
    with pytest.raises(ValidationError, match="has no `condition`"):
        SegmentBody(name="n", kind="static", condition={"path": "tags", "op": "contains", "value": "x"})
    with pytest.raises(ValidationError):
        SegmentBody(name="n", kind="static", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Segment(id="Not An Id", name="n", kind="static")
    assert Segment.model_validate({"id": "ok", "name": "n", "kind": "static", "stored_extra": 1}).id == "ok"


# ----------------------------------------------------------------------------------- estimates
def test_an_estimate_from_every_part_is_exact() -> None:
    assert estimate(42, 1000, 8, 8) == {
        "estimated": 42,
        "low": 42,
        "high": 42,
        "exact": True,
        "scanned": 1000,
        "matched": 42,
    }


def test_an_estimate_extrapolates_and_brackets_its_value() -> None:
    result = estimate(100, 1000, 1, 4)
    assert result["estimated"] == 400
    assert result["exact"] is False
    assert 100 <= result["low"] < 400 < result["high"]
    # More of the population scanned gives a narrower interval around the same estimate.
    wider, narrower = estimate(100, 1000, 1, 4), estimate(300, 3000, 3, 4)
    assert narrower["estimated"] == 400
    assert narrower["high"] - narrower["low"] < wider["high"] - wider["low"]


def test_no_match_in_the_sample_still_bounds_the_rest() -> None:
    result = estimate(0, 500, 1, 10)
    assert result["estimated"] == 0 and result["low"] == 0
    assert result["high"] > 0


@pytest.mark.parametrize(
    ("matched", "scanned", "parts_scanned", "parts_total"),
    [(5, 4, 1, 2), (1, 1, 0, 2), (1, 1, 3, 2), (-1, 1, 1, 2), (True, 1, 1, 2)],
)
def test_impossible_samples_are_refused(matched: int, scanned: int, parts_scanned: int, parts_total: int) -> None:
    with pytest.raises(ValueError):
        estimate(matched, scanned, parts_scanned, parts_total)


@pytest.mark.parametrize("match_rate", [0.02, 0.3, 0.9])
def test_the_interval_contains_the_true_size_about_95_times_in_100(match_rate: float) -> None:
    # Given populations whose profiles hash uniformly into 16 parts, and a scan of 2 of them
    rng = random.Random(20261122)
    population, parts_total, parts_scanned, trials = 3000, 16, 2, 400
    covered = 0
    for _ in range(trials):
        matches = [rng.random() < match_rate for _ in range(population)]
        parts = [rng.randrange(parts_total) for _ in range(population)]
        sampled = [m for m, part in zip(matches, parts, strict=True) if part < parts_scanned]
        result = estimate(sum(sampled), len(sampled), parts_scanned, parts_total)
        covered += result["low"] <= sum(matches) <= result["high"]
    # Then the 95 % interval holds the truth in roughly 95 % of trials (binomial sd ~ 1.1 %)
    assert 0.91 <= covered / trials <= 0.99


# ----------------------------------------------------------------------- platform membership events
def segment_event(name: str, segment: str, at: str, mid: str, source: str = "midstage") -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "properties": {"segment": segment},
        "messageId": mid,
        "timestamp": at,
        "sourceId": source,
        "userId": "u1",
    }


def test_segment_events_are_last_write_wins_by_event_time() -> None:
    profile = person()
    # Given a removal that happened after the add, arriving first
    profile_logic.apply_event(profile, segment_event("Segment Removed", "vip", "2026-11-21T00:00:00.000Z", "r"))
    profile_logic.apply_event(profile, segment_event("Segment Added", "vip", "2026-11-20T00:00:00.000Z", "a"))
    # Then the removal stands
    assert profile.static_segments == {"vip": ["2026-11-21T00:00:00.000Z|r|midstage", False]}
    # And a later add turns it on
    profile_logic.apply_event(profile, segment_event("Segment Added", "vip", "2026-11-22T00:00:00.000Z", "b"))
    assert profile.static_segments["vip"][1] is True


def test_only_the_platform_can_change_a_static_membership() -> None:
    profile = person()
    profile_logic.apply_event(profile, segment_event("Segment Added", "vip", EARLIER, "c", source="src_app"))
    profile_logic.apply_event(profile, segment_event("Segment Added", "Not An Id", EARLIER, "d"))
    assert profile.static_segments == {}
    assert profile.event_counts == {"Segment Added": 2}  # still counted, as ordinary events


def test_merging_unions_static_segments_keeping_the_newest_stamp() -> None:
    def build(entries: dict[str, list[Any]]) -> Profile:
        return person(static_segments={k: list(v) for k, v in entries.items()})

    left = {"a": ["2026-11-01T00:00:00.000Z|1|midstage", True], "b": ["2026-11-05T00:00:00.000Z|2|midstage", True]}
    right = {"b": ["2026-11-06T00:00:00.000Z|3|midstage", False], "c": ["2026-11-02T00:00:00.000Z|4|midstage", True]}
    one, other = build(left), build(right)
    profile_logic.merge_into(one, build(right))
    profile_logic.merge_into(other, build(left))
    assert one.static_segments == other.static_segments == {"a": left["a"], "b": right["b"], "c": right["c"]}


def test_static_memberships_are_bounded_keeping_the_newest() -> None:
    profile = person()
    limit = profile_logic.MAX_STATIC_SEGMENTS
    for n in range(limit + 5):
        at = (NOW - timedelta(minutes=limit + 5 - n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        profile_logic.set_static_segment(profile, f"s{n}", True, f"{at}|m{n}|midstage")
    assert len(profile.static_segments) == limit
    assert "s0" not in profile.static_segments and "s4" not in profile.static_segments
    assert f"s{limit + 4}" in profile.static_segments


# -------------------------------------------------------------------------------- the property
DEFINITIONS = [
    dynamic("pro", {"path": "traits.plan", "op": "eq", "value": "pro"}),
    dynamic("adult", {"path": "traits.age", "op": "gte", "value": 18}),
    dynamic("buyer", {"did": "Order Completed", "at_least": 2, "within": "30d"}),
    dynamic("tagged", {"path": "tags", "op": "contains", "value": "vip"}),
    dynamic("pro_buyer", {"all": [member_of("pro"), member_of("buyer")]}),
    dynamic("loyal", {"any": [member_of("pro_buyer"), {"all": [member_of("imported"), member_of("tagged")]}]}),
    dynamic("not_loyal_adult", {"all": [member_of("adult"), {"not": member_of("loyal")}]}),
    static("imported"),
]
ALL_IDS = [segment.id for segment in DEFINITIONS]


def reference(profile: Profile, now: datetime) -> dict[str, str]:
    """Memberships by brute force: re-judge every definition against the previous round's
    memberships until nothing changes (the answer is unique when there is no cycle)."""
    compiled = {s.id: compile_condition(s.condition) for s in DEFINITIONS if s.kind == "dynamic"}
    entry = profile.static_segments.get("imported")
    statics = {"imported"} if entry is not None and entry[1] is True else set()
    members: set[str] = set(statics)
    for _ in range(len(DEFINITIONS) + 1):
        facts = Facts(profile, None, now, segments=frozenset(members))
        judged = statics | {sid for sid, condition in compiled.items() if condition.test(facts)}
        if judged == members:
            break
        members = judged
    else:
        raise AssertionError("memberships did not settle")
    entered: dict[str, str] = {}
    for sid in members:
        if sid in profile.segments:
            entered[sid] = profile.segments[sid]
        elif sid in statics:
            entered[sid] = entry[0].split("|")[0]  # type: ignore[index]
        else:
            entered[sid] = iso(now)
    return dict(sorted(entered.items()))


plans = st.sampled_from(["pro", "free", 3, None])
profiles = st.builds(
    lambda plan, age, tags, orders, imported, stored: person(
        traits={k: v for k, v in (("plan", plan), ("age", age)) if v is not None},
        tags=sorted(tags),
        daily_counts={"Order Completed": orders} if orders else {},
        event_counts={"Order Completed": sum(orders.values())} if orders else {},
        static_segments={} if imported is None else {"imported": [f"{EARLIER}|m|midstage", imported]},
        segments=stored,
    ),
    plans,
    st.one_of(st.none(), st.integers(0, 40), st.just("21")),
    st.sets(st.sampled_from(["vip", "beta"])),
    st.dictionaries(st.integers(0, 60).map(day), st.integers(1, 3), max_size=4),
    st.one_of(st.none(), st.booleans()),
    st.dictionaries(st.sampled_from([*ALL_IDS, "deleted"]), st.just("2026-01-01T00:00:00.000Z"), max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(profile=profiles)
def test_evaluate_matches_a_brute_force_reference_and_is_idempotent(profile: Profile) -> None:
    segments = SegmentSet(reversed(DEFINITIONS))

    result = segments.evaluate(profile, NOW)

    assert result == reference(profile, NOW)
    profile.segments = result
    assert segments.evaluate(profile, NOW) == result
