"""/v1/segments: segment definitions, backfills, estimates and imports."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.models.admin import RoleRank
from midstage.models.requests import EstimateRequest, ImportRequest, SegmentCreate
from midstage.models.segments import SegmentBody

# Segment imports carry a whole file: up to what Lambda accepts in one synchronous invocation.
MAX_IMPORT_BODY_BYTES = 6 * 1024 * 1024

routes = Routes()


@routes.get("/", role=RoleRank.viewer)
def list_segments() -> Response[Any]:
    return json_answer(200, routes.services.segments.list_segments())


@routes.post("/", role=RoleRank.marketer)
def create_segment() -> Response[Any]:
    return json_answer(201, routes.services.segments.create_segment(routes.body(SegmentCreate), routes.caller))


@routes.post("/estimate", role=RoleRank.marketer)
def estimate_segment() -> Response[Any]:
    return json_answer(200, routes.services.segments.estimate(routes.body(EstimateRequest)))


@routes.get("/<segment_id>", role=RoleRank.viewer)
def get_segment(segment_id: str) -> Response[Any]:
    return json_answer(200, routes.services.segments.get_segment(segment_id))


@routes.put("/<segment_id>", role=RoleRank.marketer)
def replace_segment(segment_id: str) -> Response[Any]:
    segments = routes.services.segments
    body = routes.body(SegmentBody)
    return json_answer(200, segments.replace_segment(segment_id, body, routes.if_match(), routes.caller))


@routes.delete("/<segment_id>", role=RoleRank.marketer)
def delete_segment(segment_id: str) -> Response[Any]:
    routes.services.segments.delete_segment(segment_id)
    return no_content()


@routes.post("/<segment_id>/refresh", role=RoleRank.marketer)
def refresh_segment(segment_id: str) -> Response[Any]:
    return json_answer(202, routes.services.segments.refresh_segment(segment_id))


@routes.get("/<segment_id>/refresh/<job_id>", role=RoleRank.viewer)
def get_segment_refresh(segment_id: str, job_id: str) -> Response[Any]:
    return json_answer(200, routes.services.segments.refresh_progress(segment_id, job_id))


@routes.post("/<segment_id>/import", role=RoleRank.marketer)
def import_segment(segment_id: str) -> Response[Any]:
    request = routes.body(ImportRequest, MAX_IMPORT_BODY_BYTES)
    return json_answer(202, routes.services.segments.import_people(segment_id, request))
