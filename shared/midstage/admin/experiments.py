"""/v1/experiments: the statistics engine over summary statistics given in the body, so a test run
anywhere (or exported from here) can be checked, and the sample-size planner. Both are stateless."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import RoleRank

# A few hundred variants' statistics are a few kilobytes: the bound is generous, not tight.
MAX_ANALYZE_BODY_BYTES = 256 * 1024

routes = Routes()


@routes.post("/analyze", role=RoleRank.viewer)
def analyze_statistics() -> Response[Any]:
    # Imported on first use: the engines (scipy-free, but not small) load only for this route.
    from midstage.models.experiments import AnalyzeRequest
    from midstage.services.experiments.analysis import analyze

    request = routes.body(AnalyzeRequest, MAX_ANALYZE_BODY_BYTES)
    return json_answer(200, analyze(request).to_body())


@routes.post("/plan", role=RoleRank.viewer)
def plan_sample_size() -> Response[Any]:
    from midstage.models.experiments import PlanRequest
    from midstage.services.experiments.analysis import plan

    request = routes.body(PlanRequest, MAX_ANALYZE_BODY_BYTES)
    return json_answer(200, plan(request).model_dump(mode="json"))
