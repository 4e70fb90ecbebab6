"""Shopify webhooks: the signature, and topics mapped to Segment's e-commerce spec.

Who a call is about: Shopify's customer id, namespaced (`shopify:<id>`), as the anonymousId and
as an external id (`shopify_customer_id`), with the email and phone as traits, so OneID joins
the shop's customer to the person a later Segment `identify` with the same email names. The
customer id is not the userId because a profile holds one userId (IDENTITY_LIMITS), and the
site's own userId must be able to join it.

Dedupe: `X-Shopify-Webhook-Id` is the messageId basis, so a redelivery is the same event. Two
calls are keyed on what they are about instead: Order Completed on the order (orders/create and
orders/paid both mean it; an order counts once however many of them a shop subscribes to), and
Checkout Started on the checkout (checkouts/update repeats it on every change of the cart).

A checkout is mapped once it names someone (an email, a phone or a customer): a guest's checkout
is created before the contact step, and Checkout Started without anyone to reach would take the
checkout's one messageId and keep the later update with the email out (an abandoned-checkout
journey enters on the first Checkout Started it sees). Until then its webhooks are answered as
ignored, with the reason.

`buyer_accepts_marketing: true` on an order or a checkout (the box at checkout) is recorded as an
email-marketing grant at the time of the order or checkout; `false` is no choice (the box left
unticked), so it records nothing and undoes no earlier grant.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from midstage.errors import Unauthorized
from midstage.logic.webhooks import Mapped, number, obj, present, required_header, same_digest, sign, text

TOPICS = (
    "orders/create",
    "orders/paid",
    "orders/cancelled",
    "refunds/create",
    "checkouts/create",
    "checkouts/update",
    "customers/create",
    "customers/update",
)
SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
# Consent states that say what the customer chose; `pending` (double opt-in under way) and
# `not_subscribed` (never asked) are kept as traits but record no choice.
_CHOICES = {"subscribed": True, "unsubscribed": False}


def verify(secret: str, raw: bytes, headers: Mapping[str, str]) -> None:
    """Shopify signs the raw body: base64 of its HMAC-SHA256 with the app's secret."""
    given = required_header(headers, SIGNATURE_HEADER)
    if not same_digest(sign(secret, raw), given, "base64"):
        raise Unauthorized("the X-Shopify-Hmac-Sha256 signature does not match the body", code="invalid_signature")


def calls(topic: str, webhook_id: str, body: Any) -> Mapped:
    if topic not in TOPICS:
        return Mapped(ignored=f"the topic '{topic[:100]}' is not one Midstage maps", topic=topic)
    if not isinstance(body, dict):
        return Mapped(ignored="the body is not a JSON object", topic=topic)
    made: list[dict[str, Any]]
    if topic in ("orders/create", "orders/paid"):
        order = _order(
            body, "Order Completed", f"shopify-order-completed:{body.get('id')}", _when(body, "processed_at")
        )
        made = [order, *_accepts_marketing(body, order, f"order:{body.get('id')}")]
    elif topic == "orders/cancelled":
        made = [_order(body, "Order Cancelled", f"shopify:{webhook_id}", _when(body, "cancelled_at"))]
    elif topic == "refunds/create":
        made = [_refund(body, f"shopify:{webhook_id}")]
    elif topic in ("checkouts/create", "checkouts/update"):
        made = _checkout(body)
        if not made:
            return Mapped(
                ignored="the checkout names no one yet (no email, phone or customer): it is mapped when an"
                " update brings one",
                topic=topic,
            )
    else:
        made = _customer(body, webhook_id)
    return Mapped(calls=list(made), topic=topic)


def _when(body: Mapping[str, Any], first: str) -> Any:
    return body.get(first) or body.get("created_at")


