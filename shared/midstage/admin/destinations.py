"""/v1/destinations: where the event stream is forwarded, its delivery figures and redrives."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.models.admin import RoleRank
from midstage.models.destinations import DestinationCreate, DestinationUpdate

routes = Routes()


@routes.get("/", role=RoleRank.marketer)
def list_destinations() -> Response[Any]:
    return json_answer(200, routes.services.destinations.list_destinations())


@routes.post("/", role=RoleRank.admin)
def create_destination() -> Response[Any]:
    return json_answer(201, routes.services.destinations.create_destination(routes.body(DestinationCreate)))


@routes.get("/<destination_id>", role=RoleRank.marketer)
def get_destination(destination_id: str) -> Response[Any]:
    return json_answer(200, routes.services.destinations.get_destination(destination_id))


@routes.patch("/<destination_id>", role=RoleRank.admin)
def update_destination(destination_id: str) -> Response[Any]:
    request = routes.body(DestinationUpdate)
    return json_answer(200, routes.services.destinations.update_destination(destination_id, request))


@routes.delete("/<destination_id>", role=RoleRank.admin)
def delete_destination(destination_id: str) -> Response[Any]:
    routes.services.destinations.delete_destination(destination_id)
    return no_content()


@routes.get("/<destination_id>/stats", role=RoleRank.marketer)
def destination_stats(destination_id: str) -> Response[Any]:
    return json_answer(200, routes.services.destinations.stats(destination_id))


@routes.post("/<destination_id>/redrive", role=RoleRank.admin)
def redrive_destination(destination_id: str) -> Response[Any]:
    limit = routes.limit(default=1000, maximum=1000)
    return json_answer(200, routes.services.destinations.redrive(destination_id, limit))
