"""Public links in messages: the open pixel, click redirects, one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.automation_store import Counters, OnceMarkers
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.messaging_store import MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import Clock, from_environment
from midstage.config import FeedbackSettings
from midstage.observability import correlate_http, logger, tracer
from midstage.services.campaigns import StatusCounter
from midstage.services.engagement import Engagement, Page

_MAX_TOKEN = 4096  # links.py's own bound; click tokens carry URLs of up to 2,048 characters


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _engagement() -> Engagement:
    settings = FeedbackSettings.from_env()
    config = ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds)
    table = settings.data_table
    return Engagement(
        config.secret("links"),
        MessageLedger(table, on_status=StatusCounter(Counters(table), OnceMarkers(table))),
        ProfileStore(table),
        SuppressionStore(table),
        SqsHandoff(settings.ingest_queue_url),
    )


def _answer(page: Page) -> dict[str, Any]:
    headers = {
        "content-type": page.content_type,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }
    if page.location:
        headers["location"] = page.location
    if isinstance(page.body, bytes):
        return {
            "statusCode": page.status,
            "headers": headers,
            "body": base64.b64encode(page.body).decode(),
            "isBase64Encoded": True,
        }
    headers["content-security-policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return {"statusCode": page.status, "headers": headers, "body": page.body}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    route = str(event.get("routeKey", ""))
    token = str((event.get("pathParameters") or {}).get("token", ""))
    now = _clock()()
    engagement = _engagement()
    if len(token) > _MAX_TOKEN:
        token = ""  # refused by verification below, without hashing megabytes
    if route == "GET /t/o/{token}":
        return _answer(engagement.open(token, now))
    if route == "GET /t/c/{token}":
        return _answer(engagement.click(token, now))
    if route == "GET /u/{token}":
        return _answer(engagement.unsubscribe_page(token, str(event.get("rawPath", ""))))
    if route == "POST /u/{token}":
        return _answer(engagement.unsubscribe(token, now))
    return {"statusCode": 404, "headers": {"content-type": "text/plain"}, "body": "not found"}
