"""/v1/journeys: journey definitions, their versions and stats."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.models.admin import RoleRank
from midstage.models.journeys import JourneyBody
from midstage.models.requests import JourneyCreate, JourneyPatch

# A journey definition can be 256 KB: its versions are listed a few at a time.
VERSIONS_PAGE, VERSIONS_MAX = 10, 20

routes = Routes()


@routes.get("/", role=RoleRank.viewer)
def list_journeys() -> Response[Any]:
    return json_answer(200, routes.services.journeys.list_journeys())


@routes.post("/", role=RoleRank.marketer)
def create_journey() -> Response[Any]:
    return json_answer(201, routes.services.journeys.create_journey(routes.body(JourneyCreate), routes.caller))


@routes.post("/validate", role=RoleRank.marketer)
def validate_journey() -> Response[Any]:
    return json_answer(200, routes.services.journeys.validate_journey(routes.payload()))


@routes.get("/<journey_id>", role=RoleRank.viewer)
def get_journey(journey_id: str) -> Response[Any]:
    return json_answer(200, routes.services.journeys.get_journey(journey_id))


@routes.put("/<journey_id>", role=RoleRank.marketer)
def replace_journey(journey_id: str) -> Response[Any]:
    journeys = routes.services.journeys
    body = routes.body(JourneyBody)
    return json_answer(200, journeys.replace_journey(journey_id, body, routes.if_match(), routes.caller))


@routes.patch("/<journey_id>", role=RoleRank.marketer)
def patch_journey(journey_id: str) -> Response[Any]:
    journeys = routes.services.journeys
    body = routes.body(JourneyPatch)
    return json_answer(200, journeys.patch_journey(journey_id, body, routes.if_match(), routes.caller))


@routes.delete("/<journey_id>", role=RoleRank.marketer)
def delete_journey(journey_id: str) -> Response[Any]:
    routes.services.journeys.delete_journey(journey_id)
    return no_content()


@routes.get("/<journey_id>/versions", role=RoleRank.viewer)
def list_journey_versions(journey_id: str) -> Response[Any]:
    limit = routes.limit(VERSIONS_PAGE, VERSIONS_MAX)
    return json_answer(200, routes.services.journeys.journey_versions(journey_id, limit, routes.cursor()))


@routes.get("/<journey_id>/stats", role=RoleRank.viewer)
def get_journey_stats(journey_id: str) -> Response[Any]:
    return json_answer(200, routes.services.journeys.journey_stats(journey_id))
