"""Journeys: the definition model, validation with located issues, entry decisions, re-entry,
the stepper through every step type, time zones and DST, and whole walks through two journeys.

A hypothesis property walks random valid graphs and checks that a wake handled twice yields the
same result, that the input instance is never changed, and that every effect id is unique.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from midstage.logic import internal_events
from midstage.logic.conditions import ConditionError, Issue
from midstage.logic.experiments.assignment import Split, assign
from midstage.logic.experiments.lifecycle import start as experiment_start
from midstage.logic.experiments.messages import Dealt, dealt_arm
from midstage.logic.journeys import (
    MAX_PATH,
    CompiledJourney,
    Instance,
    Progress,
    Wake,
    adopted,
    advance,
    compile_journey,
    date_entry_key,
    duration_of,
    entry_key_for,
    may_enter,
    next_local_time,
    start_instance,
    validate_journey,
)
from midstage.logic.timefmt import iso, parse_iso
from midstage.models.experiments import Experiment
from midstage.models.journeys import MAX_DEFINITION_CHARS, Journey, JourneyBody
from midstage.models.messaging import MESSAGE_EVENTS, MessageRequest, Origin, message_id_for
from midstage.models.profile import Profile
from midstage.services import feedback
from tests.support.fakes import person

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


# ------------------------------------------------------------------------------ builders
def send(template: str, next_step: str, **fields: Any) -> dict[str, Any]:
    return {"type": "send", "channels": ["email"], "template": template, "next": next_step, **fields}


def wait(duration: str, next_step: str) -> dict[str, Any]:
    return {"type": "wait", "duration": duration, "next": next_step}


def wait_for(event: str, timeout: str, on_event: str, on_timeout: str, where: Any = None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "type": "wait",
        "until_event": {"event": event},
        "timeout": timeout,
        "on_event": on_event,
        "on_timeout": on_timeout,
    }
    if where is not None:
        step["until_event"]["where"] = where
    return step


def check(condition: Any, yes: str, no: str) -> dict[str, Any]:
    return {"type": "condition", "condition": condition, "yes": yes, "no": no}


EXIT: dict[str, Any] = {"type": "exit"}
IS_PRO = {"path": "traits.plan", "op": "eq", "value": "pro"}


def definition(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Welcome",
        "entry": {"type": "event", "event": "Signed Up"},
        "start": "welcome",
        "steps": {"welcome": send("welcome", "done"), "done": EXIT},
    }
    base.update(fields)
    return base


def body(**fields: Any) -> JourneyBody:
    return JourneyBody.model_validate(definition(**fields))


def journey(journey_id: str = "j1", **fields: Any) -> Journey:
    return Journey.model_validate({"id": journey_id, **definition(**fields)})


def compiled(journey_id: str = "j1", **fields: Any) -> CompiledJourney:
    return compile_journey(journey(journey_id, **fields))


def issues_of(**fields: Any) -> list[Issue]:
    return validate_journey(body(**fields))


def locations(issues: list[Issue]) -> list[str]:
    return [issue.location for issue in issues]


def tracked(name: str, message_id: str = "m1", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "timestamp": iso(NOW - timedelta(seconds=5)),
        "userId": "user-p1",
    }
    event.update(fields)
    return event


def entered(flow: CompiledJourney, profile_id: str = "p1", event: Mapping[str, Any] | None = None) -> Instance:
    return start_instance(flow, profile_id, None, "event:m0", event, NOW)


def run(
    flow: CompiledJourney,
    profile: Profile | None = None,
    event: Mapping[str, Any] | None = None,
    now: datetime = NOW,
) -> Progress:
    """Enter a person and run the first wake."""
    who = profile if profile is not None else person()
    return advance(flow, start_instance(flow, who.id, None, "event:m0", event, now), who, Wake.enter(), now)


def fire(progress: Progress) -> Wake:
    """The wake of the one timer a progress scheduled, as the sweep would deliver it."""
    [timer] = progress.timers
    return Wake.timer(timer.timer_id, iso(timer.at))


def outcomes(instance: Instance) -> list[tuple[str, str]]:
    return [(step, outcome) for step, _, outcome in instance.path]


# ============================================================================== model: shapes and bounds
def test_given_a_minimal_definition_when_validated_then_it_has_no_issues_and_compiles() -> None:
    assert issues_of() == []
    flow = compiled()
    assert flow.id == "j1"
    assert flow.version == 1
    assert list(flow.steps) == ["welcome", "done"]


def test_given_more_than_100_steps_when_parsed_then_the_model_refuses_before_parsing_them() -> None:
    steps = {f"s{i}": {"type": "not even a step"} for i in range(101)}
    with pytest.raises(ValidationError, match="at most 100 steps, got 101"):
        body(steps=steps)


def test_given_exactly_100_steps_in_a_chain_when_validated_then_it_is_accepted() -> None:
    steps = {f"s{i}": send("t", f"s{i + 1}") for i in range(99)}
    steps["s99"] = EXIT
    assert issues_of(start="s0", steps=steps) == []


def test_given_a_condition_nested_thousands_of_levels_when_parsed_then_the_model_refuses_it() -> None:
    deep: dict[str, Any] = IS_PRO
    for _ in range(3000):
        deep = {"not": deep}
    with pytest.raises(ValidationError, match="nested deeper than 40 levels"):
        body(steps={"welcome": check(deep, "done", "done"), "done": EXIT})


def test_given_a_condition_deeper_than_the_language_allows_when_validated_then_the_issue_is_located() -> None:
    deep: dict[str, Any] = IS_PRO
    for _ in range(12):
        deep = {"not": deep}
    issues = issues_of(steps={"welcome": check(deep, "done", "done"), "done": EXIT})
    assert issues == [Issue("/steps/welcome/condition" + "/not" * 12, "nested deeper than 12 levels")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"description": "x" * 2001}, "at most 2000 characters"),
        ({"entry": {"type": "event", "event": "E" * 201}}, "at most 200 characters"),
        ({"steps": {"welcome": send("welcome", "done", vars={"blob": "x" * 20_000}), "done": EXIT}}, "vars are larger"),
        ({"entry_conditions": {"path": "traits.plan", "op": "in", "value": ["x" * 1000] * 70}}, "larger than 64000"),
        ({"steps": {"w" * 65: EXIT}, "start": "w" * 65}, "should match pattern"),
    ],
)
def test_given_oversized_strings_when_parsed_then_the_model_refuses_them_with_the_limit(
    fields: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        body(**fields)


def test_given_a_definition_too_big_for_one_stored_item_when_parsed_then_it_is_refused() -> None:
    steps = {f"s{i}": send("t", f"s{i + 1}", vars={"copy": "x" * 10_000}) for i in range(40)}
    steps["s40"] = EXIT
    with pytest.raises(ValidationError, match=f"characters of JSON; at most {MAX_DEFINITION_CHARS}"):
        body(start="s0", steps=steps)


def test_given_a_huge_string_inside_a_condition_when_validated_then_the_language_limit_is_located() -> None:
    condition = {"path": "traits.plan", "op": "eq", "value": "x" * 5000}
    issues = issues_of(steps={"welcome": check(condition, "done", "done"), "done": EXIT})
    assert locations(issues) == ["/steps/welcome/condition/value"]
    assert "1024" in issues[0].message


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"type": "wait", "duration": "1h", "until_time": "09:00", "next": "done"}, "exactly one of"),
        ({"type": "wait", "next": "done"}, "got none"),
        ({"type": "wait", "duration": "0m", "next": "done"}, "not a duration"),
        ({"type": "wait", "duration": "90s", "next": "done"}, "not a duration"),
        ({"type": "wait", "duration": "366d", "next": "done"}, "from 1 minute to 365 days"),
        ({"type": "wait", "duration": "53w", "next": "done"}, "from 1 minute to 365 days"),
        ({"type": "wait", "duration": "1h"}, "needs next"),
        ({"type": "wait", "duration": "1h", "next": "done", "on_timeout": "done"}, "belong to a wait for an event"),
        ({"type": "wait", "until_time": "24:00", "next": "done"}, "should match pattern"),
        ({"type": "wait", "until_event": {"event": "Paid"}, "on_event": "done", "on_timeout": "done"}, "needs timeout"),
        (
            {**wait_for("Paid", "1d", "done", "done"), "next": "done"},
            "goes on to on_event or on_timeout, not next",
        ),
        ({"type": "random", "branches": [{"percent": 100, "next": "done"}]}, "at least 2 items"),
        (
            {"type": "random", "branches": [{"percent": 33.333, "next": "done"}, {"percent": 66.667, "next": "done"}]},
            "more than two decimals",
        ),
        ({"type": "update_profile", "next": "done"}, "needs set_traits, add_tags or remove_tags"),
        ({"type": "update_profile", "add_tags": ["vip"], "remove_tags": ["vip"], "next": "done"}, "both added"),
        ({"type": "update_profile", "set_traits": {"a": {"nested": 1}}, "next": "done"}, "set_traits"),
        ({"type": "send", "channels": ["webhook"], "template": "t", "next": "done"}, "use a `webhook` action"),
        ({"type": "send", "channels": ["email", "sms"], "template": {"email": "t"}, "next": "done"}, "no template"),
        ({"type": "send", "channels": ["email"], "template": "Not An Id", "next": "done"}, "not a template id"),
        ({"type": "webhook", "url": "not a url", "next": "done"}, "url"),
        ({"type": "exit", "next": "done"}, "Extra inputs are not permitted"),
        ({"type": "teleport", "next": "done"}, "does not match any of the expected tags"),
    ],
)
def test_given_a_malformed_step_when_parsed_then_the_model_says_what_is_wrong(
    step: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError, match=expected):
        body(steps={"welcome": step, "done": EXIT})


@pytest.mark.parametrize("duration", ["1m", "90m", "36h", "365d", "52w"])
def test_given_a_duration_in_range_when_parsed_then_it_is_accepted(duration: str) -> None:
    assert issues_of(steps={"welcome": wait(duration, "done"), "done": EXIT}) == []


def test_given_reentry_and_cap_settings_when_parsed_then_cooldown_needs_days_and_only_cooldown_has_them() -> None:
    assert body(reentry={"mode": "cooldown", "days": 30}).reentry.days == 30
    assert body().reentry.mode == "after_exit"
    with pytest.raises(ValidationError, match="needed for mode cooldown"):
        body(reentry={"mode": "cooldown"})
    with pytest.raises(ValidationError, match="needed for mode cooldown"):
        body(reentry={"mode": "never", "days": 3})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        body(daily_cap=0)


def test_given_an_unknown_field_when_parsed_then_it_is_refused_but_a_stored_journey_ignores_extras() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        body(colour="blue")
    assert Journey.model_validate({"id": "j1", "stats": {"entered": 3}, **definition()}).id == "j1"


@pytest.mark.parametrize(("text", "expected"), [("30m", 30), ("1h", 60), ("2d", 2880), ("1w", 10080)])
def test_given_duration_texts_when_read_then_they_are_whole_minutes_hours_days_weeks(text: str, expected: int) -> None:
    assert duration_of(text) == timedelta(minutes=expected)


@pytest.mark.parametrize("text", ["", "1", "m", "1.5h", "-1d", "01d", "1y", " 1d"])
def test_given_bad_duration_texts_when_read_then_they_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_of(text)


# ============================================================================== validation: how steps fit
def test_given_an_unknown_start_when_validated_then_the_issue_is_at_start_and_suggests_the_close_id() -> None:
    issues = issues_of(start="welcom")
    assert issues == [Issue("/start", "no step 'welcom'; did you mean 'welcome'? (steps: welcome, done)")]


@pytest.mark.parametrize(
    ("step", "pointer"),
    [
        (send("welcome", "nowhere"), "next"),
        (wait("1d", "nowhere"), "next"),
        ({"type": "wait", "until_time": "09:00", "next": "nowhere"}, "next"),
        (wait_for("Paid", "1d", "nowhere", "done"), "on_event"),
        (wait_for("Paid", "1d", "done", "nowhere"), "on_timeout"),
        (check(IS_PRO, "nowhere", "done"), "yes"),
        (check(IS_PRO, "done", "nowhere"), "no"),
        (
            {"type": "random", "branches": [{"percent": 50, "next": "done"}, {"percent": 50, "next": "nowhere"}]},
            "branches/1/next",
        ),
        ({"type": "update_profile", "add_tags": ["vip"], "next": "nowhere"}, "next"),
        ({"type": "webhook", "url": "https://hooks.example.com/x", "next": "nowhere"}, "next"),
    ],
)
def test_given_a_pointer_to_an_unknown_step_when_validated_then_the_issue_is_at_that_pointer(
    step: dict[str, Any], pointer: str
) -> None:
    issues = issues_of(steps={"welcome": step, "done": EXIT})
    assert issues[0] == Issue(f"/steps/welcome/{pointer}", "no step 'nowhere' (steps: welcome, done)")
    # Where the broken pointer was the only way to `done`, `done` is also unreachable; nothing else.
    assert issues[1:] in ([], [Issue("/steps/done", "unreachable from start")])


def test_given_many_steps_when_a_pointer_is_unknown_then_the_message_does_not_list_them_all() -> None:
    steps = {f"step-{i}": send("t", f"step-{i + 1}") for i in range(20)}
    steps["step-20"] = EXIT
    steps["step-7"] = send("t", "zzz")
    issues = validate_journey(body(start="step-0", steps=steps))
    unknown = [i for i in issues if i.location == "/steps/step-7/next"]
    assert unknown == [Issue("/steps/step-7/next", "no step 'zzz'")]


def test_given_a_step_nothing_leads_to_when_validated_then_it_is_unreachable_from_start() -> None:
    issues = issues_of(steps={"welcome": send("welcome", "done"), "orphan": send("t", "done"), "done": EXIT})
    assert issues == [Issue("/steps/orphan", "unreachable from start")]


def test_given_no_exit_step_at_all_when_validated_then_one_issue_says_to_add_one() -> None:
    issues = issues_of(steps={"welcome": send("welcome", "nap"), "nap": wait("1d", "welcome")})
    assert issues == [Issue("/steps", 'no exit step: add one ({"type": "exit"}) so instances can complete')]


def test_given_a_loop_with_a_wait_and_no_way_out_when_validated_then_each_stuck_step_is_reported() -> None:
    steps = {
        "welcome": check(IS_PRO, "done", "nap"),
        "nap": wait("1d", "nudge"),
        "nudge": send("nudge", "nap"),
        "done": EXIT,
    }
    message = "no exit step can be reached from here: every path from it loops forever"
    assert issues_of(steps=steps) == [Issue("/steps/nap", message), Issue("/steps/nudge", message)]


def test_given_a_cycle_without_a_wait_when_validated_then_it_is_refused_naming_the_cycle() -> None:
    steps = {
        "welcome": send("welcome", "again"),
        "again": check(IS_PRO, "done", "welcome"),
        "done": EXIT,
    }
    assert issues_of(steps=steps) == [
        Issue(
            "/steps/welcome",
            "a cycle without a wait: welcome → again → welcome; a loop must pass through a wait step",
        )
    ]


def test_given_a_longer_waitless_cycle_behind_a_wait_when_validated_then_the_whole_cycle_is_named() -> None:
    steps = {
        "welcome": wait("1d", "tag"),
        "tag": {"type": "update_profile", "add_tags": ["seen"], "next": "mail"},
        "mail": send("t", "split"),
        "split": {"type": "random", "branches": [{"percent": 50, "next": "ask"}, {"percent": 50, "next": "mail"}]},
        "ask": check(IS_PRO, "done", "tag"),
        "done": EXIT,
    }
    issues = issues_of(steps=steps)
    assert issues == [
        Issue(
            "/steps/tag",
            "a cycle without a wait: tag → mail → split → ask → tag; a loop must pass through a wait step",
        )
    ]


def test_given_a_step_that_leads_to_itself_when_validated_then_the_cycle_is_that_step_alone() -> None:
    steps = {"welcome": check(IS_PRO, "done", "welcome"), "done": EXIT}
    issues = issues_of(steps=steps)
    assert locations(issues) == ["/steps/welcome"]
    assert "welcome → welcome" in issues[0].message


def test_given_two_separate_waitless_cycles_when_validated_then_each_is_reported_once() -> None:
    steps = {
        "welcome": check(IS_PRO, "a1", "b1"),
        "a1": send("t", "a2"),
        "a2": check(IS_PRO, "done", "a1"),
        "b1": {"type": "update_profile", "add_tags": ["x"], "next": "b2"},
        "b2": check(IS_PRO, "b1", "done"),
        "done": EXIT,
    }
    issues = issues_of(steps=steps)
    assert locations(issues) == ["/steps/a1", "/steps/b1"]
    assert "a1 → a2 → a1" in issues[0].message
    assert "b1 → b2 → b1" in issues[1].message


def test_given_a_reminder_loop_through_a_wait_with_a_way_out_when_validated_then_it_is_allowed() -> None:
    steps = {
        "welcome": send("welcome", "nap"),
        "nap": wait("1d", "bought"),
        "bought": check({"did": "Order Completed", "at_least": 1}, "done", "nudge"),
        "nudge": send("nudge", "nap"),
        "done": EXIT,
    }
    assert issues_of(steps=steps) == []


def test_given_random_percents_not_adding_to_100_when_validated_then_the_total_is_reported() -> None:
    branches = [
        {"percent": 33.33, "next": "done"},
        {"percent": 33.33, "next": "done"},
        {"percent": 33.33, "next": "done"},
    ]
    issues = issues_of(steps={"welcome": {"type": "random", "branches": branches}, "done": EXIT})
    assert issues == [Issue("/steps/welcome/branches", "the percents add up to 99.99; they must add up to 100")]
    branches[2]["percent"] = 33.34
    assert issues_of(steps={"welcome": {"type": "random", "branches": branches}, "done": EXIT}) == []


def test_given_condition_errors_everywhere_when_validated_then_each_is_prefixed_with_its_location() -> None:
    bad_op = {"all": [{"path": "traits.plan", "op": "equals", "value": "pro"}]}
    issues = issues_of(
        entry={"type": "event", "event": "Signed Up", "where": {"path": "event.colour", "op": "eq", "value": 1}},
        entry_conditions={"any": []},
        steps={
            "welcome": check(bad_op, "hold", "done"),
            "hold": wait_for("Paid", "1d", "done", "done", where={"did": "Paid", "at_least": 1, "within": "400d"}),
            "done": EXIT,
        },
        exit_when=[{"event": "Order Completed", "where": {"nope": 1}}],
    )
    assert locations(issues) == [
        "/entry/where/path",
        "/entry_conditions/any",
        "/steps/welcome/condition/all/0/op",
        "/steps/hold/until_event/where/within",
        "/exit_when/0/where",
    ]
    assert "event.colour" in issues[0].message
    assert "equals" in issues[2].message


@pytest.mark.parametrize(
    ("trait", "expected"),
    [
        ("$timezone", "reserved: traits starting with $"),
        ("dates.$internal", "reserved: traits starting with $"),
        ("timezone", "reserved: it holds the person's time zone"),
        ("locale", "reserved: it holds the person's language"),
        ("traits.birthday", "without the traits. prefix, like 'birthday'"),
        ("birth day", "bad trait path"),
        ("dates..birthday", "bad trait path"),
        ("a.b.c.d.e.f.g.h.i", "at most 8 segments"),
    ],
)
def test_given_a_date_entry_on_a_reserved_or_invalid_trait_when_validated_then_the_issue_is_at_the_trait(
    trait: str, expected: str
) -> None:
    issues = issues_of(entry={"type": "date", "trait": trait, "offset_days": -3})
    assert locations(issues) == ["/entry/trait"]
    assert expected in issues[0].message


@pytest.mark.parametrize("trait", ["birthday", "dates.signup_anniversary", "renewal-date"])
def test_given_a_date_entry_on_a_plain_trait_when_validated_then_it_is_accepted(trait: str) -> None:
    assert issues_of(entry={"type": "date", "trait": trait, "offset_days": 0}) == []


def test_given_several_problems_when_validated_then_all_are_reported_at_once_and_compile_raises_them() -> None:
    fields: dict[str, Any] = {
        "start": "welcome",
        "steps": {
            "welcome": send("welcome", "split"),
            "split": {"type": "random", "branches": [{"percent": 60, "next": "done"}, {"percent": 60, "next": "gone"}]},
            "orphan": check({"path": "traits.plan"}, "done", "done"),
            "done": EXIT,
        },
    }
    issues = issues_of(**fields)
    assert locations(issues) == [
        "/steps/split/branches/1/next",
        "/steps/split/branches",
        "/steps/orphan/condition/op",
        "/steps/orphan/condition/value",
        "/steps/orphan",
    ]
    with pytest.raises(ConditionError) as raised:
        compiled(**fields)
    assert raised.value.issues == issues
    assert raised.value.to_body()["details"] == [i.to_dict() for i in issues]


# ============================================================================== entry keys
def test_given_the_entry_event_when_tracked_then_the_key_names_its_message_id() -> None:
    flow = compiled()
    detail = {"profileId": "p1", "event": tracked("Signed Up", "m-42")}
    assert entry_key_for(flow, "event.tracked", detail, person(), now=NOW) == "event:m-42"


def test_given_other_events_or_domain_events_when_read_then_they_do_not_enter() -> None:
    flow = compiled()
    who = person()
    assert entry_key_for(flow, "event.tracked", {"event": tracked("Logged In")}, who, now=NOW) is None
    assert entry_key_for(flow, "segment.entered", {"segmentId": "x", "at": iso(NOW)}, who, now=NOW) is None
    assert entry_key_for(flow, "event.tracked", {"event": tracked("Signed Up", "")}, who, now=NOW) is None
    page = {"type": "page", "name": "Signed Up", "messageId": "m9"}
    assert entry_key_for(flow, "event.tracked", {"event": page}, who, now=NOW) == "event:m9"


def test_given_an_entry_where_when_the_event_does_not_match_then_it_does_not_enter() -> None:
    flow = compiled(
        entry={
            "type": "event",
            "event": "Cart Abandoned",
            "where": {"path": "event.properties.total", "op": "gte", "value": 50},
        }
    )
    big = {"event": tracked("Cart Abandoned", "m1", properties={"total": 80})}
    small = {"event": tracked("Cart Abandoned", "m2", properties={"total": 20})}
    assert entry_key_for(flow, "event.tracked", big, person(), now=NOW) == "event:m1"
    assert entry_key_for(flow, "event.tracked", small, person(), now=NOW) is None


def test_given_entry_conditions_on_the_person_when_they_fail_then_no_entry_type_enters() -> None:
    needs_email = {"path": "identities.email", "op": "exists", "value": True}
    with_email = person(identities={"user_id": ["u1"], "email": ["a@example.com"]})
    without = person()
    by_event = compiled(entry_conditions=needs_email)
    detail = {"event": tracked("Signed Up")}
    assert entry_key_for(by_event, "event.tracked", detail, with_email, now=NOW) == "event:m1"
    assert entry_key_for(by_event, "event.tracked", detail, without, now=NOW) is None
    by_segment = compiled(entry={"type": "segment_entered", "segment": "vip"}, entry_conditions=needs_email)
    segment = {"profileId": "p1", "segmentId": "vip", "at": iso(NOW)}
    assert entry_key_for(by_segment, "segment.entered", segment, with_email, now=NOW) is not None
    assert entry_key_for(by_segment, "segment.entered", segment, without, now=NOW) is None
    by_date = compiled(entry={"type": "date", "trait": "birthday"}, entry_conditions=needs_email)
    with_email.traits["birthday"] = without.traits["birthday"] = "11-22"
    assert date_entry_key(by_date, with_email, NOW, "UTC") == "date:2026-11-22"
    assert date_entry_key(by_date, without, NOW, "UTC") is None


def test_given_entry_conditions_when_read_then_they_judge_at_the_now_given_not_at_the_trigger_time() -> None:
    # Given a journey for people who signed up within the hour, and a sign-up at midnight
    recent = {"path": "event.timestamp", "op": "within_last", "value": "1h"}
    flow = compiled(entry_conditions=recent)
    event = tracked("Signed Up", timestamp="2020-01-01T00:00:00.000Z")
    # Then it lets them in half an hour later, and not once the hour has passed
    half_an_hour_on = datetime(2020, 1, 1, 0, 30, tzinfo=UTC)
    assert entry_key_for(flow, "event.tracked", {"event": event}, person(), now=half_an_hour_on) == "event:m1"
    assert entry_key_for(flow, "event.tracked", {"event": event}, person(), now=NOW) is None


def test_given_a_segment_entry_when_the_person_enters_that_segment_then_the_key_names_segment_and_time() -> None:
    flow = compiled(entry={"type": "segment_entered", "segment": "big-spenders"})
    detail = {"profileId": "p1", "segmentId": "big-spenders", "at": "2026-11-22T12:00:00.000Z"}
    assert entry_key_for(flow, "segment.entered", detail, person(), now=NOW) == (
        "segment:big-spenders:2026-11-22T12:00:00.000Z"
    )
    assert entry_key_for(flow, "segment.exited", detail, person(), now=NOW) is None
    assert entry_key_for(flow, "segment.entered", {**detail, "segmentId": "other"}, person(), now=NOW) is None
    assert entry_key_for(flow, "event.tracked", {"event": tracked("Signed Up")}, person(), now=NOW) is None


def birthday_flow(offset: int = 0, trait: str = "birthday") -> CompiledJourney:
    return compiled(entry={"type": "date", "trait": trait, "offset_days": offset})


def local_noon(day: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize("value", ["1990-05-17", "05-17", "1990-05-17T00:00:00Z", "1990-05-17T23:30:00-08:00"])
def test_given_a_birthday_in_any_accepted_form_when_it_is_three_days_ahead_then_the_person_enters_that_day(
    value: str,
) -> None:
    flow = birthday_flow(offset=-3)
    who = person(traits={"birthday": value})
    assert date_entry_key(flow, who, local_noon("2026-05-14"), "UTC") == "date:2026-05-14"
    assert date_entry_key(flow, who, local_noon("2026-05-13"), "UTC") is None
    assert date_entry_key(flow, who, local_noon("2026-05-17"), "UTC") is None


@pytest.mark.parametrize("value", ["2000-02-29", "02-29"])
def test_given_a_feb_29_birthday_when_the_year_is_common_then_it_falls_on_feb_28_and_else_on_feb_29(
    value: str,
) -> None:
    flow = birthday_flow()
    who = person(traits={"birthday": value})
    assert date_entry_key(flow, who, local_noon("2026-02-28"), "UTC") == "date:2026-02-28"
    assert date_entry_key(flow, who, local_noon("2026-03-01"), "UTC") is None
    assert date_entry_key(flow, who, local_noon("2028-02-29"), "UTC") == "date:2028-02-29"
    assert date_entry_key(flow, who, local_noon("2028-02-28"), "UTC") is None


def test_given_an_offset_across_new_year_when_judged_then_the_anniversary_of_the_next_year_counts() -> None:
    flow = birthday_flow(offset=-5)
    who = person(traits={"birthday": "01-02"})
    assert date_entry_key(flow, who, local_noon("2026-12-28"), "UTC") == "date:2026-12-28"
    after = birthday_flow(offset=3)
    late_december = person(traits={"birthday": "12-30"})
    assert date_entry_key(after, late_december, local_noon("2027-01-02"), "UTC") == "date:2027-01-02"


def test_given_the_same_instant_when_people_live_in_different_zones_then_each_enters_on_their_own_day() -> None:
    flow = birthday_flow()
    instant = datetime(2026, 5, 16, 12, 30, tzinfo=UTC)  # 00:30 on the 17th in Auckland
    auckland = person(traits={"birthday": "05-17"}, timezone="Pacific/Auckland")
    los_angeles = person(traits={"birthday": "05-17"}, timezone="America/Los_Angeles")
    trait_zone = person(traits={"birthday": "05-17", "timezone": "Pacific/Auckland"}, timezone="America/Los_Angeles")
    assert date_entry_key(flow, auckland, instant, "UTC") == "date:2026-05-17"
    assert date_entry_key(flow, los_angeles, instant, "UTC") is None
    assert date_entry_key(flow, trait_zone, instant, "UTC") == "date:2026-05-17"
    a_minute_earlier = instant - timedelta(minutes=31)  # 23:59 on the 16th in Auckland
    assert date_entry_key(flow, auckland, a_minute_earlier, "UTC") is None


def test_given_no_zone_on_the_person_when_judged_then_the_default_zone_decides_the_day() -> None:
    flow = birthday_flow()
    who = person(traits={"birthday": "05-17"})
    instant = datetime(2026, 5, 17, 2, 0, tzinfo=UTC)  # still the 16th in New York
    assert date_entry_key(flow, who, instant, "UTC") == "date:2026-05-17"
    assert date_entry_key(flow, who, instant, "America/New_York") is None


def test_given_a_full_date_in_the_future_when_judged_then_anniversaries_start_from_its_own_year() -> None:
    flow = birthday_flow(offset=-7, trait="renewal")
    who = person(traits={"renewal": "2027-03-01"})
    assert date_entry_key(flow, who, local_noon("2026-02-22"), "UTC") is None
    assert date_entry_key(flow, who, local_noon("2027-02-22"), "UTC") == "date:2027-02-22"


def test_given_a_nested_date_trait_when_judged_then_the_dotted_path_reaches_it() -> None:
    flow = birthday_flow(trait="dates.anniversary")
    who = person(traits={"dates": {"anniversary": "2019-11-22"}})
    assert date_entry_key(flow, who, NOW, "UTC") == "date:2026-11-22"


@pytest.mark.parametrize("value", [None, "", "tomorrow", "02-30", "13-01", "2026-02-30", 19900517, "1990-05-17Tnope"])
def test_given_a_missing_or_bad_date_trait_when_judged_then_nobody_enters(value: Any) -> None:
    who = person(traits={"birthday": value})
    for day in ("2026-05-17", "2026-02-28", "2026-03-02", "2026-01-13"):
        assert date_entry_key(birthday_flow(), who, local_noon(day), "UTC") is None


def test_given_a_non_date_entry_when_asked_for_a_date_key_then_there_is_none() -> None:
    assert date_entry_key(compiled(), person(traits={"birthday": "11-22"}), NOW, "UTC") is None
    assert entry_key_for(birthday_flow(), "event.tracked", {"event": tracked("Signed Up")}, person(), now=NOW) is None


# ============================================================================== re-entry
def finished(run: int = 1, entered: datetime = NOW - timedelta(days=10), status: str = "completed") -> Instance:
    flow = journey()
    instance = start_instance(flow, "p1", None, f"event:old-{run}", None, entered)
    return Instance.from_doc({**instance.to_doc(), "run": run, "status": status})


@pytest.mark.parametrize(
    ("reentry", "previous_status", "allowed", "reason"),
    [
        ({"mode": "never"}, "completed", False, "(reentry: never)"),
        ({"mode": "never"}, "waiting", False, "(reentry: never)"),
        ({"mode": "after_exit"}, "waiting", False, "still in the journey (run 1, waiting at welcome)"),
        ({"mode": "after_exit"}, "active", False, "still in the journey"),
        ({"mode": "after_exit"}, "completed", True, "re-entry allowed"),
        ({"mode": "after_exit"}, "exited", True, "re-entry allowed"),
        ({"mode": "cooldown", "days": 30}, "completed", False, "may enter again from 2026-12-12T12:00:00.000Z"),
        ({"mode": "cooldown", "days": 30}, "waiting", False, "still in the journey"),
        ({"mode": "cooldown", "days": 7}, "exited", True, "re-entry allowed"),
    ],
)
def test_given_a_previous_run_when_entering_again_then_the_reentry_policy_decides(
    reentry: dict[str, Any], previous_status: str, allowed: bool, reason: str
) -> None:
    flow = journey(reentry=reentry)
    ok, why = may_enter(flow, finished(status=previous_status), "event:new", NOW)
    assert ok is allowed
    assert reason in why


def test_given_the_same_trigger_as_the_previous_run_when_entering_then_it_is_refused_whatever_the_policy() -> None:
    previous = finished()
    for mode in ({"mode": "after_exit"}, {"mode": "cooldown", "days": 1}):
        assert may_enter(journey(reentry=mode), previous, previous.entry_key, NOW) == (
            False,
            "already entered for this trigger",
        )


def test_given_a_first_entry_or_a_disabled_journey_when_asked_then_first_entries_pass_and_disabled_refuse() -> None:
    assert may_enter(journey(), None, "event:m1", NOW) == (True, "first entry")
    assert may_enter(compiled(), None, "event:m1", NOW) == (True, "first entry")
    assert may_enter(journey(enabled=False), None, "event:m1", NOW) == (False, "the journey is disabled")


def test_given_a_cooldown_when_it_has_exactly_elapsed_then_entry_is_allowed() -> None:
    flow = journey(reentry={"mode": "cooldown", "days": 10})
    assert may_enter(flow, finished(entered=NOW - timedelta(days=10)), "event:n", NOW)[0] is True
    assert (
        may_enter(flow, finished(entered=NOW - timedelta(days=10) + timedelta(seconds=1)), "event:n", NOW)[0] is False
    )


def test_given_a_previous_run_when_a_new_one_starts_then_its_run_number_follows_and_it_starts_at_start() -> None:
    flow = compiled()
    event = {**tracked("Signed Up", "m7"), "context": {"device": {"id": "d1"}, "timezone": "Europe/Paris"}}
    first = start_instance(flow, "p1", None, "event:m7", event, NOW)
    assert (first.run, first.status, first.step, first.seq, first.rev) == (1, "active", "welcome", 0, 0)
    assert first.instance_id == "j1:p1:1"
    assert first.entered_at == first.updated_at == "2026-11-22T12:00:00.000Z"
    assert first.last_event is not None
    assert first.last_event["messageId"] == "m7"
    assert first.last_event["context"] == {"timezone": "Europe/Paris"}  # kept slim, as on the bus
    second = start_instance(flow, "p1", finished(run=4), "event:m8", None, NOW)
    assert (second.run, second.instance_id, second.last_event) == (5, "j1:p1:5", None)


def test_given_an_instance_when_stored_and_read_back_then_it_is_the_same_even_with_decimal_numbers() -> None:
    progress = run(compiled(steps={"welcome": wait("1d", "done"), "done": EXIT}))
    doc = progress.instance.to_doc()
    assert Instance.from_doc(doc) == progress.instance
    from_dynamo = {**doc, "run": Decimal(1), "seq": Decimal(1), "rev": Decimal(3), "journey_version": Decimal(1)}
    from_dynamo["path"] = [tuple(entry) for entry in doc["path"]]
    read = Instance.from_doc({**from_dynamo, "someday": "a field from a later version"})
    assert read == Instance.from_doc({**doc, "rev": 3})
    assert type(read.seq) is int


# ============================================================================== the stepper, step by step
def test_given_a_send_step_when_run_then_one_message_request_carries_the_journey_origin_and_the_event() -> None:
    flow = compiled(
        steps={"welcome": send("welcome", "done", vars={"coupon": "HELLO"}, category="transactional"), "done": EXIT}
    )
    event = tracked("Signed Up", "m7")
    progress = run(flow, event=event)
    assert progress.messages == [
        MessageRequest(
            key="journey:j1:p1:1:welcome:1",
            origin=Origin(kind="journey", id="j1", version=1, step="welcome"),
            profile_id="p1",
            channels=["email"],
            category="transactional",
            template="welcome",
            vars={"coupon": "HELLO"},
            event=event,
            requested_at="2026-11-22T12:00:00.000Z",
        )
    ]
    assert progress.messages[0].message_id == message_id_for("journey:j1:p1:1:welcome:1")
    assert progress.outcome == "completed"
    assert progress.instance.status == "completed"
    assert progress.instance.exit_reason == "exit: done"
    assert progress.instance.ended_at == "2026-11-22T12:00:00.000Z"
    assert progress.instance.seq == 2
    assert progress.steps_run == 2
    assert outcomes(progress.instance) == [("welcome", "message requested"), ("done", "completed")]
    assert progress.timers == []
    assert progress.changed is True


def test_given_a_webhook_step_when_run_then_it_is_a_transactional_webhook_message() -> None:
    hook = {"type": "webhook", "url": "https://hooks.example.com/crm", "include": ["traits", "tags"], "next": "done"}
    progress = run(compiled(start="hook", steps={"hook": hook, "done": EXIT}))
    [message] = progress.messages
    assert message.key == "journey:j1:p1:1:hook:1"
    assert (message.channels, message.category, message.template) == (["webhook"], "transactional", None)
    assert message.webhook_url == "https://hooks.example.com/crm"
    assert message.webhook_include == ["traits", "tags"]
    assert message.origin == Origin(kind="journey", id="j1", version=1, step="hook")


def test_given_an_update_profile_step_when_run_then_it_emits_identify_and_tag_events_with_derived_ids() -> None:
    update = {
        "type": "update_profile",
        "set_traits": {"journey_welcome": "done", "score": 3},
        "add_tags": ["welcomed"],
        "remove_tags": ["prospect"],
        "next": "done",
    }
    progress = run(compiled(start="mark", steps={"mark": update, "done": EXIT}))
    key = "journey:j1:p1:1:mark:1"
    stamp = "2026-11-22T12:00:00.000Z"
    person_ref = {"userId": "user-p1"}
    assert progress.events == [
        internal_events.identify(
            person_ref,
            {"journey_welcome": "done", "score": 3},
            message_id=internal_events.internal_id(key, "traits"),
            timestamp=stamp,
        ),
        internal_events.track(
            person_ref,
            "Tag Added",
            {"tag": "welcomed", "journey": "j1"},
            message_id=internal_events.internal_id(key, "Tag Added", "welcomed"),
            timestamp=stamp,
        ),
        internal_events.track(
            person_ref,
            "Tag Removed",
            {"tag": "prospect", "journey": "j1"},
            message_id=internal_events.internal_id(key, "Tag Removed", "prospect"),
            timestamp=stamp,
        ),
    ]
    assert all(event["context"]["midstage"]["depth"] == 1 for event in progress.events)
    assert len({event["messageId"] for event in progress.events}) == 3


def test_given_a_person_without_user_or_anonymous_id_when_updating_then_the_step_is_skipped_and_goes_on() -> None:
    update = {"type": "update_profile", "add_tags": ["x"], "next": "done"}
    progress = run(compiled(start="mark", steps={"mark": update, "done": EXIT}), profile=person(identities={}))
    assert progress.events == []
    assert outcomes(progress.instance)[0] == ("mark", "skipped: the profile has no user or anonymous id")
    assert progress.instance.status == "completed"


def test_given_an_update_then_a_condition_in_the_same_advance_then_the_condition_sees_the_update() -> None:
    steps = {
        "mark": {"type": "update_profile", "add_tags": ["vip"], "set_traits": {"plan": "pro"}, "next": "ask"},
        "ask": check({"all": [IS_PRO, {"path": "tags", "op": "contains", "value": "vip"}]}, "yes-end", "no-end"),
        "yes-end": EXIT,
        "no-end": EXIT,
    }
    who = person(traits={"plan": "free"})
    progress = run(compiled(start="mark", steps=steps), profile=who)
    assert outcomes(progress.instance)[1] == ("ask", "yes")
    assert progress.instance.exit_reason == "exit: yes-end"
    assert who.traits == {"plan": "free"}  # the caller's profile is not changed
    assert who.tags == []


def test_given_a_condition_step_when_run_then_it_judges_the_person_and_the_triggering_event() -> None:
    condition = {"all": [IS_PRO, {"path": "event.properties.total", "op": "gte", "value": 100}]}
    flow = compiled(start="ask", steps={"ask": check(condition, "big", "small"), "big": EXIT, "small": EXIT})
    pro = person(traits={"plan": "pro"})
    big_cart = tracked("Signed Up", properties={"total": 120})
    assert run(flow, pro, big_cart).instance.exit_reason == "exit: big"
    assert run(flow, pro, tracked("Signed Up", properties={"total": 20})).instance.exit_reason == "exit: small"
    assert run(flow, person(traits={"plan": "free"}), big_cart).instance.exit_reason == "exit: small"
    assert run(flow, pro, None).instance.exit_reason == "exit: small"


def random_flow(percents: list[float]) -> CompiledJourney:
    steps: dict[str, Any] = {
        "split": {"type": "random", "branches": [{"percent": p, "next": f"b{i}"} for i, p in enumerate(percents)]}
    }
    steps.update({f"b{i}": EXIT for i in range(len(percents))})
    return compiled(start="split", steps=steps)


def test_given_a_random_step_when_the_same_person_runs_it_again_then_they_take_the_same_branch() -> None:
    flow = random_flow([50, 50])
    for profile_id in ("p1", "p2", "p3", "p4"):
        taken = {run(flow, person(profile_id)).instance.exit_reason for _ in range(3)}
        assert len(taken) == 1


def test_given_a_random_split_when_many_people_run_it_then_shares_follow_the_percents() -> None:
    flow = random_flow([10, 30, 60])
    counts = [0, 0, 0]
    for number in range(3000):
        reason = run(flow, person(f"p{number}")).instance.exit_reason or ""
        counts[int(reason[-1])] += 1
    assert 220 <= counts[0] <= 380
    assert 780 <= counts[1] <= 1020
    assert 1680 <= counts[2] <= 1920


def test_given_a_branch_of_zero_percent_when_many_people_run_it_then_nobody_takes_it() -> None:
    flow = random_flow([0, 100])
    assert all(run(flow, person(f"p{n}")).instance.exit_reason == "exit: b1" for n in range(300))


def test_given_a_duration_wait_when_run_then_the_instance_waits_with_a_timer_named_by_its_seq() -> None:
    flow = compiled(steps={"welcome": send("welcome", "nap"), "nap": wait("2d", "done"), "done": EXIT})
    progress = run(flow)
    instance = progress.instance
    due = NOW + timedelta(days=2)
    assert instance.status == "waiting"
    assert instance.step == "nap"
    assert instance.wait == {
        "kind": "timer",
        "step": "nap",
        "until": iso(due),
        "timer_id": "j1:p1:1:2",
        "event": None,
    }
    [timer] = progress.timers
    assert timer.at == due
    assert timer.timer_id == "j1:p1:1:2"
    assert timer.payload == {"journeyId": "j1", "profileId": "p1", "run": 1, "timerId": "j1:p1:1:2"}
    assert progress.outcome == f"waiting at nap until {iso(due)}"


def test_given_a_waiting_instance_when_its_timer_fires_late_then_it_goes_on_at_the_sweep_time() -> None:
    flow = compiled(steps={"welcome": wait("1h", "mail"), "mail": send("m", "done"), "done": EXIT})
    waiting = run(flow)
    late = NOW + timedelta(hours=3)
    progress = advance(flow, waiting.instance, person(), fire(waiting), late)
    assert progress.messages[0].requested_at == iso(late)
    assert progress.messages[0].key == "journey:j1:p1:1:mail:2"
    assert outcomes(progress.instance) == [
        ("welcome", f"waiting until {iso(NOW + timedelta(hours=1))}"),
        ("welcome", "timer fired"),
        ("mail", "message requested"),
        ("done", "completed"),
    ]


def test_given_a_container_clock_behind_the_scheduler_when_a_timer_fires_then_the_due_time_is_used() -> None:
    flow = compiled(steps={"welcome": wait("1h", "mail"), "mail": send("m", "done"), "done": EXIT})
    waiting = run(flow)
    lagging = NOW + timedelta(minutes=59, seconds=50)
    progress = advance(flow, waiting.instance, person(), fire(waiting), lagging)
    assert progress.messages[0].requested_at == iso(NOW + timedelta(hours=1))
    assert progress.instance.updated_at == iso(NOW + timedelta(hours=1))


def test_given_a_timer_that_is_not_the_current_wait_when_it_fires_then_it_is_ignored_as_stale() -> None:
    flow = compiled(steps={"welcome": wait("1h", "done"), "done": EXIT})
    waiting = run(flow).instance
    for wake in (Wake.timer("j1:p1:1:9", iso(NOW)), Wake.timer("j1:p1:0:1", iso(NOW))):
        progress = advance(flow, waiting, person(), wake, NOW + timedelta(hours=2))
        assert (progress.outcome, progress.changed, progress.instance) == ("stale timer ignored", False, waiting)
        assert progress.messages == progress.events == progress.timers == []
    not_started = entered(flow)
    progress = advance(flow, not_started, person(), Wake.timer("j1:p1:1:1", iso(NOW)), NOW)
    assert (progress.outcome, progress.changed) == ("stale timer ignored", False)


def test_given_a_waiting_instance_when_entered_again_or_an_unrelated_event_comes_then_nothing_happens() -> None:
    flow = compiled(steps={"welcome": wait("1h", "done"), "done": EXIT})
    waiting = run(flow).instance
    again = advance(flow, waiting, person(), Wake.enter(), NOW)
    assert (again.outcome, again.changed) == ("ignored: already waiting at welcome", False)
    other = advance(flow, waiting, person(), Wake.on_event(tracked("Page Viewed")), NOW)
    assert other.changed is False
    assert "does not end the wait" in other.outcome
    assert other.instance == waiting


def hold_flow(where: Any = None) -> CompiledJourney:
    return compiled(
        start="hold",
        steps={
            "hold": wait_for("Order Completed", "3d", "thanks", "nudge", where=where),
            "thanks": send("thanks", "done"),
            "nudge": send("nudge", "done"),
            "done": EXIT,
        },
    )


def test_given_a_wait_for_an_event_when_it_happens_then_the_instance_goes_on_event_with_that_event() -> None:
    flow = hold_flow()
    waiting = run(flow)
    assert waiting.instance.wait is not None
    assert waiting.instance.wait["kind"] == "event"
    assert waiting.instance.wait["event"] == "Order Completed"
    assert waiting.outcome == f"waiting at hold for 'Order Completed' until {iso(NOW + timedelta(days=3))}"
    order = tracked("Order Completed", "m-order", properties={"total": 42})
    progress = advance(flow, waiting.instance, person(), Wake.on_event(order), NOW + timedelta(hours=5))
    [message] = progress.messages
    assert message.origin.step == "thanks"
    assert message.event == order
    assert progress.instance.last_event == order
    assert outcomes(progress.instance)[1:3] == [("hold", "event: Order Completed"), ("thanks", "message requested")]
    stale = advance(flow, progress.instance, person(), fire(waiting), NOW + timedelta(days=3))
    assert (stale.outcome, stale.changed) == ("ignored: the instance is completed", False)


def test_given_a_wait_for_an_event_when_the_timeout_fires_first_then_it_goes_on_timeout() -> None:
    flow = hold_flow()
    waiting = run(flow)
    progress = advance(flow, waiting.instance, person(), fire(waiting), NOW + timedelta(days=3))
    assert [m.origin.step for m in progress.messages] == ["nudge"]
    assert outcomes(progress.instance)[1] == ("hold", "timed out")


def test_given_a_wait_for_an_event_with_where_when_the_event_does_not_match_then_it_keeps_waiting() -> None:
    flow = hold_flow(where={"path": "event.properties.total", "op": "gte", "value": 50})
    waiting = run(flow).instance
    small = advance(flow, waiting, person(), Wake.on_event(tracked("Order Completed", properties={"total": 10})), NOW)
    assert small.changed is False
    assert small.instance == waiting
    big = advance(flow, waiting, person(), Wake.on_event(tracked("Order Completed", properties={"total": 90})), NOW)
    assert big.messages[0].origin.step == "thanks"


def opened_flow(caused_by: str | None = None) -> CompiledJourney:
    """Send a welcome email, then wait two days for it to be opened."""
    awaited = wait_for("Email Opened", "2d", "thanks", "nudge")
    if caused_by is not None:
        awaited["until_event"]["caused_by"] = caused_by
    return compiled(
        steps={
            "welcome": send("welcome", "opened"),
            "opened": awaited,
            "thanks": send("thanks", "done"),
            "nudge": send("nudge", "done"),
            "done": EXIT,
        }
    )


def opened(message_id: str) -> dict[str, Any]:
    """The event the engagement function tracks when a message's pixel loads."""
    return tracked("Email Opened", f"open-{message_id}", properties={"messageId": message_id})


