"""The weekly refit over a real archive (Parquet files read by embedded DuckDB, as the local cloud
reads them): who is trained on and scored, what each person is sent, what the cards say.

A generated shop: 160 regulars who buy every 1-4 weeks up to the refit, 160 who bought as often
and then stopped 38 to 48 weeks before it, each order naming products; one person is
suppressed by a privacy request, one profile was merged into another."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from midstage.adapters.archive_engines import LocalArchive
from midstage.logic.archive.records import event_record, merge_record
from midstage.logic.identity import Identifier
from midstage.logic.predictions.cards import ModelCard, ModelKind
from midstage.logic.timefmt import iso
from midstage.models.archive import ArchiveRecord
from midstage.services.predictions import RefitSettings, refit

AS_OF = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # a Monday, 03:00 (the schedule's occurrence)
ARCHIVED = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
SHOE_BASKETS = (["shoes", "socks"], ["shoes"], ["socks"])
HAT_BASKETS = (["hat", "scarf"], ["hat"], ["scarf"])


class MemoryCards:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, int], ModelCard] = {}

    def latest(self, kind: ModelKind) -> ModelCard | None:
        versions = [card for (k, _), card in self.saved.items() if k == kind]
        return max(versions, key=lambda card: card.version) if versions else None

    def save(self, card: ModelCard) -> bool:
        if (card.kind, card.version) in self.saved:
            return False
        self.saved[(card.kind, card.version)] = card
        return True


class MemorySuppressions:
    def __init__(self, suppressed: Iterable[Identifier]) -> None:
        self.suppressed = set(suppressed)
        self.asked: list[Identifier] = []

    def matching(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        listed = list(identifiers)
        self.asked.extend(listed)
        return {i: "reg_1" for i in listed if i in self.suppressed}


class MemoryEvents:
    def __init__(self) -> None:
        self.groups: dict[str, Sequence[dict[str, Any]]] = {}

    def send(self, groups: Mapping[str, Sequence[dict[str, Any]]]) -> int:
        self.groups.update(groups)
        return len(groups)

    def predicted(self, person_key: str) -> dict[str, Any]:
        [event] = self.groups[person_key]
        assert event["type"] == "identify" and event["sourceId"] == "midstage"
        return dict(event["traits"]["predicted"])


def _event(user: str, name: str, when: datetime, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "anonymousId": None,
        "properties": properties,
        "messageId": f"{user}-{name}-{when.isoformat()}",
        "timestamp": iso(when),
        "sourceId": "src_shop",
        "context": {},
    }


def shop_orders(per_group: int = 160, as_of: datetime = AS_OF) -> list[dict[str, Any]]:
    """The shop's orders as tracked events: `per_group` regulars and as many lapsed customers
    (user ids `regular_000`, `lapsed_000`, ...). The end-to-end test sends them to the tracking API."""
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    for group in ("regular", "lapsed"):
        for n in range(per_group):
            # Half buy shoes and socks, half hats and scarves: what the item model should learn.
            user = f"{group}_{n:03d}"
            # Orders fall on Mondays (a file per archived day: fewer days, a quicker archive to write)
            moment = as_of - timedelta(days=7 * rng.randint(72, 80), hours=rng.randint(0, 2))
            level = rng.gammavariate(3, 15)  # what this customer spends on average
            gaps = rng.choice(((7, 14), (14, 21), (21, 28, 35)))  # and how often they buy
            stop = as_of if group == "regular" else as_of - timedelta(days=7 * rng.randint(38, 48))
            while moment < stop - timedelta(days=1):
                basket = rng.choice(SHOE_BASKETS if n % 2 else HAT_BASKETS)
                order = {
                    "revenue": round(rng.gammavariate(6, level / 6), 2),
                    "products": [{"product_id": p} for p in basket],
                }
                events.append(_event(user, "Order Completed", moment, order))
                moment += timedelta(days=rng.choice(gaps), minutes=rng.randint(0, 59))
    return events


def shop_records(per_group: int = 160) -> list[ArchiveRecord]:
    records = [event_record(event, f"prof_{event['userId']}", ARCHIVED) for event in shop_orders(per_group)]
    # ann views a scarf and has no order; bea's second profile was merged into her first
    records.append(
        event_record(
            _event("ann", "Product Viewed", AS_OF - timedelta(days=2), {"product_id": "scarf"}), "prof_ann", ARCHIVED
        )
    )
    for days, profile in ((40, "prof_bea"), (20, "prof_bea_2"), (5, "prof_bea_2")):
        order = {"revenue": 30, "products": [{"product_id": "shoes"}]}
        records.append(
            event_record(_event("bea", "Order Completed", AS_OF - timedelta(days=days), order), profile, ARCHIVED)
        )
    merge = {"profile_id": "prof_bea", "merged_profile_id": "prof_bea_2", "at": iso(AS_OF - timedelta(days=10))}
    records.append(merge_record(merge, ARCHIVED))
    return records


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> LocalArchive:
    archive = LocalArchive(tmp_path_factory.mktemp("archive"))
    archive.write(shop_records(), "shop")
    return archive


def test_everyone_with_orders_is_scored_and_the_lapsed_carry_the_churn_risk(shop: LocalArchive) -> None:
    events = MemoryEvents()
    summary = refit(shop, MemorySuppressions(()), MemoryCards(), events, now=AS_OF)

    # Then 320 shoppers, bea (one person across her two profiles) and ann are sent their traits
    assert (summary.people, summary.excluded, summary.scored) == (322, 0, 322)
    assert summary.cards == ["customer_value.v1", "recommendations.v1"]
    regular = events.predicted("u:regular_000")
    assert set(regular) == {
        "expected_purchases_30d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "p_alive",
        "churn_risk",
        "p_purchase_30d",
        "expected_order_value",
        "clv_12m",
        "recommendations",
    }
    assert regular["churn_risk"]["model"] == "customer_value.v1"
    assert 0 <= regular["churn_risk"]["percentile"] <= 100
    assert regular["churn_risk"]["value"] == pytest.approx(1 - regular["p_alive"]["value"], abs=1e-6)

    def mean(group: str, name: str) -> float:
        return sum(events.predicted(f"u:{group}_{n:03d}")[name]["value"] for n in range(160)) / 160

    # The lapsed, silent for 38 weeks or more after buying every few weeks, are very likely gone
    assert mean("lapsed", "churn_risk") > 0.9 > 0.2 > mean("regular", "churn_risk")
    assert mean("regular", "expected_purchases_30d") > 1.0 > 0.1 > mean("lapsed", "expected_purchases_30d")
    assert mean("regular", "clv_12m") > 10 * mean("lapsed", "clv_12m")


def test_a_merged_profile_is_one_person_and_a_viewer_gets_recommendations_only(shop: LocalArchive) -> None:
    events = MemoryEvents()
    refit(shop, MemorySuppressions(()), MemoryCards(), events, now=AS_OF)

    # bea's three orders count as one person's, addressed by her user id
    bea = events.predicted("u:bea")
    assert bea["churn_risk"]["model"] == "customer_value.v1"
    [event] = events.groups["u:bea"]
    assert (event["userId"], event["timestamp"]) == ("bea", "2026-11-23T03:00:00.000Z")
    # ann never ordered: no value scores, but what goes with the scarf she looked at
    ann = events.predicted("u:ann")
    assert set(ann) == {"recommendations"}
    assert ann["recommendations"]["value"][0] == "hat"
    # Bought shoes: socks come first, and nothing already bought is recommended to bea
    assert bea["recommendations"]["value"][0] == "socks"
    assert "shoes" not in bea["recommendations"]["value"]


def test_a_suppressed_person_is_neither_trained_on_nor_scored(shop: LocalArchive) -> None:
    events = MemoryEvents()
    cards = MemoryCards()
    lookup = MemorySuppressions([("user_id", "regular_005"), ("profile_id", "prof_bea_2")])

    summary = refit(shop, lookup, cards, events, now=AS_OF)

    # Then regular_005 (by user id) and bea (by her merged profile's id) are out of both models
    assert (summary.people, summary.excluded, summary.scored) == (322, 2, 320)
    assert "u:regular_005" not in events.groups and "u:bea" not in events.groups
    value = cards.saved[("customer_value", 1)]
    assert (value.data.people, value.data.excluded_people) == (319, 2)
    items = cards.saved[("recommendations", 1)]
    assert items.data.excluded_people == 2 and items.data.people == 320
    # Every identifier the archive knows them by was checked
    assert {("user_id", "regular_005"), ("profile_id", "prof_bea"), ("profile_id", "prof_bea_2")} <= set(lookup.asked)


def test_each_refit_is_a_new_version_and_a_repeated_firing_sends_nothing(shop: LocalArchive) -> None:
    cards = MemoryCards()
    first, second = MemoryEvents(), MemoryEvents()
    refit(shop, MemorySuppressions(()), cards, first, now=AS_OF)
    refit(shop, MemorySuppressions(()), cards, second, now=AS_OF + timedelta(days=7))
    assert sorted(cards.saved) == [
        ("customer_value", 1),
        ("customer_value", 2),
        ("recommendations", 1),
        ("recommendations", 2),
    ]
    assert second.predicted("u:regular_000")["p_alive"]["model"] == "customer_value.v2"
    # The week's card is a back-test too: predicted against actual purchases per frequency
    quality = cards.saved[("customer_value", 2)].quality
    assert quality is not None and quality.kind == "purchases" and quality.buckets

    class Racing(MemoryCards):
        """Another run stored this week's version first (the schedule fired twice)."""

        def save(self, card: ModelCard) -> bool:
            return False

    again = MemoryEvents()
    summary = refit(shop, MemorySuppressions(()), Racing(), again, now=AS_OF)
    assert again.groups == {} and summary.scored == 0
    assert summary.notes == ["customer_value.v1 was stored by another run: nothing sent"]


def test_an_empty_archive_fits_nothing_and_sends_nothing(tmp_path: Path) -> None:
    events = MemoryEvents()
    summary = refit(LocalArchive(tmp_path), MemorySuppressions(()), MemoryCards(), events, now=AS_OF)
    assert (summary.people, summary.scored, summary.cards) == (0, 0, [])
    assert summary.notes and summary.notes[0].startswith("no customer-value model")
    assert json.loads(json.dumps(summary.to_json()))["as_of"] == "2026-11-23T03:00:00.000Z"


def test_the_window_read_is_the_lookback_before_the_refit(shop: LocalArchive) -> None:
    # A 30-day window sees only the regulars' last orders, bea and ann
    events = MemoryEvents()
    summary = refit(
        shop, MemorySuppressions(()), MemoryCards(), events, now=AS_OF, settings=RefitSettings(lookback_days=30)
    )
    assert "u:lapsed_000" not in events.groups
    assert 150 < summary.people < 165
