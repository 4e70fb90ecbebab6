"""Webhook intake per core, next to the plain tracking path in the same run.

Each path is the whole use case with in-memory ports (the hand-off encodes the SQS messages as
SqsHandoff does, then drops them), one request at a time on one core, as a Lambda container
serves them:

1. Tracking: `services.collect.handle` on single `/v1/track` Order Completed bodies (one event
   per request) and on a 100-event batch, from bench_collect.
2. Shopify: `services.webhooks.handle` on Shopify's example orders/create delivery (about 4 KB,
   signature checked over the raw body), one Order Completed per request.
3. Stripe: Stripe's example invoice.paid event (signature with its timestamp), one Order Completed.
4. Generic: a CRM's contact webhook through its JMESPath mapping: three calls per request.

Figures are events per second on one core (median of repeats, spread beside it) and each webhook
path's cost per event relative to the single-event tracking path.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.bench_collect import (
    IDENTITY,
    RECEIVED,
    SETTINGS,
    EncodingHandoff,
    FixedSources,
    MemoryIntake,
    batch_body,
    per_event_seconds,
    rate,
    request,
    single_bodies,
)
from midstage.models.admin import Source
from midstage.services import collect, webhooks
from tests.support.webhooks import (
    CONTACT_MAPPING,
    GENERIC_SECRET,
    SHOPIFY_SECRET,
    STRIPE_SECRET,
    body_of,
    fixture,
    hmac_hex,
    shopify_headers,
    stripe_headers,
)

CREATED = "2026-01-01T00:00:00+00:00"
SOURCES = {
    source.id: source
    for source in (
        Source(
            id="src_shop",
            name="shop",
            write_key="wk_s",
            kind="shopify",
            signing_secret=SHOPIFY_SECRET,
            rate_limit=100_000,
            created_at=CREATED,
        ),
        Source(
            id="src_pay",
            name="pay",
            write_key="wk_p",
            kind="stripe",
            signing_secret=STRIPE_SECRET,
            rate_limit=100_000,
            created_at=CREATED,
        ),
        Source(
            id="src_crm",
            name="crm",
            write_key="wk_c",
            kind="generic",
            signing_secret=GENERIC_SECRET,
            mapping=CONTACT_MAPPING,
            rate_limit=100_000,
            created_at=CREATED,
        ),
    )
}


class WebhookSources:
    def source_by_id(self, source_id: str) -> Source | None:
        return SOURCES.get(source_id)


def delivery(source_id: str, raw: bytes, headers: dict[str, str]) -> Callable[[], object]:
    made = webhooks.WebhookRequest(source_id, raw.decode(), False, headers, "23.227.37.101", RECEIVED)
    sources, intake, handoff = WebhookSources(), MemoryIntake(), EncodingHandoff()

    def run() -> object:
        answer = webhooks.handle(made, SETTINGS, IDENTITY, sources, intake, handoff)
        assert answer.accepted, answer.to_body()
        assert not answer.rejected, answer.to_body()
        return answer

    return run


def tracking(body: str, endpoint: str) -> Callable[[], object]:
    made = request(body, gzipped=False)
    made = collect.CollectRequest(endpoint, made.body, False, made.headers, made.source_ip, RECEIVED)
    sources, intake, handoff = FixedSources(), MemoryIntake(), EncodingHandoff()
    return lambda: collect.handle(made, SETTINGS, IDENTITY, sources, intake, handoff)


def main() -> None:
    order = body_of(fixture("shopify", "orders_create"))
    invoice = body_of(fixture("stripe", "invoice_paid"))
    contacts = body_of(fixture("generic", "crm_contact"))
    signed_at = int(RECEIVED.timestamp())
    paths: list[tuple[str, Callable[[], object], int]] = [
        ("tracking /v1/track, 1 Order Completed per request", tracking(single_bodies()[0], "track"), 1),
        ("tracking /v1/batch, 100 events per request", tracking(batch_body(), "batch"), 100),
        (
            "shopify orders/create, 1 event per delivery",
            delivery("src_shop", order, shopify_headers(order, "orders/create", "wh-1")),
            1,
        ),
        (
            "stripe invoice.paid, 1 event per delivery",
            delivery("src_pay", invoice, stripe_headers(invoice, signed_at)),
            1,
        ),
        (
            "generic CRM contacts (JMESPath), 3 events per delivery",
            delivery("src_crm", contacts, {"x-signature": hmac_hex(contacts, GENERIC_SECRET, "sha256=")}),
            3,
        ),
    ]
    print("events/s on one core (median, min-max of repeats); cost per event relative to /v1/track")
    baseline = 0.0
    for label, run, events in paths:
        samples = per_event_seconds(run, events)
        median = statistics.median(samples)
        baseline = baseline or median
        print(f"  {label:<58} {rate(samples)}   x{median / baseline:.2f}")


if __name__ == "__main__":
    main()
