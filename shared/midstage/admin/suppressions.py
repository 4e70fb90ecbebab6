"""/v1/suppressions/{channel}/{address}: addresses the deliverer must not reach."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer, no_content
from midstage.models.admin import RoleRank
from midstage.models.requests import SuppressionPut

routes = Routes()


@routes.get("/<channel>/<address>", role=RoleRank.viewer, personal=True)
def get_suppression(channel: str, address: str) -> Response[Any]:
    return json_answer(200, routes.services.suppressions.get_suppression(channel, address))


@routes.put("/<channel>/<address>", role=RoleRank.data_operator, personal=True)
def put_suppression(channel: str, address: str) -> Response[Any]:
    request = routes.body(SuppressionPut)
    return json_answer(200, routes.services.suppressions.put_suppression(channel, address, request))


@routes.delete("/<channel>/<address>", role=RoleRank.data_operator, personal=True)
def delete_suppression(channel: str, address: str) -> Response[Any]:
    routes.services.suppressions.delete_suppression(channel, address)
    return no_content()
