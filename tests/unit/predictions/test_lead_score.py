"""Lead score: points for events (decaying), for traits, and for a propensity, counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from midstage.logic.predictions.lead_score import LeadScoreSettings, PointRule, lead_score

AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


SETTINGS = LeadScoreSettings(
    rules=(
        PointRule(id="demo", event="Demo Requested", points=40),
        PointRule(id="pricing", event="Pricing Viewed", points=10, max_count=2),
        PointRule(id="unsubscribed", event="Unsubscribed", points=-30),
        PointRule(id="enterprise", trait="company_size", equals="enterprise", points=20),
        PointRule(id="has_phone", trait="phone", points=5),
    ),
    half_life_days=30,
    propensity_trait="propensity_order_completed_30d",
    propensity_points=50,
)


def test_event_points_halve_every_half_life_and_future_events_do_not_count() -> None:
    # Given a demo requested today, one a half-life ago, one two half-lives ago, and one tomorrow
    events = [("Demo Requested", days_ago(d)) for d in (0, 30, 60, -1)]
    # When scored with nothing else
    result = lead_score(events, {}, SETTINGS, as_of=AS_OF)
    # Then the demos are worth 40 + 20 + 10, the one after as_of nothing
    assert result.breakdown["demo"] == pytest.approx(70.0)
    assert result.score == 70.0
    assert result.grade == "B"


def test_max_count_keeps_the_most_recent_occurrences() -> None:
    # Given five pricing views, the two most recent today and one half-life ago
    events = [("Pricing Viewed", days_ago(d)) for d in (90, 0, 60, 30, 120)]
    # When scored with a cap of two occurrences
    result = lead_score(events, {}, SETTINGS, as_of=AS_OF)
    # Then only those two count: 10 + 5
    assert result.breakdown["pricing"] == pytest.approx(15.0)


def test_traits_and_the_propensity_add_their_points() -> None:
    # Given an enterprise contact with a phone, a 0.4 propensity, and an unsubscribe today
    traits = {"company_size": "enterprise", "phone": "+15550100"}
    predicted = {"propensity_order_completed_30d": {"value": 0.4, "percentile": 90, "model": "propensity.v3"}}
    events = [("Unsubscribed", days_ago(0))]
    # When scored
    result = lead_score(events, traits, SETTINGS, as_of=AS_OF, predicted=predicted)
    # Then 20 + 5 + 0.4 x 50 - 30, each part named in the breakdown
    assert result.breakdown == {
        "demo": 0.0,
        "pricing": 0.0,
        "unsubscribed": -30.0,
        "enterprise": 20.0,
        "has_phone": 5.0,
        "propensity": 20.0,
    }
    assert result.score == 15.0
    assert result.grade == "D"


def test_a_trait_with_another_value_or_missing_gives_nothing() -> None:
    result = lead_score([], {"company_size": "small", "phone": None}, SETTINGS, as_of=AS_OF)
    assert result.breakdown["enterprise"] == 0.0
    assert result.breakdown["has_phone"] == 0.0
    assert result.breakdown["propensity"] == 0.0  # no predicted trait yet
    assert result.score == 0.0


def test_without_a_half_life_points_never_decay() -> None:
    settings = LeadScoreSettings(rules=(PointRule(id="demo", event="Demo Requested", points=40),), half_life_days=None)
    result = lead_score([("Demo Requested", days_ago(365))], {}, settings, as_of=AS_OF)
    assert result.score == 40.0
    assert result.grade == "C"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rules": [{"id": "x", "points": 1}]}, "exactly one of `event` and `trait`"),
        ({"rules": [{"id": "x", "event": "E", "trait": "t", "points": 1}]}, "exactly one of `event` and `trait`"),
        ({"rules": [{"id": "x", "trait": "t", "points": 1, "max_count": 2}]}, "event rules only"),
        ({"rules": [{"id": "x", "event": "E", "points": 1}] * 2}, "unique"),
        ({"rules": [{"id": "x", "event": "E", "points": 1}], "grades": [["B", 50], ["A", 80]]}, "highest threshold"),
        ({"rules": [{"id": "x", "event": "E", "points": 1}], "propensity_points": 10}, "needs `propensity_trait`"),
        ({"rules": [{"id": "x", "event": "E", "points": 1}], "half_life_days": 0}, "half_life_days"),
        ({"rules": []}, "rules"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(document: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LeadScoreSettings.model_validate(document)
