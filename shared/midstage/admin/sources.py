"""/v1/sources: where tracking events come from, their write keys and their quarantine."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.models.admin import RoleRank, SourceCreate, SourceUpdate

routes = Routes()


@routes.get("/", role=RoleRank.marketer)
def list_sources() -> Response[Any]:
    return json_answer(200, routes.services.sources.list_sources())


@routes.post("/", role=RoleRank.admin)
def create_source() -> Response[Any]:
    return json_answer(201, routes.services.sources.create_source(routes.body(SourceCreate)))


@routes.get("/<source_id>", role=RoleRank.marketer)
def get_source(source_id: str) -> Response[Any]:
    return json_answer(200, routes.services.sources.get_source(source_id))


@routes.patch("/<source_id>", role=RoleRank.admin)
def update_source(source_id: str) -> Response[Any]:
    request = routes.body(SourceUpdate, required=False)
    return json_answer(200, routes.services.sources.update_source(source_id, request))


@routes.delete("/<source_id>", role=RoleRank.admin)
def delete_source(source_id: str) -> Response[Any]:
    routes.services.sources.delete_source(source_id)
    return no_content()


@routes.post("/<source_id>/rotate-key", role=RoleRank.admin)
def rotate_write_key(source_id: str) -> Response[Any]:
    return json_answer(200, routes.services.sources.rotate_write_key(source_id))


@routes.get("/<source_id>/quarantine", role=RoleRank.data_operator, personal=True)
def list_quarantine(source_id: str) -> Response[Any]:
    return json_answer(200, routes.services.sources.quarantine(source_id, routes.limit(), routes.query("cursor")))
