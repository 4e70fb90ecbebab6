"""The rules engine: triggers, ordering, judging, holdouts, refire, planned effects, and the
evaluator service with every port faked in memory."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.config import ComputedTraitSettings
from midstage.logic import internal_events
from midstage.logic import profile as profile_logic
from midstage.logic.conditions import ConditionError, Facts
from midstage.logic.rules import (
    FireRecord,
    RuleSet,
    Trigger,
    compile_rule,
    dry_run,
    in_holdout,
    judge,
    plan_actions,
    refire_allows,
    triggers_of,
)
from midstage.logic.timefmt import iso
from midstage.models.messaging import MessageRequest, Rule, message_id_for
from midstage.models.profile import Profile
from midstage.services.rules import RuleEngine
from tests.support.fakes import MemoryProfiles, person

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------ builders
def rule(rule_id: str = "r1", **fields: Any) -> Rule:
    body: dict[str, Any] = {
        "id": rule_id,
        "name": rule_id,
        "trigger": {"type": "event", "event": "Signed Up"},
        "actions": [{"type": "send", "channels": ["email"], "template": "welcome"}],
    }
    body.update(fields)
    return Rule.model_validate(body)


def tracked(name: str, message_id: str = "m1", kind: str = "track", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "messageId": message_id,
        "timestamp": iso(NOW - timedelta(seconds=5)),
        "sourceId": "src_shop",
        "userId": "user-p1",
    }
    event["event" if kind == "track" else "name"] = name
    event.update(fields)
    return event


def event_detail(event: Mapping[str, Any], profile_id: str = "p1") -> dict[str, Any]:
    return {"profileId": profile_id, "event": dict(event)}


def updated_detail(changes: Mapping[str, Any], version: int = 7, profile_id: str = "p1") -> dict[str, Any]:
    return {"profileId": profile_id, "version": version, "changes": dict(changes)}


def facts(profile: Profile | None = None, event: Mapping[str, Any] | None = None, now: datetime = NOW) -> Facts:
    return Facts(profile=profile if profile is not None else person(), event=event, now=now)


# ------------------------------------------------------------------------------ fakes for the service
class FakeRules:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self.list = list(rules)

    def rules(self) -> list[Rule]:
        return list(self.list)


class FakeFires:
    """FireRecords' conditional semantics: a first firing only if none is recorded; a later one
    only if the record still names what the caller read, or already names this occurrence."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], FireRecord] = {}
        self.lose_next_race = False

    def get(self, profile_id: str, rule_id: str) -> FireRecord | None:
        return self.records.get((profile_id, rule_id))

    def get_many(self, profile_ids: Sequence[str], rule_id: str) -> list[FireRecord]:
        return [r for p in profile_ids if (r := self.records.get((p, rule_id))) is not None]

    def record(
        self, profile_id: str, rule_id: str, occurrence: str, now: datetime, expected: FireRecord | None
    ) -> bool:
        if self.lose_next_race:  # another evaluator wrote in between
            self.lose_next_race = False
            return False
        current = self.records.get((profile_id, rule_id))
        if expected is None:
            if current is not None:  # attribute_not_exists(pk)
                return False
        elif current is None or current.last_occurrence not in (expected.last_occurrence, occurrence):
            return False
        count = current.count + 1 if current else 1
        self.records[(profile_id, rule_id)] = FireRecord(iso(now), occurrence, count)
        return True


class FakeMessages:
    def __init__(self) -> None:
        self.batches: list[list[MessageRequest]] = []

    def send(self, requests: Sequence[MessageRequest]) -> None:
        self.batches.append(list(requests))

    @property
    def all(self) -> list[MessageRequest]:
        return [r for batch in self.batches for r in batch]


class FakeEvents:
    def __init__(self) -> None:
        self.groups: list[dict[str, list[dict[str, Any]]]] = []

    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int:
        self.groups.append({k: list(v) for k, v in groups.items()})
        return sum(len(v) for v in groups.values())

    @property
    def all(self) -> list[dict[str, Any]]:
        return [e for group in self.groups for events in group.values() for e in events]


@dataclass
class Wiring:
    engine: RuleEngine
    profiles: MemoryProfiles
    fires: FakeFires
    messages: FakeMessages
    events: FakeEvents
    source: FakeRules = field(default_factory=lambda: FakeRules([]))


def wire(rules: Sequence[Rule], *profiles: Profile, max_depth: int = 3) -> Wiring:
    source, store = FakeRules(rules), MemoryProfiles(*(profiles or (person(),)))
    fires, messages, events = FakeFires(), FakeMessages(), FakeEvents()
    engine = RuleEngine(source, store, fires, messages, events, max_depth=max_depth)
    return Wiring(engine, store, fires, messages, events, source)


# ============================================================================== triggers_of
def test_given_a_tracked_track_event_when_read_then_one_event_trigger_names_it_and_its_message_id() -> None:
    found = triggers_of("event.tracked", event_detail(tracked("Order Completed", "m-42")))
    assert found == [Trigger("event", "Order Completed", "m-42")]


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_given_a_named_page_or_screen_call_when_read_then_its_name_is_the_trigger(kind: str) -> None:
    found = triggers_of("event.tracked", event_detail(tracked("Pricing", "m-7", kind=kind)))
    assert found == [Trigger("event", "Pricing", "m-7")]


def test_given_calls_without_a_name_when_read_then_there_is_no_trigger() -> None:
    unnamed_page = {"type": "page", "messageId": "m1", "timestamp": iso(NOW)}
    identify = {"type": "identify", "messageId": "m2", "traits": {"plan": "pro"}}
    # A track call's `name` is not its event name: only `event` is.
    track_with_name_only = {"type": "track", "name": "Signed Up", "messageId": "m3"}
    for event in (unnamed_page, identify, track_with_name_only):
        assert triggers_of("event.tracked", {"profileId": "p1", "event": event}) == []
    assert triggers_of("event.tracked", {"profileId": "p1"}) == []


