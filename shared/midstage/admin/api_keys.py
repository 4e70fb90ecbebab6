"""/v1/api-keys: the admin API's own keys (shown without their digest)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.models.admin import ApiKeyCreate, RoleRank

routes = Routes()


@routes.get("/", role=RoleRank.admin)
def list_api_keys() -> Response[Any]:
    return json_answer(200, routes.services.api_keys.list_keys())


@routes.get("/current", role=RoleRank.viewer)
def current_api_key() -> Response[Any]:
    # Any key may read itself: the console learns the role it signs in with from here.
    return json_answer(200, routes.services.api_keys.describe(routes.caller.key_id))


@routes.post("/", role=RoleRank.admin)
def create_api_key() -> Response[Any]:
    return json_answer(201, routes.services.api_keys.create_key(routes.body(ApiKeyCreate)))


@routes.delete("/<key_id>", role=RoleRank.admin)
def revoke_api_key(key_id: str) -> Response[Any]:
    return json_answer(200, routes.services.api_keys.revoke_key(key_id))
