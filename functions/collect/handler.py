"""POST /v1/{track,identify,page,screen,group,alias,batch,import}: the tracking API."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import Clock, from_environment
from midstage.config import CollectSettings, identity_settings
from midstage.errors import MidstageError
from midstage.http import answer, error_answer
from midstage.observability import logger, metrics
from midstage.services import collect

ENDPOINTS = {"track", "identify", "page", "screen", "group", "alias", "batch", "import"}


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[CollectSettings, ConfigStore, ProfileStore, SqsHandoff]:
    settings = CollectSettings.from_env()
    return (
        settings,
        ConfigStore(settings.config_table, cache_seconds=settings.config_cache_seconds),
        ProfileStore(settings.data_table),
        SqsHandoff(settings.ingest_queue_url),
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, sources, store, handoff = _wiring()
    endpoint = event.get("rawPath", "").rstrip("/").rsplit("/", 1)[-1]
    if endpoint not in ENDPOINTS:
        return answer(404, {"success": False, "code": "not_found", "message": "unknown tracking endpoint"})
    http = event.get("requestContext", {}).get("http", {})
    request = collect.CollectRequest(
        endpoint="batch" if endpoint == "import" else endpoint,
        body=event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        source_ip=http.get("sourceIp"),
        received_at=_clock()(),
    )
    try:
        result = collect.handle(request, settings, identity_settings(), sources, store, handoff)
    except MidstageError as error:
        logger.info("tracking request refused", extra={"code": error.code, "endpoint": endpoint})
        metrics.add_metric(name=f"Refused_{error.code}", unit=MetricUnit.Count, value=1)
        return error_answer(error)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    if result.rejected:
        metrics.add_metric(name="EventsQuarantined", unit=MetricUnit.Count, value=len(result.rejected))
    return answer(200, result.to_body())
