"""Stripe webhooks: the `Stripe-Signature` scheme and events mapped to Segment's e-commerce spec.

Stripe signs `<t>.<raw body>` with the endpoint's secret (HMAC-SHA256, hex) and sends
`t=<unix seconds>,v1=<hex>[,v1=<hex>...]` (several v1 while a secret is being rolled). A
signature more than five minutes from the receiving clock is refused: an old one is a replay.

Who a call is about: the Stripe customer id, namespaced (`stripe:<id>`), as the anonymousId and
as an external id (`stripe_customer_id`), with the email as a trait so OneID joins the person the
site knows; a guest checkout without a customer is keyed on the session. Amounts come in the
currency's minor units and are converted by its exponent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from midstage.errors import Unauthorized
from midstage.logic.webhooks import Mapped, iso_from_unix, obj, present, required_header, same_digest, sign, text

SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_SECONDS = 300
EVENTS = ("checkout.session.completed", "invoice.paid", "charge.refunded", "customer.created", "customer.updated")
# ISO 4217 as Stripe uses it: these have no minor unit, these three. Every other currency has two.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def verify(secret: str, raw: bytes, headers: Mapping[str, str], *, now: datetime) -> None:
    header = required_header(headers, SIGNATURE_HEADER)
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                timestamp = None
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise Unauthorized("the Stripe-Signature header needs t= and v1=", code="invalid_signature")
    expected = sign(secret, str(timestamp).encode() + b"." + raw)
    if not any(same_digest(expected, given, "hex") for given in signatures):
        raise Unauthorized("no v1 signature in Stripe-Signature matches the body", code="invalid_signature")
    # Judged only once the signature holds, so a forged header learns nothing about the clock.
    age = now.timestamp() - timestamp
    if age > TOLERANCE_SECONDS:
        raise Unauthorized(
            f"the signature is {int(age)} s old; more than {TOLERANCE_SECONDS} s is refused as a replay",
            code="stale_signature",
        )
    if age < -TOLERANCE_SECONDS:
        raise Unauthorized(
            f"the signature is dated {int(-age)} s ahead of this clock (at most {TOLERANCE_SECONDS})",
            code="future_signature",
        )


def major_units(amount: Any, currency: str) -> float | None:
    """A Stripe amount in the currency's major unit (1999 USD cents: 19.99; 500 JPY: 500)."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return None
    exponent = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return float(Decimal(amount).scaleb(-exponent))


