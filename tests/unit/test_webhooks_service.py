"""The webhook use case with in-memory ports: each refusal changes nothing, and what is accepted
takes the tracking intake's path (validation, quarantine, rate limit, hand-off)."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime
from typing import Any

import pytest

from midstage.config import CollectSettings, IdentitySettings
from midstage.errors import MidstageError
from midstage.models.admin import Source
from midstage.services import webhooks
from tests.support.webhooks import SHOPIFY_SECRET, body_of, fixture, shopify_headers
from tests.unit.test_collect_service import Handoff, Intake

SETTINGS = CollectSettings(data_table="d", config_table="c", ingest_queue_url="q")
RECEIVED = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SHOP = Source(
    id="src_shop",
    name="shop",
    write_key="wk_shop",
    kind="shopify",
    signing_secret=SHOPIFY_SECRET,
    rate_limit=100,
    created_at="2026-11-22T09:00:00+00:00",
)
WEB = Source(id="src_web", name="web", write_key="wk_web", created_at="2026-11-22T09:00:00+00:00")


class Sources:
    def __init__(self, *sources: Source) -> None:
        self.sources = {s.id: s for s in sources}

    def source_by_id(self, source_id: str) -> Source | None:
        return self.sources.get(source_id)


class LimitedIntake(Intake):
    def take_rate(self, source_id: str, epoch_second: int, events: int, limit: int) -> bool:
        return False


def deliver(
    raw: bytes,
    headers: dict[str, str],
    *,
    source_id: str = "src_shop",
    sources: Sources | None = None,
    intake: Intake | None = None,
    handoff: Handoff | None = None,
) -> webhooks.WebhookAnswer:
    request = webhooks.WebhookRequest(
        source_id=source_id,
        body=raw.decode(),
        is_base64=False,
        headers=headers,
        source_ip="203.0.113.9",
        received_at=RECEIVED,
    )
    return webhooks.handle(
        request,
        SETTINGS,
        IdentitySettings(),
        sources or Sources(SHOP, WEB),
        intake if intake is not None else Intake(),
        handoff if handoff is not None else Handoff(),
    )


def refused(raw: bytes, headers: dict[str, str], **kwargs: Any) -> MidstageError:
    intake, handoff = Intake(), Handoff()
    with pytest.raises(MidstageError) as caught:
        deliver(raw, headers, intake=intake, handoff=handoff, **kwargs)
    # Each refusal changes nothing: nothing handed off, nothing quarantined
    assert handoff.sent == []
    assert intake.quarantined == []
    return caught.value


# Shopify's example order with the marketing box unticked: one call (a ticked box adds a consent
# grant, tests/unit/test_webhooks_shopify.py).
ORDER = body_of({**fixture("shopify", "orders_create"), "buyer_accepts_marketing": False})


def test_a_signed_order_is_validated_enriched_and_handed_off() -> None:
    # Given Shopify's example order, signed with the source's secret
    handoff = Handoff()
    # When it is delivered
    answer = deliver(ORDER, shopify_headers(ORDER, "orders/create", "wh-1"), handoff=handoff)
    # Then one Order Completed is handed off, enriched as a tracking call is
    assert answer.to_body() == {"success": True, "topic": "orders/create", "accepted": 1}
    (event,) = handoff.sent
    assert event["event"] == "Order Completed"
    assert event["sourceId"] == "src_shop"
    assert event["receivedAt"] == "2026-11-22T10:00:00.000Z"
    assert event["timestamp"] == "2022-01-01T00:00:00.000Z"
    assert "ip" not in event["context"]  # the provider's server says nothing of where the person is


def test_a_bad_signature_is_401_and_changes_nothing() -> None:
    headers = shopify_headers(ORDER, "orders/create", "wh-1", secret="not-the-source-secret")
    error = refused(ORDER, headers)
    assert (error.status, error.code) == (401, "invalid_signature")


def test_a_malformed_body_signed_correctly_is_400_and_changes_nothing() -> None:
    raw = b'{"id": 1, "line_items": [}'
    error = refused(raw, shopify_headers(raw, "orders/create", "wh-1"))
    assert (error.status, error.code) == (400, "invalid_json")


def test_an_oversized_body_is_413_before_anything_else() -> None:
    raw = b'{"pad": "' + b"x" * (SETTINGS.max_batch_bytes + 1) + b'"}'
    error = refused(raw, shopify_headers(raw, "orders/create", "wh-1"))
    assert (error.status, error.code) == (413, "body_too_large")


def test_an_unknown_source_or_a_segment_source_is_404() -> None:
    for source_id in ("src_nowhere", "src_web", "../etc"):
        error = refused(ORDER, shopify_headers(ORDER, "orders/create", "wh-1"), source_id=source_id)
        assert (error.status, error.code) == (404, "unknown_source")


def test_a_disabled_source_is_403() -> None:
    disabled = SHOP.model_copy(update={"enabled": False})
    error = refused(ORDER, shopify_headers(ORDER, "orders/create", "wh-1"), sources=Sources(disabled))
    assert (error.status, error.code) == (403, "source_disabled")


def test_a_delivery_without_its_webhook_id_is_400() -> None:
    headers = shopify_headers(ORDER, "orders/create", "wh-1")
    del headers["x-shopify-webhook-id"]
    error = refused(ORDER, headers)
    assert (error.status, error.code) == (400, "missing_webhook_id")


def test_a_gzipped_delivery_is_inflated_and_verified_over_the_raw_body() -> None:
    # Given a body sent gzipped, signed over the JSON (as the provider signs the raw body)
    headers = {**shopify_headers(ORDER, "orders/create", "wh-1"), "content-encoding": "gzip"}
    handoff = Handoff()
    request = webhooks.WebhookRequest(
        "src_shop", base64.b64encode(gzip.compress(ORDER)).decode(), True, headers, None, RECEIVED
    )
    # When it is delivered, then it is accepted
    answer = webhooks.handle(request, SETTINGS, IdentitySettings(), Sources(SHOP), Intake(), handoff)
    assert answer.accepted == 1 and len(handoff.sent) == 1


def test_an_unmapped_topic_is_200_ignored_with_nothing_handed_off() -> None:
    raw = body_of({"id": 1, "title": "Hat"})
    handoff = Handoff()
    answer = deliver(raw, shopify_headers(raw, "products/update", "wh-2"), handoff=handoff)
    assert answer.to_body()["ignored"] is True
    assert answer.accepted == 0 and handoff.sent == []


def test_a_source_over_its_rate_limit_is_429_with_nothing_handed_off() -> None:
    handoff = Handoff()
    with pytest.raises(MidstageError) as caught:
        deliver(ORDER, shopify_headers(ORDER, "orders/create", "wh-1"), intake=LimitedIntake(), handoff=handoff)
    assert caught.value.status == 429
    assert handoff.sent == []


def test_a_failed_hand_off_is_503_so_the_provider_retries() -> None:
    with pytest.raises(MidstageError) as caught:
        deliver(ORDER, shopify_headers(ORDER, "orders/create", "wh-1"), handoff=Handoff(fail=True))
    assert caught.value.status == 503


def test_a_mapped_call_the_intake_refuses_is_quarantined_with_its_reason() -> None:
    # Given an order whose timestamp has no zone (the tracking intake refuses such a call)
    order = {**fixture("shopify", "orders_create"), "buyer_accepts_marketing": False}
    order["processed_at"] = "2021-12-31T19:00:00"
    raw = body_of(order)
    intake, handoff = Intake(), Handoff()
    # When it is delivered
    answer = deliver(raw, shopify_headers(raw, "orders/create", "wh-1"), intake=intake, handoff=handoff)
    # Then it is acknowledged (the provider must not retry it forever) and kept with the reason
    assert answer.accepted == 0
    assert [r.code for r in answer.rejected] == ["invalid_timestamp"]
    (entry,) = intake.quarantined
    assert (entry["code"], entry["endpoint"], entry["source_id"]) == (
        "invalid_timestamp",
        "webhooks/shopify",
        "src_shop",
    )
    assert handoff.sent == []
