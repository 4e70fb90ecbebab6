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