def test_given_a_wait_for_an_open_when_another_email_is_opened_then_it_keeps_waiting_until_its_own_is() -> None:
    """Given a run that sent the welcome email and waits for "Email Opened", when the person opens
    a campaign's email, then the wait goes on; when they open the welcome email, it ends."""
    flow = opened_flow()
    waiting = run(flow)
    [welcome] = waiting.messages
    later = NOW + timedelta(hours=1)
    other = advance(flow, waiting.instance, person(), Wake.on_event(opened(message_id_for("campaign:c1:r1:p1"))), later)
    assert (other.changed, other.outcome) == (False, "ignored: 'Email Opened' is about a message this run did not send")
    assert waiting.instance.sent == [welcome.message_id]
    unnamed = advance(flow, waiting.instance, person(), Wake.on_event(tracked("Email Opened")), later)
    assert unnamed.changed is False
    own = advance(flow, waiting.instance, person(), Wake.on_event(opened(welcome.message_id)), later)
    assert [m.template for m in own.messages] == ["thanks"]
    assert outcomes(own.instance)[2] == ("opened", "event: Email Opened")


def test_given_a_wait_for_an_open_of_any_message_when_another_email_is_opened_then_the_wait_ends() -> None:
    flow = opened_flow(caused_by="any")
    waiting = run(flow)
    other = advance(flow, waiting.instance, person(), Wake.on_event(opened("msg_elsewhere")), NOW + timedelta(hours=1))
    assert [m.template for m in other.messages] == ["thanks"]


