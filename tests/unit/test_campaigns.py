"""Campaigns: the definition model and its refusals, the status machine, audience, holdout and
variant assignment (proportions, independence, stability), run ids, local-time sends across
zones and DST, planning one recipient, pacing, stats, conversion attribution and validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from midstage.logic.campaigns import (
    ACTIONS,
    BLOCK_CODES,
    LOCAL_TIME_GRACE,
    MAX_PACE_WAIT,
    OTHER,
    CampaignStateError,
    attribute,
    blocked_counter,
    converted_key,
    first_fire_for_local_time,
    in_audience,
    in_holdout,
    last_local_time,
    local_send_time,
    next_fire,
    pace,
    plan_recipient,
    reason_code,
    revenue_of,
    run_id_for,
    scheduler_spec,
    send_at,
    share_of_rate,
    stats_view,
    transition,
    validate_campaign,
    variant_for,
)
from midstage.logic.delivery import consent_refusal
from midstage.logic.schedules import occurrences
from midstage.logic.timefmt import iso
from midstage.models.campaigns import CAMPAIGN_STATUSES, Audience, Campaign, CampaignBody, Conversion, Variant
from midstage.models.messaging import message_id_for
from midstage.models.profile import Profile

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
FIRED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ZONES = ("Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC")


# ------------------------------------------------------------------------------ builders
def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Winter sale",
        "audience": {"segments": ["vip", "newsletter"], "exclude": ["churned"]},
        "message": {"channels": ["email", "sms"], "template": "winter", "vars": {"discount": 10, "season": "winter"}},
        "schedule": {"type": "once", "at": "2026-12-01T10:00:00+01:00"},
    }
    base.update(fields)
    return base


def campaign(campaign_id: str = "winter-sale", **fields: Any) -> Campaign:
    return Campaign.model_validate({"id": campaign_id, **body(**fields)})


def person(profile_id: str = "p1", segments: tuple[str, ...] = ("vip",), **fields: Any) -> Profile:
    return Profile(
        id=profile_id,
        created_at="2026-01-01T00:00:00.000Z",
        segments=dict.fromkeys(segments, "2026-01-01T00:00:00.000Z"),
        **fields,
    )


def ids(count: int, prefix: str = "profile") -> list[str]:
    return [f"{prefix}-{n}" for n in range(count)]


VARIANTS = [
    Variant(id="a", percent=50),
    Variant(id="b", percent=30, template="winter-b", vars={"discount": 15}),
    Variant(id="c", percent=20),
]


def refusal(payload: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        CampaignBody.model_validate(payload)
    return str(caught.value)


# ------------------------------------------------------------------------------ the model
def test_given_a_complete_body_when_parsed_then_every_part_is_kept_and_defaults_fill_the_rest() -> None:
    parsed = CampaignBody.model_validate(
        body(
            variants=[{"id": "a", "percent": 50}, {"id": "b", "percent": 50, "template": {"email": "e", "sms": "s"}}],
            holdout_percent=10,
            send_rate=200,
            max_messages=5000,
            conversion={"event": "Order Completed", "window": "7d", "revenue_property": "order.total"},
        )
    )

    assert parsed.audience.exclude == ["churned"]
    assert parsed.message.category == "marketing"
    assert parsed.variants is not None and parsed.variants[1].template == {"email": "e", "sms": "s"}
    assert parsed.conversion is not None and parsed.conversion.window_length() == timedelta(days=7)
    assert (parsed.send_rate, parsed.max_messages, parsed.holdout_percent) == (200, 5000, 10)
    defaults = CampaignBody.model_validate(body())
    assert (defaults.send_rate, defaults.max_messages, defaults.conversion, defaults.variants) == (50, None, None, None)
    assert Conversion(event="Signed Up").window == "3d"


def test_given_a_stored_campaign_when_loaded_then_it_starts_as_a_draft_and_ignores_bookkeeping_it_does_not_know() -> (
    None
):
    stored = Campaign.model_validate({"id": "c1", "legacy": True, **body()})

    assert (stored.status, stored.version) == ("draft", 1)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CampaignBody.model_validate({**body(), "owner": "someone"})


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ({"name": ""}, "at least 1 character"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"audience": {"segments": []}}, "at least 1 item"),
        ({"audience": {"segments": [f"s{n}" for n in range(11)]}}, "at most 10 items"),
        ({"audience": {"segments": ["vip"], "exclude": [f"s{n}" for n in range(11)]}}, "at most 10 items"),
        ({"audience": {"segments": ["VIP"]}}, "should match pattern"),
        ({"audience": {"segments": ["a" * 65]}}, "should match pattern"),
        ({"audience": {"segments": ["../x"]}}, "should match pattern"),
        ({"audience": {"segments": ["vip", "vip"]}}, "listed twice in `segments`"),
        ({"audience": {"segments": ["vip"], "exclude": ["x", "x"]}}, "listed twice in `exclude`"),
        ({"audience": {"segments": ["vip", "eu"], "exclude": ["eu"]}}, "eu cannot be both targeted and excluded"),
        ({"message": {"channels": [], "template": "t"}}, "at least 1 item"),
        ({"message": {"channels": ["email", "webhook"], "template": "t"}}, "webhook is not one of its channels"),
        ({"message": {"channels": ["email", "email"], "template": "t"}}, "a channel is listed twice"),
        ({"message": {"channels": ["fax"], "template": "t"}}, "Input should be"),
        ({"message": {"channels": ["email"], "template": "Bad Id!"}}, "not a template id"),
        ({"message": {"channels": ["email", "sms"], "template": {"email": "e"}}}, "has no template for sms"),
        (
            {"message": {"channels": ["email"], "template": {"email": "e", "push": "p"}}},
            "names a template for push, which is not among the channels",
        ),
        ({"message": {"channels": ["email"], "template": "t", "vars": {"x": "y" * 20_000}}}, "larger than 16000"),
        ({"variants": [{"id": "a", "percent": 50}]}, "at least 2 items"),
        ({"variants": [{"id": f"v{n}", "percent": 100 / 6} for n in range(6)]}, "at most 5 items"),
        ({"variants": [{"id": "a", "percent": 60}, {"id": "b", "percent": 30}]}, "add up to 90, not 100"),
        ({"variants": [{"id": "a", "percent": 60}, {"id": "b", "percent": 60}]}, "add up to 120, not 100"),
        ({"variants": [{"id": "a", "percent": 33.333}, {"id": "b", "percent": 66.667}]}, "more than two decimals"),
        ({"variants": [{"id": "a", "percent": 50}, {"id": "a", "percent": 50}]}, "a variant id is used twice"),
        ({"variants": [{"id": "a", "percent": 0}, {"id": "b", "percent": 100}]}, "greater than 0"),
        ({"variants": [{"id": "A!", "percent": 50}, {"id": "b", "percent": 50}]}, "should match pattern"),
        (
            {"variants": [{"id": "a", "percent": 50}, {"id": "b", "percent": 50, "template": {"email": "x"}}]},
            "variant b has no template for sms",
        ),
        ({"holdout_percent": 51}, "less than or equal to 50"),
        ({"holdout_percent": -1}, "greater than or equal to 0"),
        ({"holdout_percent": float("nan")}, "finite number"),
        ({"holdout_percent": True}, "valid number"),
        ({"send_rate": 0}, "greater than or equal to 1"),
        ({"send_rate": 10_001}, "less than or equal to 10000"),
        ({"send_rate": True}, "valid integer"),
        ({"send_rate": "50"}, "valid integer"),
        ({"max_messages": 0}, "greater than or equal to 1"),
        ({"conversion": {"event": ""}}, "at least 1 character"),
        ({"conversion": {"event": "Order", "window": "31d"}}, "from 1h to 30d"),
        ({"conversion": {"event": "Order", "window": "0h"}}, "not a window"),
        ({"conversion": {"event": "Order", "window": "2w"}}, "not a window"),
        ({"conversion": {"event": "Order", "window": "3 days"}}, "not a window"),
        ({"conversion": {"event": "Order", "revenue_property": "order..total"}}, "should match pattern"),
        ({"schedule": {"type": "weekly"}}, "does not match any of the expected tags"),
        ({"schedule": {"type": "once", "at": "2026-12-01T10:00:00"}}, "needs a UTC offset"),
        ({"schedule": {"type": "once", "at": "tomorrow"}}, "not an ISO 8601 timestamp"),
        ({"schedule": {"type": "local_time", "date": "2026-02-30", "time": "10:00"}}, "not a date in the calendar"),
        ({"schedule": {"type": "local_time", "date": "2026-12-01", "time": "24:00"}}, "should match pattern"),
        ({"schedule": {"type": "local_time", "date": "2026-12-01", "time": "9:00"}}, "should match pattern"),
        (
            {
                "schedule": {
                    "type": "recurring",
                    "expression": "rate(1 day)",
                    "start": "2026-12-02T00:00:00Z",
                    "end": "2026-12-01T00:00:00Z",
                }
            },
            "`end` must be after `start`",
        ),
        ({"schedule": {"type": "recurring", "expression": "x" * 257}}, "at most 256 characters"),
    ],
)
def test_given_hostile_or_broken_input_when_parsed_then_the_model_refuses_it_and_says_why(
    patch: dict[str, Any], why: str
) -> None:
    assert why in refusal(body(**patch))


def test_given_vars_nested_without_end_when_parsed_then_they_are_refused_without_recursing() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(5000):
        cursor["x"] = {}
        cursor = cursor["x"]

    assert "nested deeper than 10 levels" in refusal(
        body(message={"channels": ["email"], "template": "t", "vars": deep})
    )


def test_given_three_way_shares_in_hundredths_when_parsed_then_they_are_accepted() -> None:
    parsed = CampaignBody.model_validate(
        body(variants=[{"id": "a", "percent": 33.33}, {"id": "b", "percent": 33.33}, {"id": "c", "percent": 33.34}])
    )

    assert parsed.variants is not None
    assert [variant.hundredths for variant in parsed.variants] == [3333, 3333, 3334]


# ------------------------------------------------------------------------------ status
EXPECTED_MOVES = {
    ("draft", "schedule"): "scheduled",
    ("draft", "cancel"): "cancelled",
    ("scheduled", "schedule"): "scheduled",
    ("scheduled", "start"): "running",
    ("scheduled", "pause"): "paused",
    ("scheduled", "resume"): "scheduled",
    ("scheduled", "cancel"): "cancelled",
    ("scheduled", "complete"): "completed",
    ("running", "start"): "running",
    ("running", "pause"): "paused",
    ("running", "resume"): "running",
    ("running", "cancel"): "cancelled",
    ("running", "complete"): "completed",
    ("paused", "pause"): "paused",
    ("paused", "resume"): "scheduled",
    ("paused", "cancel"): "cancelled",
    ("completed", "complete"): "completed",
    ("cancelled", "cancel"): "cancelled",
}


@pytest.mark.parametrize("status", CAMPAIGN_STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_given_every_status_and_action_when_applied_then_it_moves_as_the_table_says_or_is_refused_with_409(
    status: Any, action: Any
) -> None:
    expected = EXPECTED_MOVES.get((status, action))
    if expected is not None:
        assert transition(status, action) == expected
        return
    with pytest.raises(CampaignStateError) as caught:
        transition(status, action)
    assert (caught.value.status, caught.value.code) == (409, "invalid_state")
    assert caught.value.message.startswith(f"cannot {action}")


@pytest.mark.parametrize(
    ("status", "action", "why"),
    [
        ("draft", "pause", "a draft is not sending, so there is nothing to pause: schedule it first"),
        ("draft", "start", "schedule it first"),
        ("cancelled", "resume", "cannot resume a cancelled campaign"),
        ("completed", "schedule", "cannot schedule a completed campaign"),
        ("paused", "start", "resumed"),
        ("running", "schedule", "pause it before changing its schedule"),
    ],
)
def test_given_a_refused_action_when_applied_then_the_message_says_what_to_do(
    status: Any, action: Any, why: str
) -> None:
    with pytest.raises(CampaignStateError, match=why):
        transition(status, action)


def test_given_a_recurring_run_that_ends_with_runs_to_come_when_completed_then_the_campaign_stays_scheduled() -> None:
    assert transition("running", "complete", more_runs=True) == "scheduled"
    assert transition("running", "complete", more_runs=False) == "completed"
    with pytest.raises(CampaignStateError):
        transition("paused", "complete", more_runs=True)


# ------------------------------------------------------------------------------ audience
@pytest.mark.parametrize(
    ("memberships", "included"),
    [
        ({"vip": "t"}, True),
        ({"newsletter": "t"}, True),
        ({"vip": "t", "newsletter": "t"}, True),
        ({"vip": "t", "churned": "t"}, False),
        ({"churned": "t"}, False),
        ({"other": "t"}, False),
        ({}, False),
    ],
)
def test_given_memberships_when_matched_then_any_listed_segment_counts_and_any_excluded_one_wins(
    memberships: dict[str, str], included: bool
) -> None:
    audience = Audience(segments=["vip", "newsletter"], exclude=["churned"])

    assert in_audience(memberships, audience) is included


# ------------------------------------------------------------------------------ holdout and variants
def test_given_100k_people_when_held_out_at_10_percent_then_the_share_is_within_a_few_per_mille() -> None:
    held = sum(in_holdout("winter-sale", profile_id, 10) for profile_id in ids(100_000))

    assert abs(held / 100_000 - 0.10) < 0.004


def test_given_100k_people_when_split_50_30_20_then_each_variant_gets_its_share_within_a_few_per_mille() -> None:
    shares = Counter(variant_for("winter-sale", p, VARIANTS).id for p in ids(100_000))

    for variant in VARIANTS:
        assert abs(shares[variant.id] / 100_000 - variant.percent / 100) < 0.005, shares


def test_given_100k_people_when_held_out_and_split_then_the_holdout_is_a_fair_sample_of_every_variant() -> None:
    people = ids(100_000)
    held = {p for p in people if in_holdout("winter-sale", p, 20)}
    joint = Counter((p in held, variant_for("winter-sale", p, VARIANTS).id) for p in people)

    for variant in VARIANTS:
        # Independent draws: P(held and variant) = P(held) * P(variant).
        expected = len(held) / len(people) * variant.percent / 100
        assert abs(joint[(True, variant.id)] / len(people) - expected) < 0.003, joint
        inside = joint[(True, variant.id)] / len(held)
        assert abs(inside - variant.percent / 100) < 0.015, joint


def test_given_two_campaigns_when_holding_out_then_their_control_groups_are_drawn_independently() -> None:
    people = ids(50_000)
    first = {p for p in people if in_holdout("winter-sale", p, 10)}
    second = {p for p in people if in_holdout("spring-sale", p, 10)}

    assert abs(len(first & second) / len(people) - 0.01) < 0.003


def test_given_a_larger_holdout_when_compared_then_everyone_held_out_at_the_smaller_one_still_is() -> None:
    people = ids(20_000)
    small = {p for p in people if in_holdout("winter-sale", p, 5)}
    large = {p for p in people if in_holdout("winter-sale", p, 25)}

    assert small < large


def test_given_no_holdout_or_no_variants_when_asked_then_no_one_is_held_out_and_there_is_no_variant() -> None:
    assert not any(in_holdout("winter-sale", p, 0) for p in ids(10_000))
    assert variant_for("winter-sale", "p1", None) is None
    assert variant_for("winter-sale", "p1", []) is None


_STABILITY_SCRIPT = """
import json, sys
from midstage.logic.campaigns import in_holdout, variant_for
from midstage.models.campaigns import Variant
variants = [Variant(id="a", percent=50), Variant(id="b", percent=30), Variant(id="c", percent=20)]
people = [f"profile-{n}" for n in range(2000)]
print(json.dumps([[in_holdout("winter-sale", p, 10), variant_for("winter-sale", p, variants).id] for p in people]))
"""


def test_given_the_same_ids_when_assigned_in_another_process_then_every_answer_is_the_same() -> None:
    here = [[in_holdout("winter-sale", p, 10), variant_for("winter-sale", p, VARIANTS).id] for p in ids(2000)]

    # A different hash seed would change anything built on Python's hash(); a stable hash ignores it.
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    run = subprocess.run([sys.executable, "-c", _STABILITY_SCRIPT], capture_output=True, text=True, env=environment)

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == here


# ------------------------------------------------------------------------------ run ids
def test_given_a_schedule_that_fires_twice_in_its_minute_when_named_then_both_fires_are_one_run() -> None:
    first = run_id_for(datetime(2026, 12, 1, 10, 0, 2, tzinfo=UTC))
    again = run_id_for(datetime(2026, 12, 1, 10, 0, 41, tzinfo=UTC))

    assert first == again == "r20261201T1000Z"


def test_given_two_occurrences_of_a_recurring_schedule_when_named_then_their_runs_differ() -> None:
    fired = occurrences("cron(0 10 * * ? *)", "Europe/Paris", NOW, 3)

    assert len({run_id_for(moment) for moment in fired}) == 3


def test_given_a_time_in_another_zone_when_named_then_the_run_id_is_its_utc_minute() -> None:
    assert run_id_for(datetime(2026, 12, 1, 11, 0, tzinfo=ZoneInfo("Europe/Paris"))) == "r20261201T1000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        run_id_for(datetime(2026, 12, 1, 10, 0))


# ------------------------------------------------------------------------------ local time
DAY, TEN = date(2026, 12, 1), time(10, 0)


def test_given_a_local_time_when_it_first_happens_then_that_is_in_kiritimati_at_utc_plus_14() -> None:
    first = first_fire_for_local_time(DAY, TEN)

    assert first == datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    assert local_send_time(DAY, TEN, "Pacific/Kiritimati") == first


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Pacific/Kiritimati", datetime(2026, 11, 30, 20, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 12, 1, 4, 30, tzinfo=UTC)),
        ("Europe/Paris", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("UTC", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 12, 1, 15, 0, tzinfo=UTC)),
        ("Pacific/Pago_Pago", datetime(2026, 12, 1, 21, 0, tzinfo=UTC)),
    ],
)
def test_given_zones_around_the_world_when_sending_at_ten_then_each_gets_its_own_ten(
    zone: str, expected: datetime
) -> None:
    sent = local_send_time(DAY, TEN, zone)

    assert sent == expected
    assert sent.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M") == "2026-12-01 10:00"


@pytest.mark.parametrize(
    ("day", "clock", "zone", "expected", "local_reading"),
    [
        (date(2026, 3, 29), time(2, 30), "Europe/Paris", datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "03:30"),
        (date(2026, 10, 25), time(2, 30), "Europe/Paris", datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "02:30"),
        (date(2026, 3, 8), time(2, 30), "America/New_York", datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "03:30"),
        (date(2026, 11, 1), time(1, 30), "America/New_York", datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "01:30"),
    ],
)
def test_given_a_local_time_the_clocks_skip_or_repeat_when_sent_then_it_moves_forward_or_takes_the_first(
    day: date, clock: time, zone: str, expected: datetime, local_reading: str
) -> None:
    sent = local_send_time(day, clock, zone)

    assert sent == expected
    assert sent.astimezone(ZoneInfo(zone)).strftime("%H:%M") == local_reading
    if local_reading == clock.strftime("%H:%M"):  # a repeated time: the first of its two instants
        assert sent.astimezone(ZoneInfo(zone)).fold == 0
        second = datetime.combine(day, clock, tzinfo=ZoneInfo(zone)).replace(fold=1).astimezone(UTC)
        assert second - sent == timedelta(hours=1)


@pytest.mark.parametrize("day", [date(2026, 12, 1), date(2026, 3, 29), date(2026, 11, 1), date(2026, 6, 21)])
def test_given_every_zone_when_sending_at_a_local_time_then_it_falls_between_the_first_and_last_fire(day: date) -> None:
    import importlib.resources

    zones = importlib.resources.files("tzdata").joinpath("zones").read_text().split()

    for zone in zones:
        sent = local_send_time(day, TEN, zone)
        assert first_fire_for_local_time(day, TEN) <= sent <= last_local_time(day, TEN), zone


def local_campaign(**fields: Any) -> Campaign:
    return campaign(schedule={"type": "local_time", "date": "2026-12-01", "time": "10:00"}, **fields)


def test_given_a_one_time_campaign_when_asked_when_to_send_then_it_is_now() -> None:
    assert send_at(campaign(), person(), FIRED, "UTC") is None


def test_given_a_local_time_campaign_fired_on_time_when_asked_then_each_person_waits_for_their_own_ten() -> None:
    first = first_fire_for_local_time(DAY, TEN)

    assert send_at(local_campaign(), person(timezone="Pacific/Pago_Pago"), first) == datetime(
        2026, 12, 1, 21, 0, tzinfo=UTC
    )
    assert send_at(local_campaign(), person(timezone="Pacific/Kiritimati"), first) is None  # it is ten there now


def test_given_a_local_time_passed_within_the_grace_period_when_asked_then_it_is_sent_now() -> None:
    paris_ten = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    assert send_at(local_campaign(), person(timezone="Europe/Paris"), paris_ten + LOCAL_TIME_GRACE) is None
    beyond = paris_ten + LOCAL_TIME_GRACE + timedelta(seconds=1)
    assert send_at(local_campaign(), person(timezone="Europe/Paris"), beyond) == "missed"


def test_given_where_a_zone_is_known_when_asked_then_the_trait_then_the_profile_then_the_default_decides() -> None:
    early = first_fire_for_local_time(DAY, TEN)
    trait_and_profile = person(traits={"timezone": "Asia/Kolkata"}, timezone="America/New_York")
    profile_only = person(timezone="America/New_York")
    unknown = person(timezone="Not/AZone")

    assert send_at(local_campaign(), trait_and_profile, early, "UTC") == datetime(2026, 12, 1, 4, 30, tzinfo=UTC)
    assert send_at(local_campaign(), profile_only, early, "UTC") == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert send_at(local_campaign(), unknown, early, "Europe/Paris") == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------ planning one person
def test_given_someone_outside_the_audience_when_planned_then_nothing_is_sent() -> None:
    for profile in (person(segments=("other",)), person(segments=("vip", "churned")), person(merged_into="p9")):
        planned = plan_recipient(campaign(), profile, "r20261201T0900Z", FIRED)
        assert (planned.decision, planned.request) == ("not_in_audience", None)


def test_given_a_member_when_planned_then_the_request_names_the_campaign_run_and_person() -> None:
    planned = plan_recipient(campaign(), person("p1"), "r20261201T0900Z", FIRED, now=FIRED + timedelta(minutes=3))

    request = planned.request
    assert planned.decision == "send" and request is not None and planned.send_at is None
    assert request.key == "campaign:winter-sale:r20261201T0900Z:p1"
    assert (request.origin.kind, request.origin.id, request.origin.version, request.origin.step) == (
        "campaign",
        "winter-sale",
        1,
        "main",
    )
    assert (request.channels, request.category, request.template) == (["email", "sms"], "marketing", "winter")
    assert request.vars == {"discount": 10, "season": "winter"}
    assert request.requested_at == "2026-12-01T09:03:00.000Z"


def test_given_the_same_person_when_planned_again_or_in_another_run_then_the_message_id_repeats_only_within_a_run() -> (
    None
):
    first = plan_recipient(campaign(), person("p1"), "r20261201T0900Z", FIRED).request
    again = plan_recipient(campaign(), person("p1"), "r20261201T0900Z", FIRED + timedelta(minutes=5)).request
    next_run = plan_recipient(campaign(), person("p1"), "r20261208T0900Z", FIRED).request

    assert first is not None and again is not None and next_run is not None
    assert first.message_id == again.message_id == message_id_for("campaign:winter-sale:r20261201T0900Z:p1")
    assert next_run.message_id != first.message_id


def test_given_variants_when_planned_then_each_person_gets_their_variants_template_and_merged_vars() -> None:
    split = campaign(
        variants=[v.model_dump() for v in VARIANTS],
    )
    seen: dict[str, Any] = {}
    for profile_id in ids(200):
        planned = plan_recipient(split, person(profile_id), "r1", FIRED)
        assert planned.request is not None and planned.variant is not None
        assert planned.variant.id == variant_for(split.id, profile_id, split.variants).id
        seen[planned.variant.id] = planned.request

    assert seen.keys() == {"a", "b", "c"}
    assert (seen["a"].template, seen["a"].vars, seen["a"].origin.step) == (
        "winter",
        {"discount": 10, "season": "winter"},
        "a",
    )
    assert (seen["b"].template, seen["b"].vars, seen["b"].origin.step) == (
        "winter-b",
        {"discount": 15, "season": "winter"},
        "b",
    )


def test_given_a_holdout_when_planned_then_the_control_group_is_counted_and_not_messaged() -> None:
    halved = campaign(holdout_percent=50)
    plans = [plan_recipient(halved, person(p), "r1", FIRED) for p in ids(400)]

    held = [plan for plan in plans if plan.decision == "held_out"]
    assert held and len(held) < len(plans)
    assert all(plan.request is None and plan.variant is None for plan in held)
    assert all(in_holdout("winter-sale", plan.profile_id, 50) for plan in held)
    assert all(plan.decision == "send" for plan in plans if not in_holdout("winter-sale", plan.profile_id, 50))


def test_given_a_local_time_campaign_when_planned_then_the_request_waits_for_the_persons_ten() -> None:
    planned = plan_recipient(
        local_campaign(), person(timezone="America/New_York"), "r1", first_fire_for_local_time(DAY, TEN)
    )

    assert planned.decision == "send"
    assert planned.send_at == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def test_given_a_local_time_run_fired_very_late_when_planned_then_passed_zones_are_missed_before_the_holdout() -> None:
    late = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # Paris's 10:00 passed 11 hours ago, Pago Pago's is ahead
    halved = local_campaign(holdout_percent=50)

    paris = [plan_recipient(halved, person(p, timezone="Europe/Paris"), "r1", late) for p in ids(100)]
    pago = [plan_recipient(halved, person(p, timezone="Pacific/Pago_Pago"), "r1", late) for p in ids(100)]

    assert {plan.decision for plan in paris} == {"missed"}
    assert {plan.decision for plan in pago} == {"send", "held_out"}


# ------------------------------------------------------------------------------ pacing
def test_given_a_fresh_worker_when_pacing_then_the_first_message_goes_at_once() -> None:
    assert pace(0, 1000.0, 10.0, 1000.0) == 0.0


def test_given_a_worker_ahead_of_its_rate_when_pacing_then_it_waits_until_the_next_message_is_due() -> None:
    assert pace(50, 1000.0, 10.0, 1002.0) == pytest.approx(3.0)


def test_given_a_worker_behind_its_rate_when_pacing_then_it_does_not_wait() -> None:
    assert pace(50, 1000.0, 10.0, 1010.0) == 0.0


def test_given_a_long_wait_ahead_when_pacing_then_one_wait_is_at_most_the_bound() -> None:
    assert pace(10_000, 1000.0, 1.0, 1000.0) == MAX_PACE_WAIT


def test_given_a_clock_that_went_backwards_when_pacing_then_the_wait_stays_bounded() -> None:
    assert 0.0 <= pace(5, 1000.0, 10.0, 10.0) <= MAX_PACE_WAIT


def test_given_bad_pacing_input_when_asked_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        pace(0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="negative"):
        pace(-1, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        pace(0, float("nan"), 1.0, 0.0)


def test_given_workers_when_sharing_a_rate_then_each_holds_its_part() -> None:
    assert share_of_rate(50, 4) == 12.5
    assert share_of_rate(10_000, 1) == 10_000
    with pytest.raises(ValueError, match="workers"):
        share_of_rate(50, 0)
    with pytest.raises(ValueError, match="send_rate"):
        share_of_rate(0, 4)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=0.05, max_value=5000),
    batches=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=80),
    stalls=st.lists(st.floats(min_value=0, max_value=3), min_size=80, max_size=80),
)
def test_given_a_worker_that_follows_pace_when_it_queues_then_it_never_runs_ahead_of_its_rate_nor_idles(
    rate: float, batches: list[int], stalls: list[float]
) -> None:
    started, clock, queued = 500.0, 500.0, 0
    for batch, stall in zip(batches, stalls, strict=False):
        before = clock
        while (wait := pace(queued, started, rate, clock)) > 0:
            assert wait <= MAX_PACE_WAIT
            clock += wait
        # It waited exactly until everything queued so far was due, not longer, never less.
        assert clock == pytest.approx(max(before, started + queued / rate), abs=1e-6)
        assert queued <= rate * (clock - started) + 1e-6
        queued += batch
        clock += stall  # scanning and queuing take time


# ------------------------------------------------------------------------------ reasons and stats
@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (consent_refusal(person(), "email", "marketing", "opt_in") + " [email]", "no_consent"),
        ("suppressed: ann@example.com (hard_bounce) [email]", "suppressed"),
        ("frequency_cap: 3 marketing message(s) per 7 days on all channels", "frequency_cap"),
        ("quiet_hours: deferred to 2026-12-01T07:00:00.000Z (Europe/Paris 08:00)", "quiet_hours"),
        ("no_address: the person has no phone number [sms]", "no_address"),
        ("no_profile: the person does not exist", "no_profile"),
        ("offer_refused: pool_exhausted (the template needs vars.coupon)", "offer_refused"),
        ("render: undefined variable 'x'", OTHER),
        ("permanent: mailbox does not exist", OTHER),
        ("no approved template 'winter'", OTHER),
        ("", OTHER),
    ],
)
def test_given_a_ledger_reason_when_coded_then_its_guard_is_named(reason: str, code: str) -> None:
    assert reason_code(reason) == code
    assert blocked_counter(reason) == f"blocked:{code}"


def test_given_no_counters_when_shaped_then_everything_is_zero_and_no_rate_divides_by_zero() -> None:
    view = stats_view({})

    for name in ("targeted", "held_out", "capped", "queued", "sent", "failed", "deferred", "delivered", "opened"):
        assert view[name] == 0
    assert view["blocked"] == dict.fromkeys((*BLOCK_CODES, OTHER), 0)
    assert (view["revenue"], view["holdout_revenue"]) == ("0", "0")
    assert view["conversion_rate"] is None
    assert view["holdout_conversion_rate"] is None
    assert view["lift"] is None
    assert view["conversion"] is None


def test_given_a_run_with_a_holdout_when_shaped_then_rates_and_lift_are_exact_fractions_rounded() -> None:
    counts = {"targeted": 1100, "held_out": 100, "sent": 1000, "converted": 50, "holdout_converted": 4}

    view = stats_view(counts)

    assert view["conversion_rate"] == 0.05
    assert view["holdout_conversion_rate"] == 0.04
    assert view["lift"] == 0.25


def test_given_rates_on_a_rounding_tie_when_shaped_then_they_round_half_even_from_the_exact_fraction() -> None:
    assert stats_view({"sent": 20_000, "converted": 1})["conversion_rate"] == 0.0  # 0.00005 -> 0.0000
    assert stats_view({"sent": 20_000, "converted": 3})["conversion_rate"] == 0.0002  # 0.00015 -> 0.0002
    assert stats_view({"sent": 3, "converted": 1})["conversion_rate"] == 0.3333


def test_given_a_holdout_without_conversions_when_shaped_then_lift_is_undefined_not_infinite() -> None:
    view = stats_view({"held_out": 100, "sent": 1000, "converted": 50})

    assert view["holdout_conversion_rate"] == 0.0
    assert view["lift"] is None
    assert stats_view({"held_out": 100, "holdout_converted": 10, "sent": 100, "converted": 5})["lift"] == -0.5


def test_given_counters_as_stored_when_shaped_then_blocked_reasons_fold_and_money_stays_exact() -> None:
    counts: dict[str, int | str | Decimal] = {
        "sent": Decimal(12),
        "queued": "15",
        "blocked:frequency_cap": 2,
        "blocked:no_consent": Decimal(1),
        "blocked:something_new": 4,
        "revenue": "1234.50",
        "holdout_revenue": Decimal("0.1") + Decimal("0.2"),
        "deferred": -1,
    }

    view = stats_view(counts, conversion=Conversion(event="Order Completed"))

    assert (view["sent"], view["queued"]) == (12, 15)
    assert view["blocked"]["frequency_cap"] == 2 and view["blocked"]["no_consent"] == 1 and view["blocked"][OTHER] == 4
    assert (view["revenue"], view["holdout_revenue"]) == ("1234.50", "0.3")
    assert view["deferred"] == 0
    assert view["conversion"] == {"event": "Order Completed", "window": "3d", "revenue_property": "revenue"}


def test_given_a_counter_that_is_not_a_number_when_shaped_then_it_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="revenue"):
        stats_view({"revenue": "lots"})
    with pytest.raises(ValueError, match="revenue"):
        stats_view({"revenue": "NaN"})
    with pytest.raises(ValueError, match="sent"):
        stats_view({"sent": "many"})


# ------------------------------------------------------------------------------ attribution
TOUCHED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def goal_campaign(campaign_id: str = "winter-sale", event: str = "Order Completed", window: str = "3d") -> Campaign:
    return campaign(campaign_id, conversion={"event": event, "window": window, "revenue_property": "revenue"})


def order(
    at: datetime, revenue: Any = "49.90", name: str = "Order Completed", message_id: str = "m-1"
) -> dict[str, Any]:
    return {"name": name, "properties": {"revenue": revenue}, "timestamp": iso(at), "messageId": message_id}


def touch(
    campaign_id: str = "winter-sale", run_id: str = "r1", at: datetime = TOUCHED, kind: str = "sent"
) -> dict[str, Any]:
    return {"campaign_id": campaign_id, "run_id": run_id, "at": iso(at), "kind": kind}


CAMPAIGNS = {"winter-sale": goal_campaign()}


@pytest.mark.parametrize(
    ("offset", "counts"),
    [
        (timedelta(0), True),
        (timedelta(days=3), True),
        (timedelta(days=3, milliseconds=1), False),
        (timedelta(milliseconds=-1), False),
    ],
)
def test_given_an_event_near_the_window_edges_when_attributed_then_only_the_window_after_the_touch_counts(
    offset: timedelta, counts: bool
) -> None:
    found = attribute(order(TOUCHED + offset), [touch()], CAMPAIGNS)

    assert bool(found) is counts


def test_given_an_event_when_attributed_then_it_carries_run_kind_revenue_and_an_idempotency_key() -> None:
    [found] = attribute(order(TOUCHED + timedelta(hours=5), message_id="evt-42"), [touch(run_id="r7")], CAMPAIGNS)

    assert (found.campaign_id, found.run_id, found.kind, found.revenue) == (
        "winter-sale",
        "r7",
        "sent",
        Decimal("49.90"),
    )
    assert found.key == "winter-sale:r7:evt-42"
    assert found.touched_at == TOUCHED
    assert (found.converted_counter, found.revenue_counter) == ("converted", "revenue")


def test_given_several_runs_when_attributed_then_the_last_touch_before_the_event_wins() -> None:
    touches = [
        touch(run_id="r1", at=TOUCHED),
        touch(run_id="r2", at=TOUCHED + timedelta(days=1)),
        touch(run_id="r3", at=TOUCHED + timedelta(days=3)),  # after the event: it cannot have caused it
    ]

    [found] = attribute(order(TOUCHED + timedelta(days=2)), touches, CAMPAIGNS)

    assert found.run_id == "r2"


def test_given_a_held_out_touch_when_attributed_then_it_counts_for_the_control_group() -> None:
    [found] = attribute(order(TOUCHED + timedelta(hours=1)), [touch(kind="held_out")], CAMPAIGNS)

    assert found.kind == "held_out"
    assert (found.converted_counter, found.revenue_counter) == ("holdout_converted", "holdout_revenue")


@pytest.mark.parametrize(
    ("revenue", "expected"),
    [
        ("19.90", Decimal("19.90")),
        (19.9, Decimal("19.9")),
        (0.1, Decimal("0.1")),
        (25, Decimal(25)),
        (-20, Decimal(0)),
        ("-20.00", Decimal(0)),
        (None, Decimal(0)),
        ("abc", Decimal(0)),
        ("1e5", Decimal(0)),
        ("NaN", Decimal(0)),
        (float("inf"), Decimal(0)),
        (True, Decimal(0)),
        ({"amount": 5}, Decimal(0)),
        (10**20, Decimal(0)),
        ("0.0000001", Decimal("0.000000")),
    ],
)
def test_given_revenue_of_any_shape_when_attributed_then_numbers_count_exactly_and_anything_else_or_a_refund_is_zero(
    revenue: Any, expected: Decimal
) -> None:
    [found] = attribute(order(TOUCHED + timedelta(hours=1), revenue=revenue), [touch()], CAMPAIGNS)

    assert found.revenue == expected
    assert str(found.revenue) == str(expected)


def test_given_missing_revenue_or_a_nested_path_when_read_then_the_path_is_followed() -> None:
    assert revenue_of({"order": {"total": "12.30"}}, "order.total") == Decimal("12.30")
    assert revenue_of({"order": "12.30"}, "order.total") == Decimal(0)
    assert revenue_of({}, "revenue") == Decimal(0)
    assert revenue_of(None, "revenue") == Decimal(0)


def test_given_two_campaigns_when_one_event_converts_both_then_each_gets_its_own_attribution() -> None:
    campaigns = {
        "winter-sale": goal_campaign("winter-sale"),
        "loyalty": goal_campaign("loyalty", window="1h"),
        "app-push": goal_campaign("app-push", event="App Opened"),
        "no-goal": campaign("no-goal"),
    }
    touches = [
        touch("winter-sale", "r1", TOUCHED),
        touch("loyalty", "r5", TOUCHED + timedelta(minutes=30), kind="held_out"),
        touch("app-push", "r2", TOUCHED),
        touch("no-goal", "r3", TOUCHED),
        touch("deleted", "r4", TOUCHED),
    ]

    found = attribute(order(TOUCHED + timedelta(minutes=45)), touches, campaigns)

    assert [(a.campaign_id, a.run_id, a.kind) for a in found] == [
        ("loyalty", "r5", "held_out"),
        ("winter-sale", "r1", "sent"),
    ]


def test_given_an_event_that_cannot_be_counted_once_when_attributed_then_it_converts_nothing() -> None:
    event = order(TOUCHED + timedelta(hours=1))

    assert attribute({**event, "messageId": ""}, [touch()], CAMPAIGNS) == []
    assert attribute({**event, "timestamp": "yesterday"}, [touch()], CAMPAIGNS) == []
    assert attribute({**event, "name": "Page Viewed"}, [touch()], CAMPAIGNS) == []
    assert attribute(event, [{**touch(), "kind": "opened"}, {**touch(), "at": "soon"}], CAMPAIGNS) == []


def test_given_a_raw_track_call_with_a_zoneless_timestamp_when_attributed_then_it_is_read_as_utc() -> None:
    raw = {"event": "Order Completed", "properties": {}, "timestamp": "2026-12-01T10:00:00", "messageId": "m-9"}

    [found] = attribute(raw, [touch()], CAMPAIGNS)

    assert found.revenue == Decimal(0)


def test_given_runs_and_people_when_keyed_then_each_person_converts_once_per_run() -> None:
    keys = {converted_key("winter-sale", run, person_id) for run in ("r1", "r2") for person_id in ("p1", "p2")}

    assert len(keys) == 4
    assert converted_key("winter-sale", "r1", "p1") == converted_key("winter-sale", "r1", "p1")


# ------------------------------------------------------------------------------ validation
KNOWN = {"segments_known": {"vip", "newsletter", "churned"}, "templates_known": {"winter", "winter-b"}}


def check(**fields: Any) -> list[tuple[str, str]]:
    parsed = CampaignBody.model_validate(body(**fields))
    return [(issue.location, issue.message) for issue in validate_campaign(parsed, now=NOW, **KNOWN)]


def test_given_a_sound_campaign_when_validated_then_there_is_nothing_to_say() -> None:
    assert check() == []
    assert check(schedule={"type": "recurring", "expression": "cron(0 10 ? * MON *)", "timezone": "Europe/Paris"}) == []
    assert check(schedule={"type": "local_time", "date": "2026-12-01", "time": "10:00"}) == []


def test_given_unknown_segments_and_templates_when_validated_then_each_is_located() -> None:
    issues = check(
        audience={"segments": ["vip", "ghosts"], "exclude": ["churned", "gone"]},
        message={"channels": ["email", "sms"], "template": {"email": "winter", "sms": "missing-sms"}},
        variants=[
            {"id": "a", "percent": 50},
            {"id": "b", "percent": 50, "template": "missing-b"},
        ],
    )

    assert [location for location, _ in issues] == [
        "/audience/segments/1",
        "/audience/exclude/1",
        "/message/template/sms",
        "/variants/1/template",
    ]
    assert "no segment 'ghosts'" in issues[0][1]
    assert "no template 'missing-b'" in issues[3][1]


def test_given_a_one_time_schedule_at_or_before_now_when_validated_then_it_is_in_the_past() -> None:
    assert check(schedule={"type": "once", "at": iso(NOW)})[0][0] == "/schedule/at"
    assert check(schedule={"type": "once", "at": iso(NOW + timedelta(minutes=5))}) == []


def test_given_a_local_time_passed_everywhere_when_validated_then_it_is_refused_but_passed_somewhere_is_not() -> None:
    passed_in_kiritimati_only = {"type": "local_time", "date": "2026-11-22", "time": "23:00"}  # UTC+14: 09:00 UTC
    passed_everywhere = {"type": "local_time", "date": "2026-11-21", "time": "23:00"}  # UTC-12: 11:00 UTC on the 22nd

    assert check(schedule=passed_in_kiritimati_only) == []
    assert [location for location, _ in check(schedule=passed_everywhere)] == ["/schedule/date"]


@pytest.mark.parametrize(
    ("schedule", "location", "why"),
    [
        ({"expression": "cron(0 10 * * ?)"}, "/schedule/expression", "takes 6 fields"),
        ({"expression": "cron(0 10 * * ? *)", "timezone": "Mars/Olympus"}, "/schedule/timezone", "not an IANA"),
        ({"expression": "at(2026-12-01T10:00:00)"}, "/schedule/expression", "use a once schedule"),
        ({"expression": "cron(0 10 * * ? *)", "end": "2026-11-01T00:00:00Z"}, "/schedule/end", "has passed"),
        ({"expression": "cron(0 10 * * ? 2020-2025)"}, "/schedule/expression", "never fires again"),
        (
            {"expression": "cron(0 10 1 JAN ? *)", "end": "2026-12-31T00:00:00Z"},
            "/schedule/expression",
            "never fires again before 2026-12-31T00:00:00Z",
        ),
        ({"expression": "rate(30 minutes)"}, "/schedule/expression", "at most once an hour"),
        ({"expression": "cron(0,30 10 ? * MON *)"}, "/schedule/expression", "runs 30 minute(s) apart"),
    ],
)
def test_given_a_recurring_schedule_scheduler_would_refuse_or_that_misbehaves_when_validated_then_it_is_located(
    schedule: dict[str, Any], location: str, why: str
) -> None:
    issues = check(schedule={"type": "recurring", **schedule})

    assert [where for where, _ in issues] == [location]
    assert why in issues[0][1]


def test_given_hourly_or_future_start_schedules_when_validated_then_they_are_accepted() -> None:
    assert check(schedule={"type": "recurring", "expression": "rate(1 hour)"}) == []
    assert (
        check(schedule={"type": "recurring", "expression": "cron(0 * * * ? *)", "timezone": "America/New_York"}) == []
    )
    assert check(schedule={"type": "recurring", "expression": "rate(7 days)", "start": "2027-01-01T09:00:00Z"}) == []


# ------------------------------------------------------------------------------ scheduling
def test_given_each_schedule_type_when_handed_to_scheduler_then_one_time_runs_are_given_in_utc() -> None:
    recurring = campaign(
        schedule={
            "type": "recurring",
            "expression": "cron(0 10 ? * MON *)",
            "timezone": "Europe/Paris",
            "start": "2026-12-01T00:00:00+01:00",
            "end": "2027-03-01T00:00:00Z",
        }
    )
    spec = scheduler_spec(recurring, NOW)
    assert (spec.expression, spec.timezone, spec.one_time) == ("cron(0 10 ? * MON *)", "Europe/Paris", False)
    assert (spec.start, spec.end) == ("2026-11-30T23:00:00.000Z", "2027-03-01T00:00:00.000Z")

    once = scheduler_spec(campaign(), NOW)
    assert (once.expression, once.timezone, once.one_time, once.start) == ("at(2026-12-01T09:00:00)", "UTC", True, None)

    local = scheduler_spec(local_campaign(), NOW)
    assert local.expression == "at(2026-11-30T20:00:00)"


def test_given_a_one_time_moment_already_past_when_handed_to_scheduler_then_it_fires_a_minute_from_now() -> None:
    late = datetime(2026, 12, 2, 8, 0, 30, 500, tzinfo=UTC)

    assert scheduler_spec(campaign(), late).expression == "at(2026-12-02T08:01:30)"


def test_given_each_schedule_type_when_asked_for_the_next_fire_then_only_future_ones_are_given() -> None:
    once = campaign()
    assert next_fire(once, NOW) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert next_fire(once, datetime(2026, 12, 1, 9, 0, tzinfo=UTC)) is None
    assert next_fire(local_campaign(), NOW) == first_fire_for_local_time(DAY, TEN)
    weekly = campaign(
        schedule={
            "type": "recurring",
            "expression": "rate(7 days)",
            "start": "2026-12-01T09:00:00Z",
            "end": "2026-12-10T00:00:00Z",
        }
    )
    assert next_fire(weekly, NOW) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert next_fire(weekly, datetime(2026, 12, 1, 9, 0, tzinfo=UTC)) == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    assert next_fire(weekly, datetime(2026, 12, 8, 9, 0, tzinfo=UTC)) is None