def test_given_a_profile_update_when_read_then_each_changed_trait_computed_trait_and_tag_is_a_trigger() -> None:
    changes = {
        "traits": {"plan": "pro", "email": "a@example.com"},
        "computed": {"lifecycle_stage": "silent", "value_tier": "high"},
        "tags_added": ["beta", "vip"],
        "tags_removed": ["trial"],
        "consent": {"email:marketing": True},
        "identities_added": ["email:a@example.com"],
    }
    found = triggers_of("profile.updated", updated_detail(changes, version=12))
    assert found == [
        Trigger("trait_changed", "email", "v12"),
        Trigger("trait_changed", "plan", "v12"),
        Trigger("computed_changed", "lifecycle_stage", "v12"),
        Trigger("computed_changed", "value_tier", "v12"),
        Trigger("tag_added", "beta", "v12"),
        Trigger("tag_added", "vip", "v12"),
        Trigger("tag_removed", "trial", "v12"),
    ]


def test_given_a_profile_update_with_no_relevant_changes_when_read_then_there_is_no_trigger() -> None:
    assert triggers_of("profile.updated", updated_detail({})) == []
    assert triggers_of("profile.updated", updated_detail({"consent": {"email:marketing": False}})) == []


@pytest.mark.parametrize(
    ("detail_type", "kind"), [("segment.entered", "segment_entered"), ("segment.exited", "segment_exited")]
)
def test_given_a_segment_change_when_read_then_the_segment_and_its_occurrence_are_the_trigger(
    detail_type: str, kind: str
) -> None:
    with_occurrence = {"profileId": "p1", "segmentId": "big-spenders", "occurrence": "occ-1", "at": "2026-11-22"}
    assert triggers_of(detail_type, with_occurrence) == [Trigger(kind, "big-spenders", "occ-1")]
    only_at = {"profileId": "p1", "segmentId": "big-spenders", "at": "2026-11-22T12:00:00.000Z"}
    assert triggers_of(detail_type, only_at) == [Trigger(kind, "big-spenders", "2026-11-22T12:00:00.000Z")]


def test_given_another_domain_event_when_read_then_there_is_no_trigger() -> None:
    assert triggers_of("identity.merged", {"profileId": "p1"}) == []


# ============================================================================== RuleSet
def test_given_rules_when_indexed_then_they_run_by_priority_descending_then_id_and_disabled_ones_are_left_out() -> None:
    rules = [
        rule("b-low", priority=-5),
        rule("z-high", priority=10),
        rule("a-mid", priority=0),
        rule("a-high", priority=10),
        rule("off", priority=100, enabled=False),
    ]
    ruleset = RuleSet(compile_rule(r) for r in rules)
    assert [r.id for r in ruleset.rules] == ["a-high", "z-high", "a-mid", "b-low"]
    assert len(ruleset) == 4
    matched = ruleset.matching(Trigger("event", "Signed Up", "m1"))
    assert [r.id for r in matched] == ["a-high", "z-high", "a-mid", "b-low"]


def test_given_a_wildcard_rule_when_any_event_arrives_then_it_joins_the_named_rules_in_priority_order() -> None:
    rules = [
        rule("named", priority=1),
        rule("any-high", priority=5, trigger={"type": "event", "event": "*"}),
        rule("any-low", priority=-1, trigger={"type": "event", "event": "*"}),
        rule("other", trigger={"type": "event", "event": "Order Completed"}),
    ]
    ruleset = RuleSet(compile_rule(r) for r in rules)
    assert [r.id for r in ruleset.matching(Trigger("event", "Signed Up", "m1"))] == ["any-high", "named", "any-low"]
    assert [r.id for r in ruleset.matching(Trigger("event", "Page Viewed", "m2"))] == ["any-high", "any-low"]


def test_given_a_wildcard_event_rule_when_a_trait_changes_then_it_is_not_set_off() -> None:
    rules = [
        rule("any", trigger={"type": "event", "event": "*"}),
        rule("plan", trigger={"type": "trait_changed", "trait": "plan"}),
    ]
    ruleset = RuleSet(compile_rule(r) for r in rules)
    assert [r.id for r in ruleset.matching(Trigger("trait_changed", "plan", "v2"))] == ["plan"]
    assert ruleset.matching(Trigger("trait_changed", "city", "v2")) == []
    assert ruleset.matching(Trigger("tag_added", "plan", "v2")) == []


# ============================================================================== compile_rule
def test_given_a_rule_with_bad_conditions_and_window_when_compiled_then_every_issue_is_located_in_the_rule() -> None:
    bad = rule(
        trigger={"type": "event", "event": "Signed Up", "where": {"path": "nowhere.x", "op": "eq", "value": 1}},
        conditions={"path": "traits.plan", "op": "nope", "value": 1},
        valid_from="2026-12-01T00:00:00",
        valid_until="not a date",
    )
    with pytest.raises(ConditionError) as caught:
        compile_rule(bad)
    locations = [issue.location for issue in caught.value.issues]
    assert any(loc.startswith("/trigger/where") for loc in locations)
    assert any(loc.startswith("/conditions") for loc in locations)
    assert "/valid_from" in locations  # no time zone
    assert "/valid_until" in locations  # not a timestamp


def test_given_a_window_that_ends_before_it_starts_when_compiled_then_it_is_refused() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_rule(rule(valid_from="2026-12-01T00:00:00Z", valid_until="2026-11-01T00:00:00Z"))
    assert [i.location for i in caught.value.issues] == ["/valid_until"]


# ============================================================================== judge
def test_given_a_disabled_rule_when_judged_then_it_does_not_match() -> None:
    verdict = judge(compile_rule(rule(enabled=False)), facts())
    assert (verdict.matched, verdict.reason) == (False, "the rule is disabled")