def test_given_a_run_that_ended_and_entered_again_when_the_first_runs_email_is_opened_then_it_does_not_count() -> None:
    """The messages are this run's: an open of the previous run's email leaves the new run waiting."""
    flow = opened_flow()
    first = run(flow)
    [first_welcome] = first.messages
    ended = advance(flow, first.instance, person(), fire(first), NOW + timedelta(days=2))
    assert ended.instance.status == "completed"
    second = start_instance(flow, "p1", ended.instance, "event:m9", None, NOW + timedelta(days=3))
    assert second.sent == []
    waiting = advance(flow, second, person(), Wake.enter(), NOW + timedelta(days=3))
    late = advance(flow, waiting.instance, person(), Wake.on_event(opened(first_welcome.message_id)), NOW)
    assert late.changed is False


def test_given_a_run_begun_before_sent_messages_were_kept_when_any_email_is_opened_then_the_wait_ends() -> None:
    """An instance stored before `sent` existed keeps its old behaviour: any open counts."""
    flow = opened_flow()
    doc = run(flow).instance.to_doc()
    del doc["sent"]
    legacy = Instance.from_doc(doc)
    assert legacy.sent is None
    progress = advance(flow, legacy, person(), Wake.on_event(opened("msg_elsewhere")), NOW + timedelta(hours=1))
    assert [m.template for m in progress.messages] == ["thanks"]


