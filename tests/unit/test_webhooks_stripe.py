"""Stripe's documented event payloads: the Stripe-Signature scheme with its five-minute tolerance,
and events mapped to Segment's e-commerce spec with amounts in major units (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from midstage.errors import Unauthorized
from midstage.logic.webhooks import stripe
from tests.support.webhooks import STRIPE_SECRET, body_of, fixture, stripe_headers

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SIGNED = int(NOW.timestamp())


def only(name: str) -> dict[str, Any]:
    mapped = stripe.calls(fixture("stripe", name))
    assert mapped.ignored is None, mapped.ignored
    (call,) = mapped.calls
    assert isinstance(call, dict)
    return call


def test_a_signature_made_as_stripe_makes_it_passes_and_a_forged_one_fails() -> None:
    raw = body_of(fixture("stripe", "invoice_paid"))
    stripe.verify(STRIPE_SECRET, raw, stripe_headers(raw, SIGNED), now=NOW)
    with pytest.raises(Unauthorized) as forged:
        stripe.verify(STRIPE_SECRET, raw, stripe_headers(raw, SIGNED, "whsec_someone_else"), now=NOW)
    assert forged.value.code == "invalid_signature"
    # The signed timestamp is part of what is signed: moving it breaks the signature
    moved = stripe_headers(raw, SIGNED)["stripe-signature"].replace(f"t={SIGNED}", f"t={SIGNED + 1}")
    with pytest.raises(Unauthorized):
        stripe.verify(STRIPE_SECRET, raw, {"stripe-signature": moved}, now=NOW)


def test_any_of_several_v1_signatures_may_match_while_a_secret_is_rolled() -> None:
    raw = body_of(fixture("stripe", "customer_created"))
    headers = stripe_headers(raw, SIGNED, extra_v1="00" * 32)
    stripe.verify(STRIPE_SECRET, raw, headers, now=NOW)


def test_a_signature_older_than_five_minutes_is_refused_as_a_replay() -> None:
    # Given a delivery signed 5 min 1 s before the function's clock
    raw = body_of(fixture("stripe", "invoice_paid"))
    headers = stripe_headers(raw, SIGNED - 301)
    # Then it is refused with its code, while one signed 5 min before passes
    with pytest.raises(Unauthorized) as stale:
        stripe.verify(STRIPE_SECRET, raw, headers, now=NOW)
    assert stale.value.code == "stale_signature"
    stripe.verify(STRIPE_SECRET, raw, stripe_headers(raw, SIGNED - 300), now=NOW)
    # And one dated more than five minutes ahead is refused too
    with pytest.raises(Unauthorized) as ahead:
        stripe.verify(STRIPE_SECRET, raw, stripe_headers(raw, SIGNED), now=NOW - timedelta(minutes=6))
    assert ahead.value.code == "future_signature"


def test_a_header_without_t_or_v1_is_refused() -> None:
    raw = b"{}"
    for header in ("v1=abc", f"t={SIGNED}", "garbage", f"t=soon,v1={'0' * 64}"):
        with pytest.raises(Unauthorized) as refused:
            stripe.verify(STRIPE_SECRET, raw, {"stripe-signature": header}, now=NOW)
        assert refused.value.code == "invalid_signature"
    with pytest.raises(Unauthorized) as missing:
        stripe.verify(STRIPE_SECRET, raw, {}, now=NOW)
    assert missing.value.code == "missing_signature"


def test_a_paid_checkout_session_is_order_completed_in_dollars() -> None:
    call = only("checkout_session_completed")
    assert call["event"] == "Order Completed"
    assert call["messageId"] == "stripe:evt_1Ep24XHssDVaQm2PpwS19Yt0"
    assert call["anonymousId"] == "stripe:cus_NffrFeUfNV2Hib"
    assert call["context"]["traits"] == {"email": "jenny.rosen@example.com", "name": "Jenny Rosen"}
    assert call["timestamp"] == "2026-11-22T09:59:50+00:00"
    assert call["properties"] == {
        "order_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "checkout_id": "cs_test_a1b2c3d4e5f6g7h8i9j0",
        "revenue": 21.98,
        "total": 21.98,
        "currency": "USD",
    }


def test_an_invoice_in_yen_keeps_its_amount_since_yen_has_no_minor_unit() -> None:
    call = only("invoice_paid")
    assert call["event"] == "Order Completed"
    assert (call["properties"]["revenue"], call["properties"]["total"], call["properties"]["currency"]) == (
        3000.0,
        3000.0,
        "JPY",
    )
    assert call["properties"]["products"] == [
        {
            "product_id": "prod_NffrSxqbmuHu8d",
            "sku": "price_1NG8Ds2eZvKYlo2CDkLQpwrz",
            "name": "1 \u00d7 Monthly box (at \u00a53,000 / month)",
            "price": 3000.0,
            "quantity": 1,
        }
    ]


@pytest.mark.parametrize(
    ("amount", "currency", "major"),
    [(1999, "USD", 19.99), (500, "JPY", 500.0), (1050, "KRW", 1050.0), (12345, "KWD", 12.345), (5, "EUR", 0.05)],
)
def test_amounts_are_converted_by_the_currency_exponent(amount: int, currency: str, major: float) -> None:
    assert stripe.major_units(amount, currency) == major


def test_a_refunded_charge_is_order_refunded_on_the_order_it_paid() -> None:
    call = only("charge_refunded")
    order = only("checkout_session_completed")
    assert call["event"] == "Order Refunded"
    assert call["properties"]["order_id"] == order["properties"]["order_id"]
    assert (call["properties"]["total"], call["properties"]["currency"]) == (10.99, "USD")


def test_a_customer_is_an_identify_with_email_name_and_phone() -> None:
    call = only("customer_created")
    assert call["type"] == "identify"
    assert call["anonymousId"] == "stripe:cus_NffrFeUfNV2Hib"
    assert call["traits"]["email"] == "jennyrosen@example.com"
    assert (call["traits"]["name"], call["traits"]["phone"]) == ("Jenny Rosen", "+15555550123")
    updated = fixture("stripe", "customer_created") | {"type": "customer.updated", "id": "evt_2"}
    assert stripe.calls(updated).calls[0]["messageId"] == "stripe:evt_2"  # type: ignore[index]


def test_unpaid_subscription_and_unmapped_events_are_ignored() -> None:
    session = fixture("stripe", "checkout_session_completed")
    session["data"]["object"]["payment_status"] = "unpaid"
    assert stripe.calls(session).ignored is not None
    session["data"]["object"] |= {"payment_status": "paid", "mode": "subscription"}
    assert "invoice.paid" in (stripe.calls(session).ignored or "")
    other = fixture("stripe", "customer_created") | {"type": "payment_intent.created"}
    assert stripe.calls(other).ignored is not None
    assert stripe.calls({"hello": "world"}).ignored is not None
