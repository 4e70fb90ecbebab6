"""Profile arithmetic: last-write-wins by event time, counters, computed traits, merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midstage.config import ComputedTraitSettings, ConfigurationError, IdentitySettings
from midstage.logic import profile as logic
from midstage.logic.identity import identifiers_of, limit_breach, lookup_only, normalise_email, normalise_phone
from midstage.models.profile import Profile

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TRAITS = ComputedTraitSettings()
IDENTITY = IdentitySettings()


def event(kind: str = "track", at: str = "2026-11-20T10:00:00.000Z", mid: str = "m1", **fields: object) -> dict:
    base: dict = {"type": kind, "messageId": mid, "timestamp": at, "sourceId": "s", "userId": "u1"}
    if kind == "track":
        base["event"] = "Viewed"
    base.update(fields)
    return base


def fresh() -> Profile:
    return Profile(id="p1", created_at="2026-01-01T00:00:00.000Z")


def test_a_late_event_never_overwrites_a_newer_trait() -> None:
    profile = fresh()
    logic.apply_event(profile, event("identify", "2026-11-21T00:00:00.000Z", "new", traits={"plan": "pro"}))
    logic.apply_event(profile, event("identify", "2026-11-01T00:00:00.000Z", "old", traits={"plan": "free"}))
    assert profile.traits["plan"] == "pro"


def test_predicted_scores_are_set_by_the_platform_only() -> None:
    profile = fresh()
    scores = {"churn_risk": {"value": 0.8, "percentile": 90, "model": "customer_value.v1"}}
    logic.apply_event(profile, event("identify", mid="refit", sourceId="midstage", traits={"predicted": scores}))
    # A client cannot overwrite them (nor forge them), by identify or a track call's context
    forged = {"churn_risk": {"value": 0.0}}
    logic.apply_event(
        profile, event("identify", "2026-11-21T00:00:00.000Z", "c1", traits={"predicted": forged, "plan": "pro"})
    )
    logic.apply_event(
        profile, event(at="2026-11-21T00:00:01.000Z", mid="c2", context={"traits": {"predicted": forged}})
    )
    assert profile.traits == {"predicted": scores, "plan": "pro"}


def test_context_traits_of_a_track_call_update_the_profile() -> None:
    profile = fresh()
    logic.apply_event(profile, event(context={"traits": {"city": "Lyon"}}))
    assert profile.traits == {"city": "Lyon"}


def test_order_completed_sums_revenue_exactly_and_scores_rfm() -> None:
    profile = fresh()
    for i, amount in enumerate(["0.10", "0.20", 120]):
        logic.apply_event(profile, event(event="Order Completed", mid=f"o{i}", properties={"revenue": amount}))
    computed = logic.compute(profile, NOW, TRAITS)
    assert Decimal(profile.revenue) == Decimal("120.30")
    assert computed["orders"] == 3
    assert computed["average_order_value"] == 40.1
    # 2 days since the last order -> R=5; 3 orders -> F=3; 120.30 -> M=2.
    assert computed["rfm"] == {"recency": 5, "frequency": 3, "monetary": 2, "score": "532"}
    assert computed["value_tier"] == "medium"


def test_orders_in_several_currencies_are_kept_apart_and_converted_only_with_a_rate() -> None:
    # Given orders in the reporting currency, without a currency, in euros and in yen
    profile = fresh()
    orders = [("100", "USD"), ("50", None), ("10", "eur"), ("1000", "JPY"), ("5", "not-a-code")]
    for i, (amount, currency) in enumerate(orders):
        properties = {"revenue": amount, **({"currency": currency} if currency else {})}
        logic.apply_event(profile, event(event="Order Completed", mid=f"o{i}", properties=properties))
    # When computed with a rate for euros only
    settings = TRAITS.model_copy(update={"currency_rates": {"EUR": 1.08}})
    computed = logic.compute(profile, NOW, settings)
    # Then revenue is in dollars (100 + 50 + 5 without a valid code + 10 x 1.08), yen kept apart
    assert computed["revenue"] == 165.8
    assert computed["revenue_by_currency"] == {"EUR": 10.0, "JPY": 1000.0, "USD": 100.0}
    assert computed["revenue_unconverted"] == {"JPY": 1000.0}
    assert computed["value_tier"] == "medium"
    # And a profile stored before currencies were kept still counts its revenue as it did
    legacy = Profile.from_doc({**fresh().to_doc(), "orders": 2, "revenue": "120.5"})
    legacy.revenue_by_currency = {}
    assert logic.compute(legacy, NOW, settings)["revenue"] == 120.5


def test_currency_settings_refuse_a_bad_code_or_rate() -> None:
    with pytest.raises(ConfigurationError):
        ComputedTraitSettings.from_env({"CURRENCY_RATES": '{"EURO": 1.1}'})
    with pytest.raises(ConfigurationError):
        ComputedTraitSettings.from_env({"CURRENCY_RATES": '{"EUR": -1}'})
    assert ComputedTraitSettings.from_env({"CURRENCY": "EUR", "CURRENCY_RATES": '{"USD": 0.93}'}).currency_rates == {
        "USD": 0.93
    }


def test_total_is_used_when_revenue_is_absent_and_garbage_counts_as_zero() -> None:
    assert logic.order_value({"total": "19.99"}) == logic.order_value({"revenue": 19.99})
    assert logic.order_value({"revenue": "NaN"}) == 0
    assert logic.order_value({"revenue": True}) == 0


def test_windowed_counts_use_utc_calendar_days() -> None:
    profile = fresh()
    for i, days_ago in enumerate([0, 6, 7, 29, 30, 89, 90, 400]):
        at = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        logic.apply_event(profile, event(at=at, mid=f"m{i}"))
    counts = logic.compute(profile, NOW, TRAITS)["event_counts"]["Viewed"]
    assert counts == {"total": 8, "7d": 2, "30d": 4, "90d": 6}


def test_pruning_forgets_only_days_no_window_reaches() -> None:
    profile = fresh()
    logic.apply_event(profile, event(at="2026-11-20T00:00:00.000Z", mid="a"))
    logic.apply_event(profile, event(at="2025-01-01T00:00:00.000Z", mid="b"))
    logic.prune_daily_counts(profile, NOW, TRAITS)
    assert profile.daily_counts == {"Viewed": {"20261120": 1}}
    assert profile.event_counts == {"Viewed": 2}


def test_lifecycle_stages_follow_the_thresholds() -> None:
    def stage(first_days_ago: int, last_days_ago: int) -> str | None:
        profile = fresh()
        profile.first_seen = (NOW - timedelta(days=first_days_ago)).isoformat()
        profile.last_seen = (NOW - timedelta(days=last_days_ago)).isoformat()
        return logic.lifecycle_stage(profile, NOW, TRAITS)

    assert stage(3, 1) == "new"
    assert stage(100, 1) == "active"
    assert stage(100, 45) == "silent"
    assert stage(200, 120) == "churned"
    assert logic.lifecycle_stage(fresh(), NOW, TRAITS) is None


def test_changes_names_what_a_write_changed() -> None:
    before = fresh()
    before.computed = logic.compute(before, NOW, TRAITS)
    after = Profile.from_doc(before.to_doc())
    logic.apply_event(after, event("identify", traits={"plan": "pro"}))
    after.identities = {"user_id": ["u1"]}
    after.computed = logic.compute(after, NOW, TRAITS)
    diff = logic.changes(before, after)
    assert diff["traits"] == {"plan": "pro"}
    assert diff["identities_added"] == ["user_id:u1"]
    assert diff["computed"]["lifecycle_stage"] == "new"


def test_identifiers_are_normalised_and_ordered_by_priority() -> None:
    found = identifiers_of(
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "traits": {"email": " Ann@Example.COM ", "phone": "+33 6 12-34-56-78"},
            "context": {"device": {"id": "d1"}, "externalIds": [{"id": "c-9", "type": "crm_id"}]},
        },
        IDENTITY,
    )
    assert found == [
        ("user_id", "u1"),
        ("email", "ann@example.com"),
        ("phone", "+33612345678"),
        ("x:crm_id", "c-9"),
        ("device_id", "d1"),
        ("anonymous_id", "a1"),
    ]


def test_invalid_contact_data_is_not_an_identifier() -> None:
    assert normalise_email("not-an-email") is None
    assert normalise_phone("06 12 34 56 78") is None  # no country code: cannot be linked safely
    assert normalise_phone("0033612345678") == "+33612345678"


def test_alias_links_previous_id_as_anonymous_and_looks_it_up_as_a_user_id() -> None:
    alias = {"type": "alias", "userId": "u2", "previousId": "old"}
    assert ("anonymous_id", "old") in identifiers_of(alias, IDENTITY)
    assert lookup_only(alias, IDENTITY) == [("user_id", "old")]


def test_limits_refuse_a_second_user_id_but_allow_five_anonymous_ids() -> None:
    assert limit_breach({"user_id": ["u1"]}, {"user_id": ["u2"]}, IDENTITY) is not None
    assert limit_breach({"anonymous_id": list("abcd")}, {"anonymous_id": ["e"]}, IDENTITY) is None
    breach = limit_breach({"anonymous_id": list("abcde")}, {"anonymous_id": ["f"]}, IDENTITY)
    assert breach is not None
    assert "anonymous_id limit 5" in breach.reason()


# ---------------------------------------------------------------- order independence
_events = st.lists(
    st.builds(
        lambda i, day, name, kind, value, currency: event(
            kind,
            f"2026-11-{day:02d}T10:00:00.000Z",
            f"m{i}",
            event=name,
            traits={"plan": value},
            properties={"revenue": value, **({"currency": currency} if currency else {})},
        ),
        st.integers(0, 10_000),
        st.integers(1, 21),
        st.sampled_from(["Viewed", "Order Completed"]),
        st.sampled_from(["track", "identify"]),
        st.sampled_from(["1.10", "2.25", "7"]),
        st.sampled_from(["", "USD", "eur", "JPY"]),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda e: e["messageId"],
)


@settings(max_examples=150, deadline=None)
@given(_events, st.randoms())
def test_applying_events_in_any_order_gives_the_same_profile(events: list[dict], rnd) -> None:
    in_order, shuffled = fresh(), fresh()
    for e in events:
        logic.apply_event(in_order, e)
    copy = list(events)
    rnd.shuffle(copy)
    for e in copy:
        logic.apply_event(shuffled, e)
    assert in_order.to_doc() == shuffled.to_doc()


@settings(max_examples=100, deadline=None)
@given(_events, st.integers(0, 25))
def test_merging_two_halves_equals_applying_everything_to_one(events: list[dict], cut: int) -> None:
    whole, left, right = fresh(), fresh(), Profile(id="p2", created_at="2026-02-01T00:00:00.000Z")
    for e in events:
        logic.apply_event(whole, e)
    for e in events[:cut]:
        logic.apply_event(left, e)
    for e in events[cut:]:
        logic.apply_event(right, e)
    logic.merge_into(left, right)
    merged = left.to_doc()
    assert merged.pop("merged_from") == ["p2"]
    expected = whole.to_doc()
    expected.pop("merged_from")
    assert merged == expected


def test_a_merged_away_profile_hands_its_unpublished_domain_events_and_pending_markers_to_the_survivor() -> None:
    # Given a profile whose last write's events were not yet known published
    survivor, loser = fresh(), Profile(id="p2", created_at="2026-02-01T00:00:00.000Z")
    entry = {"kind": "segment.entered", "detail": {"profileId": "p2", "eventId": "e1"}, "markers": ["s|m1"]}
    loser.outbox, loser.pending = {"e1": entry}, {"s|m1": 1}
    # When it is merged into another
    logic.merge_into(survivor, loser)
    # Then the survivor publishes them until that unit's markers are written
    assert survivor.outbox == {"e1": entry}
    assert survivor.pending == {"s|m1": 1}


def test_caps_keep_the_latest_devices_and_bound_event_names() -> None:
    profile = fresh()
    for i in range(logic.MAX_DEVICES + 5):
        logic.apply_event(
            profile,
            event(
                at=f"2026-11-01T00:00:{i:02d}.000Z",
                mid=f"d{i}",
                context={"device": {"id": f"dev{i}", "token": f"t{i}"}},
            ),
        )
    assert len(profile.devices) == logic.MAX_DEVICES
    assert "dev0" not in profile.devices
    assert f"dev{logic.MAX_DEVICES + 4}" in profile.devices
    for i in range(logic.MAX_EVENT_NAMES + 3):
        logic.apply_event(profile, event(event=f"Viewed item {i}", mid=f"n{i}"))
    assert len(profile.event_counts) == logic.MAX_EVENT_NAMES + 1
    assert profile.event_counts[logic.OTHER_EVENTS] >= 3


def test_absurd_amounts_count_as_zero_and_tiny_ones_are_rounded() -> None:
    assert logic.order_value({"revenue": "1E+999999999"}) == 0
    assert logic.order_value({"revenue": 1e-25}) == 0
    assert logic.order_value({"revenue": "19.9999999"}) == Decimal("20.000000")


def test_external_id_types_cannot_inject_key_separators() -> None:
    found = identifiers_of(
        {"type": "track", "userId": "u", "context": {"externalIds": [{"id": "c", "type": "CRM#eu"}]}}, IDENTITY
    )
    assert ("x:crm_eu", "c") in found


def test_identifiers_longer_than_512_bytes_are_not_linked() -> None:
    assert identifiers_of({"type": "track", "userId": "\U0001f600" * 200, "anonymousId": "a"}, IDENTITY) == [
        ("anonymous_id", "a")
    ]