def test_given_a_wait_for_an_event_no_message_causes_when_caused_by_is_set_then_it_is_ignored() -> None:
    hold = wait_for("Order Completed", "3d", "thanks", "nudge")
    hold["until_event"]["caused_by"] = "this_run"
    flow = compiled(start="hold", steps={"hold": hold, "thanks": send("thanks", "done"), "nudge": EXIT, "done": EXIT})
    waiting = run(flow).instance
    progress = advance(flow, waiting, person(), Wake.on_event(tracked("Order Completed")), NOW)
    assert progress.messages[0].origin.step == "thanks"


def test_given_caused_by_when_parsed_then_only_this_run_or_any_is_accepted() -> None:
    awaited = wait_for("Email Opened", "2d", "done", "done")
    awaited["until_event"]["caused_by"] = "this_journey"
    with pytest.raises(ValidationError, match=r"until_event\.caused_by"):
        body(steps={"welcome": awaited, "done": EXIT})


def test_given_the_events_feedback_tracks_then_each_is_one_a_message_causes() -> None:
    assert set(feedback._EVENTS.values()) <= MESSAGE_EVENTS


def test_given_a_merge_when_both_profiles_have_a_run_then_the_one_in_progress_wins_and_ties_keep_the_survivors() -> (
    None
):
    flow = opened_flow()
    theirs = run(flow, person("p1")).instance  # waiting
    mine = run(flow, person("p2")).instance  # waiting
    ended_mine = replace(mine, status="completed", wait=None, run=4)
    assert adopted(theirs, mine, "p2", NOW) is None  # both in progress: the survivor's own
    assert adopted(replace(theirs, status="exited", wait=None), ended_mine, "p2", NOW) is None  # both ended
    assert adopted(replace(theirs, status="exited", wait=None), mine, "p2", NOW) is None
    moved = adopted(theirs, ended_mine, "p2", NOW)
    assert moved is not None
    assert (moved.profile_id, moved.ids_from, moved.run, moved.run_floor, moved.wait) == ("p2", "p1", 1, 4, theirs.wait)
    assert moved.instance_id == theirs.instance_id
    assert start_instance(flow, "p2", replace(moved, status="completed"), "event:m7", None, NOW).run == 5
    alone = adopted(theirs, None, "p2", NOW)
    assert alone is not None and alone.run_floor == 0 and alone.path[-1][2] == "merged from profile p1"


