"""/v1/reports: reports over the archive, each body the report's request as the report defines it
(logic/analytics/reports.py). Answers are kept for `ANALYTICS_CACHE_SECONDS`; a request with
`Cache-Control: no-cache` has its report computed again.

Each route imports its request model when it is called: building the report models costs the
admin function's cold start a noticeable share, and most of its calls are not reports."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank

routes = Routes()


def _fresh() -> bool:
    """`Cache-Control: no-cache` (or `max-age=0`): the caller wants the report computed now."""
    header = (routes.request.headers or {}).get("cache-control") or ""
    directives = {d.strip().lower().replace(" ", "") for d in header.split(",")}
    return bool(directives & {"no-cache", "max-age=0"})


def _report(model: type[BaseModel]) -> Response[Any]:
    spec = routes.body(model)
    return json_answer(200, routes.services.reports.report(spec, fresh=_fresh()))


@routes.post("/funnel", role=RoleRank.viewer)
def funnel_report() -> Response[Any]:
    from midstage.logic.analytics.reports import FunnelSpec

    return _report(FunnelSpec)


@routes.post("/retention", role=RoleRank.viewer)
def retention_report() -> Response[Any]:
    from midstage.logic.analytics.reports import RetentionSpec

    return _report(RetentionSpec)


@routes.post("/trends", role=RoleRank.viewer)
def trends_report() -> Response[Any]:
    from midstage.logic.analytics.reports import TrendsSpec

    return _report(TrendsSpec)


@routes.post("/channels", role=RoleRank.viewer)
def channels_report() -> Response[Any]:
    from midstage.logic.analytics.reports import ChannelsSpec

    return _report(ChannelsSpec)


@routes.post("/performance", role=RoleRank.viewer)
def performance_report() -> Response[Any]:
    from midstage.logic.analytics.reports import PerformanceSpec

    return _report(PerformanceSpec)


@routes.post("/review", role=RoleRank.viewer)
def review_report() -> Response[Any]:
    from midstage.logic.analytics.reports import ReviewSpec

    return _report(ReviewSpec)


@routes.post("/roi", role=RoleRank.viewer)
def roi_report() -> Response[Any]:
    from midstage.logic.analytics.reports import RoiSpec

    return _report(RoiSpec)


@routes.post("/attribution", role=RoleRank.viewer)
def attribution_report() -> Response[Any]:
    from midstage.services.admin.reports import AttributionReport

    request = routes.body(AttributionReport)
    return json_answer(200, routes.services.reports.attribute(request, fresh=_fresh()))
