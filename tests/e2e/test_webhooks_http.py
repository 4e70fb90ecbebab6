"""Inbound webhooks over HTTP on the local cloud: a Shopify order for a new email becomes a person
with the order's revenue and products, and the site's later Segment identify with the same email
joins that person rather than making another."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import Platform
from tests.support.webhooks import SHOPIFY_SECRET, body_of, fixture, shopify_headers


def test_a_shopify_order_and_a_later_segment_identify_are_one_person(platform: Platform) -> None:
    run = uuid.uuid4().hex[:8]
    email = f"shopper-{run}@example.com"
    # Given a Shopify source made over the admin API
    created = platform.admin(
        "POST", "/v1/sources", {"name": f"shop-{run}", "kind": "shopify", "signing_secret": SHOPIFY_SECRET}
    )
    assert created.status == 201, created.body
    # And Shopify's example order, placed by a customer with a new email
    order = fixture("shopify", "orders_create")
    order["id"] = int(run, 16)
    order["email"] = order["customer"]["email"] = email
    order["customer"]["id"] = int(run, 16) + 1
    raw = body_of(order)
    # When Shopify delivers it, signed, to the source's webhook URL
    delivered = platform.request(
        "POST",
        f"/v1/webhooks/{created.body['id']}",
        raw=raw,
        headers=shopify_headers(raw, "orders/create", f"wh-{run}"),
    )
    # (the order, and the email-marketing grant of its ticked buyer_accepts_marketing)
    assert (delivered.status, delivered.body) == (200, {"success": True, "topic": "orders/create", "accepted": 2})
    platform.settle()
    # Then one person holds the order's revenue
    shopper = platform.profile(f"email:{email}")
    assert shopper["computed"]["orders"] == 1
    assert shopper["computed"]["revenue"] == 398.0
    # When the site identifies the same person by its own userId and the same email
    user_id = f"site-user-{run}"
    identified = platform.track("/v1/identify", {"userId": user_id, "traits": {"email": email, "plan": "gold"}})
    assert identified.status == 200, identified.body
    platform.settle()
    # Then that is the same profile: the site's userId, the email and the Shopify customer, one order
    person = platform.profile(f"user_id:{user_id}")
    assert person["id"] == shopper["id"] == platform.profile(f"email:{email}")["id"]
    assert person["identities"]["x:shopify_customer_id"] == [str(int(run, 16) + 1)]
    assert person["computed"]["orders"] == 1 and person["computed"]["revenue"] == 398.0
    assert person["traits"]["plan"] == "gold"
    # And its timeline holds the order with its products
    timeline = platform.admin("GET", f"/v1/profiles/user_id:{user_id}/timeline").body["events"]
    (completed,) = [e for e in timeline if e.get("event") == "Order Completed"]
    assert completed["properties"]["order_id"] == str(int(run, 16))
    assert [(p["sku"], p["price"], p["quantity"]) for p in completed["properties"]["products"]] == [
        ("IPOD2008PINK", 199.0, 1),
        ("IPOD2008PINK", 199.0, 1),
    ]
