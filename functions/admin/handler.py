"""Admin API: one Powertools Router per resource (midstage.admin), each route declaring the least
role it needs; the services behind them are in services/admin/, made by midstage.admin.wiring."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from midstage.admin import ROUTERS
from midstage.admin.routing import json_answer
from midstage.admin.wiring import AdminWiring
from midstage.clock import Clock, from_environment
from midstage.config import AdminSettings
from midstage.errors import MidstageError
from midstage.http import error_answer
from midstage.logic.cors import admin_response_headers
from midstage.observability import correlate_http, logger, tracer

app = APIGatewayHttpResolver()
for prefix, routes in ROUTERS:
    app.include_router(routes.router, prefix=prefix)


@cache
def _clock() -> Clock:
    """The time this function goes by (part of its wiring: a test gives a fixed one)."""
    return from_environment()


@cache
def _wiring() -> AdminWiring:
    # The clock is looked up at each reading, so a clock given after loading is the one used.
    return AdminWiring(AdminSettings.from_env(), clock=lambda: _clock()())


@app.exception_handler(MidstageError)
def _domain_error(error: MidstageError) -> Response[Any]:
    shaped = error_answer(error)
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=shaped["body"],
        headers={k: v for k, v in shaped["headers"].items() if k != "content-type"},
    )


@app.not_found
def _not_found(_: Exception) -> Response[Any]:
    return json_answer(404, {"success": False, "code": "not_found", "message": "no such route"})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    correlate_http(event)
    app.append_context(wiring=_wiring())
    response = app.resolve(event, context)
    # The API has no CORS configuration of its own (the tracking routes need per-source origins).
    origin = {k.lower(): v for k, v in (event.get("headers") or {}).items()}.get("origin")
    response["headers"] = {**(response.get("headers") or {}), **admin_response_headers(origin)}
    return response