def test_given_a_validity_window_when_judged_then_it_starts_inclusive_and_ends_exclusive() -> None:
    compiled = compile_rule(rule(valid_from="2026-11-22T12:00:00Z", valid_until="2026-11-23T12:00:00Z"))
    before = judge(compiled, facts(now=NOW - timedelta(microseconds=1)))
    assert not before.matched and "valid from" in before.reason
    assert judge(compiled, facts(now=NOW)).matched
    assert judge(compiled, facts(now=NOW + timedelta(days=1, microseconds=-1))).matched
    expired = judge(compiled, facts(now=NOW + timedelta(days=1)))
    assert not expired.matched and "expired" in expired.reason


def test_given_rule_hops_when_judged_then_the_depth_limit_refuses_at_max_depth() -> None:
    compiled = compile_rule(rule())
    assert judge(compiled, facts(), depth=2, max_depth=3).matched
    refused = judge(compiled, facts(), depth=3, max_depth=3)
    assert not refused.matched and "limit is 3" in refused.reason


def test_given_a_client_event_claiming_a_depth_when_read_then_only_the_platforms_own_events_carry_one() -> None:
    forged = tracked("Signed Up", context={"midstage": {"depth": 99}})
    assert internal_events.depth_of(forged) == 0
    platform = dict(forged, sourceId=internal_events.SOURCE_ID)
    assert internal_events.depth_of(platform) == 99
    for weird in (True, "3", None, 2.0):
        assert internal_events.depth_of(dict(platform, context={"midstage": {"depth": weird}})) == 0
    assert internal_events.depth_of(dict(platform, context="nope")) == 0
    assert internal_events.depth_of(None) == 0


def test_given_a_client_event_with_a_forged_depth_when_handled_then_the_rule_still_fires() -> None:
    wiring = wire([rule()])
    forged = tracked("Signed Up", context={"midstage": {"depth": 99}})
    summary = wiring.engine.handle("event.tracked", event_detail(forged), NOW)
    assert summary.fired == ["r1"]


def test_given_a_platform_event_at_the_depth_limit_when_handled_then_no_rule_reacts() -> None:
    wiring = wire([rule()], max_depth=3)
    deep = tracked("Signed Up", sourceId="midstage", context={"midstage": {"depth": 3}})
    summary = wiring.engine.handle("event.tracked", event_detail(deep), NOW)
    assert (summary.considered, summary.matched, summary.fired) == (1, 0, [])
    shallower = dict(deep, context={"midstage": {"depth": 2}}, messageId="m2")
    assert wiring.engine.handle("event.tracked", event_detail(shallower), NOW).fired == ["r1"]


def test_given_where_and_conditions_when_judged_then_the_event_and_the_person_must_both_match() -> None:
    compiled = compile_rule(
        rule(
            trigger={
                "type": "event",
                "event": "Order Completed",
                "where": {"path": "event.properties.total", "op": "gte", "value": 100},
            },
            conditions={"path": "traits.plan", "op": "eq", "value": "pro"},
        )
    )
    pro, free = person(traits={"plan": "pro"}), person(traits={"plan": "free"})
    big, small = (
        tracked("Order Completed", properties={"total": 150}),
        tracked("Order Completed", properties={"total": 20}),
    )
    assert judge(compiled, facts(pro, big)).matched
    small_verdict = judge(compiled, facts(pro, small))
    assert not small_verdict.matched and "where" in small_verdict.reason
    free_verdict = judge(compiled, facts(free, big))
    assert not free_verdict.matched and "conditions" in free_verdict.reason


# ============================================================================== holdout
def test_given_a_holdout_when_asked_twice_then_a_person_is_always_in_or_always_out() -> None:
    for n in range(200):
        first = in_holdout("winback", f"p{n}", 30)
        assert all(in_holdout("winback", f"p{n}", 30) == first for _ in range(3))
    assert not any(in_holdout("winback", f"p{n}", 0) for n in range(1000))
    assert all(in_holdout("winback", f"p{n}", 100) for n in range(1000))


@pytest.mark.parametrize("percent", [1, 10, 25, 50])
def test_given_a_holdout_percent_when_10000_people_are_bucketed_then_about_that_share_is_held_out(
    percent: float,
) -> None:
    people = 10_000
    held = sum(in_holdout("promo", f"profile-{n:05d}", percent) for n in range(people))
    p = percent / 100
    sd = math.sqrt(people * p * (1 - p))  # binomial standard deviation
    assert abs(held - people * p) <= 5 * sd, (held, people * p, sd)


def test_given_two_rules_when_bucketing_then_their_control_groups_are_independent() -> None:
    a = {n for n in range(10_000) if in_holdout("rule-a", f"p{n}", 50)}
    b = {n for n in range(10_000) if in_holdout("rule-b", f"p{n}", 50)}
    # Independent halves overlap on about a quarter: 2,500 with sd sqrt(10,000 * 3/16) ~ 43.
    assert abs(len(a & b) - 2_500) <= 5 * 44


def test_given_a_held_out_person_when_judged_then_it_matches_but_is_marked_held_out() -> None:
    compiled = compile_rule(rule("ctl", holdout_percent=100))
    verdict = judge(compiled, facts())
    assert (verdict.matched, verdict.held_out, verdict.reason) == (True, True, "held out (control group)")


# ============================================================================== refire_allows
def fired(occurrence: str = "event:Signed Up:m1", at: datetime = NOW - timedelta(days=3)) -> FireRecord:
    return FireRecord(iso(at), occurrence, 1)


def test_given_no_record_when_asked_then_every_mode_allows() -> None:
    for refire in ({"mode": "once"}, {"mode": "cooldown", "days": 7}, {"mode": "every"}):
        assert refire_allows(rule(refire=refire), None, "event:Signed Up:m1", NOW) == (True, "allowed")


