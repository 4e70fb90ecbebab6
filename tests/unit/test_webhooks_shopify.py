"""Shopify's documented webhook payloads mapped to Segment's e-commerce spec (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from midstage.errors import Unauthorized
from midstage.logic.webhooks import shopify
from tests.support.webhooks import SHOPIFY_SECRET, body_of, fixture, shopify_headers


def only(topic: str, name: str, webhook_id: str = "wh-1") -> dict[str, Any]:
    mapped = shopify.calls(topic, webhook_id, fixture("shopify", name))
    assert mapped.ignored is None
    call = mapped.calls[0]
    assert isinstance(call, dict)
    return call


def test_a_body_signed_with_the_secret_passes_and_any_change_fails() -> None:
    # Given an order signed as Shopify signs it
    raw = body_of(fixture("shopify", "orders_create"))
    headers = shopify_headers(raw, "orders/create", "wh-1")
    # When it is verified as sent, it passes
    shopify.verify(SHOPIFY_SECRET, raw, headers)
    # Then one changed byte, another secret or no header each fail with a code
    with pytest.raises(Unauthorized) as changed:
        shopify.verify(SHOPIFY_SECRET, raw.replace(b"403.00", b"4.00"), headers)
    assert changed.value.code == "invalid_signature"
    with pytest.raises(Unauthorized):
        shopify.verify("another-secret-entirely", raw, headers)
    with pytest.raises(Unauthorized) as missing:
        shopify.verify(SHOPIFY_SECRET, raw, {})
    assert missing.value.code == "missing_signature"


def test_an_order_is_order_completed_with_revenue_currency_and_products() -> None:
    # Given Shopify's example orders/create payload
    call = only("orders/create", "orders_create")
    # Then it is an Order Completed keyed on the order, about the namespaced customer, with the email
    assert call["event"] == "Order Completed"
    assert call["messageId"] == "shopify-order-completed:820982911946154508"
    assert call["anonymousId"] == "shopify:115310627314723954"
    assert call["context"]["traits"] == {"email": "jon@example.com", "firstName": "John", "lastName": "Smith"}
    assert {"id": "115310627314723954", "type": "shopify_customer_id", "collection": "users", "encoding": "none"} in (
        call["context"]["externalIds"]
    )
    assert call["timestamp"] == "2021-12-31T19:00:00-05:00"
    properties = call["properties"]
    assert properties["order_id"] == "820982911946154508"
    assert (properties["revenue"], properties["total"], properties["shipping"]) == (398.0, 403.0, 10.0)
    assert properties["currency"] == "USD"
    assert (
        properties["products"]
        == [
            {
                "product_id": "632910392",
                "variant": "808950810",
                "sku": "IPOD2008PINK",
                "name": "IPod Nano - 8GB",
                "price": 199.0,
                "quantity": 1,
            },
        ]
        * 2
    )


def test_orders_paid_for_the_same_order_makes_the_same_event_so_it_counts_once() -> None:
    # Given the order's create and paid deliveries (two webhook ids)
    created = only("orders/create", "orders_create", "wh-1")
    paid = only("orders/paid", "orders_create", "wh-2")
    # Then both are one Order Completed by messageId
    assert created["messageId"] == paid["messageId"]


def test_a_cancelled_order_is_order_cancelled_keyed_on_the_webhook_id() -> None:
    call = only("orders/cancelled", "orders_cancelled", "wh-9")
    assert call["event"] == "Order Cancelled"
    assert call["messageId"] == "shopify:wh-9"
    assert call["timestamp"] == "2022-01-01T09:15:00-05:00"
    assert call["properties"]["reason"] == "customer"


def test_a_refund_is_order_refunded_on_the_order_it_undoes() -> None:
    # Given a refund (its payload names only the order, not the customer)
    call = only("refunds/create", "refunds_create", "wh-3")
    # Then it finds the person by the order id the Order Completed attached
    assert call["event"] == "Order Refunded"
    assert call["anonymousId"] == "shopify-order:820982911946154508"
    assert call["context"]["externalIds"][0]["type"] == "shopify_order_id"
    order = only("orders/create", "orders_create")
    assert {"id": "820982911946154508", "type": "shopify_order_id", "collection": "orders", "encoding": "none"} in (
        order["context"]["externalIds"]
    )
    assert call["properties"]["total"] == 199.0
    assert call["properties"]["currency"] == "USD"
    assert call["properties"]["products"][0]["sku"] == "IPOD2008PINK"


def test_a_checkout_is_checkout_started_once_per_checkout() -> None:
    created = only("checkouts/create", "checkouts_create", "wh-4")
    updated = only("checkouts/update", "checkouts_create", "wh-5")
    assert created["event"] == "Checkout Started"
    assert created["messageId"] == updated["messageId"] == "shopify-checkout-started:123123123"
    assert created["properties"]["value"] == 39.98
    assert created["properties"]["products"][0] == {
        "product_id": "788032119674292922",
        "variant": "642667041472713922",
        "sku": "SKU123",
        "name": "Shirt",
        "price": 19.99,
        "quantity": 2,
    }
    assert created["context"]["traits"]["email"] == "example@email.com"


def test_a_guest_checkout_is_mapped_from_the_first_webhook_that_names_someone() -> None:
    # Given a guest's checkout created before the contact step (no email, phone or customer)
    guest = fixture("shopify", "checkouts_create")
    guest.update(email=None, phone=None, customer=None)
    created = shopify.calls("checkouts/create", "wh-7", guest)
    # Then it is ignored, with the reason, and takes no messageId
    assert created.calls == []
    assert created.ignored is not None and "names no one yet" in created.ignored
    # When the update after the contact step brings the email
    contact = {**guest, "email": "guest@example.com"}
    (started,) = shopify.calls("checkouts/update", "wh-8", contact).calls
    # Then that is the checkout's Checkout Started, about the email, at the checkout's creation
    assert isinstance(started, dict)
    assert (started["event"], started["messageId"]) == ("Checkout Started", "shopify-checkout-started:123123123")
    assert started["context"]["traits"] == {"email": "guest@example.com"}
    assert started["timestamp"] == guest["created_at"]


@pytest.mark.parametrize(
    ("topic", "name", "about"),
    [
        ("orders/create", "orders_create", "order:820982911946154508"),
        ("checkouts/create", "checkouts_create", "checkout:123123123"),
    ],
)
def test_a_ticked_buyer_accepts_marketing_is_an_email_grant_and_an_unticked_one_is_no_choice(
    topic: str, name: str, about: str
) -> None:
    body = fixture("shopify", name)
    ticked = shopify.calls(topic, "wh-9", {**body, "buyer_accepts_marketing": True}).calls
    assert len(ticked) == 2
    main, consent = ticked
    assert isinstance(main, dict) and isinstance(consent, dict)
    assert consent["event"] == "Consent Updated"
    assert consent["messageId"] == f"shopify-accepts-marketing:{about}"
    assert consent["properties"] == {
        "channel": "email",
        "purpose": "marketing",
        "granted": True,
        "source": "webhook:shopify",
        "opt_in_level": "buyer_accepts_marketing",
    }
    assert (consent["anonymousId"], consent["timestamp"]) == (main["anonymousId"], main["timestamp"])
    assert consent["context"] == main["context"] and consent["context"] is not main["context"]
    for unticked in (False, None, "true"):
        assert len(shopify.calls(topic, "wh-10", {**body, "buyer_accepts_marketing": unticked}).calls) == 1


def test_a_customer_is_an_identify_with_consent_as_given() -> None:
    # Given a customer who subscribed to email and was never asked for SMS
    mapped = shopify.calls("customers/create", "wh-6", fixture("shopify", "customers_create"))
    identify, consent = mapped.calls
    assert isinstance(identify, dict) and isinstance(consent, dict)
    # Then the identify carries the contact data and both consent states as Shopify gave them
    assert identify["type"] == "identify"
    assert identify["anonymousId"] == "shopify:706405506930370084"
    assert identify["traits"]["email"] == "bob@biller.com"
    assert identify["traits"]["phone"] == "+16136120707"
    assert (identify["traits"]["firstName"], identify["traits"]["lastName"]) == ("Bob", "Biller")
    assert identify["traits"]["email_marketing_consent"] == "subscribed"
    assert identify["traits"]["sms_marketing_consent"] == "not_subscribed"
    # And only the choice made (email: subscribed) records consent, at the time it was given
    assert consent["event"] == "Consent Updated"
    assert consent["properties"] == {
        "channel": "email",
        "purpose": "marketing",
        "granted": True,
        "source": "webhook:shopify",
        "opt_in_level": "confirmed_opt_in",
    }
    assert consent["timestamp"] == "2021-12-31T18:55:00-05:00"


def test_an_unmapped_topic_is_ignored_not_refused() -> None:
    mapped = shopify.calls("products/update", "wh-7", {"id": 1})
    assert mapped.calls == []
    assert mapped.ignored is not None and "products/update" in mapped.ignored
