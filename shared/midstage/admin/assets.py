"""/v1/assets: the asset library (images, video, copy, files), its versions and their review."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from midstage.admin.routing import Routes, json_answer
from midstage.errors import InvalidInput
from midstage.logic.assets import ALLOWED_TYPES, INLINE_MAX
from midstage.models.admin import RoleRank
from midstage.models.assets import AssetContent, AssetCreate, AssetRejection, AssetReview, AssetVersionRef

routes = Routes()
# A file sent inline is base64 (4 bytes for every 3) inside a JSON body.
_UPLOAD_BYTES = INLINE_MAX * 4 // 3 + 64 * 1024


@routes.get("/", role=RoleRank.viewer)
def list_assets() -> Response[Any]:
    kind = routes.query("kind")
    if kind is not None and kind not in ALLOWED_TYPES:
        raise InvalidInput(f"'kind' is one of {', '.join(ALLOWED_TYPES)}", code="invalid_query")
    return json_answer(200, routes.services.assets.list(kind, routes.query("tag")))


@routes.post("/", role=RoleRank.marketer)
def create_asset() -> Response[Any]:
    body = routes.body(AssetCreate, _UPLOAD_BYTES)
    return json_answer(201, routes.services.assets.create(body, routes.caller))


@routes.get("/<asset_name>", role=RoleRank.viewer)
def get_asset(asset_name: str) -> Response[Any]:
    return json_answer(200, routes.services.assets.get(asset_name))


@routes.post("/<asset_name>/versions", role=RoleRank.marketer)
def add_asset_version(asset_name: str) -> Response[Any]:
    body = routes.body(AssetContent, _UPLOAD_BYTES)
    return json_answer(201, routes.services.assets.add_version(asset_name, body, routes.caller))


@routes.post("/<asset_name>/submit", role=RoleRank.marketer)
def submit_asset(asset_name: str) -> Response[Any]:
    return json_answer(200, routes.services.assets.submit(asset_name, routes.body(AssetReview), routes.caller))


@routes.post("/<asset_name>/approve", role=RoleRank.data_operator)
def approve_asset(asset_name: str) -> Response[Any]:
    return json_answer(200, routes.services.assets.approve(asset_name, routes.body(AssetReview), routes.caller))


@routes.post("/<asset_name>/reject", role=RoleRank.data_operator)
def reject_asset(asset_name: str) -> Response[Any]:
    return json_answer(200, routes.services.assets.reject(asset_name, routes.body(AssetRejection), routes.caller))


@routes.post("/<asset_name>/publish", role=RoleRank.marketer)
def publish_asset(asset_name: str) -> Response[Any]:
    return json_answer(200, routes.services.assets.publish(asset_name, routes.body(AssetVersionRef), routes.caller))


@routes.post("/<asset_name>/archive", role=RoleRank.marketer)
def archive_asset(asset_name: str) -> Response[Any]:
    return json_answer(200, routes.services.assets.archive(asset_name, routes.caller))