def test_given_mode_once_when_a_second_trigger_comes_then_it_is_refused_but_a_redelivery_is_allowed() -> None:
    once = rule(refire={"mode": "once"})
    allowed, reason = refire_allows(once, fired(), "event:Signed Up:m2", NOW)
    assert not allowed and "refire: once" in reason
    assert refire_allows(once, fired(), "event:Signed Up:m1", NOW) == (True, "allowed")


def test_given_a_cooldown_when_asked_then_it_refuses_until_days_have_passed_since_the_last_firing() -> None:
    cooldown = rule(refire={"mode": "cooldown", "days": 7})
    last = NOW - timedelta(days=3)
    allowed, reason = refire_allows(cooldown, fired(at=last), "event:Signed Up:m2", NOW)
    assert not allowed and iso(last + timedelta(days=7)) in reason
    just_before = last + timedelta(days=7, microseconds=-1000)
    assert not refire_allows(cooldown, fired(at=last), "event:Signed Up:m2", just_before)[0]
    assert refire_allows(cooldown, fired(at=last), "event:Signed Up:m2", last + timedelta(days=7))[0]
    # The same occurrence redelivered inside the cooldown finishes what it started.
    assert refire_allows(cooldown, fired(at=last), "event:Signed Up:m1", NOW)[0]


def test_given_mode_every_when_asked_then_any_trigger_is_allowed() -> None:
    every = rule(refire={"mode": "every"})
    assert refire_allows(every, fired(at=NOW), "event:Signed Up:m2", NOW) == (True, "allowed")


# ============================================================================== plan_actions
ALL_ACTIONS = [
    {"type": "send", "channels": ["email", "sms"], "template": {"email": "e1", "sms": "s1"}, "vars": {"x": 1}},
    {"type": "webhook", "url": "https://hooks.example.com/in", "include": ["event", "tags"]},
    {"type": "add_tag", "tag": "vip"},
    {"type": "remove_tag", "tag": "trial"},
    {"type": "set_trait", "trait": "segment", "value": "gold"},
    {"type": "emit_event", "event": "VIP Promoted", "properties": {"level": 2}},
]


def test_given_the_same_inputs_when_planned_twice_then_keys_and_message_ids_are_identical() -> None:
    subject = rule(refire={"mode": "every"}, actions=ALL_ACTIONS)
    event, trigger = tracked("Signed Up", "m1"), Trigger("event", "Signed Up", "m1")
    first = plan_actions(subject, person(), event, trigger, NOW)
    again = plan_actions(subject, person(), event, trigger, NOW + timedelta(minutes=5))  # a redelivery, later
    assert [m.key for m in first.messages] == [m.key for m in again.messages]
    assert [m.message_id for m in first.messages] == [m.message_id for m in again.messages]
    assert [e["messageId"] for e in first.events] == [e["messageId"] for e in again.events]
    assert first.messages[0].message_id == message_id_for(first.messages[0].key)
    ids = [m.message_id for m in first.messages] + [e["messageId"] for e in first.events]
    assert len(set(ids)) == len(ids) == 6  # one per action


def test_given_another_trigger_occurrence_when_planned_then_ids_differ_unless_the_rule_fires_once() -> None:
    event = tracked("Signed Up", "m1")
    one, two = Trigger("event", "Signed Up", "m1"), Trigger("event", "Signed Up", "m2")
    for mode in ({"mode": "every"}, {"mode": "cooldown", "days": 1}):
        subject = rule(refire=mode, actions=ALL_ACTIONS)
        a, b = plan_actions(subject, person(), event, one, NOW), plan_actions(subject, person(), event, two, NOW)
        assert not {m.message_id for m in a.messages} & {m.message_id for m in b.messages}
        assert not {e["messageId"] for e in a.events} & {e["messageId"] for e in b.events}
    once = rule(refire={"mode": "once"}, actions=ALL_ACTIONS)
    a, b = plan_actions(once, person(), event, one, NOW), plan_actions(once, person(), event, two, NOW)
    assert [m.message_id for m in a.messages] == [m.message_id for m in b.messages]
    assert [e["messageId"] for e in a.events] == [e["messageId"] for e in b.events]


def test_given_two_people_or_two_rules_when_planned_then_ids_differ() -> None:
    trigger, event = Trigger("event", "Signed Up", "m1"), tracked("Signed Up")
    base = plan_actions(rule("r1"), person("p1"), event, trigger, NOW).messages[0].message_id
    assert plan_actions(rule("r1"), person("p2"), event, trigger, NOW).messages[0].message_id != base
    assert plan_actions(rule("r2"), person("p1"), event, trigger, NOW).messages[0].message_id != base


def test_given_send_and_webhook_actions_when_planned_then_requests_carry_origin_channels_and_the_event() -> None:
    subject = rule("welcome", version=4, refire={"mode": "every"}, actions=ALL_ACTIONS[:2])
    event = tracked("Signed Up", "m1")
    send, hook = plan_actions(subject, person(), event, Trigger("event", "Signed Up", "m1"), NOW).messages
    assert send.origin.model_dump() == {"kind": "rule", "id": "welcome", "version": 4, "step": "action-0"}
    assert (send.channels, send.category, send.template, send.vars) == (
        ["email", "sms"],
        "marketing",
        {"email": "e1", "sms": "s1"},
        {"x": 1},
    )
    assert send.event == event and send.requested_at == iso(NOW) and send.profile_id == "p1"
    assert (hook.channels, hook.category, hook.webhook_url, hook.webhook_include) == (
        ["webhook"],
        "transactional",
        "https://hooks.example.com/in",
        ["event", "tags"],
    )
    assert hook.origin.step == "action-1"


