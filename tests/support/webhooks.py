"""The providers' documented example payloads (tests/fixtures/webhooks/) and their signing, done
as each provider does it, so the tests send what Shopify's and Stripe's servers send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SHOPIFY_SECRET = "shpss_test_0123456789abcdef"
STRIPE_SECRET = "whsec_test_0123456789abcdef"


def fixture(provider: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())  # type: ignore[no-any-return]


def body_of(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def shopify_headers(raw: bytes, topic: str, webhook_id: str, secret: str = SHOPIFY_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).digest()
    return {
        "x-shopify-hmac-sha256": base64.b64encode(digest).decode(),
        "x-shopify-topic": topic,
        "x-shopify-webhook-id": webhook_id,
        "x-shopify-shop-domain": "example.myshopify.com",
        "x-shopify-api-version": "2024-10",
        "content-type": "application/json",
    }


def stripe_headers(
    raw: bytes, signed_at: int, secret: str = STRIPE_SECRET, *, extra_v1: str | None = None
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{signed_at}.".encode() + raw, hashlib.sha256).hexdigest()
    v1 = f",v1={extra_v1}" if extra_v1 else ""
    return {"stripe-signature": f"t={signed_at}{v1},v1={digest}", "content-type": "application/json"}


def hmac_hex(raw: bytes, secret: str, prefix: str = "") -> str:
    return prefix + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def hmac_base64(raw: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


GENERIC_SECRET = "whsec_generic_0123456789abcdef"

# A CRM's contact webhook: an array of subscription events, each a contact created or changed (a
# company event among them is not a person). The CRM's id is an anonymousId, not a userId: the
# site's own userId must still be able to join the person (a profile holds one userId).
CONTACT_MAPPING: dict[str, Any] = {
    "auth": {"type": "hmac", "header": "X-Signature", "encoding": "hex", "prefix": "sha256="},
    "calls": [
        {
            "type": "identify",
            "each": "[?starts_with(subscriptionType, 'contact.')]",
            "anonymousId": "join(':', ['crm', to_string(objectId)])",
            "traits": {
                "email": "properties.email",
                "firstName": "properties.firstname",
                "lastName": "properties.lastname",
                "phone": "properties.phone",
            },
            "messageId": "to_string(eventId)",
            "timestamp": "occurredAt",
        },
        {
            "type": "track",
            "each": "[*]",
            "when": "subscriptionType == 'contact.propertyChange' && propertyName == 'lifecyclestage'",
            "event": "'Lifecycle Stage Changed'",
            "anonymousId": "join(':', ['crm', to_string(objectId)])",
            "properties": {"stage": "propertyValue"},
            "messageId": "to_string(eventId)",
            "timestamp": "occurredAt",
        },
    ],
}

# A CRM's deal webhook: one deal changed; a deal that became won is a Deal Won of its contact.
DEAL_MAPPING: dict[str, Any] = {
    "auth": {"type": "hmac", "header": "X-Crm-Signature", "encoding": "base64"},
    "calls": [
        {
            "type": "track",
            "when": "meta.entity == 'deal' && data.status == 'won' && previous.status != 'won'",
            "event": "'Deal Won'",
            "anonymousId": "join(':', ['crm', to_string(data.person_id)])",
            # One expression that yields the whole object (a JMESPath multiselect hash).
            "properties": "{deal_id: to_string(data.id), title: data.title, value: data.value, "
            "currency: data.currency}",
            "messageId": "meta.id",
            "timestamp": "meta.timestamp",
        }
    ],
}

# A customer-service ticket: the requester (by email) and the ticket as a track call.
TICKET_MAPPING: dict[str, Any] = {
    "auth": {"type": "bearer"},
    "calls": [
        {
            "type": "identify",
            "anonymousId": "join(':', ['support', detail.requester_id])",
            "traits": {"email": "requester.email", "name": "requester.name"},
            "messageId": "id",
            "timestamp": "time",
        },
        {
            "type": "track",
            "when": "type == 'zen:event-type:ticket.created'",
            "event": "'Ticket Created'",
            "anonymousId": "join(':', ['support', detail.requester_id])",
            "properties": {
                "ticket_id": "detail.id",
                "subject": "detail.subject",
                "priority": "detail.priority",
                "tags": "detail.tags",
                "channel": "detail.via.channel",
            },
            "messageId": "id",
            "timestamp": "time",
        },
    ],
}