def test_given_until_time_when_run_then_the_timer_is_the_next_local_time_in_the_persons_zone() -> None:
    flow = compiled(steps={"welcome": {"type": "wait", "until_time": "09:00", "next": "done"}, "done": EXIT})
    in_new_york = person(timezone="America/New_York")
    morning = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 07:00 in New York
    assert run(flow, in_new_york, now=morning).timers[0].at == datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    afternoon = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
    assert run(flow, in_new_york, now=afternoon).timers[0].at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    in_utc = run(flow, person(), now=morning).timers[0].at
    assert in_utc == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "hh_mm", "expected"),
    [
        # Spring forward, 2026-03-08: 02:00 EST becomes 03:00 EDT.
        (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), "02:30", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),  # 03:30 EDT
        (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), "09:00", datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),  # 09:00 EDT
        (datetime(2026, 3, 7, 15, 0, tzinfo=UTC), "09:00", datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),
        (datetime(2026, 3, 8, 7, 10, tzinfo=UTC), "02:30", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
        (datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "02:30", datetime(2026, 3, 9, 6, 30, tzinfo=UTC)),
        # Fall back, 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
        (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), "01:30", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),  # first
        (datetime(2026, 11, 1, 5, 45, tzinfo=UTC), "01:30", datetime(2026, 11, 2, 6, 30, tzinfo=UTC)),
        (datetime(2026, 10, 31, 14, 0, tzinfo=UTC), "09:00", datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),  # 09:00 EST
        (datetime(2026, 11, 1, 14, 0, tzinfo=UTC), "09:00", datetime(2026, 11, 2, 14, 0, tzinfo=UTC)),  # strictly
    ],
)
def test_given_new_york_dst_changes_when_waiting_until_a_local_time_then_the_moment_is_dst_safe(
    now: datetime, hh_mm: str, expected: datetime
) -> None:
    moment = next_local_time(now, NEW_YORK, hh_mm)
    assert moment == expected
    assert moment > now
    assert moment.tzinfo == UTC


