"""Public links in messages: the open pixel, click redirects, one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage import routing
from midstage.adapters.archive_stream import archive_sink
from midstage.adapters.config_store import ConfigStore
from midstage.adapters.counters import Counters
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.messaging_store import MessageLedger, SuppressionStore
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import Clock, from_environment
from midstage.config import FeedbackSettings
from midstage.observability import correlate_http, logger, tracer
from midstage.services.campaigns import StatusCounter
from midstage.services.engagement import Engagement, Page

app = APIGatewayHttpResolver()

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
        config,
        MessageLedger(table, on_status=StatusCounter(Counters(table, shards=settings.stats_shards))),
        ProfileStore(table),
        SuppressionStore(table),
        SqsHandoff(settings.ingest_queue_url),
        archive_sink(settings.archive_stream),
    )


# Each rule takes the rest of the path, whatever it holds (a decoded line break too, which `.`
# would not match); the token is the one API Gateway bound to `{token}`.
_REST = r"[\s\S]+"


@app.get("/t/o/" + _REST)
def open_pixel() -> Response[str | bytes]:
    return _answer(_engagement().open(_token(), _clock()()))


@app.get("/t/c/" + _REST)
def click() -> Response[str | bytes]:
    return _answer(_engagement().click(_token(), _clock()()))


@app.get("/u/" + _REST)
def unsubscribe_page() -> Response[str | bytes]:
    # The form posts back to the address the browser used, stage prefix and all.
    return _answer(_engagement().unsubscribe_page(_token(), str(app.context[routing.RAW_PATH]), _clock()()))


@app.post("/u/" + _REST)
def unsubscribe() -> Response[str | bytes]:
    return _answer(_engagement().unsubscribe(_token(), _clock()()))


@app.not_found
def _not_found(_: Exception) -> Response[str | bytes]:
    return Response(status_code=404, headers={"content-type": "text/plain"}, body="not found")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    return routing.resolve(app, event, context)


def _token() -> str:
    token = str(app.current_event.path_parameters.get("token", ""))
    return "" if len(token) > _MAX_TOKEN else token  # refused by verification, without hashing megabytes


def _answer(page: Page) -> Response[str | bytes]:
    headers = {
        "content-type": page.content_type,
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff",
    }
    if page.location:
        headers["location"] = page.location
    # Bytes (the pixel, a redirect's empty body) go out base64-encoded; a page gets its policy.
    if not isinstance(page.body, bytes):
        headers["content-security-policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return Response(status_code=page.status, headers=headers, body=page.body)