def test_given_internal_actions_when_planned_then_events_carry_depth_plus_one_and_the_platform_source() -> None:
    subject = rule("promote", refire={"mode": "every"}, actions=ALL_ACTIONS[2:])
    cause = tracked("Signed Up", sourceId="midstage", context={"midstage": {"depth": 1}})
    events = plan_actions(subject, person(), cause, Trigger("event", "Signed Up", "m1"), NOW).events
    assert [e["type"] for e in events] == ["track", "track", "identify", "track"]
    for internal in events:
        assert internal["sourceId"] == "midstage"
        assert internal["context"] == {"midstage": {"depth": 2}}
        assert internal_events.depth_of(internal) == 2
        assert internal["userId"] == "user-p1" and internal["timestamp"] == iso(NOW)
        assert internal["messageId"].startswith("ms-int-")
    added, removed, identify, emitted = events
    assert (added["event"], added["properties"]) == ("Tag Added", {"tag": "vip", "rule": "promote"})
    assert (removed["event"], removed["properties"]) == ("Tag Removed", {"tag": "trial", "rule": "promote"})
    assert identify["traits"] == {"segment": "gold"}
    assert (emitted["event"], emitted["properties"]) == ("VIP Promoted", {"level": 2, "rule": "promote"})


def test_given_a_client_event_or_a_profile_change_when_planned_then_internal_events_start_at_depth_one() -> None:
    subject = rule(refire={"mode": "every"}, actions=[{"type": "add_tag", "tag": "vip"}])
    forged = tracked("Signed Up", context={"midstage": {"depth": 7}})
    from_event = plan_actions(subject, person(), forged, Trigger("event", "Signed Up", "m1"), NOW).events
    from_change = plan_actions(subject, person(), None, Trigger("trait_changed", "plan", "v3"), NOW).events
    assert internal_events.depth_of(from_event[0]) == 1
    assert internal_events.depth_of(from_change[0]) == 1


def test_given_internal_events_when_applied_then_the_profile_gets_the_tags_and_trait() -> None:
    subject = rule(refire={"mode": "every"}, actions=ALL_ACTIONS[2:5])
    target = person(tags=["trial"], tag_stamps={"trial": ["2026-01-01T00:00:00.000Z|x|src", True]})
    for internal in plan_actions(subject, target, None, Trigger("trait_changed", "plan", "v3"), NOW).events:
        profile_logic.apply_event(target, internal)
    assert target.tags == ["vip"]
    assert target.traits["segment"] == "gold"


def test_given_an_anonymous_person_when_planned_then_internal_events_address_the_anonymous_id() -> None:
    anonymous = person(identities={"anonymous_id": ["anon-9"]})
    subject = rule(actions=[{"type": "add_tag", "tag": "vip"}])
    (internal,) = plan_actions(subject, anonymous, None, Trigger("trait_changed", "plan", "v3"), NOW).events
    assert (internal["userId"], internal["anonymousId"]) == (None, "anon-9")
    assert internal_events.person_key(internal) == "a:anon-9"


# ============================================================================== RuleEngine.handle
def test_given_a_redelivered_domain_event_when_handled_twice_then_the_rule_fires_with_the_same_message_ids() -> None:
    wiring = wire([rule(actions=ALL_ACTIONS[:1] + ALL_ACTIONS[2:3])])
    detail = event_detail(tracked("Signed Up", "m1"))
    first = wiring.engine.handle("event.tracked", detail, NOW)
    second = wiring.engine.handle("event.tracked", detail, NOW + timedelta(minutes=3))
    assert first.fired == second.fired == ["r1"]
    one, two = wiring.messages.batches
    assert [m.message_id for m in one] == [m.message_id for m in two]
    assert wiring.events.groups[0]["u:user-p1"][0]["messageId"] == wiring.events.groups[1]["u:user-p1"][0]["messageId"]
    assert wiring.fires.get("p1", "r1") == FireRecord(iso(NOW + timedelta(minutes=3)), "event:Signed Up:m1", 2)


def test_given_refire_once_when_a_second_trigger_comes_then_it_is_refused_with_the_reason() -> None:
    wiring = wire([rule()])
    wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m1")), NOW)
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m2")), NOW)
    assert summary.fired == [] and "refire: once" in summary.refused["r1"]
    assert len(wiring.messages.all) == 1


def test_given_a_once_rule_fired_for_a_visitor_when_they_merge_into_a_customer_then_it_does_not_fire_again() -> None:
    # Given a once rule fired for an anonymous profile, which then merged into the customer's
    customer = person("p1")
    customer.merged_from = ["anon-1"]
    wiring = wire([rule()], customer)
    wiring.fires.records[("anon-1", "r1")] = FireRecord(iso(NOW - timedelta(days=1)), "event:Signed Up:m0", 1)
    # When the customer triggers it
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m1")), NOW)
    # Then it is refused as already fired for this person, and nothing is sent
    assert summary.fired == [] and "refire: once" in summary.refused["r1"]
    assert wiring.messages.batches == []


def test_given_a_cooldown_rule_that_fired_for_a_merged_profile_then_the_cooldown_counts_from_that_firing() -> None:
    customer = person("p1")
    customer.merged_from = ["anon-1", "anon-2"]
    wiring = wire([rule(refire={"mode": "cooldown", "days": 7})], customer)
    wiring.fires.records[("p1", "r1")] = FireRecord(iso(NOW - timedelta(days=30)), "event:Signed Up:m0", 1)
    wiring.fires.records[("anon-2", "r1")] = FireRecord(iso(NOW - timedelta(days=2)), "event:Signed Up:mx", 1)
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m1")), NOW)
    assert summary.fired == [] and "may fire again from" in summary.refused["r1"]
    later = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m2")), NOW + timedelta(days=6))
    assert later.fired == ["r1"]
    # The person's own record is the one written; the merged-away profile's is left as it was
    assert wiring.fires.get("p1", "r1") == FireRecord(iso(NOW + timedelta(days=6)), "event:Signed Up:m2", 2)