def test_given_until_time_across_the_spring_change_when_stepped_then_the_wait_ends_at_the_shifted_moment() -> None:
    flow = compiled(steps={"welcome": {"type": "wait", "until_time": "02:30", "next": "done"}, "done": EXIT})
    progress = run(flow, person(timezone="America/New_York"), now=datetime(2026, 3, 8, 5, 0, tzinfo=UTC))
    assert progress.instance.wait is not None
    assert progress.instance.wait["until"] == "2026-03-08T07:30:00.000Z"


def test_given_a_goal_event_while_waiting_when_it_arrives_then_the_instance_exits_without_more_steps() -> None:
    flow = compiled(
        steps={"welcome": wait("1d", "mail"), "mail": send("m", "done"), "done": EXIT},
        exit_when=[{"event": "Order Completed"}],
    )
    waiting = run(flow)
    order = tracked("Order Completed", "m-o")
    progress = advance(flow, waiting.instance, person(), Wake.on_event(order), NOW + timedelta(hours=2))
    instance = progress.instance
    assert (instance.status, instance.exit_reason, instance.wait) == ("exited", "goal: Order Completed", None)
    assert instance.ended_at == iso(NOW + timedelta(hours=2))
    assert instance.last_event == order
    assert progress.outcome == "exited: goal: Order Completed"
    assert progress.messages == progress.timers == []
    assert progress.steps_run == 0
    assert instance.seq == waiting.instance.seq
    assert outcomes(instance)[-1] == ("welcome", "exited: goal: Order Completed")
    late_timer = advance(flow, instance, person(), fire(waiting), NOW + timedelta(days=1))
    assert (late_timer.outcome, late_timer.changed) == ("ignored: the instance is exited", False)


def test_given_a_goal_with_where_when_the_event_does_not_match_then_the_instance_stays() -> None:
    flow = compiled(
        steps={"welcome": wait("1d", "done"), "done": EXIT},
        exit_when=[{"event": "Order Completed", "where": {"path": "event.properties.total", "op": "gt", "value": 0}}],
    )
    waiting = run(flow).instance
    free = advance(flow, waiting, person(), Wake.on_event(tracked("Order Completed", properties={"total": 0})), NOW)
    assert free.changed is False
    paid = advance(flow, waiting, person(), Wake.on_event(tracked("Order Completed", properties={"total": 5})), NOW)
    assert paid.instance.status == "exited"


def test_given_a_goal_that_is_also_the_awaited_event_when_it_arrives_then_the_goal_wins() -> None:
    flow = compiled(
        start="hold",
        steps={"hold": wait_for("Order Completed", "1d", "thanks", "done"), "thanks": send("t", "done"), "done": EXIT},
        exit_when=[{"event": "Order Completed"}],
    )
    progress = advance(flow, run(flow).instance, person(), Wake.on_event(tracked("Order Completed")), NOW)
    assert progress.instance.exit_reason == "goal: Order Completed"
    assert progress.messages == []


def test_given_a_goal_event_before_the_instance_started_when_it_arrives_then_it_exits_the_active_instance() -> None:
    flow = compiled(exit_when=[{"event": "Order Completed"}])
    progress = advance(flow, entered(flow), person(), Wake.on_event(tracked("Order Completed")), NOW)
    assert progress.instance.status == "exited"
    assert progress.messages == []


def test_given_events_received_before_the_run_began_when_they_arrive_after_the_entry_then_none_ends_it() -> None:
    """Given a person let in at NOW by the write of an imported history (an old order among its
    events), when that order reaches the runner after the entry, then it is no goal and ends no
    wait; the same order received after the entry is."""
    flow = compiled(
        start="hold",
        steps={"hold": wait_for("Order Completed", "1d", "thanks", "done"), "thanks": send("t", "done"), "done": EXIT},
        exit_when=[{"event": "Order Completed"}],
    )
    waiting = run(flow).instance
    old = tracked(
        "Order Completed", timestamp=iso(NOW - timedelta(days=40)), receivedAt=iso(NOW - timedelta(seconds=1))
    )
    late = advance(flow, waiting, person(), Wake.on_event(old), NOW + timedelta(seconds=2))
    assert (late.changed, late.outcome) == (False, "ignored: 'Order Completed' was received before the run began")

    fresh = tracked("Order Completed", "m2", receivedAt=iso(NOW))  # the same moment as the entry counts
    assert advance(flow, waiting, person(), Wake.on_event(fresh), NOW).instance.exit_reason == "goal: Order Completed"
    unstamped = tracked("Order Completed", "m3")  # no receipt time (a platform event): judged as before
    assert advance(flow, waiting, person(), Wake.on_event(unstamped), NOW).instance.status == "exited"


def test_given_a_run_an_event_began_when_its_own_batch_holds_the_goal_then_what_happened_after_it_counts() -> None:
    """Given a cart abandoned and an order sent in one batch (one receipt time), the order that
    happened after the abandonment ends the run and one that happened before it does not; an
    event received before the trigger never counts, one received after it always does, even
    before the runner entered the person."""
    flow = compiled(
        start="hold",
        steps={"hold": wait_for("Order Completed", "1d", "thanks", "done"), "thanks": send("t", "done"), "done": EXIT},
        exit_when=[{"event": "Order Completed"}],
    )
    received, happened = NOW - timedelta(seconds=3), NOW - timedelta(seconds=10)
    trigger = tracked("Cart Abandoned", "c1", timestamp=iso(happened), receivedAt=iso(received))
    waiting = run(flow, event=trigger).instance
    assert (waiting.entry_received_at, waiting.entry_timestamp) == (iso(received), iso(happened))

    def order(message_id: str, at: datetime, came: datetime) -> dict[str, Any]:
        return tracked("Order Completed", message_id, timestamp=iso(at), receivedAt=iso(came))

    cases = {
        "same batch, after the cart": order("o1", happened + timedelta(seconds=1), received),
        "same batch, before the cart": order("o2", happened - timedelta(seconds=1), received),
        "received before the cart": order("o3", happened + timedelta(seconds=1), received - timedelta(seconds=1)),
        "received after, before the entry": order("o4", happened + timedelta(seconds=1), NOW - timedelta(seconds=1)),
    }
    ended = {
        name: advance(flow, waiting, person(), Wake.on_event(e), NOW).instance.exit_reason for name, e in cases.items()
    }
    assert ended == {
        "same batch, after the cart": "goal: Order Completed",
        "same batch, before the cart": None,
        "received before the cart": None,
        "received after, before the entry": "goal: Order Completed",
    }


def test_given_an_ended_instance_when_woken_in_any_way_then_it_ignores_the_wake() -> None:
    flow = compiled(exit_when=[{"event": "Order Completed"}])
    done = run(flow).instance
    for wake in (Wake.enter(), Wake.timer("j1:p1:1:1", iso(NOW)), Wake.on_event(tracked("Order Completed"))):
        progress = advance(flow, done, person(), wake, NOW)
        assert (progress.outcome, progress.changed, progress.instance) == (
            "ignored: the instance is completed",
            False,
            done,
        )


def test_given_a_result_when_the_caller_changes_it_then_the_instance_it_came_from_is_untouched() -> None:
    flow = compiled(steps={"welcome": wait("1h", "done"), "done": EXIT})
    waiting = run(flow, event=tracked("Signed Up", properties={"total": 5})).instance
    before = waiting.to_doc()
    for wake in (Wake.timer("stale", iso(NOW)), Wake.timer(waiting.wait["timer_id"] if waiting.wait else "", iso(NOW))):
        result = advance(flow, waiting, person(), wake, NOW).instance
        result.path.append(["x", "y", "z"])
        assert result.last_event is not None
        result.last_event["properties"]["total"] = 99
        assert waiting.to_doc() == before


