"""The weekly refit end to end in the local cloud: a year and a half of orders goes in through the
tracking API and fills the archive through the template's Firehose stream; the clock is moved to
Monday 03:00, when the template's schedule runs RefitPredictionsFunction; it fits on the archive
and hands every customer's `predicted.*` traits to the profile updater; a segment on
`predicted.churn_risk > 0.7` is then entered by exactly the customers who stopped buying, and the
journey that starts on entering it tags them.

The shop is the refit service's unit-test shop (tests/unit/predictions/test_refit_service.py) at
20 customers a group: regulars who buy every one to five weeks up to the refit, and lapsed
customers who bought as often and stopped 38 to 48 weeks before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.localcloud.cloud import LocalCloud
from infra.localcloud.demo import bootstrap
from tests.e2e.conftest import Platform
from tests.unit.predictions.test_refit_service import shop_orders

REFIT_AT = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # a Monday: `cron(0 3 ? * MON *)` fires then
START = REFIT_AT - timedelta(minutes=3)
PER_GROUP = 20
CHURN_RISK = {
    "id": "churn-risk",
    "name": "Likely to have churned",
    "condition": {"path": "predicted.churn_risk", "op": "gt", "value": 0.7},
}
WIN_BACK = {
    "id": "win-back",
    "name": "Win back",
    "entry": {"type": "segment_entered", "segment": "churn-risk"},
    "start": "tag",
    "steps": {
        "tag": {"type": "update_profile", "add_tags": ["win-back"], "next": "done"},
        "done": {"type": "exit"},
    },
}


@pytest.fixture(scope="module")
def shop() -> Iterator[Platform]:
    with LocalCloud(
        manual_clock=True,
        start_time=START,
        functions_follow_clock=True,
        stack_name="midstage-refit",
        parameters={"ConfigCacheSeconds": "0", "Stage": "refit"},
        region="eu-north-1",
    ) as cloud:
        source, admin_key = bootstrap(cloud, echo=False)
        platform = Platform(cloud, source.write_key, source.id, admin_key)
        assert platform.admin("POST", "/v1/segments", CHURN_RISK).status == 201
        assert platform.admin("POST", "/v1/journeys", WIN_BACK).status == 201
        assert platform.admin("PATCH", "/v1/journeys/win-back", {"enabled": True}).status == 200
        orders = [
            {key: value for key, value in event.items() if key != "sourceId"}
            for event in shop_orders(PER_GROUP, REFIT_AT)
        ]
        for start in range(0, len(orders), 400):
            batch = orders[start : start + 400]
            answer = platform.track("/v1/batch", {"batch": batch})
            assert answer.status == 200 and answer.body["accepted"] == len(batch), answer.body
        platform.settle()  # applied to profiles and written to the archive
        cloud.clock.advance(timedelta(minutes=5))  # past Monday 03:00: the weekly refit runs
        platform.settle()  # its identifies applied, the segment entered, the journey run
        yield platform


def predicted(platform: Platform, user: str) -> dict[str, Any]:
    return platform.profile(f"user_id:{user}")["traits"].get("predicted", {})  # type: ignore[no-any-return]


def test_every_customer_carries_the_scores_of_the_weeks_model(shop: Platform) -> None:
    for group in ("regular", "lapsed"):
        for n in range(PER_GROUP):
            scores = predicted(shop, f"{group}_{n:03d}")
            assert {"churn_risk", "p_alive", "expected_purchases_30d", "p_purchase_30d"} <= set(scores)
            assert scores["churn_risk"]["model"] == "customer_value.v1"
            assert 0 <= scores["churn_risk"]["percentile"] <= 100
            assert scores["recommendations"]["model"] == "recommendations.v1"


def test_the_churn_risk_segment_holds_exactly_the_customers_who_stopped_buying(shop: Platform) -> None:
    for n in range(PER_GROUP):
        lapsed = shop.profile(f"user_id:lapsed_{n:03d}")
        regular = shop.profile(f"user_id:regular_{n:03d}")
        assert lapsed["traits"]["predicted"]["churn_risk"]["value"] > 0.7
        assert regular["traits"]["predicted"]["churn_risk"]["value"] < 0.7
        assert "churn-risk" in lapsed["segments"]
        assert "churn-risk" not in regular["segments"]


def test_entering_the_segment_started_the_win_back_journey(shop: Platform) -> None:
    for n in range(PER_GROUP):
        assert "win-back" in shop.profile(f"user_id:lapsed_{n:03d}")["tags"]
        assert "win-back" not in shop.profile(f"user_id:regular_{n:03d}")["tags"]
    stats = shop.admin("GET", "/v1/journeys/win-back/stats").body
    assert stats["steps"] == {"tag": PER_GROUP, "done": PER_GROUP}


def test_nothing_already_bought_is_recommended_and_the_best_sellers_fill_the_list(shop: Platform) -> None:
    # Odd-numbered customers buy shoes and socks (both, over their many orders), even-numbered
    # hats and scarves: what is left of the catalogue is the other pair
    for n in range(PER_GROUP):
        listed = predicted(shop, f"regular_{n:03d}")["recommendations"]["value"]
        assert sorted(listed) == (["hat", "scarf"] if n % 2 else ["shoes", "socks"])
