"""What the refit makes of the archive's rows: merges followed, products read, people kept apart."""

from __future__ import annotations

import json
from datetime import date, datetime

from midstage.logic.predictions.history import histories, item_ids, survivors


def test_merges_are_followed_to_the_profile_that_lives_on_and_a_loop_is_cut() -> None:
    rows = [
        {"merged_profile_id": "p3", "profile_id": "p2"},
        {"merged_profile_id": "p2", "profile_id": "p1"},
        {"merged_profile_id": "x", "profile_id": "y"},
        {"merged_profile_id": "y", "profile_id": "x"},
        {"merged_profile_id": "same", "profile_id": "same"},
        {"merged_profile_id": None, "profile_id": "p9"},
    ]
    into = survivors(rows)
    assert (into["p3"], into["p2"]) == ("p1", "p1")
    assert {into["x"], into["y"]} <= {"x", "y"} and "same" not in into and "p1" not in into


def test_an_orders_products_a_views_product_and_nothing_from_what_is_not_one() -> None:
    lines = [{"product_id": "shoes"}, {"sku": 42}, {"id": "hat"}, {"product_id": True}, "x", {"product_id": "shoes"}]
    order = json.dumps({"products": lines})
    assert item_ids("Order Completed", order) == ["shoes", "42", "hat"]
    assert item_ids("Product Viewed", '{"product_id": " scarf "}') == ["scarf"]
    assert item_ids("Product Viewed", '{"products": [{"product_id": "a"}]}') == []  # a view names one product
    assert item_ids("Order Completed", "not json") == item_ids("Order Completed", "[1]") == item_ids("x", None) == []


def test_rows_become_one_history_per_living_profile_addressed_by_a_user_id_first() -> None:
    rows = [
        {
            "profile_id": "p1",
            "user_id": None,
            "anonymous_id": "a1",
            "occurred_at": datetime(2026, 3, 1, 9),
            "event": "Product Viewed",
            "revenue": None,
            "properties": '{"product_id": "hat"}',
        },
        {
            "profile_id": "p2",
            "user_id": "u1",
            "anonymous_id": None,
            "occurred_at": "2026-03-02 10:00:00.000",
            "event": "Order Completed",
            "revenue": 30.5,
            "properties": '{"products": [{"product_id": "scarf"}]}',
        },
        {
            "profile_id": None,
            "user_id": "u9",
            "anonymous_id": None,
            "occurred_at": datetime(2026, 3, 3),
            "event": "Order Completed",
            "revenue": 1.0,
            "properties": None,
        },
        {
            "profile_id": "p3",
            "user_id": None,
            "anonymous_id": "a3",
            "occurred_at": datetime(2026, 3, 4),
            "event": "Product Viewed",
            "revenue": None,
            "properties": None,
        },
    ]
    people = histories(rows, {"p2": "p1"})
    assert sorted(people) == ["p1", "p3"]
    ann = people["p1"]
    assert ann.profile_ids == {"p1", "p2"} and ann.address() == {"userId": "u1"}
    assert ann.orders == [(date(2026, 3, 2), 30.5)] and ann.purchased == ["scarf"] and ann.viewed == ["hat"]
    assert people["p3"].address() == {"anonymousId": "a3"}
    assert ("profile_id", "p2") in ann.identifiers() and ("anonymous_id", "a1") in ann.identifiers()
