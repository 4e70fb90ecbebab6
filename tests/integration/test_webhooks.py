"""Inbound webhooks through the real webhooks handler and the real admin API on moto: the source is
made over the admin API, the provider's signed delivery goes through the webhooks function (the tracking intake), the
queued events through the profile updater, and the person is read back over the admin API."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from midstage.adapters.config_store import ConfigStore
from midstage.clock import fixed
from tests.integration.conftest import Context, Stack
from tests.integration.test_admin_messaging import Answer, Api
from tests.integration.test_handlers import drain
from tests.support.webhooks import (
    CONTACT_MAPPING,
    DEAL_MAPPING,
    SHOPIFY_SECRET,
    STRIPE_SECRET,
    TICKET_MAPPING,
    body_of,
    fixture,
    hmac_base64,
    hmac_hex,
    shopify_headers,
    stripe_headers,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def setup(stack: Stack) -> tuple[Api, ModuleType]:
    config = ConfigStore(stack.output("ConfigTableName"), client=stack.clients.dynamodb())
    config.create_api_key("admin", "admin", "msk_admin", now=NOW)
    return Api(stack, stack.load("AdminFunction", fixed(NOW))), stack.load("WebhooksFunction", fixed(NOW))


def post(collect: ModuleType, source_id: str, raw: bytes, headers: dict[str, str]) -> Answer:
    path = f"/v1/webhooks/{source_id}"
    event = {
        "version": "2.0",
        "routeKey": "POST /v1/webhooks/{sourceId}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"sourceId": source_id},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "23.227.37.101"},
            "requestId": "req",
            "routeKey": "POST /v1/webhooks/{sourceId}",
            "stage": "$default",
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795341600000,
        },
        "body": raw.decode(),
        "isBase64Encoded": False,
    }
    answer = collect.lambda_handler(event, Context())
    return Answer(answer["statusCode"], json.loads(answer["body"]), answer.get("headers") or {})


def apply(stack: Stack) -> int:
    records = drain(stack)
    if records:
        updater = stack.load("ProfileUpdaterFunction")
        assert updater.lambda_handler({"Records": records}, Context()) == {"batchItemFailures": []}
    return len(records)


def profile(api: Api, ref: str) -> dict[str, Any]:
    shown = api.get(f"/v1/profiles/{ref}")
    assert shown.status == 200, shown.body
    return shown.body  # type: ignore[no-any-return]


def test_a_shopify_source_keeps_its_secret_to_itself(stack: Stack) -> None:
    # Given the admin API
    api, _ = setup(stack)
    # When a Shopify source is made without the secret Shopify shows, then it is refused
    missing = api.call("POST", "/v1/sources", {"name": "shop", "kind": "shopify"})
    assert missing.status == 400 and "signing_secret" in missing.body["message"]
    # When it is made with it, the answer holds the secret once
    created = api.call("POST", "/v1/sources", {"name": "shop", "kind": "shopify", "signing_secret": SHOPIFY_SECRET})
    assert created.status == 201, created.body
    assert created.body["kind"] == "shopify" and created.body["signing_secret"] == SHOPIFY_SECRET
    # Then reading, listing, updating and rotating never show it again
    source_id = created.body["id"]
    shown = [
        api.get(f"/v1/sources/{source_id}").body,
        api.get("/v1/sources").body["sources"][0],
        api.call("PATCH", f"/v1/sources/{source_id}", {"signing_secret": "shpss_rotated_secret"}).body,
        api.call("POST", f"/v1/sources/{source_id}/rotate-key").body,
    ]
    for body in shown:
        assert "signing_secret" not in body and body["signing_secret_set"] is True, body
    # And a source made as before is still a segment source, without a secret
    plain = api.call("POST", "/v1/sources", {"name": "web"})
    assert plain.body["kind"] == "segment" and "signing_secret_set" not in plain.body


def test_a_shopify_order_lands_once_on_one_person_and_a_refusal_changes_nothing(stack: Stack) -> None:
    # Given a Shopify source
    api, collect = setup(stack)
    created = api.call("POST", "/v1/sources", {"name": "shop", "kind": "shopify", "signing_secret": SHOPIFY_SECRET})
    source_id = created.body["id"]
    raw = body_of(fixture("shopify", "orders_create"))
    # When a forged, a malformed and an unknown-source delivery come first
    forged = post(collect, source_id, raw, shopify_headers(raw, "orders/create", "wh-1", secret="guessed-secret"))
    broken = b'{"id": 820982911946154508,'
    malformed = post(collect, source_id, broken, shopify_headers(broken, "orders/create", "wh-0"))
    nowhere = post(collect, "src_000000000000", raw, shopify_headers(raw, "orders/create", "wh-1"))
    # Then each has its answer and nothing was queued or quarantined
    assert (forged.status, forged.body["code"]) == (401, "invalid_signature")
    assert (malformed.status, malformed.body["code"]) == (400, "invalid_json")
    assert (nowhere.status, nowhere.body["code"]) == (404, "unknown_source")
    assert drain(stack) == []
    assert api.get(f"/v1/sources/{source_id}/quarantine").body["entries"] == []
    # When the signed order comes, is redelivered, and its orders/paid follows
    first = post(collect, source_id, raw, shopify_headers(raw, "orders/create", "wh-1"))
    again = post(collect, source_id, raw, shopify_headers(raw, "orders/create", "wh-1"))
    paid = post(collect, source_id, raw, shopify_headers(raw, "orders/paid", "wh-2"))
    assert [a.status for a in (first, again, paid)] == [200, 200, 200]
    # (the order, and the email-marketing grant of its ticked buyer_accepts_marketing)
    assert first.body == {"success": True, "topic": "orders/create", "accepted": 2}
    assert apply(stack) == 3
    # Then one person holds the order once, found by the email and by the Shopify customer id
    person = profile(api, "email:jon@example.com")
    assert person["computed"]["orders"] == 1
    assert person["computed"]["revenue"] == 398.0
    assert person["identities"]["x:shopify_customer_id"] == ["115310627314723954"]
    assert profile(api, "anonymous_id:shopify:115310627314723954")["id"] == person["id"]
    assert person["computed"]["event_counts"]["Consent Updated"]["total"] == 1
    (consent,) = api.get("/v1/profiles/email:jon@example.com/consent").body["consents"]
    assert consent == {
        "channel": "email",
        "purpose": "marketing",
        "state": "granted",
        "at": "2022-01-01T00:00:00.000Z",  # the order's time, not the webhook's
        "source": "webhook:shopify",
        "messageId": "shopify-accepts-marketing:order:820982911946154508",
    }


def test_a_shopify_refund_and_a_customer_find_the_person_of_the_order(stack: Stack) -> None:
    # Given a Shopify source and an order
    api, collect = setup(stack)
    source_id = api.call(
        "POST", "/v1/sources", {"name": "shop", "kind": "shopify", "signing_secret": SHOPIFY_SECRET}
    ).body["id"]
    order = body_of(fixture("shopify", "orders_create"))
    assert post(collect, source_id, order, shopify_headers(order, "orders/create", "wh-1")).status == 200
    apply(stack)
    # When the refund of that order comes (its payload names only the order)
    refund = body_of(fixture("shopify", "refunds_create"))
    answer = post(collect, source_id, refund, shopify_headers(refund, "refunds/create", "wh-2"))
    assert answer.body["accepted"] == 1
    apply(stack)
    # Then it is on the order's person
    person = profile(api, "email:jon@example.com")
    assert person["computed"]["event_counts"]["Order Refunded"]["total"] == 1
    # And a topic Midstage does not map is acknowledged and ignored
    other = body_of({"id": 1, "title": "Hat"})
    ignored = post(collect, source_id, other, shopify_headers(other, "products/update", "wh-3"))
    assert ignored.status == 200 and ignored.body["ignored"] is True
    assert drain(stack) == []


def test_a_shopify_checkout_and_its_updates_are_one_checkout_started(stack: Stack) -> None:
    # Given a Shopify source and a checkout started (checkouts/create)
    api, collect = setup(stack)
    source_id = api.call(
        "POST", "/v1/sources", {"name": "shop", "kind": "shopify", "signing_secret": SHOPIFY_SECRET}
    ).body["id"]
    checkout = fixture("shopify", "checkouts_create")
    raw = body_of(checkout)
    assert post(collect, source_id, raw, shopify_headers(raw, "checkouts/create", "wh-1")).status == 200
    # When the shopper changes the cart twice: Shopify sends checkouts/update each time
    for n, quantity in enumerate((3, 1), start=2):
        checkout["line_items"][0]["quantity"] = quantity
        changed = body_of(checkout)
        answer = post(collect, source_id, changed, shopify_headers(changed, "checkouts/update", f"wh-{n}"))
        assert answer.body == {"success": True, "topic": "checkouts/update", "accepted": 1}
    assert apply(stack) == 3
    # Then the person has started one checkout (what the abandoned-checkout journey enters on), as first sent
    person = profile(api, "email:example@email.com")
    assert person["computed"]["event_counts"]["Checkout Started"]["total"] == 1
    timeline = api.get("/v1/profiles/email:example@email.com/timeline").body["events"]
    [started] = [e for e in timeline if e.get("event") == "Checkout Started"]
    assert started["properties"]["products"][0]["quantity"] == 2


def test_a_stripe_payment_counts_once_and_a_stale_signature_changes_nothing(stack: Stack) -> None:
    # Given a Stripe source, and the function's clock at NOW
    api, webhooks = setup(stack)
    created = api.call("POST", "/v1/sources", {"name": "pay", "kind": "stripe", "signing_secret": STRIPE_SECRET})
    source_id = created.body["id"]
    raw = body_of(fixture("stripe", "invoice_paid"))
    now = int(NOW.timestamp())
    # When the event comes signed an hour ago (a captured delivery replayed)
    replayed = post(webhooks, source_id, raw, stripe_headers(raw, now - 3600))
    # Then it is refused with its code, and nothing is queued
    assert (replayed.status, replayed.body["code"]) == (401, "stale_signature")
    assert drain(stack) == []
    # When it comes signed now, and Stripe redelivers it (the same event id, signed anew)
    first = post(webhooks, source_id, raw, stripe_headers(raw, now - 2))
    again = post(webhooks, source_id, raw, stripe_headers(raw, now))
    assert first.body == {"success": True, "topic": "invoice.paid", "accepted": 1}
    assert again.status == 200
    assert apply(stack) == 2
    # Then the person has one order of 3,000 yen (JPY has no minor unit)
    person = profile(api, "email:jenny.rosen@example.com")
    assert person["computed"]["orders"] == 1
    assert person["computed"]["revenue_by_currency"] == {"JPY": 3000.0}
    assert person["identities"]["x:stripe_customer_id"] == ["cus_NffrFeUfNV2Hib"]


def test_generic_sources_map_a_crm_and_a_help_desk_onto_one_person(stack: Stack) -> None:
    # Given the admin API
    api, webhooks = setup(stack)
    # When a generic source is saved with an expression that does not compile
    bad = copy.deepcopy(CONTACT_MAPPING)
    bad["calls"][0]["traits"]["email"] = "properties.[email"
    refused = api.call("POST", "/v1/sources", {"name": "crm", "kind": "generic", "mapping": bad})
    # Then it is a 400 that says where
    assert refused.status == 400, refused.body
    assert "calls" in refused.body["message"] and "email" in refused.body["message"], refused.body
    # When the CRM's contact and deal sources and the help desk's are made (secrets drawn, shown once)
    made = {
        name: api.call("POST", "/v1/sources", {"name": name, "kind": "generic", "mapping": mapping}).body
        for name, mapping in (("contacts", CONTACT_MAPPING), ("deals", DEAL_MAPPING), ("tickets", TICKET_MAPPING))
    }
    assert all(m["signing_secret"].startswith("whsec_") for m in made.values()), made
    contacts, deals, tickets = (made[n] for n in ("contacts", "deals", "tickets"))
    # And each sends its documented payload, authenticated its way
    contact = body_of(fixture("generic", "crm_contact"))
    deal = body_of(fixture("generic", "crm_deal"))
    ticket = body_of(fixture("generic", "ticket"))
    answers = [
        post(
            webhooks, contacts["id"], contact, {"x-signature": hmac_hex(contact, contacts["signing_secret"], "sha256=")}
        ),
        post(webhooks, deals["id"], deal, {"x-crm-signature": hmac_base64(deal, deals["signing_secret"])}),
        post(webhooks, tickets["id"], ticket, {"authorization": f"Bearer {tickets['signing_secret']}"}),
    ]
    forged = post(webhooks, tickets["id"], ticket, {"authorization": f"Bearer {contacts['signing_secret']}"})
    # Then the forged one is refused and the others accepted
    assert (forged.status, forged.body["code"]) == (401, "invalid_signature")
    assert [a.body["accepted"] for a in answers] == [3, 1, 2], [a.body for a in answers]
    apply(stack)
    # And the CRM contact, its won deal and its stage change are one person found by email
    maria = profile(api, "email:maria@example.com")
    assert maria["computed"]["event_counts"]["Deal Won"]["total"] == 1
    assert maria["computed"]["event_counts"]["Lifecycle Stage Changed"]["total"] == 1
    assert maria["traits"]["firstName"] == "Maria"
    # And the ticket is on its requester, found by the requester's email
    jon = profile(api, "email:jon@example.com")
    assert jon["computed"]["event_counts"]["Ticket Created"]["total"] == 1
