"""The tracking API: POST /v1/{track,identify,page,screen,group,alias,batch,import}, Segment's short
paths /v1/{t,i,p,s,g,a,b}, RudderStack's /beacon/v1/batch, and the settings the SDKs fetch
(GET /v1/projects/{writeKey}/settings, GET /sourceConfig/).

It is also the API's `$default` route: it answers every CORS preflight and every unrouted path,
so a browser sees a real 404 rather than a CORS failure (docs/architecture.md, "CORS")."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
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
from midstage.logic import cors, tracking_routes
from midstage.observability import correlate_http, logger, metrics, tracer
from midstage.services import collect, sdk_settings

app = APIGatewayHttpResolver()


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> tuple[CollectSettings, ConfigStore, ProfileStore, SqsHandoff]:
    return intake_wiring()


@app.post(tracking_routes.CALL_RULE)
@app.post(tracking_routes.BEACON_RULE)
def track() -> Response[str]:
    route = _route("POST")
    # A beacon cannot set headers (`navigator.sendBeacon`), so its key rides in the query.
    write_key = routing.query(app).get("writeKey") if route.beacon else None
    return _answer(answer(200, _collect(route.endpoint, write_key)))


@app.get(tracking_routes.SEGMENT_SETTINGS_RULE)
@app.get(tracking_routes.RUDDER_CONFIG_RULE)
def settings_document() -> Response[str]:
    document = sdk_settings.for_route(_route("GET"), routing.headers(app), routing.query(app), sources=_wiring()[1])
    return _answer(answer(200, document))


@app.route(".*", method="OPTIONS")
def preflight() -> Response[str]:
    """Every preflight, for the tracking API and the admin API alike (the API has no CORS configuration)."""
    headers = routing.headers(app)
    origin = headers.get("origin")
    if not origin or not headers.get("access-control-request-method"):
        raise NotFoundError
    tracking = tracking_routes.is_tracking_path(app.current_event.path)
    return Response(status_code=204, headers=cors.preflight_headers(tracking, origin), body="")


@app.not_found
def _not_found(_: Exception) -> Response[str]:
    return _answer(answer(404, {"success": False, "code": "not_found", "message": "no such route"}))


@app.exception_handler(MidstageError)
def _refused(error: MidstageError) -> Response[str]:
    logger.info("tracking request refused", extra={"code": error.code, "path": app.current_event.path})
    metrics.add_metric(name=f"Refused_{error.code}", unit=MetricUnit.Count, value=1)
    # A page from an origin the source does not allow must not read even the refusal.
    return _answer(error_answer(error), allowed=error.code != "origin_not_allowed")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    return routing.resolve(app, event, context)


def _route(method: str) -> tracking_routes.TrackingRoute:
    """The route, read by the rules the resolver matched (whose `$` would also take a trailing newline)."""
    route = tracking_routes.match(method, app.current_event.path)
    if route is None:
        raise NotFoundError
    return route


def _collect(endpoint: str, write_key: str | None) -> dict[str, Any]:
    settings, sources, store, handoff = _wiring()
    event = app.current_event.raw_event
    source_ip = event.get("requestContext", {}).get("http", {}).get("sourceIp")
    body, is_base64, received_at = event.get("body"), bool(event.get("isBase64Encoded")), _clock()()
    request = collect.CollectRequest(endpoint, body, is_base64, routing.headers(app), source_ip, received_at, write_key)
    result = collect.handle(request, settings, identity_settings(), sources, store, handoff)
    for name, count in result.counts().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    return result.to_body()


def _answer(shaped: dict[str, Any], *, allowed: bool = True) -> Response[str]:
    return routing.response(shaped, cors.tracking_response_headers(routing.headers(app).get("origin"), allowed=allowed))