def calls(body: Any) -> Mapped:
    if not isinstance(body, dict) or body.get("object") != "event" or not isinstance(body.get("data"), dict):
        return Mapped(ignored="the body is not a Stripe event", topic="")
    kind = str(body.get("type", ""))[:100]
    subject = body["data"].get("object")
    if kind not in EVENTS:
        return Mapped(ignored=f"the event type '{kind}' is not one Midstage maps", topic=kind)
    if not isinstance(subject, dict):
        return Mapped(ignored="the event has no data.object", topic=kind)
    event_id = text(body.get("id"))
    base = {"messageId": f"stripe:{event_id}", "timestamp": iso_from_unix(body.get("created"))}
    if kind == "checkout.session.completed":
        if subject.get("mode") != "payment":
            # A subscription's first payment is its invoice.paid: counted there, not twice.
            return Mapped(ignored=f"a {subject.get('mode')} session's payment is mapped from invoice.paid", topic=kind)
        if subject.get("payment_status") not in ("paid", "no_payment_required"):
            return Mapped(ignored="the session is not paid yet (an asynchronous payment)", topic=kind)
        details = obj(subject.get("customer_details"))
        person = _person(
            subject.get("customer"),
            f"stripe-checkout:{subject.get('id')}",
            email=details.get("email") or subject.get("customer_email"),
            name=details.get("name"),
            phone=details.get("phone"),
        )
        currency = _currency(subject.get("currency"))
        properties = present(
            {
                "order_id": text(subject.get("payment_intent")) or text(subject.get("id")),
                "checkout_id": text(subject.get("id")),
                "revenue": major_units(subject.get("amount_subtotal"), currency),
                "total": major_units(subject.get("amount_total"), currency),
                "currency": currency,
                "products": _lines(subject.get("line_items"), currency),
            }
        )
        return Mapped(
            [{**base, "type": "track", "event": "Order Completed", **person, "properties": properties}], topic=kind
        )
    if kind == "invoice.paid":
        person = _person(
            subject.get("customer"),
            f"stripe-invoice:{subject.get('id')}",
            email=subject.get("customer_email"),
            name=subject.get("customer_name"),
            phone=subject.get("customer_phone"),
        )
        currency = _currency(subject.get("currency"))
        properties = present(
            {
                "order_id": text(subject.get("id")),
                "revenue": major_units(subject.get("subtotal"), currency),
                "total": major_units(subject.get("amount_paid"), currency),
                "tax": major_units(subject.get("tax"), currency),
                "currency": currency,
                "products": _lines(subject.get("lines"), currency),
                "subscription_id": text(subject.get("subscription")),
            }
        )
        return Mapped(
            [{**base, "type": "track", "event": "Order Completed", **person, "properties": properties}], topic=kind
        )
    if kind == "charge.refunded":
        billing = obj(subject.get("billing_details"))
        person = _person(
            subject.get("customer"),
            f"stripe-charge:{subject.get('id')}",
            email=billing.get("email") or subject.get("receipt_email"),
            name=billing.get("name"),
            phone=billing.get("phone"),
        )
        currency = _currency(subject.get("currency"))
        properties = present(
            {
                # The order a refund undoes, named as its Order Completed named it.
                "order_id": text(subject.get("invoice"))
                or text(subject.get("payment_intent"))
                or text(subject.get("id")),
                "charge_id": text(subject.get("id")),
                "total": major_units(subject.get("amount_refunded"), currency),
                "currency": currency,
            }
        )
        return Mapped(
            [{**base, "type": "track", "event": "Order Refunded", **person, "properties": properties}], topic=kind
        )
    person = _person(
        subject.get("id"),
        f"stripe:{subject.get('id')}",
        email=subject.get("email"),
        name=subject.get("name"),
        phone=subject.get("phone"),
    )
    traits = present(
        {
            **person["context"].pop("traits", {}),
            "createdAt": iso_from_unix(subject.get("created")),
            "description": subject.get("description"),
        }
    )
    return Mapped([{**base, "type": "identify", **person, "traits": traits}], topic=kind)


def _person(customer: Any, fallback: str, *, email: Any, name: Any, phone: Any) -> dict[str, Any]:
    customer_id = customer.get("id") if isinstance(customer, dict) else text(customer)
    context: dict[str, Any] = {"integration": {"name": "stripe"}}
    traits = present({"email": email, "name": name, "phone": phone})
    if traits:
        context["traits"] = traits
    if customer_id:
        context["externalIds"] = [
            {"id": customer_id, "type": "stripe_customer_id", "collection": "users", "encoding": "none"}
        ]
    return {"anonymousId": f"stripe:{customer_id}" if customer_id else fallback, "context": context}


def _lines(lines: Any, currency: str) -> list[dict[str, Any]]:
    """Line items when the event carries them (an invoice's `lines`, an expanded session's)."""
    data = lines.get("data") if isinstance(lines, dict) else None
    if not isinstance(data, list):
        return []
    products = []
    for line in data[:500]:
        if not isinstance(line, dict):
            continue
        price = obj(line.get("price"))
        product = price.get("product")
        quantity = line.get("quantity")
        unit = price.get("unit_amount")
        if unit is None and isinstance(line.get("amount"), int) and isinstance(quantity, int) and quantity:
            unit = line["amount"] // quantity
        products.append(
            present(
                {
                    "product_id": product.get("id") if isinstance(product, dict) else text(product),
                    "sku": text(price.get("id")),
                    "name": line.get("description"),
                    "price": major_units(unit, currency),
                    "quantity": quantity,
                }
            )
        )
    return products


def _currency(value: Any) -> str:
    return value.upper() if isinstance(value, str) else ""
