"""The tracking API: POST /v1/{track,identify,page,screen,group,alias,batch,import}, Segment's short
paths /v1/{t,i,p,s,g,a,b}, RudderStack's /beacon/v1/batch, and the settings the SDKs fetch
(GET /v1/projects/{writeKey}/settings, GET /sourceConfig/).

It is also the API's `$default` route: it answers every CORS preflight and every unrouted path,
so a browser sees a real 404 rather than a CORS failure (docs/architecture.md, "CORS").
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.adapters.config_store import ConfigStore
from midstage.adapters.handoff import SqsHandoff
from midstage.adapters.profile_store import ProfileStore
from midstage.clock import Clock, from_environment
from midstage.config import CollectSettings, identity_settings
from midstage.errors import MidstageError
from midstage.http import answer, error_answer
from midstage.logic import collect as intake
from midstage.logic import cors, tracking_routes
from midstage.logic.sdk_settings import ApiBase
from midstage.observability import correlate_http, logger, metrics, tracer
from midstage.services import collect, sdk_settings

NOT_FOUND = {"success": False, "code": "not_found", "message": "no such route"}


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


def _path(event: dict[str, Any]) -> str:
    path = unquote(event.get("rawPath", ""))
    stage = event.get("requestContext", {}).get("stage", "$default")
    if stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        path = path[len(stage) + 1 :] or "/"
    return path


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    http = event.get("requestContext", {}).get("http", {})
    method = str(http.get("method", "")).upper()
    path = _path(event)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    origin = headers.get("origin")
    if method == "OPTIONS" and origin and headers.get("access-control-request-method"):
        return {
            "statusCode": 204,
            "headers": cors.preflight_headers(tracking_routes.is_tracking_path(path), origin),
            "body": "",
        }
    route = tracking_routes.match(method, path)
    if route is None:
        return _with_cors(answer(404, NOT_FOUND), origin, allowed=True)
    try:
        if route.kind == "collect":
            body = _collect(event, route, headers, http.get("sourceIp"))
        else:
            body = _settings(event, route, headers, origin)
    except MidstageError as error:
        logger.info("tracking request refused", extra={"code": error.code, "path": path})
        metrics.add_metric(name=f"Refused_{error.code}", unit=MetricUnit.Count, value=1)
        return _with_cors(error_answer(error), origin, allowed=error.code != "origin_not_allowed")
    return _with_cors(answer(200, body), origin, allowed=True)


def _collect(
    event: dict[str, Any], route: tracking_routes.TrackingRoute, headers: dict[str, str], source_ip: str | None
) -> dict[str, Any]:
    settings, sources, store, handoff = _wiring()
    query = event.get("queryStringParameters") or {}
    request = collect.CollectRequest(
        endpoint=route.endpoint,
        body=event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
        headers=headers,
        source_ip=source_ip,
        received_at=_clock()(),
        write_key=query.get("writeKey") if route.beacon else None,
    )
    result = collect.handle(request, settings, identity_settings(), sources, store, handoff)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    if result.rejected:
        metrics.add_metric(name="EventsQuarantined", unit=MetricUnit.Count, value=len(result.rejected))
    return result.to_body()


def _settings(
    event: dict[str, Any], route: tracking_routes.TrackingRoute, headers: dict[str, str], origin: str | None
) -> dict[str, Any]:
    _, sources, _, _ = _wiring()
    if route.kind == "segment_settings":
        return sdk_settings.settings(
            "segment", route.write_key, origin=origin, api=ApiBase.from_headers(headers), sources=sources
        )
    # RudderStack sends the key both as HTTP Basic and in the query; either is enough.
    key = intake.write_key_from_authorization(headers.get("authorization"))
    key = key or (event.get("queryStringParameters") or {}).get("writeKey")
    return sdk_settings.settings("rudder", key, origin=origin, api=None, sources=sources)


def _with_cors(response: dict[str, Any], origin: str | None, *, allowed: bool) -> dict[str, Any]:
    response["headers"] = {**response.get("headers", {}), **cors.tracking_response_headers(origin, allowed=allowed)}
    return response
