"""Inbound webhooks: POST /v1/webhooks/{sourceId} from Shopify, Stripe or a generic source.

A function of its own beside the tracking API (functions/collect) although it shares its intake
(services/collect.admit): a provider's burst of redeliveries then draws on its own concurrency,
not the tracking API's, and the tracking handler stays the thin one it is."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage import routing
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import Clock, from_environment
from midstage.config import CollectSettings, identity_settings
from midstage.errors import MidstageError
from midstage.http import answer, error_answer
from midstage.intake_wiring import intake_wiring
from midstage.observability import correlate_http, logger, metrics, tracer
from midstage.services import webhooks

app = APIGatewayHttpResolver()


@cache
def _clock() -> Clock:
    """The time this function goes by, which Stripe signatures are judged against (a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[CollectSettings, ConfigStore, ProfileStore, SqsHandoff]:
    return intake_wiring()


@app.post("/v1/webhooks/<source_id>")
def webhook(source_id: str) -> Response[str]:
    settings, sources, store, handoff = _wiring()
    event = app.current_event.raw_event
    request = webhooks.WebhookRequest(
        source_id=source_id,
        body=event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
        headers=routing.headers(app),
        source_ip=event.get("requestContext", {}).get("http", {}).get("sourceIp"),
        received_at=_clock()(),
    )
    result = webhooks.handle(request, settings, identity_settings(), sources, store, handoff)
    metrics.add_metric(name="WebhookEventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    if result.rejected:
        metrics.add_metric(name="WebhookEventsQuarantined", unit=MetricUnit.Count, value=len(result.rejected))
    return routing.response(answer(200, result.to_body()))


@app.not_found
def _not_found(_: Exception) -> Response[str]:
    # A source id the route pattern does not match (odd characters) is answered as the others are.
    return routing.response(answer(404, {"success": False, "code": "not_found", "message": "no such route"}))


@app.exception_handler(MidstageError)
def _refused(error: MidstageError) -> Response[str]:
    logger.info("webhook refused", extra={"code": error.code, "path": app.current_event.path})
    metrics.add_metric(name=f"WebhookRefused_{error.code}", unit=MetricUnit.Count, value=1)
    return routing.response(error_answer(error))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    return routing.resolve(app, event, context)
