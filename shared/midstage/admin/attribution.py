"""/v1/attribution: the attribution models over paths given in the body, for data kept elsewhere
(no archive needed)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank

# Up to what Lambda accepts in one synchronous invocation: a path set exported from elsewhere.
MAX_ANALYZE_BODY_BYTES = 6 * 1024 * 1024

routes = Routes()


@routes.post("/analyze", role=RoleRank.viewer)
def analyze_paths() -> Response[Any]:
    from midstage.models.attribution import AnalyzeRequest  # on first use, as the reports' models

    request = routes.body(AnalyzeRequest, MAX_ANALYZE_BODY_BYTES)
    return json_answer(200, routes.services.reports.analyze(request).model_dump())