def test_given_another_evaluator_records_first_when_handled_then_the_concurrent_fire_is_refused() -> None:
    wiring = wire([rule()])
    wiring.fires.lose_next_race = True
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m1")), NOW)
    assert summary.refused == {"r1": "fired concurrently for this person"}
    assert summary.fired == [] and wiring.messages.batches == []


def test_given_refire_every_when_handled_then_no_fire_record_is_needed() -> None:
    wiring = wire([rule(refire={"mode": "every"})])
    wiring.fires.lose_next_race = True  # would refuse, were it asked
    for n in range(3):
        assert wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", f"m{n}")), NOW).fired == ["r1"]
    assert len({m.message_id for m in wiring.messages.all}) == 3
    assert wiring.fires.records == {}


def test_given_a_held_out_person_when_handled_then_no_actions_are_taken_but_the_firing_is_recorded() -> None:
    wiring = wire([rule("ctl", holdout_percent=100, actions=ALL_ACTIONS)])
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up")), NOW)
    assert (summary.matched, summary.fired, summary.held_out) == (1, [], ["ctl"])
    assert wiring.messages.batches == [] and wiring.events.groups == []
    assert (summary.messages, summary.events) == (0, 0)
    # Held out once is held out for good: a second trigger is refused like any repeat.
    assert (
        "refire: once"
        in wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m2")), NOW).refused["ctl"]
    )


def test_given_a_stored_rule_that_no_longer_compiles_when_handled_then_it_is_skipped_and_others_still_run() -> None:
    good = rule("good")
    broken = Rule.model_construct(
        **{**rule("broken").__dict__, "conditions": {"path": "traits.plan", "op": "no_such_op", "value": 1}}
    )
    also_broken = rule("bad-window", valid_from="yesterday-ish")
    wiring = wire([broken, good, also_broken])
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up")), NOW)
    assert summary.fired == ["good"]
    assert summary.considered == 1
    assert len(wiring.engine.ruleset()) == 1


def test_given_a_new_rule_version_when_handled_then_the_ruleset_is_recompiled() -> None:
    wiring = wire([rule("r1", enabled=False)])
    assert wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m1")), NOW).fired == []
    wiring.source.list = [rule("r1", version=2)]
    assert wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m2")), NOW).fired == ["r1"]


def test_given_an_unknown_person_or_no_matching_rule_when_handled_then_nothing_happens() -> None:
    wiring = wire([rule()])
    assert wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up"), "ghost"), NOW).considered == 0
    assert wiring.engine.handle("event.tracked", event_detail(tracked("Logged In")), NOW).considered == 0
    assert wiring.messages.batches == [] and wiring.events.groups == []


def test_given_several_matching_rules_when_handled_then_effects_go_out_in_priority_order_in_one_batch() -> None:
    rules = [
        rule("low", priority=-1, refire={"mode": "every"}),
        rule("high", priority=9, refire={"mode": "every"}),
        rule("any", priority=5, refire={"mode": "every"}, trigger={"type": "event", "event": "*"}),
    ]
    wiring = wire(rules)
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up")), NOW)
    assert summary.fired == ["high", "any", "low"]
    (batch,) = wiring.messages.batches
    assert [m.origin.id for m in batch] == ["high", "any", "low"]
    assert summary.messages == 3


def test_given_internal_events_for_a_person_when_handled_then_they_are_grouped_under_that_person() -> None:
    rules = [
        rule("a", refire={"mode": "every"}, actions=[{"type": "add_tag", "tag": "x"}]),
        rule("b", refire={"mode": "every"}, actions=[{"type": "set_trait", "trait": "y", "value": 1}]),
    ]
    wiring = wire(rules)
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up")), NOW)
    assert summary.events == 2
    ((key, events),) = wiring.events.groups[0].items()
    assert key == "u:user-p1" and [e["type"] for e in events] == ["track", "identify"]


@dataclass
class Chain:
    firings: int = 0
    updates: list[dict[str, Any]] = field(default_factory=list)  # the profile.updated details published
    refusals: list[str] = field(default_factory=list)  # why the last domain event set nothing off


def run_chain(wiring: Wiring, target: Profile, detail_type: str, detail: dict[str, Any], hops: int) -> Chain:
    """Feed each firing's internal events back the way the platform does (ingest -> updater ->
    domain events -> evaluator) and count the rule firings until the chain stops. The updater's
    part follows logic/ingest.py: one event.tracked per applied event, and one profile.updated
    carrying the deepest applied event's depth when it is above 0."""
    chain, now, pending = Chain(), NOW, [(detail_type, detail)]
    while pending and chain.firings < hops:
        detail_type, detail = pending.pop(0)
        before = Profile.from_doc(target.to_doc())
        sent = len(wiring.events.all)
        summary = wiring.engine.handle(detail_type, detail, now)
        chain.firings += len(summary.fired)
        applied = wiring.events.all[sent:]
        for internal in applied:
            profile_logic.apply_event(target, internal)
            pending.append(("event.tracked", event_detail(profile_logic.slim_event(internal), target.id)))
        difference = profile_logic.changes(before, target)
        if difference:
            target.version += 1
            update = updated_detail(difference, target.version, target.id)
            depth = max((internal_events.depth_of(e) for e in applied), default=0)
            if depth:
                update["depth"] = depth
            chain.updates.append(update)
            pending.append(("profile.updated", update))
        now += timedelta(seconds=1)
    return chain


def why_not(wiring: Wiring, target: Profile, detail_type: str, detail: Mapping[str, Any]) -> list[str]:
    """The reasons each rule a domain event triggers gives for not matching (judged at the
    depth handle() reads: the event's own, else the detail's)."""
    event = detail.get("event") if detail_type == "event.tracked" else None
    depth = internal_events.depth_of(event) if event else int(detail.get("depth", 0))
    return [
        judge(compiled, facts(target, event), depth=depth, max_depth=wiring.engine.max_depth).reason
        for trigger in triggers_of(detail_type, detail)
        for compiled in wiring.engine.ruleset().matching(trigger)
    ]