def _person(customer: Any, fallback: str, *, email: Any = None, phone: Any = None) -> dict[str, Any]:
    """The call's identifiers: the customer's namespaced id (else `fallback`), email and phone."""
    customer = customer if isinstance(customer, dict) else {}
    customer_id = text(customer.get("id"))
    traits = present(
        {
            "email": email or customer.get("email"),
            "phone": phone or customer.get("phone"),
            "firstName": customer.get("first_name"),
            "lastName": customer.get("last_name"),
        }
    )
    context: dict[str, Any] = {"integration": {"name": "shopify"}}
    if traits:
        context["traits"] = traits
    if customer_id:
        context["externalIds"] = [
            {"id": customer_id, "type": "shopify_customer_id", "collection": "users", "encoding": "none"}
        ]
    return {"anonymousId": f"shopify:{customer_id}" if customer_id else fallback, "context": context}


def _products(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    products = []
    for item in items[:500]:
        if not isinstance(item, dict):
            continue
        products.append(
            present(
                {
                    "product_id": text(item.get("product_id")),
                    "variant": text(item.get("variant_id")),
                    "sku": item.get("sku"),
                    "name": item.get("title") or item.get("name"),
                    "price": number(item.get("price")),
                    "quantity": item.get("quantity"),
                }
            )
        )
    return products


def _order(body: dict[str, Any], event: str, message_id: str, timestamp: Any) -> dict[str, Any]:
    order_id = text(body.get("id"))
    person = _person(
        body.get("customer"), f"shopify-order:{order_id}", email=body.get("email"), phone=body.get("phone")
    )
    if order_id:
        # The refund names only the order: this lets Order Refunded find the same person.
        person["context"].setdefault("externalIds", []).append(
            {"id": order_id, "type": "shopify_order_id", "collection": "orders", "encoding": "none"}
        )
    codes = body.get("discount_codes")
    coupon = codes[0].get("code") if isinstance(codes, list) and codes and isinstance(codes[0], dict) else None
    properties = present(
        {
            "order_id": order_id,
            "checkout_id": text(body.get("checkout_token") or body.get("checkout_id")),
            # Segment's `revenue` is the order's value before shipping and tax; `total` includes them.
            "revenue": number(body.get("current_subtotal_price") or body.get("subtotal_price")),
            "total": number(body.get("current_total_price") or body.get("total_price")),
            "tax": number(body.get("current_total_tax") or body.get("total_tax")),
            "shipping": number(_shop_money(body.get("total_shipping_price_set"))),
            "discount": number(body.get("current_total_discounts") or body.get("total_discounts")),
            "coupon": coupon,
            "currency": _currency(body.get("currency")),
            "products": _products(body.get("line_items")),
            "order_number": body.get("name"),
            "reason": body.get("cancel_reason") if event == "Order Cancelled" else None,
        }
    )
    return {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "timestamp": timestamp,
        **person,
        "properties": properties,
    }


def _refund(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    order_id = text(body.get("order_id"))
    person: dict[str, Any] = {
        "anonymousId": f"shopify-order:{order_id}",
        "context": {
            "integration": {"name": "shopify"},
            "externalIds": [{"id": order_id, "type": "shopify_order_id", "collection": "orders", "encoding": "none"}],
        },
    }
    transactions = [
        t
        for t in body.get("transactions") or []
        if isinstance(t, dict) and t.get("kind") == "refund" and t.get("status") in (None, "success")
    ]
    total = sum((number(t.get("amount")) or 0.0 for t in transactions), 0.0)
    # The quantity refunded, not the line's quantity ordered.
    items = [
        {**obj(r.get("line_item")), "quantity": r.get("quantity")}
        for r in body.get("refund_line_items") or []
        if isinstance(r, dict) and isinstance(r.get("line_item"), dict)
    ]
    properties = present(
        {
            "order_id": order_id,
            "refund_id": text(body.get("id")),
            "total": round(total, 6) if transactions else None,
            "currency": _currency(transactions[0].get("currency")) if transactions else None,
            "products": _products(items),
            "reason": body.get("note"),
        }
    )
    return {
        "type": "track",
        "event": "Order Refunded",
        "messageId": message_id,
        "timestamp": body.get("processed_at") or body.get("created_at"),
        **person,
        "properties": properties,
    }


def _checkout(body: dict[str, Any]) -> list[dict[str, Any]]:
    token = text(body.get("token"))
    person = _person(
        body.get("customer"), f"shopify-checkout:{token}", email=body.get("email"), phone=body.get("phone")
    )
    if not person["context"].get("traits", {}).keys() & {"email", "phone"} and "externalIds" not in person["context"]:
        return []
    properties = present(
        {
            "checkout_id": token,
            "value": number(body.get("total_price")),
            "revenue": number(body.get("subtotal_price")),
            "tax": number(body.get("total_tax")),
            "discount": number(body.get("total_discounts")),
            "currency": _currency(body.get("currency") or body.get("presentment_currency")),
            "products": _products(body.get("line_items")),
            "url": body.get("abandoned_checkout_url"),
        }
    )
    checkout = {
        "type": "track",
        "event": "Checkout Started",
        "messageId": f"shopify-checkout-started:{token}",
        "timestamp": body.get("created_at"),
        **person,
        "properties": properties,
    }
    return [checkout, *_accepts_marketing(body, checkout, f"checkout:{token}")]


def _accepts_marketing(body: Mapping[str, Any], call: Mapping[str, Any], about: str) -> list[dict[str, Any]]:
    """The email-marketing grant of a ticked `buyer_accepts_marketing`, about the call's person, at
    its time; once per order or checkout (its messageId is keyed on it)."""
    if body.get("buyer_accepts_marketing") is not True:
        return []
    return [
        {
            "type": "track",
            "event": "Consent Updated",
            "messageId": f"shopify-accepts-marketing:{about}",
            "timestamp": call.get("timestamp"),
            "anonymousId": call["anonymousId"],
            "context": copy.deepcopy(call["context"]),
            "properties": {
                "channel": "email",
                "purpose": "marketing",
                "granted": True,
                "source": "webhook:shopify",
                "opt_in_level": "buyer_accepts_marketing",
            },
        }
    ]


def _customer(body: dict[str, Any], webhook_id: str) -> list[dict[str, Any]]:
    person = _person(body, f"shopify:{body.get('id')}")
    consents = {
        "email": body.get("email_marketing_consent"),
        "sms": body.get("sms_marketing_consent"),
    }
    traits = present(
        {
            **person["context"].pop("traits", {}),
            "createdAt": body.get("created_at"),
            "email_marketing_consent": _state(consents["email"]),
            "sms_marketing_consent": _state(consents["sms"]),
            "accepts_marketing": body.get("accepts_marketing"),
            "tags": body.get("tags"),
            "verified_email": body.get("verified_email"),
        }
    )
    timestamp = body.get("updated_at") or body.get("created_at")
    # Each call its own context: nothing downstream may see one call's change in another.
    made: list[dict[str, Any]] = [
        {"type": "identify", "messageId": f"shopify:{webhook_id}", "timestamp": timestamp, **person, "traits": traits}
    ]
    for channel, consent in consents.items():
        granted = _CHOICES.get(str(_state(consent)))
        if granted is None or not isinstance(consent, dict):
            continue
        # The consent as the customer gave it, at the time Shopify says it was given.
        made.append(
            {
                "type": "track",
                "event": "Consent Updated",
                "messageId": f"shopify:{webhook_id}:consent:{channel}",
                "timestamp": consent.get("consent_updated_at") or timestamp,
                **person,
                "context": copy.deepcopy(person["context"]),
                "properties": present(
                    {
                        "channel": channel,
                        "purpose": "marketing",
                        "granted": granted,
                        "source": "webhook:shopify",
                        "opt_in_level": consent.get("opt_in_level"),
                    }
                ),
            }
        )
    return made


def _state(consent: Any) -> Any:
    return consent.get("state") if isinstance(consent, dict) else None


def _shop_money(price_set: Any) -> Any:
    if isinstance(price_set, dict) and isinstance(price_set.get("shop_money"), dict):
        return price_set["shop_money"].get("amount")
    return None


def _currency(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value else None