def test_given_a_long_chain_when_max_steps_is_reached_then_the_instance_exits_with_step_limit() -> None:
    steps = {f"s{i}": send("t", f"s{i + 1}") for i in range(5)}
    steps["s5"] = EXIT
    flow = compiled(start="s0", steps=steps)
    who = person()
    progress = advance(flow, entered(flow), who, Wake.enter(), NOW, max_steps=3)
    assert (progress.instance.status, progress.instance.exit_reason) == ("exited", "step limit")
    assert progress.instance.step == "s3"
    assert progress.outcome == "exited: step limit"
    assert [m.origin.step for m in progress.messages] == ["s0", "s1", "s2"]
    assert progress.steps_run == 3
    assert [step for step, _ in outcomes(progress.instance)] == ["s0", "s1", "s2"]
    assert advance(flow, entered(flow), who, Wake.enter(), NOW, max_steps=6).instance.status == "completed"


def test_given_an_edited_journey_without_the_current_step_when_woken_then_the_instance_exits_saying_so() -> None:
    old = compiled(steps={"welcome": wait("1h", "done"), "done": EXIT})
    waiting = run(old)
    new = compile_journey(
        Journey.model_validate(
            {"id": "j1", "version": 2, **definition(start="hi", steps={"hi": send("t", "bye"), "bye": EXIT})}
        )
    )
    progress = advance(new, waiting.instance, person(), fire(waiting), NOW + timedelta(hours=1))
    assert progress.instance.status == "exited"
    assert progress.instance.exit_reason == "step 'welcome' is not a wait of this kind in version 2"
    assert progress.instance.journey_version == 2


def test_given_an_edited_journey_with_the_wait_when_it_resumes_then_the_new_steps_run_with_the_new_version() -> None:
    old = compiled(steps={"welcome": wait("1h", "done"), "done": EXIT})
    waiting = run(old)
    steps = {"welcome": wait("1h", "extra"), "extra": send("added", "done"), "done": EXIT}
    new = compile_journey(Journey.model_validate({"id": "j1", "version": 3, **definition(steps=steps)}))
    progress = advance(new, waiting.instance, person(), fire(waiting), NOW + timedelta(hours=1))
    assert [m.origin for m in progress.messages] == [Origin(kind="journey", id="j1", version=3, step="extra")]


def test_given_the_wrong_journey_or_no_step_budget_when_advancing_then_it_is_a_programming_error() -> None:
    flow = compiled()
    with pytest.raises(ValueError, match="advanced with journey"):
        advance(compiled("j2"), entered(flow), person(), Wake.enter(), NOW)
    with pytest.raises(ValueError, match="max_steps"):
        advance(flow, entered(flow), person(), Wake.enter(), NOW, max_steps=0)


def test_given_a_long_running_loop_when_it_has_run_many_times_then_the_path_keeps_only_the_last_entries() -> None:
    steps = {
        "welcome": check({"did": "Order Completed", "at_least": 1}, "done", "mail"),
        "mail": send("t", "nap"),
        "nap": wait("1d", "welcome"),
        "done": EXIT,
    }
    flow = compiled(steps=steps)
    progress = run(flow)
    for _ in range(40):
        progress = advance(flow, progress.instance, person(), fire(progress), NOW)
    assert len(progress.instance.path) == MAX_PATH
    assert progress.instance.seq == 3 + 40 * 3
    keys = {m.key for m in progress.messages}
    assert keys == {f"journey:j1:p1:1:mail:{progress.instance.seq - 1}"}


# ============================================================================== whole journeys
CART = {
    "name": "Abandoned cart",
    "entry": {"type": "event", "event": "Cart Abandoned"},
    "entry_conditions": {"path": "identities.email", "op": "exists", "value": True},
    "start": "wait-1h",
    "steps": {
        "wait-1h": wait("1h", "remind"),
        "remind": send("cart-reminder", "wait-1d"),
        "wait-1d": wait("1d", "big-cart"),
        "big-cart": check({"path": "event.properties.total", "op": "gte", "value": 100}, "coupon", "done"),
        "coupon": send("cart-coupon", "done", vars={"discount": 10}),
        "done": EXIT,
    },
    "exit_when": [{"event": "Order Completed"}],
    "reentry": {"mode": "cooldown", "days": 7},
}


def shopper() -> Profile:
    return person(identities={"user_id": ["user-p1"], "email": ["ada@example.com"]}, timezone="Europe/Paris")


def test_given_an_abandoned_cart_when_nobody_buys_then_reminders_go_out_in_order_and_it_completes() -> None:
    flow = compile_journey(Journey.model_validate({"id": "cart", **CART}))
    cart = tracked("Cart Abandoned", "m-cart", properties={"total": 180})
    key = entry_key_for(flow, "event.tracked", {"profileId": "p1", "event": cart}, shopper(), now=NOW)
    assert key == "event:m-cart"
    assert may_enter(flow, None, key, NOW) == (True, "first entry")
    instance = start_instance(flow, "p1", None, key, cart, NOW)

    first = advance(flow, instance, shopper(), Wake.enter(), NOW)
    assert (first.messages, first.timers[0].at) == ([], NOW + timedelta(hours=1))
    second = advance(flow, first.instance, shopper(), fire(first), first.timers[0].at)
    assert [m.template for m in second.messages] == ["cart-reminder"]
    assert second.timers[0].at == NOW + timedelta(hours=1, days=1)
    third = advance(flow, second.instance, shopper(), fire(second), second.timers[0].at)
    assert [(m.template, m.vars) for m in third.messages] == [("cart-coupon", {"discount": 10})]
    assert third.messages[0].event == cart
    assert third.instance.status == "completed"
    assert [step for step, _ in outcomes(third.instance)] == [
        "wait-1h",
        "wait-1h",
        "remind",
        "wait-1d",
        "wait-1d",
        "big-cart",
        "coupon",
        "done",
    ]
    keys = [m.key for m in second.messages + third.messages]
    assert keys == ["journey:cart:p1:1:remind:2", "journey:cart:p1:1:coupon:5"]

    blocked, why = may_enter(flow, third.instance, "event:m-cart-2", NOW + timedelta(days=2))
    assert blocked is False
    assert "may enter again from 2026-11-29T12:00:00.000Z" in why


def test_given_an_abandoned_cart_when_the_person_buys_after_the_reminder_then_nothing_more_is_sent() -> None:
    flow = compile_journey(Journey.model_validate({"id": "cart", **CART}))
    instance = start_instance(flow, "p1", None, "event:m-cart", tracked("Cart Abandoned", "m-cart"), NOW)
    first = advance(flow, instance, shopper(), Wake.enter(), NOW)
    second = advance(flow, first.instance, shopper(), fire(first), NOW + timedelta(hours=1))
    bought = advance(flow, second.instance, shopper(), Wake.on_event(tracked("Order Completed", "m-o")), NOW)
    assert bought.instance.exit_reason == "goal: Order Completed"
    after = advance(flow, bought.instance, shopper(), fire(second), NOW + timedelta(days=2))
    assert (after.messages, after.changed) == ([], False)
    assert may_enter(flow, bought.instance, "event:m-cart-2", NOW + timedelta(days=8)) == (True, "re-entry allowed")


def test_given_a_cart_without_an_email_when_abandoned_then_the_person_does_not_enter() -> None:
    flow = compile_journey(Journey.model_validate({"id": "cart", **CART}))
    detail = {"event": tracked("Cart Abandoned", "m-cart")}
    assert entry_key_for(flow, "event.tracked", detail, person(), now=NOW) is None


WELCOME = {
    "name": "Welcome series",
    "entry": {"type": "event", "event": "Signed Up"},
    "start": "hello",
    "steps": {
        "hello": send("welcome", "two-days"),
        "two-days": wait("2d", "plan"),
        "plan": check(IS_PRO, "pro-tips", "upgrade"),
        "pro-tips": send("pro-tips", "morning"),
        "upgrade": {
            "type": "send",
            "channels": ["push", "email"],
            "template": {"push": "upgrade-push", "email": "upgrade-email"},
            "next": "morning",
        },
        "morning": {"type": "wait", "until_time": "09:00", "next": "first-order"},
        "first-order": wait_for("Order Completed", "1w", "thanks", "discount"),
        "thanks": {"type": "update_profile", "add_tags": ["converted"], "next": "done"},
        "discount": send("discount", "done"),
        "done": EXIT,
    },
    "exit_when": [{"event": "Account Deleted"}],
}


def test_given_a_welcome_series_when_walked_by_its_timers_then_each_branch_and_wait_is_taken_in_order() -> None:
    flow = compile_journey(Journey.model_validate({"id": "welcome", **WELCOME}))
    newcomer = person(timezone="America/New_York", traits={"plan": "free"})
    instance = start_instance(flow, "p1", None, "event:m-s", tracked("Signed Up", "m-s"), NOW)

    hello = advance(flow, instance, newcomer, Wake.enter(), NOW)
    assert [m.template for m in hello.messages] == ["welcome"]
    two_days = NOW + timedelta(days=2)
    assert hello.timers[0].at == two_days
    plan = advance(flow, hello.instance, newcomer, fire(hello), two_days)
    assert [m.template for m in plan.messages] == [{"push": "upgrade-push", "email": "upgrade-email"}]
    assert plan.messages[0].channels == ["push", "email"]
    morning = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 09:00 in New York, two hours after the wait ends
    assert plan.timers[0].at == morning
    waiting = advance(flow, plan.instance, newcomer, fire(plan), morning)
    assert waiting.instance.wait is not None
    assert waiting.instance.wait["kind"] == "event"
    assert waiting.timers[0].at == morning + timedelta(weeks=1)
    timed_out = advance(flow, waiting.instance, newcomer, fire(waiting), morning + timedelta(weeks=1))
    assert [m.template for m in timed_out.messages] == ["discount"]
    assert timed_out.instance.status == "completed"
    every_id = [m.message_id for p in (hello, plan, waiting, timed_out) for m in p.messages]
    assert len(every_id) == len(set(every_id)) == 3

    ordered = advance(flow, waiting.instance, newcomer, Wake.on_event(tracked("Order Completed", "m-o")), morning)
    assert [e["event"] for e in ordered.events] == ["Tag Added"]
    assert ordered.events[0]["properties"] == {"tag": "converted", "journey": "welcome"}
    assert ordered.messages == []
    assert ordered.instance.exit_reason == "exit: done"