def test_given_rules_that_emit_the_events_they_react_to_when_chained_then_the_depth_limit_stops_them() -> None:
    loop = rule(
        "echo",
        refire={"mode": "every"},
        trigger={"type": "event", "event": "Ping"},
        actions=[{"type": "emit_event", "event": "Ping"}],
    )
    target = person()
    wiring = wire([loop], target, max_depth=3)
    chain = run_chain(wiring, target, "event.tracked", event_detail(tracked("Ping")), hops=50)
    assert chain.firings == 3  # depth 0, 1 and 2 react; the event at depth 3 does not


def test_given_two_rules_toggling_a_tag_when_chained_then_the_depth_limit_stops_them() -> None:
    add = rule(
        "add",
        refire={"mode": "every"},
        trigger={"type": "tag_removed", "tag": "vip"},
        actions=[{"type": "add_tag", "tag": "vip"}],
    )
    remove = rule(
        "remove",
        refire={"mode": "every"},
        trigger={"type": "tag_added", "tag": "vip"},
        actions=[{"type": "remove_tag", "tag": "vip"}],
    )
    target = person(tags=["vip"], tag_stamps={"vip": ["2026-01-01T00:00:00.000Z|m0|src_shop", True]})
    wiring = wire([add, remove], target, max_depth=3)
    chain = run_chain(wiring, target, "profile.updated", updated_detail({"tags_added": ["vip"]}, 1), hops=50)
    # remove (depth 0), add (depth 1), remove (depth 2); the change at depth 3 sets nothing off.
    assert chain.firings == 3
    assert [(u["changes"], u.get("depth")) for u in chain.updates] == [
        ({"tags_removed": ["vip"]}, 1),
        ({"tags_added": ["vip"]}, 2),
        ({"tags_removed": ["vip"]}, 3),
    ]
    assert target.tags == []
    last = chain.updates[-1]
    assert why_not(wiring, target, "profile.updated", last) == ["set off by rules 3 times in a row (the limit is 3)"]
    assert wiring.engine.handle("profile.updated", last, NOW + timedelta(hours=1)).fired == []


# ============================================================================== the seeds' examples as rules
def order(profile: Profile, days_ago: int, revenue: float, n: int) -> None:
    at = iso(NOW - timedelta(days=days_ago))
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"o{n}",
        "timestamp": at,
        "sourceId": "src_shop",
        "properties": {"revenue": revenue},
    }
    profile_logic.apply_event(profile, event)


def customer(profile_id: str, *, revenue: float, last_order_days_ago: int, last_seen_days_ago: int) -> Profile:
    target = person(profile_id, traits={"email": f"{profile_id}@example.com"})
    order(target, 200, revenue / 2, 1)
    order(target, last_order_days_ago, revenue / 2, 2)
    target.last_seen = iso(NOW - timedelta(days=last_seen_days_ago))
    target.computed = profile_logic.compute(target, NOW, ComputedTraitSettings())
    return target


VIP_WINBACK = rule(
    "vip-winback",
    name="High-value customer inactive for 30 days: VIP coupon",
    trigger={"type": "computed_changed", "trait": "lifecycle_stage"},
    conditions={
        "all": [
            {"path": "computed.lifecycle_stage", "op": "eq", "value": "silent"},
            {"path": "computed.value_tier", "op": "in", "value": ["high", "vip"]},
            {"not": {"path": "profile.last_order_at", "op": "within_last", "value": "30d"}},
        ]
    },
    actions=[{"type": "send", "channels": ["email"], "template": "vip-coupon", "vars": {"coupon": "VIP20"}}],
    refire={"mode": "cooldown", "days": 90},
)
CHURN_SURVEY = rule(
    "churn-survey",
    name="Churn risk: ask why",
    trigger={"type": "tag_added", "tag": "churn-risk"},
    actions=[{"type": "send", "channels": ["email"], "template": "churn-survey"}],
    refire={"mode": "cooldown", "days": 60},
)
WELCOME = rule(
    "welcome",
    name="Sign-up: welcome email and SMS",
    trigger={"type": "event", "event": "Signed Up"},
    actions=[
        {"type": "send", "channels": ["email"], "template": "welcome-email", "category": "transactional"},
        {"type": "send", "channels": ["sms"], "template": "welcome-sms", "category": "transactional"},
    ],
)
SATISFACTION = rule(
    "order-survey",
    name="Order Completed: satisfaction survey",
    trigger={"type": "event", "event": "Order Completed"},
    actions=[{"type": "send", "channels": ["email"], "template": "satisfaction-survey"}],
    refire={"mode": "every"},
)
SEEDS = [VIP_WINBACK, CHURN_SURVEY, WELCOME, SATISFACTION]


def lifecycle_changed(target: Profile, version: int = 3) -> dict[str, Any]:
    return updated_detail({"computed": {"lifecycle_stage": target.computed["lifecycle_stage"]}}, version, target.id)


def test_given_a_high_value_customer_idle_30_days_when_their_stage_changes_then_a_vip_coupon_email_goes_out() -> None:
    vip = customer("vip", revenue=6000, last_order_days_ago=45, last_seen_days_ago=35)
    assert (vip.computed["value_tier"], vip.computed["lifecycle_stage"]) == ("vip", "silent")
    wiring = wire(SEEDS, vip)
    summary = wiring.engine.handle("profile.updated", lifecycle_changed(vip), NOW)
    assert summary.fired == ["vip-winback"]
    (sent,) = wiring.messages.all
    assert (sent.template, sent.channels, sent.vars, sent.profile_id) == (
        "vip-coupon",
        ["email"],
        {"coupon": "VIP20"},
        "vip",
    )


