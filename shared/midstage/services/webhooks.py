"""The inbound webhook use case: POST /v1/webhooks/{sourceId} from Shopify, Stripe or any system
a generic source's mapping describes.

Order matters, and each refusal changes nothing: find the source, bound the body's size (413),
check the signature over the raw body (401), parse it (400), map it to Segment-spec calls, and
from there take the tracking API's own path: the same validation and enrichment, quarantine with
reasons, rate limit and hand-off, and 200 only once all of it is durable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from midstage.config import CollectSettings, IdentitySettings
from midstage.errors import Forbidden, InvalidInput, NotFound, Unavailable
from midstage.logic import collect
from midstage.logic.webhooks import Failed, Mapped, generic, parse, shopify, stripe
from midstage.models.admin import Source
from midstage.services.collect import Handoff, Intake, admit

_SOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class WebhookSources(Protocol):
    def source_by_id(self, source_id: str) -> Source | None: ...


@dataclass(frozen=True)
class WebhookRequest:
    source_id: str
    body: str | None
    is_base64: bool
    headers: dict[str, str]  # lower-case names
    source_ip: str | None  # the provider's server: kept out of the events (not where the person is)
    received_at: datetime  # also the clock a Stripe signature's age is judged by


@dataclass(frozen=True)
class WebhookAnswer:
    topic: str
    accepted: int
    rejected: list[collect.Rejection]
    ignored: str | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True, "topic": self.topic, "accepted": self.accepted}
        if self.ignored:
            # Still a 200: a provider disables an endpoint that keeps failing its deliveries.
            body["ignored"] = True
            body["reason"] = self.ignored
        if self.rejected:
            body["rejected"] = [r.to_body() for r in self.rejected]
        return body


def handle(
    request: WebhookRequest,
    settings: CollectSettings,
    identity: IdentitySettings,
    sources: WebhookSources,
    intake_store: Intake,
    handoff: Handoff,
) -> WebhookAnswer:
    source = _source(request.source_id, sources)
    if not source.enabled:
        raise Forbidden("this source is disabled", code="source_disabled")
    limits = collect.Limits(
        settings.max_event_bytes,
        settings.max_batch_bytes,
        settings.max_batch_events,
        timedelta(seconds=settings.future_tolerance_seconds),
    )
    # A delivery is one document, however many calls it makes: it is bounded as a batch is.
    raw = collect.decode_body(
        request.body,
        is_base64=request.is_base64,
        content_encoding=request.headers.get("content-encoding"),
        limit=limits.max_batch_bytes,
    )
    mapped = _mapped(source, raw, request)
    if mapped.ignored:
        return WebhookAnswer(mapped.topic, 0, [], mapped.ignored)
    result = _intake(mapped, source, request, identity, limits)
    admit(result, source, f"webhooks/{source.kind}", request.received_at, settings, intake_store, handoff)
    return WebhookAnswer(mapped.topic, len(result.accepted), result.rejected)


def _source(source_id: str, sources: WebhookSources) -> Source:
    source = None
    if _SOURCE_ID.fullmatch(source_id):
        try:
            source = sources.source_by_id(source_id)
        except Exception as error:
            raise Unavailable("sources cannot be read right now; retry the request") from error
    if source is None or not source.webhook:
        raise NotFound(f"no webhook source '{source_id[:64]}'", code="unknown_source")
    return source


def _mapped(source: Source, raw: bytes, request: WebhookRequest) -> Mapped:
    """Verified, parsed and mapped; a signature is checked before the body is read at all."""
    secret = source.signing_secret or ""
    headers = request.headers
    if source.kind == "shopify":
        shopify.verify(secret, raw, headers)
        webhook_id = headers.get(shopify.WEBHOOK_ID_HEADER.lower())
        if not webhook_id:
            raise InvalidInput(f"the {shopify.WEBHOOK_ID_HEADER} header is missing", code="missing_webhook_id")
        return shopify.calls(headers.get(shopify.TOPIC_HEADER.lower(), ""), webhook_id, parse(raw))
    if source.kind == "stripe":
        stripe.verify(secret, raw, headers, now=request.received_at)
        return stripe.calls(parse(raw))
    assert source.mapping is not None  # a generic source has one (models/admin.py)
    generic.verify(source.mapping.auth, secret, raw, headers)
    return generic.calls(source.mapping, parse(raw))


def _intake(
    mapped: Mapped,
    source: Source,
    request: WebhookRequest,
    identity: IdentitySettings,
    limits: collect.Limits,
) -> collect.Intake:
    """The mapped calls through the tracking API's validation and enrichment, one by one."""
    meta = collect.RequestMeta(
        source_id=source.id,
        received_at=request.received_at,
        ip=None,  # the provider's server, not the person's: it says nothing of where they are
        user_agent=None,
    )
    result = collect.Intake()
    for index, call in enumerate(mapped.calls):
        if isinstance(call, Failed):
            result.rejected.append(collect.Rejection(index, call.code, call.message, _excerpt(call.payload)))
            continue
        size = len(json.dumps(call, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
        outcome = collect.enrich(call, index, size, {}, meta, identity, limits)
        if isinstance(outcome, collect.Rejection):
            result.rejected.append(outcome)
        else:
            result.accepted.append(outcome)
    return result


def _excerpt(payload: Any) -> str:
    shown = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    return shown[: collect.QUARANTINED_PAYLOAD_BYTES]