def test_given_a_welcome_series_when_the_account_is_deleted_midway_then_the_goal_ends_it() -> None:
    flow = compile_journey(Journey.model_validate({"id": "welcome", **WELCOME}))
    pro = person(traits={"plan": "pro"})
    hello = advance(flow, start_instance(flow, "p1", None, "event:m-s", None, NOW), pro, Wake.enter(), NOW)
    plan = advance(flow, hello.instance, pro, fire(hello), NOW + timedelta(days=2))
    assert [m.template for m in plan.messages] == ["pro-tips"]
    deleted = advance(flow, plan.instance, pro, Wake.on_event(tracked("Account Deleted")), NOW + timedelta(days=2))
    assert deleted.instance.status == "exited"
    assert advance(flow, deleted.instance, pro, fire(plan), NOW + timedelta(days=3)).changed is False


# ============================================================================== determinism, as a property
PLANS = st.sampled_from(["pro", "free", None])
ZONES = st.sampled_from(["UTC", "America/New_York", "Pacific/Auckland", "Asia/Kolkata"])
CONDITIONS = st.sampled_from(
    [
        IS_PRO,
        {"path": "event.properties.total", "op": "gt", "value": 50},
        {"path": "tags", "op": "contains", "value": "vip"},
        {"any": [IS_PRO, {"path": "event.name", "op": "eq", "value": "Order Completed"}]},
    ]
)


@st.composite
def valid_journeys(draw: st.DrawFn) -> Journey:
    """A random graph that validates: each step leads forward (to the next step and possibly
    further), so every step is reachable, nothing loops, and the last step is an exit."""
    count = draw(st.integers(2, 12))
    ids = [f"s{i}" for i in range(count)]
    steps: dict[str, Any] = {ids[-1]: EXIT}
    for i in range(count - 1):
        after = ids[i + 1]
        later = st.sampled_from(ids[i + 1 :])
        kind = draw(
            st.sampled_from(["send", "webhook", "update", "condition", "random", "duration", "clock", "event", "exit"])
        )
        if kind == "send":
            steps[ids[i]] = send("t", after, vars={"n": i})
        elif kind == "webhook":
            steps[ids[i]] = {"type": "webhook", "url": "https://hooks.example.com/j", "next": after}
        elif kind == "update":
            steps[ids[i]] = {"type": "update_profile", "add_tags": ["vip"], "set_traits": {"step": i}, "next": after}
        elif kind == "condition":
            steps[ids[i]] = check(draw(CONDITIONS), after, draw(later))
        elif kind == "random":
            cut = draw(st.integers(0, 10_000))
            branches = [{"percent": cut / 100, "next": after}, {"percent": (10_000 - cut) / 100, "next": draw(later)}]
            steps[ids[i]] = {"type": "random", "branches": branches}
        elif kind == "duration":
            steps[ids[i]] = wait(draw(st.sampled_from(["5m", "1h", "3d"])), after)
        elif kind == "clock":
            steps[ids[i]] = {
                "type": "wait",
                "until_time": draw(st.sampled_from(["00:00", "02:30", "23:59"])),
                "next": after,
            }
        elif kind == "event":
            steps[ids[i]] = wait_for("Order Completed", "2d", after, draw(later))
        else:
            steps[ids[i]] = EXIT
    # An early exit may leave later steps unreachable: keep only the ones the start still reaches.
    reachable, todo = set(), [ids[0]]
    while todo:
        step_id = todo.pop()
        if step_id not in reachable:
            reachable.add(step_id)
            todo.extend(str(v) for k, v in _targets(steps[step_id]))
    kept = {k: v for k, v in steps.items() if k in reachable}
    goals = draw(st.sampled_from([[], [{"event": "Account Deleted"}]]))
    return Journey.model_validate({"id": "prop", **definition(start=ids[0], steps=kept, exit_when=goals)})


def _targets(step: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found = [(k, step[k]) for k in ("next", "yes", "no", "on_event", "on_timeout") if step.get(k)]
    return found + [("branch", b["next"]) for b in step.get("branches", [])]


def _same(first: Progress, second: Progress) -> bool:
    return (
        first.instance.to_doc() == second.instance.to_doc()
        and [m.model_dump() for m in first.messages] == [m.model_dump() for m in second.messages]
        and first.events == second.events
        and first.timers == second.timers
        and (first.steps_run, first.outcome, first.changed) == (second.steps_run, second.outcome, second.changed)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition_=valid_journeys(), plan=PLANS, zone=ZONES, data=st.data())
def test_any_valid_journey_walks_deterministically_without_touching_its_input_and_with_unique_ids(
    definition_: Journey, plan: str | None, zone: str, data: st.DataObject
) -> None:
    assert validate_journey(definition_) == []
    flow = compile_journey(definition_)
    who = person(traits={"plan": plan} if plan else {}, timezone=zone, tags=["vip"] if plan == "pro" else [])
    entry = tracked("Signed Up", "m-in", properties={"total": data.draw(st.integers(0, 100))})
    instance = start_instance(flow, "p1", None, "event:m-in", entry, NOW)
    wake, now = Wake.enter(), NOW
    seen_ids: set[str] = set()
    for _ in range(4 * len(definition_.steps) + 4):
        before = instance.to_doc()
        progress = advance(flow, instance, who, wake, now)
        assert _same(progress, advance(flow, instance, who, wake, now))
        assert instance.to_doc() == before
        ids = [m.message_id for m in progress.messages] + [e["messageId"] for e in progress.events]
        assert seen_ids.isdisjoint(ids)
        assert len(ids) == len(set(ids))
        seen_ids.update(ids)
        assert progress.instance.seq == instance.seq + progress.steps_run
        ran = progress.instance.path[len(progress.instance.path) - progress.steps_run :] if progress.steps_run else []
        resumed = ("timer fired", "timed out", "event: ", "exited: ")
        assert not any(outcome.startswith(resumed) for _, _, outcome in ran)
        instance = progress.instance
        if not instance.in_progress:
            break
        assert instance.wait is not None
        assert [t.timer_id for t in progress.timers] in ([], [instance.wait["timer_id"]])
        due = parse_iso(instance.wait["until"])
        choices = [Wake.timer(instance.wait["timer_id"], instance.wait["until"]), Wake.timer("stale", iso(now))]
        if instance.wait["kind"] == "event":
            choices.append(Wake.on_event(tracked("Order Completed", f"m-{instance.seq}")))
        if definition_.exit_when:
            choices.append(Wake.on_event(tracked("Account Deleted", f"m-x{instance.seq}")))
        choices.append(Wake.on_event(tracked("Page Viewed", f"m-p{instance.seq}")))
        wake = data.draw(st.sampled_from(choices))
        now = due if wake.kind == "timer" else now + timedelta(minutes=1)
    for _ in range(len(definition_.steps)):  # when the noise used up the turns, the timers finish it
        if not instance.in_progress:
            break
        assert instance.wait is not None
        wake = Wake.timer(instance.wait["timer_id"], instance.wait["until"])
        instance = advance(flow, instance, who, wake, now).instance
    assert instance.status in ("completed", "exited")
    assert instance.ended_at is not None


def test_given_a_send_step_naming_an_experiment_when_run_then_its_message_names_it_for_the_deliverer() -> None:
    flow = compiled(steps={"welcome": send("welcome", "done", experiment="welcome-subjects"), "done": EXIT})
    progress = run(flow, event=tracked("Signed Up", "m7"))
    assert [m.experiment for m in progress.messages] == ["welcome-subjects"]


# ============================================================================== a random step split by an experiment
def _split_experiment(status: str) -> Experiment:
    draft = Experiment.model_validate(
        {
            "id": "onboarding",
            "name": "Onboarding paths",
            "target": {"kind": "journey", "id": "j1"},
            "arms": [{"id": "short", "weight": 1}, {"id": "long", "weight": 1}],
            "goal": "purchase",
            "metrics": [{"id": "purchase", "kind": "conversion", "event": "Order Completed"}],
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    return experiment_start(draft, NOW) if status == "running" else draft


SPLIT_STEPS: dict[str, Any] = {
    "pick": {
        "type": "random",
        "experiment": "onboarding",
        "branches": [{"arm": "short", "next": "quick"}, {"arm": "long", "next": "slow"}],
    },
    "quick": send("quick", "done"),
    "slow": send("slow", "done"),
    "done": EXIT,
}


def test_given_a_split_by_an_experiment_when_run_then_each_person_takes_their_arms_branch_and_is_exposed() -> None:
    flow = compiled(start="pick", steps=SPLIT_STEPS)
    running = _split_experiment("running")
    taken: Counter[str] = Counter()
    for n in range(400):
        who = dataclasses.replace(person(), id=f"p{n}")
        instance = start_instance(flow, who.id, None, "event:m0", None, NOW)
        progress = advance(flow, instance, who, Wake.enter(), NOW, arms=lambda e, p: dealt_arm(running, p))
        arm = assign(Split.of([("short", 1), ("long", 1)]), "onboarding", 1, who.id)
        assert [m.template for m in progress.messages] == ["quick" if arm == "short" else "slow"]
        assert progress.exposures == [Dealt("onboarding", 1, arm)]
        taken[arm] += 1
    assert 150 < taken["short"] < 250


def test_given_an_experiment_not_running_or_missing_when_a_split_step_runs_then_nobody_is_exposed() -> None:
    flow = compiled(start="pick", steps=SPLIT_STEPS)
    draft = _split_experiment("draft")
    not_running = advance(
        flow,
        start_instance(flow, "p1", None, "event:m0", None, NOW),
        person(),
        Wake.enter(),
        NOW,
        arms=lambda e, p: dealt_arm(draft, p),
    )
    assert [m.template for m in not_running.messages] == ["quick"]  # the control arm's branch
    assert not_running.exposures == []
    missing = advance(
        flow,
        start_instance(flow, "p1", None, "event:m0", None, NOW),
        person(),
        Wake.enter(),
        NOW,
        arms=lambda e, p: None,
    )
    assert [m.template for m in missing.messages] == ["quick"] and missing.exposures == []
    assert "not found" in missing.instance.path[0][2]


def test_given_a_split_step_whose_branches_do_not_each_name_an_arm_when_validated_then_it_is_refused() -> None:
    steps = {
        **SPLIT_STEPS,
        "pick": {**SPLIT_STEPS["pick"], "branches": [{"arm": "short", "next": "quick"}, {"next": "slow"}]},
    }
    assert locations(issues_of(start="pick", steps=steps)) == ["/steps/pick/branches"]
    assert issues_of(start="pick", steps=SPLIT_STEPS) == []