@pytest.mark.parametrize(
    ("revenue", "last_order_days_ago", "last_seen_days_ago", "why"),
    [
        (300, 45, 35, "a medium-value customer"),
        (2000, 10, 35, "ordered within 30 days"),
        (2000, 45, 2, "active again, not silent"),
    ],
)
def test_given_someone_outside_the_vip_winback_audience_when_their_stage_changes_then_no_coupon(
    revenue: float, last_order_days_ago: int, last_seen_days_ago: int, why: str
) -> None:
    target = customer(
        "c1", revenue=revenue, last_order_days_ago=last_order_days_ago, last_seen_days_ago=last_seen_days_ago
    )
    wiring = wire(SEEDS, target)
    summary = wiring.engine.handle("profile.updated", lifecycle_changed(target), NOW)
    assert summary.fired == [], why
    assert wiring.messages.batches == []


def test_given_a_high_tier_customer_when_the_winback_fired_then_it_waits_out_its_cooldown() -> None:
    high = customer("high", revenue=2000, last_order_days_ago=45, last_seen_days_ago=35)
    wiring = wire(SEEDS, high)
    assert wiring.engine.handle("profile.updated", lifecycle_changed(high, 3), NOW).fired == ["vip-winback"]
    later = wiring.engine.handle("profile.updated", lifecycle_changed(high, 9), NOW + timedelta(days=30))
    assert later.fired == [] and "may fire again" in later.refused["vip-winback"]


def test_given_a_churn_risk_tag_when_added_then_a_survey_is_sent_once_per_cooldown() -> None:
    wiring = wire(SEEDS)
    summary = wiring.engine.handle("profile.updated", updated_detail({"tags_added": ["churn-risk"]}, 4), NOW)
    assert summary.fired == ["churn-survey"]
    assert [m.template for m in wiring.messages.all] == ["churn-survey"]
    again = wiring.engine.handle("profile.updated", updated_detail({"tags_added": ["churn-risk"]}, 8), NOW)
    assert again.fired == [] and "churn-survey" in again.refused
    assert wiring.engine.handle("profile.updated", updated_detail({"tags_removed": ["churn-risk"]}, 5), NOW).fired == []


def test_given_a_sign_up_when_tracked_then_a_welcome_email_and_sms_go_out_once() -> None:
    wiring = wire(SEEDS)
    summary = wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m1")), NOW)
    assert summary.fired == ["welcome"]
    email, sms = wiring.messages.all
    assert (email.channels, email.template, sms.channels, sms.template) == (
        ["email"],
        "welcome-email",
        ["sms"],
        "welcome-sms",
    )
    assert email.message_id != sms.message_id
    # Signing up twice (a second sign-up event) welcomes once.
    assert wiring.engine.handle("event.tracked", event_detail(tracked("Signed Up", "m2")), NOW).fired == []


def test_given_each_completed_order_when_tracked_then_each_gets_its_own_survey_and_a_redelivery_none_more() -> None:
    wiring = wire(SEEDS)
    for message_id in ("o1", "o2", "o1"):
        detail = event_detail(tracked("Order Completed", message_id, properties={"revenue": 50}))
        assert wiring.engine.handle("event.tracked", detail, NOW).fired == ["order-survey"]
    ids = [m.message_id for m in wiring.messages.all]
    assert ids[0] != ids[1] and ids[2] == ids[0]  # the redelivered order maps to the same message
    assert {m.template for m in wiring.messages.all} == {"satisfaction-survey"}


# ============================================================================== dry_run
def test_given_a_matching_event_when_dry_run_then_it_would_fire_and_lists_the_planned_actions() -> None:
    compiled = compile_rule(
        rule(
            refire={"mode": "every"},
            trigger={
                "type": "event",
                "event": "Signed Up",
                "where": {"path": "event.properties.plan", "op": "eq", "value": "pro"},
            },
            conditions={"path": "traits.country", "op": "eq", "value": "FR"},
        )
    )
    result = dry_run(compiled, person(traits={"country": "FR"}), tracked("Signed Up", properties={"plan": "pro"}), NOW)
    assert result["wouldFire"] is True
    assert result["trigger"]["matched"] is True
    assert result["where"]["matched"] is True and result["conditions"]["matched"] is True
    (planned,) = result["actions"]
    live = plan_actions(compiled.rule, person(), tracked("Signed Up"), Trigger("event", "Signed Up", "m1"), NOW)
    assert planned["key"] == live.messages[0].key  # the dry run names the message the live run would send


def test_given_reasons_not_to_fire_when_dry_run_then_each_is_explained() -> None:
    compiled = compile_rule(rule(conditions={"path": "traits.country", "op": "eq", "value": "FR"}))
    other_event = dry_run(compiled, person(traits={"country": "FR"}), tracked("Logged In"), NOW)
    assert (
        other_event["wouldFire"] is False and other_event["trigger"]["reason"] == "the event does not match the trigger"
    )
    wrong_person = dry_run(compiled, person(traits={"country": "DE"}), tracked("Signed Up"), NOW)
    assert wrong_person["wouldFire"] is False and wrong_person["conditions"]["matched"] is False
    already = dry_run(compiled, person(traits={"country": "FR"}), tracked("Signed Up", "m9"), NOW, record=fired())
    assert already["wouldFire"] is False and already["refire"]["allowed"] is False
    assert "actions" not in already


def test_given_a_send_action_naming_an_experiment_when_planned_then_its_message_names_it_for_the_deliverer() -> None:
    send = {"type": "send", "channels": ["email"], "template": "e1", "experiment": "welcome-subjects"}
    subject = rule(refire={"mode": "every"}, actions=[send, ALL_ACTIONS[0]])
    planned = plan_actions(subject, person(), tracked("Signed Up", "m1"), Trigger("event", "Signed Up", "m1"), NOW)
    assert [m.experiment for m in planned.messages] == ["welcome-subjects", None]
